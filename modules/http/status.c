/* modules/http/status.c — the status endpoint: the server's counters, the
 * access log's dropped lines and the runtime's own figures, as JSON. */
#include "http.h"

#include <inttypes.h>
#include <stdlib.h>

#define MAX_WORKERS_SHOWN 256

void http_status_reply(struct http_server *srv, const struct http_request *req,
                       struct http_out *o, struct http_reply *r)
{
    struct async_worker_stats per[MAX_WORKERS_SHOWN];
    struct async_stats st = {0};
    struct http_out body = {0};
    unsigned i, n;

    async_stats(&st, per, MAX_WORKERS_SHOWN);
    http_out_addf(&body,
                  "{\"connections\":{\"open\":%ld,\"total\":%" PRIu64 "},"
                  "\"requests\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64
                  ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64 "},",
                  atomic_load_explicit(&srv->open, memory_order_relaxed),
                  atomic_load_explicit(&srv->total, memory_order_relaxed),
                  http_count_sum(srv, 1),
                  http_count_sum(srv, 2),
                  http_count_sum(srv, 3),
                  http_count_sum(srv, 4),
                  http_count_sum(srv, 5));
    if (srv->log != NULL) /* lines the daemon's log writer had no room for */
        http_out_addf(&body, "\"access_log\":{\"dropped\":%" PRIu64 "},",
                      http_log_dropped(srv->log));
    /* workers_blocked: times a worker was held by one fiber past the
     * daemon's blocked_warn_ms (its log names the module and fiber). */
    http_out_addf(&body,
                  "\"runtime\":{\"workers\":%u,\"workers_blocked\":%" PRIu64
                  ",\"fibers_live\":%" PRIu64 ",\"fibers_spawned\":%" PRIu64
                  ",\"global_queue\":%zu,\"run_queue\":[",
                  st.workers, async_module_blocked_workers(), st.fibers_live,
                  st.fibers_spawned, st.global_queue);
    n = st.workers < MAX_WORKERS_SHOWN ? st.workers : MAX_WORKERS_SHOWN;
    for (i = 0; i < n; i++)
        http_out_addf(&body, "%s%zu", i ? "," : "", per[i].run_queue);
    http_out_add(&body, "]}}\n", 4);
    http_reply_simple(o, r, req, 200, "application/json", body.buf, body.len,
                      "Cache-Control: no-store\r\n");
    free(body.buf);
}
