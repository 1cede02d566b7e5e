#include "stack.h"
#include "annotate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  /* Linux 6.13 uapi; older headers lack it */
#endif

struct async__slab {
    struct async__slab *next;
    void *base;
    size_t len;
};

static size_t page_size(void)
{
    static size_t ps;

    if (ps == 0)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

size_t async__stack_guard_size(void)
{
    return page_size();
}

int async__stack_arena_init(struct async__stack_arena *a, size_t size)
{
    size_t ps = page_size();

    a->size = (size + ps - 1) & ~(ps - 1);
    a->stride = a->size + ps;
    a->free = NULL;
    a->slabs = NULL;
    a->guard = ASYNC__GUARD_MADVISE;
    /* For tests and old-kernel drills: start from a weaker guard. */
    const char *mode = getenv("ASYNC_IO_STACK_GUARD");
    if (mode != NULL && strcmp(mode, "mprotect") == 0)
        a->guard = ASYNC__GUARD_MPROTECT;
    else if (mode != NULL && strcmp(mode, "canary") == 0)
        a->guard = ASYNC__GUARD_NONE;
    return pthread_mutex_init(&a->lock, NULL);
}

void async__stack_arena_fini(struct async__stack_arena *a)
{
    struct async__slab *s, *next;

    for (s = a->slabs; s != NULL; s = next) {
        next = s->next;
        munmap(s->base, s->len);
        free(s);
    }
    a->slabs = NULL;
    a->free = NULL;
    pthread_mutex_destroy(&a->lock);
}

/* Marks the page below each stack inaccessible, degrading the arena's mode
 * when the kernel cannot do better. */
static int install_guard(struct async__stack_arena *a, char *guard)
{
    size_t ps = page_size();

    if (a->guard == ASYNC__GUARD_MADVISE) {
        if (madvise(guard, ps, MADV_GUARD_INSTALL) == 0)
            return 1;
        a->guard = ASYNC__GUARD_MPROTECT;
    }
    if (a->guard == ASYNC__GUARD_MPROTECT) {
        if (mprotect(guard, ps, PROT_NONE) == 0)
            return 1;
        a->guard = ASYNC__GUARD_NONE;  /* out of mappings: canaries only */
    }
    return 0;
}

/* Maps one slab and threads its stacks onto the arena's free list.
 * Called with a->lock held. */
static int grow(struct async__stack_arena *a)
{
    struct async__slab *slab = malloc(sizeof(*slab));
    char *base;
    size_t i;

    if (slab == NULL)
        return ENOMEM;
    slab->len = a->stride * ASYNC__SLAB_STACKS;
    base = mmap(NULL, slab->len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        free(slab);
        return ENOMEM;
    }
    slab->base = base;
    slab->next = a->slabs;
    a->slabs = slab;
    for (i = ASYNC__SLAB_STACKS; i-- > 0;) {
        char *guard = base + i * a->stride;
        char *lo = guard + page_size();
        /* The descriptor lives at the top of the stack it describes. */
        struct async__stack *s = (struct async__stack *)(lo + a->size) - 1;

        s->guarded = install_guard(a, guard);
        s->lo = lo;
        /* Stagger the tops by a cache line or more: stacks a stride apart
         * share their low 12 address bits, and a switch that pops where it
         * just pushed, 4 KiB-aliased, stalls on a false store-to-load
         * dependency (measured: 10 ns instead of 6.5 per switch). */
        s->size = a->size - sizeof(*s) - (i % 8) * 64;
        s->next = a->free;
        a->free = s;
    }
    return 0;
}

/* Takes up to half a pool's worth of stacks from the arena. */
static int refill(struct async__stack_pool *p)
{
    struct async__stack_arena *a = p->arena;
    int err = 0;

    pthread_mutex_lock(&a->lock);
    if (a->free == NULL)
        err = grow(a);
    while (a->free != NULL && p->n < ASYNC__POOL_MAX / 2) {
        struct async__stack *s = a->free;

        a->free = s->next;
        s->next = p->free;
        p->free = s;
        p->n++;
    }
    pthread_mutex_unlock(&a->lock);
    return p->free != NULL ? 0 : err;
}

struct async__stack *async__stack_get(struct async__stack_pool *p)
{
    struct async__stack *s;

    if (p->free == NULL && refill(p) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    s = p->free;
    p->free = s->next;
    p->n--;
    if (!s->guarded)
        *(volatile uint64_t *)s->lo = ASYNC__CANARY;
    return s;
}

/* Gives half the pool back to the arena, releasing the pages of each stack
 * so that a burst of fibers does not pin its memory forever. */
static void drain(struct async__stack_pool *p, unsigned keep)
{
    struct async__stack_arena *a = p->arena;
    struct async__stack *batch = NULL, *last = NULL;

    while (p->n > keep) {
        struct async__stack *s = p->free;

        p->free = s->next;
        p->n--;
        /* Not the top page: it holds the descriptor and is always hot. */
        madvise(s->lo, ((char *)s - (char *)s->lo) & ~(page_size() - 1), MADV_DONTNEED);
        s->next = batch;
        batch = s;
        if (last == NULL)
            last = s;
    }
    if (batch == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    last->next = a->free;
    a->free = batch;
    pthread_mutex_unlock(&a->lock);
}

void async__stack_put(struct async__stack_pool *p, struct async__stack *s)
{
    async__asan_unpoison(s->lo, s->size);
    s->next = p->free;
    p->free = s;
    if (++p->n > ASYNC__POOL_MAX)
        drain(p, ASYNC__POOL_MAX / 2);
}

void async__stack_pool_fini(struct async__stack_pool *p)
{
    drain(p, 0);
}
