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

#endif
