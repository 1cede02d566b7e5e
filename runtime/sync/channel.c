/* runtime/sync/channel — unbounded MPMC channel.
 *
 * A circular buffer that doubles when full, plus the queue of parked
 * receivers; all under one spinlock (see waitq.h).  A send that finds a
 * parked receiver copies straight into its buffer and wakes it, so an
 * element never sits in the buffer while a receiver sleeps. */
#include "../sched/waitq.h"

#include <async_io/channel.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct async_channel {
    async__spinlock lock;
    bool closed;
    size_t elem_size;
    char *buf;                  /* cap elements, circular */
    size_t cap, head, len;
    struct async__waitq receivers;
};

async_channel *async_channel_new(size_t elem_size)
{
    async_channel *ch;

    if (elem_size == 0) {
        errno = EINVAL;
        return NULL;
    }
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    ch->elem_size = elem_size;
    return ch;
}

static char *slot(async_channel *ch, size_t i)
{
    return ch->buf + ((ch->head + i) & (ch->cap - 1)) * ch->elem_size;
}

static int grow(async_channel *ch)
{
    size_t cap = ch->cap != 0 ? ch->cap * 2 : 16;
    char *buf = malloc(cap * ch->elem_size);
    size_t first;

    if (buf == NULL || cap < ch->cap)
        return ENOMEM;
    if (ch->len != 0) {
        first = ch->cap - ch->head < ch->len ? ch->cap - ch->head : ch->len;
        memcpy(buf, slot(ch, 0), first * ch->elem_size);
        memcpy(buf + first * ch->elem_size, ch->buf, (ch->len - first) * ch->elem_size);
    }
    free(ch->buf);
    ch->buf = buf;
    ch->cap = cap;
    ch->head = 0;
    return 0;
}

int async_channel_send(async_channel *ch, const void *elem)
{
    struct async_task *t;
    int err;

    if (ch == NULL || elem == NULL) {
        errno = EINVAL;
        return -1;
    }
    async__spin_lock(&ch->lock);
    if (ch->closed) {
        async__spin_unlock(&ch->lock);
        errno = EPIPE;
        return -1;
    }
    if ((t = async__waitq_claim(&ch->receivers, ASYNC__WAKE_NORMAL)) != NULL) {
        memcpy(t->wait_buf, elem, ch->elem_size);
        async__spin_unlock(&ch->lock);
        async__schedule(t, true);
        return 0;
    }
    if (ch->len == ch->cap && (err = grow(ch)) != 0) {
        async__spin_unlock(&ch->lock);
        errno = err;
        return -1;
    }
    memcpy(slot(ch, ch->len), elem, ch->elem_size);
    ch->len++;
    async__spin_unlock(&ch->lock);
    return 0;
}

/* With the lock held: takes the oldest element if there is one. */
static bool take(async_channel *ch, void *elem)
{
    if (ch->len == 0)
        return false;
    memcpy(elem, slot(ch, 0), ch->elem_size);
    ch->head = (ch->head + 1) & (ch->cap - 1);
    ch->len--;
    return true;
}

int async_channel_receive(async_channel *ch, void *elem)
{
    struct async_task *self = async__parking_self(elem != NULL ? ch : NULL); /* EINVAL for either */
    int err;

    if (self == NULL)
        return -1;
    async__spin_lock(&ch->lock);
    if (take(ch, elem)) {
        async__spin_unlock(&ch->lock);
        return 0;
    }
    if (ch->closed) {
        async__spin_unlock(&ch->lock);
        errno = EPIPE;
        return -1;
    }
    if ((err = async__waitq_wait(&ch->receivers, &ch->lock, self, elem, false)) != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int async_channel_try_receive(async_channel *ch, void *elem)
{
    int err = 0;

    if (ch == NULL || elem == NULL) {
        errno = EINVAL;
        return -1;
    }
    async__spin_lock(&ch->lock);
    if (!take(ch, elem))
        err = ch->closed ? EPIPE : EAGAIN;
    async__spin_unlock(&ch->lock);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

void async_channel_close(async_channel *ch)
{
    struct async_task *woken;

    if (ch == NULL)
        return;
    async__spin_lock(&ch->lock);
    ch->closed = true;
    woken = async__waitq_claim_all(&ch->receivers, ASYNC__WAKE_CLOSED);
    async__spin_unlock(&ch->lock);
    async__waitq_wake_list(woken);
}

void async_channel_free(async_channel *ch)
{
    if (ch == NULL)
        return;
    free(ch->buf);
    free(ch);
}
