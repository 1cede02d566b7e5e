/* runtime/sched — tasks, workers and who runs next.  Internal to the
 * runtime; the public handles are opaque.
 *
 * Model.  A task is a fiber plus its handle.  It gets a stack when it first
 * runs, on the worker that first runs it (its `home`), and never runs
 * anywhere else.  A task spawned with async_spawn_on or parked at spawn
 * (async__spawn_parked) gets its home before it is queued, and is queued
 * only there.  Each worker owns:
 *   - lifo:    the fiber it just woke, run next (ping-pong stays hot);
 *   - ready:   fibers of this worker, owner only (started ones, and homed
 *              ones that have not started yet);
 *   - fresh:   unstarted fibers, stealable by idle workers;
 *   - mailbox: fibers of this worker woken by other threads;
 * and the runtime has one global queue for overflow and outside spawns.
 *
 * Parking protocol (one "epoch" per parking call):
 *   1. the fiber stores woken = 0 (async__park_prepare), then registers
 *      itself where a waker can find it (under that structure's lock);
 *   2. async__park checks cancellation and deadline and switches away;
 *   3. whoever wants to wake it (a sync primitive, a timer, an fd, a
 *      canceller) must first win async__claim (exchange woken 0 -> 1), set
 *      wake_reason and then async__schedule it.  Exactly one claimer wins
 *      per epoch; losers leave the fiber alone.
 *   A fiber that gives up before parking claims itself; if it loses, a
 *   waker has already scheduled it and it must park once to consume that
 *   wake.  woken == 1 whenever the fiber is not inside an epoch.
 *   Cancellation is a Dekker pair: the canceller stores `cancelled` then a
 *   seq_cst fence then claims; the fiber stores woken = 0, fence, then loads
 *   `cancelled`.  One of them sees the other.
 *   Shielding (async_shield) defers that.  The canceller counts itself in
 *   `cancelling`, stores `cancelled`, fences, and claims only if it then
 *   reads `shielded` false.  A fiber raising its shield stores `shielded`
 *   (seq_cst) and waits until `cancelling` is 0 before it can park: a
 *   canceller that read the shield down has then finished its claim, which
 *   failed, since the running fiber was in no epoch.  Lowering the shield
 *   needs nothing: the next park's fence-then-load sees `cancelled`.
 *   A fiber's wake never runs it on another thread: a claimer on another
 *   thread pushes it to its home's mailbox and wakes that worker. */
#ifndef ASYNC_SCHED_H
#define ASYNC_SCHED_H

#include "../context/context.h"
#include "../fiber/annotate.h"
#include "../fiber/stack.h"
#include "queue.h"

#include <async_io/runtime.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct async_worker;
struct async_group;
struct async__reactor;

enum async__wake {
    ASYNC__WAKE_NORMAL = 0,     /* the awaited thing happened */
    ASYNC__WAKE_TIMER,          /* the park's own timer (sleep) elapsed */
    ASYNC__WAKE_CANCELLED,
    ASYNC__WAKE_DEADLINE,
    ASYNC__WAKE_CLOSED,         /* the primitive it waited on was closed (waitq.h) */
};

/* The join word: NONE, a joiner's address, DETACHED, then at the end
 * REAPING (the reaper is waking the joiner it found) and DONE.  A joiner
 * that gives up (cancel, deadline) and finds REAPING waits for DONE before
 * it parks anywhere else, so the reaper's wake can never land in a later
 * parking call of the same fiber. */
#define ASYNC__JOIN_NONE     ((uintptr_t)0)
#define ASYNC__JOIN_DONE     ((uintptr_t)1)
#define ASYNC__JOIN_DETACHED ((uintptr_t)2)
#define ASYNC__JOIN_REAPING  ((uintptr_t)3)

/* How many fd watchers a fiber keeps started between its waits (reactor.h,
 * async__fdw): two, for a fiber that moves bytes between two sockets. */
#define ASYNC__LINGER 2

/* The record is 144 bytes, carved from dense slabs (task_mem.c): a burst
 * of spawns pays a page of first touches per 28 records, so a field added
 * here costs every spawn; pack it among the flags where it fits. */
struct async_task {
    struct async__node node;        /* run-queue link (must stay first) */
    struct async__ctx ctx;          /* saved context while switched out */
    struct async_worker *home;      /* set when it starts, then fixed */
    struct async__stack *stack;     /* NULL before start and after exit */
    void *linger[ASYNC__LINGER];    /* fd watchers its waits left started, latest first */
    async_fn fn;
    struct async_group *group;      /* NULL or the group it belongs to; next to fn: both
                                     * are published at every switch */
    union {
        void *arg;                  /* until fn is called */
        void *result;               /* once it returned */
    };
    int64_t deadline;               /* async_now_ms scale, -1 none; own fiber only */
    _Atomic uintptr_t join;         /* see ASYNC__JOIN_* */
    struct async_task *gprev, *gnext; /* group membership, under the group's lock */
    /* Its place in a wait queue (waitq.h) while it waits on a sync
     * primitive or a group, under that queue's lock.  In the record, not
     * on the stack: a waker touches this dense record rather than a cold
     * stack page, and a sleeping fiber's stack holds nothing the runtime
     * itself writes from another thread but the element of wait_buf. */
    struct async_task *wait_prev, *wait_next;
    void *wait_buf;                 /* element to give or to receive into, or NULL */
    uint8_t wake_reason;            /* written by the claimer, read after resume */
    bool started;
    _Atomic uint8_t woken;          /* the park token, see above */
    _Atomic bool cancelled;
    _Atomic bool shielded;          /* async_shield: written by the fiber only */
    bool parked;                    /* switched out in async__park (home thread only) */
    bool unguarded;                 /* its stack has a canary, checked at switches */
    bool wait_linked;               /* in a wait queue */
    _Atomic uint16_t cancelling;    /* async_cancel calls in flight on it */
    struct async__annot annot;      /* sanitizer state */
};

struct async_rt;

struct async_worker {
    struct async_rt *rt;
    unsigned index;
    struct async_task *current;     /* running fiber, NULL in the scheduler */
    int *errno_loc;                 /* this thread's errno, saved per fiber */
    struct async_task *lifo;
    struct async__fifo ready;
    unsigned tick;                  /* picks since the reactor was last polled */
    unsigned lifo_streak;           /* lifo picks since pick_local last took from ready */
    bool prefer_fresh;              /* a fiber yielded: start unstarted ones first */
    bool fresh_pending;             /* we queued unstarted fibers since fresh was last empty */
    struct async_task *exited;      /* fiber that just ended, to reap */
    /* Tasks spawned here and tasks ended here.  Written by the owner only
     * (exited with release), summed by idle workers to detect the end:
     * see all_ended() in worker.c. */
    _Atomic unsigned long spawned;
    _Atomic unsigned long ended;
    uint64_t rng;                   /* victim choice */
    struct async__ctx sched_ctx;    /* the worker thread's own stack */
    struct async__annot sched_annot;
    struct async__stack_pool stacks;
    struct async__reactor *reactor;
    void *altstack;
    pthread_t thread;
    _Atomic int sleeping;           /* 1 while (about to be) blocked in the reactor */
    unsigned spin_budget;           /* idle rounds the next spell may spin (owner only) */
    _Atomic size_t depth;           /* runnable here, sampled by the scheduler for async_stats */
    /* For a watcher thread (async_worker_watch), written by the owner only,
     * relaxed: beat grows each time the scheduler loop turns; running_fn
     * and running_group describe the fiber switched in last (NULL fn in
     * the scheduler).  Copies, so that a reader never touches a task that
     * may be freed; a reader may see fn and group of two neighbouring
     * fibers while the worker moves, never while it stands still. */
    _Atomic uint64_t beat;
    _Atomic(async_fn) running_fn;
    _Atomic(struct async_group *) running_group;
    struct async__mpsc mailbox;
    struct async__fresh fresh;
} __attribute__((aligned(64)));

struct async_rt {
    /* read-mostly */
    unsigned nworkers;
    /* Workers whose thread started: 0..running-1.  Written once by the
     * thread in async_runtime before the main fiber is queued; every fiber
     * descends from that push (release) and its pop (acquire), so fibers
     * read it without atomics. */
    unsigned running;
    struct async_worker *workers;
    size_t stack_size;
    struct async__stack_arena arena;
    /* written when workers sleep or wake, read by every spawn */
    _Atomic int nsleeping __attribute__((aligned(64)));
    _Atomic int done;
    /* Threads outside this runtime (helpers, plain threads) inside
     * async__schedule for one of its tasks: the runtime is not freed until
     * they have left, since the task they woke may let it end first. */
    _Atomic int foreign_wakers;
    /* the global queue */
    pthread_mutex_t global_lock __attribute__((aligned(64)));
    struct async__fifo global;
    _Atomic size_t global_len;
};

/* A polite pause inside a spin loop. */
static inline void async__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

extern __thread struct async_worker *async__tls_worker
    __attribute__((tls_model("initial-exec")));

static inline struct async_task *async__current(void)
{
    struct async_worker *w = async__tls_worker;

    return w != NULL ? w->current : NULL;
}

/* ---- parking (park.c) ---- */

/* Release: whoever claims this epoch (acq_rel exchange) must see
 * everything the fiber did before, including its read of the previous
 * epoch's wake_reason, before it writes wake_reason again. */
static inline void async__park_prepare(struct async_task *t)
{
    atomic_store_explicit(&t->woken, 0, memory_order_release);
}

/* Wins the right to wake t in its current epoch. */
static inline bool async__claim(struct async_task *t, enum async__wake reason)
{
    if (atomic_exchange_explicit(&t->woken, 1, memory_order_acq_rel) != 0)
        return false;
    t->wake_reason = (uint8_t)reason;
    return true;
}

/* Makes a claimed task runnable; any thread.  lifo: run it next if it lives
 * on the calling worker. */
void async__schedule(struct async_task *t, bool lifo);

/* Parks the calling fiber (prepared, registered).  wake_at: an absolute
 * async_now_ms time at which to wake with ASYNC__WAKE_TIMER, or -1.
 * Returns the reason it was woken. */
enum async__wake async__park(struct async_task *t, int64_t wake_at);

/* Gives up a prepared park without sleeping, for reason why: returns why
 * if it won its own claim, else the reason of the waker that claimed it
 * first (whose wake it consumes by parking once). */
enum async__wake async__park_abort(struct async_task *t, enum async__wake why);

/* errno for a wake reason that is a failure. */
static inline int async__wake_errno(enum async__wake r)
{
    return r == ASYNC__WAKE_CANCELLED ? ECANCELED : r == ASYNC__WAKE_CLOSED ? EPIPE : ETIMEDOUT;
}

/* Task records (task_mem.c).  alloc returns NULL when memory is out; the
 * record is not initialised.  enter/leave bracket a worker thread's loop;
 * runtime(+1/-1) brackets async_runtime. */
struct async_task *async__task_alloc(void);
void async__task_free(struct async_task *t);
void async__task_mem_enter(void);
void async__task_mem_leave(void);
void async__task_mem_runtime(int delta);

/* Switches away from the running fiber t (already queued or parked). */
void async__switch_out(struct async_worker *w, struct async_task *t);

/* A cancel that applies now: the fiber is cancelled and not shielded.
 * Called by the fiber itself (it alone writes `shielded`). */
static inline bool async__cancel_pending(struct async_task *t)
{
    return atomic_load_explicit(&t->cancelled, memory_order_relaxed) &&
           !atomic_load_explicit(&t->shielded, memory_order_relaxed);
}

/* Checks the running fiber's cancel flag and deadline: 0 or an errno. */
int async__check_interrupt(struct async_task *t);

/* async_spawn into group g (NULL: none). */
async_task *async__spawn_in(async_fn fn, void *arg, struct async_group *g);

/* A detached task in the caller's group, homed on the caller's worker and
 * parked before it ever ran: inside an epoch (woken 0), on no queue.
 * Whoever claims it (a reactor watcher, a canceller) schedules it and it
 * starts on that worker.  Its home, join word and open epoch are set
 * before it enters the group, so a canceller that finds it there sees
 * them.  The caller registers it with its waker, then checks `cancelled`
 * (the group may have been cancelled before it joined) and claims it
 * itself if so.  NULL + EPERM (not a fiber) / EINVAL /
 * ENOMEM. */
async_task *async__spawn_parked(async_fn fn, void *arg);

/* The entry checks of every parking call on a handle: the calling fiber,
 * or NULL with errno EPERM (not a fiber), EINVAL (handle NULL), ECANCELED
 * or ETIMEDOUT. */
static inline struct async_task *async__parking_self(const void *handle)
{
    struct async_task *t = async__current();
    int err;

    if (t == NULL) {
        errno = EPERM;
        return NULL;
    }
    if (handle == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((err = async__check_interrupt(t)) != 0) {
        errno = err;
        return NULL;
    }
    return t;
}

/* Whether workers other than t's own run (a spin for a lock that a fiber
 * elsewhere holds can then pay off).  rt->running is fixed before any
 * fiber runs (see struct async_rt). */
static inline bool async__others_run(const struct async_task *t)
{
    return t->home->rt->running > 1;
}

/* ---- groups (group.c) ---- */
void async__group_enter(struct async_group *g, struct async_task *t);
void async__group_leave(struct async_task *t);

/* ---- worker loop (worker.c) ---- */
void async__worker_main(struct async_worker *w);
void async__notify_idle(struct async_rt *rt);
void async__push_fresh(struct async_worker *w, struct async_task *t);

#endif
