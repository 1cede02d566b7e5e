/* modules/http/site_reply.c — what a site adds to its answers.
 *
 * Fields.  The engine calls http_site_head just before a head is built,
 * the status final, for every exchange a site answered (the request's tag
 * is its site): the server's "headers" go on every answer, errors too
 * (HSTS, CSP and X-Content-Type-Options are meant for them as well); the
 * longest matching location's go on answers below 400, and on errors only
 * with "always": true, as nginx's add_header does.  Doing it at the head,
 * not before serving, is what lets a 404 from files.c or a 502 from a
 * proxied route be told from a 200 without either knowing about sites.
 *
 * Error pages.  http_text (below) is how the module answers an error
 * (files.c's 403/404/503, the 404 without a root, 501, ...): it asks for
 * the site's page first.  The engine's own errors (a malformed head: 400,
 * 408, 413, 414, 431; a body a handler gave up on) come through its error
 * hook (http_site_engine_error), which picks the site first when no
 * handler did: the one the Host names if the head was read that far,
 * else the default of the listen address.  The page is read like any
 * file beneath the root and sent with the original status; if it cannot
 * be opened or is not a regular file, nothing has been sent and the
 * caller answers its built-in body — the page's own failure never asks
 * for a page again (the engine calls its hook once per answer), so an
 * error page cannot loop. */
#include "http.h"
#include "sites.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void add_fields(async_http_request *req, const struct http_header_list *h)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        async_http_add_header(req, h->name[i], h->value[i]);
}

void http_site_head(async_http_request *req, void *arg)
{
    const struct http_server *site = arg;
    const struct http_location *l;
    const char *path;
    size_t i;

    add_fields(req, &site->site.headers);
    if (site->site.nloc == 0)
        return;
    path = async_http_path(req);
    for (i = 0; i < site->site.nloc; i++) { /* longest first */
        l = &site->site.loc[i];
        if (strncmp(path, l->prefix, l->len) != 0)
            continue;
        if (async_http_status(req) < 400 || l->always)
            add_fields(req, &l->headers);
        return;
    }
}

static const struct http_error_page *page_for(const struct http_site_cfg *s, int status)
{
    const struct http_error_page *cls = NULL;
    size_t i;

    for (i = 0; i < s->npages; i++) {
        if (s->pages[i].code == status)
            return &s->pages[i];
        if (s->pages[i].code == status / 100)
            cls = &s->pages[i];
    }
    return cls;
}

int http_site_error_page(async_http_request *req, int status)
{
    struct http_server *site = async_http_tag(req);
    const struct http_error_page *page;
    struct http_file *f;
    bool redirect;
    char len[24];
    int rc;

    if (site == NULL || site->root_fd < 0 || (page = page_for(&site->site, status)) == NULL ||
        async_http_head_sent(req))
        return 1;
    if ((f = http_file_get(site, page->path, &redirect)) == NULL)
        return 1;
    if (!S_ISREG(f->st.st_mode)) {
        http_file_put(f);
        return 1;
    }
    snprintf(len, sizeof(len), "%" PRIu64, (uint64_t)f->st.st_size);
    if (async_http_set_status(req, status) != 0 ||
        async_http_add_header(req, "Content-Type", f->type) != 0 ||
        async_http_add_header(req, "Content-Length", len) != 0) {
        http_file_put(f);
        return 1;
    }
    /* an empty page is all head, which the engine sends when we return */
    rc = f->st.st_size > 0 ? async_http_sendfile(req, f->fd, 0, (size_t)f->st.st_size) : 0;
    http_file_put(f);
    return rc;
}

int http_site_engine_error(async_http_request *req, int status, void *mod)
{
    /* refused before the handler: the site its Host names if the engine
     * read one, else the default of the address it came to (held until
     * the done hook, as a handler's request is) */
    if (async_http_tag(req) == NULL)
        http_site_enter(mod, req);
    return http_site_error_page(req, status);
}

int http_text(async_http_request *req, int status, const char *body)
{
    int rc;

    /* an error: the site's page for it, if it has one it can read */
    if (status >= 400 && (rc = http_site_error_page(req, status)) != 1)
        return rc;
    return async_http_respond(req, status, "text/plain; charset=utf-8", body, strlen(body));
}

int http_error(async_http_request *req, int status)
{
    char body[64];

    snprintf(body, sizeof(body), "%d %s\n", status, async_http_reason(status));
    return http_text(req, status, body);
}
