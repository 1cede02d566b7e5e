/* runtime/sync/ring — bounded MPMC ring buffer.
 *
 * A fixed circular buffer plus two queues of parked fibers, all under one
 * spinlock (see waitq.h).  Invariants under the lock: receivers wait only
 * while the ring is empty, senders only while it is full.  A send that finds
 * a parked receiver hands its element over directly; a receive that frees a
 * slot moves the oldest parked sender's element into it, so elements leave
 * in the order their sends completed. */
#include "../sched/waitq.h"

#include <async_io/ring.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct async_ring {
    async__spinlock lock;
    bool closed;
    size_t elem_size;
    size_t cap, head, len;
    struct async__waitq senders, receivers;
    char *buf;
};

async_ring *async_ring_new(size_t capacity, size_t elem_size)
{
    async_ring *r;

    if (capacity == 0 || elem_size == 0 || capacity > SIZE_MAX / elem_size) {
        errno = EINVAL;
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->buf = malloc(capacity * elem_size)) == NULL) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    r->cap = capacity;
    r->elem_size = elem_size;
    return r;
}

static char *slot(async_ring *r, size_t i)
{
    size_t k = r->head + i;

    if (k >= r->cap)
        k -= r->cap;
    return r->buf + k * r->elem_size;
}

int async_ring_send(async_ring *r, const void *elem)
{
    struct async_task *self = async__parking_self(elem != NULL ? r : NULL); /* EINVAL for either */
    int err;

    if (self == NULL)
        return -1;
    async__spin_lock(&r->lock);
    if (r->closed) {
        async__spin_unlock(&r->lock);
        errno = EPIPE;
        return -1;
    }
    if (r->len == 0) {
        struct async_task *rx = async__waitq_claim(&r->receivers, ASYNC__WAKE_NORMAL);

        if (rx != NULL) {
            memcpy(rx->wait_buf, elem, r->elem_size);
            async__spin_unlock(&r->lock);
            async__schedule(rx, true);
            return 0;
        }
    }
    if (r->len < r->cap) {
        memcpy(slot(r, r->len), elem, r->elem_size);
        r->len++;
        async__spin_unlock(&r->lock);
        return 0;
    }
    if ((err = async__waitq_wait(&r->senders, &r->lock, self, (void *)elem, false)) != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int async_ring_recv(async_ring *r, void *elem)
{
    struct async_task *self = async__parking_self(elem != NULL ? r : NULL); /* EINVAL for either */
    struct async_task *tx;
    int err;

    if (self == NULL)
        return -1;
    async__spin_lock(&r->lock);
    if (r->len != 0) {
        memcpy(elem, slot(r, 0), r->elem_size);
        r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
        r->len--;
        if ((tx = async__waitq_claim(&r->senders, ASYNC__WAKE_NORMAL)) != NULL) {
            memcpy(slot(r, r->len), tx->wait_buf, r->elem_size);
            r->len++;
            async__spin_unlock(&r->lock);
            async__schedule(tx, true);
            return 0;
        }
        async__spin_unlock(&r->lock);
        return 0;
    }
    if (r->closed) {
        async__spin_unlock(&r->lock);
        errno = EPIPE;
        return -1;
    }
    if ((err = async__waitq_wait(&r->receivers, &r->lock, self, elem, false)) != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

void async_ring_close(async_ring *r)
{
    struct async_task *tx, *rx;

    if (r == NULL)
        return;
    async__spin_lock(&r->lock);
    r->closed = true;
    tx = async__waitq_claim_all(&r->senders, ASYNC__WAKE_CLOSED);
    rx = async__waitq_claim_all(&r->receivers, ASYNC__WAKE_CLOSED);
    async__spin_unlock(&r->lock);
    async__waitq_wake_list(tx);
    async__waitq_wake_list(rx);
}

void async_ring_free(async_ring *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    free(r);
}
