/* daemon/handlers.c — the registry of HTTP handlers.
 *
 * A slot is a handler name; it exists from its first mention (a module
 * registering it, the http module routing to it) until asyncd exits, so
 * the http module may keep a pointer to it across reloads of the module
 * that provides it.  A provider is one registration: the module, its
 * function and context, and the count of calls inside it.
 *
 * Invariants.
 *   - slots (the list) and every slot's owner-side bookkeeping are
 *     guarded by lock; lookups by name happen at configuration time only.
 *   - slot->provider is an atomic pointer: set (NULL -> p) under lock by
 *     async_module_add_http_handler, cleared (p -> NULL) under lock by a
 *     withdrawal; read without a lock by every call.
 *   - A call and a withdrawal are a Dekker pair: the call increments its
 *     worker's in-flight counter of p and then re-reads slot->provider;
 *     the withdrawal clears slot->provider and then reads the counters
 *     (all seq_cst).  So either the call sees NULL and leaves, or the
 *     withdrawal's waiter sees the call.  The counters are per worker
 *     (a fiber never changes worker, so a call's decrement hits the same
 *     counter as its increment) to keep requests on different workers off
 *     one cache line.
 *   - A provider is never freed while asyncd runs: a call may have read
 *     the pointer just before the withdrawal.  Withdrawn providers stay on
 *     the slot's list (a few dozen bytes per registration) until exit.
 *
 * A module's metrics writers (metrics_writers.c) are calls into its code
 * from another module too: withdrawing and waiting for m's handlers does
 * the same for its writers, so every caller of the two has both. */
#include "handlers.h"

#include "host.h"
#include "log.h"
#include "metrics_writers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16                /* in-flight counters per provider */
#define WAIT_POLL_MS 5

struct lane {
    _Atomic long n;
    char pad[64 - sizeof(long)];
};

struct provider {
    async_http_handler fn;
    void *ctx;
    struct asyncd_module *owner;    /* NULL once withdrawn and settled */
    bool withdrawn;                 /* under lock */
    struct provider *next;          /* the slot's providers, newest first */
    struct lane inflight[LANES];
};

struct async_module_http_slot {
    const struct async_module_host_api *api; /* first: see async_io/module.h */
    _Atomic(struct provider *) provider;
    struct provider *all;           /* under lock */
    struct async_module_http_slot *next;
    char name[ASYNCD_NAME_MAX + 1];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct async_module_http_slot *slots;

/* The slot of name, made if need be; under lock. */
static struct async_module_http_slot *slot_locked(const char *name)
{
    struct async_module_http_slot *s;

    for (s = slots; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    strcpy(s->name, name);
    s->api = &asyncd_host_api;
    s->next = slots;
    slots = s;
    return s;
}

async_module_http_slot *asyncd_handler_slot(async_module_host *host, const char *name)
{
    struct async_module_http_slot *s;

    (void)host;
    if (!asyncd_handler_name_valid(name)) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    s = slot_locked(name);
    pthread_mutex_unlock(&lock);
    if (s == NULL)
        errno = ENOMEM;
    return s;
}

int asyncd_handler_add(async_module_host *host, const char *name, async_http_handler fn,
                       void *ctx)
{
    struct async_module_http_slot *s;
    struct provider *p;

    if (host == NULL || fn == NULL || !asyncd_handler_name_valid(name)) {
        errno = EINVAL;
        return -1;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return -1;
    p->fn = fn;
    p->ctx = ctx;
    p->owner = host->module;
    pthread_mutex_lock(&lock);
    s = slot_locked(name);
    if (s == NULL || atomic_load(&s->provider) != NULL) {
        pthread_mutex_unlock(&lock);
        free(p);
        errno = s == NULL ? ENOMEM : EEXIST;
        return -1;
    }
    p->next = s->all;
    s->all = p;
    atomic_store(&s->provider, p);
    pthread_mutex_unlock(&lock);
    asyncd_log(ASYNC_LOG_INFO, "module %s provides HTTP handler \"%s\"",
               host->module->desc->name, name);
    return 0;
}

int asyncd_handler_call(async_module_http_slot *s, async_http_request *req)
{
    struct provider *p;
    struct lane *lane;
    int w, rc;

    for (;;) {
        if ((p = atomic_load(&s->provider)) == NULL) {
            errno = ENOENT;
            return -1;
        }
        w = async_worker_id();
        lane = &p->inflight[(unsigned)(w < 0 ? 0 : w) % LANES];
        atomic_fetch_add(&lane->n, 1);
        if (atomic_load(&s->provider) == p)
            break;
        atomic_fetch_sub(&lane->n, 1); /* withdrawn (or replaced) meanwhile */
    }
    rc = p->fn(req, p->ctx);
    atomic_fetch_sub_explicit(&lane->n, 1, memory_order_release);
    return rc;
}

int asyncd_handler_slot_provided(const async_module_http_slot *s)
{
    return atomic_load(&s->provider) != NULL;
}

bool asyncd_handler_provided(const char *name)
{
    struct async_module_http_slot *s;
    bool yes = false;

    pthread_mutex_lock(&lock);
    for (s = slots; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            yes = atomic_load(&s->provider) != NULL;
    pthread_mutex_unlock(&lock);
    return yes;
}

void asyncd_handlers_withdraw(struct asyncd_module *m)
{
    struct async_module_http_slot *s;
    struct provider *p;

    pthread_mutex_lock(&lock);
    for (s = slots; s != NULL; s = s->next)
        for (p = s->all; p != NULL; p = p->next)
            if (p->owner == m && !p->withdrawn) {
                p->withdrawn = true;
                if (atomic_load(&s->provider) == p)
                    atomic_store(&s->provider, NULL);
                asyncd_log(ASYNC_LOG_INFO, "module %s withdraws HTTP handler \"%s\"",
                           m->desc->name, s->name);
            }
    pthread_mutex_unlock(&lock);
    asyncd_metrics_writers_withdraw(m);
}

static long inflight(struct provider *p)
{
    long n = 0;
    unsigned i;

    for (i = 0; i < LANES; i++)
        n += atomic_load(&p->inflight[i].n);
    return n;
}

/* Whether m has withdrawn providers with calls inside; settles (forgets
 * the owner of) those without.  Under lock. */
static bool busy_locked(struct asyncd_module *m)
{
    struct async_module_http_slot *s;
    struct provider *p;
    bool busy = false;

    for (s = slots; s != NULL; s = s->next)
        for (p = s->all; p != NULL; p = p->next)
            if (p->owner == m && p->withdrawn) {
                if (inflight(p) > 0)
                    busy = true;
                else
                    p->owner = NULL; /* m's code is no longer reachable through it */
            }
    return busy;
}

bool asyncd_handlers_busy(struct asyncd_module *m)
{
    bool busy;

    pthread_mutex_lock(&lock);
    busy = busy_locked(m);
    pthread_mutex_unlock(&lock);
    /* both settled, whatever the first said */
    return asyncd_metrics_writers_busy(m) || busy;
}

int asyncd_handlers_wait(struct asyncd_module *m, int64_t until_ms)
{
    int shield = async_shield(1);
    int64_t deadline = async_deadline(-1);
    int rc = 0;

    while (asyncd_handlers_busy(m)) {
        if (until_ms >= 0 && async_now_ms() >= until_ms) {
            rc = -1;
            break;
        }
        async_sleep_ms(WAIT_POLL_MS);
    }
    async_deadline(deadline);
    if (shield >= 0)
        async_shield(shield);
    return rc;
}

void asyncd_handlers_names(const struct asyncd_module *m, char *buf, size_t len)
{
    struct async_module_http_slot *s;
    struct provider *p;
    size_t used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    pthread_mutex_lock(&lock);
    for (s = slots; s != NULL; s = s->next)
        if ((p = atomic_load(&s->provider)) != NULL && p->owner == m && used + strlen(s->name) + 2 < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", s->name);
    pthread_mutex_unlock(&lock);
}

void asyncd_handlers_free_all(void)
{
    struct async_module_http_slot *s, *sn;
    struct provider *p, *pn;

    pthread_mutex_lock(&lock);
    for (s = slots; s != NULL; s = sn) {
        sn = s->next;
        for (p = s->all; p != NULL; p = pn) {
            pn = p->next;
            free(p);
        }
        free(s);
    }
    slots = NULL;
    pthread_mutex_unlock(&lock);
}
