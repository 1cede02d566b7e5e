/* runtime/sched/runtime — async_runtime: build the workers, run them until
 * the last fiber ends, tear everything down. */
#include "sched.h"

#include "../fiber/overflow.h"
#include "../reactor/reactor.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef ASYNC_ASAN
#define DEFAULT_STACK (256 * 1024)
#else
#define DEFAULT_STACK (64 * 1024)
#endif
#define MIN_STACK (16 * 1024)

static int current_fiber(struct async__fiber_info *out)
{
    struct async_worker *w = async__tls_worker;
    struct async_task *t = w != NULL ? w->current : NULL;

    if (t == NULL || t->stack == NULL)
        return -1;
    out->id = t;
    out->entry = (void *)t->fn;
    out->stack = t->stack;
    return 0;
}

static void *thread_main(void *arg)
{
    struct async_worker *w = arg;
    void *alt = async__overflow_thread_enter();

    async__worker_main(w);
    async__overflow_thread_leave(alt);
    return NULL;
}

static void worker_fini(struct async_worker *w)
{
    async__stack_pool_fini(&w->stacks);
    async__reactor_fini(w);
}

static int worker_init(struct async_rt *rt, unsigned i)
{
    struct async_worker *w = &rt->workers[i];

    memset(w, 0, sizeof(*w));
    w->rt = rt;
    w->index = i;
    w->rng = 0x9e3779b97f4a7c15ULL * (i + 1);
    async__fifo_init(&w->ready);
    async__mpsc_init(&w->mailbox);
    async__fresh_init(&w->fresh);
    w->stacks.arena = &rt->arena;
    return async__reactor_init(w);
}

static void rt_free(struct async_rt *rt, unsigned initialised)
{
    while (initialised-- > 0)
        worker_fini(&rt->workers[initialised]);
    async__stack_arena_fini(&rt->arena);
    pthread_mutex_destroy(&rt->global_lock);
    free(rt->workers);
    free(rt);
}

static struct async_rt *rt_new(const struct async_config *cfg, int *err)
{
    struct async_rt *rt = calloc(1, sizeof(*rt));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t stack = cfg != NULL && cfg->stack_size != 0 ? cfg->stack_size : DEFAULT_STACK;
    unsigned i;

    *err = ENOMEM;
    if (rt == NULL)
        return NULL;
    rt->nworkers = cfg != NULL && cfg->workers != 0 ? cfg->workers : (cpus > 0 ? (unsigned)cpus : 1);
    rt->stack_size = stack < MIN_STACK ? MIN_STACK : stack;
    rt->workers = aligned_alloc(64, sizeof(struct async_worker) * rt->nworkers);
    if (rt->workers == NULL) {
        free(rt);
        return NULL;
    }
    pthread_mutex_init(&rt->global_lock, NULL);
    async__fifo_init(&rt->global);
    async__stack_arena_init(&rt->arena, rt->stack_size);
    for (i = 0; i < rt->nworkers; i++) {
        if ((*err = worker_init(rt, i)) != 0) {
            rt_free(rt, i);
            return NULL;
        }
    }
    return rt;
}

static struct async_task *main_task(async_fn fn, void *arg)
{
    struct async_task *t = async__task_alloc();

    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    t->deadline = -1;
    atomic_store_explicit(&t->woken, 1, memory_order_relaxed);
    atomic_store_explicit(&t->join, ASYNC__JOIN_DETACHED, memory_order_relaxed);
    return t;
}

int async_stats(struct async_stats *st, struct async_worker_stats *per, unsigned n)
{
    struct async_worker *self = async__tls_worker;
    struct async_rt *rt;
    uint64_t spawned = 0, ended = 0;
    unsigned i;

    if (self == NULL) {
        errno = EPERM;
        return -1;
    }
    if (st == NULL || (per == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    rt = self->rt;
    for (i = 0; i < rt->running; i++) { /* the others never ran anything */
        struct async_worker *w = &rt->workers[i];
        uint64_t e = atomic_load_explicit(&w->ended, memory_order_relaxed);

        spawned += atomic_load_explicit(&w->spawned, memory_order_relaxed);
        ended += e;
        if (i < n) {
            per[i].run_queue = atomic_load_explicit(&w->depth, memory_order_relaxed);
            per[i].fibers_ended = e;
        }
    }
    st->workers = rt->running;
    st->fibers_spawned = spawned;
    st->fibers_live = spawned > ended ? spawned - ended : 0;
    st->global_queue = atomic_load_explicit(&rt->global_len, memory_order_relaxed);
    return 0;
}

async_rt *async_runtime_self(void)
{
    struct async_worker *self = async__tls_worker;

    if (self == NULL) {
        errno = EPERM;
        return NULL;
    }
    return self->rt;
}

/* The three loads are not one snapshot: while the worker moves, fn and
 * group may belong to neighbouring fibers.  A watcher acts only on a
 * worker whose beat stood still across samples, and then they agree. */
int async_worker_watch(async_rt *rt, unsigned worker, struct async_worker_watch *out)
{
    struct async_worker *w;

    if (rt == NULL || out == NULL || worker >= rt->running) {
        errno = EINVAL;
        return -1;
    }
    w = &rt->workers[worker];
    out->beat = atomic_load_explicit(&w->beat, memory_order_relaxed);
    out->fn = atomic_load_explicit(&w->running_fn, memory_order_relaxed);
    out->group = out->fn != NULL ? atomic_load_explicit(&w->running_group, memory_order_relaxed)
                                 : NULL;
    return 0;
}

int async_runtime(const struct async_config *cfg, async_fn main_fn, void *arg)
{
    struct async_rt *rt;
    struct async_task *t;
    unsigned i, started;
    void *alt;
    int err;

    if (async__tls_worker != NULL) {
        errno = EBUSY;
        return -1;
    }
    if (main_fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    rt = rt_new(cfg, &err);
    if (rt == NULL) {
        errno = err;
        return -1;
    }
    async__task_mem_runtime(1);
    t = main_task(main_fn, arg);
    if (t == NULL) {
        async__task_mem_runtime(-1);
        rt_free(rt, rt->nworkers);
        errno = ENOMEM;
        return -1;
    }
    atomic_store_explicit(&rt->workers[0].spawned, 1, memory_order_relaxed); /* main */

    async__overflow_install(current_fiber);
    /* A worker whose thread cannot be created just stays empty: nothing is
     * queued on it (async_spawn_on checks rt->running), and stealing from it
     * finds nothing.  The main fiber is queued only once rt->running is
     * known, so every fiber sees it. */
    for (started = 1; started < rt->nworkers; started++)
        if (pthread_create(&rt->workers[started].thread, NULL, thread_main,
                           &rt->workers[started]) != 0)
            break;
    rt->running = started;
    async__fresh_push(&rt->workers[0].fresh, t); /* ours until worker_main */
    alt = async__overflow_thread_enter();
    async__worker_main(&rt->workers[0]);
    async__overflow_thread_leave(alt);
    for (i = 1; i < started; i++)
        pthread_join(rt->workers[i].thread, NULL);
    while (atomic_load_explicit(&rt->foreign_wakers, memory_order_acquire) != 0)
        sched_yield(); /* a helper or plain thread is finishing a wake */
    async__overflow_remove();
    rt_free(rt, rt->nworkers);
    async__task_mem_runtime(-1);
    return 0;
}
