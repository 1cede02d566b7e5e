/* async_io/blocking.h — running blocking calls off the workers.
 *
 * A worker thread must never block: a blocking call (a disk read, a
 * getaddrinfo, a third-party blocking client) stalls every fiber of that
 * worker.  async_blocking runs such a call on a helper thread while the
 * calling fiber parks.  The helpers form one process-wide pool of at most
 * ASYNC_IO_HELPERS threads (environment, default 16), started on demand
 * and kept; jobs queue in FIFO order when all are busy. */
#ifndef ASYNC_IO_BLOCKING_H
#define ASYNC_IO_BLOCKING_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called on the helper thread for a job whose fiber stopped waiting:
 * result is what fn returned, or NULL with ran == 0 if fn never started. */
typedef void (*async_abandon_fn)(void *arg, void *result, int ran);

/* Parks until fn(arg) has run on a helper thread; stores its return value
 * in *result (result may be NULL): 0.  -1 with ECANCELED / ETIMEDOUT /
 * EPERM / EINVAL (fn NULL) / ENOMEM / EAGAIN (no helper thread could be
 * started).
 *
 * On ECANCELED or ETIMEDOUT the fiber stops waiting at once, but a call
 * already running cannot be interrupted: it runs to completion on its
 * helper and its result is dropped.  So arg must stay valid until fn
 * returns, which may be after async_blocking does: do not pass the
 * fiber's stack memory unless you cannot be cancelled; use
 * async_blocking_ex to free what the call owns.  A job cancelled before a
 * helper picked it up never runs.  If the call finishes at the moment the
 * fiber is cancelled, the result wins: 0 is returned. */
ASYNC_API int async_blocking(async_fn fn, void *arg, void **result);

/* As async_blocking, and when the fiber stops waiting, abandon(arg, result,
 * ran) is called on the helper thread once fn has returned (ran = 1) or
 * instead of running it (ran = 0), so that heap memory passed in arg and
 * the result can be freed. */
ASYNC_API int async_blocking_ex(async_fn fn, void *arg, void **result, async_abandon_fn abandon);

#ifdef __cplusplus
}
#endif
#endif
