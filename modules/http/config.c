/* modules/http/config.c — modules.http of asyncd.json.
 *
 * The check names the JSON path of the first problem it finds; load then
 * trusts what check accepted.  Relative paths resolve against asyncd's
 * working directory, which is the config file's folder. */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct limit {
    const char *key;
    int64_t min, max, def;
};

static const struct limit limits[] = {
    {"keepalive_timeout_ms", 0, 86400000, 75000},
    {"header_timeout_ms", 1, 3600000, 10000},
    {"body_timeout_ms", 1, 3600000, 10000},
    {"send_timeout_ms", 1, 3600000, 60000},
    {"open_file_cache_ms", 0, 3600000, 1000},
    {"max_header_bytes", 256, 1048576, 8192},
    {"max_body_bytes", 0, (int64_t)1 << 50, 1048576},
    {"max_connections", 1, 10000000, -1}, /* -1: from the descriptor limit */
    {"max_headers", 1, HTTP_MAX_HEADERS, HTTP_DEFAULT_MAX_HEADERS},
    {"lingering_time_ms", 0, 3600000, 30000},
    {"lingering_timeout_ms", 1, 3600000, 5000},
    {"lingering_max_bytes", 0, (int64_t)1 << 50, 64 << 20},
};

static const char *const keys[] = {
    "listen", "root", "index", "routes", "status_path", "access_log", "keepalive_timeout_ms",
    "header_timeout_ms", "body_timeout_ms", "send_timeout_ms", "open_file_cache_ms",
    "max_header_bytes",
    "max_body_bytes", "max_connections", "max_headers", "lingering_time_ms",
    "lingering_timeout_ms", "lingering_max_bytes",
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s) != NULL))
            return false;
    return true;
}

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return true;
    return false;
}

static bool is_path(const json_t *v)
{
    return json_is_string(v) && json_string_value(v)[0] == '/' && !has_ctl(json_string_value(v));
}

static int check_string_list(const json_t *v, const char *key, size_t max, char *err,
                             size_t errlen)
{
    const json_t *e;
    size_t i;

    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > max)
        return fail(err, errlen, "%s: must be an array of 1 to %zu strings", key, max);
    json_array_foreach(v, i, e)
        if (!json_is_string(e) || json_string_length(e) == 0)
            return fail(err, errlen, "%s[%zu]: must be a non-empty string", key, i);
    return 0;
}

static int check_route(const json_t *r, size_t i, char *err, size_t errlen)
{
    const char *key;
    const json_t *v;

    if (!json_is_object(r))
        return fail(err, errlen, "routes[%zu]: must be an object", i);
    json_object_foreach((json_t *)r, key, v) {
        if (strcmp(key, "path") == 0) {
            if (!is_path(v))
                return fail(err, errlen, "routes[%zu].path: must be a string starting with '/'",
                            i);
        } else if (strcmp(key, "status") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 200 ||
                json_integer_value(v) > 599)
                return fail(err, errlen, "routes[%zu].status: must be an integer from 200 to 599",
                            i);
        } else if (strcmp(key, "content_type") == 0 || strcmp(key, "body") == 0) {
            if (!json_is_string(v) || (key[0] == 'c' && has_ctl(json_string_value(v))))
                return fail(err, errlen, "routes[%zu].%s: must be a string", i, key);
        } else if (strcmp(key, "headers") == 0) {
            const char *name;
            const json_t *hv;

            if (!json_is_object(v))
                return fail(err, errlen, "routes[%zu].headers: must be an object", i);
            json_object_foreach((json_t *)v, name, hv)
                if (!is_token(name) || !json_is_string(hv) || has_ctl(json_string_value(hv)))
                    return fail(err, errlen,
                                "routes[%zu].headers.%s: must be a field name with a string "
                                "value without control characters", i, name);
        } else {
            return fail(err, errlen, "routes[%zu].%s: unknown key", i, key);
        }
    }
    if (json_object_get(r, "path") == NULL)
        return fail(err, errlen, "routes[%zu].path: missing", i);
    return 0;
}

static int check_routes(const json_t *v, char *err, size_t errlen)
{
    const json_t *r, *o;
    size_t i, j;

    if (!json_is_array(v))
        return fail(err, errlen, "routes: must be an array of objects");
    json_array_foreach(v, i, r) {
        if (check_route(r, i, err, errlen) != 0)
            return -1;
        for (j = 0; j < i; j++) {
            o = json_array_get(v, j);
            if (strcmp(json_string_value(json_object_get(o, "path")),
                       json_string_value(json_object_get(r, "path"))) == 0)
                return fail(err, errlen, "routes[%zu].path: repeats routes[%zu].path", i, j);
        }
    }
    return 0;
}

static int check_log(const json_t *v, char *err, size_t errlen)
{
    char *copy;
    int ok;

    if (json_is_false(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(err, errlen, "access_log: must be a path, \"stderr\" or false");
    if (strcmp(json_string_value(v), "stderr") == 0)
        return 0;
    if (access(json_string_value(v), F_OK) == 0) {
        ok = access(json_string_value(v), W_OK) == 0;
    } else {
        copy = strdup(json_string_value(v));
        ok = copy != NULL && access(dirname(copy), W_OK | X_OK) == 0;
        free(copy);
    }
    if (!ok)
        return fail(err, errlen, "access_log: cannot write %s: %s", json_string_value(v),
                    strerror(errno));
    return 0;
}

static int check_root(const json_t *v, char *err, size_t errlen)
{
    struct stat st;

    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(err, errlen, "root: must be a non-empty string");
    if (stat(json_string_value(v), &st) != 0)
        return fail(err, errlen, "root: %s: %s", json_string_value(v), strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(err, errlen, "root: %s: not a directory", json_string_value(v));
    return 0;
}

int http_config_check(const json_t *config, char *err, size_t errlen)
{
    const char *key;
    const json_t *v;
    size_t i;

    json_object_foreach((json_t *)config, key, v) {
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && strcmp(key, keys[i]) != 0; i++)
            ;
        if (i == sizeof(keys) / sizeof(keys[0]))
            return fail(err, errlen, "%s: unknown key", key);
    }
    if (check_string_list(json_object_get(config, "listen"), "listen", HTTP_MAX_LISTEN, err,
                          errlen) != 0)
        return -1;
    if ((v = json_object_get(config, "root")) != NULL && check_root(v, err, errlen) != 0)
        return -1;
    if ((v = json_object_get(config, "index")) != NULL) {
        if (check_string_list(v, "index", 16, err, errlen) != 0)
            return -1;
        const json_t *name;

        json_array_foreach(v, i, name)
            if (strchr(json_string_value(name), '/') != NULL)
                return fail(err, errlen, "index[%zu]: must be a file name, without '/'", i);
    }
    if ((v = json_object_get(config, "routes")) != NULL && check_routes(v, err, errlen) != 0)
        return -1;
    if ((v = json_object_get(config, "status_path")) != NULL && !is_path(v))
        return fail(err, errlen, "status_path: must be a string starting with '/'");
    if ((v = json_object_get(config, "access_log")) != NULL && check_log(v, err, errlen) != 0)
        return -1;
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        v = json_object_get(config, limits[i].key);
        if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < limits[i].min ||
                          json_integer_value(v) > limits[i].max))
            return fail(err, errlen, "%s: must be an integer from %lld to %lld", limits[i].key,
                        (long long)limits[i].min, (long long)limits[i].max);
    }
    return 0;
}

static char *dup_or_null(const json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static int load_route(const json_t *r, struct http_route *out)
{
    const json_t *v = json_object_get(r, "headers"), *hv;
    const char *name;
    char *h = NULL;
    size_t hlen = 0;
    FILE *f;

    out->path = strdup(json_string_value(json_object_get(r, "path")));
    v = json_object_get(r, "status");
    out->status = v != NULL ? (int)json_integer_value(v) : 200;
    out->content_type = dup_or_null(json_object_get(r, "content_type"));
    v = json_object_get(r, "body");
    out->body = strdup(v != NULL ? json_string_value(v) : "");
    out->body_len = v != NULL ? json_string_length(v) : 0;
    f = open_memstream(&h, &hlen);
    if (f == NULL)
        return -1;
    json_object_foreach((json_t *)json_object_get(r, "headers"), name, hv)
        fprintf(f, "%s: %s\r\n", name, json_string_value(hv));
    fclose(f);
    out->headers = h;
    return out->path != NULL && out->body != NULL && h != NULL ? 0 : -1;
}

int http_config_load(const json_t *config, struct http_config *c)
{
    const json_t *v;
    size_t i;
    int64_t val[sizeof(limits) / sizeof(limits[0])];

    memset(c, 0, sizeof(*c));
    json_array_foreach(json_object_get(config, "listen"), i, v)
        c->listen[c->nlisten++] = strdup(json_string_value(v));
    c->root = dup_or_null(json_object_get(config, "root"));
    v = json_object_get(config, "index");
    c->nindex = v != NULL ? json_array_size(v) : 1;
    c->index = calloc(c->nindex, sizeof(char *));
    if (c->index == NULL)
        return -1;
    for (i = 0; i < c->nindex; i++)
        c->index[i] = strdup(v != NULL ? json_string_value(json_array_get(v, i)) : "index.html");
    v = json_object_get(config, "routes");
    c->nroutes = v != NULL ? json_array_size(v) : 0;
    c->routes = calloc(c->nroutes + 1, sizeof(*c->routes));
    if (c->routes == NULL)
        return -1;
    for (i = 0; i < c->nroutes; i++)
        if (load_route(json_array_get(v, i), &c->routes[i]) != 0)
            return -1;
    c->status_path = dup_or_null(json_object_get(config, "status_path"));
    c->access_log = dup_or_null(json_object_get(config, "access_log"));
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        v = json_object_get(config, limits[i].key);
        val[i] = v != NULL ? json_integer_value(v) : limits[i].def;
    }
    c->keepalive_timeout_ms = val[0];
    c->header_timeout_ms = val[1];
    c->body_timeout_ms = val[2];
    c->send_timeout_ms = val[3];
    c->open_file_cache_ms = val[4];
    c->max_header_bytes = (size_t)val[5];
    c->max_body_bytes = (uint64_t)val[6];
    c->max_connections = (long)val[7];
    c->max_headers = (unsigned)val[8];
    c->lingering_time_ms = val[9];
    c->lingering_timeout_ms = val[10];
    c->lingering_max_bytes = (uint64_t)val[11];
    return 0;
}

void http_config_free(struct http_config *c)
{
    size_t i;

    for (i = 0; i < c->nlisten; i++)
        free(c->listen[i]);
    free(c->root);
    for (i = 0; c->index != NULL && i < c->nindex; i++)
        free(c->index[i]);
    free(c->index);
    for (i = 0; c->routes != NULL && i < c->nroutes; i++) {
        free(c->routes[i].path);
        free(c->routes[i].content_type);
        free(c->routes[i].body);
        free(c->routes[i].headers);
    }
    free(c->routes);
    free(c->status_path);
    free(c->access_log);
    memset(c, 0, sizeof(*c));
}
