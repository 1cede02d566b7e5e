/* daemon/tally.c — counts of what the daemon did since it started
 * (reloads applied and rejected, module restarts) and since when, which modules read
 * through the host call daemon_stats (async_module_daemon_stats) for
 * their status pages and metrics.
 *
 * Threads: reloads are counted on the daemon's fiber, restarts on each
 * module's supervising fiber, and any worker reads them; relaxed atomics,
 * because each is a count on its own and no reader orders it against
 * anything else. */
#include "host.h"
#include "tally.h"

#include "worker.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint64_t reloads, rejected, restarts;
static uint64_t started_ms; /* written once, before main and any thread */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((constructor)) static void note_start(void)
{
    started_ms = monotonic_ms();
}

void asyncd_tally_reload(bool applied)
{
    atomic_fetch_add_explicit(applied ? &reloads : &rejected, 1, memory_order_relaxed);
}

void asyncd_tally_restart(void)
{
    atomic_fetch_add_explicit(&restarts, 1, memory_order_relaxed);
}

void asyncd_host_daemon_stats(const async_module_host *host, struct async_module_daemon_stats *st,
                              size_t size)
{
    struct async_module_daemon_stats all = {
        .reloads = atomic_load_explicit(&reloads, memory_order_relaxed),
        .reloads_rejected = atomic_load_explicit(&rejected, memory_order_relaxed),
        .module_restarts = atomic_load_explicit(&restarts, memory_order_relaxed),
        .uptime_ms = monotonic_ms() - started_ms,
        .process = asyncd_worker_number(),
        .pid = (uint64_t)getpid(),
    };

    (void)host;
    /* a module built against a smaller struct gets the members it knows */
    memcpy(st, &all, size < sizeof(all) ? size : sizeof(all));
}
