/* modules/http/site_stats.c — requests counted by site: the metrics
 * endpoint's "server" label.
 *
 * A site's counts must outlive its generation (a reload makes new struct
 * http_server values, sites.h), so they live in the module, one set per
 * label: a server's first name, or "default" for a server without names.
 * A generation's sites find their set by label when it is built, so a
 * site a reload keeps (same first name) keeps counting where it was, and
 * a new one starts at 0.  Two servers with the same label (one name on
 * two addresses, or two servers without names) share a set: Prometheus
 * must never see one series twice.  A set is never removed while the
 * module runs: a site a reload drops keeps its last counts, exported
 * unchanged, until the module restarts (a restart starts every counter
 * of the engine at 0 as well, which Prometheus reads as a counter reset).
 * So no exported series ever goes backwards, and a site that comes back
 * counts on from where it was.  A set shows in scrapes once a generation
 * that uses it is published (a reload that fails to build its sites adds
 * no series for the names it had).  The list only grows by the distinct
 * labels a module has served; each costs a line of counters per worker.
 *
 * Threads.  The list is appended to by one fiber at a time (run, then
 * reconfigure under running_lock, http.c): a set is filled, then linked
 * by a release store of the tail's next (or of mod->stats), so a scrape
 * walking it with acquire loads sees whole sets.  Each worker w counts
 * into slot[w] alone (the done hook runs on the connection's worker, and
 * fibers there never interleave within one call): relaxed loads and
 * stores, no locked instruction and no line shared between workers per
 * request.  A scrape sums the slots; it may see a request's class counted
 * and its duration not yet, never a count going down. */
#include "http.h"
#include "sites.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define LINE 64

struct slot {
    alignas(LINE) _Atomic uint64_t by_class[6]; /* [1..5]: by status class */
    _Atomic uint64_t timed, timed_us;
    _Atomic uint64_t duration[ASYNC_HTTP_DURATION_BUCKETS + 1];
};

struct http_site_stats {
    char *label;                /* as the config writes it */
    char *escaped;              /* ... as a label value (\\, \", \n escaped) */
    _Atomic uint64_t fd_refused; /* rare: a shared counter is fine */
    _Atomic bool shown;         /* a published generation used it: scrapes list it */
    unsigned nslots;
    struct slot *slot;          /* per worker; NULL when metrics are off */
    _Atomic(struct http_site_stats *) next;
};

/* The text format's escapes for a label value. */
static char *escape(const char *s)
{
    char *out = malloc(2 * strlen(s) + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            *o++ = '\\';
            *o++ = *s == '\n' ? 'n' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static void stats_free(struct http_site_stats *s)
{
    free(s->label);
    free(s->escaped);
    free(s->slot);
    free(s);
}

static struct http_site_stats *stats_new(const struct http_module *mod, const char *label)
{
    struct http_site_stats *s = calloc(1, sizeof(*s));
    unsigned w, i;

    if (s == NULL)
        return NULL;
    s->label = strdup(label);
    s->escaped = escape(label);
    if (s->label == NULL || s->escaped == NULL)
        goto fail;
    if (mod->cfg.metrics_on) {
        s->nslots = mod->workers > 0 ? mod->workers : 1;
        if ((s->slot = aligned_alloc(LINE, s->nslots * sizeof(*s->slot))) == NULL)
            goto fail;
        for (w = 0; w < s->nslots; w++) {
            for (i = 0; i < 6; i++)
                atomic_init(&s->slot[w].by_class[i], 0);
            atomic_init(&s->slot[w].timed, 0);
            atomic_init(&s->slot[w].timed_us, 0);
            for (i = 0; i <= ASYNC_HTTP_DURATION_BUCKETS; i++)
                atomic_init(&s->slot[w].duration[i], 0);
        }
    }
    atomic_init(&s->fd_refused, 0);
    atomic_init(&s->shown, false);
    atomic_init(&s->next, NULL);
    return s;
fail:
    stats_free(s);
    return NULL;
}

struct http_site_stats *http_site_stats_get(struct http_module *mod, const char *label)
{
    struct http_site_stats *s;

    for (s = atomic_load_explicit(&mod->stats, memory_order_relaxed); s != NULL;
         s = atomic_load_explicit(&s->next, memory_order_relaxed))
        if (strcmp(s->label, label) == 0)
            return s;
    if ((s = stats_new(mod, label)) == NULL)
        return NULL;
    if (mod->stats_tail == NULL)
        atomic_store_explicit(&mod->stats, s, memory_order_release);
    else
        atomic_store_explicit(&mod->stats_tail->next, s, memory_order_release);
    mod->stats_tail = s;
    return s;
}

const char *http_site_label(const struct http_site_cfg *site)
{
    return site->nnames > 0 ? site->names[0] : "default";
}

static void bump(_Atomic uint64_t *v, uint64_t by)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

void http_site_stats_count(struct http_site_stats *s, unsigned w, const async_http_request *req)
{
    static const int64_t bound[ASYNC_HTTP_DURATION_BUCKETS] = ASYNC_HTTP_DURATION_BOUNDS_US;
    int status = async_http_status(req);
    int64_t us;
    struct slot *sl;
    unsigned i;

    if (s->slot == NULL)
        return;
    sl = &s->slot[w < s->nslots ? w : w % s->nslots];
    if (status >= 100 && status < 600)
        bump(&sl->by_class[status / 100], 1);
    if ((us = async_http_duration_us(req)) < 0)
        return; /* not timed: a request the engine could not parse */
    for (i = 0; i < ASYNC_HTTP_DURATION_BUCKETS && us > bound[i]; i++)
        ;
    bump(&sl->duration[i], 1);
    bump(&sl->timed, 1);
    bump(&sl->timed_us, (uint64_t)us);
}

void http_site_stats_show(struct http_site_stats *s)
{
    atomic_store_explicit(&s->shown, true, memory_order_relaxed);
}

uint64_t http_site_stats_refused(struct http_site_stats *s)
{
    return atomic_fetch_add_explicit(&s->fd_refused, 1, memory_order_relaxed) + 1;
}

/* s, or the first set after it a published generation used. */
static struct http_site_stats *shown_from(struct http_site_stats *s)
{
    while (s != NULL && !atomic_load_explicit(&s->shown, memory_order_relaxed))
        s = atomic_load_explicit(&s->next, memory_order_acquire);
    return s;
}

struct http_site_stats *http_site_stats_first(struct http_module *mod)
{
    return shown_from(atomic_load_explicit(&mod->stats, memory_order_acquire));
}

struct http_site_stats *http_site_stats_next(const struct http_site_stats *s)
{
    return shown_from(atomic_load_explicit(&s->next, memory_order_acquire));
}

void http_site_stats_read(const struct http_site_stats *s, struct http_site_figures *f)
{
    unsigned w, i;

    memset(f, 0, sizeof(*f));
    f->label = s->escaped;
    f->fd_refused = atomic_load_explicit(&s->fd_refused, memory_order_relaxed);
    for (w = 0; s->slot != NULL && w < s->nslots; w++) {
        const struct slot *sl = &s->slot[w];

        for (i = 0; i < 6; i++)
            f->by_class[i] += atomic_load_explicit(&sl->by_class[i], memory_order_relaxed);
        f->timed += atomic_load_explicit(&sl->timed, memory_order_relaxed);
        f->timed_us += atomic_load_explicit(&sl->timed_us, memory_order_relaxed);
        for (i = 0; i <= ASYNC_HTTP_DURATION_BUCKETS; i++)
            f->duration[i] += atomic_load_explicit(&sl->duration[i], memory_order_relaxed);
    }
}

void http_site_stats_free_all(struct http_module *mod)
{
    struct http_site_stats *s = atomic_exchange(&mod->stats, NULL), *next;

    for (; s != NULL; s = next) {
        next = atomic_load_explicit(&s->next, memory_order_relaxed);
        stats_free(s);
    }
    mod->stats_tail = NULL;
}
