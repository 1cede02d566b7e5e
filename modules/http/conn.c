/* modules/http/conn.c — one fiber per connection, written like blocking
 * code: read, answer every complete request in the buffer, write the
 * answers in one go, repeat.
 *
 * Buffer.  in[off..len) holds bytes not yet consumed; a request head is
 * parsed in place and its slices stay valid until the answer is built.  A
 * body is consumed before the answer (so a huge upload cannot deadlock
 * against a huge answer): its bytes are cut out of the buffer, the head
 * before them stays where it is.
 *
 * Output.  Answers to pipelined requests gather in out and leave in one
 * send when no complete request is left in the buffer (or out grows
 * large); a file body follows its head with sendfile.
 *
 * Timeouts are the fiber's deadline, set per phase: keepalive_timeout_ms
 * while idle, header_timeout_ms from a head's first byte, body_timeout_ms
 * per body, send_timeout_ms per write that makes progress.
 *
 * Stop.  Connection fibers run shielded from the module's cancellation
 * (async_shield): a stopping server lets each finish the request in
 * progress.  The drain (http.c) sets srv->draining, shuts the read side of
 * idle connections (their read returns 0) and, past the daemon's budget,
 * shuts every connection down.  Idle and draining are a Dekker pair: the
 * connection stores idle then loads draining, the drain stores draining
 * then loads idle, both seq_cst, so one of them sees the other. */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
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
#define DISCARD_CHUNK 16384

/* Kept small: an idle connection is this, its stream and a parked task
 * (128 + 128 + 144 bytes of malloc chunks). */
struct http_conn {
    struct http_server *srv;
    async_stream *s;
    struct http_conn *prev, *next; /* srv->conns, under srv->lock */
    char *in;                   /* NULL while idle */
    struct http_out out;
    _Atomic int64_t idle_at;    /* when it went idle; read by the sweeper after idle */
    int64_t head_started;       /* when the head being read began, ms */
    int fd;
    uint32_t off, len, cap;     /* in[off..len) unread; cap: srv->in_size */
    _Atomic bool idle;          /* waiting for the first byte of a request */
    bool awake;                 /* new or just woken: read before going idle */
    uint8_t peer_family;        /* AF_INET, AF_INET6, or 0: unknown (access log) */
    uint8_t peer[16];           /* its address */
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
    c->in = http_buf_get(srv, c->cap);
    if (c->in == NULL) {
        free(c);
        return NULL;
    }
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
    async_stream_close(c->s);
    http_buf_put(c->srv, c->in);
    free(c->out.buf);
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
        if (atomic_load(&c->idle))
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

/* ---- writing ---- */

/* The peer reads too slowly for the socket buffer: wait, but no longer
 * than send_timeout_ms since the last write that made progress (which was
 * the one just before). */
static int wait_writable(struct http_conn *c)
{
    async_deadline(async_now_ms() + c->srv->cfg.send_timeout_ms);
    return async_stream_wait(c->s, ASYNC_WRITABLE);
}

static int send_all(struct http_conn *c, const char *p, size_t n, bool more)
{
    ssize_t k;

    while (n > 0) {
        k = send(c->fd, p, n, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (k > 0) {
            p += k;
            n -= (size_t)k;
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

static int flush(struct http_conn *c, bool more)
{
    int rc = 0;

    if (c->out.len > 0)
        rc = send_all(c, c->out.buf, c->out.len, more);
    c->out.len = 0;
    return rc;
}

static int send_file(struct http_conn *c, struct http_reply *r)
{
    off_t off = r->file_off;
    uint64_t left = r->file_len;
    ssize_t k;

    while (left > 0) {
        k = sendfile(c->fd, r->file->fd, &off, left > (1u << 30) ? (1u << 30) : (size_t)left);
        if (k > 0) {
            left -= (uint64_t)k;
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

/* ---- access log ---- */

/* Appends s to the line, escaping what would break the format. */
static size_t log_str(char *dst, size_t room, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, i;

    for (i = 0; i < n && o + 4 < room; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\') {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        } else {
            dst[o++] = (char)ch;
        }
    }
    return o;
}

static const char *log_time(void)
{
    static __thread time_t at = -1;
    static __thread char text[32];
    time_t now = time(NULL);
    struct tm tm;

    if (now != at) {
        localtime_r(&now, &tm);
        strftime(text, sizeof(text), "%d/%b/%Y:%H:%M:%S %z", &tm);
        at = now;
    }
    return text;
}

static void log_request(struct http_conn *c, const struct http_request *req,
                        const struct http_reply *r)
{
    const struct http_slice *ref = req ? http_header_get(req, "referer") : NULL;
    const struct http_slice *ua = req ? http_header_get(req, "user-agent") : NULL;
    char line[2048], peer[INET6_ADDRSTRLEN] = "-";
    size_t n;

    if (c->peer_family != 0)
        inet_ntop(c->peer_family, c->peer, peer, sizeof(peer));
    n = (size_t)snprintf(line, sizeof(line), "%s - - [%s] \"", peer, log_time());
    if (req != NULL && req->method_name.n > 0) {
        n += log_str(line + n, 512, req->method_name.p, req->method_name.n);
        line[n++] = ' ';
        n += log_str(line + n, 1024, req->target.p, req->target.n);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " HTTP/1.%d", req->minor);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\" %d %" PRIu64 " \"", r->status,
                          r->body_bytes);
    n += log_str(line + n, 200, ref != NULL ? ref->p : "-", ref != NULL ? ref->n : 1);
    line[n++] = '"';
    line[n++] = ' ';
    line[n++] = '"';
    n += log_str(line + n, 200, ua != NULL ? ua->p : "-", ua != NULL ? ua->n : 1);
    line[n++] = '"';
    line[n++] = '\n';
    http_log_line(c->srv->log, line, n);
}

static void finish(struct http_conn *c, const struct http_request *req, struct http_reply *r)
{
    http_count_status(c->srv, r->status);
    if (c->srv->log != NULL)
        log_request(c, req, r);
}

/* ---- the loop ---- */

enum step {
    STEP_MORE,
    STEP_CLOSE,
    STEP_GONE,      /* handed to a fiber that starts when bytes arrive */
};

/* An answer for a request we will not read to the end: then close. */
static enum step refuse(struct http_conn *c, const struct http_request *req, int status)
{
    struct http_reply r = {.close = true};

    error_page(&c->out, &r, req, status);
    finish(c, req, &r);
    return STEP_CLOSE;
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
        http_parse_request(c->in, c->len, cfg->max_header_bytes, req);
        body = head;
    }
    if (has_body) {
        if (req->expect_continue && (req->chunked || buffered < req->content_length)) {
            http_out_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            if (flush(c, false) != 0)
                return STEP_CLOSE;
        }
        if ((status = consume_body(c, req, body)) != 0)
            return status < 0 ? STEP_CLOSE : refuse(c, req, status);
    }
    r.close = !req->keep_alive || atomic_load(&c->srv->draining) ||
              cfg->keepalive_timeout_ms == 0;
    answer(c, req, &r);
    finish(c, req, &r);
    c->off = body;
    if (r.file != NULL) {
        int rc = flush(c, true) != 0 || send_file(c, &r) != 0 ? -1 : 0;

        http_file_put(r.file);
        if (rc != 0)
            return STEP_CLOSE;
    } else if (c->out.len >= OUT_FLUSH && flush(c, false) != 0) {
        return STEP_CLOSE;
    }
    return r.close ? STEP_CLOSE : STEP_MORE;
}

/* Answers every complete request in the buffer. */
static enum step serve_buffered(struct http_conn *c)
{
    struct http_request req;
    long n;

    while (c->off < c->len) {
        n = http_parse_request(c->in + c->off, c->len - c->off, c->srv->cfg.max_header_bytes,
                               &req);
        if (n == 0)
            return STEP_MORE;
        if (n < 0)
            return refuse(c, req.method_name.n > 0 ? &req : NULL, (int)-n);
        c->head_started = -1;
        if (serve_one(c, &req, (size_t)n) == STEP_CLOSE)
            return STEP_CLOSE;
    }
    return STEP_MORE;
}

static void *conn_resume(void *arg);

/* An idle connection keeps no fiber and no buffers: it is handed to a
 * fiber that starts when bytes (or the end) arrive; the sweeper in http.c
 * shuts it down once idle past keepalive_timeout_ms.  STEP_GONE, or
 * STEP_MORE to wait here after all (no memory for the hand-over). */
static enum step hand_over(struct http_conn *c)
{
    http_buf_put(c->srv, c->in);
    free(c->out.buf);
    c->in = NULL;
    c->out = (struct http_out){0};
    if (async_spawn_when_readable(c->s, conn_resume, c) == 0)
        return STEP_GONE;
    c->in = http_buf_get(c->srv, c->cap);
    return c->in != NULL ? STEP_MORE : STEP_CLOSE;
}

/* Waits for and reads the next bytes.  STEP_CLOSE when the connection
 * should end (idle timeout, peer gone, drain, header timeout), STEP_GONE
 * when it went idle and was handed over. */
static enum step read_more(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    bool idle = c->off == c->len;
    enum step s;
    ssize_t n;

    if (idle) {
        int64_t now = async_now_ms();

        atomic_store_explicit(&c->idle_at, now, memory_order_relaxed);
        atomic_store(&c->idle, true);
        if (atomic_load(&srv->draining) || srv->cfg.keepalive_timeout_ms == 0) {
            atomic_store(&c->idle, false);
            return STEP_CLOSE;
        }
        c->off = c->len = 0;
        /* A new connection's first request is usually on its way, and a
         * woken one has bytes waiting: read first, hand over after. */
        if (!c->awake && (s = hand_over(c)) != STEP_MORE)
            return s;
        c->awake = false;
        async_deadline(now + srv->cfg.keepalive_timeout_ms);
    } else {
        if (c->head_started < 0)
            c->head_started = async_now_ms();
        async_deadline(c->head_started + srv->cfg.header_timeout_ms);
    }
    n = fill(c);
    atomic_store_explicit(&c->idle, false, memory_order_relaxed);
    if (n > 0)
        return STEP_MORE; /* the header timeout starts if the head is not complete */
    if (n < 0 && errno == ETIMEDOUT && !idle)
        refuse(c, NULL, 408); /* a slow head: say so, then close */
    return STEP_CLOSE;
}

static void *conn_loop(struct http_conn *c)
{
    for (;;) {
        enum step s = serve_buffered(c);

        if (flush(c, false) != 0 || s == STEP_CLOSE)
            break;
        s = read_more(c);
        if (s == STEP_GONE)
            return NULL; /* c belongs to the next fiber now */
        if (s == STEP_CLOSE) {
            flush(c, false);
            break;
        }
    }
    conn_free(c);
    return NULL;
}

/* The fiber of a connection that was idle and has bytes (or news) now. */
static void *conn_resume(void *arg)
{
    struct http_conn *c = arg;

    async_shield(1); /* see http_conn_main */
    atomic_store_explicit(&c->idle, false, memory_order_relaxed);
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
    c->in = http_buf_get(c->srv, c->cap);
    if (c->in == NULL) {
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
            memcpy(c->peer, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        else if (ss.ss_family == AF_INET6)
            memcpy(c->peer, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
            c->peer_family = (uint8_t)ss.ss_family;
    }
    return conn_loop(c);
}

void http_conns_expire(struct http_server *srv, int64_t now)
{
    int64_t limit = srv->cfg.keepalive_timeout_ms;
    struct http_conn *c;

    lock(srv);
    for (c = srv->conns; c != NULL; c = c->next)
        if (atomic_load_explicit(&c->idle, memory_order_acquire) &&
            now - atomic_load_explicit(&c->idle_at, memory_order_relaxed) >= limit)
            shutdown(c->fd, SHUT_RD);
    unlock(srv);
}
