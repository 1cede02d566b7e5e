#include "queue.h"

/* ---- mailbox: Vyukov's intrusive MPSC queue ---- */

void async__mpsc_init(struct async__mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
}

void async__mpsc_push(struct async__mpsc *q, struct async__node *n)
{
    struct async__node *prev;

    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    prev = atomic_exchange_explicit(&q->head, n, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

struct async__node *async__mpsc_pop(struct async__mpsc *q)
{
    struct async__node *tail = q->tail;
    struct async__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &q->stub) {
        if (next == NULL)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL; /* a producer is between its swap and its link */
    async__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

/* ---- fresh: bounded stealable ring of unstarted tasks ---- */

#define MASK (ASYNC__FRESH_CAP - 1)

static inline uint64_t pack(uint32_t steal, uint32_t real)
{
    return ((uint64_t)steal << 32) | real;
}

static inline uint32_t steal_of(uint64_t h) { return (uint32_t)(h >> 32); }
static inline uint32_t real_of(uint64_t h) { return (uint32_t)h; }

void async__fresh_init(struct async__fresh *q)
{
    atomic_store_explicit(&q->head, 0, memory_order_relaxed);
    atomic_store_explicit(&q->tail, 0, memory_order_relaxed);
}

unsigned async__fresh_len(struct async__fresh *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);

    return t - real_of(h);
}

bool async__fresh_push(struct async__fresh *q, struct async_task *t)
{
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t steal = steal_of(atomic_load_explicit(&q->head, memory_order_acquire));

    if (tail - steal >= ASYNC__FRESH_CAP)
        return false;
    atomic_store_explicit(&q->slot[tail & MASK], t, memory_order_relaxed);
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return true;
}

struct async_task *async__fresh_pop(struct async__fresh *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);

    for (;;) {
        uint32_t steal = steal_of(h), real = real_of(h);
        uint64_t next;

        if (real == tail)
            return NULL;
        /* With no thief active both indices move together. */
        next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return atomic_load_explicit(&q->slot[real & MASK], memory_order_relaxed);
    }
}

unsigned async__fresh_take(struct async__fresh *q, struct async_task **out, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        out[i] = async__fresh_pop(q);
        if (out[i] == NULL)
            break;
    }
    return i;
}

struct async_task *async__fresh_steal(struct async__fresh *victim, struct async__fresh *into,
                                      unsigned min)
{
    uint64_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
    uint32_t dst_tail = atomic_load_explicit(&into->tail, memory_order_relaxed);
    uint32_t real, n, i;

    /* 1. Claim half of what is there by moving `real`; `steal` stays put so
     *    the owner cannot reuse the slots we are about to copy. */
    for (;;) {
        uint32_t steal = steal_of(h), tail;

        real = real_of(h);
        if (steal != real)
            return NULL; /* another thief is at work */
        tail = atomic_load_explicit(&victim->tail, memory_order_acquire);
        n = tail - real;
        if (n < min || n > ASYNC__FRESH_CAP)
            return NULL;
        n -= n / 2;
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, pack(steal, real + n),
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }
    /* 2. Copy the batch out. */
    for (i = 0; i < n; i++) {
        struct async_task *t =
            atomic_load_explicit(&victim->slot[(real + i) & MASK], memory_order_relaxed);
        atomic_store_explicit(&into->slot[(dst_tail + i) & MASK], t, memory_order_relaxed);
    }
    /* 3. Release the slots: move `steal` up to wherever `real` is now. */
    h = atomic_load_explicit(&victim->head, memory_order_acquire);
    for (;;) {
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h,
                                                  pack(real_of(h), real_of(h)),
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }
    /* 4. Keep the last one to run now, publish the rest. */
    n--;
    if (n > 0)
        atomic_store_explicit(&into->tail, dst_tail + n, memory_order_release);
    return atomic_load_explicit(&into->slot[(dst_tail + n) & MASK], memory_order_relaxed);
}
