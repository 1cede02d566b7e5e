/* async_io/mutex.h — a mutex that parks the fiber, never the thread.
 *
 * It may be held across parking calls (a yield, a read, a sleep).
 * Hand-off is not FIFO: unlock wakes exactly one parked fiber, the one that
 * has waited longest, and it competes with fibers arriving at that moment
 * (as a futex mutex or Go's sync.Mutex in its normal mode), which keeps the
 * lock hot on one worker under contention.  No thundering herd: one unlock
 * wakes at most one fiber.  A lock attempt first spins briefly while the
 * holder runs on another worker. */
#ifndef ASYNC_IO_MUTEX_H
#define ASYNC_IO_MUTEX_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_mutex async_mutex;

/* A new unlocked mutex, or NULL + ENOMEM. */
ASYNC_API async_mutex *async_mutex_new(void);

/* Parks until the mutex is ours: 0, or -1 ECANCELED / ETIMEDOUT / EPERM /
 * EINVAL.  Not recursive: locking a mutex this fiber holds deadlocks. */
ASYNC_API int async_mutex_lock(async_mutex *m);

/* Never parks: 0, or -1 EBUSY when held, EINVAL. */
ASYNC_API int async_mutex_trylock(async_mutex *m);

/* Releases; any fiber (or thread) may unlock.  NULL is ignored. */
ASYNC_API void async_mutex_unlock(async_mutex *m);

/* Frees an unlocked mutex nobody waits on. */
ASYNC_API void async_mutex_free(async_mutex *m);

#ifdef __cplusplus
}
#endif
#endif
