/* async_io/runtime.h — fibers on a pool of worker threads.
 *
 * Conventions for every header of async_io:
 *   - a failing call returns -1 (or NULL) and sets errno;
 *   - "Parks" marks a call that may suspend the calling fiber.  Only fibers
 *     may call those (EPERM elsewhere), and every one of them fails with
 *     ECANCELED once its fiber is cancelled and with ETIMEDOUT once the
 *     fiber's deadline (async_deadline) has passed;
 *   - arguments are borrowed for the duration of the call;
 *   - whoever calls _new calls _free.
 *
 * A started fiber never changes thread, so errno and thread-local storage
 * behave inside a fiber as they do inside a thread; errno is saved and
 * restored at every switch.  The floating-point control state (rounding
 * mode, exception masks) is the worker thread's, not the fiber's: a fiber
 * that changes it must restore it before any parking call or yield. */
#ifndef ASYNC_IO_RUNTIME_H
#define ASYNC_IO_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ASYNC_API
#define ASYNC_API __attribute__((visibility("default")))
#endif

typedef struct async_task async_task;
typedef void *(*async_fn)(void *arg);

struct async_config {
    unsigned workers;   /* worker threads; 0 = online CPUs */
    size_t stack_size;  /* usable bytes per fiber stack; 0 = 64 KiB (256 KiB under ASan) */
};

/* Runs main_fn(arg) as the first fiber on a fresh runtime and returns 0 once
 * every fiber, detached ones included, has finished.  cfg may be NULL.  May
 * be called again after it returns.  Fails with EBUSY when called from inside
 * a runtime, EAGAIN/ENOMEM when threads or loops cannot be created. */
ASYNC_API int async_runtime(const struct async_config *cfg, async_fn main_fn, void *arg);

/* Creates a fiber running fn(arg); it starts on some worker (idle workers
 * may steal it before it starts) and stays there.  The handle must be joined
 * or detached exactly once.  A fiber spawned by a member of a group is a
 * member of that group too.  NULL + EINVAL (fn NULL), EPERM (not inside a
 * runtime), ENOMEM. */
ASYNC_API async_task *async_spawn(async_fn fn, void *arg);

/* As async_spawn, but the fiber starts and runs on worker `worker`
 * (0 .. async_workers() - 1) and no other worker may steal it: for work
 * spread by hand, e.g. one acceptor per worker.  NULL + EINVAL (fn NULL or
 * no such worker), EPERM (not inside a runtime), ENOMEM. */
ASYNC_API async_task *async_spawn_on(unsigned worker, async_fn fn, void *arg);

/* The number of workers of the caller's runtime, or -1 + EPERM outside one. */
ASYNC_API int async_workers(void);

/* The index (0 .. async_workers() - 1) of the worker running the caller,
 * which stays the same for a fiber's whole life: for per-worker data.
 * -1 + EPERM outside a runtime. */
ASYNC_API int async_worker_id(void);

/* Parks until t has finished, stores its return value in *result (result may
 * be NULL) and frees t: 0.  On ECANCELED/ETIMEDOUT t stays valid and may be
 * joined (or detached) again.  EINVAL for NULL or for a task that another
 * fiber is already joining; EDEADLK for a fiber joining itself.  Joining a
 * task that was already joined or detached is a use after free. */
ASYNC_API int async_join(async_task *t, void **result);

/* Lets t run on; its resources are freed when it ends.  The handle is
 * invalid afterwards.  NULL is ignored. */
ASYNC_API void async_detach(async_task *t);

/* Cancels t: its current parking call (if any) and every later one fail with
 * ECANCELED.  A task cancelled before it starts still runs.  Cancelling a
 * finished (not yet joined) task does nothing.  0, or -1 EINVAL for NULL. */
ASYNC_API int async_cancel(async_task *t);

/* Figures of the runtime the caller runs in, for status pages.  Counters
 * are read without stopping anyone, so they are a recent sample, not a
 * snapshot. */
struct async_stats {
    unsigned workers;
    uint64_t fibers_spawned;    /* since async_runtime started */
    uint64_t fibers_live;       /* spawned and not yet finished */
    size_t global_queue;        /* fibers waiting in the global queue */
};

struct async_worker_stats {
    size_t run_queue;           /* runnable fibers waiting on this worker */
    uint64_t fibers_ended;      /* fibers that finished on this worker */
};

/* Fills *st and, for the first n workers (fewer if the runtime has fewer),
 * per[i]; per may be NULL when n is 0.  Call from inside a runtime (a
 * fiber or a worker thread): 0, or -1 EPERM elsewhere, EINVAL for st NULL. */
ASYNC_API int async_stats(struct async_stats *st, struct async_worker_stats *per, unsigned n);

/* Shields the calling fiber from cancellation while on is non-zero: a
 * cancel that arrives meanwhile (async_cancel, a group's cancel) is kept
 * and takes effect at the first parking call after the shield is lowered.
 * Deadlines still apply.  For work that must finish after a cancel:
 * flushing a log, completing a response, draining connections.  Returns
 * the previous setting (0 or 1), or -1 EPERM outside a fiber. */
ASYNC_API int async_shield(int on);

/* 1 if the calling fiber has been cancelled (shielded or not), else 0;
 * -1 EPERM outside a fiber.  For a shielded fiber that must tell a stop
 * from other news. */
ASYNC_API int async_cancelled(void);

/* Lets the other runnable fibers of this worker run; no-op outside fibers. */
ASYNC_API void async_yield(void);

/* Parks for ms milliseconds: 0, or -1 with ECANCELED / ETIMEDOUT / EPERM. */
ASYNC_API int async_sleep_ms(uint64_t ms);

/* ---- watching the workers from another thread ----
 *
 * A fiber that blocks its thread (sleep(), a blocking read, a long
 * computation) stalls every fiber of its worker, and nothing inside the
 * runtime can notice: the worker's own timers wait too.  A watcher thread
 * can.  It samples each worker: `beat` grows each time the worker's
 * scheduler turns, and stands still while one fiber holds the worker (fn
 * non-NULL) or while the worker waits for events (fn NULL, which is no
 * fault).  A beat that stands still with fn set, over a time the program
 * finds too long, is a blocked worker; fn and group say whose fiber. */

typedef struct async_rt async_rt;

struct async_worker_watch {
    uint64_t beat;          /* grows while the worker comes back to its scheduler */
    async_fn fn;            /* entry function of the fiber running on it; NULL: none */
    struct async_group *group; /* that fiber's group, NULL when none; compare, never use */
};

/* The caller's runtime, to hand to a watcher thread.  Valid until
 * async_runtime returns: the watcher must have stopped calling
 * async_worker_watch by then.  NULL + EPERM outside a runtime. */
ASYNC_API async_rt *async_runtime_self(void);

/* Samples worker `worker` of rt; callable from any thread, never blocks,
 * touches no task.  0, or -1 EINVAL (rt or w NULL, no such worker). */
ASYNC_API int async_worker_watch(async_rt *rt, unsigned worker, struct async_worker_watch *w);

/* Milliseconds of CLOCK_MONOTONIC; never goes backwards. */
ASYNC_API int64_t async_now_ms(void);

/* Sets the calling fiber's deadline to at_ms (async_now_ms scale; -1 = none)
 * and returns the previous one.  Past it every parking call fails with
 * ETIMEDOUT.  Outside a fiber it does nothing and returns -1. */
ASYNC_API int64_t async_deadline(int64_t at_ms);

#ifdef __cplusplus
}
#endif
#endif
