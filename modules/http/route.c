/* modules/http/route.c — the handler the engine calls for every request:
 * the site its host names (sites.c), then the status and metrics
 * endpoints, routes (an exact path before the longest prefix), then
 * static files beneath the site's root.
 *
 * A route may name a handler another module registered
 * (async_module_add_http_handler): the request goes to it on this
 * connection's fiber through the daemon's slot for that name.  While no
 * module provides the name — its module is being reloaded — the request
 * waits for it to come back, up to HANDLER_WAIT_MS, before a 503.
 *
 * A "health" route answers 200 while the module serves and 503 from the
 * moment the daemon starts stopping it (async_module_stop_deadline: a
 * stop signal's drain_grace_ms, or a reload retiring this generation), so
 * a load balancer's check takes the instance out while it still answers
 * everything else. */
#include "http.h"
#include "sites.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HANDLER_WAIT_MS 1000
#define HANDLER_POLL_MS 5

/* Reads a request body to its end before a fixed answer, as the engine
 * used to: the client hears "100 Continue" when it asked, and a body
 * past max_body_bytes or malformed gets the engine's 413 or 400 when
 * this returns -1 with nothing sent. */
static int read_away_body(async_http_request *req)
{
    char sink[4096];
    ssize_t n;

    while ((n = async_http_read_body(req, sink, sizeof(sink))) > 0)
        ;
    return n < 0 ? -1 : 0;
}

static bool is(const char *method, const char *name)
{
    return strcmp(method, name) == 0;
}

/* The methods this server knows; others get 501 (RFC 9110 §9.1). */
static bool known_method(const char *m)
{
    return is(m, "GET") || is(m, "HEAD") || is(m, "POST") || is(m, "PUT") ||
           is(m, "DELETE") || is(m, "OPTIONS") || is(m, "PATCH") || is(m, "TRACE");
}

/* What a resource that only reads says to other methods. */
static int read_only(async_http_request *req)
{
    if (async_http_add_header(req, "Allow", "GET, HEAD, OPTIONS") != 0)
        return -1;
    if (is(async_http_method(req), "OPTIONS"))
        return async_http_respond(req, 204, NULL, NULL, 0);
    return async_http_respond(req, 405, "text/plain; charset=utf-8", "Method Not Allowed\n", 19);
}

static int fixed(async_http_request *req, const struct http_route *rt)
{
    size_t i;

    for (i = 0; i < rt->nheaders; i++)
        if (async_http_add_header(req, rt->hname[i], rt->hvalue[i]) != 0)
            return -1;
    return async_http_respond(req, rt->status, rt->content_type, rt->body, rt->body_len);
}

/* The health route's answer: never the site's error page, never cached
 * (a check must see the state of now).  One atomic load per check. */
static int health(struct http_server *srv, async_http_request *req,
                  const struct http_route *rt)
{
    bool stopping = async_module_stop_deadline(srv->host) >= 0, cache = false;
    size_t i;

    for (i = 0; i < rt->nheaders; i++) {
        if (async_http_add_header(req, rt->hname[i], rt->hvalue[i]) != 0)
            return -1;
        cache = cache || strcasecmp(rt->hname[i], "Cache-Control") == 0;
    }
    if (!cache && async_http_add_header(req, "Cache-Control", "no-store") != 0)
        return -1;
    if (stopping)
        return async_http_respond(req, 503, "text/plain; charset=utf-8", "draining\n", 9);
    return async_http_respond(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

/* Calls the module handler of rt, waiting briefly for its name to be
 * provided again when a reload has withdrawn it. */
static int call_handler(async_http_request *req, const struct http_route *rt)
{
    int64_t until = async_now_ms() + HANDLER_WAIT_MS;
    int rc;

    for (;;) {
        rc = async_module_http_call(rt->slot, req);
        if (rc == 0 || errno != ENOENT || async_http_head_sent(req))
            return rc;
        if (async_now_ms() >= until || async_sleep_ms(HANDLER_POLL_MS) != 0)
            break;
    }
    async_http_add_header(req, "Retry-After", "1");
    return http_error(req, 503);
}

static const struct http_route *find_route(const struct http_config *cfg, const char *path)
{
    const struct http_route *best = NULL;
    size_t i;

    for (i = 0; i < cfg->nroutes; i++) {
        const struct http_route *rt = &cfg->routes[i];

        if (rt->path != NULL) {
            if (strcmp(path, rt->path) == 0)
                return rt; /* an exact path beats every prefix */
        } else if (strncmp(path, rt->prefix, rt->prefix_len) == 0 &&
                   (best == NULL || rt->prefix_len > best->prefix_len)) {
            best = rt;
        }
    }
    return best;
}

int http_handle(async_http_request *req, void *mod)
{
    /* held until the engine's done hook, set by enter as the tag */
    struct http_server *srv = http_site_enter(mod, req);
    const char *method = async_http_method(req), *path = async_http_path(req);
    const struct http_route *rt = NULL;
    bool reads = is(method, "GET") || is(method, "HEAD");
    bool status = srv->cfg.status_path != NULL && strcmp(path, srv->cfg.status_path) == 0;
    bool metrics = srv->cfg.metrics_path != NULL && strcmp(path, srv->cfg.metrics_path) == 0;

    if (!known_method(method))
        return http_error(req, 501);
    if (!status && !metrics && (rt = find_route(&srv->cfg, path)) != NULL && rt->handler != NULL)
        return call_handler(req, rt);
    if (read_away_body(req) != 0)
        return -1;
    if (strcmp(path, "*") == 0) /* OPTIONS * (the engine answers 400 to others) */
        return read_only(req);
    if (status)
        return reads ? http_status_reply(srv, req) : read_only(req);
    if (metrics)
        return reads ? http_metrics_reply(srv, req) : read_only(req);
    if (rt != NULL && rt->health)
        return reads ? health(srv, req, rt) : read_only(req);
    if (rt != NULL)
        return reads ? fixed(req, rt) : read_only(req);
    if (srv->root_fd < 0)
        return http_error(req, 404);
    return reads ? http_files_serve(srv, req, path) : read_only(req);
}
