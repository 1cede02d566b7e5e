/* daemon/metrics_writers.c — the registry of metrics writers: what
 * modules add to the metrics endpoint (async_module_add_metrics_writer),
 * called by the module that serves it (async_module_metrics_write).
 *
 * A writer is one registration: the run that made it (its module), its
 * function and context, and the count of scrapes inside it.  It follows
 * its module's handlers through their life (handlers.c): withdrawn with
 * them when the run ends or the module stops, waited for with them before
 * the module's fibers are cancelled and its code unloaded.
 *
 * Invariants.
 *   - writers (the list, in registration order: new ones go at the tail,
 *     so a scrape that walks it sees each older one once) and every
 *     writer's owner and withdrawn are guarded by lock.
 *   - A scrape takes lock to step from one writer to the next, and
 *     enters a writer (inflight + 1) under lock only when it is not
 *     withdrawn; it calls fn without the lock and leaves (inflight - 1,
 *     release) without it.  A withdrawal sets withdrawn under lock, so
 *     after it no scrape enters; the waiter reads inflight (acquire) to
 *     see the scrapes still inside.  A scrape is seconds apart from the
 *     next: a lock per writer per scrape costs nothing measurable, and
 *     none is taken per request.
 *   - A writer is never freed while asyncd runs: a scrape holds a pointer
 *     to it across the call, and withdrawn ones stay on the list (a
 *     hundred bytes per registration) until exit. */
#include "metrics_writers.h"

#include "handlers.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct writer {
    async_module_metrics_writer fn;
    void *ctx;
    struct asyncd_module *owner;    /* NULL once withdrawn and settled */
    bool withdrawn;
    _Atomic long inflight;          /* scrapes inside fn */
    struct writer *next;
    char name[ASYNCD_NAME_MAX + 1];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct writer *writers, **tail = &writers;

int asyncd_metrics_writer_add(async_module_host *host, const char *name,
                              async_module_metrics_writer fn, void *ctx)
{
    struct writer *w;

    if (host == NULL || fn == NULL || !asyncd_handler_name_valid(name)) {
        errno = EINVAL;
        return -1;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return -1;
    w->fn = fn;
    w->ctx = ctx;
    w->owner = host->module;
    strcpy(w->name, name);
    pthread_mutex_lock(&lock);
    for (struct writer *o = writers; o != NULL; o = o->next)
        if (o->owner == w->owner && !o->withdrawn && strcmp(o->name, name) == 0) {
            pthread_mutex_unlock(&lock);
            free(w);
            errno = EEXIST;
            return -1;
        }
    *tail = w;
    tail = &w->next;
    pthread_mutex_unlock(&lock);
    asyncd_log(ASYNC_LOG_INFO, "module %s provides metrics writer \"%s\"",
               host->module->desc->name, name);
    return 0;
}

void asyncd_metrics_write(async_module_host *host, struct async_module_text *out)
{
    struct writer *w;

    (void)host;
    pthread_mutex_lock(&lock);
    for (w = writers; w != NULL; w = w->next) {
        if (w->withdrawn)
            continue;
        atomic_fetch_add_explicit(&w->inflight, 1, memory_order_relaxed);
        pthread_mutex_unlock(&lock);
        w->fn(out, w->ctx);
        atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_release);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
}

void asyncd_metrics_writers_withdraw(struct asyncd_module *m)
{
    struct writer *w;

    pthread_mutex_lock(&lock);
    for (w = writers; w != NULL; w = w->next)
        if (w->owner == m && !w->withdrawn) {
            w->withdrawn = true;
            asyncd_log(ASYNC_LOG_INFO, "module %s withdraws metrics writer \"%s\"",
                       m->desc->name, w->name);
        }
    pthread_mutex_unlock(&lock);
}

bool asyncd_metrics_writers_busy(struct asyncd_module *m)
{
    struct writer *w;
    bool busy = false;

    pthread_mutex_lock(&lock);
    for (w = writers; w != NULL; w = w->next)
        if (w->owner == m && w->withdrawn) {
            if (atomic_load_explicit(&w->inflight, memory_order_acquire) > 0)
                busy = true;
            else
                w->owner = NULL; /* m's code is no longer reachable through it */
        }
    pthread_mutex_unlock(&lock);
    return busy;
}

void asyncd_metrics_writers_free_all(void)
{
    struct writer *w, *next;

    pthread_mutex_lock(&lock);
    for (w = writers; w != NULL; w = next) {
        next = w->next;
        free(w);
    }
    writers = NULL;
    tail = &writers;
    pthread_mutex_unlock(&lock);
}
