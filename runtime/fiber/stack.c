#include "stack.h"
#include "advise.h"
#include "annotate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
    a->dirty = NULL;
    atomic_init(&a->ndirty, 0);
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
    a->dirty = NULL;
    atomic_store_explicit(&a->ndirty, 0, memory_order_relaxed);
    pthread_mutex_destroy(&a->lock);
}

/* Marks the page below one stack inaccessible, degrading *mode when the
 * kernel cannot do better. */
static int install_guard(enum async__guard_mode *mode, char *guard)
{
    size_t ps = page_size();

    if (*mode == ASYNC__GUARD_MADVISE) {
        if (madvise(guard, ps, MADV_GUARD_INSTALL) == 0)
            return 1;
        *mode = ASYNC__GUARD_MPROTECT;
    }
    if (*mode == ASYNC__GUARD_MPROTECT) {
        if (mprotect(guard, ps, PROT_NONE) == 0)
            return 1;
        *mode = ASYNC__GUARD_NONE;  /* out of mappings: canaries only */
    }
    return 0;
}

/* The guard pages of a whole slab in one system call where the kernel has
 * MADV_GUARD_INSTALL and process_madvise for itself (see advise.h);
 * otherwise page by page, degrading *mode.  Fills guarded[i]. */
static void install_guards(enum async__guard_mode *mode, char *base, size_t stride,
                           int guarded[ASYNC__SLAB_STACKS])
{
    struct iovec row[ASYNC__SLAB_STACKS];
    size_t i;

    if (*mode == ASYNC__GUARD_MADVISE) {
        for (i = 0; i < ASYNC__SLAB_STACKS; i++)
            row[i] = (struct iovec){base + i * stride, page_size()};
        if (async__advise(row, ASYNC__SLAB_STACKS, MADV_GUARD_INSTALL) == 0) {
            for (i = 0; i < ASYNC__SLAB_STACKS; i++)
                guarded[i] = 1;
            return;
        }
    }
    for (i = 0; i < ASYNC__SLAB_STACKS; i++)
        guarded[i] = install_guard(mode, base + i * stride);
}

/* Faults in the top page of every stack of a slab with one system call
 * (MADV_POPULATE_WRITE): the descriptor lives there and every fiber's
 * first frames do, so each would fault it in on its own otherwise, and a
 * fault costs several times its page's share of one bulk call (measured
 * on this project's KVM guest: 14-16 us per page touched one by one,
 * 0.75-1.2 us per page populated in bulk).  Lower pages stay untouched: a
 * parked fiber rarely needs more than its top page.  Best effort: where the
 * advice is unknown the pages fault in on first touch as before. */
static void populate_tops(char *base, size_t stride)
{
    struct iovec row[ASYNC__SLAB_STACKS];
    size_t i, ps = page_size();

    for (i = 0; i < ASYNC__SLAB_STACKS; i++)
        row[i] = (struct iovec){base + (i + 1) * stride - ps, ps};
    (void)async__advise(row, ASYNC__SLAB_STACKS, MADV_POPULATE_WRITE);
}

/* Maps one slab, its guards installed and its top pages faulted in, and
 * threads its stacks into a list: *first..*last.  Called without the
 * arena's lock (the system calls take a while, and the other workers'
 * pools may need it meanwhile); *mode is the caller's copy of the
 * arena's guard mode, degraded here if need be. */
static int grow(struct async__stack_arena *a, enum async__guard_mode *mode,
                struct async__slab **out, struct async__stack **first,
                struct async__stack **last)
{
    struct async__slab *slab = malloc(sizeof(*slab));
    int guarded[ASYNC__SLAB_STACKS];
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
    install_guards(mode, base, a->stride, guarded);
    populate_tops(base, a->stride);
    *first = *last = NULL;
    for (i = ASYNC__SLAB_STACKS; i-- > 0;) {
        char *lo = base + i * a->stride + page_size();
        /* The descriptor lives at the top of the stack it describes. */
        struct async__stack *s = (struct async__stack *)(lo + a->size) - 1;

        s->guarded = guarded[i];
        s->lo = lo;
        /* Stagger the tops by a cache line or more: stacks a stride apart
         * share their low 12 address bits, and a switch that pops where it
         * just pushed, 4 KiB-aliased, stalls on a false store-to-load
         * dependency (measured: 10 ns instead of 6.5 per switch). */
        s->size = a->size - sizeof(*s) - (i % 8) * 64;
        s->next = *first;
        *first = s;
        if (*last == NULL)
            *last = s;
    }
    *out = slab;
    return 0;
}

/* Moves one stack from *from to the pool; the arena's lock is held. */
static void take_one(struct async__stack_pool *p, struct async__stack **from)
{
    struct async__stack *s = *from;

    *from = s->next;
    s->next = p->free;
    p->free = s;
    p->n++;
}

/* Takes up to half a pool's worth of stacks from the arena, dirty (warm)
 * ones first, mapping a new slab first if it has none. */
static int refill(struct async__stack_pool *p)
{
    struct async__stack_arena *a = p->arena;
    int err = 0;

    pthread_mutex_lock(&a->lock);
    while (a->dirty != NULL && p->n < ASYNC__POOL_MAX / 2) {
        take_one(p, &a->dirty);
        atomic_store_explicit(&a->ndirty, atomic_load_explicit(&a->ndirty, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    if (a->free == NULL && p->free == NULL) {
        enum async__guard_mode mode = a->guard;
        struct async__stack *first, *last;
        struct async__slab *slab;

        pthread_mutex_unlock(&a->lock);
        err = grow(a, &mode, &slab, &first, &last);
        pthread_mutex_lock(&a->lock);
        if (err == 0) {
            slab->next = a->slabs;
            a->slabs = slab;
            last->next = a->free;
            a->free = first;
            if (mode > a->guard) /* only ever weaker: madvise, mprotect, none */
                a->guard = mode;
        }
    }
    while (a->free != NULL && p->n < ASYNC__POOL_MAX / 2)
        take_one(p, &a->free);
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

/* Releases the lower pages of a list of stacks taken off the arena's
 * dirty list, one system call per row (see advise.h), then puts them on
 * its free list.  Called without the lock. */
static void release(struct async__stack_arena *a, struct async__stack *list)
{
    struct iovec row[ASYNC__DIRTY_MAX];
    struct async__stack *s = list, *last = NULL;
    size_t n = 0;

    while (s != NULL) {
        /* Not the top page: it holds the descriptor and is always hot. */
        row[n++] = (struct iovec){s->lo, ((char *)s - (char *)s->lo) & ~(page_size() - 1)};
        last = s;
        s = s->next;
        if (n == ASYNC__DIRTY_MAX || s == NULL) {
            (void)async__advise(row, n, MADV_DONTNEED);
            n = 0;
        }
    }
    if (last == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    last->next = a->free;
    a->free = list;
    pthread_mutex_unlock(&a->lock);
}

/* Takes the whole dirty list; the lock is held. */
static struct async__stack *take_dirty(struct async__stack_arena *a)
{
    struct async__stack *list = a->dirty;

    a->dirty = NULL;
    atomic_store_explicit(&a->ndirty, 0, memory_order_relaxed);
    return list;
}

/* Gives the pool back to the arena down to keep stacks, onto its dirty
 * list; whoever makes that list ASYNC__DIRTY_MAX long releases it. */
static void drain(struct async__stack_pool *p, unsigned keep)
{
    struct async__stack_arena *a = p->arena;
    struct async__stack *batch = NULL, *last = NULL, *full = NULL;
    unsigned n = 0, dirty;

    while (p->n > keep) {
        struct async__stack *s = p->free;

        p->free = s->next;
        p->n--;
        s->next = batch;
        batch = s;
        if (last == NULL)
            last = s;
        n++;
    }
    if (batch == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    last->next = a->dirty;
    a->dirty = batch;
    dirty = atomic_load_explicit(&a->ndirty, memory_order_relaxed) + n;
    atomic_store_explicit(&a->ndirty, dirty, memory_order_relaxed);
    if (dirty >= ASYNC__DIRTY_MAX)
        full = take_dirty(a);
    pthread_mutex_unlock(&a->lock);
    release(a, full);
}

void async__stack_trim(struct async__stack_arena *a)
{
    struct async__stack *list;

    if (atomic_load_explicit(&a->ndirty, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&a->lock);
    list = take_dirty(a);
    pthread_mutex_unlock(&a->lock);
    release(a, list);
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
