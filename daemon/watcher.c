/* daemon/watcher — see watcher.h.
 *
 * Every warn_ms / 4 the thread samples each worker (async_worker_watch).
 * A worker whose beat moved, or that runs no fiber (it waits for events,
 * no fault), is fine and its clock restarts.  One whose beat stood still
 * with a fiber on it since `since` is held; past warn_ms it is one episode
 * (counted, logged), reported again every REPEAT_MS while it lasts, and
 * its end is logged too.  Who holds it: the module whose group the fiber
 * is in (modmap.h, published by the daemon's fiber), and the fiber's entry
 * function through dladdr: a symbol when the module exports one, else
 * FILE+0xOFFSET, which `addr2line -e FILE` turns into a line.  A module's
 * first fiber enters through the daemon's supervisor (modules.c), so a
 * fiber of a module's group whose entry is not in the module's code is
 * its run, and run is named.
 *
 * The watchdog.  Before, a fiber petted it, and with two workers the free
 * one kept petting while the other was held.  Here WATCHDOG=1 goes out
 * only when no worker is held; a pet that falls due meanwhile waits, so a
 * worker held for longer than WatchdogSec gets the service restarted.
 *
 * Threads: `warn_ms` and `blocked` are atomics any thread may touch;
 * `stop` is guarded by `lock` (with `wake` to cut a sleep short); the
 * rest (struct seen, rt) is the watcher thread's alone once started. */
#include "watcher.h"

#include "log.h"
#include "modmap.h"
#include "notify.h"

#include <async_io/module.h>

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEAT_MS 1000          /* a held worker is reported again this often */
#define MAX_SAMPLE_MS 250       /* the longest sleep between samples */

struct seen {
    uint64_t beat;
    int64_t since;              /* when the beat last moved (or the worker idled) */
    bool held;                  /* reported as held (past warn_ms) */
    int64_t reported;           /* when last reported */
    char who[256];              /* module and entry, as reported */
};

static struct {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;                  /* lock */
    async_rt *rt;
    unsigned workers;
    int64_t pet_ms, next_pet;
    struct seen *seen;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic int64_t warn_ms = 200;
static _Atomic uint64_t blocked;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "FILE+0xOFF" or "symbol" (with +0xOFF when not its start) for code at p. */
static void name_code(void *p, char *buf, size_t len)
{
    struct asyncd_modmap_entry m;
    Dl_info info;
    const char *slash;

    if (p == NULL || dladdr(p, &info) == 0) {
        snprintf(buf, len, "%p", p);
        return;
    }
    if (info.dli_sname != NULL && info.dli_saddr == p) {
        snprintf(buf, len, "%s", info.dli_sname);
        return;
    }
    /* a module is loaded from a private copy, /proc/self/fd/N: its file
     * comes from the daemon's table */
    if (asyncd_modmap_by_addr((uintptr_t)p, &m)) {
        snprintf(buf, len, "%s+0x%tx", m.file, (uintptr_t)p - m.base);
        return;
    }
    slash = info.dli_fname != NULL ? strrchr(info.dli_fname, '/') : NULL;
    snprintf(buf, len, "%s+0x%tx", slash != NULL ? slash + 1 : info.dli_fname != NULL ?
             info.dli_fname : "?", (char *)p - (char *)info.dli_fbase);
}

/* "module NAME, entry FN" for the fiber ww describes. */
static void describe(const struct async_worker_watch *ww, char *buf, size_t len)
{
    struct asyncd_modmap_entry by_group, by_addr;
    bool g = asyncd_modmap_by_group(ww->group, &by_group);
    bool a = asyncd_modmap_by_addr((uintptr_t)ww->fn, &by_addr);
    char fn[160];

    if (g && !a) { /* the supervisor that calls run: name run */
        name_code(by_group.run, fn, sizeof(fn));
        snprintf(buf, len, "module %s, entry %s (its run)", by_group.name, fn);
        return;
    }
    name_code((void *)ww->fn, fn, sizeof(fn));
    if (g || a)
        snprintf(buf, len, "module %s, entry %s", g ? by_group.name : by_addr.name, fn);
    else
        snprintf(buf, len, "no module (the daemon's own fiber), entry %s", fn);
}

static bool sample(unsigned i, int64_t now, int64_t warn)
{
    struct seen *s = &w.seen[i];
    struct async_worker_watch ww;

    if (async_worker_watch(w.rt, i, &ww) != 0)
        return false;
    if (ww.beat != s->beat || ww.fn == NULL) {
        if (s->held)
            asyncd_log(ASYNC_LOG_NOTICE, "worker %u moved again after %" PRId64 " ms (%s)", i,
                       now - s->since, s->who);
        s->beat = ww.beat;
        s->since = now;
        s->held = false;
        return false;
    }
    if (now - s->since < warn)
        return false;
    if (!s->held) {
        s->held = true;
        s->reported = now;
        atomic_fetch_add_explicit(&blocked, 1, memory_order_relaxed);
        describe(&ww, s->who, sizeof(s->who));
        asyncd_log(ASYNC_LOG_WARNING, "worker %u blocked for %" PRId64 " ms by %s: every fiber "
                   "of that worker waits (a blocking call or a long computation in a fiber)",
                   i, now - s->since, s->who);
    } else if (now - s->reported >= REPEAT_MS) {
        s->reported = now;
        asyncd_log(ASYNC_LOG_WARNING, "worker %u still blocked after %" PRId64 " ms by %s", i,
                   now - s->since, s->who);
    }
    return true;
}

/* Waits ms, or until a stop: true when stopping. */
static bool nap(int64_t ms)
{
    struct timespec ts;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w.lock);
    while (!w.stop && pthread_cond_timedwait(&w.wake, &w.lock, &ts) == 0)
        ;
    stop = w.stop;
    pthread_mutex_unlock(&w.lock);
    return stop;
}

static void *watch(void *arg)
{
    (void)arg;
    do {
        int64_t now = mono_ms(), warn = atomic_load(&warn_ms), period;
        bool any_held = false;
        unsigned i;

        for (i = 0; i < w.workers; i++)
            any_held |= sample(i, now, warn);
        if (w.pet_ms > 0 && !any_held && now >= w.next_pet) {
            asyncd_notify("WATCHDOG=1");
            w.next_pet = now + w.pet_ms;
        }
        period = warn / 4 > 0 ? warn / 4 : 1;
        if (period > MAX_SAMPLE_MS)
            period = MAX_SAMPLE_MS;
        if (w.pet_ms > 0 && !any_held && w.next_pet - now < period)
            period = w.next_pet - now > 0 ? w.next_pet - now : 1;
        if (nap(period))
            break;
    } while (1);
    return NULL;
}

int asyncd_watcher_start(async_rt *rt, int64_t warn, int64_t pet_ms)
{
    pthread_condattr_t ca;
    int n = async_workers(), err;
    unsigned i;

    if (rt == NULL || n <= 0) {
        errno = EINVAL;
        return -1;
    }
    w.seen = calloc((size_t)n, sizeof(*w.seen));
    if (w.seen == NULL)
        return -1;
    w.rt = rt;
    w.workers = (unsigned)n;
    w.pet_ms = pet_ms;
    w.next_pet = 0;
    w.stop = false;
    atomic_store(&warn_ms, warn);
    for (i = 0; i < w.workers; i++)
        w.seen[i].since = mono_ms();
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.wake, &ca);
    pthread_condattr_destroy(&ca);
    err = pthread_create(&w.thread, NULL, watch, NULL);
    if (err != 0) {
        pthread_cond_destroy(&w.wake);
        free(w.seen);
        w.seen = NULL;
        errno = err;
        return -1;
    }
    w.started = true;
    return 0;
}

void asyncd_watcher_set_warn_ms(int64_t warn)
{
    atomic_store(&warn_ms, warn); /* taken at the next sample */
}

void asyncd_watcher_stop(void)
{
    if (!w.started)
        return;
    pthread_mutex_lock(&w.lock);
    w.stop = true;
    pthread_cond_signal(&w.wake);
    pthread_mutex_unlock(&w.lock);
    pthread_join(w.thread, NULL);
    pthread_cond_destroy(&w.wake);
    free(w.seen);
    w.seen = NULL;
    w.started = false;
}

uint64_t asyncd_watcher_blocked(void)
{
    return atomic_load_explicit(&blocked, memory_order_relaxed);
}
