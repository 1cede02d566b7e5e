/* runtime/sched/park — a fiber's parking call: the protocol of sched.h,
 * with the reactor's one-shot timer for a wake time and the fiber's
 * deadline.
 *
 * The timer lives on the stack of the parked fiber, and only its home
 * worker's thread touches it: the fiber starts it before it switches away
 * and stops it once it runs again, and the timer fires (if it does) in
 * that worker's scheduler while the fiber is switched out.  Firing is one
 * more claimer of the epoch, like any waker. */
#include "sched.h"

#include "../reactor/reactor.h"

#include <errno.h>

struct park_timer {
    struct async__timer timer;      /* first: the reactor hands it back to on_park_timer */
    struct async_task *task;
};

static void on_park_timer(struct async__timer *tm)
{
    struct async_task *t = ((struct park_timer *)tm)->task;
    enum async__wake why = ASYNC__WAKE_TIMER;

    if (t->deadline >= 0 && async_now_ms() >= t->deadline)
        why = ASYNC__WAKE_DEADLINE;
    if (async__claim(t, why))
        async__schedule(t, false);
}

enum async__wake async__park_abort(struct async_task *t, enum async__wake why)
{
    if (async__claim(t, why))
        return why;
    async__switch_out(t->home, t);
    return (enum async__wake)t->wake_reason;
}

enum async__wake async__park(struct async_task *t, int64_t wake_at)
{
    struct async_worker *w = t->home;
    struct park_timer pt;
    int64_t at = wake_at;

    atomic_thread_fence(memory_order_seq_cst); /* pairs with async_cancel */
    if (async__cancel_pending(t))
        return async__park_abort(t, ASYNC__WAKE_CANCELLED);
    if (t->deadline >= 0 && (at < 0 || t->deadline <= at))
        at = t->deadline;
    if (at >= 0) {
        int64_t now = async_now_ms();

        if (now >= at)
            return async__park_abort(t, t->deadline >= 0 && now >= t->deadline
                                            ? ASYNC__WAKE_DEADLINE
                                            : ASYNC__WAKE_TIMER);
        pt.task = t;
        async__timer_start(&pt.timer, w, at - now, on_park_timer);
    }
    /* The watchers it lingers on stay started while it sleeps; an event on
     * one it is not parked on stops that one then (reactor.c, on_fdw). */
    t->parked = true;
    async__switch_out(w, t);
    t->parked = false;
    if (at >= 0)
        async__timer_stop(&pt.timer);
    return (enum async__wake)t->wake_reason;
}

int async_sleep_ms(uint64_t ms)
{
    struct async_task *t = async__current();
    enum async__wake why;
    int err;

    if (t == NULL) {
        errno = EPERM;
        return -1;
    }
    if ((err = async__check_interrupt(t)) != 0) {
        errno = err;
        return -1;
    }
    if (ms == 0) {
        async_yield();
        return 0;
    }
    if (ms > INT64_MAX / 4)
        ms = INT64_MAX / 4;
    async__park_prepare(t);
    why = async__park(t, async_now_ms() + (int64_t)ms);
    if (why == ASYNC__WAKE_TIMER || why == ASYNC__WAKE_NORMAL)
        return 0;
    errno = async__wake_errno(why);
    return -1;
}
