/* runtime/sched/worker — the scheduler loop of one worker thread, and the
 * two ways a fiber leaves the CPU (switch_out, exit).
 *
 * Order of preference when choosing what runs next: the mailbox is first
 * moved to the ready queue, then the lifo slot (bounded streak), the ready
 * queue, our own fresh queue, the global queue, and other workers' fresh
 * queues.  Every ASYNC__TICK picks the worker passes through the scheduler
 * context, which looks at the global queue first and polls the reactor if
 * anything is armed and the last poll is older than ASYNC__POLL_EVERY_NS
 * (see reactor.c), so neither I/O nor outside work starves behind fibers
 * that keep waking each other.  Polling on time rather than on every pass
 * lets the fibers woken by one poll re-arm before the next: a poll that
 * finds their watchers stopped costs libev two epoll_ctl calls per fd. */
#include "sched.h"

#include "../fiber/overflow.h"
#include "../reactor/reactor.h"

#include <errno.h>
#include <stdlib.h>

#define ASYNC__TICK 61          /* picks between maintenance passes */
#define ASYNC__LIFO_MAX 16      /* consecutive lifo picks before fairness */
#define ASYNC__SPIN 64          /* most idle rounds before sleeping in the reactor */
#define ASYNC__GLOBAL_BATCH 32  /* tasks moved from the global queue at once */
#define ASYNC__STEAL_BATCH 4    /* a busy victim's queue must be this long... */
#define ASYNC__STEAL_PATIENCE 16 /* ...until we have spun this many rounds */
#define ASYNC__NOMEM_NAP 0.001  /* seconds a worker waits when no stack is free */

__thread struct async_worker *async__tls_worker __attribute__((tls_model("initial-exec")));

static inline struct async_task *task_of(struct async__node *n)
{
    return (struct async_task *)n; /* node is the first member */
}

static _Noreturn void overflowed(struct async_task *t)
{
    struct async__fiber_info f = {.id = t, .entry = (void *)t->fn, .stack = t->stack};

    async__overflow_report(&f);
}

/* Unguarded stacks: a smashed canary, or a frame already below it.  Out
 * of line so that the switch path needs no frame pointer of its own. */
static __attribute__((noinline, cold)) void check_canary(struct async_task *t)
{
    const uint64_t *canary = t->stack->lo;

    if (*canary != ASYNC__CANARY ||
        (const char *)__builtin_frame_address(0) < (const char *)canary + 256)
        overflowed(t);
}

void async__schedule(struct async_task *t, bool lifo)
{
    struct async_worker *w = async__tls_worker;
    struct async_worker *home = t->home;

    if (home == w) {
        if (lifo) {
            if (w->lifo != NULL)
                async__fifo_push(&w->ready, &w->lifo->node);
            w->lifo = t;
        } else {
            async__fifo_push(&w->ready, &t->node);
        }
        return;
    }
    /* Same runtime?  Compare against our own worker array rather than read
     * home->rt, which shares a cache line with home's hottest fields. */
    if (w != NULL && (uintptr_t)home - (uintptr_t)w->rt->workers <
                         (uintptr_t)w->rt->nworkers * sizeof(*home)) {
        async__mpsc_push(&home->mailbox, &t->node);
        if (atomic_load_explicit(&home->sleeping, memory_order_seq_cst) != 0)
            async__reactor_notify(home);
        return;
    }
    /* From outside the runtime: announce ourselves before the push makes
     * t runnable (the push's release carries the increment), leave after
     * the last touch of home. */
    struct async_rt *rt = home->rt;

    atomic_fetch_add_explicit(&rt->foreign_wakers, 1, memory_order_relaxed);
    async__mpsc_push(&home->mailbox, &t->node);
    if (atomic_load_explicit(&home->sleeping, memory_order_seq_cst) != 0)
        async__reactor_notify(home);
    atomic_fetch_sub_explicit(&rt->foreign_wakers, 1, memory_order_release);
}

static void fiber_entry(void *arg);

static int start(struct async_worker *w, struct async_task *t)
{
    struct async__stack *s = async__stack_get(&w->stacks);

    if (s == NULL)
        return ENOMEM;
    t->stack = s;
    t->unguarded = !s->guarded;
    t->home = w;
    t->started = true;
    async__fdw_spawn_starts(t);
    async__annot_fiber_new(&t->annot, s->lo, s->size);
    async__ctx_make(&t->ctx, s->lo, s->size, fiber_entry, t);
    return 0;
}

/* A started fiber of this worker to switch to directly, or NULL to go
 * through the scheduler (nothing local, or time for maintenance). */
static struct async_task *pick_local(struct async_worker *w)
{
    struct async_task *t = w->lifo;
    struct async__node *n;

    if (++w->tick >= ASYNC__TICK)
        return NULL;
    if (t != NULL) {
        w->lifo = NULL;
        if (w->lifo_streak++ < ASYNC__LIFO_MAX)
            return t;
        async__fifo_push(&w->ready, &t->node);
    }
    if (w->lifo_streak != 0)
        w->lifo_streak = 0;
    n = async__fifo_pop(&w->ready);
    if (n == NULL)
        n = async__mpsc_pop(&w->mailbox);
    if (n == NULL)
        return NULL;
    t = task_of(n);
    /* A parked spawn (async__spawn_parked) is woken into these queues
     * before it ever ran: give it its stack here. */
    if (!t->started && start(w, t) != 0) {
        async__fifo_push(&w->ready, &t->node);
        return NULL;
    }
    return t;
}

/* From the running fiber t to next, or to the scheduler when next is
 * NULL; returns when t is resumed.  saved_errno is t's errno, read before
 * the caller chose next (starting a fiber may set errno); it is kept in
 * this frame, which the switch keeps anyway.
 *
 * w->current is set to next (or NULL for the scheduler) before the
 * switch, not by next after it: a store that the resumed fiber's next park would load at
 * once measured 1.5 ns a switch.  The price: a stack overflow in the
 * switch's own two pushes (the last 16 bytes above the guard page) does not
 * match current's stack, so it is reported as a plain SIGSEGV, not by
 * name. */
/* Publishes the fiber about to run for async_worker_watch. */
static inline void watched(struct async_worker *w, const struct async_task *t)
{
    atomic_store_explicit(&w->running_fn, t->fn, memory_order_relaxed);
    atomic_store_explicit(&w->running_group, t->group, memory_order_relaxed);
}

static inline __attribute__((always_inline)) void switch_to(struct async_worker *w,
                                                            struct async_task *t,
                                                            struct async_task *next,
                                                            int saved_errno)
{
    if (t->unguarded)
        check_canary(t);
    if (next != NULL) {
        w->current = next;
        watched(w, next);
        async__annot_leave(&t->annot, &next->annot, 0);
        async__ctx_switch(&t->ctx, &next->ctx);
    } else {
        w->current = NULL;
        atomic_store_explicit(&w->running_fn, NULL, memory_order_relaxed);
        async__annot_leave(&t->annot, &w->sched_annot, 0);
        async__ctx_switch(&t->ctx, &w->sched_ctx);
    }
    async__annot_enter(&t->annot);
    /* Store only when it differs: fibers that leave errno alone then form
     * no store-to-load chain through it from one switch to the next. */
    if (*w->errno_loc != saved_errno)
        *w->errno_loc = saved_errno;
}

/* prefer_fresh is never set here: async_yield sets it only on its way to
 * the scheduler, and next_task clears it before any fiber runs. */
void async__switch_out(struct async_worker *w, struct async_task *t)
{
    int saved_errno = *w->errno_loc;

    switch_to(w, t, pick_local(w), saved_errno);
}

/* t goes behind everything runnable here.  Yielding is an offer to
 * everything runnable, unstarted fibers included; those are started only
 * by the scheduler, so when some are queued (fresh_pending, a hint on our
 * own hot line rather than the queue's) t goes through it.  Otherwise the
 * common case, started fibers in the ready list and no lifo or
 * maintenance due, takes the head and appends t in one step.  prefer_fresh
 * implies fresh_pending until next_task clears both, so the fast path
 * need not test it.  It leaves lifo_streak alone: a streak that outlives
 * a yield only ends the next lifo run sooner (resetting it here cost
 * 0.3 ns a switch). */
void async_yield(void)
{
    struct async_worker *w = async__tls_worker;
    struct async_task *t = w != NULL ? w->current : NULL;
    struct async_task *next;
    int saved_errno;

    if (t == NULL)
        return;
    saved_errno = *w->errno_loc;
    if (__builtin_expect(!w->fresh_pending && w->lifo == NULL && w->ready.head != NULL &&
                             ++w->tick < ASYNC__TICK,
                         1)) {
        next = task_of(async__fifo_rotate(&w->ready, &t->node));
        if (__builtin_expect(next->started, 1) || start(w, next) == 0) {
            switch_to(w, t, next, saved_errno);
            return;
        }
        async__fifo_push(&w->ready, &next->node); /* no stack for it now */
        switch_to(w, t, NULL, saved_errno);
        return;
    }
    if (w->fresh_pending)
        w->prefer_fresh = true;
    async__fifo_push(&w->ready, &t->node);
    switch_to(w, t, w->prefer_fresh ? NULL : pick_local(w), saved_errno);
}

/* The bottom of every fiber's stack. */
static void fiber_entry(void *arg)
{
    struct async_task *t = arg;
    struct async_worker *w;

    async__annot_enter(&t->annot);
    errno = 0;
    t->result = t->fn(t->arg);
    async__fdw_release(t); /* its loop must not keep a watcher for it */
    w = t->home;
    if (!async__stack_intact(t->stack))
        overflowed(t);
    w->exited = t; /* run() clears current once back on the scheduler's stack */
    async__annot_leave(&t->annot, &w->sched_annot, 1);
    async__ctx_switch(&t->ctx, &w->sched_ctx);
    __builtin_unreachable();
}

/* Whether every task ever spawned has ended.  Sums the ended counters
 * first, then the spawned ones.  Every end we see was preceded by its
 * spawn, and that spawn is visible to us (spawn -> queue release -> run ->
 * ended release -> our acquire), so ends <= spawns.  If they are equal,
 * every task whose spawn we saw has ended; the main task's spawn is always
 * seen, and everything a task spawned was spawned before it ended, so by
 * induction nothing is alive and nothing can be spawned again. */
static bool all_ended(struct async_rt *rt)
{
    unsigned long ended = 0, spawned = 0;
    unsigned i;

    for (i = 0; i < rt->nworkers; i++)
        ended += atomic_load_explicit(&rt->workers[i].ended, memory_order_acquire);
    for (i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
    return ended == spawned;
}

/* The runtime is over: every worker leaves its loop. */
static void finish(struct async_worker *w)
{
    struct async_rt *rt = w->rt;
    unsigned i;

    atomic_store_explicit(&rt->done, 1, memory_order_release);
    for (i = 0; i < rt->nworkers; i++)
        if (&rt->workers[i] != w)
            async__reactor_notify(&rt->workers[i]);
}

/* After a fiber's last switch: its stack is free, its joiner may run. */
static void reap(struct async_worker *w)
{
    struct async_task *t = w->exited;
    uintptr_t old;

    w->exited = NULL;
    async__annot_fiber_free(&t->annot);
    async__stack_put(&w->stacks, t->stack);
    t->stack = NULL;
    if (t->group != NULL)
        async__group_leave(t);
    /* Last touches of t: once DONE is published a joiner may free it. */
    old = atomic_exchange_explicit(&t->join, ASYNC__JOIN_REAPING, memory_order_acq_rel);
    if (old == ASYNC__JOIN_DETACHED) {
        async__task_free(t);
    } else {
        struct async_task *joiner = NULL;
        uintptr_t reaping = ASYNC__JOIN_REAPING;

        if (old != ASYNC__JOIN_NONE && async__claim((struct async_task *)old, ASYNC__WAKE_NORMAL))
            joiner = (struct async_task *)old;
        if (!atomic_compare_exchange_strong_explicit(&t->join, &reaping, ASYNC__JOIN_DONE,
                                                     memory_order_acq_rel, memory_order_acquire))
            async__task_free(t); /* detached while we were reaping */
        if (joiner != NULL)
            async__schedule(joiner, true);
    }
    atomic_store_explicit(&w->ended, atomic_load_explicit(&w->ended, memory_order_relaxed) + 1,
                          memory_order_release);
}


static void global_push_batch(struct async_rt *rt, struct async_task **ts, unsigned n)
{
    unsigned i;

    pthread_mutex_lock(&rt->global_lock);
    for (i = 0; i < n; i++)
        async__fifo_push(&rt->global, &ts[i]->node);
    atomic_fetch_add_explicit(&rt->global_len, n, memory_order_release);
    pthread_mutex_unlock(&rt->global_lock);
}

/* Takes a batch from the global queue: one to run, the rest into fresh. */
static struct async_task *global_take(struct async_worker *w)
{
    struct async_rt *rt = w->rt;
    struct async_task *first = NULL;
    size_t n, i;

    if (atomic_load_explicit(&rt->global_len, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&rt->global_lock);
    n = rt->global.len / rt->nworkers + 1;
    if (n > ASYNC__GLOBAL_BATCH)
        n = ASYNC__GLOBAL_BATCH;
    for (i = 0; i < n; i++) {
        struct async__node *node = async__fifo_pop(&rt->global);

        if (node == NULL)
            break;
        if (first == NULL)
            first = task_of(node);
        else if (!async__fresh_push(&w->fresh, task_of(node))) {
            async__fifo_push(&rt->global, node); /* full: leave it there */
            break;
        }
    }
    atomic_store_explicit(&rt->global_len, rt->global.len, memory_order_relaxed);
    pthread_mutex_unlock(&rt->global_lock);
    return first;
}

static struct async_task *steal(struct async_worker *w, unsigned min)
{
    struct async_rt *rt = w->rt;
    unsigned n = rt->nworkers, i, start;

    if (n < 2)
        return NULL;
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    start = (unsigned)(w->rng % n);
    for (i = 0; i < n; i++) {
        struct async_worker *v = &rt->workers[(start + i) % n];
        struct async_task *t;

        if (v == w)
            continue;
        t = async__fresh_steal(&v->fresh, &w->fresh, min);
        if (t != NULL)
            return t;
    }
    return NULL;
}

void async__notify_idle(struct async_rt *rt)
{
    unsigned i;

    atomic_thread_fence(memory_order_seq_cst); /* pairs with idle()'s fence */
    if (atomic_load_explicit(&rt->nsleeping, memory_order_relaxed) == 0)
        return;
    for (i = 0; i < rt->nworkers; i++) {
        struct async_worker *v = &rt->workers[i];
        int one = 1;

        if (atomic_compare_exchange_strong_explicit(&v->sleeping, &one, 2, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            async__reactor_notify(v);
            return;
        }
    }
}

/* Spawned tasks go to the worker's fresh queue; when it is full, half of
 * it moves to the global queue where anyone can take it. */
void async__push_fresh(struct async_worker *w, struct async_task *t)
{
    struct async_task *batch[ASYNC__FRESH_CAP / 2 + 1];
    unsigned n;

    w->fresh_pending = true;
    if (!async__fresh_push(&w->fresh, t)) {
        n = async__fresh_take(&w->fresh, batch, ASYNC__FRESH_CAP / 2);
        batch[n++] = t;
        global_push_batch(w->rt, batch, n);
    }
    async__notify_idle(w->rt);
}

static void push_global(struct async_rt *rt, struct async_task *t)
{
    global_push_batch(rt, &t, 1);
    async__notify_idle(rt);
}

static void drain_mailbox(struct async_worker *w)
{
    struct async__node *n;

    while ((n = async__mpsc_pop(&w->mailbox)) != NULL)
        async__fifo_push(&w->ready, n);
}

static struct async_task *next_task(struct async_worker *w)
{
    struct async_task *t = NULL;
    struct async__node *n;

    drain_mailbox(w);
    atomic_store_explicit(&w->beat, atomic_load_explicit(&w->beat, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&w->depth, w->ready.len + async__fresh_len(&w->fresh) + (w->lifo != NULL),
                          memory_order_relaxed);
    /* Fairness: every ASYNC__TICK picks, and after a yield, outside and
     * unstarted work goes before the fibers that keep waking each other. */
    if (w->tick >= ASYNC__TICK || w->prefer_fresh) {
        w->prefer_fresh = false;
        if (w->tick >= ASYNC__TICK) {
            w->tick = 0;
            if (async__reactor_armed(w) && async__reactor_due(w)) {
                async__reactor_poll(w, false);
                drain_mailbox(w);
            }
            if ((t = global_take(w)) != NULL)
                return t;
        }
        if ((t = async__fresh_pop(&w->fresh)) != NULL)
            return t;
        w->fresh_pending = false;
    }
    w->tick++;
    if ((t = w->lifo) != NULL) {
        w->lifo = NULL;
        return t;
    }
    if ((n = async__fifo_pop(&w->ready)) != NULL)
        return task_of(n);
    if ((t = async__fresh_pop(&w->fresh)) != NULL)
        return t;
    w->fresh_pending = false;
    if ((t = global_take(w)) != NULL)
        return t;
    return steal(w, ASYNC__STEAL_BATCH);
}

static void run(struct async_worker *w, struct async_task *t)
{
    if (!t->started && start(w, t) != 0) {
        /* No memory for a stack: put it back and wait for some to free.  A
         * parked spawn (its watcher lives in our loop) or a fiber spawned
         * on this worker keeps its home. */
        if (t->home != NULL)
            async__fifo_push(&w->ready, &t->node);
        else
            push_global(w->rt, t);
        /* Nothing else to run here: wait a little for stacks to come back
         * (or another worker to take it) rather than spin on it. */
        if (w->lifo == NULL &&
            (w->ready.head == NULL || (w->ready.head == &t->node && w->ready.tail == &t->node)))
            async__reactor_nap(w, ASYNC__NOMEM_NAP);
        else
            async__reactor_poll(w, false);
        return;
    }
    w->current = t;
    watched(w, t);
    async__annot_leave(&w->sched_annot, &t->annot, 0);
    async__ctx_switch(&w->sched_ctx, &t->ctx);
    async__annot_enter(&w->sched_annot);
    w->current = NULL;
    atomic_store_explicit(&w->running_fn, NULL, memory_order_relaxed);
    if (w->exited != NULL)
        reap(w);
}

static bool has_work(struct async_worker *w)
{
    struct async_rt *rt = w->rt;
    unsigned i;

    if (!async__mpsc_empty(&w->mailbox) ||
        atomic_load_explicit(&rt->global_len, memory_order_relaxed) != 0)
        return true;
    for (i = 0; i < rt->nworkers; i++)
        if (async__fresh_len(&rt->workers[i].fresh) != 0)
            return true;
    return false;
}

/* Nothing to run: spin a little, then sleep in the reactor until an fd, a
 * timer or another thread wakes us.  Returns a task to run, or NULL with
 * *over set once the runtime has ended.
 *
 * While spinning we first leave a busy worker's short queue alone (it will
 * get to those tasks itself, and stealing one task at a time makes both
 * cores fight over its queue and the tasks' cache lines); after
 * ASYNC__STEAL_PATIENCE rounds anything is fair game. */
static struct async_task *idle(struct async_worker *w, bool *over)
{
    struct async_rt *rt = w->rt;
    struct async_task *t;
    unsigned i, k;
    bool slept = false;

    if (atomic_load_explicit(&rt->done, memory_order_acquire)) {
        *over = true;
        return NULL;
    }
    if (all_ended(rt)) {
        finish(w);
        *over = true;
        return NULL;
    }
    /* Our own events first, before a spin looks elsewhere; with no spin
     * to come, the sleep below polls them anyway (one epoll_wait, not a
     * non-blocking one and then a blocking one). */
    if (async__reactor_armed(w) && rt->nworkers > 1 && w->spin_budget > 0) {
        async__reactor_poll(w, false);
        if (w->lifo != NULL || w->ready.len != 0)
            return NULL;
    }
    /* Spinning only pays when another worker may hand us work soon; alone,
     * we would only burn the CPU that the rest of the machine (a client on
     * the same host, say) could use.  And it pays only while it finds
     * work: a spell that finds nothing halves the next one, down to none
     * (workers whose fibers only wait on their own sockets then sleep at
     * once); a spell that finds work, or a sleep that another worker's
     * work ends, gives the next one the full length again. */
    for (i = 0; rt->nworkers > 1 && i < w->spin_budget; i++) {
        if (!async__mpsc_empty(&w->mailbox) ||
            atomic_load_explicit(&rt->global_len, memory_order_relaxed) != 0) {
            w->spin_budget = ASYNC__SPIN;
            return NULL;
        }
        t = steal(w, i < ASYNC__STEAL_PATIENCE ? ASYNC__STEAL_BATCH : 1);
        if (t != NULL) {
            w->spin_budget = ASYNC__SPIN;
            return t;
        }
        for (k = 0; k < 16; k++) /* keep our polling off the owners' lines */
            async__cpu_relax();
    }
    w->spin_budget /= 2;
    atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->nsleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with notify_idle / schedule */
    /* Work from another worker (mailbox, global or fresh queues; the
     * reactor's own events do not count) that arrives as we give up, or
     * wakes us, is work a spin would have caught. */
    if (has_work(w))
        w->spin_budget = ASYNC__SPIN;
    else if (!atomic_load_explicit(&rt->done, memory_order_acquire)) {
        async__stack_trim(&rt->arena);
        async__reactor_poll(w, true);
        slept = true;
    }
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&rt->nsleeping, 1, memory_order_relaxed);
    if (slept && has_work(w)) /* awake again first: notify_idle wakes another */
        w->spin_budget = ASYNC__SPIN;
    return NULL;
}

void async__worker_main(struct async_worker *w)
{
    async__tls_worker = w;
    w->errno_loc = &errno;
    w->spin_budget = ASYNC__SPIN;
    async__annot_thread(&w->sched_annot);
    async__task_mem_enter();
    for (;;) {
        struct async_task *t = next_task(w);
        bool over = false;

        if (t == NULL && (t = idle(w, &over)) == NULL) {
            if (over)
                break;
            continue;
        }
        run(w, t);
    }
    async__task_mem_leave();
    async__tls_worker = NULL;
}
