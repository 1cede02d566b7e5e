/* runtime/reactor — the worker's libev loop: fd readiness, timers, wake-ups.
 *
 * Each worker owns one loop, touched only by that worker's thread: fibers
 * never move, so a fiber's fd waits and timers are always on its own
 * worker's loop.  The single cross-thread entry is async__reactor_notify
 * (ev_async_send), which interrupts a loop blocked in epoll_wait.  One-off
 * watchers (async_fd_wait, timers) live on the stacks of the fibers that
 * wait on them; a socket's reusable watcher (async__fdw) lives in the
 * socket and is touched only by its home worker's thread. */
#ifndef ASYNC_REACTOR_H
#define ASYNC_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

struct async_worker;
struct async_task;

int  async__reactor_init(struct async_worker *w);   /* 0 or an errno */
void async__reactor_fini(struct async_worker *w);

/* Owner thread: runs due callbacks; block: wait for the next event first. */
void async__reactor_poll(struct async_worker *w, bool block);

/* Polls, waiting at most `seconds` for something to happen (woken by an
 * fd or timer; another thread's wake-up is seen once it returns). */
void async__reactor_nap(struct async_worker *w, double seconds);

/* Owner thread: whether any fd wait or timer is armed (worth polling). */
bool async__reactor_armed(struct async_worker *w);

/* Owner thread: whether the last poll is long enough ago that a busy
 * worker should poll again (ASYNC__POLL_EVERY_NS). */
bool async__reactor_due(struct async_worker *w);

/* Any thread: makes a blocked async__reactor_poll of w return. */
void async__reactor_notify(struct async_worker *w);

/* A one-shot timer of the calling worker's loop: fire(t) runs on that
 * worker's thread, in its scheduler (not on a fiber), once after_ms have
 * passed, unless stopped first.  Opaque storage, kept where its user
 * waits (a parked fiber's stack); start and stop on the thread of w. */
struct async__timer {
    void *opaque[10];
};

void async__timer_start(struct async__timer *t, struct async_worker *w, int64_t after_ms,
                        void (*fire)(struct async__timer *t));

/* Stops t if it has not fired (then fire is never called); harmless
 * after it fired. */
void async__timer_stop(struct async__timer *t);

/* A watcher that a descriptor keeps across waits (streams, listeners).
 *
 * async_fd_wait registers the fd with libev on every call.  This one stays
 * started after the wait that woke its fiber ("lingers"), so the fiber's
 * next wait on it, usually a few microseconds later, costs nothing.  Were
 * it stopped, libev would drop the fd at its next poll and re-add it with
 * an epoll_ctl at the next wait.
 *
 * Rules: a watcher belongs to the worker of the first fiber that waits on
 * it.  One fiber at a time lingers on it (its owner); a fiber lingers on
 * at most ASYNC__LINGER of them (sched.h), the latest it waited on, so one
 * that relays between two sockets re-adds neither.  The owner's other
 * waits leave it started; when the descriptor turns ready while its owner
 * is parked and not on it, the loop stops it then, so an idle worker never
 * spins on an fd nobody reads and a quiet one costs nothing.  Another
 * fiber of the same worker that waits on it takes it over, unless the
 * owner is parked on it; then, and on other workers, a wait uses a
 * one-off watcher.  When the owner ends, those started for reading only
 * stay started, owned by nobody, until their first event (see
 * async__fdw_release); the others stop.  While started,
 * the watcher holds its descriptor: hold(ctx, +1) when it starts,
 * hold(ctx, -1) when it stops (the socket layer counts a reference, so a
 * close elsewhere cannot free it under the loop: a closed socket polls
 * ready, which stops the watcher of a parked owner).  Opaque storage,
 * embedded in its owner's struct. */
struct async__fdw {
    void *opaque[16];
};

void async__fdw_init(struct async__fdw *f, int fd, void (*hold)(void *ctx, int delta), void *ctx);

/* Parks the calling fiber (checked by the caller) until the fd is ready
 * for events (ASYNC_READABLE | ASYNC_WRITABLE): 0, or ECANCELED/ETIMEDOUT. */
int async__fdw_wait(struct async__fdw *f, int events);

/* Whether the calling fiber may hand the watcher over (and if nobody has
 * used it yet, adopts it into the caller's loop): 0, or EXDEV when it
 * belongs to another worker's loop, EBUSY when another fiber lingers on
 * it. */
int async__fdw_can_handoff(struct async__fdw *f);

/* Hands the watcher over to `to`, a parked spawn of the calling fiber
 * (async__spawn_parked), after async__fdw_can_handoff said yes: `to` is
 * woken (and so started) when the fd turns readable.  The caller stops
 * lingering on it. */
void async__fdw_handoff(struct async__fdw *f, struct async_task *to);

/* Right after async__fdw_handoff, on the same fiber: wakes `to` now, as
 * the watcher firing would (for readiness the socket cannot show). */
void async__fdw_kick(struct async__fdw *f);

/* At the end of the fiber t (its own thread): the watchers it lingers on
 * that wait for nothing but reading stay started, owned by nobody
 * ("orphaned"), so a descriptor that outlives its fiber (a pooled
 * upstream connection, a keep-alive client handed to a parked spawn)
 * costs no epoll_ctl at its next wait; an orphan stops at its first
 * event.  The others stop now. */
void async__fdw_release(struct async_task *t);

/* Its watcher never outlives the fiber that waited on it: for a
 * descriptor whose last release may run code that can go away (a stream
 * layer's free, from a module that may be unloaded), which must then run
 * on the closer's thread, not later in the loop.  Before the first wait,
 * by the descriptor's owner. */
void async__fdw_no_orphan(struct async__fdw *f);

/* A parked spawn t starts (its worker's thread): if something other than
 * its watcher started it (a cancel), the watcher stops naming it as the
 * fiber parked on it, so a later event cannot wake t out of another wait. */
void async__fdw_spawn_starts(struct async_task *t);

/* The descriptor is being closed by the calling fiber: stops the watcher
 * now if this fiber lingers on it or it is an orphan of this worker, so
 * its hold goes before the close (which then needs no shutdown to wake
 * the loop).  Otherwise nothing. */
void async__fdw_drop(struct async__fdw *f);

/* Whether the watcher is started for reading on the calling fiber's
 * worker, nobody is parked on it and the loop has not seen the
 * descriptor readable since its last wait began: as of the loop's last
 * poll, nothing has arrived (nor a FIN).  The kernel may know better by
 * now: a hint, for a caller that can recover when it is wrong. */
bool async__fdw_quiet(struct async__fdw *f);

#endif
