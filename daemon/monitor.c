/* daemon/monitor — see monitor.h.
 *
 * Running out of descriptors is silent in the runtime: accept rides
 * EMFILE/ENFILE out with a back-off (runtime/net/listener.c), so clients
 * simply wait.  The operator must hear of it: once a second at most, the
 * monitor compares the runtime's shortage count with the last one it saw
 * and logs the difference with the limit it ran into. */
#include "monitor.h"

#include "log.h"

#include <inttypes.h>
#include <sys/resource.h>

#define PERIOD_MS 1000

static void *monitor(void *arg)
{
    uint64_t seen = async_fd_shortages(), now;
    struct rlimit rl;

    while (async_sleep_ms(PERIOD_MS) == 0) {
        if ((now = async_fd_shortages()) == seen)
            continue;
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = 0;
        asyncd_log(ASYNC_LOG_WARNING,
                   "out of file descriptors: accepting waited %" PRIu64 " time(s) in the last "
                   "second (RLIMIT_NOFILE %llu); raise LimitNOFILE= or lower max_connections",
                   now - seen, (unsigned long long)rl.rlim_cur);
        seen = now;
    }
    return NULL;
}

async_task *asyncd_monitor_start(void)
{
    return async_spawn(monitor, NULL);
}

void asyncd_monitor_stop(async_task *t)
{
    if (t == NULL)
        return;
    async_cancel(t);
    async_join(t, NULL);
}
