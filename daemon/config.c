#include "config.h"

#include "log.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SHUTDOWN_MS 10000

/* ---- where a JSON path sits in the text ---- */

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Skips a JSON string at c->p, returning its raw contents (escapes kept). */
static void skip_string(struct cursor *c, const char **s, size_t *len)
{
    const char *start = ++c->p;

    while (c->p < c->end && *c->p != '"')
        c->p += *c->p == '\\' ? 2 : 1;
    *s = start;
    *len = (size_t)(c->p - start);
    if (c->p < c->end)
        c->p++;
}

/* Paths name members by key and array elements by index, "a.b[2].c".  A
 * key may itself hold '.' or '[' (a header named "X.Y"): a member matches
 * when its key is a prefix of the path followed by the path's end, '.' or
 * '[', so every reading is tried and the text decides.  What follows a
 * step says what the next must be: after '.' a member of an object, after
 * '[' an element of an array (so "runtime[1" is not read as the member
 * "[1" of runtime). */
#define STEP_MEMBER 1
#define STEP_INDEX 2

struct found {
    const char *at;     /* where the path, or its longest matched prefix, starts */
    int depth;          /* steps matched there */
    bool exact;         /* the whole path */
};

static void note(struct found *f, const char *at, const char *rest, int depth)
{
    bool exact = *rest == '\0';

    if (!f->exact && (exact || depth > f->depth)) {
        f->at = at;
        f->depth = depth;
        f->exact = exact;
    }
}

/* What rest (the path after a step) asks of the next step, and rest
 * past a '.'. */
static const char *next_step(const char *rest, int *kind)
{
    *kind = *rest == '[' ? STEP_INDEX : STEP_MEMBER;
    return *rest == '.' ? rest + 1 : rest;
}

/* The path after the member key[0..len) when it starts with that key. */
static const char *after_key(const char *path, const char *key, size_t len, int *kind)
{
    if (strnlen(path, len) < len || memcmp(path, key, len) != 0)
        return NULL;
    if (path[len] != '\0' && path[len] != '.' && path[len] != '[')
        return NULL;
    return next_step(path + len, kind);
}

/* The path after "[i]" when it starts with that index. */
static const char *after_index(const char *path, size_t i, int *kind)
{
    size_t n = 0;
    const char *p = path + 1;

    if (path[0] != '[' || *p < '0' || *p > '9')
        return NULL;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((n = n * 10 + (size_t)(*p - '0')) > i)
            return NULL;
    if (*p != ']' || n != i || (p[1] != '\0' && p[1] != '.' && p[1] != '['))
        return NULL;
    return next_step(p + 1, kind);
}

/* Walks one value; rest is what remains of the path below it (NULL: the
 * value is off the path), kind the STEP_* it may take, depth the steps
 * matched so far.  The text is valid JSON (jansson parsed it), so the
 * scanner can be trusting. */
static void walk(struct cursor *c, const char *rest, int kind, int depth, struct found *f)
{
    skip_ws(c);
    if (c->p >= c->end)
        return;
    if (*c->p == '{') {
        c->p++;
        for (;;) {
            const char *key, *at, *next;
            size_t len;
            int k = 0;

            skip_ws(c);
            if (c->p >= c->end || *c->p == '}') {
                c->p++;
                return;
            }
            at = c->p;
            skip_string(c, &key, &len);
            next = rest != NULL && (kind & STEP_MEMBER) ? after_key(rest, key, len, &k) : NULL;
            if (next != NULL)
                note(f, at, next, depth + 1);
            skip_ws(c);
            c->p++; /* ':' */
            walk(c, next != NULL && *next != '\0' ? next : NULL, k, depth + 1, f);
            skip_ws(c);
            if (c->p < c->end && *c->p == ',')
                c->p++;
        }
    } else if (*c->p == '[') {
        size_t i;

        c->p++;
        for (i = 0;; i++) {
            const char *next;
            int k = 0;

            skip_ws(c);
            if (c->p >= c->end || *c->p == ']') {
                c->p++;
                return;
            }
            next = rest != NULL && (kind & STEP_INDEX) ? after_index(rest, i, &k) : NULL;
            if (next != NULL)
                note(f, c->p, next, depth + 1);
            walk(c, next != NULL && *next != '\0' ? next : NULL, k, depth + 1, f);
            skip_ws(c);
            if (c->p < c->end && *c->p == ',')
                c->p++;
        }
    } else if (*c->p == '"') {
        const char *s;
        size_t len;

        skip_string(c, &s, &len);
    } else {
        while (c->p < c->end && strchr(",]} \t\r\n", *c->p) == NULL)
            c->p++;
    }
}

/* The line and column of path's member key (or array element); of its
 * longest prefix found when the path names something absent ("a missing
 * key" points at the object that lacks it); of the file's start when
 * nothing matches. */
static void locate(const char *text, const char *path, int *line, int *col)
{
    struct cursor c = {text, text + strlen(text)};
    struct found f = {NULL, 0, false};
    const char *q;

    if (path[0] != '\0')
        walk(&c, path, STEP_MEMBER | STEP_INDEX, 0, &f);
    if (f.at == NULL)
        f.at = text;
    *line = 1;
    *col = 1;
    for (q = text; q < f.at; q++) {
        if (*q == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

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
    if (c->text != NULL)
        locate(c->text, path, &line, &col);
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
    FILE *f = fopen(file, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        *err = errno;
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

static void validate(struct asyncd_config *c, struct asyncd_problems *p)
{
    static const char *const top[] = {"runtime", "modules_dir", "shutdown_timeout_ms", "log_level",
                                      "modules", NULL};
    static const char *const rt[] = {"workers", "stack_size", NULL};
    json_t *runtime = json_object_get(c->root, "runtime");
    json_t *dir = json_object_get(c->root, "modules_dir");
    json_t *level = json_object_get(c->root, "log_level");
    const char *name;
    json_t *m;

    unknown_keys(c, p, c->root, "", top);
    if (runtime != NULL && !json_is_object(runtime)) {
        asyncd_problem(p, c, "runtime", "must be an object");
    } else if (runtime != NULL) {
        unknown_keys(c, p, runtime, "runtime", rt);
        c->workers = (unsigned)get_int(c, p, runtime, "workers", "runtime.workers", 0, 1024, 0);
        c->stack_size = (size_t)get_int(c, p, runtime, "stack_size", "runtime.stack_size", 0,
                                        1 << 30, 0);
        if (c->stack_size != 0 && c->stack_size < 16384) {
            asyncd_problem(p, c, "runtime.stack_size", "must be 0 (default) or at least 16384");
            c->stack_size = 0;
        }
    }
    c->shutdown_timeout_ms = get_int(c, p, c->root, "shutdown_timeout_ms", "shutdown_timeout_ms",
                                     0, 3600000, DEFAULT_SHUTDOWN_MS);
    c->log_level = ASYNC_LOG_INFO;
    if (level != NULL && (!json_is_string(level) ||
                          (c->log_level = asyncd_log_parse_level(json_string_value(level))) < 0)) {
        asyncd_problem(p, c, "log_level", "must be one of \"debug\", \"info\", \"notice\", "
                                          "\"warning\", \"error\"");
        c->log_level = ASYNC_LOG_INFO;
    }
    if (dir != NULL && (!json_is_string(dir) || json_string_length(dir) == 0))
        asyncd_problem(p, c, "modules_dir", "must be a non-empty string");
    c->modules_dir = resolve(c->file, dir != NULL && json_is_string(dir) && json_string_length(dir)
                                          ? json_string_value(dir) : "modules");
    if (c->modules_dir != NULL && access(c->modules_dir, R_OK | X_OK) != 0)
        asyncd_problem(p, c, "modules_dir", "cannot read %s: %s", c->modules_dir, strerror(errno));
    c->modules = json_object_get(c->root, "modules");
    if (c->modules != NULL && !json_is_object(c->modules)) {
        asyncd_problem(p, c, "modules", "must be an object of module objects");
        c->modules = NULL;
    }
    json_object_foreach(c->modules, name, m) {
        char path[512];
        json_t *enabled;

        snprintf(path, sizeof(path), "modules.%s", name);
        if (!json_is_object(m)) {
            asyncd_problem(p, c, path, "must be an object");
            continue;
        }
        enabled = json_object_get(m, "enabled");
        snprintf(path, sizeof(path), "modules.%s.enabled", name);
        if (enabled != NULL && !json_is_boolean(enabled))
            asyncd_problem(p, c, path, "must be true or false");
    }
}

int asyncd_config_load(const char *file, struct asyncd_config *c, struct asyncd_problems *p)
{
    size_t before = p->n;
    json_error_t jerr;
    int err = 0;

    memset(c, 0, sizeof(*c));
    c->file = strdup(file);
    c->text = read_file(file, &err);
    if (c->text == NULL) {
        char *msg;

        if (asprintf(&msg, "%s: cannot read: %s", file, strerror(err)) >= 0)
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
