/* modules/http/http.h — what the files of the http module share.
 *
 * The HTTP engine (parsing, keep-alive, pipelining, bodies, framing,
 * lingering close, idle connections without a fiber) is libasync_io's
 * (async_io/http.h); this module is configuration, listeners, routing,
 * static files, the status endpoint and the access log on top of it.
 *
 *   http.c      the module: config check, listeners, acceptors, drain, reload
 *   config.c    modules.http of asyncd.json -> struct http_config
 *   sites*.c    virtual hosts: one struct http_server per site (sites.h)
 *   route.c     the engine's handler: status endpoint, routes, files
 *   files.c     static files: the answer for a path (sendfile, ranges, 304)
 *   open.c      what a path opens beneath the root (index, type, ETag)
 *   precompressed.c  X.br and X.gz beside X: found, checked, kept with X
 *   encoding.c  Accept-Encoding: which of them a request gets (pure)
 *   file_cache.c  open files reused per worker (told how to open by its maker)
 *   local.c     what each worker keeps for itself, per site (its file cache)
 *   status.c    the status endpoint's JSON
 *   metrics.c   the metrics endpoint (Prometheus text format 0.0.4)
 *   allow.c     who may read those two: addresses and CIDR prefixes (pure)
 *   access_log.c  the access logs' destinations (one per server), through the
 *               daemon's log writer
 *   log_line.c  their lines (combined, json, templates), formatted for the engine
 *   dates.c     HTTP dates (pure)
 *   validators.c  ranges, ETag lists, conditional requests: 206, 304, 416 (pure)
 *   tls.c       listen entries that serve HTTPS: their check, contexts, reload
 *
 * Threads: every connection runs on one worker; a site (struct
 * http_server) is shared by all of them.  Its counters are relaxed atomics
 * and its configuration is read-only while it serves; a reload makes new
 * sites rather than change these (sites.h). */
#ifndef HTTP_HTTP_H
#define HTTP_HTTP_H

#include "allow.h"
#include "encoding.h"
#include "validators.h"

#include <async_io.h>
#include <async_io/http.h>
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
#define HTTP_MAX_HEADERS 256        /* the most max_headers may allow (the engine's) */
#define HTTP_DEFAULT_MAX_HEADERS 100
#define HTTP_PATH_MAX 4096

struct http_route {
    char *path;                 /* exact, decoded path; NULL for a prefix route */
    char *prefix;               /* a path prefix; NULL for an exact route */
    size_t prefix_len;
    char *handler;              /* a module's handler by name; NULL: a fixed answer */
    async_module_http_slot *slot; /* its slot (run only) */
    bool health;                /* "health": 200 while serving, 503 once stopping */
    int status;
    char *content_type;         /* NULL: no Content-Type */
    char *body;
    size_t body_len;
    char **hname, **hvalue;     /* extra header fields */
    size_t nheaders;
};

struct http_tls;

/* Header fields a site adds to its answers. */
struct http_header_list {
    char **name, **value;
    size_t n;
};

/* "locations": fields for the answers under a path prefix. */
struct http_location {
    char *prefix;
    size_t len;
    struct http_header_list headers;
    bool always;                /* on error answers (>= 400) too */
};

/* "error_pages": "404" (code 404) or "5xx" (code 5). */
struct http_error_page {
    int code;
    char *path;                 /* beneath the site's root */
};

/* What a server block adds to the one-site config (sites_config.c). */
struct http_site_cfg {
    char **names;               /* lower case, no trailing dot; "*.a.b" wildcards */
    size_t nnames;
    bool is_default;
    struct http_header_list headers; /* on every answer */
    struct http_location *loc;  /* longest prefix first */
    size_t nloc;
    struct http_error_page *pages;
    size_t npages;
};

struct http_config {
    char *listen[HTTP_MAX_LISTEN];
    struct http_tls *tls[HTTP_MAX_LISTEN]; /* NULL: plain HTTP on listen[i] */
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
    bool precompressed;         /* serve X.br / X.gz beside X when the client accepts them */
    char *metrics_path;         /* NULL: no metrics endpoint */
    bool metrics_on;            /* the module's (top level) only: a server has a
                                   metrics_path, so requests are timed and counted */
    struct http_allow status_allow, metrics_allow; /* peers that may read them */
    char *log_format;           /* access_log_format: "combined", "json" or a template */
};

/* Validates the top level of modules.http but its "servers"
 * (sites_config.c), reporting every problem by its JSON path: how many. */
unsigned http_config_validate(const json_t *config, async_module_report *report);
/* The keys a server block shares with the top level (listen, root, index,
 * routes, ...), those present, reported under prefix ("servers[1]."):
 * how many problems. */
unsigned http_config_validate_server(const json_t *server, const char *prefix,
                                     async_module_report *report);
/* What is wrong with a header field a config adds (a name that is not a
 * token, a framing field, a value with control characters), or NULL. */
const char *http_config_header_problem(const char *name, const json_t *value);
/* A config validate accepted, with every default of the keys config.c
 * reads filled in (asyncd -T takes it from http_sites_effective, which
 * adds the servers'): a new reference, or NULL. */
json_t *http_config_effective(const json_t *config);
/* max_connections when the config does not say: what RLIMIT_NOFILE allows. */
long http_default_max_connections(void);
/* Reads a config that passed the check; 0 or -1 (ENOMEM). */
int http_config_load(const json_t *config, struct http_config *c);
void http_config_free(struct http_config *c);

/* ---- HTTPS listeners (tls.c) ---- */

/* Checks a listen entry's "tls" value at path, reading the files (an
 * expired certificate is a warning; true, the default server's
 * certificate, is fine here): the number of problems reported. */
unsigned http_tls_check(const json_t *tls, const char *path, async_module_report *rep);
/* The certificate files of a checked "tls" value, no context yet; NULL
 * when out of memory.  They are what a handshake gets when no server
 * block names its server name (SNI). */
struct http_tls *http_tls_load(const json_t *tls);
/* A server block on the address: its "tls" value (true: none of its own)
 * serves the names (normalized, copied) it holds: 0, or -1 (ENOMEM).
 * Then http_tls_index, once, before http_tls_open. */
int http_tls_add_server(struct http_tls *t, const json_t *tls, char *const *names, size_t n);
int http_tls_index(struct http_tls *t);
void http_tls_free(struct http_tls *t);
/* "ktls": the address's contexts ask for kernel TLS for sending (made
 * without it where the kernel has none).  Before http_tls_open. */
void http_tls_set_ktls(struct http_tls *t, bool on);
bool http_tls_ktls(const struct http_tls *t);
/* Whether a and b name the same certificate files for the same names
 * (NULL: plain HTTP). */
bool http_tls_same(const struct http_tls *a, const struct http_tls *b);
/* Makes a context from the files and puts it in place for new
 * connections (the first time, or on a reload): 0, or -1 with why filled
 * and the context in use kept.  Never parks. */
int http_tls_open(struct http_tls *t, char *why, size_t whylen);
/* Puts the server side of TLS on an accepted stream: 0, or -1 + errno. */
int http_tls_start(struct http_tls *t, async_stream *s);
/* Logs a warning per certificate served although expired. */
void http_tls_warn(struct http_tls *t, async_module_host *host, const char *address);

struct http_log;
struct http_server;

/* The module's access logs: every destination a site names, opened once
 * and kept while the module runs (a reload adds, never removes).  NULL
 * and errno on failure. */
struct http_log *http_log_new(async_module_host *host);
/* The entry for dest ("stderr" or a path, through the daemon's log
 * writer) in format: its index, or -1 with errno.  One fiber at a time
 * (run, reconfigure); lines may be written meanwhile. */
int http_log_entry(struct http_log *l, const char *dest, const char *format);
/* Where exchanges no site answered (the engine's own 400s) are logged:
 * an entry, or -1 for nowhere. */
void http_log_set_untagged(struct http_log *l, int entry);
/* Starts the line of req (site may be NULL) in line: its format, or NULL
 * when it goes to no log.  (log_line.c's formatter.) */
const char *http_log_begin(struct http_log *l, const struct http_server *site,
                           async_http_log_line *line);
/* Queues lines (written by the daemon within a second; dropped and
 * counted if its queue is full), each to its entry's file.  Never blocks.
 * Any thread.  The engine's log writer (async_http_log_write) with the
 * log as ctx. */
void http_log_write(const char *lines, size_t len, void *log);
/* Lines dropped so far because the daemon's queue was full. */
uint64_t http_log_dropped(const struct http_log *l);
/* The first variable of a template that log_line.c does not know: its
 * name's start in tmpl and *len, or NULL when it knows them all. */
const char *http_log_unknown_variable(const char *tmpl, size_t *len);
/* Hands over what is queued and frees l; never blocks. */
void http_log_close(struct http_log *l);
/* The engine's line formatter (async_http_log_format, ctx the log): the
 * combined format, or one JSON object per line. */
void http_log_format(const async_http_request *req, async_http_log_line *line, void *ctx);

/* True at most once a second for one *at (the async_now_ms it last was),
 * among any number of workers: for warnings a flood would repeat
 * (once.c). */
bool http_once_a_second(_Atomic int64_t *at);

struct http_sites;

/* One site: a server block of the config (or the whole of a flat one). */
struct http_server {
    async_module_host *host;
    struct http_config cfg;     /* the top level's keys with the server's on top */
    struct http_site_cfg site;
    struct http_sites *sites;   /* the generation it belongs to (sites.c) */
    uint32_t listen_mask;       /* bit i: it listens on the module's listen[i] */
    int log_entry;              /* its access log in the module's (access_log.c), -1 none */
    async_http_server *engine;  /* the module's */
    int root_fd;                /* O_PATH directory, -1 without a root */
    struct http_log *log;       /* the module's */
    _Atomic int64_t busy_logged_at; /* when refusals were last logged (async_now_ms) */
    struct http_site_stats *stats; /* its counts (site_stats.c), the module's: they
                                   outlive the generation */
    _Atomic int64_t fd_logged_at;
    /* per-worker state (local.c): slot w is written by worker w only */
    struct http_local **locals;
    unsigned nlocals;
};

/* The engine's handler (ctx: the module): chooses the site, then
 * everything it serves (route.c). */
int http_handle(async_http_request *req, void *mod);

/* A small complete answer with a text/plain body; an error gets the
 * site's page for it instead, if it has one (site_reply.c). */
int http_text(async_http_request *req, int status, const char *body);
/* ... whose body is "NNN Reason\n". */
int http_error(async_http_request *req, int status);

/* ---- static files (open.c, file_cache.c, files.c) ---- */

/* An open file, ready to serve, shared by the requests of one worker. */
struct http_file {
    int fd;
    struct stat st;
    const char *type;           /* Content-Type */
    char etag[64];
    char lastmod[30];
    const char *index;          /* the index file name (config's) when the path named a
                                   directory, else NULL: where siblings are looked for */
    /* precompressed siblings (precompressed.c), found once per entry: the
     * answer, none included, lives as long as the entry, so a file
     * without siblings costs no lookup per request */
    bool probed;
    struct http_file *sib[HTTP_CODINGS]; /* [coding]: X.gz, X.br, or NULL; one ref each */
    /* cache bookkeeping (file_cache.c), owner worker only */
    char *key;                  /* the request path it answers */
    uint32_t hash;
    int64_t expires;            /* async_now_ms after which it is looked up again */
    unsigned refs;              /* responses using it, plus one while cached */
    struct http_file *next;     /* hash chain */
};

/* How a cache opens what it does not hold (file_cache.c): into f (fd,
 * st, type, etag, lastmod, index) what key names, 0, or -1 with errno
 * and *redirect set for a directory named without its trailing slash. */
struct http_file_ops {
    int (*open)(void *ctx, const char *key, struct http_file *f, bool *redirect);
};

/* Request paths beneath a site's root (open.c; ctx: the struct
 * http_server), its index file for a directory. */
extern const struct http_file_ops http_file_opener;

/* Chooses how files are opened beneath the root (see open.c). */
void http_files_init(void);

#define HTTP_FILE_BUCKETS 256

/* One worker's open files (file_cache.c), each kept ttl_ms. */
struct http_file_cache {
    const struct http_file_ops *ops;
    void *ctx;                  /* ops' */
    int64_t ttl_ms;
    unsigned n;
    unsigned sweep;             /* next chain to prune in passing */
    struct http_file *bucket[HTTP_FILE_BUCKETS];
};

void http_file_cache_init(struct http_file_cache *c, const struct http_file_ops *ops, void *ctx,
                          int64_t ttl_ms);
/* The file for key, from the cache or opened (and kept) now: a reference
 * to drop with http_file_put, or NULL with errno (and *redirect, as
 * ops->open says). */
struct http_file *http_file_cache_get(struct http_file_cache *c, const char *key, bool *redirect);
/* The same, opened for this caller alone (no cache at hand). */
struct http_file *http_file_open_uncached(const struct http_file_ops *ops, void *ctx,
                                          const char *key, bool *redirect);
void http_file_put(struct http_file *f);
/* Drops every entry (files in use stay open until their last put). */
void http_file_cache_clear(struct http_file_cache *c);
/* Drops the entries that expired by now. */
void http_file_cache_expire(struct http_file_cache *c, int64_t now);

/* Opens rel ("a/b", beneath the root) as a regular file: fd and *st, or
 * -1 with errno (ENOENT for anything that is not a regular file). */
int http_open_regular(struct http_server *srv, const char *rel, struct stat *st);
/* The quoted ETag of a file's stat, with an optional tag ("-gz") inside. */
void http_file_etag(const struct stat *st, const char *tag, char out[64]);

/* Finds f's precompressed siblings (once per f) and returns the codings
 * present as HTTP_HAVE bits; path is the request's, as f was opened. */
unsigned http_siblings(struct http_server *srv, const char *path, struct http_file *f);
/* f's sibling for coding, checked still to be what was found (else looked
 * for again): a reference to drop with http_file_put, or NULL. */
struct http_file *http_sibling_get(struct http_server *srv, const char *path,
                                   struct http_file *f, enum http_coding coding);

/* Answers GET/HEAD for the decoded path under the root. */
int http_files_serve(struct http_server *srv, async_http_request *req, const char *path);

/* ---- what each worker keeps for itself (local.c) ---- */

struct http_local {
    struct http_file_cache files;
};

/* Makes room for every worker's state: 0 or -1 (ENOMEM). */
int http_locals_init(struct http_server *srv, unsigned workers);
/* The calling worker's state for srv, made on first use; NULL if out of
 * memory. */
struct http_local *http_local(struct http_server *srv);
/* Frees every worker's state; no request may be running. */
void http_locals_free(struct http_server *srv);

/* The file for path, from the calling worker's cache when
 * open_file_cache_ms allows, else freshly opened: a reference to drop
 * with http_file_put, or NULL with errno (and *redirect set for a
 * directory named without its trailing slash).  Inline: on the way of
 * every file served. */
static inline struct http_file *http_file_get(struct http_server *srv, const char *path,
                                              bool *redirect)
{
    struct http_local *l;

    if (srv->cfg.open_file_cache_ms == 0 || (l = http_local(srv)) == NULL)
        return http_file_open_uncached(&http_file_opener, srv, path, redirect);
    return http_file_cache_get(&l->files, path, redirect);
}

/* Appends to the status and metrics answers, which are the platform's
 * growing text (async_io/module.h), so that the metrics writers of other
 * modules append to the same answer (status.c). */
void http_addf(struct async_module_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The status endpoint's JSON answer (403 to a peer status_allow leaves
 * out). */
int http_status_reply(struct http_server *srv, async_http_request *req);
/* The metrics endpoint's answer (403 to a peer metrics_allow leaves out). */
int http_metrics_reply(struct http_server *srv, async_http_request *req);
/* Whether the request's peer is in list a (the address from its peer). */
bool http_peer_allowed(const struct http_allow *a, const async_http_request *req);

#endif
