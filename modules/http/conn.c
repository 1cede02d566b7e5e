/* modules/http/conn.c — one fiber per connection while it has work,
 * written like blocking code: read, answer every complete request in the
 * buffer, write the answers in one go, repeat.
 *
 * Buffer.  in[off..len) holds bytes not yet consumed; a request head is
 * parsed in place and its slices stay valid until the answer is built.  A
 * body is consumed before the answer (so a huge upload cannot deadlock
 * against a huge answer): its bytes are cut out of the buffer, the head
 * before them stays where it is.
 *
 * Output.  Answers to pipelined requests gather in out and leave in one
 * send when no complete request is left in the buffer (or out grows
 * large); a file body follows its head with sendfile.  Their access-log
 * lines are written once they have left (log_line.c).
 *
 * Parked connections hold no fiber, no stack and no buffer: a connection
 * waiting for its first request (header_timeout_ms), idle between requests
 * (keepalive_timeout_ms) or lingering after the server closed it (below)
 * is handed to a fiber that starts only when bytes or the end arrive
 * (async_spawn_when_readable).  Its deadline is park_until, kept by the
 * sweeper (http.c), which shuts the read side down once it passes: that
 * makes the socket readable, so the connection wakes and ends.
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
 * Timeouts while a fiber runs are its deadline, set per phase:
 * header_timeout_ms from a head's first byte, body_timeout_ms per body,
 * send_timeout_ms per write that makes progress.
 *
 * Stop.  Connection fibers run shielded from the module's cancellation
 * (async_shield): a stopping server lets each finish the request in
 * progress.  The drain (http.c) sets srv->draining and shuts the read side
 * of idle connections (their read returns 0); past the daemon's budget it
 * shuts every connection down.  Parked-idle and draining are a Dekker
 * pair: the connection stores parked then loads draining, the drain
 * stores draining then loads parked, both seq_cst, so one of them sees
 * the other. */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_FLUSH (64 * 1024)   /* send gathered answers once out is this big */
#define LINGER_ROUND (256 * 1024) /* bytes dropped per wake before others get a turn */

enum park {
    PARK_NONE,                  /* a fiber runs it */
    PARK_IDLE,                  /* waiting for a request */
    PARK_LINGER,                /* closed by us, dropping what the peer still sends */
};

/* Kept small: a parked connection is this, its stream and a parked task
 * (about 150 + 128 + 144 bytes of malloc chunks). */
struct http_conn {
    struct http_server *srv;
    async_stream *s;
    struct http_conn *prev, *next; /* srv->conns, under srv->lock */
    char *in;                   /* NULL while parked */
    struct http_out out;
    struct http_logq *logq;     /* access-log lines waiting for their bytes */
    _Atomic int64_t park_until; /* parked: when the sweeper shuts it down */
    int64_t head_started;       /* when the head being read began, ms */
    int64_t linger_end;         /* lingering: the end of lingering_time_ms */
    uint64_t lingered;          /* lingering: bytes dropped so far */
    int fd;
    uint32_t off, len, cap;     /* in[off..len) unread; cap: srv->in_size */
    _Atomic uint8_t parked;     /* enum park; read by the sweeper and the drain */
    bool awake;                 /* new or just woken: try a read before parking */
    bool fresh;                 /* no request yet: the idle limit is header_timeout_ms */
    struct http_log_peer peer;  /* for the access log */
};

/* A mutex, not a spinlock: the drain and the sweeper walk every
 * connection under it. */
static void lock(struct http_server *srv)
{
    pthread_mutex_lock(&srv->lock);
}

static void unlock(struct http_server *srv)
{
    pthread_mutex_unlock(&srv->lock);
}

struct http_conn *http_conn_new(struct http_server *srv, async_stream *s)
{
    struct http_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->s = s;
    c->fd = async_stream_fd(s);
    c->cap = (uint32_t)srv->in_size;
    c->fresh = true;
    atomic_fetch_add_explicit(&srv->open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->total, 1, memory_order_relaxed);
    lock(srv);
    c->next = srv->conns;
    if (c->next != NULL)
        c->next->prev = c;
    srv->conns = c;
    unlock(srv);
    return c;
}

/* Lets go of the buffers a parked connection does not keep. */
static void drop_buffers(struct http_conn *c)
{
    http_buf_put(c->srv, c->in);
    c->in = NULL;
    free(c->out.buf);
    c->out = (struct http_out){0};
    http_logq_free(c->logq);
    c->logq = NULL;
}

static void conn_free(struct http_conn *c)
{
    struct http_server *srv = c->srv;

    lock(srv);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    unlock(srv);
    /* answers that never left are logged with the bytes that did: none */
    http_logq_settle(c->logq, srv->log, 0);
    async_stream_close(c->s);
    drop_buffers(c);
    free(c);
    /* last: http.c frees srv once open reaches 0 */
    atomic_fetch_sub_explicit(&srv->open, 1, memory_order_release);
}

void http_conn_close(struct http_conn *c)
{
    conn_free(c);
}

void http_conns_drain(struct http_server *srv)
{
    struct http_conn *c;

    lock(srv);
    for (c = srv->conns; c != NULL; c = c->next)
        if (atomic_load(&c->parked) == PARK_IDLE)
            shutdown(c->fd, SHUT_RD);
    unlock(srv);
}

void http_conns_abort(struct http_server *srv)
{
    struct http_conn *c;

    lock(srv);
    for (c = srv->conns; c != NULL; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    unlock(srv);
}

void http_conns_expire(struct http_server *srv, int64_t now)
{
    struct http_conn *c;

    lock(srv);
    for (c = srv->conns; c != NULL; c = c->next)
        if (atomic_load_explicit(&c->parked, memory_order_acquire) != PARK_NONE &&
            now >= atomic_load_explicit(&c->park_until, memory_order_relaxed))
            shutdown(c->fd, SHUT_RD);
    unlock(srv);
}

/* ---- writing ---- */

/* The peer reads too slowly for the socket buffer: wait, but no longer
 * than send_timeout_ms since the last write that made progress (which was
 * the one just before). */
static int wait_writable(struct http_conn *c)
{
    async_deadline(async_now_ms() + c->srv->cfg.send_timeout_ms);
    return async_stream_wait(c->s, ASYNC_WRITABLE);
}

/* Sends p[0..n); 0, or -1 when the peer went or stalled.  *sent: how many
 * bytes left either way. */
static int send_all(struct http_conn *c, const char *p, size_t n, bool more, size_t *sent)
{
    ssize_t k;

    *sent = 0;
    while (n > 0) {
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

/* Sends what out gathered, then logs the answers in it. */
static int flush(struct http_conn *c, bool more)
{
    size_t sent = 0;
    int rc = 0;

    if (c->out.len > 0)
        rc = send_all(c, c->out.buf, c->out.len, more, &sent);
    c->out.len = 0;
    http_logq_settle(c->logq, c->srv->log, sent);
    return rc;
}

/* Sends the file range of r; 0 or -1.  *sent: the bytes that left. */
static int send_file(struct http_conn *c, struct http_reply *r, uint64_t *sent)
{
    off_t off = r->file_off;
    uint64_t left = r->file_len;
    ssize_t k;

    *sent = 0;
    while (left > 0) {
        k = sendfile(c->fd, r->file->fd, &off, left > (1u << 30) ? (1u << 30) : (size_t)left);
        if (k > 0) {
            left -= (uint64_t)k;
            *sent += (uint64_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && errno == EAGAIN) {
            if (wait_writable(c) != 0)
                return -1;
        } else {
            return -1; /* k == 0: the file shrank under us; the length is a lie now */
        }
    }
    return 0;
}

/* ---- reading ---- */

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
    /* (after a short read, async_stream_read waits for the reactor instead
     * of paying for a recv that would say EAGAIN) */
    n = async_stream_read(c->s, c->in + c->len, c->cap - c->len);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

/* Consumes the body that follows the head in[off..body): bytes past the
 * body stay in the buffer, right after the head.  While more is needed
 * every buffered byte after the head was body, so len == body and the
 * read has cap - body >= HTTP_IN_EXTRA bytes of room (the head starts at 0,
 * see serve_one).  0, or the status to answer with before closing (400,
 * 408, 413), or -1 when the peer went. */
static int consume_body(struct http_conn *c, const struct http_request *req, size_t body)
{
    const struct http_config *cfg = &c->srv->cfg;
    struct http_chunked ch;
    uint64_t left = req->content_length, data = 0;
    size_t avail, take;
    ssize_t n;
    long k;

    http_chunked_init(&ch);
    async_deadline(async_now_ms() + cfg->body_timeout_ms);
    for (;;) {
        avail = c->len - body;
        if (req->chunked) {
            k = http_chunked_feed(&ch, c->in + body, avail, &data, NULL, NULL);
            if (k < 0)
                return 400;
            take = (size_t)k;
            if (data > cfg->max_body_bytes || ch.left > cfg->max_body_bytes - data)
                return 413;
        } else {
            take = avail < left ? avail : (size_t)left;
            left -= take;
        }
        memmove(c->in + body, c->in + body + take, avail - take);
        c->len -= take;
        if (req->chunked ? ch.done : left == 0)
            return 0;
        n = async_stream_read(c->s, c->in + c->len, c->cap - c->len);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == ETIMEDOUT ? 408 : -1;
        c->len += (size_t)n;
    }
}

/* ---- answering ---- */

static void set_allow(struct http_out *o, struct http_reply *r, const struct http_request *req)
{
    if (req->method == HTTP_OPTIONS)
        http_reply_simple(o, r, req, 204, NULL, NULL, 0, "Allow: GET, HEAD, OPTIONS\r\n");
    else
        http_reply_simple(o, r, req, 405, "text/plain; charset=utf-8", "Method Not Allowed\n",
                          19, "Allow: GET, HEAD, OPTIONS\r\n");
}

static void error_page(struct http_out *o, struct http_reply *r, const struct http_request *req,
                       int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));

    http_reply_simple(o, r, req, status, "text/plain; charset=utf-8", body, (size_t)n, NULL);
}

/* The path part of the target: origin-form as is, absolute-form without
 * scheme and authority. */
static struct http_slice target_path(const struct http_request *req)
{
    struct http_slice p = req->path;
    const char *s;
    size_t skip;

    if (p.n > 0 && p.p[0] == '/')
        return p;
    if (p.n > 7 && strncasecmp(p.p, "http://", 7) == 0)
        skip = 7;
    else if (p.n > 8 && strncasecmp(p.p, "https://", 8) == 0)
        skip = 8;
    else
        return (struct http_slice){NULL, 0};
    s = memchr(p.p + skip, '/', p.n - skip);
    if (s == NULL)
        return (struct http_slice){"/", 1};
    return (struct http_slice){s, p.n - (size_t)(s - p.p)};
}

static void answer(struct http_conn *c, const struct http_request *req, struct http_reply *r)
{
    struct http_server *srv = c->srv;
    struct http_slice raw = target_path(req);
    char path[4096 + 1];
    size_t i;

    if (req->method == HTTP_OTHER || req->method == HTTP_CONNECT) {
        error_page(&c->out, r, req, 501);
        return;
    }
    if (req->target.n == 1 && req->target.p[0] == '*') {
        if (req->method == HTTP_OPTIONS)
            set_allow(&c->out, r, req);
        else
            error_page(&c->out, r, req, 400);
        return;
    }
    if (raw.n >= sizeof(path)) {
        error_page(&c->out, r, req, 414);
        return;
    }
    if (raw.p == NULL || http_path_normalize(raw.p, raw.n, path) < 0) {
        error_page(&c->out, r, req, 400);
        return;
    }
    if (srv->cfg.status_path != NULL && strcmp(path, srv->cfg.status_path) == 0) {
        if (req->method == HTTP_GET || req->method == HTTP_HEAD)
            http_status_reply(srv, req, &c->out, r);
        else
            set_allow(&c->out, r, req);
        return;
    }
    for (i = 0; i < srv->cfg.nroutes; i++) {
        const struct http_route *rt = &srv->cfg.routes[i];

        if (strcmp(path, rt->path) != 0)
            continue;
        if (req->method == HTTP_GET || req->method == HTTP_HEAD)
            http_reply_route(&c->out, r, req, rt);
        else
            set_allow(&c->out, r, req);
        return;
    }
    if (srv->root_fd < 0) {
        error_page(&c->out, r, req, 404);
        return;
    }
    if (req->method == HTTP_GET || req->method == HTTP_HEAD)
        http_files_serve(srv, req, path, &c->out, r);
    else
        set_allow(&c->out, r, req);
}

/* Counts the answer just built (ending at out's end) and stages its log
 * line; a file body is logged after it has been sent. */
static void finish(struct http_conn *c, const struct http_request *req,
                   const struct http_reply *r)
{
    http_count_status(c->srv, r->status);
    if (c->srv->log != NULL && r->file == NULL)
        http_logq_add(&c->logq, &c->peer, req, r->status, c->out.len - r->body_bytes,
                      c->out.len, -1);
}

/* ---- the loop ---- */

enum step {
    STEP_MORE,
    STEP_CLOSE,
    STEP_LINGER,    /* close, but the peer may still be sending */
    STEP_GONE,      /* parked: a fiber starts when bytes arrive */
};

/* An answer for a request we will not read to the end: then close,
 * lingering. */
static enum step refuse(struct http_conn *c, const struct http_request *req, int status)
{
    struct http_reply r = {.close = true};

    error_page(&c->out, &r, req, status);
    finish(c, req, &r);
    return STEP_LINGER;
}

/* Sends the file body of r after everything gathered before it. */
static int send_file_reply(struct http_conn *c, const struct http_request *req,
                           struct http_reply *r)
{
    uint64_t sent = 0;
    int rc = flush(c, true) != 0 || send_file(c, r, &sent) != 0 ? -1 : 0;

    if (c->srv->log != NULL)
        http_logq_add(&c->logq, &c->peer, req, r->status, 0, 0, (int64_t)sent);
    http_logq_settle(c->logq, c->srv->log, 0);
    http_file_put(r->file);
    return rc;
}

/* Answers the request whose head is in[off..off+head). */
static enum step serve_one(struct http_conn *c, struct http_request *req, size_t head)
{
    const struct http_config *cfg = &c->srv->cfg;
    struct http_reply r = {0};
    size_t body = c->off + head, buffered = c->len - body;
    bool has_body = req->chunked || req->content_length > 0;
    int status;

    if (req->has_content_length && req->content_length > cfg->max_body_bytes)
        return refuse(c, req, 413);
    if (has_body && c->off > 0) {
        /* Move the head to the front for the room consume_body needs;
         * parsing it again there points req at its new place. */
        memmove(c->in, c->in + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
        http_parse_request(c->in, c->len, cfg->max_header_bytes, cfg->max_headers, req);
        body = head;
    }
    if (has_body) {
        if (req->expect_continue && (req->chunked || buffered < req->content_length)) {
            http_out_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            if (flush(c, false) != 0)
                return STEP_CLOSE;
        }
        if ((status = consume_body(c, req, body)) < 0)
            return STEP_CLOSE;
        if (status == 408) {
            /* a client too slow to send its body gets its 408 and a plain
             * close: lingering would only give it more time */
            refuse(c, req, status);
            return STEP_CLOSE;
        }
        if (status != 0)
            return refuse(c, req, status);
    }
    r.close = !req->keep_alive || atomic_load(&c->srv->draining) ||
              cfg->keepalive_timeout_ms == 0;
    answer(c, req, &r);
    finish(c, req, &r);
    c->off = body;
    if (r.file != NULL) {
        if (send_file_reply(c, req, &r) != 0)
            return STEP_CLOSE;
    } else if (c->out.len >= OUT_FLUSH && flush(c, false) != 0) {
        return STEP_CLOSE;
    }
    if (!r.close)
        return STEP_MORE;
    /* bytes the peer sent after a request that closes: drain them */
    return c->off < c->len ? STEP_LINGER : STEP_CLOSE;
}

/* Answers every complete request in the buffer. */
static enum step serve_buffered(struct http_conn *c)
{
    const struct http_config *cfg = &c->srv->cfg;
    struct http_request req;
    enum step s;
    long n;

    while (c->off < c->len) {
        n = http_parse_request(c->in + c->off, c->len - c->off, cfg->max_header_bytes,
                               cfg->max_headers, &req);
        if (n == 0)
            return STEP_MORE;
        if (n < 0)
            return refuse(c, req.method_name.n > 0 ? &req : NULL, (int)-n);
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
static enum step park(struct http_conn *c, enum park how, int64_t until, async_fn resume)
{
    drop_buffers(c);
    atomic_store_explicit(&c->park_until, until, memory_order_relaxed);
    atomic_store(&c->parked, (uint8_t)how); /* then load draining: see the top */
    if (how == PARK_IDLE && atomic_load(&c->srv->draining)) {
        atomic_store(&c->parked, PARK_NONE);
        return STEP_CLOSE;
    }
    if (async_spawn_when_readable(c->s, resume, c) == 0)
        return STEP_GONE; /* c belongs to the next fiber now */
    atomic_store(&c->parked, PARK_NONE);
    return STEP_CLOSE;
}

/* Waits for and reads the next bytes.  STEP_CLOSE when the connection
 * should end (peer gone, drain, header timeout), STEP_GONE when it went
 * idle and was parked. */
static enum step read_more(struct http_conn *c)
{
    const struct http_config *cfg = &c->srv->cfg;
    ssize_t n;

    if (c->off == c->len) { /* between requests */
        int64_t now = async_now_ms();

        c->off = c->len = 0;
        if (atomic_load(&c->srv->draining) || (!c->fresh && cfg->keepalive_timeout_ms == 0))
            return STEP_CLOSE;
        /* A new connection's first request is usually on its way, and a
         * woken one has bytes waiting: try a read first.  Never wait here
         * with a stack and a buffer: park. */
        if (c->awake) {
            c->awake = false;
            n = recv(c->fd, c->in, c->cap, MSG_DONTWAIT);
            if (n > 0) {
                c->len = (uint32_t)n;
                return STEP_MORE;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                return STEP_CLOSE;
        }
        return park(c, PARK_IDLE,
                    now + (c->fresh ? cfg->header_timeout_ms : cfg->keepalive_timeout_ms),
                    conn_resume);
    }
    if (c->head_started < 0)
        c->head_started = async_now_ms();
    async_deadline(c->head_started + cfg->header_timeout_ms);
    n = fill(c);
    if (n > 0)
        return STEP_MORE; /* the header timeout starts if the head is not complete */
    if (n < 0 && errno == ETIMEDOUT)
        refuse(c, NULL, 408); /* a slow head: say so, then close (no lingering) */
    return STEP_CLOSE;
}

/* ---- lingering close ---- */

/* Reads and drops what the peer sends.  STEP_GONE once parked again,
 * STEP_CLOSE when lingering is over (the peer closed, or a bound was
 * reached). */
static enum step discard(struct http_conn *c, int64_t now)
{
    static __thread char sink[16384];
    const struct http_config *cfg = &c->srv->cfg;
    size_t round = 0;
    int64_t until;
    ssize_t n;

    while (round < LINGER_ROUND) {
        n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n > 0) {
            round += (size_t)n;
            if ((c->lingered += (uint64_t)n) > cfg->lingering_max_bytes)
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
    /* after a full round the socket is still readable: the park is a yield */
    until = now + cfg->lingering_timeout_ms;
    return park(c, PARK_LINGER, until < c->linger_end ? until : c->linger_end, linger_resume);
}

/* The answer has been sent (flushed): start lingering. */
static enum step linger(struct http_conn *c)
{
    int64_t now = async_now_ms();

    if (c->srv->cfg.lingering_time_ms == 0 || shutdown(c->fd, SHUT_WR) != 0)
        return STEP_CLOSE;
    c->linger_end = now + c->srv->cfg.lingering_time_ms;
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
     * or the module stops (its cancel starts every parked fiber, and a
     * park now would start again at once): once more, then close. */
    if (now >= atomic_load_explicit(&c->park_until, memory_order_relaxed) ||
        async_module_stop_deadline(c->srv->host) >= 0) {
        c->linger_end = now;
        discard(c, now);
        conn_free(c);
        return NULL;
    }
    if (discard(c, now) == STEP_CLOSE)
        conn_free(c);
    return NULL;
}

static void *conn_loop(struct http_conn *c)
{
    enum step s;

    for (;;) {
        s = serve_buffered(c);
        if (flush(c, false) != 0)
            s = STEP_CLOSE;
        if (s == STEP_MORE)
            s = read_more(c);
        if (s == STEP_MORE)
            continue;
        if (s == STEP_GONE)
            return NULL; /* c belongs to the next fiber now */
        flush(c, false); /* a 408 from read_more */
        if (s == STEP_LINGER && linger(c) == STEP_GONE)
            return NULL;
        break;
    }
    conn_free(c);
    return NULL;
}

/* Gets the input buffer a running connection reads into. */
static bool take_buffer(struct http_conn *c)
{
    c->in = http_buf_get(c->srv, c->cap);
    return c->in != NULL;
}

/* The fiber of a connection that was idle and has bytes (or news) now. */
static void *conn_resume(void *arg)
{
    struct http_conn *c = arg;

    async_shield(1); /* see http_conn_main */
    atomic_store_explicit(&c->parked, PARK_NONE, memory_order_relaxed);
    /* The module's stop starts every idle connection at once (its group's
     * cancel): one with nothing to say leaves now, before it takes a
     * buffer, instead of waiting for the drain to cut it. */
    if (async_module_stop_deadline(c->srv->host) >= 0) {
        char b;

        if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN) {
            conn_free(c);
            return NULL;
        }
    }
    if (!take_buffer(c)) {
        conn_free(c);
        return NULL;
    }
    c->head_started = -1;
    c->awake = true;
    return conn_loop(c);
}

void *http_conn_main(void *arg)
{
    struct http_conn *c = arg;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    /* The module's stop cancels its group; a connection instead finishes
     * the request in hand and leaves when the drain says so. */
    async_shield(1);
    c->head_started = -1;
    c->awake = true;
    if (c->srv->log != NULL && getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            memcpy(c->peer.addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        else if (ss.ss_family == AF_INET6)
            memcpy(c->peer.addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
            c->peer.family = (uint8_t)ss.ss_family;
    }
    if (!take_buffer(c)) {
        conn_free(c);
        return NULL;
    }
    return conn_loop(c);
}
