/* runtime/http/request.c — the request object a handler sees: what was
 * asked (accessors), the body (read_body), and the response (status,
 * headers, writes), framed by the engine.
 *
 * Strings.  The head stays in the connection's input buffer until the
 * handler returns; before the handler runs, the byte after each slice the
 * accessors hand out (the SP after the method and the target, the ':'
 * after a field name, the CR or blank after a value) is overwritten with
 * a NUL, so every accessor returns a pointer into the buffer, copying
 * nothing.
 *
 * Framing is decided when the head goes out (emit_head): the handler's
 * Content-Length, else chunked for a streamed HTTP/1.1 body, else the end
 * of the connection (HTTP/1.0); a response finished before any write gets
 * Content-Length: 0. */
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define LIT(s) s, sizeof(s) - 1

/* ---- setting up ---- */

/* The path part of the target: origin-form as is, absolute-form without
 * scheme and authority. */
static struct http_slice target_path(const struct http_request *h)
{
    struct http_slice p = h->path;
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

/* The response side, as nothing had been said yet. */
static void response_reset(struct async_http_request *req)
{
    struct http_conn *c = req->c;

    req->status = 200;
    req->head_sent = false;
    req->has_length = false;
    req->chunked = false;
    req->until_close = false;
    req->no_body = req->h.method == HTTP_HEAD;
    req->own_server = false;
    req->own_date = false;
    req->broken = false;
    req->upgraded = false;
    req->length = 0;
    req->written = 0;
    req->body_sent = 0;
    req->body_start = 0;
    req->pending = 0;
    c->hdr.len = 0;
}

/* NUL-terminates the request line's slices, which the parser set only once
 * the whole line was read (each is followed by a SP). */
static void terminate_request_line(struct async_http_request *req)
{
    if (req->h.method_name.n > 0)
        ((char *)req->h.method_name.p)[req->h.method_name.n] = '\0';
    if (req->h.target.n > 0)
        ((char *)req->h.target.p)[req->h.target.n] = '\0';
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The host the request names: an absolute-form target's authority before
 * the Host field (RFC 9112 §3.2.2).  0, or -1 for an authority too long
 * to be a host name and port. */
static int set_host(struct async_http_request *req)
{
    struct http_slice a = {NULL, 0};

    if (req->h.target.p[0] != '/')
        a = async__http_target_authority(req->h.target);
    if (a.p == NULL) {
        req->host = req->h.host.p != NULL ? req->h.host.p : NULL;
        if (req->host == NULL && req->h.minor == 1)
            req->host = ""; /* the parser saw one: an empty Host */
        return 0;
    }
    if (a.n >= sizeof(req->authority))
        return -1;
    memcpy(req->authority, a.p, a.n);
    req->authority[a.n] = '\0';
    req->host = req->authority;
    return 0;
}

void async__http_request_init(struct async_http_request *req, struct http_conn *c,
                              size_t body_at)
{
    struct async_http_server *srv = c->srv;
    struct http_slice raw;
    unsigned i;

    req->c = c;
    req->tag = NULL;
    req->host = NULL;
    /* only logs and the duration histogram ask */
    req->started_us = srv->log_fmt != NULL || srv->time_requests ? now_us() : 0;
    req->duration_us = -1;
    req->body_at = body_at;
    req->valid = false;
    response_reset(req);
    req->close = !req->h.keep_alive || srv->keepalive_timeout_ms == 0 || async__http_ending(srv);
    /* body */
    async__http_chunked_init(&req->ch);
    req->body_left = req->h.chunked ? 0 : req->h.content_length;
    req->body_read = 0;
    req->body_deadline = -1;
    req->body_error = 0;
    req->body_malformed = false;
    req->body_done = !req->h.chunked && req->h.content_length == 0;
    req->continue_due = req->h.expect_continue && !req->body_done &&
                        (req->h.chunked || c->len - body_at < req->h.content_length);
    req->duplex = false;
    /* strings */
    terminate_request_line(req);
    req->query = req->h.query.p != NULL ? req->h.query.p : "";
    for (i = 0; i < req->h.nheaders; i++) {
        ((char *)req->h.headers[i].name.p)[req->h.headers[i].name.n] = '\0';
        ((char *)req->h.headers[i].value.p)[req->h.headers[i].value.n] = '\0';
    }
    if (req->h.target.n == 1 && req->h.target.p[0] == '*') {
        if (req->h.method != HTTP_OPTIONS) {
            req->status = 400;
            return;
        }
        memcpy(req->path, "*", 2);
        req->valid = true;
        return;
    }
    if (set_host(req) != 0) {
        req->status = 400;
        return;
    }
    raw = target_path(&req->h);
    if (raw.n > HTTP_PATH_MAX) {
        req->status = 414;
        return;
    }
    if (raw.p == NULL || async__http_path_normalize(raw.p, raw.n, req->path) < 0) {
        req->status = 400;
        return;
    }
    req->valid = true;
}

/* ---- what was asked ---- */

const char *async_http_method(const async_http_request *req)
{
    return req->h.method_name.n > 0 ? req->h.method_name.p : "";
}

const char *async_http_target(const async_http_request *req)
{
    return req->h.target.n > 0 ? req->h.target.p : "";
}

const char *async_http_path(const async_http_request *req)
{
    return req->valid ? req->path : "";
}

const char *async_http_query(const async_http_request *req)
{
    return req->valid ? req->query : "";
}

int async_http_version(const async_http_request *req)
{
    return req->h.minor == 0 ? 10 : 11;
}

const char *async_http_header(const async_http_request *req, const char *name)
{
    return req->valid ? async__http_field(req->h.headers, req->h.nheaders, name) : NULL;
}

int async_http_header_at(const async_http_request *req, size_t i, const char **name,
                         const char **value)
{
    return async__http_field_at(req->h.headers, req->valid ? req->h.nheaders : 0, i, name,
                                value);
}

const char *async_http_host(const async_http_request *req)
{
    return req->host;
}

void *async_http_conn_tag(const async_http_request *req)
{
    return req->c->tag;
}

void async_http_set_tag(async_http_request *req, void *tag)
{
    req->tag = tag;
}

void *async_http_tag(const async_http_request *req)
{
    return req->tag;
}

const char *async_http_peer(const async_http_request *req)
{
    struct http_conn *c = req->c;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 10];

    if (c->peer != NULL)
        return c->peer;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
        return "-";
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
        snprintf(text, sizeof(text), "%s:%u", addr, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
        snprintf(text, sizeof(text), "[%s]:%u", addr, ntohs(in6->sin6_port));
    } else {
        return "-";
    }
    c->peer = strdup(text);
    return c->peer != NULL ? c->peer : "-";
}

/* ---- the body ---- */

static ssize_t body_fail(struct async_http_request *req, int err)
{
    req->body_error = err;
    req->close = true; /* where the next request starts is unknown now */
    errno = err;
    return -1;
}

/* A body read that must wait: what was answered so far leaves first, so
 * that a client reading before it sends is never stuck behind us. */
static ssize_t read_wait(struct async_http_request *req, char *buf, size_t len)
{
    struct http_conn *c = req->c;
    ssize_t n;

    if (!req->duplex && c->out.len > 0 && async__http_flush(c, false) != 0)
        return body_fail(req, ECONNRESET);
    n = async__http_read(c, buf, len);
    if (n == 0)
        return body_fail(req, ECONNRESET);
    if (n < 0)
        return body_fail(req, errno);
    return n;
}

/* One step of a chunked body: data decoded from what is buffered (at most
 * len), 0 with *more when it needs bytes from the peer. */
static ssize_t chunked_step(struct async_http_request *req, char *buf, size_t len, bool *more)
{
    struct http_conn *c = req->c;
    uint64_t max = c->srv->max_body_bytes, data = 0;
    size_t avail = c->len - req->body_at;
    struct http_sink s = {buf, 0};
    long k;

    /* decoded bytes never outnumber the bytes fed, so len bounds both */
    k = async__http_chunked_feed(&req->ch, c->in + req->body_at, avail < len ? avail : len,
                                 &data, async__http_sink, &s);
    if (k < 0) {
        req->body_malformed = true;
        return body_fail(req, ECONNRESET);
    }
    memmove(c->in + req->body_at, c->in + req->body_at + k, avail - (size_t)k);
    c->len -= (uint32_t)k;
    req->body_read += s.got;
    if (req->body_read > max || req->ch.left > max - req->body_read)
        return body_fail(req, EMSGSIZE);
    req->body_done = req->ch.done;
    *more = s.got == 0 && !req->ch.done;
    return (ssize_t)s.got;
}

static ssize_t length_step(struct async_http_request *req, char *buf, size_t len)
{
    struct http_conn *c = req->c;
    size_t avail = c->len - req->body_at, take;
    ssize_t n;

    if (len > req->body_left)
        len = (size_t)req->body_left;
    if (avail > 0) {
        take = avail < len ? avail : len;
        memcpy(buf, c->in + req->body_at, take);
        memmove(c->in + req->body_at, c->in + req->body_at + take, avail - take);
        c->len -= (uint32_t)take;
        n = (ssize_t)take;
    } else if ((n = read_wait(req, buf, len)) < 0) { /* straight into the caller's buffer */
        return -1;
    }
    req->body_left -= (uint64_t)n;
    req->body_read += (uint64_t)n;
    req->body_done = req->body_left == 0;
    return n;
}

ssize_t async_http_read_body(async_http_request *req, void *buf, size_t len)
{
    struct http_conn *c = req->c;
    int64_t prev;
    ssize_t n;
    bool more;

    if (async_worker_id() < 0) {
        errno = EPERM;
        return -1;
    }
    if (!req->valid) {
        errno = EPERM;
        return -1;
    }
    if (req->body_error != 0) {
        errno = req->body_error;
        return -1;
    }
    if (req->body_done || len == 0)
        return 0;
    if (req->continue_due) {
        req->continue_due = false;
        if (!req->head_sent) {
            async__http_out_add(&c->out, LIT("HTTP/1.1 100 Continue\r\n\r\n"));
            if (async__http_flush(c, false) != 0)
                return body_fail(req, ECONNRESET);
        }
    }
    if (req->body_deadline < 0)
        req->body_deadline = async_now_ms() + c->srv->body_timeout_ms;
    prev = async__http_deadline(req->body_deadline);
    if (!req->h.chunked) {
        n = length_step(req, buf, len);
    } else {
        for (;;) {
            n = chunked_step(req, buf, len, &more);
            if (n < 0 || !more)
                break;
            if ((n = read_wait(req, c->in + c->len, c->cap - c->len)) < 0)
                break;
            c->len += (uint32_t)n;
        }
    }
    async_deadline(prev);
    return n;
}

/* ---- the response ---- */

/* What a field value may not hold: controls but HTAB, and DEL; NUL ends
 * the scan (2), so one table lookup per byte decides both. */
static const unsigned char value_stop[256] = {
    [0] = 2, [1 ... 8] = 1, [10 ... 31] = 1, [127] = 1,
};

enum http_field async__http_field_kind(const char *name, size_t n)
{
    switch (n) {
    case 2: return strcasecmp(name, "TE") == 0 ? FIELD_HOP : FIELD_OTHER;
    case 4: return strcasecmp(name, "Date") == 0 ? FIELD_DATE : FIELD_OTHER;
    case 6: return strcasecmp(name, "Server") == 0 ? FIELD_SERVER : FIELD_OTHER;
    case 7:
        return strcasecmp(name, "Upgrade") == 0 || strcasecmp(name, "Trailer") == 0
                   ? FIELD_HOP : FIELD_OTHER;
    case 10:
        return strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Keep-Alive") == 0
                   ? FIELD_HOP : FIELD_OTHER;
    case 14: return strcasecmp(name, "Content-Length") == 0 ? FIELD_LENGTH : FIELD_OTHER;
    case 16: return strcasecmp(name, "Proxy-Connection") == 0 ? FIELD_HOP : FIELD_OTHER;
    case 17: return strcasecmp(name, "Transfer-Encoding") == 0 ? FIELD_HOP : FIELD_OTHER;
    default: return FIELD_OTHER;
    }
}

int async_http_set_status(async_http_request *req, int status)
{
    if (req->head_sent) {
        errno = EALREADY;
        return -1;
    }
    if (status < 100 || status > 999) {
        errno = EINVAL;
        return -1;
    }
    req->status = status;
    return 0;
}

static int parse_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;

    if (*v == '\0')
        return -1;
    for (; *v != '\0'; v++) {
        if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return 0;
}

int async_http_add_header(async_http_request *req, const char *name, const char *value)
{
    struct http_out *h = &req->c->hdr;
    const unsigned char *p;
    size_t nn, vn;

    if (req->head_sent) {
        errno = EALREADY;
        return -1;
    }
    if (name == NULL || value == NULL || *name == '\0')
        goto invalid;
    for (p = (const unsigned char *)name; async__http_tchar[*p]; p++)
        ;
    if (*p != '\0')
        goto invalid;
    nn = (size_t)(p - (const unsigned char *)name);
    for (p = (const unsigned char *)value; !value_stop[*p]; p++)
        ;
    if (*p != '\0')
        goto invalid;
    vn = (size_t)(p - (const unsigned char *)value);
    switch (async__http_field_kind(name, nn)) {
    case FIELD_HOP:
        goto invalid;
    case FIELD_LENGTH:
        if (parse_length(value, &req->length) != 0)
            goto invalid;
        req->has_length = true;
        return 0; /* the engine writes it, once */
    case FIELD_SERVER:
        req->own_server = true;
        break;
    case FIELD_DATE:
        req->own_date = true;
        break;
    case FIELD_OTHER:
        break;
    }
    if (async__http_out_reserve(h, nn + vn + 4) != 0)
        return -1;
    memcpy(h->buf + h->len, name, nn);
    memcpy(h->buf + h->len + nn, ": ", 2);
    memcpy(h->buf + h->len + nn + 2, value, vn);
    memcpy(h->buf + h->len + nn + 2 + vn, "\r\n", 2);
    h->len += nn + vn + 4;
    return 0;
invalid:
    errno = EINVAL;
    return -1;
}

void async__http_emit_head(struct async_http_request *req, bool streaming)
{
    struct http_conn *c = req->c;
    struct async_http_server *srv = c->srv;
    struct http_out *o = &c->out;
    int status = req->status;
    bool bodyless;

    /* the last moment fields may join the head: the status is final */
    if (req->tag != NULL && srv->hooks.head != NULL)
        srv->hooks.head(req, req->tag);
    status = req->status;
    bodyless = status < 200 || status == 204 || status == 304;
    if (bodyless)
        req->no_body = true;
    /* A drain, or a body too big to read away unless the handler reads it:
     * say now that the connection ends after this answer. */
    if (async__http_ending(srv) ||
        (!req->body_done && req->body_error == 0 && !req->h.chunked &&
         req->body_left > ASYNC_HTTP_DRAIN_MAX_BYTES))
        req->close = true;
    async__http_out_status_line(o, status);
    if (!req->own_server && srv->server_line != NULL)
        async__http_out_add(o, srv->server_line, srv->server_line_len);
    if (!req->own_date) {
        async__http_out_add(o, LIT("Date: "));
        async__http_out_add(o, async__http_date_now(), 29);
        async__http_out_add(o, LIT("\r\n"));
    }
    if (c->hdr.len > 0)
        async__http_out_add(o, c->hdr.buf, c->hdr.len);
    if (req->has_length) {
        if (!bodyless) { /* 1xx, 204 and 304 carry no length of their own */
            async__http_out_add(o, LIT("Content-Length: "));
            async__http_out_u64(o, req->length);
            async__http_out_add(o, LIT("\r\n"));
        }
    } else if (!bodyless) {
        if (!streaming) {
            async__http_out_add(o, LIT("Content-Length: 0\r\n"));
            req->has_length = true;
        } else if (req->h.minor >= 1) {
            async__http_out_add(o, LIT("Transfer-Encoding: chunked\r\n"));
            req->chunked = true;
        } else {
            req->until_close = true;
            req->close = true;
        }
    }
    if (req->close)
        async__http_out_add(o, LIT("Connection: close\r\n"));
    else if (req->h.minor == 0)
        async__http_out_add(o, LIT("Connection: keep-alive\r\n"));
    async__http_out_add(o, LIT("\r\n"));
    req->head_sent = true;
    req->body_start = o->len;
    req->pending = 0;
    async__http_count(srv, status);
}

/* Body bytes p[0..n) after the head: gathered in out, or sent after it
 * when they would not fit.  0, or -1 (the response is broken). */
static int body_bytes(struct async_http_request *req, const void *p, size_t n)
{
    struct http_conn *c = req->c;
    size_t sent;

    if (c->out.len + n <= ASYNC_HTTP_COALESCE_BYTES) {
        async__http_out_add(&c->out, p, n);
        req->pending += n;
        return 0;
    }
    if (async__http_send_direct(c, p, n, &sent) != 0) {
        req->body_sent += sent;
        req->broken = true;
        return -1;
    }
    req->body_sent += sent;
    return 0;
}

static int check_write(struct async_http_request *req, uint64_t len)
{
    if (req->broken) {
        errno = EPIPE;
        return -1;
    }
    if (req->has_length && len > req->length - req->written) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

/* The start of len more body bytes: the head if it has not gone, the
 * count, and a chunk's size line.  1: write them; 0: nothing to send
 * (HEAD, a bodyless status, len 0); -1: refused (errno). */
static int begin_bytes(async_http_request *req, uint64_t len)
{
    struct http_conn *c = req->c;

    if (check_write(req, len) != 0)
        return -1;
    if (!req->head_sent)
        async__http_emit_head(req, true);
    req->written += len;
    if (req->no_body || len == 0)
        return 0;
    if (req->chunked) {
        async__http_out_hex(&c->out, len);
        async__http_out_add(&c->out, LIT("\r\n"));
    }
    return 1;
}

int async_http_write(async_http_request *req, const void *buf, size_t len)
{
    struct http_conn *c = req->c;
    int rc = begin_bytes(req, len);

    if (rc <= 0)
        return rc;
    if (body_bytes(req, buf, len) != 0)
        return -1;
    if (req->chunked)
        async__http_out_add(&c->out, LIT("\r\n"));
    return 0;
}

int async_http_sendfile(async_http_request *req, int fd, off_t offset, size_t len)
{
    struct http_conn *c = req->c;
    uint64_t sent;
    int rc;

    if (fd < 0 || offset < 0) {
        errno = EINVAL;
        return -1;
    }
    if ((rc = begin_bytes(req, len)) <= 0)
        return rc;
    rc = async__http_send_file(c, fd, offset, len, &sent);
    req->body_sent += sent;
    if (rc != 0) {
        req->broken = true;
        return -1;
    }
    if (req->chunked)
        async__http_out_add(&c->out, LIT("\r\n"));
    return 0;
}

int async_http_respond(async_http_request *req, int status, const char *content_type,
                       const void *body, size_t len)
{
    if (req->head_sent) {
        errno = EALREADY;
        return -1;
    }
    if (async_http_set_status(req, status) != 0)
        return -1;
    if (content_type != NULL && async_http_add_header(req, "Content-Type", content_type) != 0)
        return -1;
    req->has_length = true;
    req->length = len;
    async__http_emit_head(req, false);
    req->written = len;
    if (req->no_body || len == 0)
        return 0;
    return body_bytes(req, body, len);
}

int async_http_duplex(async_http_request *req)
{
    struct http_conn *c = req->c;

    if (req->broken) {
        errno = EPIPE;
        return -1;
    }
    if (req->continue_due) {
        req->continue_due = false;
        if (!req->head_sent)
            async__http_out_add(&c->out, LIT("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    if (c->out.len > 0 && async__http_flush(c, false) != 0) {
        req->broken = true;
        return -1;
    }
    req->duplex = true;
    return 0;
}

int async_http_flush(async_http_request *req)
{
    if (req->broken) {
        errno = EPIPE;
        return -1;
    }
    if (!req->head_sent)
        async__http_emit_head(req, true);
    if (async__http_flush(req->c, false) != 0) {
        req->broken = true;
        return -1;
    }
    return 0;
}

async_stream *async_http_upgrade(async_http_request *req, const char *protocol,
                                 const void **early, size_t *early_len)
{
    struct http_conn *c = req->c;
    struct http_out *o = &c->out;
    const unsigned char *p;

    if (req->head_sent) {
        errno = EALREADY;
        return NULL;
    }
    for (p = (const unsigned char *)(protocol != NULL ? protocol : ""); async__http_tchar[*p]; p++)
        ;
    if (protocol == NULL || *protocol == '\0' || *p != '\0') {
        errno = EINVAL;
        return NULL;
    }
    req->status = 101;
    async__http_out_status_line(o, 101);
    if (!req->own_server && c->srv->server_line != NULL)
        async__http_out_add(o, c->srv->server_line, c->srv->server_line_len);
    async__http_out_add(o, LIT("Connection: Upgrade\r\nUpgrade: "));
    async__http_out_add(o, protocol, strlen(protocol));
    async__http_out_add(o, LIT("\r\n"));
    if (c->hdr.len > 0)
        async__http_out_add(o, c->hdr.buf, c->hdr.len);
    async__http_out_add(o, LIT("\r\n"));
    req->head_sent = true;
    req->no_body = true;
    req->upgraded = true;
    req->close = true;
    req->body_done = true; /* whatever follows is the new protocol's */
    async__http_count(c->srv, 101);
    if (async__http_flush(c, false) != 0) {
        req->broken = true;
        return NULL;
    }
    if (early != NULL)
        *early = c->in + req->body_at;
    if (early_len != NULL)
        *early_len = c->len - req->body_at;
    c->len = (uint32_t)req->body_at; /* those bytes are the handler's now */
    return c->s;
}

int async_http_status(const async_http_request *req)
{
    return req->status;
}

int64_t async_http_elapsed_us(const async_http_request *req)
{
    return req->started_us > 0 ? now_us() - req->started_us : 0;
}

int64_t async_http_duration_us(const async_http_request *req)
{
    return req->duration_us;
}

int async_http_head_sent(const async_http_request *req)
{
    return req->head_sent;
}

void async_http_close_after(async_http_request *req)
{
    req->close = true;
}

/* ---- the end of an exchange ---- */

/* Stages the access-log line of the response just completed. */
static void log_response(struct async_http_request *req)
{
    struct http_conn *c = req->c;

    if (c->srv->time_requests && req->started_us > 0) {
        req->duration_us = now_us() - req->started_us;
        async__http_count_duration(c->srv, req->duration_us);
    }
    if (c->srv->log_fmt != NULL)
        async__http_logq_add(c, req, req->body_start, req->pending, req->body_sent);
}

/* The response side of an error answer, nothing of it said yet. */
static void error_reset(struct async_http_request *req, int status, bool close)
{
    response_reset(req);
    req->close = close;
    req->status = status;
}

/* The error hook's answer: true when it answered (the head went). */
static bool error_hook(struct async_http_request *req, int status, bool close)
{
    struct http_conn *c = req->c;
    int rc = c->srv->error_fn(req, status, c->srv->error_ctx);

    if (!req->head_sent) {
        error_reset(req, status, close); /* drop the fields it added */
        return false;
    }
    if (rc != 0 || req->upgraded) {
        req->broken = true;
    } else if (!req->broken && !req->no_body) {
        if (req->chunked)
            async__http_out_add(&c->out, LIT("0\r\n\r\n"));
        if (req->has_length && req->written != req->length)
            req->broken = true;
    }
    return true;
}

void async__http_error(struct async_http_request *req, int status, bool close)
{
    struct http_conn *c = req->c;
    char body[64];
    int n;

    if (!req->valid)
        terminate_request_line(req);
    error_reset(req, status, close);
    if (c->srv->error_fn != NULL && error_hook(req, status, close)) {
        log_response(req);
        return;
    }
    n = snprintf(body, sizeof(body), "%d %s\n", status, async__http_reason(status));
    async__http_out_add(&c->hdr, LIT("Content-Type: text/plain; charset=utf-8\r\n"));
    req->has_length = true;
    req->length = (uint64_t)n;
    async__http_emit_head(req, false);
    req->written = (uint64_t)n;
    if (!req->no_body)
        body_bytes(req, body, (size_t)n);
    log_response(req);
}

void async__http_refused_head(struct async_http_request *req)
{
    unsigned i;

    terminate_request_line(req);
    for (i = 0; i < req->h.nheaders; i++) {
        ((char *)req->h.headers[i].name.p)[req->h.headers[i].name.n] = '\0';
        ((char *)req->h.headers[i].value.p)[req->h.headers[i].value.n] = '\0';
    }
    if (req->h.target.n == 0 || set_host(req) != 0)
        req->host = NULL;
}

/* Reads away a body the handler left, up to ASYNC_HTTP_DRAIN_MAX_BYTES:
 * true when it was all read. */
static bool drain_body(struct async_http_request *req)
{
    static __thread char sink[16384];
    uint64_t dropped = 0;
    ssize_t n;

    if (req->continue_due || (!req->h.chunked && req->body_left > ASYNC_HTTP_DRAIN_MAX_BYTES))
        return false; /* the client waits for a 100 we will not send, or it is too much */
    while (dropped <= ASYNC_HTTP_DRAIN_MAX_BYTES) {
        n = async_http_read_body(req, sink, sizeof(sink));
        if (n <= 0)
            return n == 0;
        dropped += (uint64_t)n;
    }
    return false;
}

/* The tagged exchange is over for the handler's module (its line is
 * formatted, its head built); what follows (reading away a body) needs
 * nothing of the tag. */
void async__http_exchange_done(struct async_http_request *req)
{
    struct async_http_server *srv = req->c->srv;
    void *tag = req->tag;

    if (tag == NULL)
        return;
    req->tag = NULL;
    if (srv->hooks.done != NULL)
        srv->hooks.done(req, tag);
}

bool async__http_request_finish(struct async_http_request *req, int rc)
{
    struct http_conn *c = req->c;
    bool unread = !req->body_done && req->body_error == 0;

    req->duplex = false; /* one fiber again: the answer leaves before a drain waits */
    if (rc != 0 && !req->head_sent) {
        /* a handler that gave up on its body: the status the body earned */
        async__http_error(req, req->body_malformed ? 400
                             : req->body_error == EMSGSIZE ? 413
                             : req->body_error == ETIMEDOUT ? 408 : 500, req->close);
        goto body;
    }
    if (rc != 0) {
        req->broken = true;
    } else if (!req->head_sent) {
        if (req->has_length && req->length > 0 && !req->no_body &&
            req->h.method != HTTP_HEAD) {
            async__http_error(req, 500, req->close); /* promised bytes it never wrote */
            goto body;
        }
        if (unread && (req->continue_due || (!req->h.chunked &&
                                              req->body_left > ASYNC_HTTP_DRAIN_MAX_BYTES)))
            req->close = true;
        async__http_emit_head(req, false);
    } else if (req->upgraded) {
        req->broken = true; /* the stream was another protocol's: just close it */
    } else if (!req->broken) {
        if (req->chunked && !req->no_body)
            async__http_out_add(&c->out, LIT("0\r\n\r\n"));
        if (req->has_length && !req->no_body && req->written != req->length)
            req->broken = true;
    }
    log_response(req);
body:
    async__http_exchange_done(req);
    if (req->broken)
        return false;
    if (!req->body_done && req->body_error == 0 && !drain_body(req))
        req->close = true;
    return !req->close && req->body_done && req->body_error == 0;
}
