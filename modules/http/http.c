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
 * (which writes them) and frees the server.
 *
 * Reload.  A changed config that keeps the engine's settings (the listen
 * addresses of all servers, timeouts, limits) is applied in place
 * (http_reconfigure): a new generation of sites is built and published,
 * requests that start after it see it, connections stay open; one that
 * changes them restarts the module as before. */
#include "http.h"
#include "sites.h"

#include <async_io/tls.h>
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
    struct http_module *mod;
    async_listener *listener;
    const char *address;
    size_t index;               /* in mod->cfg.listen: the connections' tag, plus one */
    struct http_tls *tls;       /* NULL: plain HTTP */
};

/* The module while run serves: what reconfigure and the reload hook
 * apply a reload to.  running_lock keeps run from freeing it under them. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_module *running;

/* At most one line a second about connections refused for max_connections. */
static void note_busy(struct http_module *mod)
{
    struct async_http_stats st;

    if (!http_once_a_second(&mod->busy_logged_at))
        return;
    async_http_server_stats(mod->engine, &st);
    async_module_log(mod->host, ASYNC_LOG_WARNING,
                     "max_connections (%ld) reached: %" PRIu64 " connection(s) refused with "
                     "503 so far", mod->cfg.max_connections, st.connections_refused);
}

static void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    struct http_module *mod = a->mod;
    unsigned next = (unsigned)async_worker_id(), w;
    async_stream *s;

    while ((s = async_listener_accept(a->listener)) != NULL) {
        if (a->tls != NULL && http_tls_start(a->tls, s) != 0) {
            async_module_log(mod->host, ASYNC_LOG_WARNING, "TLS on a connection to %s: %s",
                             a->address, strerror(errno));
            async_stream_close(s);
            continue;
        }
        /* Connections go to the workers in turn: a burst of connects is
         * shared out evenly however busy this worker is when it comes
         * (bench/accept_bench.c, README "Listeners").  The tag says which
         * address they came to (for its default site) and the worker they
         * live on (every fiber of a connection runs there), which saves
         * each request two thread-local lookups (sites.c). */
        w = next++ % mod->workers;
        if (async_http_server_start_tagged(mod->engine, s, (int)w,
                                           http_conn_tag(a->index, w)) == 0)
            continue;
        if (errno == EBUSY)
            note_busy(mod);
        else if (errno == ENOMEM)
            async_module_log(mod->host, ASYNC_LOG_WARNING, "no memory for a connection");
    }
    if (errno != ECANCELED && errno != EBADF)
        async_module_log(mod->host, ASYNC_LOG_ERROR, "accept on %s: %s", a->address,
                         strerror(errno));
    /* Stop accepting the moment the stop reaches us, before the drain. */
    async_listener_close(a->listener);
    a->listener = NULL;
    return NULL;
}

/* Each worker's open-file caches close their expired entries even while
 * no request comes to look them up (deleted files give their blocks
 * back, descriptors return to the pool): one fiber per worker, pinned,
 * since a cache belongs to its worker.  It also frees the generations of
 * sites a reload replaced, once no request holds them. */
static void *cache_sweeper(void *arg)
{
    struct http_module *mod = arg;
    int64_t every = mod->cfg.open_file_cache_ms / 2;
    struct http_sites *g;
    struct http_local *l;
    size_t i;

    every = every < 10 ? 10 : every > 1000 ? 1000 : every;
    while (async_sleep_ms((uint64_t)every) == 0) {
        g = http_sites_hold(mod);
        for (i = 0; i < http_sites_n(g); i++)
            if ((l = http_local(http_sites_at(g, i))) != NULL)
                http_file_cache_expire(&l->files, async_now_ms());
        http_sites_leave(g);
        http_sites_reap(mod);
    }
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

static void drain(struct http_module *mod)
{
    int64_t until = async_module_stop_deadline(mod->host);
    long cut;

    until = until >= 0 ? until - DRAIN_MARGIN_MS : async_now_ms() + DEFAULT_DRAIN_MS;
    cut = async_http_server_shutdown(mod->engine, until);
    if (cut > 0)
        async_module_log(mod->host, ASYNC_LOG_WARNING,
                         "drain: cut %ld connection(s) still busy", cut);
}

/* The engine, set up from the config. */
static async_http_server *engine_new(struct http_module *mod)
{
    const struct http_config *c = &mod->cfg;
    const struct async_http_hooks hooks = {.head = http_site_head, .done = http_site_done};
    async_http_server *e = async_http_server_new(http_handle, mod);
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
        {ASYNC_HTTP_TIME_REQUESTS, c->metrics_on}, /* the duration histogram */
    };
    size_t i;

    if (e == NULL)
        return NULL;
    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (async_http_server_set(e, opts[i].opt, opts[i].value) != 0) {
            async_module_log(mod->host, ASYNC_LOG_ERROR, "engine option %d = %lld: %s",
                             (int)opts[i].opt, (long long)opts[i].value, strerror(errno));
            async_http_server_free(e);
            return NULL;
        }
    if (async_http_server_set_hooks(e, &hooks) != 0 ||
        async_http_server_set_error_hook(e, http_site_engine_error, mod) != 0 ||
        (mod->log != NULL &&
         async_http_server_set_log(e, http_log_format, http_log_write, mod->log) != 0)) {
        async_http_server_free(e);
        return NULL;
    }
    return e;
}

/* Whether any server of config has key (a string): an access log, a
 * metrics endpoint. */
static bool any_has(const json_t *config, const char *key)
{
    size_t i, n = http_sites_count(config);
    bool any = false;
    json_t *s;

    for (i = 0; i < n && !any; i++)
        if ((s = http_sites_server_config(config, i)) != NULL) {
            any = json_is_string(json_object_get(s, key));
            json_decref(s);
        }
    return any;
}

/* The top level: the engine's settings and every server's listen
 * addresses.  0, or -1 (ENOMEM). */
static int top_load(const json_t *config, struct http_config *c)
{
    size_t i;

    if (http_config_load(config, c) != 0)
        return -1;
    for (i = 0; i < c->nlisten; i++) {
        free(c->listen[i]);
        http_tls_free(c->tls[i]);
        c->listen[i] = NULL;
        c->tls[i] = NULL;
    }
    c->nlisten = 0;
    if (http_sites_listen(config, c) != 0)
        return -1;
    if (c->max_connections < 0)
        c->max_connections = http_default_max_connections();
    c->metrics_on = any_has(config, "metrics_path");
    return 0;
}

static bool any_log(const json_t *config)
{
    return any_has(config, "access_log");
}

static int module_open(struct http_module *mod, async_module_host *host, const json_t *config)
{
    struct http_sites *g;

    memset(mod, 0, sizeof(*mod));
    mod->host = host;
    mod->workers = (unsigned)async_workers();
    atomic_store(&mod->busy_logged_at, INT64_MIN / 2);
    if (http_sites_init(mod) != 0 || top_load(config, &mod->cfg) != 0) {
        async_module_log(host, ASYNC_LOG_ERROR, "out of memory reading the config");
        return -1;
    }
    if (json_object_get(config, "max_connections") == NULL) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            async_module_log(host, ASYNC_LOG_INFO,
                             "max_connections %ld (from the descriptor limit, %llu)",
                             mod->cfg.max_connections, (unsigned long long)rl.rlim_cur);
    }
    http_files_init();
    if (any_log(config) && (mod->log = http_log_new(host)) == NULL)
        return -1;
    if ((mod->engine = engine_new(mod)) == NULL) {
        async_module_log(host, ASYNC_LOG_ERROR, "cannot make the HTTP engine: %s",
                         strerror(errno));
        return -1;
    }
    if ((g = http_sites_new(mod, config)) == NULL)
        return -1;
    http_sites_publish(mod, g);
    return 0;
}

static void module_close(struct http_module *mod)
{
    async_http_server_free(mod->engine);
    http_sites_free_all(mod);
    http_site_stats_free_all(mod);
    http_log_close(mod->log);
    http_config_free(&mod->cfg);
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

/* Says once whether the "ktls" asked for on any address is to be had
 * (the contexts probe again, silently): true when it is. */
static bool ktls_probe(struct http_module *mod)
{
    char why[256];
    size_t i;

    for (i = 0; i < mod->cfg.nlisten && !http_tls_ktls(mod->cfg.tls[i]); i++)
        ;
    if (i == mod->cfg.nlisten)
        return false;
    if (async_tls_ktls_probe(why, sizeof(why)) == 1) {
        async_module_log(mod->host, ASYNC_LOG_NOTICE, "kernel TLS (\"ktls\"): on: %s; static "
                         "files leave with sendfile", why);
        return true;
    }
    async_module_log(mod->host, ASYNC_LOG_WARNING, "kernel TLS (\"ktls\") is not available: %s; "
                     "static files go through OpenSSL in 16 KiB records", why);
    return false;
}

static int bind_all(struct http_module *mod, struct acceptor *a)
{
    bool ktls = ktls_probe(mod);
    char why[512];
    size_t i;

    for (i = 0; i < mod->cfg.nlisten; i++) {
        a[i].mod = mod;
        a[i].index = i;
        a[i].address = mod->cfg.listen[i];
        a[i].tls = mod->cfg.tls[i];
        if (a[i].tls != NULL && tls_open(a[i].tls, why, sizeof(why)) != 0) {
            async_module_log(mod->host, ASYNC_LOG_ERROR, "listen[%zu] %s: %s", i, a[i].address,
                             why);
            while (i-- > 0)
                async_listener_close(a[i].listener);
            return -1;
        }
        if (a[i].tls != NULL)
            http_tls_warn(a[i].tls, mod->host, a[i].address);
        a[i].listener = async_module_listen(mod->host, a[i].address);
        if (a[i].listener == NULL) {
            async_module_log(mod->host, ASYNC_LOG_ERROR, "cannot listen on %s: %s",
                             a[i].address, strerror(errno));
            while (i-- > 0)
                async_listener_close(a[i].listener);
            return -1;
        }
        async_module_log(mod->host, ASYNC_LOG_NOTICE, "listening on %s (port %d%s)",
                         a[i].address, async_listener_port(a[i].listener),
                         a[i].tls == NULL                   ? ""
                         : ktls && http_tls_ktls(a[i].tls) ? ", TLS, kernel TLS"
                                                           : ", TLS");
    }
    return 0;
}

/* One cache sweeper per worker: an array of their tasks, NULL-ended, or
 * NULL when one cannot be started (those that were are stopped). */
static async_task **start_cache_sweepers(struct http_module *mod)
{
    unsigned w, workers = (unsigned)async_workers();
    async_task **t = calloc(workers + 1, sizeof(*t));

    for (w = 0; t != NULL && w < workers; w++)
        if ((t[w] = async_spawn_on(w, cache_sweeper, mod)) == NULL) {
            stop_tasks(t);
            return NULL;
        }
    return t;
}

/* Whether a reload to b can keep the engine and the listeners of a (the
 * sites change in place): the same addresses with the same certificate
 * files, limits and timeouts. */
static bool same_engine(const struct http_config *a, const struct http_config *b)
{
    size_t i;

    if (a->nlisten != b->nlisten)
        return false;
    for (i = 0; i < a->nlisten; i++)
        if (strcmp(a->listen[i], b->listen[i]) != 0 || !http_tls_same(a->tls[i], b->tls[i]))
            return false;
    /* the engine times requests, and sites count theirs, only for a
     * metrics endpoint */
    return a->metrics_on == b->metrics_on &&
           a->keepalive_timeout_ms == b->keepalive_timeout_ms &&
           a->header_timeout_ms == b->header_timeout_ms &&
           a->body_timeout_ms == b->body_timeout_ms && a->send_timeout_ms == b->send_timeout_ms &&
           a->max_header_bytes == b->max_header_bytes && a->max_headers == b->max_headers &&
           a->max_body_bytes == b->max_body_bytes && a->max_connections == b->max_connections &&
           a->lingering_time_ms == b->lingering_time_ms &&
           a->lingering_timeout_ms == b->lingering_timeout_ms &&
           a->lingering_max_bytes == b->lingering_max_bytes;
}

/* SIGHUP with a changed (validated) config: a new generation of sites,
 * in place, when the engine and the listeners can stay. */
static int http_reconfigure(async_module_host *host, const json_t *config)
{
    struct http_module *mod;
    struct http_config top;
    struct http_sites *g;
    int rc = -1;

    pthread_mutex_lock(&running_lock);
    mod = running;
    if (mod == NULL || mod->host != host)
        goto out;
    if (top_load(config, &top) != 0) {
        http_config_free(&top);
        goto out;
    }
    if (!same_engine(&mod->cfg, &top) || (mod->log == NULL && any_log(config))) {
        async_module_log(host, ASYNC_LOG_NOTICE, "listen addresses, limits or timeouts changed, "
                         "or a first access_log: restarting");
    } else if ((g = http_sites_new(mod, config)) != NULL) {
        http_sites_publish(mod, g);
        async_module_log(host, ASYNC_LOG_NOTICE, "%zu server(s) now; open connections kept",
                         http_sites_n(g));
        rc = 0;
    }
    http_config_free(&top);
out:
    pthread_mutex_unlock(&running_lock);
    return rc;
}

static int http_run(async_module_host *host, const json_t *config)
{
    struct http_module *mod = malloc(sizeof(*mod));
    struct acceptor a[HTTP_MAX_LISTEN];
    async_task *t[HTTP_MAX_LISTEN];
    async_task **caches = NULL;
    size_t i, n;
    int rc = 0;

    if (mod == NULL)
        return 1;
    if (module_open(mod, host, config) != 0 || bind_all(mod, a) != 0) {
        module_close(mod);
        free(mod);
        return 1;
    }
    n = mod->cfg.nlisten;
    pthread_mutex_lock(&running_lock);
    running = mod;
    pthread_mutex_unlock(&running_lock);
    async_module_ready(host); /* every listener is bound: READY=1 may go */
    if ((caches = start_cache_sweepers(mod)) == NULL)
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
    drain(mod);
    stop_tasks(caches);
    module_close(mod);
    free(mod);
    async_shield(0);
    return rc;
}

/* SIGHUP with the config unchanged: certificates read again, for new
 * handshakes (tls.c). */
static void http_reload(async_module_host *host)
{
    struct http_module *mod;
    char why[512];
    size_t i;

    pthread_mutex_lock(&running_lock);
    if ((mod = running) != NULL)
        for (i = 0; i < mod->cfg.nlisten; i++) {
            if (mod->cfg.tls[i] == NULL)
                continue;
            if (http_tls_open(mod->cfg.tls[i], why, sizeof(why)) == 0) {
                async_module_log(host, ASYNC_LOG_NOTICE, "listen[%zu] %s: certificates read "
                                 "again for new connections", i, mod->cfg.listen[i]);
                http_tls_warn(mod->cfg.tls[i], host, mod->cfg.listen[i]);
            } else {
                async_module_log(host, ASYNC_LOG_ERROR, "listen[%zu] %s: %s; the certificates "
                                 "in use stay", i, mod->cfg.listen[i], why);
            }
        }
    pthread_mutex_unlock(&running_lock);
}

/* modules.http: the top level's keys (config.c), then its servers
 * (sites_config.c), every problem reported: 0, or -1 when there was one. */
static int validate(const json_t *config, async_module_report *report)
{
    unsigned n = http_config_validate(config, report);

    if (json_is_object(config))
        n += http_sites_validate(config, report);
    return n == 0 ? 0 : -1;
}

const struct async_module async_module = {
    .abi_version = ASYNC_MODULE_ABI_VERSION,
    .size = ASYNC_MODULE_SIZE,
    .name = "http",
    .version = "1.0",
    .validate = validate,
    .effective_config = http_sites_effective,
    .run = http_run,
    .flags = ASYNC_MODULE_NOTIFY_READY,
    .reload = http_reload,
    .reconfigure = http_reconfigure,
};
