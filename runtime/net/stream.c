/* runtime/net/stream — reading and writing a connected socket from a
 * fiber: the system call first, a park only on EAGAIN.
 *
 * One exception: a read that returned fewer bytes than asked for emptied
 * the socket's receive queue, so the next read waits for the reactor
 * first instead of paying for a recv that would say EAGAIN (the same rule
 * nginx follows with its `ready` flag).  Level-triggered readiness makes
 * this safe: bytes that arrived in between are reported at once.
 *
 * Layers (async_io/layer.h: TLS).  A stream may carry a layer, a table of
 * callbacks that every public call goes through instead of the syscall.
 * The plain stream pays one load and one predicted branch per call for
 * that (bench/http/instructions.sh: no change measured on /hello, see the
 * commit); `layer` is written once, before the stream is shared, and read
 * only by the fibers the stream's owner hands it to.
 *
 * A layer's state is never touched by two threads at once.  Its calls run
 * on the fibers that use the stream, one at a time (layer.h); only the
 * goodbye (close_notify) may come from another fiber, closing the stream
 * or ending its sending direction while a call is parked.  `busy` (the
 * layer calls in progress) and `farewell` (a goodbye under way; for good
 * once the stream closes) are a Dekker pair, both seq_cst: a call raises
 * busy then looks at farewell, a goodbye raises farewell then looks at
 * busy, so at least one of them sees the other.  The goodbye is skipped
 * when a call is inside (it will fail EBADF once the socket is shut, or
 * carry on after a half close); a call that meets a goodbye waits out its
 * one non-blocking SSL_shutdown with sched_yield, or fails EBADF once the
 * stream is closed. */
#include "net.h"

#include <async_io/layer.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct async_stream {
    struct async__sock sock; /* first: freed through it */
    _Atomic bool drained;    /* the last read left the receive queue empty (a hint) */
    const struct async_stream_layer *layer; /* NULL: a plain socket stream */
    void *layer_ctx;
    _Atomic int busy;        /* layer calls in progress */
    _Atomic bool farewell;   /* a goodbye under way (for good once closing) */
};

static void free_layer(struct async__sock *sock)
{
    async_stream *s = (async_stream *)sock;

    s->layer->free(s->layer_ctx);
}

async_stream *async__stream_new(int fd)
{
    async_stream *s = malloc(sizeof(*s));
    int one = 1;

    if (s == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    async__sock_init(&s->sock, fd);
    atomic_init(&s->drained, false);
    s->layer = NULL;
    s->layer_ctx = NULL;
    atomic_init(&s->busy, 0);
    atomic_init(&s->farewell, false);
    return s;
}

int async_stream_set_layer(async_stream *s, const struct async_stream_layer *layer, void *ctx)
{
    if (s == NULL || layer == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (s->layer != NULL) {
        errno = EBUSY;
        return -1;
    }
    if (atomic_load_explicit(&s->sock.closed, memory_order_acquire)) {
        errno = EBADF;
        return -1;
    }
    s->layer = layer;
    s->layer_ctx = ctx;
    s->sock.dtor = free_layer;
    /* the layer's code may live in a module that is unloaded once its
     * fibers are gone: its free runs at the last close, not in a loop */
    async__fdw_no_orphan(&s->sock.watch);
    return 0;
}

void *async_stream_layer_ctx(const async_stream *s, const struct async_stream_layer *layer)
{
    return s != NULL && layer != NULL && s->layer == layer ? s->layer_ctx : NULL;
}

int async_stream_layered(const async_stream *s)
{
    if (s == NULL) {
        errno = EINVAL;
        return -1;
    }
    return s->layer != NULL;
}

enum layer_op { OP_READ, OP_WRITE, OP_TRY_READ };

/* A layer call comes in (see the top): 0, or EBADF once closed. */
static int layer_enter(async_stream *s)
{
    atomic_fetch_add(&s->busy, 1);
    while (atomic_load(&s->farewell)) {
        atomic_fetch_sub(&s->busy, 1);
        if (atomic_load(&s->sock.closed))
            return EBADF;
        sched_yield(); /* one non-blocking SSL_shutdown on another thread */
        atomic_fetch_add(&s->busy, 1);
    }
    return 0;
}

/* A layer call on the stream, held open for it (async__sock_enter, then
 * layer_enter): 0, or the errno why not (nothing held then). */
static int layer_begin(async_stream *s)
{
    int err;

    if ((err = async__sock_enter(&s->sock)) != 0)
        return err;
    if ((err = layer_enter(s)) != 0)
        async__sock_leave(&s->sock);
    return err;
}

/* The end of a layer call begun with layer_begin: n, or -1 with err; a
 * close that came meanwhile makes a success EBADF. */
static inline ssize_t layer_leave(async_stream *s, ssize_t n, int err)
{
    if (n >= 0 && atomic_load_explicit(&s->sock.closed, memory_order_acquire)) {
        n = -1;
        err = EBADF;
    }
    atomic_fetch_sub(&s->busy, 1);
    async__sock_leave(&s->sock);
    errno = err;
    return n;
}

/* Bytes the layer holds, asked as a layer call. */
static size_t layer_pending(async_stream *s)
{
    size_t n;

    if (layer_enter(s) != 0)
        return 0;
    n = s->layer->pending(s->layer_ctx);
    atomic_fetch_sub(&s->busy, 1);
    return n;
}

/* The layer's goodbye unless a call is inside; forever: the stream is
 * closing and no call may come in again. */
static void layer_goodbye(async_stream *s, bool forever)
{
    if (s->layer->goodbye == NULL)
        return;
    atomic_store(&s->farewell, true);
    if (atomic_load(&s->busy) == 0)
        s->layer->goodbye(s->layer_ctx, s);
    if (!forever)
        atomic_store(&s->farewell, false);
}

/* One call through the layer, the stream held open for it. */
static ssize_t layer_call(async_stream *s, enum layer_op op, void *buf, size_t len)
{
    ssize_t n;
    int err;

    if ((err = layer_begin(s)) != 0) {
        errno = err;
        return -1;
    }
    if (op == OP_READ)
        n = s->layer->read(s->layer_ctx, s, buf, len);
    else if (op == OP_WRITE)
        n = s->layer->write(s->layer_ctx, s, buf, len);
    else
        n = s->layer->try_read(s->layer_ctx, s, buf, len);
    return layer_leave(s, n, errno);
}

/* One read or write: the syscall, then a park per EAGAIN. */
static ssize_t transfer(async_stream *s, void *buf, size_t len, bool writing)
{
    ssize_t n;
    int err;

    if ((err = async__sock_enter(&s->sock)) != 0) {
        errno = err;
        return -1;
    }
    if (!writing && len > 0 && atomic_load_explicit(&s->drained, memory_order_relaxed) &&
        (err = async__fdw_wait(&s->sock.watch, ASYNC_READABLE)) != 0) {
        async__sock_leave(&s->sock);
        errno = err;
        return -1;
    }
    for (;;) {
        n = writing ? send(s->sock.fd, buf, len, MSG_NOSIGNAL) : recv(s->sock.fd, buf, len, 0);
        if (atomic_load_explicit(&s->sock.closed, memory_order_acquire)) {
            n = -1;
            err = EBADF; /* closed under us: whatever the shut socket said */
            break;
        }
        if (n >= 0) {
            err = 0;
            if (!writing)
                atomic_store_explicit(&s->drained, n > 0 && (size_t)n < len, memory_order_relaxed);
            break;
        }
        err = errno;
        if (err == EINTR)
            continue;
        if (err != EAGAIN && err != EWOULDBLOCK)
            break;
        err = async__fdw_wait(&s->sock.watch, writing ? ASYNC_WRITABLE : ASYNC_READABLE);
        if (err != 0) {
            n = -1;
            break;
        }
    }
    async__sock_leave(&s->sock);
    if (n < 0)
        errno = err;
    return n;
}

ssize_t async_stream_read(async_stream *s, void *buf, size_t len)
{
    if (async__parking_self(s) == NULL)
        return -1;
    if (buf == NULL && len != 0) {
        errno = EINVAL;
        return -1;
    }
    if (__builtin_expect(s->layer != NULL, 0))
        return layer_call(s, OP_READ, buf, len);
    return transfer(s, buf, len, false);
}

ssize_t async_stream_try_read(async_stream *s, void *buf, size_t len)
{
    ssize_t n;

    if (s == NULL || (buf == NULL && len != 0)) {
        errno = EINVAL;
        return -1;
    }
    if (s->layer != NULL)
        return layer_call(s, OP_TRY_READ, buf, len);
    do
        n = recv(s->sock.fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EWOULDBLOCK)
        errno = EAGAIN;
    return n;
}

bool async__stream_quiet(async_stream *s)
{
    return s->layer == NULL && atomic_load_explicit(&s->drained, memory_order_relaxed) &&
           async__fdw_quiet(&s->sock.watch);
}

int async_stream_shutdown_write(async_stream *s)
{
    int err;

    if (s == NULL) {
        errno = EINVAL;
        return -1;
    }
    if ((err = async__sock_enter(&s->sock)) != 0) {
        errno = err;
        return -1;
    }
    if (s->layer != NULL)
        layer_goodbye(s, false);
    err = shutdown(s->sock.fd, SHUT_WR) == 0 ? 0 : errno;
    async__sock_leave(&s->sock);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int async_stream_wait(async_stream *s, int events)
{
    if (__builtin_expect(s != NULL && s->layer != NULL, 0) && (events & ASYNC_READABLE) &&
        async__parking_self(s) != NULL && !atomic_load(&s->sock.closed) && layer_pending(s) > 0)
        return 0; /* the layer holds bytes: readable without the socket */
    return async_stream_socket_wait(s, events);
}

int async_stream_socket_wait(async_stream *s, int events)
{
    int err;

    if (async__parking_self(s) == NULL)
        return -1;
    if ((events & (ASYNC_READABLE | ASYNC_WRITABLE)) == 0) {
        errno = EINVAL;
        return -1;
    }
    if ((err = async__sock_enter(&s->sock)) != 0) {
        errno = err;
        return -1;
    }
    err = async__fdw_wait(&s->sock.watch, events & (ASYNC_READABLE | ASYNC_WRITABLE));
    if (err == 0 && atomic_load_explicit(&s->sock.closed, memory_order_acquire))
        err = EBADF;
    async__sock_leave(&s->sock);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int async_spawn_when_readable(async_stream *s, async_fn fn, void *arg)
{
    struct async_task *t;
    int err;

    if (async__current() == NULL) {
        errno = EPERM;
        return -1;
    }
    if (s == NULL || fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (atomic_load_explicit(&s->sock.closed, memory_order_acquire)) {
        errno = EBADF;
        return -1;
    }
    if ((err = async__fdw_can_handoff(&s->sock.watch)) != 0) {
        errno = err;
        return -1;
    }
    if ((t = async__spawn_parked(fn, arg)) == NULL)
        return -1;
    /* t starts because bytes came: its first read goes straight to recv */
    atomic_store_explicit(&s->drained, false, memory_order_relaxed);
    async__fdw_handoff(&s->sock.watch, t);
    /* Bytes a layer already holds will never make the socket readable:
     * start t now, as the reactor would have. */
    if (s->layer != NULL && layer_pending(s) > 0)
        async__fdw_kick(&s->sock.watch);
    /* A group cancelled before t joined it marked t cancelled (on this
     * thread) but had no t to claim: do it now.  A cancel after t joined
     * finds it under the group's lock, already parked, and claims it. */
    if (atomic_load_explicit(&t->cancelled, memory_order_relaxed) &&
        async__claim(t, ASYNC__WAKE_CANCELLED))
        async__schedule(t, false);
    return 0;
}

ssize_t async_stream_write(async_stream *s, const void *buf, size_t len)
{
    if (async__parking_self(s) == NULL)
        return -1;
    if (buf == NULL && len != 0) {
        errno = EINVAL;
        return -1;
    }
    if (__builtin_expect(s->layer != NULL, 0))
        return layer_call(s, OP_WRITE, (void *)buf, len);
    return transfer(s, (void *)buf, len, true);
}

ssize_t async_stream_sendfile(async_stream *s, int fd, off_t *off, size_t len)
{
    ssize_t n;
    int err;

    if (async__parking_self(s) == NULL)
        return -1;
    if (fd < 0 || off == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (s->layer == NULL || s->layer->sendfile == NULL) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if ((err = layer_begin(s)) != 0) {
        errno = err;
        return -1;
    }
    n = s->layer->sendfile(s->layer_ctx, s, fd, off, len);
    return layer_leave(s, n, errno);
}

int async_stream_write_all(async_stream *s, const void *buf, size_t len)
{
    const char *p = buf;

    if (async__parking_self(s) == NULL)
        return -1;
    if (p == NULL && len != 0) {
        errno = EINVAL;
        return -1;
    }
    while (len > 0) {
        ssize_t n = __builtin_expect(s->layer != NULL, 0) ? layer_call(s, OP_WRITE, (void *)p, len)
                                                          : transfer(s, (void *)p, len, true);
        int err;

        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
        /* transfer only checks when it parks; a cancel between short
         * writes must still stop the loop. */
        if (len > 0 && (err = async__check_interrupt(async__current())) != 0) {
            errno = err;
            return -1;
        }
    }
    return 0;
}

int async_stream_fd(const async_stream *s)
{
    if (s == NULL) {
        errno = EINVAL;
        return -1;
    }
    return s->sock.fd;
}

void async_stream_close(async_stream *s)
{
    if (s == NULL)
        return;
    /* The goodbye only when nobody else is inside the layer; a close that
     * interrupts a parked call just shuts the socket down. */
    if (s->layer != NULL && !atomic_load(&s->sock.closed))
        layer_goodbye(s, true);
    async__sock_close(&s->sock, SHUT_RDWR);
}
