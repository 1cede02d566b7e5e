/* runtime/fiber/stack — fiber stacks: slabs, guard pages, per-worker pools.
 *
 * Stacks are carved out of slabs of ASYNC__SLAB_STACKS stacks each, one
 * mmap per slab, so a million stacks cost ~16k mappings.  Below every stack
 * lies a guard page: MADV_GUARD_INSTALL (Linux 6.13+) marks it without
 * splitting the mapping; older kernels get mprotect (two mappings per stack)
 * until vm.max_map_count refuses, then canary-only stacks.  Every stack also
 * without a guard carries a canary in its lowest bytes, checked whenever its
 * fiber switches out.
 *
 * A slab is prepared whole when it is mapped: its guards installed and the
 * top page of each stack faulted in, one system call each where the kernel
 * allows (advise.h), so that taking a stack from a pool (warm or freshly
 * refilled) costs neither a system call nor a page fault.  Stacks going
 * back to the arena keep their pages at first (`dirty`: a pool takes
 * those first, warm); their lower pages are released in rows of
 * ASYNC__DIRTY_MAX, one system call each, when that many have gathered or
 * when a worker is about to sleep (async__stack_trim).  Releasing per
 * pool overflow cost one call and one TLB shootdown every 32 exits, a
 * third of the time of a million fibers ending at once.
 *
 * Threading: a pool belongs to one worker and is touched only by its thread.
 * The arena is shared by the runtime's workers and guarded by its mutex; it
 * is entered only when a pool runs dry or overflows.  A new slab is mapped
 * and prepared outside the mutex and linked in under it; `guard` is read
 * and (only ever weakened) written under it.  The lists and `ndirty` are
 * written under it; async__stack_trim peeks at `ndirty` without it (a
 * stale zero only leaves the release to the next trim or drain), and
 * releases a dirty list it took off the arena outside it. */
#ifndef ASYNC_FIBER_STACK_H
#define ASYNC_FIBER_STACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ASYNC__SLAB_STACKS 64
#define ASYNC__POOL_MAX 64          /* stacks a worker keeps before returning some */
#define ASYNC__DIRTY_MAX 512        /* stacks the arena keeps unreleased (advise.h's row) */

struct async__stack {
    void *lo;                   /* lowest usable byte (the canary sits here) */
    size_t size;                /* usable bytes */
    struct async__stack *next;  /* free-list link while unused */
    int guarded;                /* a guard page lies below; else a canary at lo */
};

enum async__guard_mode { ASYNC__GUARD_MADVISE, ASYNC__GUARD_MPROTECT, ASYNC__GUARD_NONE };

struct async__stack_arena {
    pthread_mutex_t lock;
    size_t size;                /* usable bytes per stack, page multiple */
    size_t stride;              /* guard + usable */
    struct async__stack *free;  /* stacks given back, lower pages released */
    struct async__stack *dirty; /* stacks given back, pages as their fibers left them */
    _Atomic unsigned ndirty;    /* length of dirty; written under lock, peeked without */
    struct async__slab *slabs;  /* every slab, for unmapping */
    enum async__guard_mode guard;
};

struct async__stack_pool {
    struct async__stack *free;
    unsigned n;
    struct async__stack_arena *arena;
};

int  async__stack_arena_init(struct async__stack_arena *a, size_t size);
void async__stack_arena_fini(struct async__stack_arena *a);

/* NULL + ENOMEM when no slab can be mapped. */
struct async__stack *async__stack_get(struct async__stack_pool *p);
void async__stack_put(struct async__stack_pool *p, struct async__stack *s);
void async__stack_pool_fini(struct async__stack_pool *p);
/* Releases the lower pages of the arena's dirty stacks: a worker calls it
 * before it sleeps, so that a burst's memory does not stay pinned. */
void async__stack_trim(struct async__stack_arena *a);

/* The canary of unguarded stacks: written when a stack is handed out,
 * checked at switches.  Guarded stacks skip it: touching the lowest page
 * would double the memory of every parked fiber. */
#define ASYNC__CANARY 0x5a17c0dedeadf1beULL
static inline int async__stack_intact(const struct async__stack *s)
{
    return s->guarded || *(const volatile uint64_t *)s->lo == ASYNC__CANARY;
}

/* The guard page of s, for the overflow reporter. */
size_t async__stack_guard_size(void);

#endif
