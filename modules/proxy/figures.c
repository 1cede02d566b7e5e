/* modules/proxy/figures.c — the proxy's counts, shown two ways: the
 * "proxy_status" handler's JSON and, through the http module's metrics
 * endpoint (async_module_add_metrics_writer), the asyncd_proxy_* families
 * of the Prometheus text format 0.0.4.
 *
 * Threads.  Both run on any worker while requests on every other worker
 * count: they read each counter once, relaxed (proxy.h), and what else
 * they read (names, addresses, the pool pointer) does not change while
 * the run that registered them lasts — asyncd withdraws the handler and
 * the writer, and waits for a scrape inside them, before run frees it.
 * A histogram's buckets and count come from one reading of the buckets,
 * so they agree; its sum is read beside them and may be a request ahead
 * or behind. */
#include "proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const proxy_failure_names[FAIL_KINDS] = {"refused", "reset", "timeout", "invalid",
                                                     "other"};
static const int64_t bucket_ms[PROXY_BUCKETS - 1] = {1, 5, 10, 50, 100, 500, 1000, 5000};

void proxy_timed(struct server *s, int64_t ms)
{
    size_t b;

    for (b = 0; b < PROXY_BUCKETS - 1 && ms > bucket_ms[b]; b++)
        ;
    atomic_fetch_add_explicit(&s->head_ms_sum, (uint64_t)(ms > 0 ? ms : 0),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->head_ms[b], 1, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* ---- proxy_status: JSON ---- */

static json_t *server_json(struct server *s)
{
    json_t *o = json_object(), *f = json_object(), *h = json_object();
    char key[16];
    size_t i;

    for (i = 0; i < FAIL_KINDS; i++)
        json_object_set_new(f, proxy_failure_names[i],
                            json_integer((json_int_t)get(&s->failures[i])));
    for (i = 0; i < PROXY_BUCKETS; i++) {
        if (i < PROXY_BUCKETS - 1)
            snprintf(key, sizeof(key), "le_%lld", (long long)bucket_ms[i]);
        else
            snprintf(key, sizeof(key), "more");
        json_object_set_new(h, key, json_integer((json_int_t)get(&s->head_ms[i])));
    }
    json_object_set_new(o, "state", json_string(atomic_load(&s->up) ? "up" : "down"));
    json_object_set_new(o, "requests", json_integer((json_int_t)get(&s->requests)));
    json_object_set_new(o, "active", json_integer((json_int_t)atomic_load(&s->active)));
    json_object_set_new(o, "failures", f);
    json_object_set_new(o, "response_head_ms", h);
    return o;
}

int proxy_status_handle(async_http_request *req, void *ctx)
{
    struct proxy_figures *f = ctx;
    json_t *all = json_object(), *u, *servers;
    char *text;
    size_t i, k;
    int rc;

    for (i = 0; i < f->n; i++) {
        u = json_object();
        servers = json_object();
        for (k = 0; k < f->ups[i].n; k++)
            json_object_set_new(servers, f->ups[i].servers[k].address,
                                server_json(&f->ups[i].servers[k]));
        json_object_set_new(u, "idle_connections",
                            json_integer(async_http_pool_idle(f->ups[i].pool)));
        json_object_set_new(u, "servers", servers);
        json_object_set_new(all, f->ups[i].name, u);
    }
    text = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    if (text == NULL)
        return -1;
    async_http_add_header(req, "Cache-Control", "no-store");
    rc = async_http_respond(req, 200, "application/json", text, strlen(text));
    free(text);
    return rc;
}

/* ---- the metrics endpoint: Prometheus text ---- */

/* A label value as the format quotes it: \, " and newline escaped. */
static void label(struct async_module_text *t, const char *v)
{
    for (; *v != '\0'; v++)
        if (*v == '\\' || *v == '"')
            async_module_textf(t, "\\%c", *v);
        else if (*v == '\n')
            async_module_textf(t, "\\n");
        else
            async_module_textf(t, "%c", *v);
}

/* Opens a sample of family name (suffix appended) with the labels of s in
 * up: `name{upstream="...",server="..."` — the caller closes the braces. */
static void sample(struct async_module_text *t, const char *name, const struct upstream *up,
                   const struct server *s)
{
    async_module_textf(t, "%s{upstream=\"", name);
    label(t, up->name);
    if (s != NULL) {
        async_module_textf(t, "\",server=\"");
        label(t, s->address);
    }
    async_module_textf(t, "\"");
}

static void family(struct async_module_text *t, const char *name, const char *type,
                   const char *help)
{
    async_module_textf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample of value v per server of every upstream. */
typedef uint64_t (*server_value)(struct server *s);

static void per_server(struct async_module_text *t, const struct proxy_figures *f,
                       const char *name, server_value value)
{
    size_t i, k;

    for (i = 0; i < f->n; i++)
        for (k = 0; k < f->ups[i].n; k++) {
            sample(t, name, &f->ups[i], &f->ups[i].servers[k]);
            async_module_textf(t, "} %" PRIu64 "\n", value(&f->ups[i].servers[k]));
        }
}

static uint64_t requests_of(struct server *s)
{
    return get(&s->requests);
}

static uint64_t up_of(struct server *s)
{
    return atomic_load_explicit(&s->up, memory_order_relaxed) ? 1 : 0;
}

static uint64_t active_of(struct server *s)
{
    long n = atomic_load_explicit(&s->active, memory_order_relaxed);

    return n > 0 ? (uint64_t)n : 0;
}

static void failures(struct async_module_text *t, const struct proxy_figures *f)
{
    size_t i, k;
    unsigned kind;

    for (i = 0; i < f->n; i++)
        for (k = 0; k < f->ups[i].n; k++)
            for (kind = 0; kind < FAIL_KINDS; kind++) {
                sample(t, "asyncd_proxy_failures_total", &f->ups[i], &f->ups[i].servers[k]);
                async_module_textf(t, ",kind=\"%s\"} %" PRIu64 "\n", proxy_failure_names[kind],
                                   get(&f->ups[i].servers[k].failures[kind]));
            }
}

static void histogram(struct async_module_text *t, const struct upstream *up, struct server *s)
{
    uint64_t cumulative = 0;
    size_t b;

    for (b = 0; b < PROXY_BUCKETS; b++) {
        cumulative += get(&s->head_ms[b]);
        sample(t, "asyncd_proxy_response_head_seconds_bucket", up, s);
        if (b < PROXY_BUCKETS - 1)
            async_module_textf(t, ",le=\"%g\"} %" PRIu64 "\n", (double)bucket_ms[b] / 1e3,
                               cumulative);
        else
            async_module_textf(t, ",le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    }
    sample(t, "asyncd_proxy_response_head_seconds_sum", up, s);
    async_module_textf(t, "} %.3f\n", (double)get(&s->head_ms_sum) / 1e3);
    /* the count is the +Inf bucket's: the two never disagree */
    sample(t, "asyncd_proxy_response_head_seconds_count", up, s);
    async_module_textf(t, "} %" PRIu64 "\n", cumulative);
}

void proxy_metrics_write(struct async_module_text *t, void *ctx)
{
    const struct proxy_figures *f = ctx;
    size_t i, k;

    if (f->n == 0) /* a proxy with nothing configured adds no empty families */
        return;
    family(t, "asyncd_proxy_requests_total", "counter",
           "Requests sent to the upstream's server: every try, retries included.");
    per_server(t, f, "asyncd_proxy_requests_total", requests_of);
    family(t, "asyncd_proxy_failures_total", "counter",
           "Failed tries and health checks of the server, by kind: refused, reset, timeout, "
           "invalid (a malformed answer), other.");
    failures(t, f);
    family(t, "asyncd_proxy_server_up", "gauge",
           "1 while the server is in the rotation, 0 while it is down.");
    per_server(t, f, "asyncd_proxy_server_up", up_of);
    family(t, "asyncd_proxy_requests_in_flight", "gauge",
           "Requests and tunnels on the server now, each holding or opening one connection "
           "to it.");
    per_server(t, f, "asyncd_proxy_requests_in_flight", active_of);
    family(t, "asyncd_proxy_connections_idle", "gauge",
           "Idle keep-alive connections the upstream keeps, to all its servers from all "
           "workers.");
    for (i = 0; i < f->n; i++) {
        sample(t, "asyncd_proxy_connections_idle", &f->ups[i], NULL);
        async_module_textf(t, "} %u\n", async_http_pool_idle(f->ups[i].pool));
    }
    family(t, "asyncd_proxy_response_head_seconds", "histogram",
           "From a try's start to the server's response head, for tries that got one.");
    for (i = 0; i < f->n; i++)
        for (k = 0; k < f->ups[i].n; k++)
            histogram(t, &f->ups[i], &f->ups[i].servers[k]);
}
