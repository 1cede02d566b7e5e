/* modules/http/sites.c — a generation of sites: what one config makes.
 *
 * Choosing a site (http_sites_pick): the host is async_http_host's (the
 * absolute-form target's authority before the Host field; the engine has
 * refused malformed ones, two Hosts, and HTTP/1.1 without one), looked up
 * in the generation's name table (names.c, which tls.c also uses for the
 * server name of a handshake).  A name belongs to a site on the
 * addresses that site listens on; a host no site there names goes to that
 * address's default (the one marked "default": true, else the first that
 * listens there).
 *
 * Reclaiming a generation after a reload, without a shared counter per
 * request.  Each worker w owns two words: hazard[w] in the module and
 * inflight[w] in every generation, both written by w only.  A request
 * (http_site_enter) publishes the generation it read in hazard[w]
 * (sequentially consistent), reads mod->current again — if a reload
 * replaced it meanwhile it starts over — then counts itself in the
 * generation's inflight[w] and clears hazard[w] (release); the engine's
 * done hook uncounts it, on the same worker (a fiber never moves).  A
 * retired generation is freed once no hazard names it and every
 * inflight[w] is 0: a worker that had not yet published g when the
 * reaper looked must then find the new current and never count into g;
 * one that had, the reaper sees.  What a request pays is one store to its
 * own worker's line with a full fence (no line shared between workers is
 * written).  A request may last long (a proxied tunnel): its generation
 * waits for it, the others are freed. */
#include "http.h"
#include "sites.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE 64

struct http_hazard {
    _Atomic(struct http_sites *) g;
    char pad[LINE - sizeof(void *)];
};

struct inflight {
    _Atomic long n;
    char pad[LINE - sizeof(long)];
};

struct http_sites {
    struct http_module *mod;
    struct http_server *site;
    size_t n;
    struct http_names names;    /* to sites */
    struct http_server *dflt[HTTP_MAX_LISTEN]; /* per module listen address */
    struct inflight *inflight;  /* per worker */
    struct http_sites *next;    /* mod->retired */
};

struct http_server *http_sites_pick(const struct http_sites *g, size_t li, const char *host)
{
    struct http_server *s = http_names_find(&g->names, host, (uint32_t)1 << li);

    return s != NULL ? s : g->dflt[li];
}

/* ---- holding a generation ---- */

static struct http_sites *hold(struct http_module *mod, unsigned w)
{
    struct http_sites *g;
    long n;

    for (;;) {
        g = atomic_load_explicit(&mod->current, memory_order_acquire);
        atomic_store_explicit(&mod->hazard[w].g, g, memory_order_seq_cst);
        if (atomic_load_explicit(&mod->current, memory_order_seq_cst) == g)
            break;
    }
    n = atomic_load_explicit(&g->inflight[w].n, memory_order_relaxed);
    atomic_store_explicit(&g->inflight[w].n, n + 1, memory_order_relaxed);
    atomic_store_explicit(&mod->hazard[w].g, NULL, memory_order_release);
    return g;
}

static void leave(struct http_sites *g, unsigned w)
{
    long n = atomic_load_explicit(&g->inflight[w].n, memory_order_relaxed);

    atomic_store_explicit(&g->inflight[w].n, n - 1, memory_order_release);
}

static unsigned worker(void)
{
    int w = async_worker_id();

    return w < 0 ? 0 : (unsigned)w;
}

/* The worker req's connection lives on, from its tag (http_conn_tag). */
static unsigned conn_worker(const async_http_request *req)
{
    uintptr_t t = (uintptr_t)async_http_conn_tag(req);

    return t != 0 ? (unsigned)(t >> 5) : worker();
}

struct http_server *http_site_enter(struct http_module *mod, async_http_request *req)
{
    uintptr_t li = ((uintptr_t)async_http_conn_tag(req) & 31) - 1;
    struct http_sites *g = hold(mod, conn_worker(req));
    struct http_server *site =
        http_sites_pick(g, li < HTTP_MAX_LISTEN ? li : 0, async_http_host(req));

    async_http_set_tag(req, site);
    return site;
}

void http_site_done(async_http_request *req, void *arg)
{
    struct http_server *site = arg;
    unsigned w = conn_worker(req);

    http_site_stats_count(site->stats, w, req);
    leave(site->sites, w);
}

struct http_sites *http_sites_hold(struct http_module *mod)
{
    return hold(mod, worker());
}

void http_sites_leave(struct http_sites *g)
{
    leave(g, worker());
}

struct http_module *http_site_module(const struct http_server *site)
{
    return site->sites->mod;
}

size_t http_sites_n(const struct http_sites *g)
{
    return g->n;
}

struct http_server *http_sites_at(struct http_sites *g, size_t i)
{
    return &g->site[i];
}

/* ---- building and freeing ---- */

/* The daemon's slot for every route of site that names a handler. */
static int bind_handlers(struct http_server *site)
{
    size_t i;

    for (i = 0; i < site->cfg.nroutes; i++) {
        struct http_route *rt = &site->cfg.routes[i];

        if (rt->handler == NULL)
            continue;
        rt->slot = async_module_http_slot_get(site->host, rt->handler);
        if (rt->slot == NULL) {
            async_module_log(site->host, ASYNC_LOG_ERROR, "handler %s: %s", rt->handler,
                             strerror(errno));
            return -1;
        }
        if (!async_module_http_provided(rt->slot))
            async_module_log(site->host, ASYNC_LOG_WARNING,
                             "routes[%zu]: no module provides handler \"%s\" yet", i,
                             rt->handler);
    }
    return 0;
}

static void site_close(struct http_server *site)
{
    http_locals_free(site);
    if (site->root_fd >= 0)
        close(site->root_fd);
    http_config_free(&site->cfg);
    http_site_cfg_free(&site->site);
}

static int site_open(struct http_module *mod, struct http_sites *g, struct http_server *site,
                     const json_t *merged)
{
    size_t i, k;

    memset(site, 0, sizeof(*site));
    site->host = mod->host;
    site->engine = mod->engine;
    site->log = mod->log;
    site->sites = g;
    site->root_fd = -1;
    site->log_entry = -1;
    atomic_store(&site->busy_logged_at, INT64_MIN / 2);
    atomic_store(&site->fd_logged_at, INT64_MIN / 2);
    if (http_config_load(merged, &site->cfg) != 0 || http_site_cfg_load(merged, &site->site) != 0 ||
        http_locals_init(site, mod->workers) != 0) {
        async_module_log(mod->host, ASYNC_LOG_ERROR, "out of memory reading the config");
        return -1;
    }
    site->cfg.max_connections = mod->cfg.max_connections;
    if ((site->stats = http_site_stats_get(mod, http_site_label(&site->site))) == NULL) {
        async_module_log(mod->host, ASYNC_LOG_ERROR, "out of memory for a server's counts");
        return -1;
    }
    for (i = 0; i < site->cfg.nlisten; i++)
        for (k = 0; k < mod->cfg.nlisten; k++)
            if (strcmp(site->cfg.listen[i], mod->cfg.listen[k]) == 0)
                site->listen_mask |= (uint32_t)1 << k;
    if (site->cfg.root != NULL &&
        (site->root_fd = open(site->cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        async_module_log(mod->host, ASYNC_LOG_ERROR, "root %s: %s", site->cfg.root,
                         strerror(errno));
        return -1;
    }
    if (site->cfg.access_log != NULL && mod->log != NULL &&
        (site->log_entry = http_log_entry(mod->log, site->cfg.access_log,
                                          site->cfg.log_format)) < 0) {
        async_module_log(mod->host, ASYNC_LOG_ERROR, "access_log %s: %s", site->cfg.access_log,
                         strerror(errno));
        return -1;
    }
    return bind_handlers(site);
}

static void sites_free(struct http_sites *g)
{
    size_t i;

    for (i = 0; g->site != NULL && i < g->n; i++)
        site_close(&g->site[i]);
    free(g->site);
    http_names_free(&g->names);
    free(g->inflight);
    free(g);
}

/* The host tables and each address's default. */
static int index_names(struct http_module *mod, struct http_sites *g)
{
    size_t i, k, exact = 0, wild = 0;

    for (i = 0; i < g->n; i++)
        for (k = 0; k < g->site[i].site.nnames; k++) {
            if (g->site[i].site.names[k][0] == '*')
                wild++;
            else
                exact++;
        }
    if (http_names_init(&g->names, exact, wild) != 0)
        return -1;
    for (i = 0; i < g->n; i++)
        for (k = 0; k < g->site[i].site.nnames; k++)
            http_names_put(&g->names, g->site[i].site.names[k], g->site[i].listen_mask,
                           &g->site[i]);
    for (k = 0; k < mod->cfg.nlisten; k++)
        for (i = 0; i < g->n; i++) {
            struct http_server *s = &g->site[i];

            if ((s->listen_mask >> k & 1) == 0)
                continue;
            if (g->dflt[k] == NULL || (s->site.is_default && !g->dflt[k]->site.is_default))
                g->dflt[k] = s; /* the one marked, else the first */
        }
    return 0;
}

struct http_sites *http_sites_new(struct http_module *mod, const json_t *config)
{
    struct http_sites *g = calloc(1, sizeof(*g));
    size_t i, n = http_sites_count(config);
    json_t *merged;

    if (g == NULL)
        return NULL;
    g->mod = mod;
    g->site = calloc(n, sizeof(*g->site));
    g->inflight = aligned_alloc(LINE, mod->workers * sizeof(*g->inflight));
    if (g->site == NULL || g->inflight == NULL)
        goto fail;
    for (i = 0; i < mod->workers; i++)
        atomic_init(&g->inflight[i].n, 0);
    for (i = 0; i < n; i++) {
        g->site[i].root_fd = -1;
        merged = http_sites_server_config(config, i);
        if (merged == NULL || site_open(mod, g, &g->site[i], merged) != 0) {
            json_decref(merged);
            g->n = i + 1;
            goto fail;
        }
        json_decref(merged);
    }
    g->n = n;
    if (index_names(mod, g) != 0)
        goto fail;
    return g;
fail:
    sites_free(g);
    return NULL;
}

static bool quiescent(struct http_module *mod, struct http_sites *g)
{
    unsigned w;

    for (w = 0; w < mod->workers; w++)
        if (atomic_load_explicit(&mod->hazard[w].g, memory_order_seq_cst) == g ||
            atomic_load_explicit(&g->inflight[w].n, memory_order_acquire) != 0)
            return false;
    return true;
}

void http_sites_reap(struct http_module *mod)
{
    struct http_sites **p, *g;

    pthread_mutex_lock(&mod->retired_lock);
    for (p = &mod->retired; (g = *p) != NULL;) {
        if (quiescent(mod, g)) {
            *p = g->next;
            sites_free(g);
        } else {
            p = &g->next;
        }
    }
    pthread_mutex_unlock(&mod->retired_lock);
}

void http_sites_publish(struct http_module *mod, struct http_sites *g)
{
    struct http_sites *old;
    size_t i;

    for (i = 0; i < g->n; i++)
        http_site_stats_show(g->site[i].stats);

    /* where an exchange no site chose is logged (the error hook chooses
     * one for the engine's own answers: this is the fallback) */
    if (mod->log != NULL)
        http_log_set_untagged(mod->log, g->dflt[0] != NULL ? g->dflt[0]->log_entry : -1);
    old = atomic_exchange_explicit(&mod->current, g, memory_order_seq_cst);
    if (old != NULL) {
        pthread_mutex_lock(&mod->retired_lock);
        old->next = mod->retired;
        mod->retired = old;
        pthread_mutex_unlock(&mod->retired_lock);
    }
    http_sites_reap(mod);
}

int http_sites_init(struct http_module *mod)
{
    unsigned w, n = mod->workers > 0 ? mod->workers : 1;

    pthread_mutex_init(&mod->retired_lock, NULL);
    if ((mod->hazard = aligned_alloc(LINE, n * sizeof(*mod->hazard))) == NULL)
        return -1;
    for (w = 0; w < n; w++)
        atomic_init(&mod->hazard[w].g, NULL);
    return 0;
}

void http_sites_free_all(struct http_module *mod)
{
    struct http_sites *g, *next;

    for (g = mod->retired; g != NULL; g = next) {
        next = g->next;
        sites_free(g);
    }
    mod->retired = NULL;
    if ((g = atomic_exchange(&mod->current, NULL)) != NULL)
        sites_free(g);
    free(mod->hazard);
    mod->hazard = NULL;
    pthread_mutex_destroy(&mod->retired_lock);
}
