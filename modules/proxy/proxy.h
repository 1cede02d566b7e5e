/* modules/proxy/proxy.h — what the proxy's files share: an upstream, its
 * servers and their counters (proxy.c forwards and counts, figures.c
 * shows the counts). */
#ifndef PROXY_PROXY_H
#define PROXY_PROXY_H

#include <async_io.h>
#include <async_io/http.h>
#include <async_io/module.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_SERVERS 64

enum failure { FAIL_REFUSED, FAIL_RESET, FAIL_TIMEOUT, FAIL_INVALID, FAIL_OTHER, FAIL_KINDS };

/* The response-time buckets: PROXY_BUCKETS - 1 upper bounds (ms,
 * proxy_bucket_ms), one more for the rest. */
#define PROXY_BUCKETS 9

/* A server's counters are relaxed atomics, written by the requests on
 * every worker and by its health fiber, read by the figures as they are
 * (a scrape may see one request in requests and not yet in head_ms). */
struct server {
    char *address;
    _Atomic bool up;
    _Atomic unsigned fails;     /* in a row */
    _Atomic unsigned oks;       /* in a row, while down */
    _Atomic long active;        /* requests in flight */
    _Atomic uint64_t requests;  /* tries, retries included */
    _Atomic uint64_t failures[FAIL_KINDS]; /* requests' and health checks' */
    _Atomic uint64_t head_ms[PROXY_BUCKETS]; /* time to the response head */
    _Atomic uint64_t head_ms_sum; /* of the times counted in head_ms */
};

/* Set up by run before its handlers are registered, and unchanged after
 * but for the atomics. */
struct upstream {
    const char *name;           /* the config's key (borrowed from the config) */
    struct server servers[MAX_SERVERS];
    size_t n;
    bool least_conn;
    unsigned keepalive;
    int64_t connect_timeout_ms, response_timeout_ms;
    int64_t tunnel_idle_timeout_ms;
    const char *health_path;    /* NULL: no active checks */
    int64_t health_interval_ms, health_timeout_ms;
    unsigned fall, rise, retries;
    const char *host;
    async_http_pool *pool;
    struct upstream_tls *tls;   /* NULL: plain TCP */
    async_http_pool *check_pool; /* health checks over TLS (keeps none); else NULL */
    _Atomic unsigned next;
    async_module_host *mod;
};

/* Every upstream of a run, for the figures. */
struct proxy_figures {
    struct upstream *ups;
    size_t n;
};

/* figures.c */
extern const char *const proxy_failure_names[FAIL_KINDS];
/* Counts a response head that came ms after the request started. */
void proxy_timed(struct server *s, int64_t ms);
/* The "proxy_status" handler (ctx: struct proxy_figures): JSON. */
int proxy_status_handle(async_http_request *req, void *ctx);
/* The metrics writer (ctx: struct proxy_figures): asyncd_proxy_*. */
void proxy_metrics_write(struct async_module_text *out, void *ctx);

#endif
