/* runtime/http/engine.h — what the files of the HTTP engine share.
 *
 *   parse.c     request heads and chunked bodies (pure; parse.h)
 *   out.c       the output buffer, status lines, the Date cache
 *   server.c    the server object: options, connections, per-worker state,
 *               the idle sweeper, shutdown, statistics
 *   conn.c      one connection: read, parse, call the handler, answer,
 *               park while idle, linger while closing
 *   request.c   the request object handlers see: accessors, the body,
 *               the response head and writes
 *   logq.c      access-log lines held until their bytes have left
 *   client.c    calls to other servers, and their connection pool
 *
 * Threads.  A server is configured by one fiber before its first
 * connection and read-only afterwards.  A connection and its requests
 * belong to the fiber that serves it (a fiber never changes worker); the
 * server's connection list is guarded by srv->lock; its counters are
 * relaxed atomics or per-worker single-writer ones (server.c). */
#ifndef ASYNC_HTTP_ENGINE_H
#define ASYNC_HTTP_ENGINE_H

#include "parse.h"

#include <async_io/http.h>
#include <async_io/layer.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define HTTP_IN_EXTRA 4096      /* input room beyond max_header_bytes, for pipelining */
#define HTTP_LOCAL_BUFS 4       /* spare input buffers per worker */
#define HTTP_PATH_MAX 4096

/* ---- output (out.c) ---- */

struct http_out {
    char *buf;
    size_t len, cap;
};

#define HTTP_OUT_SIZE 4096      /* an output or header buffer's first size */

int async__http_out_reserve(struct http_out *o, size_t more);
void async__http_out_grow(struct http_out *o, const void *p, size_t n);

/* Appends; out of memory for a few KiB of head is fatal (abort).  Inline:
 * a response's head is a dozen of these. */
static inline void async__http_out_add(struct http_out *o, const void *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL then (an empty body) */
    if (o->len + n <= o->cap) {
        memcpy(o->buf + o->len, p, n);
        o->len += n;
    } else {
        async__http_out_grow(o, p, n);
    }
}
void async__http_out_u64(struct http_out *o, uint64_t v);
void async__http_out_hex(struct http_out *o, uint64_t v);
/* Where a chunked body's decoded bytes go (async__http_chunked_feed's
 * on_data, with a struct http_sink as ctx): appended at p + got. */
struct http_sink {
    char *p;
    size_t got;
};
void async__http_sink(void *ctx, const char *p, size_t n);

/* "HTTP/1.1 NNN Reason\r\n" */
void async__http_out_status_line(struct http_out *o, int status);
const char *async__http_reason(int status);
/* The current IMF-fixdate (29 bytes), cached per thread and second. */
const char *async__http_date_now(void);

/* ---- the server (server.c) ---- */

struct http_local {
    unsigned gen;               /* whose; see server.c */
    char *in[HTTP_LOCAL_BUFS];
    unsigned nin;
    char *outs[2 * HTTP_LOCAL_BUFS]; /* spare HTTP_OUT_SIZE buffers (output, headers) */
    unsigned nouts;
    /* single writer (the owner), relaxed: no locked instruction per request */
    _Atomic uint64_t by_class[6];
    _Atomic uint64_t requests;
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t timed, timed_us;  /* requests timed, their microseconds */
    _Atomic uint64_t duration[ASYNC_HTTP_DURATION_BUCKETS + 1];
    struct http_local *next;
};

struct http_conn;

struct async_http_server {
    async_http_handler fn;
    void *ctx;
    /* options (read-only once used) */
    size_t max_header_bytes;
    unsigned max_headers;
    uint64_t max_body_bytes;
    int64_t header_timeout_ms;
    int64_t body_timeout_ms;
    int64_t keepalive_timeout_ms;
    int64_t send_timeout_ms;
    int64_t lingering_time_ms;
    int64_t lingering_timeout_ms;
    uint64_t lingering_max_bytes;
    long max_connections;       /* -1: no limit */
    char *server_line;          /* "Server: name\r\n", or NULL for none */
    size_t server_line_len;
    size_t in_size;             /* input buffer: max_header_bytes + HTTP_IN_EXTRA */
    async_http_log_format log_fmt;
    async_http_log_write log_write;
    void *log_ctx;
    struct async_http_hooks hooks; /* for tagged exchanges (async_http_set_tag) */
    async_http_error_fn error_fn; /* the engine's own errors; NULL: built-in bodies only */
    void *error_ctx;
    bool simple;                /* async_http_serve's defaults: no list, no locals */
    bool time_requests;         /* ASYNC_HTTP_TIME_REQUESTS */
    /* state */
    _Atomic bool used;          /* a connection came: options are frozen */
    _Atomic bool draining;      /* shutting down: every response says Connection: close */
    _Atomic bool cutting;       /* the drain's deadline: idle connections close now */
    _Atomic long open;
    _Atomic uint64_t total;
    _Atomic uint64_t refused;
    _Atomic uint64_t by_class[6]; /* counted off a worker (rare) */
    _Atomic uint64_t requests;
    pthread_mutex_t lock;       /* guards conns */
    struct http_conn *conns;
    _Atomic int sweeper_state;  /* 0 none, 1 starting, 2 running */
    async_task *sweeper;
    unsigned gen;
    pthread_mutex_t locals_lock; /* guards locals (the list, not their contents) */
    struct http_local *locals;
};

/* The calling worker's state for srv, made on first use; NULL if out of
 * memory or srv is simple. */
struct http_local *async__http_local(struct async_http_server *srv);
char *async__http_buf_get(struct async_http_server *srv);
void async__http_buf_put(struct async_http_server *srv, char *buf);
/* An empty output buffer of HTTP_OUT_SIZE from the worker's spares (or
 * malloc); 0 or -1.  out_put keeps it as a spare or frees it. */
int async__http_out_get(struct async_http_server *srv, struct http_out *o);
void async__http_out_put(struct async_http_server *srv, struct http_out *o);
void async__http_count(struct async_http_server *srv, int status);
/* n bytes left for a client (per worker; nothing for a simple server). */
void async__http_count_bytes(struct async_http_server *srv, uint64_t n);
/* A timed request took us microseconds (per worker, as above). */
void async__http_count_duration(struct async_http_server *srv, int64_t us);
/* Starts the idle sweeper of srv unless it runs (server.c). */
void async__http_sweeper_ensure(struct async_http_server *srv);

/* ---- connections (conn.c) ---- */

enum http_park {
    PARK_NONE,                  /* a fiber runs it */
    PARK_IDLE,                  /* waiting for a request */
    PARK_LINGER,                /* closed by us, dropping what the peer still sends */
};

struct http_logq;

/* The server is shutting down, or the calling connection's fiber was
 * cancelled (its owner is stopping; the shutdown is on its way): the
 * response in progress is the connection's last (Connection: close). */
static inline bool async__http_ending(struct async_http_server *srv)
{
    return atomic_load_explicit(&srv->draining, memory_order_relaxed) || async_cancelled() > 0;
}

/* Kept small: a parked connection is this, its stream and a parked task. */
struct http_conn {
    struct async_http_server *srv;
    async_stream *s;
    struct http_conn *prev, *next; /* srv->conns, under srv->lock */
    char *in;                   /* NULL while parked */
    struct http_out out;        /* responses not yet sent */
    struct http_out hdr;        /* the handler's header lines for the head */
    struct http_logq *logq;     /* access-log lines waiting for their bytes */
    char *peer;                 /* "addr:port", made on first use */
    _Atomic int64_t park_until; /* parked: when the sweeper shuts it down */
    int64_t head_started;       /* when the head being read began, ms */
    int64_t linger_end;
    uint64_t lingered;
    int fd;
    uint32_t off, len, cap;     /* in[off..len) unread */
    _Atomic uint8_t parked;     /* enum http_park; read by the sweeper and the drain */
    bool awake;                 /* new or just woken: try a read before parking */
    bool fresh;                 /* no request yet */
    bool parks;                 /* idle waits hand over to a new fiber (server_start) */
    bool layered;               /* the stream has a layer (TLS): no syscalls of our own on fd */
    bool layer_copies;          /* its layer said EOPNOTSUPP to a file: read and write them */
    void *tag;                  /* async_http_server_start_tagged's; NULL otherwise */
    struct async_http_request *cur; /* the exchange in progress, or NULL */
};

struct http_conn *async__http_conn_new(struct async_http_server *srv, async_stream *s);
void async__http_conn_free(struct http_conn *c);
/* Serves c on this fiber; returns when the connection ended or was
 * handed to another fiber. */
void async__http_conn_run(struct http_conn *c);
/* The fiber of a connection started by async_http_server_start. */
void *async__http_conn_main(void *arg);
/* Sends out's bytes (MSG_MORE when more follows), then settles the log.
 * 0, or -1 when the peer went or stalled. */
int async__http_flush(struct http_conn *c, bool more);
/* Sends p[0..n) after out (flushed first); *sent: the bytes of p that left. */
int async__http_send_direct(struct http_conn *c, const char *p, size_t n, size_t *sent);
/* sendfile of fd[off..off+len); *sent as above. */
int async__http_send_file(struct http_conn *c, int fd, off_t off, uint64_t len,
                          uint64_t *sent);
/* Reads more bytes at in[len..cap) under the fiber's deadline: bytes, 0 at
 * the end, -1 with errno. */
ssize_t async__http_read(struct http_conn *c, void *buf, size_t len);
/* The fiber's deadline moved to at most at_ms; returns the previous one
 * for async__http_deadline_restore. */
int64_t async__http_deadline(int64_t at_ms);

/* ---- the request (request.c) ---- */

struct async_http_request {
    struct http_conn *c;
    struct http_request h;      /* the parsed head; slices NUL-terminated */
    const char *query;
    int64_t started_us;         /* when the head was complete (monotonic) */
    int64_t duration_us;        /* async_http_duration_us: -1 until timed */
    size_t body_at;             /* the body's first unread byte in c->in */
    /* body */
    struct http_chunked ch;
    uint64_t body_left;         /* content-length bytes not yet read */
    uint64_t body_read;
    int64_t body_deadline;      /* -1 until the body is first read */
    int body_error;             /* errno once reading failed, else 0 */
    bool body_malformed;        /* ... because of a malformed chunk */
    bool body_done;
    bool continue_due;          /* send 100 Continue before the first read */
    bool duplex;                /* async_http_duplex: body reads leave the output alone */
    bool valid;                 /* a parsed request (not an engine error answer) */
    /* response */
    int status;
    bool head_sent;
    bool has_length;
    bool chunked;               /* the body goes out chunked */
    bool until_close;           /* the body ends with the connection (HTTP/1.0) */
    bool no_body;               /* HEAD, 1xx, 204, 304: writes are counted only */
    bool own_server, own_date;
    bool close;                 /* close the connection after this response */
    bool broken;                /* the response cannot be completed: close */
    bool upgraded;              /* the stream is the handler's (async_http_upgrade) */
    uint64_t length;            /* Content-Length, when has_length */
    uint64_t written;           /* body bytes the handler wrote */
    uint64_t body_sent;         /* body bytes known to have left */
    size_t body_start;          /* where this response's body starts in c->out */
    uint64_t pending;           /* body bytes in c->out after body_start */
    void *tag;                  /* the handler's (async_http_set_tag); NULL at first */
    const char *host;           /* async_http_host: authority or Host, NULL if none */
    char authority[256];        /* an absolute-form target's authority, NUL-ended */
    char path[HTTP_PATH_MAX + 1];
};

/* Prepares req for the head at in[off..off+head) (NUL-terminating the
 * slices) and calls the handler; then completes the response. */
void async__http_request_init(struct async_http_request *req, struct http_conn *c,
                              size_t head_end);
/* Builds the head into c->out (once). */
void async__http_emit_head(struct async_http_request *req, bool streaming);
/* After the handler returned rc: completes the response (500, the last
 * chunk, length checks) and reads away an unread body.  false when the
 * connection must close after it. */
bool async__http_request_finish(struct async_http_request *req, int rc);
/* An answer of the engine's own (an error): the error hook's, else a
 * small text body; close: end the connection after it. */
void async__http_error(struct async_http_request *req, int status, bool close);
/* For a request refused after its head was parsed whole (413): its
 * request line, fields and host made readable for the error hook. */
void async__http_refused_head(struct async_http_request *req);
/* The tagged exchange is over: the done hook, once. */
void async__http_exchange_done(struct async_http_request *req);

/* What a field name means to the engine (request.c), by its length first:
 * one comparison for most names.  The client refuses the same hop-by-hop
 * fields. */
enum http_field {
    FIELD_OTHER,
    FIELD_HOP,          /* the engine's or one connection's: refused */
    FIELD_LENGTH,
    FIELD_SERVER,
    FIELD_DATE,
};
enum http_field async__http_field_kind(const char *name, size_t n);

/* ---- access-log lines (logq.c) ---- */

/* Formats req's line (srv->log_fmt) and stages it: its body bytes are
 * known plus, of the pending payload bytes from out[body_start], those
 * that leave. */
void async__http_logq_add(struct http_conn *c, const struct async_http_request *req,
                          size_t body_start, uint64_t pending, uint64_t known);
/* out's first out_sent bytes have left: writes every staged line. */
void async__http_logq_settle(struct http_conn *c, size_t out_sent);
void async__http_logq_free(struct http_logq *q);

#endif
