/* runtime/http/conn.c — one connection, written like blocking code: read,
 * answer every complete request in the buffer (calling the handler for
 * each), write the answers in one go, repeat.
 *
 * Buffer.  in[off..len) holds bytes not yet consumed; a request head is
 * parsed in place and its slices stay valid until its handler returns.  A
 * request with a body has its head moved to the front of the buffer
 * first, so the body's bytes, read after it, always have room; they are
 * cut out of the buffer as the handler reads them (request.c), and what
 * follows the body belongs to the next request.
 *
 * Output.  Answers to pipelined requests gather in out and leave in one
 * send when no complete request is left in the buffer (or out grows past
 * ASYNC_HTTP_COALESCE_BYTES); a write or file too big for it follows the
 * bytes gathered before it.  Access-log lines are written once their
 * bytes have left (logq.c).
 *
 * Idle connections.  One served by async_http_server_start holds no
 * fiber, no stack and no buffer while it waits for its first request
 * (header_timeout_ms), between requests (keepalive_timeout_ms) or while
 * lingering (below): it is handed to a fiber that starts only when bytes
 * or the end arrive (async_spawn_when_readable), and its deadline is
 * park_until, kept by the server's sweeper (server.c), which shuts the
 * read side down once it passes.  One served on the caller's fiber
 * (async_http_serve, async_http_server_serve) waits on that fiber.
 *
 * Lingering close (RFC 9112 §9.6, as nginx does it).  Closing a socket
 * whose receive queue holds unread bytes sends a reset, and a reset makes
 * the peer's kernel drop whatever it had not yet handed to the client —
 * often our error answer.  So when the server ends a connection whose
 * peer may still be sending (an error before the request was read whole,
 * or bytes pipelined after a "Connection: close" request), it sends the
 * answer, shuts its write side down and reads and drops what comes for at
 * most lingering_time_ms, lingering_timeout_ms between reads and
 * lingering_max_bytes in all, then closes.
 *
 * Timeouts are the fiber's deadline, set per phase: header_timeout_ms
 * from a head's first byte, body_timeout_ms per body, send_timeout_ms per
 * write that makes progress — never later than a deadline the handler
 * set for itself, which is restored afterwards.
 *
 * Layered streams (TLS, async_io/layer.h).  The loop's own syscalls on the
 * socket (send with MSG_MORE, sendfile, recv with MSG_DONTWAIT) are the
 * plain stream's fast path; a connection whose stream has a layer goes
 * through the stream calls instead (c->layered): writes through
 * async_stream_write under the send timeout, files handed to the layer
 * (async_stream_sendfile: TLS with the kernel holding the keys sends them
 * with sendfile) or, when it says EOPNOTSUPP once (remembered for the
 * connection, so a layer without kernel TLS costs one call, not one per
 * file), read in 16 KiB chunks and written like any body, reads that must not
 * park through async_stream_try_read, and the lingering close's half
 * close through async_stream_shutdown_write (close_notify first).
 *
 * Stop, without failing a request.  Connection fibers run shielded from
 * cancellation (async_shield): a server shutting down lets each finish
 * the request in progress.  The shutdown (server.c) sets draining: every
 * response from then on says "Connection: close" (so does one whose fiber
 * was cancelled: its owner is stopping).  An idle keep-alive connection
 * is not closed under a client that may be sending its next request (the
 * request would meet a reset): it waits, on a fiber of its own once the
 * stop has reached it, and answers that request with Connection: close.
 * Only those still silent at the drain's deadline are closed: the
 * shutdown sets cutting and shuts their read side down.  Parked-idle and
 * cutting are a Dekker pair: the connection stores parked then loads
 * cutting, the shutdown stores cutting then loads parked, both seq_cst,
 * so one of them sees the other. */
#include "engine.h"

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_ROUND (256 * 1024) /* bytes dropped per wake before others get a turn */
#define FILE_CHUNK (16 * 1024)    /* a layered stream's file read: one TLS record */

struct http_conn *async__http_conn_new(struct async_http_server *srv, async_stream *s)
{
    struct http_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->s = s;
    c->fd = async_stream_fd(s);
    c->layered = async_stream_layered(s) == 1;
    c->cap = (uint32_t)srv->in_size;
    c->fresh = true;
    c->head_started = -1;
    c->awake = true;
    atomic_fetch_add_explicit(&srv->open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->total, 1, memory_order_relaxed);
    if (!srv->simple) {
        pthread_mutex_lock(&srv->lock);
        c->next = srv->conns;
        if (c->next != NULL)
            c->next->prev = c;
        srv->conns = c;
        pthread_mutex_unlock(&srv->lock);
    }
    return c;
}

/* Lets go of the buffers a parked connection does not keep. */
static void drop_buffers(struct http_conn *c)
{
    async__http_buf_put(c->srv, c->in);
    c->in = NULL;
    if (c->out.buf != NULL)
        async__http_out_put(c->srv, &c->out);
    if (c->hdr.buf != NULL)
        async__http_out_put(c->srv, &c->hdr);
    async__http_logq_free(c->logq);
    c->logq = NULL;
}

void async__http_conn_free(struct http_conn *c)
{
    struct async_http_server *srv = c->srv;

    if (!srv->simple) {
        pthread_mutex_lock(&srv->lock);
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&srv->lock);
    }
    /* answers that never left are logged with the bytes that did: none */
    async__http_logq_settle(c, 0);
    async_stream_close(c->s);
    drop_buffers(c);
    free(c->peer);
    free(c);
    /* last: the server may be freed once open reaches 0 */
    atomic_fetch_sub_explicit(&srv->open, 1, memory_order_release);
}

/* ---- deadlines ---- */

int64_t async__http_deadline(int64_t at_ms)
{
    int64_t prev = async_deadline(at_ms);

    if (prev >= 0 && prev < at_ms)
        async_deadline(prev); /* the handler's own deadline comes first */
    return prev;
}

/* ---- writing ---- */

/* The peer reads too slowly for the socket buffer: wait, but no longer
 * than send_timeout_ms since the last write that made progress. */
static int wait_writable(struct http_conn *c)
{
    int64_t prev = async__http_deadline(async_now_ms() + c->srv->send_timeout_ms);
    int rc = async_stream_wait(c->s, ASYNC_WRITABLE);

    async_deadline(prev);
    return rc;
}

/* One write through the stream's layer, bounded like wait_writable. */
static ssize_t layered_write(struct http_conn *c, const char *p, size_t n)
{
    int64_t prev = async__http_deadline(async_now_ms() + c->srv->send_timeout_ms);
    ssize_t k = async_stream_write(c->s, p, n);
    int err = errno;

    async_deadline(prev);
    errno = err;
    return k;
}

/* Sends p[0..n); 0, or -1 when the peer went or stalled.  *sent: how many
 * bytes left either way. */
static int send_all(struct http_conn *c, const char *p, size_t n, bool more, size_t *sent)
{
    ssize_t k;

    *sent = 0;
    while (n > 0) {
        if (__builtin_expect(c->layered, 0))
            k = layered_write(c, p, n);
        else
            k = send(c->fd, p, n, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            *sent += (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && errno == EAGAIN) {
            if (wait_writable(c) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

int async__http_flush(struct http_conn *c, bool more)
{
    struct async_http_request *r = c->cur;
    size_t sent = 0, got;
    int rc = 0;

    if (c->out.len > 0)
        rc = send_all(c, c->out.buf, c->out.len, more, &sent);
    if (r != NULL && r->head_sent) { /* the body bytes of the response in progress */
        got = sent > r->body_start ? sent - r->body_start : 0;
        r->body_sent += got < r->pending ? got : r->pending;
        r->pending = 0;
        r->body_start = 0;
    }
    c->out.len = 0;
    async__http_count_bytes(c->srv, sent);
    async__http_logq_settle(c, sent);
    return rc;
}

int async__http_send_direct(struct http_conn *c, const char *p, size_t n, size_t *sent)
{
    int rc;

    *sent = 0;
    if (async__http_flush(c, true) != 0)
        return -1;
    rc = send_all(c, p, n, false, sent);
    async__http_count_bytes(c->srv, *sent);
    return rc;
}

/* sendfile for a layered stream, by the layer itself (kernel TLS): 0,
 * -1 when the peer went or stalled, or 1 when the layer cannot send files
 * on this connection (nothing sent: the caller copies). */
static int send_file_by_layer(struct http_conn *c, int fd, off_t off, uint64_t len, uint64_t *sent)
{
    int64_t prev;
    ssize_t k;
    int err;

    while (len > 0) {
        prev = async__http_deadline(async_now_ms() + c->srv->send_timeout_ms);
        k = async_stream_sendfile(c->s, fd, &off, len > (1u << 30) ? (1u << 30) : (size_t)len);
        err = errno;
        async_deadline(prev);
        if (k > 0) {
            len -= (uint64_t)k;
            *sent += (uint64_t)k;
            async__http_count_bytes(c->srv, (uint64_t)k);
            continue;
        }
        if (k < 0 && err == EOPNOTSUPP && *sent == 0) {
            c->layer_copies = true;
            return 1;
        }
        errno = k == 0 ? EIO : err; /* 0: the file ended early, the length is a lie now */
        return -1;
    }
    return 0;
}

/* The copy: the file read in chunks and written through the layer (the
 * buffer is the call's: the write may park). */
static int send_file_copied(struct http_conn *c, int fd, off_t off, uint64_t len, uint64_t *sent)
{
    char *buf = malloc(FILE_CHUNK);
    size_t part;
    ssize_t k;
    int rc = 0;

    if (buf == NULL)
        return -1;
    while (len > 0 && rc == 0) {
        k = pread(fd, buf, len < FILE_CHUNK ? (size_t)len : FILE_CHUNK, off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO; /* the file ended early: the length is a lie now */
            rc = -1;
            break;
        }
        rc = send_all(c, buf, (size_t)k, false, &part);
        *sent += part;
        async__http_count_bytes(c->srv, part);
        off += k;
        len -= (uint64_t)k;
    }
    free(buf);
    return rc;
}

/* sendfile for a layered stream: by the layer, else copied. */
static int send_file_layered(struct http_conn *c, int fd, off_t off, uint64_t len, uint64_t *sent)
{
    int rc;

    if (!c->layer_copies && (rc = send_file_by_layer(c, fd, off, len, sent)) <= 0)
        return rc;
    return send_file_copied(c, fd, off, len, sent);
}

int async__http_send_file(struct http_conn *c, int fd, off_t off, uint64_t len, uint64_t *sent)
{
    ssize_t k;

    *sent = 0;
    if (async__http_flush(c, true) != 0)
        return -1;
    if (c->layered)
        return send_file_layered(c, fd, off, len, sent);
    while (len > 0) {
        k = sendfile(c->fd, fd, &off, len > (1u << 30) ? (1u << 30) : (size_t)len);
        if (k > 0) {
            len -= (uint64_t)k;
            *sent += (uint64_t)k;
            async__http_count_bytes(c->srv, (uint64_t)k);
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && errno == EAGAIN) {
            if (wait_writable(c) != 0)
                return -1;
        } else {
            if (k == 0)
                errno = EIO; /* the file ended early: the length is a lie now */
            return -1;
        }
    }
    return 0;
}

/* ---- reading ---- */

ssize_t async__http_read(struct http_conn *c, void *buf, size_t len)
{
    /* (after a short read, async_stream_read waits for the reactor instead
     * of paying for a recv that would say EAGAIN) */
    return async_stream_read(c->s, buf, len);
}

/* Reads more into in[len..cap), compacting first when needed.  Bytes read,
 * 0 at end of stream, -1 on error (errno ETIMEDOUT past the deadline). */
static ssize_t fill(struct http_conn *c)
{
    ssize_t n;

    if (c->off > 0 && (c->len == c->off || c->cap - c->len < 1024)) {
        memmove(c->in, c->in + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == c->cap) {
        errno = ENOBUFS;
        return -1;
    }
    n = async_stream_read(c->s, c->in + c->len, c->cap - c->len);
    if (n > 0)
        c->len += (uint32_t)n;
    return n;
}

/* ---- the loop ---- */

enum step {
    STEP_MORE,
    STEP_CLOSE,
    STEP_LINGER,    /* close, but the peer may still be sending */
    STEP_GONE,      /* parked: a fiber starts when bytes arrive */
};

/* A request the handler will not see: what was parsed of it, if anything. */
static void unparsed(struct async_http_request *req, struct http_conn *c, bool blank)
{
    req->c = c;
    req->valid = false;
    req->tag = NULL;
    req->host = NULL;
    req->started_us = 0;
    req->duration_us = -1;
    req->body_done = true;
    req->body_error = 0;
    req->body_malformed = false;
    req->continue_due = false;
    req->duplex = false;
    if (blank)
        memset(&req->h, 0, offsetof(struct http_request, headers));
}

/* An answer for a request we will not read to the end: then close,
 * lingering.  req holds what was parsed (possibly nothing). */
static enum step refuse(struct http_conn *c, struct async_http_request *req, int status)
{
    c->cur = req;
    async__http_error(req, status, true);
    async__http_exchange_done(req); /* the error hook may have tagged it */
    c->cur = NULL;
    return STEP_LINGER;
}

/* Answers the request whose head is in[off..off+head). */
static enum step serve_one(struct http_conn *c, struct async_http_request *req, size_t head)
{
    struct async_http_server *srv = c->srv;
    size_t body = c->off + head;
    bool has_body = req->h.chunked || req->h.content_length > 0;
    enum step s;
    int rc;

    if (req->h.has_content_length && req->h.content_length > srv->max_body_bytes) {
        unparsed(req, c, false);
        async__http_refused_head(req); /* its Host chooses the error hook's page */
        return refuse(c, req, 413);
    }
    if (has_body && c->off > 0) {
        /* Move the head to the front for the room the body needs; parsing
         * it again there points req at its new place. */
        memmove(c->in, c->in + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
        async__http_parse_request(c->in, c->len, srv->max_header_bytes, srv->max_headers,
                                  &req->h);
        body = head;
    }
    async__http_request_init(req, c, body);
    if (!req->valid) /* a target the engine answers itself (400, 414) */
        return refuse(c, req, req->status);
    c->cur = req;
    async_deadline(-1); /* the handler's time is its own */
    rc = srv->fn(req, srv->ctx);
    if (async__http_request_finish(req, rc)) {
        s = STEP_MORE;
    } else if (req->broken || !req->body_done) {
        s = req->broken ? STEP_CLOSE : STEP_LINGER;
    } else {
        /* bytes the peer sent after a request that closes: drain them */
        s = req->body_at < c->len ? STEP_LINGER : STEP_CLOSE;
    }
    c->off = (uint32_t)req->body_at;
    if (s == STEP_MORE && c->out.len >= ASYNC_HTTP_COALESCE_BYTES &&
        async__http_flush(c, false) != 0)
        s = STEP_CLOSE;
    c->cur = NULL;
    return s;
}

/* Answers every complete request in the buffer. */
static enum step serve_buffered(struct http_conn *c)
{
    struct async_http_server *srv = c->srv;
    struct async_http_request req;
    enum step s;
    long n;

    while (c->off < c->len) {
        n = async__http_parse_request(c->in + c->off, c->len - c->off, srv->max_header_bytes,
                                      srv->max_headers, &req.h);
        if (n == 0)
            return STEP_MORE;
        if (n < 0) {
            unparsed(&req, c, false);
            return refuse(c, &req, (int)-n);
        }
        c->head_started = -1;
        c->fresh = false;
        if ((s = serve_one(c, &req, (size_t)n)) != STEP_MORE)
            return s;
    }
    return STEP_MORE;
}

static void *conn_resume(void *arg);
static void *linger_resume(void *arg);

/* Hands the connection to a fiber that starts when bytes (or the end)
 * arrive, keeping no buffer; the sweeper shuts it down at until.
 * STEP_GONE, or STEP_CLOSE (a drain under way, or no memory). */
static enum step park(struct http_conn *c, enum http_park how, int64_t until, async_fn resume)
{
    drop_buffers(c);
    atomic_store_explicit(&c->park_until, until, memory_order_relaxed);
    atomic_store(&c->parked, (uint8_t)how); /* then load cutting: see the top */
    if (how == PARK_IDLE && atomic_load(&c->srv->cutting)) {
        atomic_store(&c->parked, PARK_NONE);
        return STEP_CLOSE;
    }
    if (async_spawn_when_readable(c->s, resume, c) == 0)
        return STEP_GONE; /* c belongs to the next fiber now */
    atomic_store(&c->parked, PARK_NONE);
    return STEP_CLOSE;
}

/* Waits on this fiber, as a parked connection would, until bytes come or
 * until: STEP_MORE to read them, STEP_CLOSE at the deadline or once the
 * drain cuts idle connections. */
static enum step wait_here(struct http_conn *c, int64_t until)
{
    int rc;

    atomic_store_explicit(&c->park_until, until, memory_order_relaxed);
    atomic_store(&c->parked, PARK_IDLE); /* then load cutting: see the top */
    if (atomic_load(&c->srv->cutting)) {
        atomic_store(&c->parked, PARK_NONE);
        return STEP_CLOSE;
    }
    async_deadline(until);
    rc = async_stream_wait(c->s, ASYNC_READABLE);
    atomic_store(&c->parked, PARK_NONE);
    return rc == 0 ? STEP_MORE : STEP_CLOSE;
}

/* Waits for and reads the next bytes.  STEP_CLOSE when the connection
 * should end (peer gone, drain, header timeout), STEP_GONE when it went
 * idle and was parked. */
static enum step read_more(struct http_conn *c)
{
    struct async_http_server *srv = c->srv;
    ssize_t n;

    if (c->off == c->len) { /* between requests */
        int64_t until = async_now_ms() +
                        (c->fresh ? srv->header_timeout_ms : srv->keepalive_timeout_ms);

        c->off = c->len = 0;
        if (atomic_load(&srv->cutting) || (!c->fresh && srv->keepalive_timeout_ms == 0))
            return STEP_CLOSE;
        /* A new connection's first request is usually on its way, and a
         * woken one has bytes waiting: try a read first.  A connection
         * that may park never waits here with a stack and a buffer. */
        if (c->awake || !c->parks) {
            c->awake = false;
            n = c->layered ? async_stream_try_read(c->s, c->in, c->cap)
                           : recv(c->fd, c->in, c->cap, MSG_DONTWAIT);
            if (n > 0) {
                c->len = (uint32_t)n;
                return STEP_MORE;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                return STEP_CLOSE;
        }
        if (!c->parks)
            return wait_here(c, until);
        /* Once a stop has reached it, it waits on its fiber (a parked one
         * would be started again at once by its group's cancel), and
         * reads what woke it as a woken parked one does. */
        if (async__http_ending(srv)) {
            c->awake = true;
            return wait_here(c, until);
        }
        return park(c, PARK_IDLE, until, conn_resume);
    }
    if (c->head_started < 0)
        c->head_started = async_now_ms();
    async_deadline(c->head_started + srv->header_timeout_ms);
    n = fill(c);
    if (n > 0)
        return STEP_MORE; /* the header timeout starts if the head is not complete */
    if (n < 0 && errno == ETIMEDOUT) {
        /* a slow head: say so, then close (no lingering) */
        struct async_http_request req;

        unparsed(&req, c, true);
        async_deadline(-1); /* the answer's writes have send_timeout_ms of their own */
        refuse(c, &req, 408);
    }
    return STEP_CLOSE;
}

/* ---- lingering close ---- */

/* Reads and drops what the peer sends.  STEP_GONE once parked again,
 * STEP_CLOSE when lingering is over (the peer closed, or a bound was
 * reached). */
static enum step discard(struct http_conn *c, int64_t now)
{
    static __thread char sink[16384];
    struct async_http_server *srv = c->srv;
    size_t round = 0;
    int64_t until;
    ssize_t n;

    for (;;) {
        while (round < LINGER_ROUND) {
            n = c->layered ? async_stream_try_read(c->s, sink, sizeof(sink))
                           : recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n > 0) {
                round += (size_t)n;
                if ((c->lingered += (uint64_t)n) > srv->lingering_max_bytes)
                    return STEP_CLOSE;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            return STEP_CLOSE; /* the end: the peer read our answer and closed */
        }
        if (now >= c->linger_end)
            return STEP_CLOSE;
        until = now + srv->lingering_timeout_ms;
        until = until < c->linger_end ? until : c->linger_end;
        if (c->parks) /* after a full round the socket is still readable: the park is a yield */
            return park(c, PARK_LINGER, until, linger_resume);
        async_deadline(until);
        if (round >= LINGER_ROUND)
            async_yield();
        else if (async_stream_wait(c->s, ASYNC_READABLE) != 0)
            return STEP_CLOSE;
        round = 0;
        now = async_now_ms();
    }
}

/* The answer has been sent (flushed): start lingering. */
static enum step linger(struct http_conn *c)
{
    int64_t now = async_now_ms();

    if (c->srv->lingering_time_ms == 0 ||
        (c->layered ? async_stream_shutdown_write(c->s) : shutdown(c->fd, SHUT_WR)) != 0)
        return STEP_CLOSE;
    c->linger_end = now + c->srv->lingering_time_ms;
    c->lingered = 0;
    return discard(c, now);
}

/* The fiber of a lingering connection with bytes, the end, or a timeout. */
static void *linger_resume(void *arg)
{
    struct http_conn *c = arg;
    int64_t now = async_now_ms();

    atomic_store_explicit(&c->parked, PARK_NONE, memory_order_relaxed);
    /* Past its deadline (the sweeper woke it, or the bytes came too late),
     * or cancelled (a stop starts every parked fiber, and a park now would
     * start again at once): once more, then close. */
    if (now >= atomic_load_explicit(&c->park_until, memory_order_relaxed) ||
        async_cancelled() > 0 || atomic_load(&c->srv->draining)) {
        c->linger_end = now;
        discard(c, now);
        async__http_conn_free(c);
        return NULL;
    }
    if (discard(c, now) == STEP_CLOSE)
        async__http_conn_free(c);
    return NULL;
}

static void conn_loop(struct http_conn *c)
{
    enum step s;

    for (;;) {
        s = serve_buffered(c);
        if (async__http_flush(c, false) != 0)
            s = STEP_CLOSE;
        if (s == STEP_MORE)
            s = read_more(c);
        if (s == STEP_MORE)
            continue;
        if (s == STEP_GONE)
            return; /* c belongs to the next fiber now */
        async__http_flush(c, false); /* a 408 from read_more */
        if (s == STEP_LINGER && linger(c) == STEP_GONE)
            return;
        break;
    }
    async__http_conn_free(c);
}

/* Gets the buffers a running connection reads and writes with. */
static bool take_buffer(struct http_conn *c)
{
    c->in = async__http_buf_get(c->srv);
    return c->in != NULL && async__http_out_get(c->srv, &c->out) == 0 &&
           async__http_out_get(c->srv, &c->hdr) == 0;
}

/* The fiber of a connection that was idle and has bytes (or news) now. */
static void *conn_resume(void *arg)
{
    struct http_conn *c = arg;

    async_shield(1); /* see async__http_conn_main */
    atomic_store_explicit(&c->parked, PARK_NONE, memory_order_relaxed);
    /* A stop starts every idle connection at once (its group's cancel):
     * one with nothing to say yet waits for its next request (or the
     * drain's deadline) here, before it takes a buffer.  (A layered
     * stream cannot peek: its loop reads and meets the drain there.) */
    if (async__http_ending(c->srv) && !c->layered) {
        char b;

        if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN &&
            wait_here(c, atomic_load_explicit(&c->park_until, memory_order_relaxed)) !=
                STEP_MORE) {
            async__http_conn_free(c);
            return NULL;
        }
    }
    if (!take_buffer(c)) {
        async__http_conn_free(c);
        return NULL;
    }
    c->head_started = -1;
    c->awake = true;
    conn_loop(c);
    return NULL;
}

void *async__http_conn_main(void *arg)
{
    struct http_conn *c = arg;

    /* A stop cancels the group; a connection instead finishes the request
     * in hand and leaves when the shutdown says so. */
    async_shield(1);
    if (!take_buffer(c)) {
        async__http_conn_free(c);
        return NULL;
    }
    conn_loop(c);
    return NULL;
}

/* On the caller's fiber, unshielded: cancelling it ends the connection. */
void async__http_conn_run(struct http_conn *c)
{
    int64_t deadline = async_deadline(-1);

    if (!take_buffer(c))
        async__http_conn_free(c);
    else
        conn_loop(c);
    async_deadline(deadline);
}
