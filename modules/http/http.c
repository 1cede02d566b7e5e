/* modules/http/http.c — the http module: listeners, one acceptor fiber per
 * listener, one fiber per connection (conn.c), and the graceful drain when
 * asyncd stops the module.
 *
 * Listeners are the daemon's (async_module_listen): the same sockets pass
 * from one generation of the module to the next, so a reload refuses no
 * connect.
 *
 * Stop, step by step.  asyncd cancels the module's group: the acceptors'
 * accept fails with ECANCELED and each closes its listener (the daemon's
 * socket stays open for the next generation, which may already accept on
 * it); the sweepers' sleeps and run's join fail too; idle connections
 * wake and wait for their next request on a fiber (the engine).  run
 * then raises its shield (so it can still park), waits for the acceptors
 * and shuts the engine's server down: every response now says
 * Connection: close, busy connections finish the request in progress,
 * idle ones answer their next request and close; it waits for them until
 * shortly before the daemon's own deadline (async_module_stop_deadline),
 * closes the idle ones still silent and cuts the busy ones left, waits
 * for those fibers to leave, hands the last log lines to the daemon
 * (which writes them) and frees the server. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define DRAIN_MARGIN_MS 250     /* leave the daemon this much of its budget */
#define DEFAULT_DRAIN_MS 5000   /* when the daemon names no deadline */

struct acceptor {
    struct http_server *srv;
    async_listener *listener;
    const char *address;
    struct http_tls *tls;       /* NULL: plain HTTP */
};

/* The server that runs, for the reload hook (which gets only the host):
 * set and cleared by run, read by the daemon's fiber, under its lock. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_server *running;

bool http_once_a_second(_Atomic int64_t *at)
{
    int64_t now = async_now_ms(), last = atomic_load_explicit(at, memory_order_relaxed);

    /* one winner among the workers that see the second has passed */
    return now - last >= 1000 &&
           atomic_compare_exchange_strong_explicit(at, &last, now, memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* At most one line a second about connections refused for max_connections. */
static void note_busy(struct http_server *srv)
{
    struct async_http_stats st;

    if (!http_once_a_second(&srv->busy_logged_at))
        return;
    async_http_server_stats(srv->engine, &st);
    async_module_log(srv->host, ASYNC_LOG_WARNING,
                     "max_connections (%ld) reached: %" PRIu64 " connection(s) refused with "
                     "503 so far", srv->cfg.max_connections, st.connections_refused);
}

static void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    struct http_server *srv = a->srv;
    unsigned next = (unsigned)async_worker_id();
    async_stream *s;

    while ((s = async_listener_accept(a->listener)) != NULL) {
        if (a->tls != NULL && http_tls_start(a->tls, s) != 0) {
            async_module_log(srv->host, ASYNC_LOG_WARNING, "TLS on a connection to %s: %s",
                             a->address, strerror(errno));
            async_stream_close(s);
            continue;
        }
        /* Connections go to the workers in turn: a burst of connects is
         * shared out evenly however busy this worker is when it comes
         * (bench/accept_bench.c, README "Listeners"). */
        if (async_http_server_start(srv->engine, s, (int)(next++ & 0x7fffffff)) == 0)
            continue;
        if (errno == EBUSY)
            note_busy(srv);
        else if (errno == ENOMEM)
            async_module_log(srv->host, ASYNC_LOG_WARNING, "no memory for a connection");
    }
    if (errno != ECANCELED && errno != EBADF)
        async_module_log(srv->host, ASYNC_LOG_ERROR, "accept on %s: %s", a->address,
                         strerror(errno));
    /* Stop accepting the moment the stop reaches us, before the drain. */
    async_listener_close(a->listener);
    a->listener = NULL;
    return NULL;
}

/* Each worker's open-file cache closes its expired entries even while
 * no request comes to look them up (deleted files give their blocks
 * back, descriptors return to the pool): one fiber per worker, pinned,
 * since a cache belongs to its worker. */
static void *cache_sweeper(void *arg)
{
    struct http_server *srv = arg;
    int64_t every = srv->cfg.open_file_cache_ms / 2;
    struct http_local *l;

    every = every < 10 ? 10 : every > 1000 ? 1000 : every;
    while (async_sleep_ms((uint64_t)every) == 0)
        if ((l = http_local(srv)) != NULL)
            http_file_cache_expire(&l->files, async_now_ms());
    return NULL;
}

/* Cancels and joins the tasks of a NULL-ended array, and frees it. */
static void stop_tasks(async_task **t)
{
    size_t i;

    for (i = 0; t != NULL && t[i] != NULL; i++)
        async_cancel(t[i]);
    for (i = 0; t != NULL && t[i] != NULL; i++)
        async_join(t[i], NULL);
    free(t);
}

static void drain(struct http_server *srv)
{
    int64_t until = async_module_stop_deadline(srv->host);
    long cut;

    until = until >= 0 ? until - DRAIN_MARGIN_MS : async_now_ms() + DEFAULT_DRAIN_MS;
    cut = async_http_server_shutdown(srv->engine, until);
    if (cut > 0)
        async_module_log(srv->host, ASYNC_LOG_WARNING,
                         "drain: cut %ld connection(s) still busy", cut);
}

/* The engine, set up from the config. */
static async_http_server *engine_new(struct http_server *srv)
{
    const struct http_config *c = &srv->cfg;
    async_http_server *e = async_http_server_new(http_handle, srv);
    const struct {
        enum async_http_option opt;
        int64_t value;
    } opts[] = {
        {ASYNC_HTTP_MAX_HEADER_BYTES, (int64_t)c->max_header_bytes},
        {ASYNC_HTTP_MAX_HEADERS, c->max_headers},
        {ASYNC_HTTP_MAX_BODY_BYTES, (int64_t)c->max_body_bytes},
        {ASYNC_HTTP_HEADER_TIMEOUT_MS, c->header_timeout_ms},
        {ASYNC_HTTP_BODY_TIMEOUT_MS, c->body_timeout_ms},
        {ASYNC_HTTP_KEEPALIVE_TIMEOUT_MS, c->keepalive_timeout_ms},
        {ASYNC_HTTP_SEND_TIMEOUT_MS, c->send_timeout_ms},
        {ASYNC_HTTP_LINGERING_TIME_MS, c->lingering_time_ms},
        {ASYNC_HTTP_LINGERING_TIMEOUT_MS, c->lingering_timeout_ms},
        {ASYNC_HTTP_LINGERING_MAX_BYTES, (int64_t)c->lingering_max_bytes},
        {ASYNC_HTTP_MAX_CONNECTIONS, c->max_connections},
        {ASYNC_HTTP_TIME_REQUESTS, c->metrics_path != NULL}, /* the duration histogram */
    };
    size_t i;

    if (e == NULL)
        return NULL;
    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (async_http_server_set(e, opts[i].opt, opts[i].value) != 0) {
            async_module_log(srv->host, ASYNC_LOG_ERROR, "engine option %d = %lld: %s",
                             (int)opts[i].opt, (long long)opts[i].value, strerror(errno));
            async_http_server_free(e);
            return NULL;
        }
    if (srv->log != NULL &&
        async_http_server_set_log(e, http_log_format, http_log_write, srv->log) != 0) {
        async_http_server_free(e);
        return NULL;
    }
    return e;
}

/* The daemon's slot for every route that names a handler. */
static int bind_handlers(struct http_server *srv)
{
    size_t i;

    for (i = 0; i < srv->cfg.nroutes; i++) {
        struct http_route *rt = &srv->cfg.routes[i];

        if (rt->handler == NULL)
            continue;
        rt->slot = async_module_http_slot_get(srv->host, rt->handler);
        if (rt->slot == NULL) {
            async_module_log(srv->host, ASYNC_LOG_ERROR, "handler %s: %s", rt->handler,
                             strerror(errno));
            return -1;
        }
        if (!async_module_http_provided(rt->slot))
            async_module_log(srv->host, ASYNC_LOG_WARNING,
                             "routes[%zu]: no module provides handler \"%s\" yet", i,
                             rt->handler);
    }
    return 0;
}

static int server_open(struct http_server *srv, async_module_host *host, const json_t *config)
{
    static _Atomic unsigned generation;

    memset(srv, 0, sizeof(*srv));
    srv->host = host;
    srv->root_fd = -1;
    srv->gen = atomic_fetch_add(&generation, 1) + 1;
    atomic_store(&srv->busy_logged_at, INT64_MIN / 2);
    pthread_mutex_init(&srv->locals_lock, NULL);
    if (http_config_load(config, &srv->cfg) != 0) {
        async_module_log(host, ASYNC_LOG_ERROR, "out of memory reading the config");
        return -1;
    }
    if (srv->cfg.max_connections < 0) {
        struct rlimit rl;

        srv->cfg.max_connections = http_default_max_connections();
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            async_module_log(host, ASYNC_LOG_INFO,
                             "max_connections %ld (from the descriptor limit, %llu)",
                             srv->cfg.max_connections, (unsigned long long)rl.rlim_cur);
    }
    http_files_init();
    if (srv->cfg.root != NULL) {
        srv->root_fd = open(srv->cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (srv->root_fd < 0) {
            async_module_log(host, ASYNC_LOG_ERROR, "root %s: %s", srv->cfg.root,
                             strerror(errno));
            return -1;
        }
    }
    if (srv->cfg.access_log != NULL) {
        srv->log = http_log_open(host, srv->cfg.access_log, srv->cfg.log_format);
        if (srv->log == NULL) {
            async_module_log(host, ASYNC_LOG_ERROR, "access_log %s: %s", srv->cfg.access_log,
                             strerror(errno));
            return -1;
        }
    }
    if (bind_handlers(srv) != 0)
        return -1;
    if ((srv->engine = engine_new(srv)) == NULL) {
        async_module_log(host, ASYNC_LOG_ERROR, "cannot make the HTTP engine: %s",
                         strerror(errno));
        return -1;
    }
    return 0;
}

static void server_close(struct http_server *srv)
{
    async_http_server_free(srv->engine);
    http_locals_free(srv);
    pthread_mutex_destroy(&srv->locals_lock);
    http_log_close(srv->log);
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    http_config_free(&srv->cfg);
}

/* Making a TLS context reads files and loads OpenSSL's providers (a
 * quarter of a second measured on a loaded machine the first time): on a
 * helper thread, the run fiber parked, so its worker serves on. */
struct tls_open_job {
    struct http_tls *tls;
    char why[512];
    int rc;
};

static void *tls_open_job(void *arg)
{
    struct tls_open_job *j = arg;

    j->rc = http_tls_open(j->tls, j->why, sizeof(j->why));
    return NULL;
}

static int tls_open(struct http_tls *tls, char *why, size_t whylen)
{
    struct tls_open_job *j = malloc(sizeof(*j));
    int rc, shield;

    if (j == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    j->tls = tls;
    j->why[0] = '\0';
    j->rc = -1;
    /* shielded: a stop waits for the job, which uses j and tls */
    shield = async_shield(1);
    rc = async_blocking(tls_open_job, j, NULL);
    async_shield(shield);
    if (rc != 0) { /* ENOMEM, EAGAIN: the job never ran */
        snprintf(why, whylen, "%s", strerror(errno));
        free(j);
        return -1;
    }
    snprintf(why, whylen, "%s", j->why);
    rc = j->rc;
    free(j);
    return rc;
}

static int bind_all(struct http_server *srv, struct acceptor *a)
{
    char why[512];
    size_t i;

    for (i = 0; i < srv->cfg.nlisten; i++) {
        a[i].srv = srv;
        a[i].address = srv->cfg.listen[i];
        a[i].tls = srv->cfg.tls[i];
        if (a[i].tls != NULL && tls_open(a[i].tls, why, sizeof(why)) != 0) {
            async_module_log(srv->host, ASYNC_LOG_ERROR, "listen[%zu] %s: %s", i, a[i].address,
                             why);
            while (i-- > 0)
                async_listener_close(a[i].listener);
            return -1;
        }
        if (a[i].tls != NULL)
            http_tls_warn(a[i].tls, srv->host, a[i].address);
        a[i].listener = async_module_listen(srv->host, a[i].address);
        if (a[i].listener == NULL) {
            async_module_log(srv->host, ASYNC_LOG_ERROR, "cannot listen on %s: %s",
                             a[i].address, strerror(errno));
            while (i-- > 0)
                async_listener_close(a[i].listener);
            return -1;
        }
        async_module_log(srv->host, ASYNC_LOG_NOTICE, "listening on %s (port %d%s)",
                         a[i].address, async_listener_port(a[i].listener),
                         a[i].tls != NULL ? ", TLS" : "");
    }
    return 0;
}

/* One cache sweeper per worker: an array of their tasks, NULL-ended, or
 * NULL when one cannot be started (those that were are stopped). */
static async_task **start_cache_sweepers(struct http_server *srv)
{
    unsigned w, workers = (unsigned)async_workers();
    async_task **t = calloc(workers + 1, sizeof(*t));

    for (w = 0; t != NULL && w < workers; w++)
        if ((t[w] = async_spawn_on(w, cache_sweeper, srv)) == NULL) {
            stop_tasks(t);
            return NULL;
        }
    return t;
}

static int http_run(async_module_host *host, const json_t *config)
{
    struct http_server *srv = malloc(sizeof(*srv));
    struct acceptor a[HTTP_MAX_LISTEN];
    async_task *t[HTTP_MAX_LISTEN];
    async_task **caches = NULL;
    size_t i, n;
    int rc = 0;

    if (srv == NULL)
        return 1;
    if (server_open(srv, host, config) != 0 || bind_all(srv, a) != 0) {
        server_close(srv);
        free(srv);
        return 1;
    }
    n = srv->cfg.nlisten;
    pthread_mutex_lock(&running_lock);
    running = srv;
    pthread_mutex_unlock(&running_lock);
    async_module_ready(host); /* every listener is bound: READY=1 may go */
    if (srv->cfg.open_file_cache_ms > 0 && srv->root_fd >= 0 &&
        (caches = start_cache_sweepers(srv)) == NULL)
        rc = 1;
    for (i = 0; i < n; i++)
        if ((t[i] = async_spawn(accept_loop, &a[i])) == NULL)
            rc = 1;
    /* Serve until the module is stopped: these joins fail with ECANCELED.
     * An acceptor that ends on its own is a failure: stop and be restarted. */
    for (i = 0; i < n && rc == 0; i++)
        if (async_join(t[i], NULL) == 0) {
            t[i] = NULL;
            rc = 1;
        }
    if (rc != 0 && async_module_stop_deadline(host) < 0)
        async_module_log(host, ASYNC_LOG_ERROR, "an acceptor failed: restarting");
    else
        rc = 0;
    async_shield(1);
    pthread_mutex_lock(&running_lock);
    running = NULL;
    pthread_mutex_unlock(&running_lock);
    for (i = 0; i < n; i++) { /* each acceptor closes its own listener */
        if (t[i] != NULL) {
            async_cancel(t[i]);
            async_join(t[i], NULL);
        } else {
            async_listener_close(a[i].listener);
        }
    }
    drain(srv);
    stop_tasks(caches);
    server_close(srv);
    free(srv);
    async_shield(0);
    return rc;
}

/* SIGHUP with the config unchanged: certificates read again, for new
 * handshakes (tls.c). */
static void http_reload(async_module_host *host)
{
    struct http_server *srv;
    char why[512];
    size_t i;

    pthread_mutex_lock(&running_lock);
    if ((srv = running) != NULL)
        for (i = 0; i < srv->cfg.nlisten; i++) {
            if (srv->cfg.tls[i] == NULL)
                continue;
            if (http_tls_open(srv->cfg.tls[i], why, sizeof(why)) == 0) {
                async_module_log(host, ASYNC_LOG_NOTICE, "listen[%zu] %s: certificates read "
                                 "again for new connections", i, srv->cfg.listen[i]);
                http_tls_warn(srv->cfg.tls[i], host, srv->cfg.listen[i]);
            } else {
                async_module_log(host, ASYNC_LOG_ERROR, "listen[%zu] %s: %s; the certificates "
                                 "in use stay", i, srv->cfg.listen[i], why);
            }
        }
    pthread_mutex_unlock(&running_lock);
}

const struct async_module async_module = {
    .abi_version = ASYNC_MODULE_ABI_VERSION,
    .size = ASYNC_MODULE_SIZE,
    .name = "http",
    .version = "1.0",
    .validate = http_config_validate,
    .effective_config = http_config_effective,
    .run = http_run,
    .flags = ASYNC_MODULE_NOTIFY_READY,
    .reload = http_reload,
};
