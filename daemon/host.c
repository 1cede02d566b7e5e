/* daemon/host.c — the table of host calls asyncd gives its modules, and
 * the log-file calls, which are the log writer's sinks (logsink.c) with
 * the table set on each handle. */
#include "host.h"

#include "listeners.h"
#include "logsink.h"
#include "logsink_int.h"
#include "metrics_writers.h"
#include "watcher.h"

#include <errno.h>

static async_module_logfile *logfile_open(async_module_host *host, const char *dest)
{
    async_module_logfile *f;

    if (host == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((f = asyncd_logsink_open(dest)) != NULL)
        f->api = &asyncd_host_api;
    return f;
}

static void logfile_write(async_module_logfile *f, const char *line, size_t len)
{
    asyncd_logsink_write(f, line, len);
}

static uint64_t logfile_dropped(const async_module_logfile *f)
{
    return asyncd_logsink_dropped(f);
}

static void logfile_close(async_module_logfile *f)
{
    asyncd_logsink_close(f);
}

static uint64_t blocked_workers(const async_module_host *host)
{
    (void)host;
    return asyncd_watcher_blocked();
}

const struct async_module_host_api asyncd_host_api = {
    .size = sizeof(struct async_module_host_api),
    .vlog = asyncd_host_vlog,
    .stop_deadline = asyncd_host_stop_deadline,
    .name = asyncd_host_name,
    .vproblem = asyncd_host_vproblem,
    .ready = asyncd_host_ready,
    .logfile_open = logfile_open,
    .logfile_write = logfile_write,
    .logfile_dropped = logfile_dropped,
    .logfile_close = logfile_close,
    .blocked_workers = blocked_workers,
    .add_http_handler = asyncd_handler_add,
    .http_slot_get = asyncd_handler_slot,
    .http_call = asyncd_handler_call,
    .http_provided = asyncd_handler_slot_provided,
    .provide_handler = asyncd_host_provide_handler,
    .need_handler = asyncd_host_need_handler,
    .listen = asyncd_host_listen,
    .daemon_stats = asyncd_host_daemon_stats,
    .vwarning = asyncd_host_vwarning,
    .add_metrics_writer = asyncd_metrics_writer_add,
    .metrics_write = asyncd_metrics_write,
};
