/* runtime/http/client.c — HTTP/1.1 calls to other servers, and a pool of
 * idle keep-alive connections for them.
 *
 * A call is one exchange, driven by one fiber: the request head and up to
 * ASYNC_HTTP_COALESCE_BYTES of body gather in the call's buffer and leave
 * when the call is sent (so a pooled connection that the server closed
 * while it sat idle can be replaced and the bytes sent again), or stream
 * once the body outgrows the buffer.  The response is parsed strictly
 * (parse.c), its body read as the caller asks for it.
 *
 * Or by two fibers of one worker, once the call streams
 * (async_http_call_stream): one writes the body and finishes it, the
 * other reads the response meanwhile, for a server that answers before it
 * has read the whole body or echoes it as it reads.  The writer touches
 * the request half of the call (streaming, written, req_done,
 * req_broken), the reader the response half (in, off, len, r, broken, ...);
 * both only park inside the stream calls, on one thread, so neither sees
 * the other's fields change under it.
 *
 * Pool.  A stream belongs to the worker that first waited on it (the
 * reactor of that worker watches it), and a fiber never changes worker,
 * so the pool keeps one list of idle connections per worker: a call takes
 * from and gives back to its own worker's list, which nothing else
 * touches — no lock.  Only the totals (idle, addresses) are shared,
 * relaxed.  A worker's addresses are kept most recently used first, at
 * most ASYNC_HTTP_POOL_ADDRESSES of them: a new one past that first drops
 * the entries with no idle connection, then the least recently used
 * entry with its connections.
 * Before reuse a connection is checked (reusable): one the server closed,
 * or that holds bytes nobody asked for, is dropped. */
#include "engine.h"

#include "../net/net.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define LIT(s) s, sizeof(s) - 1
#define CALL_IN_SIZE (16 * 1024) /* a response head must fit */
#define CALL_MAX_HEADERS 100

/* An idle connection; nodes are kept on their lane's free list for the
 * next one (no allocation per request). */
struct idle {
    async_stream *s;
    int64_t since;              /* async_now_ms when it went idle */
    struct idle *next;
};

/* How long an idle connection is reused on the loop's word alone: a
 * server closes an idle connection after its own timeout (seconds), and
 * may say why first (a 408): past this, ask the kernel. */
#define QUIET_TRUST_MS 1000

/* The idle connections to one address.  A lane keeps an address while
 * it has room for it (see the top), so for a pool that serves a few
 * upstream servers the string is not copied again per request. */
struct dest {
    char *address;
    size_t len;
    struct idle *list;
    unsigned count;
    struct dest *next;
};

struct lane {
    struct dest *dests;         /* owner worker only, as everything here; MRU first */
    struct idle *spare;
    unsigned ndests;
    char pad[64 - 2 * sizeof(void *) - sizeof(unsigned)];
};

struct async_http_pool {
    unsigned max_idle;
    unsigned workers;
    _Atomic unsigned idle;
    _Atomic unsigned addresses;
    struct lane *lanes;
    async_http_connect_fn connect; /* NULL: async_tcp_connect; set before use */
    void *connect_arg;
};

struct async_http_call {
    async_http_pool *pool;
    char *address;              /* NULL for a call on the caller's stream */
    char *method, *target;
    async_stream *s;
    bool own_stream;            /* close it (or pool it) at the end */
    bool pooled;                /* s came from the pool */
    bool idempotent;
    bool head_method;
    /* request */
    struct http_out hdr;        /* the caller's fields */
    struct http_out body;       /* body bytes not yet sent (before streaming) */
    struct http_out out;        /* what was sent unstreamed, kept for a retry */
    char *upgrade;              /* a protocol to switch to, or NULL */
    bool has_host, has_length;
    bool streaming;             /* the head left; body bytes stream */
    bool req_done;
    bool req_broken;            /* a request write failed */
    bool broken;                /* a response read failed */
    uint64_t length, written;
    /* response */
    char *in;
    uint32_t off, len;
    bool have_response;
    bool until_close;
    bool body_done;
    uint64_t left;
    struct http_chunked ch;
    struct http_response r;     /* last: its field array is never cleared (call_make) */
};

/* ---- the pool ---- */

async_http_pool *async_http_pool_new(unsigned max_idle)
{
    int workers = async_workers();
    async_http_pool *p;

    if (workers < 0)
        return NULL;
    if ((p = calloc(1, sizeof(*p))) == NULL ||
        (p->lanes = calloc((size_t)workers, sizeof(struct lane))) == NULL) {
        free(p);
        return NULL;
    }
    p->max_idle = max_idle;
    p->workers = (unsigned)workers;
    return p;
}

static void free_list(struct idle *i, bool close)
{
    struct idle *next;

    for (; i != NULL; i = next) {
        next = i->next;
        if (close)
            async_stream_close(i->s);
        free(i);
    }
}

void async_http_pool_free(async_http_pool *p)
{
    struct dest *d, *next;
    unsigned w;

    if (p == NULL)
        return;
    for (w = 0; w < p->workers; w++) {
        for (d = p->lanes[w].dests; d != NULL; d = next) {
            next = d->next;
            free_list(d->list, true);
            free(d->address);
            free(d);
        }
        free_list(p->lanes[w].spare, false);
    }
    free(p->lanes);
    free(p);
}

void async_http_pool_set_connect(async_http_pool *p, async_http_connect_fn connect, void *arg)
{
    p->connect = connect;
    p->connect_arg = arg;
}

/* A new connection for c: its pool's connector, or plain TCP. */
static async_stream *open_stream(async_http_call *c)
{
    if (c->pool != NULL && c->pool->connect != NULL)
        return c->pool->connect(c->address, c->pool->connect_arg);
    return async_tcp_connect(c->address);
}

unsigned async_http_pool_idle(const async_http_pool *p)
{
    return atomic_load_explicit(&p->idle, memory_order_relaxed);
}

static struct lane *my_lane(async_http_pool *p)
{
    int w = async_worker_id();

    return w >= 0 && (unsigned)w < p->workers ? &p->lanes[w] : NULL;
}

unsigned async_http_pool_addresses(const async_http_pool *p)
{
    return atomic_load_explicit(&p->addresses, memory_order_relaxed);
}

/* Unlinks d (after prev, or first) from l and frees it, its idle
 * connections closed and their nodes kept for reuse. */
static void dest_drop(async_http_pool *p, struct lane *l, struct dest *prev, struct dest *d)
{
    struct idle *i;

    *(prev != NULL ? &prev->next : &l->dests) = d->next;
    while ((i = d->list) != NULL) {
        d->list = i->next;
        async_stream_close(i->s);
        i->next = l->spare;
        l->spare = i;
        atomic_fetch_sub_explicit(&p->idle, 1, memory_order_relaxed);
    }
    free(d->address);
    free(d);
    l->ndests--;
    atomic_fetch_sub_explicit(&p->addresses, 1, memory_order_relaxed);
}

/* Room for one more address on a full lane: the entries with no idle
 * connection go; if none had, so does the least recently used one. */
static void lane_trim(async_http_pool *p, struct lane *l)
{
    struct dest *d, *prev = NULL, *next, *last = NULL, *before_last = NULL;

    for (d = l->dests; d != NULL; d = next) {
        next = d->next;
        if (d->count == 0) {
            dest_drop(p, l, prev, d);
            continue;
        }
        before_last = prev;
        last = d;
        prev = d;
    }
    if (l->ndests >= ASYNC_HTTP_POOL_ADDRESSES && last != NULL)
        dest_drop(p, l, before_last, last);
}

/* The lane's entry for address, moved to the front (most recently used);
 * a new one if `make`.  NULL if none. */
static struct dest *dest_of(async_http_pool *p, struct lane *l, const char *address, bool make)
{
    size_t len = strlen(address);
    struct dest *d, *prev = NULL;

    for (d = l->dests; d != NULL; prev = d, d = d->next)
        if (d->len == len && memcmp(d->address, address, len) == 0) {
            if (prev != NULL) {
                prev->next = d->next;
                d->next = l->dests;
                l->dests = d;
            }
            return d;
        }
    if (!make)
        return NULL;
    if (l->ndests >= ASYNC_HTTP_POOL_ADDRESSES)
        lane_trim(p, l);
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return NULL;
    if ((d->address = strdup(address)) == NULL) {
        free(d);
        return NULL;
    }
    d->len = len;
    d->next = l->dests;
    l->dests = d;
    l->ndests++;
    atomic_fetch_add_explicit(&p->addresses, 1, memory_order_relaxed);
    return d;
}

/* Whether an idle connection can carry the next request.  Closed, or
 * holding bytes nobody asked for: no.  When the request can be sent again
 * on a new connection should this one turn out dead (idempotent: the
 * call's retry), the loop's word is enough (async__stream_quiet: no
 * system call) for a connection idle under QUIET_TRUST_MS; otherwise one
 * non-blocking read asks the kernel — the byte it may take goes with the
 * stream, and a TLS stream's read consumes session tickets and says
 * EAGAIN. */
static bool reusable(async_stream *s, int64_t idle_ms, bool can_retry)
{
    char b;

    if (can_retry && idle_ms < QUIET_TRUST_MS && async__stream_quiet(s))
        return true;
    return async_stream_try_read(s, &b, 1) < 0 && errno == EAGAIN;
}

/* A live idle connection to address from this worker's list, or NULL. */
static async_stream *pool_take(async_http_pool *p, const char *address, bool can_retry)
{
    struct lane *l = my_lane(p);
    struct dest *d;
    struct idle *i;
    async_stream *s;

    if (l == NULL || (d = dest_of(p, l, address, false)) == NULL)
        return NULL;
    while ((i = d->list) != NULL) {
        d->list = i->next;
        d->count--;
        s = i->s;
        i->next = l->spare;
        l->spare = i;
        atomic_fetch_sub_explicit(&p->idle, 1, memory_order_relaxed);
        if (reusable(s, async_now_ms() - i->since, can_retry))
            return s;
        async_stream_close(s);
    }
    return NULL;
}

static void pool_put(async_http_pool *p, const char *address, async_stream *s)
{
    struct lane *l = my_lane(p);
    struct dest *d;
    struct idle *i;

    if (l == NULL || p->max_idle == 0 || (d = dest_of(p, l, address, true)) == NULL ||
        d->count >= p->max_idle) {
        async_stream_close(s);
        return;
    }
    if ((i = l->spare) != NULL) {
        l->spare = i->next;
    } else if ((i = malloc(sizeof(*i))) == NULL) {
        async_stream_close(s);
        return;
    }
    i->s = s;
    i->since = async_now_ms();
    i->next = d->list;
    d->list = i;
    d->count++;
    atomic_fetch_add_explicit(&p->idle, 1, memory_order_relaxed);
}

/* ---- making a call ---- */

static bool token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!async__http_tchar[(unsigned char)*s])
            return false;
    return true;
}

static bool target_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static async_http_call *call_make(const char *method, const char *target)
{
    async_http_call *c;

    if (method == NULL || target == NULL || !token(method) || !target_ok(target)) {
        errno = EINVAL;
        return NULL;
    }
    /* Everything but the response's fields (8 KiB, filled by the parser
     * up to r.nheaders) starts zeroed: a call per proxied request. */
    if ((c = malloc(sizeof(*c))) == NULL)
        return NULL;
    memset(c, 0, offsetof(async_http_call, r.headers));
    memset(&c->r.nheaders, 0, sizeof(c->r) - offsetof(struct http_response, nheaders));
    if ((c->method = strdup(method)) == NULL || (c->target = strdup(target)) == NULL ||
        (c->in = malloc(CALL_IN_SIZE)) == NULL) {
        async_http_call_free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->head_method = strcmp(method, "HEAD") == 0;
    c->idempotent = c->head_method || strcmp(method, "GET") == 0 ||
                    strcmp(method, "OPTIONS") == 0 || strcmp(method, "PUT") == 0 ||
                    strcmp(method, "DELETE") == 0 || strcmp(method, "TRACE") == 0;
    return c;
}

async_http_call *async_http_call_new(async_http_pool *pool, const char *method,
                                     const char *address, const char *target)
{
    async_http_call *c;

    if (address == NULL || !target_ok(address)) {
        errno = EINVAL;
        return NULL;
    }
    if ((c = call_make(method, target)) == NULL)
        return NULL;
    if ((c->address = strdup(address)) == NULL) {
        async_http_call_free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->pool = pool;
    c->own_stream = true;
    return c;
}

async_http_call *async_http_call_on(async_stream *s, const char *method, const char *host,
                                    const char *target)
{
    async_http_call *c;

    if (s == NULL || host == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((c = call_make(method, target)) == NULL)
        return NULL;
    c->s = s;
    if (async_http_call_add_header(c, "Host", host) != 0) {
        async_http_call_free(c);
        return NULL;
    }
    return c;
}

int async_http_call_add_header(async_http_call *c, const char *name, const char *value)
{
    const unsigned char *p;
    enum http_field kind;
    size_t nn, vn;

    if (c->streaming || c->req_done) {
        errno = EALREADY;
        return -1;
    }
    if (name == NULL || value == NULL || !token(name))
        goto invalid;
    for (p = (const unsigned char *)value; *p != '\0'; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f)
            goto invalid;
    vn = (size_t)(p - (const unsigned char *)value);
    nn = strlen(name);
    if ((kind = async__http_field_kind(name, nn)) == FIELD_HOP)
        goto invalid;
    if (kind == FIELD_LENGTH) {
        char *end;

        if (*value < '0' || *value > '9')
            goto invalid;
        errno = 0;
        c->length = strtoull(value, &end, 10);
        if (*end != '\0' || errno != 0)
            goto invalid;
        c->has_length = true;
        return 0;
    }
    if (nn == 4 && strcasecmp(name, "Host") == 0)
        c->has_host = true;
    if (async__http_out_reserve(&c->hdr, nn + vn + 4) != 0)
        return -1;
    async__http_out_add(&c->hdr, name, nn);
    async__http_out_add(&c->hdr, LIT(": "));
    async__http_out_add(&c->hdr, value, vn);
    async__http_out_add(&c->hdr, LIT("\r\n"));
    return 0;
invalid:
    errno = EINVAL;
    return -1;
}

/* Gets a connection: the pool's, else a new one.  can_retry: the request
 * can be sent again should a pooled connection prove dead (buffered and
 * idempotent, async_http_call_send). */
static int connect_call(async_http_call *c, bool can_retry)
{
    if (c->s != NULL)
        return 0;
    if (c->pool != NULL &&
        (c->s = pool_take(c->pool, c->address, can_retry)) != NULL) {
        c->pooled = true;
        return 0;
    }
    c->pooled = false;
    c->s = open_stream(c);
    return c->s != NULL ? 0 : -1;
}

/* The request head into c->out; chunked when the body streams without a
 * length. */
static void build_head(async_http_call *c, bool chunked)
{
    struct http_out *o = &c->out;

    o->len = 0;
    async__http_out_add(o, c->method, strlen(c->method));
    async__http_out_add(o, LIT(" "));
    async__http_out_add(o, c->target, strlen(c->target));
    async__http_out_add(o, LIT(" HTTP/1.1\r\n"));
    if (!c->has_host) {
        async__http_out_add(o, LIT("Host: "));
        async__http_out_add(o, c->address, strlen(c->address));
        async__http_out_add(o, LIT("\r\n"));
    }
    if (c->hdr.len > 0)
        async__http_out_add(o, c->hdr.buf, c->hdr.len);
    if (c->upgrade != NULL) {
        async__http_out_add(o, LIT("Connection: Upgrade\r\nUpgrade: "));
        async__http_out_add(o, c->upgrade, strlen(c->upgrade));
        async__http_out_add(o, LIT("\r\n"));
    }
    if (c->has_length || !chunked) {
        uint64_t n = c->has_length ? c->length : c->written;

        /* no body and a method that has none: no field at all */
        if (n > 0 || c->has_length || !(c->idempotent && strcmp(c->method, "PUT") != 0)) {
            async__http_out_add(o, LIT("Content-Length: "));
            async__http_out_u64(o, n);
            async__http_out_add(o, LIT("\r\n"));
        }
    } else {
        async__http_out_add(o, LIT("Transfer-Encoding: chunked\r\n"));
    }
    async__http_out_add(o, LIT("\r\n"));
}

static int send_bytes(async_http_call *c, const void *p, size_t n)
{
    if (n > 0 && async_stream_write_all(c->s, p, n) != 0) {
        c->req_broken = true;
        return -1;
    }
    return 0;
}

static int send_chunk(async_http_call *c, const void *p, size_t n)
{
    struct http_out frame = {0};
    int rc;

    if (n == 0)
        return 0;
    async__http_out_hex(&frame, n);
    async__http_out_add(&frame, LIT("\r\n"));
    rc = send_bytes(c, frame.buf, frame.len) != 0 || send_bytes(c, p, n) != 0 ||
                 send_bytes(c, "\r\n", 2) != 0 ? -1 : 0;
    free(frame.buf);
    return rc;
}

/* The body outgrew the buffer: connect, send the head and what was
 * buffered, and stream from now on. */
static int start_streaming(async_http_call *c)
{
    bool chunked = !c->has_length;

    if (connect_call(c, false) != 0)
        return -1;
    build_head(c, chunked);
    c->streaming = true;
    if (send_bytes(c, c->out.buf, c->out.len) != 0)
        return -1;
    if ((chunked ? send_chunk(c, c->body.buf, c->body.len)
                 : send_bytes(c, c->body.buf, c->body.len)) != 0)
        return -1;
    c->body.len = 0;
    return 0;
}

/* The request may still be added to: 0, or -1 EALREADY (sent) / EPIPE. */
static int request_open(const async_http_call *c)
{
    if (c->req_done) {
        errno = EALREADY;
        return -1;
    }
    if (c->req_broken) {
        errno = EPIPE;
        return -1;
    }
    return 0;
}

int async_http_call_write(async_http_call *c, const void *buf, size_t len)
{
    if (request_open(c) != 0)
        return -1;
    if (c->has_length && len > c->length - c->written) {
        errno = EMSGSIZE;
        return -1;
    }
    c->written += len;
    if (!c->streaming && c->body.len + len <= ASYNC_HTTP_COALESCE_BYTES) {
        if (async__http_out_reserve(&c->body, len) != 0)
            return -1;
        async__http_out_add(&c->body, buf, len);
        return 0;
    }
    if (!c->streaming && start_streaming(c) != 0)
        return -1;
    return c->has_length ? send_bytes(c, buf, len) : send_chunk(c, buf, len);
}

/* Sends the whole request (head and buffered body) in one go. */
static int send_buffered(async_http_call *c)
{
    build_head(c, false);
    async__http_out_add(&c->out, c->body.buf, c->body.len);
    return send_bytes(c, c->out.buf, c->out.len);
}

/* Reads more of the response into in[len..); bytes, 0 at the end, -1. */
static ssize_t fill(async_http_call *c)
{
    ssize_t n;

    if (c->off > 0 && c->off == c->len)
        c->off = c->len = 0;
    if (c->len == CALL_IN_SIZE) {
        memmove(c->in, c->in + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    n = async_stream_read(c->s, c->in + c->len, CALL_IN_SIZE - c->len);
    if (n > 0)
        c->len += (uint32_t)n;
    return n;
}

/* Reads the response head: 0; -1 with errno; 1 when the connection ended
 * before any byte of it (a retry may help). */
static int read_head(async_http_call *c)
{
    unsigned i;
    long n;
    ssize_t k;

    for (;;) {
        n = async__http_parse_response(c->in + c->off, c->len - c->off, CALL_IN_SIZE,
                                       CALL_MAX_HEADERS, &c->r);
        if (n < 0) {
            errno = EPROTO;
            return -1;
        }
        if (n > 0 && c->r.status >= 100 && c->r.status < 200 && c->r.status != 101) {
            c->off += (uint32_t)n; /* 100 Continue, 103 Early Hints: the answer follows */
            continue;
        }
        if (n > 0) {
            c->off += (uint32_t)n;
            break;
        }
        if (c->off > 0) { /* make room: the head starts at 0 */
            memmove(c->in, c->in + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        k = async_stream_read(c->s, c->in + c->len, CALL_IN_SIZE - c->len);
        if (k == 0 && c->len == 0)
            return 1;
        if (k == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (k < 0)
            return errno == ECONNRESET && c->len == 0 ? 1 : -1;
        c->len += (uint32_t)k;
    }
    /* the strings the accessors hand out, NUL-terminated in place */
    for (i = 0; i < c->r.nheaders; i++) {
        ((char *)c->r.headers[i].name.p)[c->r.headers[i].name.n] = '\0';
        ((char *)c->r.headers[i].value.p)[c->r.headers[i].value.n] = '\0';
    }
    c->have_response = true;
    async__http_chunked_init(&c->ch);
    if (c->head_method || c->r.status == 204 || c->r.status == 304 || c->r.status < 200) {
        c->body_done = true;
    } else if (c->r.chunked) {
        c->body_done = false;
    } else if (c->r.has_content_length) {
        c->left = c->r.content_length;
        c->body_done = c->left == 0;
    } else {
        c->until_close = true; /* the body ends with the connection */
        c->body_done = false;
    }
    return 0;
}

/* A streamed body's end: the last chunk, when it is chunked. */
static int end_body(async_http_call *c)
{
    return !c->has_length ? send_bytes(c, "0\r\n\r\n", 5) : 0;
}

int async_http_call_stream(async_http_call *c)
{
    if (request_open(c) != 0)
        return -1;
    return c->streaming ? 0 : start_streaming(c);
}

int async_http_call_finish(async_http_call *c)
{
    if (request_open(c) != 0)
        return -1;
    if (!c->streaming) {
        errno = EINVAL;
        return -1;
    }
    if (c->has_length && c->written != c->length) {
        errno = EMSGSIZE;
        return -1;
    }
    if (end_body(c) != 0)
        return -1;
    c->req_done = true;
    return 0;
}

int async_http_call_response(async_http_call *c)
{
    int rc;

    if (!c->streaming || c->have_response) {
        errno = c->have_response ? EALREADY : EINVAL;
        return -1;
    }
    if ((rc = read_head(c)) == 1) {
        c->broken = true;
        errno = ECONNRESET;
        return -1;
    }
    if (rc != 0)
        c->broken = true;
    return rc;
}

void async_http_call_abort(async_http_call *c)
{
    if (c == NULL || c->s == NULL)
        return;
    shutdown(async_stream_fd(c->s), SHUT_RDWR);
    c->req_broken = true;
    c->broken = true;
}

int async_http_call_send(async_http_call *c)
{
    bool retried = false;
    int rc;

    if (request_open(c) != 0)
        return -1;
    if (c->has_length && c->written != c->length) {
        errno = EMSGSIZE;
        return -1;
    }
    for (;;) {
        if (c->streaming)
            rc = end_body(c);
        else if (connect_call(c, c->idempotent && c->own_stream) != 0)
            return -1;
        else
            rc = send_buffered(c);
        if (rc == 0) {
            c->req_done = true;
            if ((rc = read_head(c)) <= 0)
                return rc;
        } else if (!c->pooled) {
            return -1;
        }
        /* The connection refused our bytes or ended before any answer.  A
         * pooled one the server had closed while idle is replaced once —
         * for idempotent methods whose bytes we still hold. */
        if (!c->pooled || c->streaming || !c->idempotent || retried || !c->own_stream) {
            errno = ECONNRESET;
            return -1;
        }
        retried = true;
        async_stream_close(c->s);
        c->pooled = false;
        c->req_broken = false;
        c->req_done = false;
        c->off = c->len = 0;
        if ((c->s = open_stream(c)) == NULL)
            return -1;
    }
}

int async_http_call_status(const async_http_call *c)
{
    return c->have_response ? c->r.status : 0;
}

int async_http_call_version(const async_http_call *c)
{
    return c->r.minor == 0 ? 10 : 11;
}

const char *async_http_call_header(const async_http_call *c, const char *name)
{
    return c->have_response ? async__http_field(c->r.headers, c->r.nheaders, name) : NULL;
}

int async_http_call_header_at(const async_http_call *c, size_t i, const char **name,
                              const char **value)
{
    return async__http_field_at(c->r.headers, c->have_response ? c->r.nheaders : 0, i, name,
                                value);
}

static ssize_t read_fail(async_http_call *c, int err)
{
    c->broken = true;
    errno = err;
    return -1;
}

ssize_t async_http_call_read(async_http_call *c, void *buf, size_t len)
{
    uint64_t data = 0;
    size_t avail;
    ssize_t n;
    long k;

    if (!c->have_response) {
        errno = EINVAL;
        return -1;
    }
    if (c->broken) {
        errno = ECONNRESET;
        return -1;
    }
    if (c->body_done || len == 0)
        return 0;
    for (;;) {
        avail = c->len - c->off;
        if (c->r.chunked) {
            struct http_sink s = {buf, 0};

            k = async__http_chunked_feed(&c->ch, c->in + c->off, avail < len ? avail : len,
                                         &data, async__http_sink, &s);
            if (k < 0)
                return read_fail(c, EPROTO);
            c->off += (uint32_t)k;
            c->body_done = c->ch.done;
            if (s.got > 0 || c->body_done)
                return (ssize_t)s.got;
        } else if (avail > 0) {
            size_t take = avail < len ? avail : len;

            if (!c->until_close && take > c->left)
                take = (size_t)c->left;
            memcpy(buf, c->in + c->off, take);
            c->off += (uint32_t)take;
            if (!c->until_close) {
                c->left -= take;
                c->body_done = c->left == 0;
            }
            return (ssize_t)take;
        } else {
            /* nothing buffered: straight into the caller's buffer */
            if (!c->until_close && len > c->left)
                len = (size_t)c->left;
            n = async_stream_read(c->s, buf, len);
            if (n == 0 && c->until_close) {
                c->body_done = true;
                return 0;
            }
            if (n <= 0)
                return read_fail(c, n == 0 ? ECONNRESET : errno);
            if (!c->until_close) {
                c->left -= (uint64_t)n;
                c->body_done = c->left == 0;
            }
            return n;
        }
        if ((n = fill(c)) <= 0)
            return read_fail(c, n == 0 ? ECONNRESET : errno);
    }
}

int async_http_call_would_wait(const async_http_call *c)
{
    if (!c->have_response || c->broken || c->body_done)
        return 0;
    /* Chunked, framing alone (a chunk's CRLF, the next size line) may sit
     * in the buffer with no data behind it yet: a few bytes count as
     * none.  At worst a relay flushes once too early, or, behind a long
     * size line, once too late. */
    return c->off == c->len || (c->r.chunked && c->len - c->off < 8);
}

int async_http_call_upgrade(async_http_call *c, const char *protocol)
{
    if (c->streaming || c->req_done) {
        errno = EALREADY;
        return -1;
    }
    if (protocol == NULL || !token(protocol)) {
        errno = EINVAL;
        return -1;
    }
    free(c->upgrade);
    return (c->upgrade = strdup(protocol)) != NULL ? 0 : -1;
}

async_stream *async_http_call_take_stream(async_http_call *c, const void **early,
                                          size_t *early_len)
{
    async_stream *s = c->s;

    if (!c->have_response || c->r.status != 101 || s == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (early != NULL)
        *early = c->in + c->off;
    if (early_len != NULL)
        *early_len = c->len - c->off;
    c->off = c->len;
    c->s = NULL; /* the caller's now */
    return s;
}

void async_http_call_free(async_http_call *c)
{
    if (c == NULL)
        return;
    if (c->s != NULL && c->own_stream) {
        bool reusable = c->pool != NULL && c->req_done && c->have_response && c->body_done &&
                        c->r.keep_alive && !c->until_close && !c->broken && !c->req_broken &&
                        c->off == c->len &&
                        c->r.status != 101;

        if (reusable)
            pool_put(c->pool, c->address, c->s);
        else
            async_stream_close(c->s);
    }
    free(c->upgrade);
    free(c->hdr.buf);
    free(c->body.buf);
    free(c->out.buf);
    free(c->in);
    free(c->address);
    free(c->method);
    free(c->target);
    free(c);
}
