/* daemon/check.c — see check.h.
 *
 * A module reports problems by JSON path inside its own object
 * (async_module_problem); the daemon owns the file, so it prefixes
 * "modules.NAME" and finds the line and column (config.c, locate).  A
 * report belongs to one validate call on one thread: no locking. */
#include "check.h"

#include "host.h"

#include "handlers.h"
#include "log.h"
#include "notify.h"
#include "where.h"

#include <async_io/blocking.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The runtime's documented default for stack_size 0 (async_io/runtime.h):
 * the daemon is built with the same sanitizer flags as the library. */
#if defined(__SANITIZE_ADDRESS__)
#define RUNTIME_DEFAULT_STACK (256 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUNTIME_DEFAULT_STACK (256 * 1024)
#endif
#endif
#ifndef RUNTIME_DEFAULT_STACK
#define RUNTIME_DEFAULT_STACK (64 * 1024)
#endif

struct async_module_report {
    const struct async_module_host_api *api; /* first: see async_io/module.h */
    const struct asyncd_config *config;
    const char *module;                 /* its name: paths are below modules.NAME */
    struct asyncd_problems *problems;
    size_t count;                       /* problems reported through this report */
};

/* Handler names modules provide and routes need, gathered by one
 * asyncd_check_modules (set before its hooks run, which happens-before
 * their threads read it; one check at a time: the daemon's fiber or main). */
struct need {
    char *path;                         /* the full JSON path */
    char *name;
};

static struct handler_check {
    char **provided;
    size_t nprovided;
    struct need *needs;
    size_t nneeds;
} *gathering;

static void add_string(char ***v, size_t *n, const char *s)
{
    char **grown = realloc(*v, sizeof(**v) * (*n + 1));

    if (grown == NULL || (grown[*n] = strdup(s)) == NULL) {
        *v = grown != NULL ? grown : *v;
        return;
    }
    *v = grown;
    (*n)++;
}

void asyncd_host_provide_handler(async_module_report *report, const char *name)
{
    (void)report;
    if (gathering != NULL && name != NULL)
        add_string(&gathering->provided, &gathering->nprovided, name);
}

void asyncd_host_need_handler(async_module_report *report, const char *path, const char *name)
{
    struct need *grown;
    char full[1024];

    if (gathering == NULL || name == NULL || path == NULL)
        return;
    snprintf(full, sizeof(full), "modules.%s.%s", report->module, path);
    grown = realloc(gathering->needs, sizeof(*grown) * (gathering->nneeds + 1));
    if (grown == NULL)
        return;
    gathering->needs = grown;
    grown[gathering->nneeds].path = strdup(full);
    grown[gathering->nneeds].name = strdup(name);
    if (grown[gathering->nneeds].path != NULL && grown[gathering->nneeds].name != NULL)
        gathering->nneeds++;
}

void asyncd_host_vproblem(async_module_report *report, const char *path, const char *fmt,
                          va_list ap)
{
    char msg[1024], full[1024];

    if (report == NULL || fmt == NULL)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (path == NULL)
        path = "";
    /* "listen[1]" goes below the object as ".listen[1]"; "[0]" (a module
     * whose config were an array) as is */
    snprintf(full, sizeof(full), "modules.%s%s%s", report->module,
             path[0] == '\0' || path[0] == '[' ? "" : ".", path);
    asyncd_problem(report->problems, report->config, full, "%s", msg);
    report->count++;
}

void asyncd_host_vwarning(async_module_report *report, const char *path, const char *fmt,
                          va_list ap)
{
    char msg[1024], full[1024];
    int line = 1, col = 1;

    if (report == NULL || fmt == NULL)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (path == NULL)
        path = "";
    snprintf(full, sizeof(full), "modules.%s%s%s", report->module,
             path[0] == '\0' || path[0] == '[' ? "" : ".", path);
    if (report->config != NULL) {
        asyncd_where_find(report->config->where, full, &line, &col);
        asyncd_log(ASYNC_LOG_WARNING, "%s:%d:%d: %s: %s", report->config->file, line, col, full,
                   msg);
    } else {
        asyncd_log(ASYNC_LOG_WARNING, "%s: %s", full, msg);
    }
}

/* ---- running the hooks ---- */

struct job {
    const struct asyncd_config *c;
    const struct async_module *desc;
    const json_t *cfg;
    struct asyncd_problems *p;
    int rc;
};

static void *run_hook(void *arg)
{
    struct job *j = arg;
    struct async_module_report r = {&asyncd_host_api, j->c, j->desc->name, j->p, 0};
    char path[300];

    if (j->desc->validate != NULL) {
        j->rc = j->desc->validate(j->cfg, &r);
        if (j->rc != 0 && r.count == 0)
            async_module_problem(&r, "", "rejected by the module's validate hook");
        j->rc = r.count > 0 ? -1 : 0;
    } else if (j->desc->check != NULL) {
        char err[1024] = "";

        j->rc = j->desc->check(j->cfg, err, sizeof(err)) != 0 ? -1 : 0;
        if (j->rc != 0) {
            snprintf(path, sizeof(path), "modules.%s", j->desc->name);
            asyncd_problem(j->p, j->c, path, "%s", err[0] ? err : "rejected by the module's check");
        }
    }
    if (j->rc == 0 && gathering != NULL && j->desc->http_handlers != NULL)
        j->desc->http_handlers(j->cfg, &r);
    return NULL;
}

int asyncd_off_stack(async_fn fn, void *arg)
{
    if (async_blocking(fn, arg, NULL) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    fn(arg); /* not a fiber: this thread's stack is a thread's */
    return 0;
}

struct load_job {
    const char *file;
    struct asyncd_config *out;
    struct asyncd_problems *p;
    int rc;
};

static void *load_job(void *arg)
{
    struct load_job *j = arg;

    j->rc = asyncd_config_load(j->file, j->out, j->p);
    return NULL;
}

int asyncd_config_load_off_stack(const char *file, struct asyncd_config *out,
                                 struct asyncd_problems *p)
{
    struct load_job job = {file, out, p, -1};

    if (asyncd_off_stack(load_job, &job) != 0) {
        char *msg;

        memset(out, 0, sizeof(*out));
        if (asprintf(&msg, "%s: cannot read it off the daemon's stack: %s", file,
                     strerror(errno)) >= 0) {
            char **grown = realloc(p->msg, (p->n + 1) * sizeof(*grown));

            if (grown != NULL) {
                p->msg = grown;
                p->msg[p->n++] = msg;
            } else {
                free(msg);
            }
        }
        return -1;
    }
    return job.rc;
}

void asyncd_reload_rejected(const struct asyncd_problems *p, const char *stays)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        asyncd_log(ASYNC_LOG_ERROR, "%s", p->msg[i]);
    asyncd_log(ASYNC_LOG_ERROR, "reload rejected: %zu problem(s); %s", p->n, stays);
    asyncd_notify("READY=1\nSTATUS=reload rejected: %s", p->n > 0 ? p->msg[0] : "?");
}

int asyncd_module_validate(const struct asyncd_config *c, const struct async_module *desc,
                           const json_t *cfg, struct asyncd_problems *p)
{
    struct asyncd_problems own = {0};
    struct job j = {c, desc, cfg, p != NULL ? p : &own, 0};
    size_t i;

    if (desc->validate == NULL && desc->check == NULL && desc->http_handlers == NULL)
        return 0;
    /* A hook may use more stack than a fiber has, and may block (stat,
     * access). */
    if (asyncd_off_stack(run_hook, &j) != 0) {
        char path[300];

        snprintf(path, sizeof(path), "modules.%s", desc->name);
        asyncd_problem(j.p, c, path, "cannot run the module's check: %s", strerror(errno));
        j.rc = -1;
    }
    for (i = 0; i < own.n; i++)
        asyncd_log(ASYNC_LOG_ERROR, "%s", own.msg[i]);
    asyncd_problems_free(&own);
    return j.rc;
}

/* ---- names nobody declares ---- */

/* Optimal string alignment distance (a swap counts 1), for names short
 * enough to be names; larger than any threshold otherwise. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t d[33][33];

    if (la > 32 || lb > 32)
        return (size_t)-1;
    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++)
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;

            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static void unknown_name(const struct asyncd_config *c, const char *name,
                         const struct async_module *const *mods, size_t n,
                         struct asyncd_problems *p)
{
    char there[512] = "", guess[160] = "", path[512];
    size_t i, len = 0, best = 3; /* a guess is at most two edits away */

    for (i = 0; i < n; i++) {
        size_t d = distance(name, mods[i]->name);

        if (len < sizeof(there))
            len += (size_t)snprintf(there + len, sizeof(there) - len, "%s%s", i ? ", " : "",
                                    mods[i]->name);
        if (d < best) {
            best = d;
            snprintf(guess, sizeof(guess), "; did you mean '%s'?", mods[i]->name);
        }
    }
    snprintf(path, sizeof(path), "modules.%s", name);
    asyncd_problem(p, c, path, "no module named '%s' in %s (%s%s)%s", name, c->modules_dir,
                   n > 0 ? "modules there: " : "it holds none", there, guess);
}

/* A route naming a handler nobody provides is a warning, not an error: a
 * module may register names it did not declare (one built before
 * http_handlers existed), and the operator may add the provider later. */
static void warn_unprovided(const struct asyncd_config *c, struct handler_check *hc)
{
    size_t i, k;
    int line, col;

    for (i = 0; i < hc->nneeds; i++) {
        for (k = 0; k < hc->nprovided && strcmp(hc->provided[k], hc->needs[i].name) != 0; k++)
            ;
        if (k < hc->nprovided || asyncd_handler_provided(hc->needs[i].name))
            continue;
        line = col = 1;
        asyncd_where_find(c->where, hc->needs[i].path, &line, &col);
        asyncd_log(ASYNC_LOG_WARNING, "%s:%d:%d: %s: no module provides handler \"%s\" (its "
                   "requests will get 503)", c->file, line, col, hc->needs[i].path,
                   hc->needs[i].name);
    }
}

static void handler_check_free(struct handler_check *hc)
{
    size_t i;

    for (i = 0; i < hc->nprovided; i++)
        free(hc->provided[i]);
    for (i = 0; i < hc->nneeds; i++) {
        free(hc->needs[i].path);
        free(hc->needs[i].name);
    }
    free(hc->provided);
    free(hc->needs);
}

int asyncd_check_modules(const struct asyncd_config *c, const struct async_module *const *mods,
                         size_t n, struct asyncd_problems *p)
{
    struct handler_check hc = {0};
    size_t before = p->n, i;
    const char *name;
    json_t *m;

    for (i = 0; i < n; i++) {
        json_t *cfg;
        int enabled;

        cfg = asyncd_module_part(c, mods[i]->name, &enabled);
        if (cfg == NULL) {
            asyncd_problem(p, c, "modules", "out of memory");
            break;
        }
        if (!enabled) {
            json_decref(cfg);
            continue;
        }
        gathering = &hc;
        asyncd_module_validate(c, mods[i], cfg, p);
        gathering = NULL;
        json_decref(cfg);
    }
    if (p->n == before) /* the warnings of a config that is otherwise fine */
        warn_unprovided(c, &hc);
    handler_check_free(&hc);
    /* An unreadable folder was reported already (config.c); naming every
     * entry unknown on top would bury that one line. */
    if (c->modules_dir != NULL && access(c->modules_dir, R_OK | X_OK) == 0)
        json_object_foreach(c->modules, name, m) {
            for (i = 0; i < n && strcmp(mods[i]->name, name) != 0; i++)
                ;
            if (i == n)
                unknown_name(c, name, mods, n, p);
        }
    return p->n == before ? 0 : -1;
}

/* ---- asyncd -T ---- */

static const char *level_name(int level)
{
    switch (level) {
    case ASYNC_LOG_DEBUG: return "debug";
    case ASYNC_LOG_INFO: return "info";
    case ASYNC_LOG_NOTICE: return "notice";
    case ASYNC_LOG_WARNING: return "warning";
    default: return "error";
    }
}

static json_t *module_effective(const struct asyncd_config *c, const struct async_module *desc)
{
    json_t *cfg, *eff = NULL, *out;
    int enabled;

    cfg = asyncd_module_part(c, desc->name, &enabled);
    out = json_pack("{s:b,s:b}", "enabled", enabled, "optional",
                    asyncd_module_optional(c, desc->name));
    if (cfg == NULL || out == NULL)
        goto fail;
    /* the hook reads only configs its validate accepted: enabled ones */
    if (enabled && desc->effective_config != NULL)
        eff = desc->effective_config(cfg);
    if (json_object_update(out, eff != NULL ? eff : cfg) != 0)
        goto fail;
    json_decref(eff);
    json_decref(cfg);
    return out;
fail:
    json_decref(eff);
    json_decref(cfg);
    json_decref(out);
    return NULL;
}

json_t *asyncd_effective_config(const struct asyncd_config *c,
                                const struct async_module *const *mods, size_t n)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    json_t *root, *modules;
    size_t i;

    /* workers and stack_size as the runtime will take them on this machine */
    root = json_pack("{s:{s:I,s:I},s:I,s:s,s:I,s:I,s:I,s:s,s:b,s:{}}", "runtime", "workers",
                     (json_int_t)(c->workers != 0 ? c->workers : cpus > 0 ? (unsigned)cpus : 1),
                     "stack_size",
                     (json_int_t)(c->stack_size != 0 ? c->stack_size : RUNTIME_DEFAULT_STACK),
                     "processes", (json_int_t)c->processes, "modules_dir", c->modules_dir, "shutdown_timeout_ms",
                     (json_int_t)c->shutdown_timeout_ms, "drain_grace_ms",
                     (json_int_t)c->drain_grace_ms, "blocked_warn_ms",
                     (json_int_t)c->blocked_warn_ms, "log_level", level_name(c->log_level),
                     "strict_modules", c->strict_modules, "modules");
    modules = json_object_get(root, "modules");
    for (i = 0; root != NULL && i < n; i++)
        if (json_object_set_new(modules, mods[i]->name, module_effective(c, mods[i])) != 0) {
            json_decref(root);
            return NULL;
        }
    return root;
}
