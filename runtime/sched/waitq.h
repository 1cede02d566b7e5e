/* runtime/sched/waitq — the queue of parked fibers inside every sync
 * primitive and group, and the spinlock that guards it.
 *
 * A waiter record (sched.h) lives in the task record of the fiber it
 * describes, which stays parked (so the record stays in use) until someone
 * claims and schedules it.
 * All list operations happen under the owning primitive's spinlock.  A
 * waker pops records until it wins async__claim on one: a record it pops
 * but cannot claim belongs to a fiber that a cancel or a deadline woke
 * first; that fiber finds `linked` false and knows it was dequeued.  The
 * claimer fills in `status` (and the data behind `buf`) before releasing
 * the lock; the woken fiber reads them after it resumes, ordered by the
 * scheduler's queue hand-off.
 *
 * The spinlock only ever guards a few pointer moves and one element copy,
 * and no one parks while holding it. */
#ifndef ASYNC_SCHED_WAITQ_H
#define ASYNC_SCHED_WAITQ_H

#include "sched.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

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
    struct async__waiter *head, *tail;
};

static inline bool async__waitq_empty(const struct async__waitq *q)
{
    return q->head == NULL;
}

static inline void async__waitq_push(struct async__waitq *q, struct async__waiter *w, bool front)
{
    w->linked = true;
    if (front) {
        w->prev = NULL;
        w->next = q->head;
        if (q->head != NULL)
            q->head->prev = w;
        else
            q->tail = w;
        q->head = w;
    } else {
        w->next = NULL;
        w->prev = q->tail;
        if (q->tail != NULL)
            q->tail->next = w;
        else
            q->head = w;
        q->tail = w;
    }
}

static inline void async__waitq_remove(struct async__waitq *q, struct async__waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->linked = false;
}

/* The first waiter that can still be woken, dequeued and claimed, or NULL. */
static inline struct async__waiter *async__waitq_claim(struct async__waitq *q)
{
    struct async__waiter *w;

    while ((w = q->head) != NULL) {
        async__waitq_remove(q, w);
        if (async__claim(w->task, ASYNC__WAKE_NORMAL))
            return w;
    }
    return NULL;
}

/* Wakes every waiter with `status`: claimed under the lock, scheduled by
 * async__waitq_wake_list after it is released.  Returns the list. */
static inline struct async__waiter *async__waitq_claim_all(struct async__waitq *q, int status)
{
    struct async__waiter *list = NULL, *w;

    while ((w = async__waitq_claim(q)) != NULL) {
        w->status = status;
        w->next = list;
        list = w;
    }
    return list;
}

static inline void async__waitq_wake_list(struct async__waiter *list)
{
    while (list != NULL) {
        struct async__waiter *next = list->next;

        async__schedule(list->task, false); /* list is dead after this */
        list = next;
    }
}

/* The calling fiber's waiter, for an element of size bytes at buf (NULL
 * for none): small elements travel inside the record.  An outgoing one is
 * copied in here; an incoming one the caller takes with
 * async__waiter_take once served. */
static inline struct async__waiter *async__waiter_of(struct async_task *self, void *buf,
                                                     size_t size, bool out)
{
    struct async__waiter *w = &self->wait;

    w->task = self;
    w->buf = buf;
    if (buf != NULL && size <= ASYNC__WAIT_INLINE) {
        w->buf = w->elem;
        if (out)
            memcpy(w->elem, buf, size);
    }
    return w;
}

static inline void async__waiter_take(struct async__waiter *w, void *buf, size_t size)
{
    if (w->buf == w->elem)
        memcpy(buf, w->elem, size);
}

/* With l held: queues the calling fiber as w (from async__waiter_of),
 * releases l and parks.  0 once served (see w->status), or ECANCELED /
 * ETIMEDOUT after taking itself off the queue. */
static inline int async__waitq_wait(struct async__waitq *q, async__spinlock *l,
                                    struct async__waiter *w, bool front)
{
    enum async__wake why;

    w->status = 0;
    async__park_prepare(w->task);
    async__waitq_push(q, w, front);
    async__spin_unlock(l);
    why = async__park(w->task, -1);
    if (why == ASYNC__WAKE_NORMAL)
        return 0;
    async__spin_lock(l);
    if (w->linked)
        async__waitq_remove(q, w);
    async__spin_unlock(l);
    return async__wake_errno(why);
}

#endif
