/* runtime/http/server.c — the server object: options, the connections it
 * serves, what each worker keeps for it, the idle sweeper and shutdown.
 *
 * Threads and invariants.
 *   - Options are written by async_http_server_set* before the first
 *     connection (`used` turns true, with release, at the first serve or
 *     start) and only read afterwards.
 *   - conns (every connection of a non-simple server) is guarded by lock;
 *     a connection is on it from async__http_conn_new to its free.  The
 *     sweeper and async_http_server_metrics walk it (parked: relaxed, a
 *     count for a scrape needs no order).
 *   - open counts live connections; the last decrement (release) is the
 *     connection's last touch of the server, so a shutdown that reads 0
 *     (acquire) may free it.
 *   - Per-worker state (struct http_local): spare input buffers, so that a
 *     connection going idle and waking again costs no malloc for its
 *     buffer, and response counters, so that no two workers write one
 *     cache line per request.  A local is used only by its worker thread
 *     (a fiber never changes thread); its counters are single-writer
 *     relaxed atomics (responses by class, bytes sent, the duration
 *     histogram) summed by async_http_server_stats and _metrics under locals_lock,
 *     which also guards the list.  It is found through a thread-local
 *     pointer tagged with the server's generation, so a later server at
 *     the same address never touches a freed one's state.
 *   - sweeper_state elects the one fiber that starts the sweeper (0 -> 1
 *     CAS), which then publishes the task (store 2, release); shutdown
 *     cancels and joins it (acquire).  Shutdown comes after the last start
 *     has returned (async_io/http.h), so it never sees 1. */
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SHUTDOWN_POLL_MS 5

static _Atomic unsigned generation;

static void set_defaults(struct async_http_server *srv)
{
    srv->max_header_bytes = 8192;
    srv->max_headers = HTTP_DEFAULT_MAX_HEADERS;
    srv->max_body_bytes = 1024 * 1024;
    srv->header_timeout_ms = 10000;
    srv->body_timeout_ms = 10000;
    srv->keepalive_timeout_ms = 75000;
    srv->send_timeout_ms = 60000;
    srv->lingering_time_ms = 30000;
    srv->lingering_timeout_ms = 5000;
    srv->lingering_max_bytes = 64 << 20;
    srv->max_connections = -1;
    srv->in_size = srv->max_header_bytes + HTTP_IN_EXTRA;
}

static int set_server_line(struct async_http_server *srv, const char *name)
{
    char *line = NULL;
    size_t n;

    if (name != NULL) {
        n = strlen(name);
        if (strpbrk(name, "\r\n") != NULL) {
            errno = EINVAL;
            return -1;
        }
        if ((line = malloc(n + 11)) == NULL)
            return -1;
        memcpy(line, "Server: ", 8);
        memcpy(line + 8, name, n);
        memcpy(line + 8 + n, "\r\n", 3);
    }
    free(srv->server_line);
    srv->server_line = line;
    srv->server_line_len = line != NULL ? strlen(line) : 0;
    return 0;
}

async_http_server *async_http_server_new(async_http_handler fn, void *ctx)
{
    struct async_http_server *srv;

    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return NULL;
    srv->fn = fn;
    srv->ctx = ctx;
    set_defaults(srv);
    if (set_server_line(srv, "async_io") != 0) {
        free(srv);
        return NULL;
    }
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->locals_lock, NULL);
    srv->gen = atomic_fetch_add(&generation, 1) + 1;
    return srv;
}

static bool frozen(const struct async_http_server *srv)
{
    if (atomic_load_explicit(&srv->used, memory_order_acquire)) {
        errno = EBUSY;
        return true;
    }
    return false;
}

int async_http_server_set(async_http_server *srv, enum async_http_option opt, int64_t v)
{
    if (srv == NULL || srv->simple) {
        errno = EINVAL;
        return -1;
    }
    if (frozen(srv))
        return -1;
#define RANGE(lo, hi) do { if (v < (lo) || v > (hi)) { errno = EINVAL; return -1; } } while (0)
    switch (opt) {
    case ASYNC_HTTP_MAX_HEADER_BYTES:
        RANGE(256, 1 << 20);
        srv->max_header_bytes = (size_t)v;
        srv->in_size = srv->max_header_bytes + HTTP_IN_EXTRA;
        return 0;
    case ASYNC_HTTP_MAX_HEADERS:
        RANGE(1, HTTP_MAX_HEADERS);
        srv->max_headers = (unsigned)v;
        return 0;
    case ASYNC_HTTP_MAX_BODY_BYTES:
        RANGE(0, INT64_MAX);
        srv->max_body_bytes = (uint64_t)v;
        return 0;
    case ASYNC_HTTP_HEADER_TIMEOUT_MS:
        RANGE(1, 86400000);
        srv->header_timeout_ms = v;
        return 0;
    case ASYNC_HTTP_BODY_TIMEOUT_MS:
        RANGE(1, 86400000);
        srv->body_timeout_ms = v;
        return 0;
    case ASYNC_HTTP_KEEPALIVE_TIMEOUT_MS:
        RANGE(0, 86400000);
        srv->keepalive_timeout_ms = v;
        return 0;
    case ASYNC_HTTP_SEND_TIMEOUT_MS:
        RANGE(1, 86400000);
        srv->send_timeout_ms = v;
        return 0;
    case ASYNC_HTTP_LINGERING_TIME_MS:
        RANGE(0, 86400000);
        srv->lingering_time_ms = v;
        return 0;
    case ASYNC_HTTP_LINGERING_TIMEOUT_MS:
        RANGE(1, 86400000);
        srv->lingering_timeout_ms = v;
        return 0;
    case ASYNC_HTTP_LINGERING_MAX_BYTES:
        RANGE(0, INT64_MAX);
        srv->lingering_max_bytes = (uint64_t)v;
        return 0;
    case ASYNC_HTTP_MAX_CONNECTIONS:
        RANGE(1, 100000000);
        srv->max_connections = (long)v;
        return 0;
    case ASYNC_HTTP_TIME_REQUESTS:
        RANGE(0, 1);
        srv->time_requests = v != 0;
        return 0;
    }
#undef RANGE
    errno = EINVAL;
    return -1;
}

int async_http_server_set_name(async_http_server *srv, const char *name)
{
    if (srv == NULL || srv->simple) {
        errno = EINVAL;
        return -1;
    }
    if (frozen(srv))
        return -1;
    return set_server_line(srv, name);
}

int async_http_server_set_log(async_http_server *srv, async_http_log_format fmt,
                              async_http_log_write write, void *ctx)
{
    if (srv == NULL || srv->simple || (fmt == NULL) != (write == NULL)) {
        errno = EINVAL;
        return -1;
    }
    if (frozen(srv))
        return -1;
    srv->log_fmt = fmt;
    srv->log_write = write;
    srv->log_ctx = ctx;
    return 0;
}

/* ---- per worker ---- */

static __thread struct http_local *mine;
static __thread unsigned mine_gen; /* whose state `mine` is; 0: nobody's */

struct http_local *async__http_local(struct async_http_server *srv)
{
    struct http_local *l;

    if (mine_gen == srv->gen)
        return mine;
    if (srv->simple || (l = calloc(1, sizeof(*l))) == NULL)
        return NULL;
    l->gen = srv->gen;
    pthread_mutex_lock(&srv->locals_lock);
    l->next = srv->locals;
    srv->locals = l;
    pthread_mutex_unlock(&srv->locals_lock);
    mine = l;
    mine_gen = srv->gen;
    return l;
}

char *async__http_buf_get(struct async_http_server *srv)
{
    struct http_local *l = async__http_local(srv);

    if (l != NULL && l->nin > 0)
        return l->in[--l->nin];
    return malloc(srv->in_size);
}

void async__http_buf_put(struct async_http_server *srv, char *buf)
{
    struct http_local *l = buf != NULL ? async__http_local(srv) : NULL;

    if (l != NULL && l->nin < HTTP_LOCAL_BUFS)
        l->in[l->nin++] = buf;
    else
        free(buf);
}

int async__http_out_get(struct async_http_server *srv, struct http_out *o)
{
    struct http_local *l = async__http_local(srv);

    o->len = 0;
    if (l != NULL && l->nouts > 0)
        o->buf = l->outs[--l->nouts];
    else if ((o->buf = malloc(HTTP_OUT_SIZE)) == NULL)
        return -1;
    o->cap = HTTP_OUT_SIZE;
    return 0;
}

void async__http_out_put(struct async_http_server *srv, struct http_out *o)
{
    struct http_local *l = o->cap == HTTP_OUT_SIZE ? async__http_local(srv) : NULL;

    if (l != NULL && l->nouts < 2 * HTTP_LOCAL_BUFS)
        l->outs[l->nouts++] = o->buf;
    else
        free(o->buf);
    *o = (struct http_out){0};
}

static void bump(_Atomic uint64_t *n)
{
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void async__http_count(struct async_http_server *srv, int status)
{
    unsigned cls = (unsigned)status / 100;
    struct http_local *l = async__http_local(srv);

    if (cls < 1 || cls > 5)
        return;
    if (l != NULL) {
        bump(&l->by_class[cls]);
        bump(&l->requests);
    } else {
        atomic_fetch_add_explicit(&srv->by_class[cls], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv->requests, 1, memory_order_relaxed);
    }
}

void async__http_count_bytes(struct async_http_server *srv, uint64_t n)
{
    struct http_local *l = n > 0 ? async__http_local(srv) : NULL;

    if (l != NULL)
        atomic_store_explicit(&l->bytes_sent,
                              atomic_load_explicit(&l->bytes_sent, memory_order_relaxed) + n,
                              memory_order_relaxed);
}

void async__http_count_duration(struct async_http_server *srv, int64_t us)
{
    static const uint64_t bound[ASYNC_HTTP_DURATION_BUCKETS] = ASYNC_HTTP_DURATION_BOUNDS_US;
    struct http_local *l = async__http_local(srv);
    unsigned i = 0;

    if (l == NULL)
        return;
    if (us < 0)
        us = 0;
    while (i < ASYNC_HTTP_DURATION_BUCKETS && (uint64_t)us > bound[i])
        i++;
    bump(&l->duration[i]);
    bump(&l->timed);
    atomic_store_explicit(&l->timed_us,
                          atomic_load_explicit(&l->timed_us, memory_order_relaxed) + (uint64_t)us,
                          memory_order_relaxed);
}

void async_http_server_metrics(async_http_server *srv, struct async_http_metrics *m)
{
    struct http_local *l;
    struct http_conn *c;
    unsigned i;

    memset(m, 0, sizeof(*m));
    pthread_mutex_lock(&srv->lock);
    for (c = srv->conns; c != NULL; c = c->next) {
        uint8_t p = atomic_load_explicit(&c->parked, memory_order_relaxed);

        m->connections_idle += p == PARK_IDLE;
        m->connections_lingering += p == PARK_LINGER;
    }
    pthread_mutex_unlock(&srv->lock);
    pthread_mutex_lock(&srv->locals_lock);
    for (l = srv->locals; l != NULL; l = l->next) {
        m->bytes_sent += atomic_load_explicit(&l->bytes_sent, memory_order_relaxed);
        m->duration_count += atomic_load_explicit(&l->timed, memory_order_relaxed);
        m->duration_sum_us += atomic_load_explicit(&l->timed_us, memory_order_relaxed);
        for (i = 0; i <= ASYNC_HTTP_DURATION_BUCKETS; i++)
            m->duration_buckets[i] += atomic_load_explicit(&l->duration[i], memory_order_relaxed);
    }
    pthread_mutex_unlock(&srv->locals_lock);
}

void async_http_server_stats(async_http_server *srv, struct async_http_stats *st)
{
    struct http_local *l;
    unsigned i;

    memset(st, 0, sizeof(*st));
    st->connections_open = (uint64_t)atomic_load_explicit(&srv->open, memory_order_relaxed);
    st->connections_total = atomic_load_explicit(&srv->total, memory_order_relaxed);
    st->connections_refused = atomic_load_explicit(&srv->refused, memory_order_relaxed);
    st->requests = atomic_load_explicit(&srv->requests, memory_order_relaxed);
    for (i = 1; i < 6; i++)
        st->responses[i] = atomic_load_explicit(&srv->by_class[i], memory_order_relaxed);
    pthread_mutex_lock(&srv->locals_lock);
    for (l = srv->locals; l != NULL; l = l->next) {
        st->requests += atomic_load_explicit(&l->requests, memory_order_relaxed);
        for (i = 1; i < 6; i++)
            st->responses[i] += atomic_load_explicit(&l->by_class[i], memory_order_relaxed);
    }
    pthread_mutex_unlock(&srv->locals_lock);
}

/* ---- idle connections' deadlines ---- */

/* Connections parked without a fiber keep no timer: a sweep a few times
 * per timeout shuts down those past their deadline (shutdown makes the
 * socket readable, so the connection wakes and ends). */
static void *sweeper(void *arg)
{
    struct async_http_server *srv = arg;
    int64_t every = srv->header_timeout_ms, now;
    struct http_conn *c;

    if (srv->keepalive_timeout_ms > 0 && srv->keepalive_timeout_ms < every)
        every = srv->keepalive_timeout_ms;
    if (srv->lingering_time_ms > 0 && srv->lingering_timeout_ms < every)
        every = srv->lingering_timeout_ms;
    every /= 4;
    every = every < 10 ? 10 : every > 1000 ? 1000 : every;
    while (async_sleep_ms((uint64_t)every) == 0) {
        now = async_now_ms();
        pthread_mutex_lock(&srv->lock);
        for (c = srv->conns; c != NULL; c = c->next)
            if (atomic_load_explicit(&c->parked, memory_order_acquire) != PARK_NONE &&
                now >= atomic_load_explicit(&c->park_until, memory_order_relaxed))
                shutdown(c->fd, SHUT_RD);
        pthread_mutex_unlock(&srv->lock);
    }
    return NULL;
}

void async__http_sweeper_ensure(struct async_http_server *srv)
{
    int none = 0;
    async_task *t;

    if (atomic_load_explicit(&srv->sweeper_state, memory_order_acquire) == 2 ||
        !atomic_compare_exchange_strong(&srv->sweeper_state, &none, 1))
        return;
    t = async_spawn(sweeper, srv);
    srv->sweeper = t;
    atomic_store_explicit(&srv->sweeper_state, t != NULL ? 2 : 0, memory_order_release);
}

/* ---- serving ---- */

static int admit(struct async_http_server *srv, async_stream *s)
{
    if (atomic_load(&srv->draining)) {
        async_stream_close(s);
        errno = ESHUTDOWN;
        return -1;
    }
    atomic_store_explicit(&srv->used, true, memory_order_release);
    return 0;
}

int async_http_server_serve(async_http_server *srv, async_stream *s)
{
    struct http_conn *c;

    if (srv == NULL || s == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (admit(srv, s) != 0)
        return -1;
    if ((c = async__http_conn_new(srv, s)) == NULL) {
        async_stream_close(s);
        errno = ENOMEM;
        return -1;
    }
    async__http_conn_run(c);
    return 0;
}

int async_http_serve(async_stream *s, async_http_handler fn, void *ctx)
{
    struct async_http_server srv;
    struct http_conn *c;

    if (s == NULL || fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* One connection, the defaults, no list: a server on this stack. */
    memset(&srv, 0, sizeof(srv));
    set_defaults(&srv);
    srv.fn = fn;
    srv.ctx = ctx;
    srv.simple = true;
    srv.server_line = (char *)"Server: async_io\r\n";
    srv.server_line_len = strlen(srv.server_line);
    if ((c = async__http_conn_new(&srv, s)) == NULL) {
        async_stream_close(s);
        errno = ENOMEM;
        return -1;
    }
    async__http_conn_run(c);
    return 0;
}

static const char busy_reply[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\nRetry-After: 1\r\n"
    "Connection: close\r\n\r\nService Unavailable\n";

/* Past max_connections: one try at a 503, never parking (a full socket
 * buffer on a fresh connection is not worth waiting for when we are
 * already over the limit), then a short linger without any state: shut
 * the write side and drop the request if it is there, so that the close
 * sends a FIN and not a reset that would destroy the 503. */
static void refuse_busy(struct async_http_server *srv, async_stream *s)
{
    int fd = async_stream_fd(s);
    char sink[4096];

    /* counted first: whoever reads the 503 may look at the figures next */
    atomic_fetch_add_explicit(&srv->refused, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->by_class[5], 1, memory_order_relaxed);
    /* a TLS stream has said nothing yet: no plain 503 through it */
    if (async_stream_layered(s) == 0 &&
        send(fd, busy_reply, sizeof(busy_reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
        shutdown(fd, SHUT_WR);
        while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
            ;
    }
    async_stream_close(s);
}

int async_http_server_start(async_http_server *srv, async_stream *s, int worker)
{
    return async_http_server_start_tagged(srv, s, worker, NULL);
}

int async_http_server_set_hooks(async_http_server *srv, const struct async_http_hooks *hooks)
{
    if (srv == NULL || srv->simple || hooks == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (frozen(srv))
        return -1;
    srv->hooks = *hooks;
    return 0;
}

int async_http_server_set_error_hook(async_http_server *srv, async_http_error_fn fn, void *ctx)
{
    if (srv == NULL || srv->simple || fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (frozen(srv))
        return -1;
    srv->error_fn = fn;
    srv->error_ctx = ctx;
    return 0;
}

int async_http_server_start_tagged(async_http_server *srv, async_stream *s, int worker,
                                   void *tag)
{
    struct http_conn *c;
    async_task *t;
    int workers = async_workers();

    if (srv == NULL || s == NULL || srv->simple || workers < 0) {
        if (s != NULL)
            async_stream_close(s);
        errno = workers < 0 ? EPERM : EINVAL;
        return -1;
    }
    if (admit(srv, s) != 0)
        return -1;
    if (srv->max_connections > 0 &&
        atomic_load_explicit(&srv->open, memory_order_relaxed) >= srv->max_connections) {
        refuse_busy(srv, s);
        errno = EBUSY;
        return -1;
    }
    async__http_sweeper_ensure(srv);
    if ((c = async__http_conn_new(srv, s)) == NULL) {
        refuse_busy(srv, s);
        errno = ENOMEM;
        return -1;
    }
    c->parks = true;
    c->tag = tag;
    t = worker < 0 ? async_spawn(async__http_conn_main, c)
                   : async_spawn_on((unsigned)worker % (unsigned)workers,
                                    async__http_conn_main, c);
    if (t == NULL) {
        async__http_conn_free(c);
        errno = ENOMEM;
        return -1;
    }
    async_detach(t);
    return 0;
}

/* Parks until every connection has left or until at_ms (-1: no limit). */
static void wait_conns(struct async_http_server *srv, int64_t at_ms)
{
    while (atomic_load_explicit(&srv->open, memory_order_acquire) > 0 &&
           (at_ms < 0 || async_now_ms() < at_ms))
        async_sleep_ms(SHUTDOWN_POLL_MS);
}

/* The drain's deadline: idle connections (still silent) close, busy ones
 * are cut.  How many were busy. */
static long cut(struct async_http_server *srv)
{
    struct http_conn *c;
    long busy = 0;

    atomic_store(&srv->cutting, true); /* then load parked: see conn.c */
    pthread_mutex_lock(&srv->lock);
    for (c = srv->conns; c != NULL; c = c->next) {
        if (atomic_load(&c->parked) == PARK_IDLE) {
            shutdown(c->fd, SHUT_RD);
        } else {
            shutdown(c->fd, SHUT_RDWR);
            busy++;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    return busy;
}

long async_http_server_shutdown(async_http_server *srv, int64_t deadline_ms)
{
    int shield = async_shield(1);
    long left = 0;

    /* From now on every response says Connection: close.  Idle keep-alive
     * connections stay open until their next request (answered, then
     * closed) or the deadline: closing them now would reset a request a
     * client is sending meanwhile (conn.c). */
    atomic_store(&srv->draining, true);
    wait_conns(srv, deadline_ms);
    if (atomic_load(&srv->open) > 0) {
        left = cut(srv);
        wait_conns(srv, -1);
    }
    if (atomic_load_explicit(&srv->sweeper_state, memory_order_acquire) == 2) {
        async_cancel(srv->sweeper);
        async_join(srv->sweeper, NULL);
        srv->sweeper = NULL;
        atomic_store(&srv->sweeper_state, 0);
    }
    if (shield >= 0)
        async_shield(shield);
    return left;
}

void async_http_server_free(async_http_server *srv)
{
    struct http_local *l, *next;

    if (srv == NULL)
        return;
    for (l = srv->locals; l != NULL; l = next) {
        next = l->next;
        while (l->nin > 0)
            free(l->in[--l->nin]);
        while (l->nouts > 0)
            free(l->outs[--l->nouts]);
        free(l);
    }
    pthread_mutex_destroy(&srv->locals_lock);
    pthread_mutex_destroy(&srv->lock);
    free(srv->server_line);
    free(srv);
}
