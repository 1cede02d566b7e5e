/* runtime/sched/queue — the run queues of a worker.
 *
 * Three shapes, each with one job:
 *
 * fifo    fibers of this worker ready to run (started, or homed here before
 *         they start: see sched.h).  Owner thread only: no
 *         atomics beyond relaxed accesses of the shared link field.
 *
 * mpsc    the worker's mailbox: fibers of this worker made ready by other
 *         threads.  Dmitry Vyukov's intrusive MPSC queue.  Producers swap
 *         `head` (seq_cst, so a producer's later load of the worker's
 *         `sleeping` flag cannot pass it), then publish the link with a
 *         release store; the owner is the only consumer and reads links with
 *         acquire.  Between a producer's swap and its link store the queue
 *         looks empty to the consumer; the producer then notifies the worker,
 *         so the element is never stranded.
 *
 * fresh   fibers that have not started yet, which other workers may steal.
 *         A bounded ring in the manner of Tokio's local queue.  `tail` is
 *         written by the owner only (release after storing the slot).  `head`
 *         packs two u32 indices: `real` (next to take) and `steal` (start of a
 *         batch a thief is copying out).  The owner pops by CAS on `head`;
 *         a thief claims a batch by moving `real` (CAS, acq_rel), copies the
 *         slots, then moves `steal` up to `real` (CAS, release).  The owner
 *         never writes a slot between `steal` and `tail`, so copied slots are
 *         stable; at most one thief works at a time (steal != real means
 *         another thief is busy).  Slots are relaxed atomics so that a
 *         thief's read never races the owner's write as far as C11 and TSan
 *         are concerned; ordering comes from `tail` and `head`. */
#ifndef ASYNC_SCHED_QUEUE_H
#define ASYNC_SCHED_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct async_task;

/* The link every task carries; a task is on at most one queue at a time. */
struct async__node {
    _Atomic(struct async__node *) next;
};

struct async__fifo {
    struct async__node *head;
    struct async__node *tail;
    size_t len;
};

struct async__mpsc {
    _Atomic(struct async__node *) head;     /* producers push here */
    char pad[64 - sizeof(void *)];
    struct async__node *tail;               /* consumer pops here */
    struct async__node stub;
};

#define ASYNC__FRESH_CAP 256u

struct async__fresh {
    _Atomic uint64_t head;                  /* (steal << 32) | real */
    char pad0[64 - sizeof(uint64_t)];
    _Atomic uint32_t tail;
    char pad1[64 - sizeof(uint32_t)];
    _Atomic(struct async_task *) slot[ASYNC__FRESH_CAP];
};

static inline void async__fifo_init(struct async__fifo *q)
{
    q->head = q->tail = NULL;
    q->len = 0;
}

static inline void async__fifo_push(struct async__fifo *q, struct async__node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    if (q->tail != NULL)
        atomic_store_explicit(&q->tail->next, n, memory_order_relaxed);
    else
        q->head = n;
    q->tail = n;
    q->len++;
}

/* Takes the head and appends n in one step, as a yield does; len does not
 * change.  The queue must not be empty. */
static inline struct async__node *async__fifo_rotate(struct async__fifo *q, struct async__node *n)
{
    struct async__node *h = q->head;
    struct async__node *next = atomic_load_explicit(&h->next, memory_order_relaxed);

    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    if (next == NULL) {
        q->head = n; /* h was alone */
    } else {
        q->head = next;
        atomic_store_explicit(&q->tail->next, n, memory_order_relaxed);
    }
    q->tail = n;
    return h;
}

static inline struct async__node *async__fifo_pop(struct async__fifo *q)
{
    struct async__node *n = q->head;

    if (n != NULL) {
        q->head = atomic_load_explicit(&n->next, memory_order_relaxed);
        if (q->head == NULL)
            q->tail = NULL;
        q->len--;
    }
    return n;
}

void async__mpsc_init(struct async__mpsc *q);
/* Any thread. */
void async__mpsc_push(struct async__mpsc *q, struct async__node *n);
/* Owner only.  NULL when empty (or momentarily inconsistent, see above). */
struct async__node *async__mpsc_pop(struct async__mpsc *q);
static inline bool async__mpsc_empty(struct async__mpsc *q)
{
    return q->tail == &q->stub &&
           atomic_load_explicit(&q->stub.next, memory_order_acquire) == NULL &&
           atomic_load_explicit(&q->head, memory_order_relaxed) == &q->stub;
}

void async__fresh_init(struct async__fresh *q);
/* Owner only.  false when full (the caller moves work elsewhere). */
bool async__fresh_push(struct async__fresh *q, struct async_task *t);
/* Owner only. */
struct async_task *async__fresh_pop(struct async__fresh *q);
/* Owner only: removes up to n of the oldest tasks into out[], for overflow. */
unsigned async__fresh_take(struct async__fresh *q, struct async_task **out, unsigned n);
/* Thief: moves about half of victim's tasks into its own queue `into`
 * (which must be empty) and returns one of them to run now, or NULL.
 * Steals nothing while the victim holds fewer than `min`. */
struct async_task *async__fresh_steal(struct async__fresh *victim, struct async__fresh *into,
                                      unsigned min);
unsigned async__fresh_len(struct async__fresh *q);

#endif
