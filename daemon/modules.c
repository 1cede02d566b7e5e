/* daemon/modules.c — finding, loading, vetting and supervising modules.
 *
 * Who touches what, across threads.  The list and every field not named
 * below belong to the daemon's fiber (load, start, reload, stop).
 *   state       atomic.  asyncd_module_start sets STARTING and
 *               asyncd_module_join IDLE, on the daemon's fiber, while no
 *               fiber of the module runs; in between, STARTING becomes
 *               READY (async_module_ready, any thread, or the supervisor)
 *               or FAILED (the supervisor) by compare-and-swap only, so a
 *               late async_module_ready cannot undo a failure.
 *   reason      under reason_lock: written by async_module_log (any
 *               thread), read by the daemon.
 *   stopping, stop_by   atomics: set by the daemon, read by the module.
 *   drained     atomic: a generation handed over is waited for by its own
 *               fiber (wait_drained, any worker), which writes drain_rc,
 *               then stores drained, then sends a token; the daemon reads
 *               drain_rc only after joining that fiber.
 * Each change to READY or FAILED sends a token on the daemon's channel
 * (asyncd_modules_watch); the daemon re-reads every state when it wakes,
 * so a token says only "look".
 *
 * Each module is loaded from a private sealed copy of its file (modfile.c
 * says why and how) and entered in the address table (modmap.c).  The
 * copy's descriptor stays open while the module is loaded: the reload
 * compares the file's bytes with it, and an fd number held cannot be
 * reused, so no later copy's /proc/self/fd/N can match this one's link
 * map by name (glibc's dlopen matches loaded objects by name before
 * inode).  Each copy is its own inode: two generations of a module
 * coexist while one replaces the other.  A generation is one load of
 * one copy: a reload that changes a running module's config loads its
 * bytes again, so the generation that drains and the one that takes
 * over share no static state (and no struct: the old one's fibers keep
 * the host handle they were given). */
#include "modules.h"

#include "check.h"
#include "handlers.h"
#include "host.h"
#include "listeners.h"
#include "log.h"
#include "logsink.h"
#include "modfile.h"
#include "modmap.h"
#include "tally.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000
/* A module ABI 2 descriptor from before the size field (size reads 0,
 * the padding it took) ends at reopen. */
#define SIZE_BEFORE_SIZE (offsetof(struct async_module, reopen) + sizeof(void (*)(void)))

static async_channel *watcher; /* set before any module starts, then read only */

void asyncd_modules_watch(async_channel *ch)
{
    watcher = ch;
}

static void changed(void)
{
    static const int token = 0;

    if (watcher != NULL)
        async_channel_send(watcher, &token);
}

/* STARTING -> to; true if this call made the change. */
static bool leave_starting(struct asyncd_module *m, int to)
{
    int expected = ASYNCD_MODULE_STARTING;

    if (!atomic_compare_exchange_strong(&m->state, &expected, to))
        return false;
    changed();
    return true;
}

int asyncd_module_state(const struct asyncd_module *m)
{
    return atomic_load(&((struct asyncd_module *)m)->state);
}

void asyncd_module_reason(struct asyncd_module *m, char *buf, size_t len)
{
    pthread_mutex_lock(&m->reason_lock);
    snprintf(buf, len, "%s", m->reason);
    pthread_mutex_unlock(&m->reason_lock);
}

void asyncd_host_vlog(async_module_host *host, int level, const char *fmt, va_list ap)
{
    va_list copy;

    if (host != NULL && level <= ASYNC_LOG_ERROR) {
        /* kept whatever the log level, to name why a start failed */
        struct asyncd_module *m = host->module;

        va_copy(copy, ap);
        pthread_mutex_lock(&m->reason_lock);
        vsnprintf(m->reason, sizeof(m->reason), fmt, copy);
        pthread_mutex_unlock(&m->reason_lock);
        va_end(copy);
    }
    asyncd_vlog(level, host != NULL ? host->module->desc->name : "?", fmt, ap);
}

void asyncd_host_ready(async_module_host *host)
{
    if (host != NULL && leave_starting(host->module, ASYNCD_MODULE_READY))
        asyncd_log(ASYNC_LOG_INFO, "module %s is ready", host->module->desc->name);
}

const char *asyncd_host_name(const async_module_host *host)
{
    return host != NULL ? host->module->desc->name : NULL;
}

int64_t asyncd_host_stop_deadline(const async_module_host *host)
{
    if (host == NULL || !atomic_load(&host->module->stopping))
        return -1;
    return atomic_load(&host->module->stop_by);
}

/* Where load_one's reasons go: p when not NULL, the log unless QUIET. */
static struct asyncd_problems quiet_problems;
#define QUIET (&quiet_problems)

/* "FILE: reason" appended to p (not NULL, not QUIET). */
static void record(struct asyncd_problems *p, const char *file, const char *reason)
{
    char *msg;

    if (asprintf(&msg, "%s: %s", file, reason) >= 0) {
        char **grown = realloc(p->msg, sizeof(*grown) * (p->n + 1));

        if (grown != NULL) {
            p->msg = grown;
            p->msg[p->n++] = msg;
        } else {
            free(msg);
        }
    }
}

static void skip(struct asyncd_problems *p, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void skip(struct asyncd_problems *p, const char *file, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    if (p == QUIET)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    asyncd_log(ASYNC_LOG_ERROR, "skipping module %s: %s", file, reason);
    if (p != NULL)
        record(p, file, reason);
}

/* The files the last load or reload refused (strict_modules, a name that
 * is not the file's), for STATUS=: "a.so (why), b.so (why)".  The daemon's
 * fiber only. */
static char refused_files[640];

const char *asyncd_modules_refused(void)
{
    return refused_files;
}

static void note_refused(const char *file, const char *why)
{
    const char *base = strrchr(file, '/');
    size_t at = strlen(refused_files);

    if (at < sizeof(refused_files))
        snprintf(refused_files + at, sizeof(refused_files) - at, "%s%s (%s)", at ? ", " : "",
                 base != NULL ? base + 1 : file, why);
}

static int is_so(const struct dirent *e)
{
    size_t n = strlen(e->d_name);

    return n > 3 && strcmp(e->d_name + n - 3, ".so") == 0;
}

static struct asyncd_module *find(struct asyncd_module *list, const char *name)
{
    for (; list != NULL; list = list->next)
        if (strcmp(list->desc->name, name) == 0)
            return list;
    return NULL;
}

/* dlopen runs the module's constructors, and its own code needs a few KiB
 * of stack: never on a fiber's.  dlerror is per thread, so it is read
 * where dlopen ran. */
struct open_job {
    const char *path;
    void *dl;
    char err[512];
};

static void *open_job(void *arg)
{
    struct open_job *j = arg;
    const char *e;

    j->dl = dlopen(j->path, RTLD_NOW | RTLD_LOCAL);
    if (j->dl == NULL && (e = dlerror()) != NULL)
        snprintf(j->err, sizeof(j->err), "%s", e);
    return NULL;
}

/* dlopens the sealed copy (fd) of file: the handle, or NULL (logged). */
static void *open_copy(const char *file, int copy, struct asyncd_problems *p)
{
    struct open_job job = {0};
    char path[64];
    const char *e, *at;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", copy);
    job.path = path;
    if (asyncd_off_stack(open_job, &job) != 0)
        snprintf(job.err, sizeof(job.err), "cannot run dlopen off the fiber: %s",
                 strerror(errno));
    if (job.dl != NULL)
        return job.dl;
    e = job.err[0] != '\0' ? job.err : NULL;
    at = e != NULL ? strstr(e, path) : NULL;
    /* dlerror names the copy; the operator knows the file */
    if (at != NULL)
        e = at + strlen(path) + (at[strlen(path)] == ':' ? 1 : 0);
    skip(p, file, "not a loadable module:%s%s", e != NULL && *e != ' ' ? " " : "",
         e != NULL ? e : "?");
    return NULL;
}

/* Reads the descriptor of dl into *d, as much of it as the module has
 * (hooks added after it was built stay absent, hooks newer than us are
 * ignored): 0, or -1 (logged) when it is missing, of another ABI or
 * incomplete. */
static int read_descriptor(void *dl, const char *file, struct async_module *d,
                           struct asyncd_problems *p)
{
    const struct async_module *desc = dlsym(dl, "async_module");

    if (desc == NULL) {
        skip(p, file, "no 'async_module' symbol");
        return -1;
    }
    if (desc->abi_version != ASYNC_MODULE_ABI_VERSION) { /* the first field read */
        if (desc->abi_version < ASYNC_MODULE_ABI_VERSION)
            skip(p, file, "built for module ABI %u; this asyncd loads ABI %u: rebuild it "
                 "against this async_io's headers", desc->abi_version, ASYNC_MODULE_ABI_VERSION);
        else
            skip(p, file, "built for module ABI %u, newer than this asyncd's %u",
                 desc->abi_version, ASYNC_MODULE_ABI_VERSION);
        return -1;
    }
    if (desc->size != 0 && desc->size < offsetof(struct async_module, flags)) {
        skip(p, file, "descriptor size %u is smaller than any module ABI %u descriptor",
             desc->size, ASYNC_MODULE_ABI_VERSION);
        return -1;
    }
    memset(d, 0, sizeof(*d));
    memcpy(d, desc, desc->size == 0 ? SIZE_BEFORE_SIZE
                    : desc->size < sizeof(*d) ? desc->size : sizeof(*d));
    if (d->name == NULL || d->name[0] == '\0' || d->run == NULL) {
        skip(p, file, "incomplete descriptor (a name and a run function are required)");
        return -1;
    }
    return 0;
}

/* Whether the module d of file may join the loaded ones: named after its
 * file, and a name no loaded module has.  Logged when not. */
static bool admissible(const char *file, const struct async_module *d,
                       struct asyncd_module *loaded, struct asyncd_problems *p)
{
    struct asyncd_module *dup;
    char why[512];

    if (!asyncd_modfile_named(file, d->name)) {
        /* a backup (http-old.so) must not stand in for http.so */
        if (p != QUIET) {
            snprintf(why, sizeof(why), "it declares '%s': a module's file must be %s.so",
                     d->name, d->name);
            asyncd_log(ASYNC_LOG_WARNING, "skipping module %s: %s", file, why);
            note_refused(file, why);
        }
        return false;
    }
    if ((dup = find(loaded, d->name)) != NULL) {
        skip(p, file, "a module named '%s' is already loaded from %s", d->name, dup->file);
        return false;
    }
    return true;
}

/* The module record for a vetted file, with its part of c; NULL (logged)
 * when out of memory. */
static struct asyncd_module *new_module(const struct asyncd_config *c, const char *file,
                                        const struct async_module *d, struct asyncd_problems *p)
{
    struct asyncd_module *m;
    json_t *cfg;
    int enabled;

    cfg = asyncd_module_part(c, d->name, &enabled);
    m = cfg != NULL ? calloc(1, sizeof(*m)) : NULL;
    if (m == NULL || (m->file = strdup(file)) == NULL) {
        free(m);
        json_decref(cfg);
        skip(p, file, "out of memory");
        return NULL;
    }
    m->d = *d;
    m->desc = &m->d;
    m->host.api = &asyncd_host_api;
    m->host.module = m;
    m->config = cfg;
    m->enabled = enabled;
    m->optional = asyncd_module_optional(c, d->name);
    pthread_mutex_init(&m->reason_lock, NULL);
    return m;
}

/* Vets one file; a module on success, NULL (logged) otherwise.  Its
 * config is checked apart (asyncd_modules_check), so that one pass can
 * report every problem of a file. */
static struct asyncd_module *load_one(const struct asyncd_config *c, const char *file,
                                      struct asyncd_module *loaded, struct asyncd_problems *p)
{
    struct asyncd_module *m = NULL;
    struct async_module d;
    struct stat st;
    off_t size = 0;
    char why[512];
    bool refusal = false;
    int copy;
    void *dl;

    copy = asyncd_modfile_copy(c, file, &st, &size, &refusal, why, sizeof(why));
    if (copy < 0) {
        skip(p, file, "%s", why);
        if (refusal && p != QUIET)
            note_refused(file, why);
        return NULL;
    }
    if ((dl = open_copy(file, copy, p)) == NULL) {
        close(copy);
        return NULL;
    }
    if (read_descriptor(dl, file, &d, p) != 0 || !admissible(file, &d, loaded, p) ||
        (m = new_module(c, file, &d, p)) == NULL) {
        dlclose(dl);
        close(copy);
        return NULL;
    }
    m->st = st;
    m->copy_fd = copy;
    m->size = size;
    m->dl = dl;
    return m;
}

static void loaded(const struct asyncd_module *m)
{
    asyncd_log(ASYNC_LOG_INFO, "loaded module %s %s from %s%s", m->desc->name,
               m->desc->version != NULL ? m->desc->version : "", m->file,
               m->enabled ? "" : " (disabled)");
}

/* The *.so paths of the folder, in name order; NULL-terminated. */
static char **list_files(const char *dirname, struct asyncd_problems *p)
{
    struct dirent **names;
    char **files;
    int n, i;

    n = scandir(dirname, &names, is_so, alphasort);
    if (n < 0) {
        skip(p, dirname, "cannot read the modules directory: %s", strerror(errno));
        return NULL;
    }
    files = calloc((size_t)n + 1, sizeof(*files));
    for (i = 0; i < n; i++) {
        if (files != NULL && asprintf(&files[i], "%s/%s", dirname, names[i]->d_name) < 0)
            files[i] = NULL;
        free(names[i]);
    }
    free(names);
    return files;
}

static void free_files(char **files)
{
    size_t i;

    for (i = 0; files != NULL && files[i] != NULL; i++)
        free(files[i]);
    free(files);
}

struct asyncd_module *asyncd_modules_load(const struct asyncd_config *c, struct asyncd_problems *p)
{
    struct asyncd_module *list = NULL, **tail = &list;
    char **files;
    size_t i;

    refused_files[0] = '\0';
    files = list_files(c->modules_dir, p);

    for (i = 0; files != NULL && files[i] != NULL; i++) {
        struct asyncd_module *m = load_one(c, files[i], list, p);

        if (m != NULL) {
            *tail = m;
            tail = &m->next;
            loaded(m);
        }
    }
    free_files(files);
    return list;
}

/* Records why m failed when it logged no error of its own. */
static void default_reason(struct asyncd_module *m, int rc)
{
    pthread_mutex_lock(&m->reason_lock);
    if (m->reason[0] == '\0')
        snprintf(m->reason, sizeof(m->reason), rc != 0 ? "run returned %d" :
                 "run returned 0 before it was ready", rc);
    pthread_mutex_unlock(&m->reason_lock);
}

/* The module's first fiber: runs it, and restarts it while it fails.  A
 * module that ends before it was ever ready is not restarted: the cause
 * (a port taken, a file missing) is in its surroundings, not passing, and
 * the daemon decides (asyncd exits at start-up, or it waits for a
 * reload).  Failures after it was ready are restarts. */
static void *supervise(void *arg)
{
    struct asyncd_module *m = arg;
    int64_t backoff = BACKOFF_FIRST_MS;

    if (!(m->desc->flags & ASYNC_MODULE_NOTIFY_READY))
        leave_starting(m, ASYNCD_MODULE_READY); /* ready when run starts */
    for (;;) {
        int rc;

        atomic_store(&m->running, true);
        asyncd_listeners_run_begins(m);
        rc = m->desc->run(&m->host, m->config);
        atomic_store(&m->running, false);
        /* Its handlers go with the run that registered them: the next run
         * registers its own, once calls into these have left. */
        asyncd_handlers_withdraw(m);
        asyncd_handlers_wait(m, async_now_ms() + BACKOFF_FIRST_MS);
        if (atomic_load(&m->stopping))
            break;
        if (atomic_load(&m->state) != ASYNCD_MODULE_READY) {
            default_reason(m, rc);
            leave_starting(m, ASYNCD_MODULE_FAILED);
            break;
        }
        if (rc == 0) {
            asyncd_log(ASYNC_LOG_NOTICE, "module %s finished", m->desc->name);
            break;
        }
        asyncd_log(ASYNC_LOG_ERROR, "module %s failed (run returned %d); restarting in %lld ms",
                   m->desc->name, rc, (long long)backoff);
        if (async_sleep_ms((uint64_t)backoff) != 0)
            break; /* cancelled: the module is being stopped */
        asyncd_tally_restart();
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    /* run will not run again: its sockets may go once no successor
     * claimed them (asyncd_listeners_sweep) */
    asyncd_listeners_release(m);
    return NULL;
}

int asyncd_module_start(struct asyncd_module *m)
{
    int err;

    pthread_mutex_lock(&m->reason_lock);
    m->reason[0] = '\0';
    pthread_mutex_unlock(&m->reason_lock);
    m->reported = false;
    atomic_store(&m->stopping, false);
    atomic_store(&m->stop_by, -1);
    atomic_store(&m->state, ASYNCD_MODULE_STARTING);
    m->group = async_group_new();
    if (m->group == NULL)
        goto fail;
    asyncd_modmap_group(m); /* before its first fiber runs: the watcher names it */
    if (async_group_spawn(m->group, supervise, m) != 0)
        goto fail_group;
    return 0;
fail_group:
    err = errno;
    async_group_free(m->group);
    m->group = NULL;
    errno = err;
fail:
    err = errno;
    pthread_mutex_lock(&m->reason_lock);
    snprintf(m->reason, sizeof(m->reason), "cannot start it: %s", strerror(err));
    pthread_mutex_unlock(&m->reason_lock);
    leave_starting(m, ASYNCD_MODULE_FAILED);
    errno = err;
    return -1;
}

void asyncd_module_warn_stop(struct asyncd_module *m, int64_t stop_by)
{
    /* stop_by first: a module that sees stopping reads a deadline */
    atomic_store(&m->stop_by, stop_by);
    atomic_store(&m->stopping, true);
}

void asyncd_module_cancel(struct asyncd_module *m, int64_t stop_by)
{
    atomic_store(&m->stop_by, stop_by);
    atomic_store(&m->stopping, true);
    /* No new request enters its handlers; those inside finish while the
     * module still runs whatever they depend on. */
    asyncd_handlers_withdraw(m);
    asyncd_handlers_wait(m, stop_by);
    async_group_cancel(m->group);
}

int asyncd_module_join(struct asyncd_module *m)
{
    int64_t deadline;

    if (m->group == NULL)
        return 0;
    /* Its code must stay loaded while another module's fiber runs in one
     * of its handlers. */
    deadline = async_deadline(-1);
    async_deadline(deadline);
    if (asyncd_handlers_wait(m, deadline) != 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (async_group_join(m->group) != 0)
        return -1;
    async_group_free(m->group);
    m->group = NULL;
    asyncd_modmap_group(m);
    asyncd_listeners_release(m);
    atomic_store(&m->state, ASYNCD_MODULE_IDLE);
    return 0;
}

void asyncd_modules_reopen(struct asyncd_module *list)
{
    struct asyncd_module *m;

    for (m = list; m != NULL; m = m->next)
        if (m->group != NULL && atomic_load(&m->running) && m->desc->reopen != NULL)
            m->desc->reopen(&m->host);
}

void asyncd_module_free(struct asyncd_module *m)
{
    asyncd_listeners_release(m);
    pthread_mutex_destroy(&m->reason_lock);
    if (m->dl != NULL && dlclose(m->dl) == 0 && m->copy_fd >= 0) {
        char path[64];
        void *still;

        /* A library that cannot be unloaded (RTLD_NODELETE, unique
         * symbols) keeps its link map named /proc/self/fd/N: its fd stays
         * open, so no later copy gets that number and, by name, this map. */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", m->copy_fd);
        still = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
        if (still != NULL) {
            dlclose(still);
            asyncd_log(ASYNC_LOG_DEBUG, "module %s stays mapped after dlclose", m->file);
        } else {
            close(m->copy_fd);
        }
    }
    json_decref(m->config);
    free(m->file);
    free(m);
}

int asyncd_module_stop(struct asyncd_module *m, int64_t timeout_ms)
{
    int64_t old;
    int rc;

    if (m->group == NULL)
        return 0;
    asyncd_module_cancel(m, async_now_ms() + timeout_ms);
    old = async_deadline(async_now_ms() + timeout_ms);
    rc = asyncd_module_join(m);
    async_deadline(old);
    if (rc != 0)
        asyncd_log(ASYNC_LOG_ERROR, "module %s did not stop within %lld ms", m->desc->name,
                   (long long)timeout_ms);
    return rc;
}

/* Whether file is m's file with the bytes m runs.  Logs a rewrite that
 * kept the bytes (cp of the same build): nothing restarts for it. */
static bool same_file(struct asyncd_module *m, const char *file)
{
    struct stat st;

    if (strcmp(m->file, file) != 0 || !asyncd_modfile_same(m->copy_fd, m->size, file, &st))
        return false;
    if (st.st_dev != m->st.st_dev || st.st_ino != m->st.st_ino ||
        st.st_mtim.tv_sec != m->st.st_mtim.tv_sec || st.st_mtim.tv_nsec != m->st.st_mtim.tv_nsec) {
        asyncd_log(ASYNC_LOG_NOTICE, "module %s: %s was rewritten with the same bytes; not "
                   "restarted", m->desc->name, file);
        m->st = st;
    }
    return true;
}

/* The new generation of m's changed file, loaded beside the running one
 * (each copy is its own inode, so the loader maps both), or NULL (logged:
 * the running one stays) when it does not load, is refused or declares
 * another name than its file's. */
static struct asyncd_module *next_generation(const struct asyncd_config *c,
                                             const struct asyncd_module *m,
                                             struct asyncd_problems *p)
{
    /* load_one holds it to the file's name, which is m's */
    struct asyncd_module *nm = load_one(c, m->file, NULL, p);

    if (nm == NULL && p != QUIET)
        asyncd_log(ASYNC_LOG_ERROR, "module %s: %s changed but cannot be loaded; the running "
                   "module stays", m->desc->name, m->file);
    return nm;
}

int asyncd_modules_check(const struct asyncd_config *c, const struct asyncd_module *loaded,
                         struct asyncd_problems *p)
{
    const struct async_module **mods;
    const struct asyncd_module *m;
    size_t n = 0;
    int rc;

    for (m = loaded; m != NULL; m = m->next)
        n++;
    mods = calloc(n + 1, sizeof(*mods));
    if (mods == NULL) {
        asyncd_problem(p, c, "modules", "out of memory");
        return -1;
    }
    for (n = 0, m = loaded; m != NULL; m = m->next)
        mods[n++] = m->desc;
    rc = asyncd_check_modules(c, mods, n, p);
    free(mods);
    return rc;
}

/* For the reload's check: a file the reload would load that
 * strict_modules refuses is a problem (the reload is rejected whole). */
static bool refused_in_check(const struct asyncd_config *c, const char *file,
                             struct asyncd_problems *p)
{
    char why[700];
    struct stat st;
    bool r;
    int fd = open(file, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return false; /* the load says why */
    r = fstat(fd, &st) == 0 && asyncd_modfile_refused(c, &st, why, sizeof(why));
    close(fd);
    if (r)
        record(p, file, why);
    return r;
}

int asyncd_modules_check_folder(const struct asyncd_config *c, const struct asyncd_module *loaded,
                                struct asyncd_problems *p)
{
    char **files = list_files(c->modules_dir, QUIET);
    struct asyncd_module *view = NULL, **tail = &view, *m, *next;
    const struct asyncd_module *old;
    size_t i;
    int rc;

    if (files == NULL) /* unreadable: the reload will change nothing */
        return asyncd_modules_check(c, loaded, p);
    for (i = 0; files[i] != NULL; i++) {
        /* A file loaded already, with the same bytes, answers with the
         * name and hooks it had: a shell, no second copy. */
        for (old = loaded; old != NULL && strcmp(old->file, files[i]) != 0; old = old->next)
            ;
        m = NULL;
        if (old != NULL) {
            struct stat st;

            /* a changed file is answered by its new generation, as the
             * reload will load it, or by the running one that then stays */
            if (!asyncd_modfile_same(old->copy_fd, old->size, files[i], &st) && !refused_in_check(c, files[i], p))
                m = next_generation(c, old, QUIET);
        } else if (!refused_in_check(c, files[i], p)) {
            m = load_one(c, files[i], view, QUIET);
        }
        if (m != NULL) {
            *tail = m;
            tail = &m->next;
        } else if (old != NULL && (m = calloc(1, sizeof(*m))) != NULL) {
            m->d = old->d; /* a shell: its name and hooks, no handle of its own */
            m->desc = &m->d;
            *tail = m;
            tail = &m->next;
        }
    }
    rc = asyncd_modules_check(c, view, p);
    for (m = view; m != NULL; m = next) {
        next = m->next;
        if (m->dl != NULL)
            asyncd_module_free(m);
        else
            free(m);
    }
    free_files(files);
    return rc;
}

/* One reload's lists (asyncd_modules_reload).  The daemon's fiber. */
struct reload {
    const struct asyncd_config *c;
    char **files;                       /* the folder's *.so, in name order */
    struct asyncd_module *keep;         /* old modules whose file holds the bytes they run */
    struct asyncd_module *fresh;        /* new generations of changed files (predecessor set) */
    struct asyncd_module *going;        /* generations retired: they drain on their own */
    struct asyncd_module *list, **tail; /* the modules from now on, in file order */
    struct asyncd_module **stuck;
    int64_t stop_by;                    /* when the daemon gives up on the old ones */
};

static bool listed(const struct reload *r, const char *file)
{
    size_t i;

    for (i = 0; r->files[i] != NULL; i++)
        if (strcmp(r->files[i], file) == 0)
            return true;
    return false;
}

/* Unlinks and returns the module of file from *list, or NULL. */
static struct asyncd_module *take_file(struct asyncd_module **list, const char *file)
{
    struct asyncd_module **pm, *m;

    for (pm = list; *pm != NULL && strcmp((*pm)->file, file) != 0; pm = &(*pm)->next)
        ;
    if ((m = *pm) != NULL)
        *pm = m->next;
    return m;
}

/* m goes for good (its file gone, its config rejected, the folder
 * changed under the reload): stopped and unloaded before the reload goes
 * on, or parked in stuck.  Not left to drain: until it is joined its
 * sockets are its own, and a module the same reload starts may want one
 * of its addresses. */
static void retire(struct reload *r, struct asyncd_module *m)
{
    if (asyncd_module_stop(m, r->c->shutdown_timeout_ms) != 0) {
        m->next = *r->stuck;
        *r->stuck = m;
        return;
    }
    asyncd_log(ASYNC_LOG_INFO, "unloaded module %s", m->desc->name);
    asyncd_module_free(m);
}

/* The hand-over from old to its next generation nm: old stops accepting
 * (its group is cancelled; its listeners' sockets stay the daemon's, and
 * nm's, which has old's name, takes them) and drains while nm starts on
 * the same sockets; old is unloaded once drained (asyncd_modules_reap),
 * the reload does not wait for it.  Never both closed: no connect is
 * refused meanwhile. */
static void hand_over(struct reload *r, struct asyncd_module *old, struct asyncd_module *nm)
{
    if (old->group != NULL) { /* cancelled, it drains beside nm (finish) */
        asyncd_module_cancel(old, r->stop_by);
        old->next = r->going;
        r->going = old;
    } else {
        asyncd_module_free(old);
    }
    if (nm->enabled)
        asyncd_module_start(nm);
}

/* 1. Sorts the old modules: a file gone stops its module now; a changed
 *    file whose new bytes load has its new generation put on fresh (the
 *    running one hands over when it is placed); the others are kept. */
static void sort_old(struct reload *r, struct asyncd_module *old)
{
    struct asyncd_module *m, *next, *nm;

    for (m = old; m != NULL; m = next) {
        next = m->next;
        if (!listed(r, m->file)) {
            asyncd_log(ASYNC_LOG_NOTICE, "module %s: %s is gone", m->desc->name, m->file);
            retire(r, m);
            continue;
        }
        nm = NULL;
        if (!same_file(m, m->file)) {
            asyncd_log(ASYNC_LOG_NOTICE, "module %s: %s changed; loading its new bytes",
                       m->desc->name, m->file);
            nm = next_generation(r->c, m, NULL); /* NULL: the running one stays */
        }
        if (nm != NULL) {
            nm->predecessor = m;
            nm->next = r->fresh;
            r->fresh = nm;
        } else {
            m->next = r->keep;
            r->keep = m;
        }
    }
}

/* A kept module whose config changed while it runs and stays enabled: a
 * new generation of the same bytes takes over (a fresh copy, so the two
 * share no static state).  False when it cannot be loaded: then the
 * module restarts in place. */
static bool restart_by_hand_over(struct reload *r, struct asyncd_module *m,
                                 struct asyncd_module **out)
{
    struct asyncd_module *nm = load_one(r->c, m->file, NULL, NULL);

    if (nm == NULL) {
        asyncd_log(ASYNC_LOG_WARNING, "module %s: no new generation could be loaded; "
                   "restarting it in place", m->desc->name);
        return false;
    }
    asyncd_log(ASYNC_LOG_NOTICE, "module %s: config changed, restarting: a new generation takes over",
               m->desc->name);
    hand_over(r, m, nm);
    *out = nm;
    return true;
}

/* Stops m and starts it again with cfg (taken), or leaves it disabled. */
static struct asyncd_module *restart_in_place(struct reload *r, struct asyncd_module *m,
                                              json_t *cfg, int enabled, bool same)
{
    if (asyncd_module_stop(m, r->c->shutdown_timeout_ms) != 0) {
        json_decref(cfg);
        m->next = *r->stuck;
        *r->stuck = m;
        return NULL;
    }
    json_decref(m->config);
    m->config = cfg;
    m->enabled = enabled;
    if (same)
        asyncd_log(ASYNC_LOG_NOTICE, "module %s: it failed to start; trying again",
                   m->desc->name);
    else
        asyncd_log(ASYNC_LOG_NOTICE, "module %s: config changed, %s", m->desc->name,
                   enabled ? "restarting" : "now disabled");
    if (enabled)
        asyncd_module_start(m);
    return m;
}

/* 2a. A kept module: untouched, restarted for a new config (or because it
 *     failed to start: the reload is how its operator says the cause is
 *     fixed), disabled, or unloaded when its config is now rejected.
 *     The module to list, or NULL. */
static struct asyncd_module *place_kept(struct reload *r, struct asyncd_module *m)
{
    bool failed = asyncd_module_state(m) == ASYNCD_MODULE_FAILED, same;
    struct asyncd_module *nm;
    int enabled;
    json_t *cfg = asyncd_module_part(r->c, m->desc->name, &enabled);

    same = cfg != NULL && (bool)enabled == m->enabled && json_equal(cfg, m->config);
    m->optional = asyncd_module_optional(r->c, m->desc->name);
    if (cfg == NULL || (same && !(enabled && failed))) {
        json_decref(cfg); /* untouched, still running ... */
        /* ... but files it names may have changed (certificates) */
        if (m->enabled && m->group != NULL && atomic_load(&m->running) && m->desc->reload != NULL)
            m->desc->reload(&m->host);
        return m;
    }
    /* reload() ran the checks first; this one only catches a check that
     * changed its mind since (files on disk). */
    if (enabled && asyncd_module_validate(r->c, m->desc, cfg, NULL) != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "module %s: new config rejected; unloading it",
                   m->desc->name);
        json_decref(cfg);
        retire(r, m);
        return NULL;
    }
    if (!same && enabled && m->enabled && !failed && m->desc->reconfigure != NULL &&
        atomic_load(&m->running) && m->desc->reconfigure(&m->host, cfg) == 0) {
        /* applied in place: its connections and fibers go on */
        asyncd_log(ASYNC_LOG_NOTICE, "module %s: config changed, applied in place",
                   m->desc->name);
        json_decref(m->config);
        m->config = cfg;
        return m;
    }
    if (enabled && m->enabled && !failed && m->group != NULL &&
        restart_by_hand_over(r, m, &nm)) {
        json_decref(cfg);
        return nm;
    }
    return restart_in_place(r, m, cfg, enabled, same);
}

/* 2b. A new file, or the new generation of a changed one: loaded, checked
 *     and started (taking over from its predecessor).  A new generation
 *     that cannot be placed leaves its predecessor running.  The module
 *     to list, or NULL. */
static struct asyncd_module *place_new(struct reload *r, const char *file)
{
    struct asyncd_module *m = take_file(&r->fresh, file), *prev;

    if (m == NULL && (m = load_one(r->c, file, r->list, NULL)) == NULL)
        return NULL;
    prev = m->predecessor;
    m->predecessor = NULL;
    if (prev == NULL && find(r->keep, m->desc->name) != NULL) { /* taken by one we keep */
        asyncd_log(ASYNC_LOG_ERROR, "skipping module %s: a module named '%s' is already "
                   "loaded", m->file, m->desc->name);
        asyncd_module_free(m);
        return NULL;
    }
    if (m->enabled && asyncd_module_validate(r->c, m->desc, m->config, NULL) != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "skipping module %s: its config is rejected%s", m->file,
                   prev != NULL ? "; the running module stays" : "");
        asyncd_module_free(m);
        return prev;
    }
    loaded(m);
    if (prev != NULL)
        hand_over(r, prev, m);
    else if (m->enabled)
        asyncd_module_start(m);
    return m;
}

/* A retired generation's drain: its in-flight handler calls and its
 * group, waited for until its stop_by, off the daemon's fiber. */
static void *wait_drained(void *arg)
{
    struct asyncd_module *m = arg;
    int64_t until = atomic_load(&m->stop_by);

    async_deadline(until);
    m->drain_rc = asyncd_handlers_wait(m, until) == 0 ? async_group_join(m->group) : -1;
    atomic_store(&m->drained, true); /* before the token: the daemon reads it on waking */
    changed();
    return NULL;
}

/* 3. Whatever was sorted but not placed (the folder changed between the
 *    two scans) goes; each retired generation gets the fiber that waits
 *    for its drain, and joins *draining. */
static void finish(struct reload *r, struct asyncd_module **draining)
{
    struct asyncd_module *m, *next;

    for (m = r->keep; m != NULL; m = next) {
        next = m->next;
        retire(r, m);
    }
    for (m = r->fresh; m != NULL; m = next) {
        next = m->next;
        retire(r, m->predecessor);
        asyncd_module_free(m);
    }
    for (m = r->going; m != NULL; m = next) {
        next = m->next;
        atomic_store(&m->drained, false);
        if ((m->drain_wait = async_spawn(wait_drained, m)) == NULL) {
            wait_drained(m); /* no fiber for it: waited for here, as before */
        }
        m->next = *draining;
        *draining = m;
    }
}

/* The end of m's drain: unloaded, or stuck. */
static void unload_drained(struct asyncd_module *m, struct asyncd_module **stuck, int64_t timeout_ms)
{
    if (m->drain_rc == 0 && asyncd_module_join(m) == 0) {
        asyncd_log(ASYNC_LOG_INFO, "unloaded the previous generation of module %s",
                   m->desc->name);
        asyncd_module_free(m);
        return;
    }
    asyncd_log(ASYNC_LOG_ERROR, "module %s did not stop within %lld ms", m->desc->name,
               (long long)timeout_ms);
    m->next = *stuck;
    *stuck = m;
}

bool asyncd_modules_reap(struct asyncd_module **draining, struct asyncd_module **stuck,
                         bool stopping, int64_t timeout_ms)
{
    struct asyncd_module **pm = draining, *m;
    int64_t deadline;
    bool any = false;

    /* stopping: every waiter is cancelled first (each then ends at once),
     * so that none is left running when its module is unloaded below */
    for (m = *draining; stopping && m != NULL; m = m->next)
        if (m->drain_wait != NULL)
            async_cancel(m->drain_wait);
    while ((m = *pm) != NULL) {
        if (!stopping && !atomic_load(&m->drained)) {
            pm = &m->next;
            continue;
        }
        *pm = m->next;
        any = true;
        if (m->drain_wait != NULL) {
            deadline = async_deadline(-1); /* it parks no more: unbounded is safe */
            async_join(m->drain_wait, NULL);
            async_deadline(deadline);
            m->drain_wait = NULL;
        }
        if (stopping)
            m->drain_rc = 0; /* the caller's deadline bounds the join below */
        unload_drained(m, stuck, timeout_ms);
    }
    return any;
}

struct asyncd_module *asyncd_modules_reload(const struct asyncd_config *c,
                                            struct asyncd_module *old,
                                            struct asyncd_module **draining,
                                            struct asyncd_module **stuck)
{
    struct reload r = {.c = c, .stuck = stuck};
    struct asyncd_module *m;
    size_t i;

    refused_files[0] = '\0';
    r.files = list_files(c->modules_dir, NULL);
    if (r.files == NULL) /* unreadable folder (logged): change nothing */
        return old;
    r.tail = &r.list;
    r.stop_by = async_now_ms() + c->shutdown_timeout_ms;
    sort_old(&r, old);
    for (i = 0; r.files[i] != NULL; i++) {
        m = take_file(&r.keep, r.files[i]);
        m = m != NULL ? place_kept(&r, m) : place_new(&r, r.files[i]);
        if (m == NULL)
            continue;
        m->next = NULL;
        *r.tail = m;
        r.tail = &m->next;
    }
    finish(&r, draining);
    free_files(r.files);
    return r.list;
}
