/* runtime/sched/task — the public life cycle of a task: spawn, join,
 * detach, cancel, yield, deadline. */
#include "sched.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

/* A new task of worker w, counted and in group g, not queued anywhere.
 * parked: a parked spawn (see async__spawn_parked), whose home, join word
 * and open epoch are set before it joins the group, so that a canceller
 * finding it there (under the group's lock) sees them. */
static async_task *task_new(struct async_worker *w, async_fn fn, void *arg, struct async_group *g,
                            bool parked)
{
    struct async_task *t;

    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (w == NULL) {
        errno = EPERM;
        return NULL;
    }
    t = async__task_alloc();
    if (t == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_store_explicit(&t->node.next, NULL, memory_order_relaxed);
    t->ctx.sp = NULL;
    t->home = parked ? w : NULL;
    t->stack = NULL;
    t->fn = fn;
    t->arg = arg;                   /* result shares its place */
    t->wake_reason = ASYNC__WAKE_NORMAL;
    t->started = false;
    atomic_store_explicit(&t->woken, parked ? 0 : 1, memory_order_relaxed);
    atomic_store_explicit(&t->cancelled, false, memory_order_relaxed);
    atomic_store_explicit(&t->shielded, false, memory_order_relaxed);
    atomic_store_explicit(&t->cancelling, 0, memory_order_relaxed);
    t->deadline = -1;
    atomic_store_explicit(&t->join, parked ? ASYNC__JOIN_DETACHED : ASYNC__JOIN_NONE,
                          memory_order_relaxed);
    t->group = NULL;
    t->linger[0] = t->linger[1] = NULL;
    t->parked = false;
    if (g != NULL)
        async__group_enter(g, t);
    /* Owner-only counter: a plain increment, ordered for the end-of-runtime
     * check by the release of the push that makes t runnable (or, for a
     * parked spawn, by the release of its creator's own end). */
    atomic_store_explicit(&w->spawned, atomic_load_explicit(&w->spawned, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return t;
}

async_task *async__spawn_in(async_fn fn, void *arg, struct async_group *g)
{
    struct async_worker *w = async__tls_worker;
    struct async_task *t = task_new(w, fn, arg, g, false);

    if (t != NULL)
        async__push_fresh(w, t);
    return t;
}

async_task *async__spawn_parked(async_fn fn, void *arg)
{
    struct async_task *self = async__current();

    if (self == NULL) {
        errno = EPERM;
        return NULL;
    }
    /* pre-homed: every wake queues it on the caller's worker */
    return task_new(self->home, fn, arg, self->group, true);
}

async_task *async_spawn(async_fn fn, void *arg)
{
    struct async_task *self = async__current();

    return async__spawn_in(fn, arg, self != NULL ? self->group : NULL);
}

async_task *async_spawn_on(unsigned worker, async_fn fn, void *arg)
{
    struct async_worker *w = async__tls_worker;
    struct async_task *self = async__current();
    struct async_task *t;

    if (fn != NULL && w != NULL && worker >= w->rt->running) {
        errno = EINVAL;
        return NULL;
    }
    t = task_new(w, fn, arg, self != NULL ? self->group : NULL, false);
    if (t == NULL)
        return NULL;
    /* Homed before anyone can see it: it is queued on that worker only
     * (never in a stealable queue) and started there. */
    t->home = &w->rt->workers[worker];
    async__schedule(t, false);
    return t;
}

int async_workers(void)
{
    struct async_worker *w = async__tls_worker;

    if (w == NULL) {
        errno = EPERM;
        return -1;
    }
    return (int)w->rt->running;
}

int async_worker_id(void)
{
    struct async_worker *w = async__tls_worker;

    if (w == NULL) {
        errno = EPERM;
        return -1;
    }
    return (int)w->index;
}

int async__check_interrupt(struct async_task *t)
{
    if (async__cancel_pending(t))
        return ECANCELED;
    if (t->deadline >= 0 && async_now_ms() >= t->deadline)
        return ETIMEDOUT;
    return 0;
}

static void collect(async_task *t, void **result)
{
    if (result != NULL)
        *result = t->result;
    async__task_free(t);
}

/* Waits out the few instructions between the reaper's two steps. */
static uintptr_t settled(async_task *t)
{
    uintptr_t j;
    unsigned spins = 0;

    while ((j = atomic_load_explicit(&t->join, memory_order_acquire)) == ASYNC__JOIN_REAPING) {
        if (++spins > 1000)
            sched_yield(); /* the reaper's thread was preempted */
    }
    return j;
}

int async_join(async_task *t, void **result)
{
    struct async_task *self = async__current();
    enum async__wake why;
    uintptr_t j;
    int err;

    if (self == NULL) {
        errno = EPERM;
        return -1;
    }
    if (t == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (t == self) {
        errno = EDEADLK;
        return -1;
    }
    if ((err = async__check_interrupt(self)) != 0) {
        errno = err;
        return -1;
    }
    for (;;) {
        j = settled(t);
        if (j == ASYNC__JOIN_DONE) {
            collect(t, result);
            return 0;
        }
        if (j != ASYNC__JOIN_NONE) {
            errno = EINVAL; /* someone else is joining it (or it was detached) */
            return -1;
        }
        async__park_prepare(self);
        if (atomic_compare_exchange_strong_explicit(&t->join, &j, (uintptr_t)self,
                                                    memory_order_acq_rel, memory_order_acquire))
            break;
        async__park_abort(self, ASYNC__WAKE_NORMAL); /* it ended meanwhile: look again */
    }
    why = async__park(self, -1);
    if (why == ASYNC__WAKE_NORMAL) {
        collect(t, result); /* the reaper published DONE before waking us */
        return 0;
    }
    /* Stop waiting.  If the reaper already took our address, let it finish
     * its (failing) attempt to wake us; t then says DONE and stays valid
     * for the next join. */
    j = (uintptr_t)self;
    if (!atomic_compare_exchange_strong_explicit(&t->join, &j, ASYNC__JOIN_NONE,
                                                 memory_order_acq_rel, memory_order_acquire))
        settled(t);
    errno = async__wake_errno(why);
    return -1;
}

void async_detach(async_task *t)
{
    /* REAPING: the reaper sees DETACHED when it tries to publish DONE and
     * frees t itself. */
    if (t == NULL)
        return;
    if (atomic_exchange_explicit(&t->join, ASYNC__JOIN_DETACHED, memory_order_acq_rel) ==
        ASYNC__JOIN_DONE)
        async__task_free(t);
}

int async_cancel(async_task *t)
{
    if (t == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* The handle stays valid throughout: the caller holds it, or the
     * group's lock keeps its member from being freed. */
    atomic_fetch_add_explicit(&t->cancelling, 1, memory_order_seq_cst);
    atomic_store_explicit(&t->cancelled, true, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with async__park */
    if (!atomic_load_explicit(&t->shielded, memory_order_relaxed) &&
        async__claim(t, ASYNC__WAKE_CANCELLED))
        async__schedule(t, false);
    atomic_fetch_sub_explicit(&t->cancelling, 1, memory_order_release);
    return 0;
}

int async_shield(int on)
{
    struct async_task *t = async__current();
    unsigned spins = 0;
    int old;

    if (t == NULL) {
        errno = EPERM;
        return -1;
    }
    old = atomic_load_explicit(&t->shielded, memory_order_relaxed);
    atomic_store_explicit(&t->shielded, on != 0, memory_order_seq_cst);
    /* See sched.h: no canceller that missed the shield may still claim. */
    while (on && atomic_load_explicit(&t->cancelling, memory_order_seq_cst) != 0)
        if (++spins > 1000)
            sched_yield();
    return old;
}

int async_cancelled(void)
{
    struct async_task *t = async__current();

    if (t == NULL) {
        errno = EPERM;
        return -1;
    }
    return atomic_load_explicit(&t->cancelled, memory_order_relaxed) ? 1 : 0;
}

int64_t async_deadline(int64_t at_ms)
{
    struct async_task *t = async__current();
    int64_t old;

    if (t == NULL)
        return -1;
    old = t->deadline;
    t->deadline = at_ms < 0 ? -1 : at_ms;
    return old;
}
