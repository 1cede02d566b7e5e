/* daemon/watcher — a thread that notices a worker a fiber keeps from its
 * scheduler (a blocking call, a long computation in a module), names the
 * module and the fiber's entry function in the log, and pets systemd's
 * watchdog only while no worker is kept so.
 *
 * A thread, not a fiber: a blocked worker runs no fiber, and its timers
 * wait with it. */
#ifndef ASYNCD_WATCHER_H
#define ASYNCD_WATCHER_H

#include <async_io.h>

#include <stdint.h>

/* Starts watching the workers of rt, the caller's runtime.  A worker
 * whose scheduler has not turned for warn_ms while a fiber holds it is
 * logged (WARNING, again about once a second with the time so far, and a
 * NOTICE when it moves).  pet_ms > 0: sends WATCHDOG=1 every pet_ms while
 * no worker is so held, and none while one is.  0, or -1 with errno.
 * Call from a fiber of rt, with the daemon's signals blocked (the thread
 * inherits the mask). */
int asyncd_watcher_start(async_rt *rt, int64_t warn_ms, int64_t pet_ms);

/* A reload's new blocked_warn_ms.  Any thread. */
void asyncd_watcher_set_warn_ms(int64_t warn_ms);

/* Stops and joins the thread (before async_runtime returns); a no-op if
 * it was not started. */
void asyncd_watcher_stop(void);

/* Times a worker was found held since the daemon started (what
 * async_module_blocked_workers returns).  Any thread. */
uint64_t asyncd_watcher_blocked(void);

#endif
