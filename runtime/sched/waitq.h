/* runtime/sched/waitq — the queue of parked fibers inside every sync
 * primitive and group, and the spinlock that guards it.
 *
 * A queue links the task records of its fibers (wait_prev, wait_next in
 * sched.h); a fiber waits on one queue at a time and stays parked, so its
 * links stay in use, until someone claims and schedules it.  All list
 * operations happen under the owning primitive's spinlock.  A waker pops
 * fibers until it wins async__claim on one: a fiber it pops but cannot
 * claim was woken first by a cancel or a deadline, and finds wait_linked
 * false, so it knows it was dequeued.  The claimer copies the element
 * behind wait_buf before releasing the lock, and says "closed" through
 * the wake reason (ASYNC__WAKE_CLOSED); the woken fiber reads them after
 * it resumes, ordered by the scheduler's queue hand-off.
 *
 * The spinlock only ever guards a few pointer moves and one element copy,
 * and no one parks while holding it. */
#ifndef ASYNC_SCHED_WAITQ_H
#define ASYNC_SCHED_WAITQ_H

#include "sched.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct {
    atomic_int held;
} async__spinlock;

static inline void async__spin_lock(async__spinlock *l)
{
    unsigned spins = 0;

    while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire) != 0) {
        while (atomic_load_explicit(&l->held, memory_order_relaxed) != 0) {
            if (++spins < 128)
                async__cpu_relax();
            else
                sched_yield(); /* the holder was preempted */
        }
    }
}

static inline void async__spin_unlock(async__spinlock *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

struct async__waitq {
    struct async_task *head, *tail;
};

static inline bool async__waitq_empty(const struct async__waitq *q)
{
    return q->head == NULL;
}

static inline void async__waitq_push(struct async__waitq *q, struct async_task *t, bool front)
{
    t->wait_linked = true;
    if (front) {
        t->wait_prev = NULL;
        t->wait_next = q->head;
        if (q->head != NULL)
            q->head->wait_prev = t;
        else
            q->tail = t;
        q->head = t;
    } else {
        t->wait_next = NULL;
        t->wait_prev = q->tail;
        if (q->tail != NULL)
            q->tail->wait_next = t;
        else
            q->head = t;
        q->tail = t;
    }
}

static inline void async__waitq_remove(struct async__waitq *q, struct async_task *t)
{
    if (t->wait_prev != NULL)
        t->wait_prev->wait_next = t->wait_next;
    else
        q->head = t->wait_next;
    if (t->wait_next != NULL)
        t->wait_next->wait_prev = t->wait_prev;
    else
        q->tail = t->wait_prev;
    t->wait_linked = false;
}

/* The first waiting fiber that can still be woken, dequeued and claimed
 * with `reason`, or NULL. */
static inline struct async_task *async__waitq_claim(struct async__waitq *q, enum async__wake reason)
{
    struct async_task *t;

    while ((t = q->head) != NULL) {
        async__waitq_remove(q, t);
        if (async__claim(t, reason))
            return t;
    }
    return NULL;
}

/* Wakes every waiting fiber with `reason`: claimed under the lock,
 * scheduled by async__waitq_wake_list after it is released.  Returns the
 * list, linked through wait_next. */
static inline struct async_task *async__waitq_claim_all(struct async__waitq *q,
                                                        enum async__wake reason)
{
    struct async_task *list = NULL, *t;

    while ((t = async__waitq_claim(q, reason)) != NULL) {
        t->wait_next = list;
        list = t;
    }
    return list;
}

static inline void async__waitq_wake_list(struct async_task *list)
{
    while (list != NULL) {
        struct async_task *next = list->wait_next;

        async__schedule(list, false); /* list may run, and wait again, from here on */
        list = next;
    }
}

/* With l held: queues the calling fiber, whose element to give or to
 * receive into is buf (NULL for none), releases l and parks.  0 once
 * served, EPIPE when the primitive was closed, or ECANCELED / ETIMEDOUT
 * after taking itself off the queue. */
static inline int async__waitq_wait(struct async__waitq *q, async__spinlock *l,
                                    struct async_task *self, void *buf, bool front)
{
    enum async__wake why;

    self->wait_buf = buf;
    async__park_prepare(self);
    async__waitq_push(q, self, front);
    async__spin_unlock(l);
    why = async__park(self, -1);
    if (why == ASYNC__WAKE_NORMAL)
        return 0;
    if (why != ASYNC__WAKE_CLOSED) {
        async__spin_lock(l);
        if (self->wait_linked)
            async__waitq_remove(q, self);
        async__spin_unlock(l);
    }
    return async__wake_errno(why);
}

#endif
