/* modules/http/status.c — the status endpoint: the engine's counters, the
 * access log's dropped lines and the runtime's own figures, as JSON, to
 * the peers status_allow names (loopback by default). */
#include "http.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_WORKERS_SHOWN 256

void http_addf(struct async_module_text *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    async_module_text_vaddf(t, fmt, ap);
    va_end(ap);
}

bool http_peer_allowed(const struct http_allow *a, const async_http_request *req)
{
    uint8_t addr[16];

    return http_peer_address(async_http_peer(req), addr) == 0 && http_allow_match(a, addr);
}

int http_status_reply(struct http_server *srv, async_http_request *req)
{
    struct async_worker_stats per[MAX_WORKERS_SHOWN];
    struct async_stats st = {0};
    struct async_module_daemon_stats d;
    struct async_http_stats hs;
    struct async_module_text body = {0};
    unsigned i, n;
    int rc;

    if (!http_peer_allowed(&srv->cfg.status_allow, req))
        return http_error(req, 403);
    async_stats(&st, per, MAX_WORKERS_SHOWN);
    async_http_server_stats(srv->engine, &hs);
    async_module_daemon_stats(srv->host, &d);
    /* which process answered: under a master ("processes" > 1) each keeps
     * its own figures */
    http_addf(&body, "{\"process\":{\"number\":%" PRIu64 ",\"pid\":%" PRIu64 "},", d.process,
              d.pid);
    http_addf(&body,
         "\"connections\":{\"open\":%" PRIu64 ",\"total\":%" PRIu64 ",\"refused\":%" PRIu64 "},"
         "\"requests\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64
         ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64 "},",
         hs.connections_open, hs.connections_total, hs.connections_refused, hs.responses[1],
         hs.responses[2], hs.responses[3], hs.responses[4], hs.responses[5]);
    if (srv->log != NULL) /* lines the daemon's log writer had no room for */
        http_addf(&body, "\"access_log\":{\"dropped\":%" PRIu64 "},", http_log_dropped(srv->log));
    /* workers_blocked: times a worker was held by one fiber past the
     * daemon's blocked_warn_ms (its log names the module and fiber). */
    http_addf(&body,
         "\"runtime\":{\"workers\":%u,\"workers_blocked\":%" PRIu64 ",\"fibers_live\":%" PRIu64
         ",\"fibers_spawned\":%" PRIu64 ",\"global_queue\":%zu,\"run_queue\":[",
         st.workers, async_module_blocked_workers(srv->host), st.fibers_live, st.fibers_spawned,
         st.global_queue);
    n = st.workers < MAX_WORKERS_SHOWN ? st.workers : MAX_WORKERS_SHOWN;
    for (i = 0; i < n; i++)
        http_addf(&body, "%s%zu", i ? "," : "", per[i].run_queue);
    http_addf(&body, "]}}\n");
    if (body.failed) {
        free(body.buf);
        return -1;
    }
    rc = async_http_add_header(req, "Cache-Control", "no-store") == 0
             ? async_http_respond(req, 200, "application/json", body.buf, body.len) : -1;
    free(body.buf);
    return rc;
}
