#include "config.h"

#include "log.h"
#include "where.h"
#include "worker.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SHUTDOWN_MS 10000
#define DEFAULT_BLOCKED_WARN_MS 200

/* ---- problems ---- */

static void add(struct asyncd_problems *p, char *msg)
{
    char **grown = realloc(p->msg, sizeof(*grown) * (p->n + 1));

    if (grown == NULL) {
        free(msg);
        return;
    }
    p->msg = grown;
    p->msg[p->n++] = msg;
}

void asyncd_problem(struct asyncd_problems *p, const struct asyncd_config *c, const char *path,
                    const char *fmt, ...)
{
    char text[1024], *msg;
    int line = 1, col = 1;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    asyncd_where_find(c->where, path, &line, &col);
    if (asprintf(&msg, "%s:%d:%d: %s: %s", c->file, line, col, path[0] ? path : "(top)", text) >= 0)
        add(p, msg);
}

void asyncd_problems_free(struct asyncd_problems *p)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        free(p->msg[i]);
    free(p->msg);
    p->msg = NULL;
    p->n = 0;
}

/* ---- validation ---- */

static char *read_file(const char *file, int *err)
{
    /* a worker process runs what its master checked, never the file */
    int fd = asyncd_worker_number() != 0 ? asyncd_worker_take_config() : -1;
    FILE *f = asyncd_worker_number() != 0 ? (fd >= 0 ? fdopen(fd, "rb") : NULL)
                                          : fopen(file, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        *err = errno;
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    do {
        if (len + 4096 + 1 > cap) {
            char *grown = realloc(buf, cap = cap * 2 + 8192);

            if (grown == NULL) {
                free(buf);
                fclose(f);
                *err = ENOMEM;
                return NULL;
            }
            buf = grown;
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* An integer member in [min, max], or the default when absent. */
static int64_t get_int(const struct asyncd_config *c, struct asyncd_problems *p, json_t *obj,
                       const char *key, const char *path, int64_t min, int64_t max, int64_t dflt)
{
    json_t *v = json_object_get(obj, key);
    json_int_t i;

    if (v == NULL)
        return dflt;
    if (!json_is_integer(v)) {
        asyncd_problem(p, c, path, "must be an integer");
        return dflt;
    }
    i = json_integer_value(v);
    if (i < min || i > max) {
        asyncd_problem(p, c, path, "%lld is out of range [%lld, %lld]", (long long)i,
                       (long long)min, (long long)max);
        return dflt;
    }
    return i;
}

static void unknown_keys(const struct asyncd_config *c, struct asyncd_problems *p, json_t *obj,
                         const char *prefix, const char *const *known)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v) {
        size_t i;
        char path[512];

        for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
            ;
        if (known[i] != NULL)
            continue;
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", key);
        asyncd_problem(p, c, path, "unknown key");
    }
}

static char *resolve(const char *file, const char *rel)
{
    char *copy, *dir, *out = NULL;

    if (rel[0] == '/')
        return strdup(rel);
    copy = strdup(file);
    if (copy == NULL)
        return NULL;
    dir = dirname(copy);
    if (asprintf(&out, "%s/%s", dir, rel) < 0)
        out = NULL;
    free(copy);
    return out;
}

/* "runtime": the worker count and the stack size. */
static void validate_runtime(struct asyncd_config *c, struct asyncd_problems *p)
{
    static const char *const keys[] = {"workers", "stack_size", NULL};
    json_t *runtime = json_object_get(c->root, "runtime");

    if (runtime == NULL)
        return;
    if (!json_is_object(runtime)) {
        asyncd_problem(p, c, "runtime", "must be an object");
        return;
    }
    unknown_keys(c, p, runtime, "runtime", keys);
    c->workers = (unsigned)get_int(c, p, runtime, "workers", "runtime.workers", 0, 1024, 0);
    c->stack_size = (size_t)get_int(c, p, runtime, "stack_size", "runtime.stack_size", 0, 1 << 30, 0);
    if (c->stack_size != 0 && c->stack_size < 16384) {
        asyncd_problem(p, c, "runtime.stack_size", "must be 0 (default) or at least 16384");
        c->stack_size = 0;
    }
}

/* The daemon's own top-level settings. */
static void validate_daemon(struct asyncd_config *c, struct asyncd_problems *p)
{
    json_t *dir = json_object_get(c->root, "modules_dir");
    json_t *level = json_object_get(c->root, "log_level");
    json_t *strict = json_object_get(c->root, "strict_modules");

    c->shutdown_timeout_ms = get_int(c, p, c->root, "shutdown_timeout_ms", "shutdown_timeout_ms",
                                     0, 3600000, DEFAULT_SHUTDOWN_MS);
    c->drain_grace_ms = get_int(c, p, c->root, "drain_grace_ms", "drain_grace_ms", 0, 3600000, 0);
    c->processes = (unsigned)get_int(c, p, c->root, "processes", "processes", 1,
                                     ASYNCD_MAX_PROCESSES, 1);
    c->blocked_warn_ms = get_int(c, p, c->root, "blocked_warn_ms", "blocked_warn_ms", 1, 3600000,
                                 DEFAULT_BLOCKED_WARN_MS);
    c->log_level = ASYNC_LOG_INFO;
    if (level != NULL && (!json_is_string(level) ||
                          (c->log_level = asyncd_log_parse_level(json_string_value(level))) < 0)) {
        asyncd_problem(p, c, "log_level", "must be one of \"debug\", \"info\", \"notice\", "
                                          "\"warning\", \"error\"");
        c->log_level = ASYNC_LOG_INFO;
    }
    c->strict_modules = true;
    if (strict != NULL && !json_is_boolean(strict))
        asyncd_problem(p, c, "strict_modules", "must be true or false");
    else if (strict != NULL)
        c->strict_modules = json_is_true(strict);
    if (dir != NULL && (!json_is_string(dir) || json_string_length(dir) == 0))
        asyncd_problem(p, c, "modules_dir", "must be a non-empty string");
    c->modules_dir = resolve(c->file, dir != NULL && json_is_string(dir) && json_string_length(dir)
                                          ? json_string_value(dir) : "modules");
    if (c->modules_dir != NULL && access(c->modules_dir, R_OK | X_OK) != 0)
        asyncd_problem(p, c, "modules_dir", "cannot read %s: %s", c->modules_dir, strerror(errno));
}

/* "modules": an object per module; of its keys the daemon reads only its
 * own ("enabled", "optional"), which the module never sees (modules.c
 * takes them out). */
static void validate_modules(struct asyncd_config *c, struct asyncd_problems *p)
{
    const char *name;
    json_t *m;

    c->modules = json_object_get(c->root, "modules");
    if (c->modules != NULL && !json_is_object(c->modules)) {
        asyncd_problem(p, c, "modules", "must be an object of module objects");
        c->modules = NULL;
    }
    json_object_foreach(c->modules, name, m) {
        static const char *const own[] = {"enabled", "optional"};
        char path[512];
        size_t i;

        snprintf(path, sizeof(path), "modules.%s", name);
        if (!json_is_object(m)) {
            asyncd_problem(p, c, path, "must be an object");
            continue;
        }
        for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
            json_t *v = json_object_get(m, own[i]);

            snprintf(path, sizeof(path), "modules.%s.%s", name, own[i]);
            if (v != NULL && !json_is_boolean(v))
                asyncd_problem(p, c, path, "must be true or false");
        }
    }
}

static void validate(struct asyncd_config *c, struct asyncd_problems *p)
{
    static const char *const top[] = {"runtime", "modules_dir", "shutdown_timeout_ms",
                                      "drain_grace_ms", "log_level", "blocked_warn_ms",
                                      "strict_modules", "processes", "modules", NULL};

    unknown_keys(c, p, c->root, "", top);
    validate_runtime(c, p);
    validate_daemon(c, p);
    validate_modules(c, p);
}

int asyncd_config_load(const char *file, struct asyncd_config *c, struct asyncd_problems *p)
{
    size_t before = p->n, deep;
    json_error_t jerr;
    int err = 0;

    memset(c, 0, sizeof(*c));
    c->strict_modules = true; /* the safe side, whatever fails below */
    c->file = strdup(file);
    c->text = read_file(file, &err);
    if (c->text == NULL) {
        char *msg;

        if (asprintf(&msg, "%s: cannot read: %s", file, strerror(err)) >= 0)
            add(p, msg);
        return -1;
    }
    /* before anything recursive reads it, on a fiber's stack at reload */
    if ((deep = asyncd_json_too_deep(c->text, ASYNCD_MAX_DEPTH)) != (size_t)-1) {
        char *msg;
        int line, col;

        asyncd_where_offset(c->text, deep, &line, &col);
        if (asprintf(&msg, "%s:%d:%d: nested deeper than %d objects and arrays", file, line,
                     col, ASYNCD_MAX_DEPTH) >= 0)
            add(p, msg);
        return -1;
    }
    c->root = json_loads(c->text, JSON_REJECT_DUPLICATES, &jerr);
    if (c->root == NULL) {
        char *msg;

        if (asprintf(&msg, "%s:%d:%d: invalid JSON: %s", file, jerr.line, jerr.column, jerr.text) >= 0)
            add(p, msg);
        return -1;
    }
    c->where = asyncd_where_new(c->text); /* NULL (no memory): problems are placed at 1:1 */
    if (!json_is_object(c->root)) {
        asyncd_problem(p, c, "", "the top level must be an object");
        return -1;
    }
    validate(c, p);
    return p->n == before ? 0 : -1;
}

void asyncd_config_free(struct asyncd_config *c)
{
    json_decref(c->root);
    free(c->file);
    free(c->text);
    asyncd_where_free(c->where);
    free(c->modules_dir);
    memset(c, 0, sizeof(*c));
}

json_t *asyncd_module_config(const struct asyncd_config *c, const char *name, int *enabled)
{
    json_t *m = c->modules != NULL ? json_object_get(c->modules, name) : NULL;
    json_t *e = m != NULL ? json_object_get(m, "enabled") : NULL;

    /* A module without a config object runs with an empty one: drop a
     * .so into the directory and it starts. */
    *enabled = m == NULL || e == NULL || json_is_true(e);
    return m;
}

json_t *asyncd_module_part(const struct asyncd_config *c, const char *name, int *enabled)
{
    json_t *own = asyncd_module_config(c, name, enabled);
    json_t *cfg = own != NULL ? json_deep_copy(own) : json_object();

    if (cfg != NULL) {
        json_object_del(cfg, "enabled");
        json_object_del(cfg, "optional");
    }
    return cfg;
}

bool asyncd_module_optional(const struct asyncd_config *c, const char *name)
{
    json_t *m = c->modules != NULL ? json_object_get(c->modules, name) : NULL;

    return m != NULL && json_is_true(json_object_get(m, "optional"));
}
