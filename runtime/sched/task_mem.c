/* runtime/sched/task_mem — the memory task records live in.
 *
 * A burst of spawns used to cost a malloc each and, once the burst
 * outgrew the heap, a page fault every 28 records: with the first touch
 * of fresh memory that was the larger part of spawn_join.  Records now
 * come from slabs whose pages are faulted in 256 KiB at a time, one system
 * call each (faulting a whole 2 MiB slab at once was no faster and left up
 * to 2 MiB of RSS unused), and reach fibers through a small cache per
 * worker thread, so spawn and join usually take no lock at all.
 *
 * Invariants:
 *  - A record is in exactly one place: in use (a task), on one thread's
 *    cache, on the pool's free list, or not yet carved from the pool's
 *    current slab.
 *  - A thread's cache is touched by that thread only, and only while it
 *    runs a worker (between async__task_mem_enter and _leave).  Every
 *    other thread (the one calling async_runtime, a plain thread calling
 *    async_detach) allocates and frees under the pool's lock.
 *  - pool.out counts records in use or in caches.  Caches move records
 *    in and out in batches under the lock and empty themselves on leave,
 *    so once every worker has left, pool.out is the number of records in
 *    use.
 *  - Slabs are unmapped only when no runtime is running and pool.out is 0.
 *    A handle that was never joined nor detached keeps its slab mapped,
 *    as it kept its malloc block before.
 *
 * Under AddressSanitizer records are plain malloc blocks, so it sees every
 * use after free.  ThreadSanitizer runs this allocator: a record changes
 * threads only through the pool's lock or a join's acquire. */
#include "sched.h"

#include "../fiber/annotate.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef ASYNC_ASAN

#define REC_SIZE ((sizeof(struct async_task) + 15) & ~(size_t)15)
#define CACHE_MAX 512            /* records a worker keeps before giving back */
#define BATCH 64                 /* records moved between cache and pool at once */
#define SLAB_MIN (64 * 1024)     /* first slab; each next one doubles... */
#define SLAB_MAX (2 * 1024 * 1024) /* ...up to this */
#define SLAB_HEAD 64             /* struct slab, padded to a cache line */
#define POPULATE_STEP (256 * 1024) /* faulted in ahead of the records carved */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif

struct rec {
    struct rec *next;
};

struct slab {
    struct slab *next;
    size_t size;
};

static struct {
    pthread_mutex_t lock;
    struct rec *free;
    char *bump, *end;            /* uncarved rest of the newest slab */
    char *populated;             /* end of its part already faulted in */
    struct slab *slabs;
    size_t next_size;
    size_t out;
    unsigned runtimes;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_size = SLAB_MIN};

static __thread struct cache {
    struct rec *free;
    unsigned n;
    bool on;
} cache __attribute__((tls_model("initial-exec")));

/* A new slab, mapped outside the lock: populating 2 MiB takes a while. */
static bool grow(void)
{
    size_t size;
    struct slab *s;

    size = pool.next_size;
    pthread_mutex_unlock(&pool.lock);
    s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_mutex_lock(&pool.lock);
    /* Another thread grew (or records came back) meanwhile: use that, and
     * do not drop the uncarved rest of its slab for ours. */
    if (pool.free != NULL || pool.end - pool.bump >= (ptrdiff_t)REC_SIZE) {
        if (s != MAP_FAILED)
            munmap(s, size);
        return true;
    }
    if (s == MAP_FAILED)
        return false;
    s->size = size;
    s->next = pool.slabs;
    pool.slabs = s;
    if (pool.next_size < SLAB_MAX)
        pool.next_size *= 2;
    pool.bump = (char *)s + SLAB_HEAD;
    pool.end = (char *)s + size;
    pool.populated = (char *)s;
    return true;
}

/* Faults the next POPULATE_STEP of the slab in with one system call before
 * records are carved from it.  Where MADV_POPULATE_WRITE is unknown (Linux
 * before 5.14) the pages fault in one by one on first touch instead. */
static void populate_ahead(void)
{
    static bool unknown; /* under the lock, like the rest of the pool */
    size_t step = (size_t)(pool.end - pool.populated);
    int saved = errno;   /* a spawn that succeeds leaves errno alone */

    if (step > POPULATE_STEP)
        step = POPULATE_STEP;
    if (!unknown && madvise(pool.populated, step, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        unknown = true;
    pool.populated += step;
    errno = saved;
}

/* Up to n records from the pool, linked; the lock is held. */
static struct rec *take_locked(unsigned n, unsigned *got)
{
    struct rec *head = NULL, **tail = &head;
    unsigned k = 0;

    while (k < n) {
        struct rec *r = pool.free;

        if (r != NULL) {
            pool.free = r->next;
        } else if (pool.end - pool.bump >= (ptrdiff_t)REC_SIZE) {
            if (pool.bump + REC_SIZE > pool.populated)
                populate_ahead();
            r = (struct rec *)pool.bump;
            pool.bump += REC_SIZE;
        } else if (k > 0 || !grow()) {
            break;
        } else {
            continue;
        }
        *tail = r;
        tail = &r->next;
        k++;
    }
    *tail = NULL;
    pool.out += k;
    *got = k;
    return head;
}

/* Gives the first n records of the cache back to the pool. */
static void spill(struct cache *c, unsigned n)
{
    struct rec *first = c->free, *last = first;
    unsigned i;

    if (n == 0)
        return;
    for (i = 1; i < n; i++)
        last = last->next;
    c->free = last->next;
    c->n -= n;
    pthread_mutex_lock(&pool.lock);
    last->next = pool.free;
    pool.free = first;
    pool.out -= n;
    pthread_mutex_unlock(&pool.lock);
}

struct async_task *async__task_alloc(void)
{
    struct cache *c = &cache;
    struct rec *r;
    unsigned got;

    if (c->on) {
        if (c->free == NULL) {
            pthread_mutex_lock(&pool.lock);
            c->free = take_locked(BATCH, &got);
            pthread_mutex_unlock(&pool.lock);
            c->n = got;
            if (got == 0)
                return NULL;
        }
        r = c->free;
        c->free = r->next;
        c->n--;
        return (struct async_task *)r;
    }
    pthread_mutex_lock(&pool.lock);
    r = take_locked(1, &got);
    pthread_mutex_unlock(&pool.lock);
    return (struct async_task *)r;
}

void async__task_free(struct async_task *t)
{
    struct cache *c = &cache;
    struct rec *r = (struct rec *)t;

    if (c->on) {
        r->next = c->free;
        c->free = r;
        if (++c->n > CACHE_MAX)
            spill(c, CACHE_MAX / 2);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    r->next = pool.free;
    pool.free = r;
    pool.out--;
    pthread_mutex_unlock(&pool.lock);
}

void async__task_mem_enter(void)
{
    cache.on = true;
}

void async__task_mem_leave(void)
{
    spill(&cache, cache.n);
    cache.on = false;
}

void async__task_mem_runtime(int delta)
{
    struct slab *s, *next;

    pthread_mutex_lock(&pool.lock);
    pool.runtimes += delta;
    if (pool.runtimes == 0 && pool.out == 0) {
        for (s = pool.slabs; s != NULL; s = next) {
            next = s->next;
            munmap(s, s->size);
        }
        pool.slabs = NULL;
        pool.free = NULL;
        pool.bump = pool.end = pool.populated = NULL;
        pool.next_size = SLAB_MIN;
    }
    pthread_mutex_unlock(&pool.lock);
}

#else /* AddressSanitizer: let it see every record */

struct async_task *async__task_alloc(void)
{
    return malloc(sizeof(struct async_task));
}

void async__task_free(struct async_task *t)
{
    free(t);
}

void async__task_mem_enter(void)
{
}

void async__task_mem_leave(void)
{
}

void async__task_mem_runtime(int delta)
{
    (void)delta;
}

#endif
