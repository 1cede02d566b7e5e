/* modules/http/metrics.c — the metrics endpoint (metrics_path): the
 * Prometheus text exposition format 0.0.4, to the peers metrics_allow
 * names (loopback by default).
 *
 * Nothing is counted here.  Every figure is read at scrape time from
 * where it is kept anyway: the engine's per-worker counters
 * (async_http_server_stats and _metrics), the sites' (site_stats.c,
 * counted by the engine's done hook) — both relaxed single-writer
 * counters per worker, summed now, so no request writes a shared cache
 * line — the runtime's async_stats, the daemon's tally
 * (async_module_daemon_stats) and the TLS code's kernel-TLS counts
 * (async_tls_ktls_stats: process-wide relaxed atomics, added to per file
 * sent under kernel TLS, never on a connection without it).
 * A scrape walks the server's connection list once, to count the idle
 * and lingering ones: its cost grows with open connections (bench/http/
 * metrics_cpu.sh measures it at 10,000), a request's does not.
 *
 * "server" labels what is counted by site (site_stats.c: requests by
 * status class, their durations, files refused): a server's first name,
 * or "default" for a server without names; a site a reload removed keeps
 * its last counts until the module restarts.  Connections and bytes are
 * the engine's, counted per connection (which may serve several hosts):
 * they carry no server label.
 *
 * Last come the lines of other modules (the proxy's asyncd_proxy_*):
 * every metrics writer registered with asyncd
 * (async_module_add_metrics_writer) appends its families to the same
 * text, read by its module as it serves; a module that stops or a reload
 * that removes it takes its lines away. */
#include "http.h"
#include "sites.h"

#include <async_io/tls.h>
#include <inttypes.h>
#include <stdlib.h>

#define MAX_WORKERS_SHOWN 256

static void family(struct async_module_text *t, const char *name, const char *type,
                   const char *help)
{
    http_addf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct async_module_text *t, const char *name, const char *type, const char *help,
                uint64_t v)
{
    family(t, name, type, help);
    http_addf(t, "%s %" PRIu64 "\n", name, v);
}

static void daemon_part(struct http_server *srv, struct async_module_text *t)
{
    struct async_module_daemon_stats d;

    async_module_daemon_stats(srv->host, &d);
    family(t, "asyncd_build_info", "gauge", "asyncd's version (libasync_io's), always 1.");
    http_addf(t, "asyncd_build_info{version=\"%s\"} 1\n", async_version());
    family(t, "asyncd_process_info", "gauge", "The process that answered, always 1: its "
           "number under a master (0 without one) and its pid.");
    http_addf(t, "asyncd_process_info{process=\"%" PRIu64 "\",pid=\"%" PRIu64 "\"} 1\n",
              d.process, d.pid);
    family(t, "asyncd_uptime_seconds", "gauge", "Seconds since asyncd started.");
    http_addf(t, "asyncd_uptime_seconds %.3f\n", (double)d.uptime_ms / 1000.0);
    family(t, "asyncd_reloads_total", "counter", "SIGHUP reloads, applied or rejected.");
    http_addf(t, "asyncd_reloads_total{result=\"applied\"} %" PRIu64 "\n", d.reloads);
    http_addf(t, "asyncd_reloads_total{result=\"rejected\"} %" PRIu64 "\n", d.reloads_rejected);
    one(t, "asyncd_module_restarts_total", "counter",
        "Module runs started again after the module failed.", d.module_restarts);
}

static void runtime_part(struct http_server *srv, struct async_module_text *t)
{
    struct async_worker_stats per[MAX_WORKERS_SHOWN];
    struct async_stats st = {0};
    unsigned i, n;

    async_stats(&st, per, MAX_WORKERS_SHOWN);
    one(t, "asyncd_runtime_workers", "gauge", "Worker threads.", st.workers);
    one(t, "asyncd_runtime_fibers_live", "gauge", "Fibers spawned and not yet finished.",
        st.fibers_live);
    one(t, "asyncd_runtime_fibers_spawned_total", "counter", "Fibers spawned.",
        st.fibers_spawned);
    one(t, "asyncd_runtime_global_queue", "gauge", "Fibers waiting in the global queue.",
        st.global_queue);
    family(t, "asyncd_runtime_run_queue", "gauge", "Runnable fibers waiting on each worker.");
    n = st.workers < MAX_WORKERS_SHOWN ? st.workers : MAX_WORKERS_SHOWN;
    for (i = 0; i < n; i++)
        http_addf(t, "asyncd_runtime_run_queue{worker=\"%u\"} %zu\n", i, per[i].run_queue);
    one(t, "asyncd_runtime_workers_blocked_total", "counter",
        "Times a worker was held by one fiber past blocked_warn_ms.",
        async_module_blocked_workers(srv->host));
}

/* Every label's figures, read once per scrape: each family below lists
 * its series from the same reading, so a histogram's buckets, sum and
 * count agree.  NULL when out of memory. */
static struct http_site_figures *read_sites(struct http_module *mod, size_t *n)
{
    struct http_site_figures *f = NULL, *more;
    struct http_site_stats *s;
    size_t cap = 0;

    *n = 0;
    for (s = http_site_stats_first(mod); s != NULL; s = http_site_stats_next(s)) {
        if (*n == cap) {
            cap = cap > 0 ? 2 * cap : 8;
            if ((more = realloc(f, cap * sizeof(*f))) == NULL) {
                free(f);
                return NULL;
            }
            f = more;
        }
        http_site_stats_read(s, &f[(*n)++]);
    }
    return f != NULL ? f : calloc(1, sizeof(*f));
}

static void histogram(struct async_module_text *t, const struct http_site_figures *f, size_t n)
{
    static const uint64_t bound[ASYNC_HTTP_DURATION_BUCKETS] = ASYNC_HTTP_DURATION_BOUNDS_US;
    uint64_t sum;
    size_t k;
    unsigned i;

    family(t, "asyncd_http_request_duration_seconds", "histogram",
           "From a request's complete head to its response handed to the kernel, by server.");
    for (k = 0; k < n; k++) {
        sum = 0;
        for (i = 0; i < ASYNC_HTTP_DURATION_BUCKETS; i++) {
            sum += f[k].duration[i];
            http_addf(t, "asyncd_http_request_duration_seconds_bucket{server=\"%s\",le=\"%g\"} %"
                      PRIu64 "\n", f[k].label, (double)bound[i] / 1e6, sum);
        }
        sum += f[k].duration[ASYNC_HTTP_DURATION_BUCKETS];
        http_addf(t, "asyncd_http_request_duration_seconds_bucket{server=\"%s\",le=\"+Inf\"} %"
                  PRIu64 "\n", f[k].label, sum);
        http_addf(t, "asyncd_http_request_duration_seconds_sum{server=\"%s\"} %.6f\n",
                  f[k].label, (double)f[k].timed_us / 1e6);
        /* the count is the +Inf bucket's: the two never disagree */
        http_addf(t, "asyncd_http_request_duration_seconds_count{server=\"%s\"} %" PRIu64 "\n",
                  f[k].label, sum);
    }
}

/* The counts kept by site: requests by status class, their durations,
 * files refused for want of a descriptor. */
static int sites_part(struct http_server *srv, struct async_module_text *t)
{
    size_t n, k;
    struct http_site_figures *f = read_sites(http_site_module(srv), &n);
    unsigned i;

    if (f == NULL)
        return -1;
    family(t, "asyncd_http_requests_total", "counter",
           "Responses, by the server (virtual host) that answered and status class.");
    for (k = 0; k < n; k++)
        for (i = 1; i < 6; i++)
            http_addf(t, "asyncd_http_requests_total{server=\"%s\",code=\"%uxx\"} %" PRIu64
                      "\n", f[k].label, i, f[k].by_class[i]);
    histogram(t, f, n);
    family(t, "asyncd_http_file_refused_total", "counter",
           "Requests answered 503 for want of a descriptor to open a file, by server.");
    for (k = 0; k < n; k++)
        http_addf(t, "asyncd_http_file_refused_total{server=\"%s\"} %" PRIu64 "\n",
                  f[k].label, f[k].fd_refused);
    free(f);
    return 0;
}

/* What the engine keeps: by connection, so for every server at once. */
static void http_part(struct http_server *srv, struct async_module_text *t)
{
    struct async_http_metrics m;
    struct async_http_stats hs;

    async_http_server_stats(srv->engine, &hs);
    async_http_server_metrics(srv->engine, &m);
    one(t, "asyncd_http_connections_open", "gauge",
        "Connections open now, idle and lingering ones included.", hs.connections_open);
    one(t, "asyncd_http_connections_idle", "gauge",
        "Connections waiting for a request, holding no fiber.", m.connections_idle);
    one(t, "asyncd_http_connections_lingering", "gauge",
        "Connections closing, dropping what the peer still sends.", m.connections_lingering);
    one(t, "asyncd_http_connections_total", "counter", "Connections accepted.",
        hs.connections_total);
    one(t, "asyncd_http_connections_refused_total", "counter",
        "Connections answered 503 past max_connections.", hs.connections_refused);
    one(t, "asyncd_http_sent_bytes_total", "counter",
        "Bytes written to clients, heads and bodies.", m.bytes_sent);
    if (srv->log != NULL)
        one(t, "asyncd_http_access_log_dropped_total", "counter",
            "Access-log lines the daemon's log writer had no room for.",
            http_log_dropped(srv->log));
}

/* Kernel TLS (the "ktls" of HTTPS addresses): process-wide, as the TLS
 * code of this module counts it. */
static void tls_part(struct async_module_text *t)
{
    struct async_tls_ktls_stats k;

    async_tls_ktls_stats(&k);
    one(t, "asyncd_tls_kernel_connections_total", "counter",
        "HTTPS connections that sent a file with the kernel holding their TLS keys.",
        k.connections);
    one(t, "asyncd_tls_kernel_sent_bytes_total", "counter",
        "File bytes sent with sendfile under kernel TLS.", k.bytes);
}

int http_metrics_reply(struct http_server *srv, async_http_request *req)
{
    struct async_module_text body = {0};
    int rc;

    if (!http_peer_allowed(&srv->cfg.metrics_allow, req))
        return http_error(req, 403);
    daemon_part(srv, &body);
    runtime_part(srv, &body);
    http_part(srv, &body);
    tls_part(&body);
    if (sites_part(srv, &body) != 0) {
        free(body.buf);
        return -1;
    }
    async_module_metrics_write(srv->host, &body);
    if (body.failed) {
        free(body.buf);
        return -1;
    }
    rc = async_http_add_header(req, "Cache-Control", "no-store") == 0
             ? async_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", body.buf,
                                  body.len) : -1;
    free(body.buf);
    return rc;
}
