/* runtime/reactor — the worker's libev loop: fd readiness, timers, wake-ups.
 *
 * Each worker owns one loop, touched only by that worker's thread: fibers
 * never move, so a fiber's fd waits and timers are always on its own
 * worker's loop.  The single cross-thread entry is async__reactor_notify
 * (ev_async_send), which interrupts a loop blocked in epoll_wait.  Watchers
 * live on the stacks of the fibers that wait on them. */
#ifndef ASYNC_REACTOR_H
#define ASYNC_REACTOR_H

#include <stdbool.h>

struct async_worker;

int  async__reactor_init(struct async_worker *w);   /* 0 or an errno */
void async__reactor_fini(struct async_worker *w);

/* Owner thread: runs due callbacks; block: wait for the next event first. */
void async__reactor_poll(struct async_worker *w, bool block);

/* Owner thread: whether any fd wait or timer is armed (worth polling). */
bool async__reactor_armed(struct async_worker *w);

/* Any thread: makes a blocked async__reactor_poll of w return. */
void async__reactor_notify(struct async_worker *w);

/* A watcher that a descriptor keeps across waits (streams, listeners).
 * async_fd_wait registers the fd with the kernel on every call; this one
 * binds to the worker of the first fiber that waits on it and afterwards
 * costs no epoll_ctl.  A wait from another worker, or while another fiber
 * of the same worker is already waiting on it, falls back to a one-off
 * watcher.  Opaque storage, embedded in its owner's struct; it may be
 * freed from any thread once no fiber waits on it. */
struct async__fdw {
    void *opaque[12];
};

void async__fdw_init(struct async__fdw *f, int fd);

/* Parks the calling fiber (checked by the caller) until the fd is ready
 * for events (ASYNC_READABLE | ASYNC_WRITABLE): 0, or ECANCELED/ETIMEDOUT. */
int async__fdw_wait(struct async__fdw *f, int events);

#endif
