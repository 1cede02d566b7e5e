/* modules/http/http.h — what the files of the http module share.
 *
 *   http.c      the module: config check, listeners, acceptors, drain
 *   config.c    modules.http of asyncd.json -> struct http_config
 *   conn.c      one fiber per connection: read, parse, answer, repeat
 *   response.c  status lines, the Date cache, the output buffer
 *   files.c     static files beneath the root (sendfile, ranges, 304)
 *   access_log.c  the access log's destination, through the daemon's log writer
 *   log_line.c  its lines, written once the response has left
 *   parse.c     the request parser (pure; see parse.h)
 *
 * Threads: every connection runs on one worker; the server struct is
 * shared by all of them.  Its counters are relaxed atomics, its
 * configuration is read-only while it serves, and its connection list is
 * guarded by a mutex (taken at connect and close, and by the drain and
 * the idle sweeper). */
#ifndef HTTP_HTTP_H
#define HTTP_HTTP_H

#include "parse.h"

#include <async_io.h>
#include <async_io/module.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define HTTP_MAX_LISTEN 16
#define HTTP_IN_EXTRA 4096      /* input buffer room beyond max_header_bytes, for pipelining */
#define HTTP_SERVER_NAME "async_io"
#define HTTP_OWN_SERVER 1u      /* the route's headers carry Server: write no default */
#define HTTP_OWN_DATE 2u        /* ... Date */

struct http_route {
    char *path;                 /* exact, decoded path */
    int status;
    char *content_type;         /* NULL: no Content-Type */
    char *body;
    size_t body_len;
    char *headers;              /* extra header lines, each ending in CRLF */
    unsigned own;               /* HTTP_OWN_*: defaults that headers replace */
};

struct http_config {
    char *listen[HTTP_MAX_LISTEN];
    size_t nlisten;
    char *root;                 /* NULL: no static files */
    char **index;               /* index file names */
    size_t nindex;
    struct http_route *routes;
    size_t nroutes;
    char *status_path;          /* NULL: no status endpoint */
    char *access_log;           /* NULL: none; "stderr"; or a path */
    int64_t keepalive_timeout_ms;
    int64_t header_timeout_ms;
    int64_t body_timeout_ms;
    int64_t send_timeout_ms;    /* between two successful writes */
    int64_t open_file_cache_ms; /* how long an open file is reused; 0: never */
    size_t max_header_bytes;
    unsigned max_headers;
    uint64_t max_body_bytes;
    long max_connections;       /* -1 until server_open sets it from RLIMIT_NOFILE */
    /* Closing while the peer may still send (conn.c): read and discard for
     * at most lingering_time_ms, lingering_timeout_ms between reads and
     * lingering_max_bytes in all; lingering_time_ms 0 closes at once. */
    int64_t lingering_time_ms;
    int64_t lingering_timeout_ms;
    uint64_t lingering_max_bytes;
    bool serve_hidden;          /* serve path segments that start with '.' */
};

/* Validates modules.http, reporting every problem by its JSON path: 0, or
 * -1 when it reported one. */
int http_config_validate(const json_t *config, async_module_report *report);
/* A config validate accepted, with every default filled in (asyncd -T):
 * a new reference, or NULL. */
json_t *http_config_effective(const json_t *config);
/* max_connections when the config does not say: what RLIMIT_NOFILE allows. */
long http_default_max_connections(void);
/* Reads a config that passed the check; 0 or -1 (ENOMEM). */
int http_config_load(const json_t *config, struct http_config *c);
void http_config_free(struct http_config *c);

struct http_log;

/* Opens the access log described by dest ("stderr" or a path, through
 * the daemon's log writer); NULL and errno on failure. */
struct http_log *http_log_open(async_module_host *host, const char *dest);
/* Queues one line (written by the daemon within a second; dropped and
 * counted if its queue is full).  Never blocks.  Any thread. */
void http_log_line(struct http_log *l, const char *line, size_t len);
/* Lines dropped so far because the daemon's queue was full. */
uint64_t http_log_dropped(const struct http_log *l);
/* Hands over what is queued and frees l; never blocks. */
void http_log_close(struct http_log *l);

/* ---- access-log lines (log_line.c) ---- */

struct http_logq;

struct http_log_peer {
    uint8_t family;             /* AF_INET, AF_INET6, or 0: unknown */
    uint8_t addr[16];
};

/* Stages the line of a response whose body occupies [body_start,
 * body_end) of the connection's output buffer, or, when sent >= 0, whose
 * body bytes are already counted (a file).  req may be NULL (a request
 * that could not be parsed).  *qp is made on first use. */
void http_logq_add(struct http_logq **qp, const struct http_log_peer *peer,
                   const struct http_request *req, int status, size_t body_start,
                   size_t body_end, int64_t sent);
/* The output buffer's first out_sent bytes have left: writes every staged
 * line with the body bytes of it that left, and empties the queue. */
void http_logq_settle(struct http_logq *q, struct http_log *log, size_t out_sent);
void http_logq_free(struct http_logq *q);

struct http_conn;

/* True at most once a second for one *at (the async_now_ms it last was),
 * among any number of workers: for warnings a flood would repeat. */
bool http_once_a_second(_Atomic int64_t *at);

struct http_server {
    async_module_host *host;
    struct http_config cfg;
    int root_fd;                /* O_PATH directory, -1 without a root */
    struct http_log *log;
    /* status figures */
    _Atomic long open;
    _Atomic uint64_t total;
    _Atomic uint64_t by_class[6]; /* [1..5]: responses counted off a worker (rare) */
    /* live connections, for the drain */
    pthread_mutex_t lock;       /* guards conns */
    struct http_conn *conns;
    _Atomic bool draining;
    _Atomic uint64_t refused;   /* connections refused for max_connections */
    _Atomic int64_t busy_logged_at; /* when that was last logged (async_now_ms) */
    _Atomic uint64_t fd_refused; /* requests answered 503: no descriptor for a file */
    _Atomic int64_t fd_logged_at;
    /* per-worker state (local.c) */
    unsigned gen;               /* tells this server's from a predecessor's */
    size_t in_size;             /* input buffer size */
    pthread_mutex_t locals_lock;
    struct http_local *locals;
};

/* The fiber of one accepted connection; arg is a struct http_conn made by
 * http_conn_new.  Closes the stream and frees the connection at the end. */
struct http_conn *http_conn_new(struct http_server *srv, async_stream *s);
void *http_conn_main(void *arg);
/* Closes and frees a connection whose fiber could not be started. */
void http_conn_close(struct http_conn *c);
/* Drain: ends idle connections now and tells busy ones to close after the
 * response in progress.  Called with srv->draining already set. */
void http_conns_drain(struct http_server *srv);
/* Ends connections idle for keepalive_timeout_ms or longer by now. */
void http_conns_expire(struct http_server *srv, int64_t now);
/* Cuts every remaining connection (their fibers then end on their own). */
void http_conns_abort(struct http_server *srv);

/* ---- output (response.c) ---- */

struct http_out {
    char *buf;
    size_t len, cap;
};

int http_out_reserve(struct http_out *o, size_t more);
void http_out_add(struct http_out *o, const void *p, size_t n);
void http_out_addf(struct http_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* v in decimal */
void http_out_u64(struct http_out *o, uint64_t v);
/* "HTTP/1.1 NNN Reason\r\nServer: ..\r\nDate: ..\r\n" */
void http_out_status(struct http_out *o, int status);
const char *http_reason(int status);
/* IMF-fixdate of t into out (30 bytes with the NUL). */
void http_date(time_t t, char out[30]);
/* The current IMF-fixdate, cached per thread and second. */
const char *http_date_now(void);
/* Parses an IMF-fixdate; -1 when it is not one. */
time_t http_date_parse(const char *p, size_t n);

/* ---- static files (files.c, file_cache.c) ---- */

struct http_request;
struct http_reply;

/* An open file, ready to serve, shared by the requests of one worker. */
struct http_file {
    int fd;
    struct stat st;
    const char *type;           /* Content-Type */
    char etag[64];
    char lastmod[30];
    /* cache bookkeeping (file_cache.c), owner worker only */
    char *key;                  /* the request path it answers */
    uint32_t hash;
    int64_t expires;            /* async_now_ms after which it is looked up again */
    unsigned refs;              /* responses using it, plus one while cached */
    struct http_file *next;     /* hash chain */
};

/* Chooses how files are opened beneath the root (see files.c). */
void http_files_init(void);

/* Opens what path names beneath the root (its index file for a directory)
 * into f (fd, st, type, etag, lastmod): 0, or -1 with errno, *redirect
 * set for a directory named without its trailing slash. */
int http_file_open(struct http_server *srv, const char *path, struct http_file *f,
                   bool *redirect);

/* The file for path, from the calling worker's cache when
 * open_file_cache_ms allows, else freshly opened: a reference to drop
 * with http_file_put, or NULL with errno (and *redirect, as above). */
struct http_file *http_file_get(struct http_server *srv, const char *path, bool *redirect);
void http_file_put(struct http_file *f);
#define HTTP_FILE_BUCKETS 256

struct http_file_cache {
    unsigned n;
    unsigned sweep;             /* next chain to prune in passing */
    struct http_file *bucket[HTTP_FILE_BUCKETS];
};

/* Drops every entry (files in use stay open until their last put). */
void http_file_cache_clear(struct http_file_cache *c);
/* Drops the entries that expired by now. */
void http_file_cache_expire(struct http_file_cache *c, int64_t now);

/* ---- what each worker keeps for itself (local.c) ---- */

#define HTTP_LOCAL_BUFS 4

struct http_local {
    unsigned gen;               /* the server it belongs to */
    struct http_file_cache files;
    char *in[HTTP_LOCAL_BUFS];  /* spare input buffers (cfg.max_header_bytes + extra) */
    unsigned nin;
    /* [1..5]: this worker's 1xx .. 5xx responses.  One writer (the owner,
     * a relaxed load and store: no locked instruction per request), read
     * by the status endpoint on any worker. */
    _Atomic uint64_t by_class[6];
    struct http_local *next;    /* srv->locals */
};

/* The calling worker's state for srv, made on first use; NULL if out of
 * memory. */
struct http_local *http_local(struct http_server *srv);
/* An input buffer of size bytes: a spare one of this worker, or new. */
char *http_buf_get(struct http_server *srv, size_t size);
/* Keeps buf as a spare (a few per worker) or frees it. */
void http_buf_put(struct http_server *srv, char *buf);
/* Counts a response of this status class for the status endpoint. */
void http_count_status(struct http_server *srv, int status);
/* The responses of class cls (1..5) counted so far, all workers. */
uint64_t http_count_sum(struct http_server *srv, unsigned cls);
/* Frees every worker's state; no request may be running. */
void http_locals_free(struct http_server *srv);

/* What a handler decided: a response head (in the connection's output
 * buffer) and possibly a file range to send after it. */
struct http_reply {
    int status;
    uint64_t body_bytes;        /* of the body in the output buffer (the last bytes) */
    struct http_file *file;     /* NULL: none; the body to send after the head */
    off_t file_off;
    uint64_t file_len;
    bool close;                 /* close the connection after it */
};

/* Answers GET/HEAD for the decoded path under the root. */
void http_files_serve(struct http_server *srv, const struct http_request *req,
                      const char *path, struct http_out *o, struct http_reply *r);

/* The status endpoint's JSON body into o (a complete response). */
void http_status_reply(struct http_server *srv, const struct http_request *req,
                       struct http_out *o, struct http_reply *r);

/* A complete response with a small body (errors, routes). */
void http_reply_simple(struct http_out *o, struct http_reply *r, const struct http_request *req,
                       int status, const char *content_type, const char *body, size_t len,
                       const char *extra_headers);

/* A route's fixed response: as http_reply_simple with the route's status,
 * type, body and headers, and the route's own Server or Date instead of
 * the defaults. */
void http_reply_route(struct http_out *o, struct http_reply *r, const struct http_request *req,
                      const struct http_route *rt);

#endif
