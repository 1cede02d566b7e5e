/* modules/http/sites.h — virtual hosts: many sites behind one engine.
 *
 *   sites_config.c  "servers", "names", "headers", "locations", "error_pages":
 *                   checks by JSON path, and each server's own config
 *   sites.c         a generation of sites (what one config makes): the host
 *                   tables, the default site per listen address, choosing a
 *                   request's site, and retiring a generation after a reload
 *   site_reply.c    what a site adds to answers: its fields and its
 *                   locations' (the engine's head hook), its error pages,
 *                   for the module's errors and the engine's own
 *   site_stats.c    requests counted by site (the metrics' "server"
 *                   label), kept by label across reloads
 *
 * A site is a struct http_server (http.h): files.c, file_cache.c and
 * status.c serve from it as they did from the one server there was.  The
 * module (struct http_module) owns the engine, the listeners and the
 * access logs, and points at the current generation.
 *
 * Threads.  A generation is built by one fiber (run, or reconfigure on the
 * daemon's) and read-only once published in mod->current.  A request holds
 * its generation from the handler's first instruction to the engine's done
 * hook (which comes after the head hook and the log line), so a reload
 * frees a generation only once no request uses it; see sites.c for how
 * that is known without a shared counter per request. */
#ifndef HTTP_SITES_H
#define HTTP_SITES_H

#include "http.h"

struct http_sites;
struct http_site_stats;

struct http_module {
    async_module_host *host;
    struct http_config cfg;     /* the top level: engine options, listen (every server's) */
    async_http_server *engine;
    struct http_log *log;       /* every site's access log; NULL: the engine logs nothing */
    unsigned workers;
    _Atomic(struct http_sites *) current;
    struct http_hazard *hazard; /* one per worker (sites.c) */
    pthread_mutex_t retired_lock; /* guards retired */
    struct http_sites *retired; /* replaced, freed once no request holds them */
    _Atomic int64_t busy_logged_at;
    /* every label's counts, in order of first use (site_stats.c) */
    _Atomic(struct http_site_stats *) stats;
    struct http_site_stats *stats_tail; /* the appending fiber's only */
};

/* ---- the config (sites_config.c) ---- */

/* Checks "servers" and the keys a server has (top level and each
 * servers[i]); problems go to report by JSON path.  The number of
 * problems. */
unsigned http_sites_validate(const json_t *config, async_module_report *report);
/* config in effect (asyncd -T): http_config_effective's top level,
 * and each servers[i] written out whole — what it inherits from the top
 * level and every default — so each block reads alone.  A new
 * reference, or NULL. */
json_t *http_sites_effective(const json_t *config);
/* How many servers config describes (a flat config is one). */
size_t http_sites_count(const json_t *config);
/* Server i's own config: the top level's keys (but "servers") with
 * servers[i]'s on top.  A new reference, or NULL. */
json_t *http_sites_server_config(const json_t *config, size_t i);
/* The listen addresses of every server, each once, in order of first
 * appearance, into c->listen (what the module binds). */
int http_sites_listen(const json_t *config, struct http_config *c);
/* Reads what a server adds (names, default, headers, locations,
 * error_pages) from its merged config (validated): 0, or -1 (ENOMEM). */
int http_site_cfg_load(const json_t *server, struct http_site_cfg *s);
void http_site_cfg_free(struct http_site_cfg *s);

/* ---- host names (names.c) ---- */

/* Names to values, each name on a set of listen addresses (a mask): exact
 * names by hash, then "*.example.org" wildcards, longest first; a host is
 * taken without its port and one trailing dot, in any case.  The sites'
 * tables (the Host of a request) and each HTTPS address's certificates
 * (the server name of a handshake, tls.c) are such tables.  Read-only
 * once filled: any number of threads may look up. */
struct http_name_slot;
struct http_name_table {
    struct http_name_slot *slot;
    size_t mask;
};
struct http_names {
    struct http_name_table exact, wild; /* wild holds ".example.org" for "*.example.org" */
    size_t nwild, nnames;       /* wildcards; all names */
};

/* Room for exact and wild names: 0, or -1 (ENOMEM). */
int http_names_init(struct http_names *t, size_t exact, size_t wild);
/* name (normalized: lower case, no trailing dot; kept, not copied) holds
 * value (not NULL) on the addresses of mask.  Within the room made. */
void http_names_put(struct http_names *t, const char *name, uint32_t mask, void *value);
/* The value of host on the address bit, or NULL. */
void *http_names_find(const struct http_names *t, const char *host, uint32_t bit);
void http_names_free(struct http_names *t);

/* ---- generations (sites.c) ---- */

/* The module's part of it (a hazard per worker, the retired list):
 * 0, or -1 (ENOMEM).  http_sites_free_all undoes it. */
int http_sites_init(struct http_module *mod);
/* Builds the sites of config (validated) for mod: opens roots and logs,
 * binds handlers, fills the host tables.  NULL when it cannot (logged). */
struct http_sites *http_sites_new(struct http_module *mod, const json_t *config);
/* Makes sites the current generation; the one it replaces is freed once
 * no request holds it (http_sites_reap). */
void http_sites_publish(struct http_module *mod, struct http_sites *sites);
/* Frees the replaced generations no request holds any more. */
void http_sites_reap(struct http_module *mod);
/* Frees every generation, and what http_sites_init made: no request may
 * run. */
void http_sites_free_all(struct http_module *mod);

/* A connection's tag: the index of the listen address it came to, and the
 * worker it is served on (async_http_server_start_tagged runs it there,
 * and every later fiber of it too). */
static inline void *http_conn_tag(size_t listen_index, unsigned worker)
{
    return (void *)(uintptr_t)((uintptr_t)worker << 5 | (listen_index + 1));
}

/* The site for req (its host, the address it came through), held and
 * set as req's tag until the engine's done hook (http_site_done). */
struct http_server *http_site_enter(struct http_module *mod, async_http_request *req);
void http_site_done(async_http_request *req, void *site);
/* For a fiber that is not a request (the cache sweepers): the current
 * generation, held until http_sites_leave. */
struct http_sites *http_sites_hold(struct http_module *mod);
void http_sites_leave(struct http_sites *g);
size_t http_sites_n(const struct http_sites *g);
/* The module a site serves for. */
struct http_module *http_site_module(const struct http_server *site);
struct http_server *http_sites_at(struct http_sites *g, size_t i);
/* The site for host arriving on listen address li (for tests and the
 * bench through the handler): never NULL. */
struct http_server *http_sites_pick(const struct http_sites *g, size_t li, const char *host);

/* ---- counts by site (site_stats.c) ---- */

/* A site's label: its first name, or "default" without names. */
const char *http_site_label(const struct http_site_cfg *site);
/* The counts labelled label, made (at 0) the first time: kept until
 * http_site_stats_free_all, whatever reloads do.  NULL (ENOMEM).  One
 * fiber at a time (run, reconfigure); scrapes may read meanwhile. */
struct http_site_stats *http_site_stats_get(struct http_module *mod, const char *label);
/* Counts the exchange req ended (its final status and the engine's
 * timing), on worker w: the done hook's, on the connection's worker. */
void http_site_stats_count(struct http_site_stats *s, unsigned w, const async_http_request *req);
/* s is in use by a generation being published: scrapes list it. */
void http_site_stats_show(struct http_site_stats *s);
/* One more request refused for want of a descriptor: the count now. */
uint64_t http_site_stats_refused(struct http_site_stats *s);

/* A set's figures, summed over the workers. */
struct http_site_figures {
    const char *label;          /* escaped for a label value; the set's */
    uint64_t by_class[6];       /* [1..5] */
    uint64_t timed, timed_us;
    uint64_t duration[ASYNC_HTTP_DURATION_BUCKETS + 1]; /* not cumulative; last +Inf */
    uint64_t fd_refused;
};
/* Walking the sets shown (any thread): first, then next until NULL. */
struct http_site_stats *http_site_stats_first(struct http_module *mod);
struct http_site_stats *http_site_stats_next(const struct http_site_stats *s);
void http_site_stats_read(const struct http_site_stats *s, struct http_site_figures *f);
/* No request may run. */
void http_site_stats_free_all(struct http_module *mod);

/* ---- answers (site_reply.c) ---- */

/* The engine's head hook: the site's fields, its location's. */
void http_site_head(async_http_request *req, void *site);
/* The site's error page for status, sent with that status: 0 sent, -1
 * failed while sending (the connection closes), 1 sent nothing (no page,
 * or it cannot be read: the caller answers with its built-in body). */
int http_site_error_page(async_http_request *req, int status);
/* The engine's error hook (async_http_error_fn, ctx the module): the
 * site's page for one of the engine's own errors, the site chosen (and
 * held until the done hook) if no handler had. */
int http_site_engine_error(async_http_request *req, int status, void *mod);

#endif
