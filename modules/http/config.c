/* modules/http/config.c — modules.http of asyncd.json.
 *
 * validate reports every problem by its JSON path (async_module_problem);
 * load then trusts what validate accepted, and effective_config fills in
 * every default for `asyncd -T`.  Relative paths resolve against asyncd's
 * working directory, which is the config file's folder. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
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
    "serve_hidden", "access_log_format", "precompressed", "metrics_path", "status_allow",
    "metrics_allow",
    /* virtual hosts (sites_config.c) */
    "servers", "headers", "locations", "error_pages",
};

/* Hop-by-hop and framing fields: the module writes these itself, and a
 * second Content-Length or Transfer-Encoding would let a client and a
 * proxy in front of us read two different responses. */
static const char *const framing[] = {
    "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE",
    "Trailer", "Proxy-Connection",
};

/* One validate call: its report, and how many problems went to it. */
struct check {
    async_module_report *rep;
    unsigned n;
    const char *prefix;         /* "servers[2]." inside a server block, else "" */
};

static void problem(struct check *ck, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct check *ck, const char *path, const char *fmt, ...)
{
    char msg[1024], full[1024];
    size_t pl = strlen(ck->prefix);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path[0] == '\0' && pl > 0)
        pl--; /* the block itself: no trailing '.' */
    snprintf(full, sizeof(full), "%.*s%s", (int)pl, ck->prefix, path);
    async_module_problem(ck->rep, full, "%s", msg);
    ck->n++;
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

/* A JSON string may hold "\u0000": jansson keeps its length, strlen not. */
static bool has_nul(const json_t *v)
{
    return strlen(json_string_value(v)) != json_string_length(v);
}

static bool is_path(const json_t *v)
{
    return json_is_string(v) && json_string_value(v)[0] == '/' && !has_ctl(json_string_value(v)) &&
           !has_nul(v);
}

/* An array of 1 to max non-empty strings; each bad element is reported.
 * Returns whether the array itself has that shape. */
static bool check_string_list(const json_t *v, const char *key, size_t max,
                              struct check *ck)
{
    const json_t *e;
    size_t i;

    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > max) {
        problem(ck, key, "must be an array of 1 to %zu strings", max);
        return false;
    }
    json_array_foreach(v, i, e) {
        char path[64];

        snprintf(path, sizeof(path), "%s[%zu]", key, i);
        if (!json_is_string(e) || json_string_length(e) == 0 || has_nul(e))
            problem(ck, path, "must be a non-empty string");
    }
    return true;
}

/* One listen entry given as an object: {"address": ..., "tls": ...}. */
static void check_listen_object(const json_t *e, const char *path, struct check *ck)
{
    const json_t *addr = json_object_get(e, "address"), *v;
    const char *key, *why;
    char sub[96];

    json_object_foreach((json_t *)e, key, v)
        if (strcmp(key, "address") != 0 && strcmp(key, "tls") != 0 && strcmp(key, "ktls") != 0) {
            snprintf(sub, sizeof(sub), "%s.%s", path, key);
            problem(ck, sub, "unknown key (a listen object has \"address\", \"tls\" and "
                    "\"ktls\")");
        }
    snprintf(sub, sizeof(sub), "%s.ktls", path);
    if ((v = json_object_get(e, "ktls")) != NULL && !json_is_boolean(v))
        problem(ck, sub, "must be true or false (kernel TLS for sending files)");
    else if (v != NULL && json_object_get(e, "tls") == NULL)
        problem(ck, sub, "needs \"tls\" beside it: kernel TLS is for HTTPS addresses");
    snprintf(sub, sizeof(sub), "%s.address", path);
    if (!json_is_string(addr) || json_string_length(addr) == 0 || has_nul(addr))
        problem(ck, addr == NULL ? path : sub, "needs \"address\": a \"host:port\" string");
    else if (async_address_parse(json_string_value(addr), NULL, 0, NULL, &why) != 0)
        problem(ck, sub, "\"%s\": %s", json_string_value(addr), why);
    snprintf(sub, sizeof(sub), "%s.tls", path);
    if ((v = json_object_get(e, "tls")) != NULL)
        ck->n += http_tls_check(v, sub, ck->rep);
}

static void check_listen(const json_t *v, struct check *ck)
{
    const json_t *e;
    const char *why;
    char path[32];
    size_t i;

    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > HTTP_MAX_LISTEN) {
        problem(ck, "listen", "must be an array of 1 to %d \"host:port\" strings or "
                "{\"address\": ..., \"tls\": ...} objects", HTTP_MAX_LISTEN);
        return;
    }
    json_array_foreach(v, i, e) {
        snprintf(path, sizeof(path), "listen[%zu]", i);
        if (json_is_object(e)) {
            check_listen_object(e, path, ck);
            continue;
        }
        if (!json_is_string(e) || json_string_length(e) == 0 || has_nul(e)) {
            problem(ck, path, "must be a non-empty string or an object");
            continue;
        }
        /* the parser bind uses, without binding or resolving anything */
        if (async_address_parse(json_string_value(e), NULL, 0, NULL, &why) != 0)
            problem(ck, path, "\"%s\": %s", json_string_value(e), why);
    }
}

/* Whether name was seen before in another case (JSON keeps "Server" and
 * "server" apart, HTTP does not): the earlier spelling in *twin.  seen
 * maps lower-cased names to the first spelling. */
static bool repeated(json_t *seen, const char *name, const char **twin)
{
    char *low = strdup(name), *q;
    const json_t *first;
    bool rep = false;

    if (low == NULL || seen == NULL) {
        free(low);
        return false;
    }
    for (q = low; *q != '\0'; q++)
        *q = (char)tolower((unsigned char)*q);
    if ((first = json_object_get(seen, low)) != NULL) {
        *twin = json_string_value(first);
        rep = true;
    } else {
        json_object_set_new(seen, low, json_string(name));
    }
    free(low);
    return rep;
}

static void check_headers(const json_t *v, const json_t *route_obj, size_t route,
                          struct check *ck)
{
    const char *name, *twin = NULL;
    const json_t *hv;
    json_t *seen;
    char path[512];
    size_t k;

    if (!json_is_object(v)) {
        snprintf(path, sizeof(path), "routes[%zu].headers", route);
        problem(ck, path, "must be an object of field names to string values");
        return;
    }
    seen = json_object();
    json_object_foreach((json_t *)v, name, hv) {
        snprintf(path, sizeof(path), "routes[%zu].headers.%s", route, name);
        if (!is_token(name)) {
            problem(ck, path, "not a field name (letters, digits and !#$%%&'*+-.^_`|~)");
            continue;
        }
        for (k = 0; k < sizeof(framing) / sizeof(framing[0]); k++)
            if (strcasecmp(name, framing[k]) == 0)
                break;
        if (k < sizeof(framing) / sizeof(framing[0]))
            problem(ck, path, "%s is hop-by-hop or framing: the server writes it itself",
                    framing[k]);
        else if (repeated(seen, name, &twin))
            problem(ck, path, "repeats routes[%zu].headers.%s (field names ignore case)", route,
                    twin);
        else if (strcasecmp(name, "Content-Type") == 0 &&
                 json_object_get(route_obj, "content_type") != NULL)
            problem(ck, path, "repeats routes[%zu].content_type", route);
        else if (!json_is_string(hv) || has_ctl(json_string_value(hv)) || has_nul(hv))
            problem(ck, path, "must be a string without control characters");
    }
    json_decref(seen);
}

/* Handler names as the daemon accepts them (async_module_add_http_handler). */
static bool is_handler_name(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n;

    if (s == NULL || has_nul(v) || (n = strlen(s)) == 0 || n > 64)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static void check_route(const json_t *r, size_t i, struct check *ck)
{
    const char *key;
    const json_t *v;
    bool handler, health;
    char path[512];

    snprintf(path, sizeof(path), "routes[%zu]", i);
    if (!json_is_object(r)) {
        problem(ck, path, "must be an object");
        return;
    }
    handler = json_object_get(r, "handler") != NULL;
    health = json_is_true(json_object_get(r, "health"));
    if ((json_object_get(r, "path") == NULL) == (json_object_get(r, "prefix") == NULL))
        problem(ck, path, "needs a \"path\" or a \"prefix\" (one of them)");
    if (json_object_get(r, "prefix") != NULL && !handler && !health)
        problem(ck, path, "a \"prefix\" route needs a \"handler\"");
    json_object_foreach((json_t *)r, key, v) {
        snprintf(path, sizeof(path), "routes[%zu].%s", i, key);
        if (strcmp(key, "path") == 0 || strcmp(key, "prefix") == 0) {
            if (!is_path(v))
                problem(ck, path, "must be a string starting with '/'");
            else if (health && strcmp(key, "prefix") == 0)
                problem(ck, path, "a \"health\" route answers one \"path\"");
        } else if (strcmp(key, "health") == 0) {
            if (!json_is_boolean(v))
                problem(ck, path, "must be true or false");
        } else if (health && (strcmp(key, "status") == 0 || strcmp(key, "content_type") == 0 ||
                              strcmp(key, "body") == 0 || strcmp(key, "handler") == 0)) {
            /* its answer says whether this instance takes requests */
            problem(ck, path, "a \"health\" route answers 200 or 503 itself");
        } else if (strcmp(key, "handler") == 0) {
            if (!is_handler_name(v))
                problem(ck, path, "must be a handler name (1 to 64 letters, digits, '_', '-', '.')");
            else if (ck->rep != NULL)
                async_module_need_handler(ck->rep, path, json_string_value(v));
        } else if (handler && (strcmp(key, "status") == 0 || strcmp(key, "content_type") == 0 ||
                               strcmp(key, "body") == 0 || strcmp(key, "headers") == 0)) {
            problem(ck, path, "a route with a \"handler\" has no fixed answer");
        } else if (strcmp(key, "status") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 200 || json_integer_value(v) > 599)
                problem(ck, path, "must be an integer from 200 to 599");
        } else if (strcmp(key, "content_type") == 0) {
            if (!json_is_string(v) || has_ctl(json_string_value(v)) || has_nul(v))
                problem(ck, path, "must be a string without control characters");
        } else if (strcmp(key, "body") == 0) {
            if (!json_is_string(v))
                problem(ck, path, "must be a string");
        } else if (strcmp(key, "headers") == 0) {
            check_headers(v, r, i, ck);
        } else {
            problem(ck, path, "unknown key");
        }
    }
}

static void check_routes(const json_t *v, struct check *ck)
{
    json_t *seen, *first;
    const json_t *r, *a;
    const char *kind;
    char path[64], key[4200];
    size_t i;

    if (!json_is_array(v)) {
        problem(ck, "routes", "must be an array of objects");
        return;
    }
    /* "path:/x" or "prefix:/x" -> the first route with it: a hash, not a
     * scan per route (20,000 routes took 7 s to check with one) */
    if ((seen = json_object()) == NULL) {
        problem(ck, "routes", "out of memory");
        return;
    }
    json_array_foreach(v, i, r) {
        check_route(r, i, ck);
        kind = json_object_get(r, "path") != NULL ? "path" : "prefix";
        if (!is_path(a = json_object_get(r, kind)) ||
            (size_t)snprintf(key, sizeof(key), "%s:%s", kind, json_string_value(a)) >= sizeof(key))
            continue;
        if ((first = json_object_get(seen, key)) != NULL) {
            snprintf(path, sizeof(path), "routes[%zu].%s", i, kind);
            problem(ck, path, "repeats routes[%lld].%s", (long long)json_integer_value(first), kind);
        } else if (json_object_set_new(seen, key, json_integer((json_int_t)i)) != 0) {
            problem(ck, "routes", "out of memory");
            break;
        }
    }
    json_decref(seen);
}

static void check_log(const json_t *v, struct check *ck)
{
    char *copy;
    int ok;

    if (json_is_false(v))
        return;
    if (!json_is_string(v) || json_string_length(v) == 0 || has_nul(v)) {
        problem(ck, "access_log", "must be a path, \"stderr\" or false");
        return;
    }
    if (strcmp(json_string_value(v), "stderr") == 0)
        return;
    if (access(json_string_value(v), F_OK) == 0) {
        ok = access(json_string_value(v), W_OK) == 0;
    } else {
        copy = strdup(json_string_value(v));
        ok = copy != NULL && access(dirname(copy), W_OK | X_OK) == 0;
        free(copy);
    }
    if (!ok)
        problem(ck, "access_log", "cannot write %s: %s", json_string_value(v), strerror(errno));
}

static void check_root(const json_t *v, struct check *ck)
{
    struct stat st;

    if (!json_is_string(v) || json_string_length(v) == 0 || has_nul(v))
        problem(ck, "root", "must be a non-empty string");
    else if (stat(json_string_value(v), &st) != 0)
        problem(ck, "root", "%s: %s", json_string_value(v), strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        problem(ck, "root", "%s: not a directory", json_string_value(v));
}

static void check_index(const json_t *v, struct check *ck)
{
    const json_t *name;
    char path[32];
    size_t i;

    if (!check_string_list(v, "index", 16, ck))
        return;
    json_array_foreach(v, i, name) {
        snprintf(path, sizeof(path), "index[%zu]", i);
        if (json_is_string(name) && strchr(json_string_value(name), '/') != NULL)
            problem(ck, path, "must be a file name, without '/'");
    }
}

/* status_allow, metrics_allow: arrays of addresses and CIDR prefixes,
 * each bad entry reported by its place. */
static void check_allow(const json_t *v, const char *key, struct check *ck)
{
    struct http_cidr cidr;
    const json_t *e;
    const char *why;
    char path[64];
    size_t i;

    if (!json_is_array(v)) {
        problem(ck, key, "must be an array of addresses and CIDR prefixes (\"127.0.0.1\", "
                "\"10.0.0.0/8\", \"::1\", \"fd00::/8\")");
        return;
    }
    json_array_foreach(v, i, e) {
        snprintf(path, sizeof(path), "%s[%zu]", key, i);
        if (!json_is_string(e) || has_nul(e))
            problem(ck, path, "must be a string: an address or a CIDR prefix");
        else if (http_cidr_parse(json_string_value(e), &cidr, &why) != 0)
            problem(ck, path, "\"%s\": %s", json_string_value(e), why);
    }
}

/* The keys of the status and metrics endpoints and of precompressed files. */
static void check_extras(const json_t *config, struct check *ck)
{
    const json_t *sp = json_object_get(config, "status_path"), *v;

    if ((v = json_object_get(config, "metrics_path")) != NULL && !is_path(v))
        problem(ck, "metrics_path", "must be a string starting with '/'");
    else if (v != NULL && is_path(sp) && strcmp(json_string_value(v), json_string_value(sp)) == 0)
        problem(ck, "metrics_path", "is status_path too: the two endpoints need two paths");
    if ((v = json_object_get(config, "status_allow")) != NULL)
        check_allow(v, "status_allow", ck);
    if ((v = json_object_get(config, "metrics_allow")) != NULL)
        check_allow(v, "metrics_allow", ck);
    if ((v = json_object_get(config, "precompressed")) != NULL && !json_is_boolean(v))
        problem(ck, "precompressed", "must be true or false");
}

const char *http_config_header_problem(const char *name, const json_t *value)
{
    static char why[128];
    size_t k;

    if (!is_token(name))
        return "not a field name (letters, digits and !#$%&'*+-.^_`|~)";
    for (k = 0; k < sizeof(framing) / sizeof(framing[0]); k++)
        if (strcasecmp(name, framing[k]) == 0) {
            snprintf(why, sizeof(why), "%s is hop-by-hop or framing: the server writes it itself",
                     framing[k]);
            return why;
        }
    if (!json_is_string(value) || has_ctl(json_string_value(value)) || has_nul(value))
        return "must be a string without control characters";
    return NULL;
}

/* The keys a server block shares with the top level, where present. */
static void validate_keys(const json_t *config, struct check *ck)
{
    const json_t *v;
    size_t i;

    if ((v = json_object_get(config, "listen")) != NULL)
        check_listen(v, ck);
    if ((v = json_object_get(config, "root")) != NULL)
        check_root(v, ck);
    if ((v = json_object_get(config, "index")) != NULL)
        check_index(v, ck);
    if ((v = json_object_get(config, "routes")) != NULL)
        check_routes(v, ck);
    if ((v = json_object_get(config, "status_path")) != NULL && !is_path(v))
        problem(ck, "status_path", "must be a string starting with '/'");
    if ((v = json_object_get(config, "access_log")) != NULL)
        check_log(v, ck);
    if ((v = json_object_get(config, "serve_hidden")) != NULL && !json_is_boolean(v))
        problem(ck, "serve_hidden", "must be true or false");
    check_extras(config, ck);
    if ((v = json_object_get(config, "access_log_format")) != NULL) {
        const char *bad;
        size_t n;

        if (!json_is_string(v) || has_nul(v) || has_ctl(json_string_value(v)) ||
            json_string_length(v) == 0)
            problem(ck, "access_log_format", "must be \"combined\", \"json\" or a template "
                    "with $variables");
        else if ((bad = http_log_unknown_variable(json_string_value(v), &n)) != NULL)
            problem(ck, "access_log_format", "no variable $%.*s (known: $remote_addr "
                    "$request $request_method $request_uri $status $body_bytes_sent "
                    "$request_time $host $server_name $time_iso8601 $time_local $http_NAME)",
                    (int)n, bad);
    }
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        v = json_object_get(config, limits[i].key);
        if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < limits[i].min ||
                          json_integer_value(v) > limits[i].max))
            problem(ck, limits[i].key, "must be an integer from %lld to %lld",
                    (long long)limits[i].min, (long long)limits[i].max);
    }
}

unsigned http_config_validate_server(const json_t *server, const char *prefix,
                                     async_module_report *report)
{
    struct check ck = {report, 0, prefix};

    validate_keys(server, &ck);
    return ck.n;
}

unsigned http_config_validate(const json_t *config, async_module_report *report)
{
    struct check ck_ = {report, 0, ""}, *ck = &ck_;
    const char *key;
    const json_t *v;
    size_t i;

    if (!json_is_object(config)) {
        problem(ck, "", "must be an object");
        return ck->n;
    }
    json_object_foreach((json_t *)config, key, v) {
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && strcmp(key, keys[i]) != 0; i++)
            ;
        if (i == sizeof(keys) / sizeof(keys[0]))
            problem(ck, key, "unknown key");
    }
    /* with "servers", each server may name its own */
    if (json_object_get(config, "listen") == NULL && json_object_get(config, "servers") == NULL)
        problem(ck, "", "needs \"listen\": an array of \"host:port\" strings");
    validate_keys(config, ck);
    return ck->n;
}

static char *dup_or_null(const json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static int load_route(const json_t *r, struct http_route *out)
{
    const json_t *v, *hv;
    const char *name;
    size_t n;

    out->path = dup_or_null(json_object_get(r, "path"));
    out->prefix = dup_or_null(json_object_get(r, "prefix"));
    out->prefix_len = out->prefix != NULL ? strlen(out->prefix) : 0;
    out->handler = dup_or_null(json_object_get(r, "handler"));
    out->health = json_is_true(json_object_get(r, "health"));
    if (out->path == NULL && out->prefix == NULL)
        return -1;
    v = json_object_get(r, "status");
    out->status = v != NULL ? (int)json_integer_value(v) : 200;
    out->content_type = dup_or_null(json_object_get(r, "content_type"));
    v = json_object_get(r, "body");
    out->body = strdup(v != NULL ? json_string_value(v) : "");
    out->body_len = v != NULL ? json_string_length(v) : 0;
    v = json_object_get(r, "headers");
    n = v != NULL ? json_object_size(v) : 0;
    out->hname = calloc(n + 1, sizeof(char *));
    out->hvalue = calloc(n + 1, sizeof(char *));
    if (out->body == NULL || out->hname == NULL || out->hvalue == NULL)
        return -1;
    json_object_foreach((json_t *)v, name, hv) {
        out->hname[out->nheaders] = strdup(name);
        out->hvalue[out->nheaders] = strdup(json_string_value(hv));
        if (out->hname[out->nheaders] == NULL || out->hvalue[out->nheaders] == NULL)
            return -1;
        out->nheaders++;
    }
    return 0;
}

/* An allow list that validate accepted; absent: loopback only. */
static int load_allow(const json_t *v, struct http_allow *a)
{
    const json_t *e;
    const char *why;
    size_t i;

    if (v == NULL)
        return http_allow_loopback(a);
    a->n = 0;
    if ((a->cidr = calloc(json_array_size(v) + 1, sizeof(*a->cidr))) == NULL)
        return -1;
    json_array_foreach(v, i, e)
        if (http_cidr_parse(json_string_value(e), &a->cidr[a->n], &why) == 0)
            a->n++;
    return 0;
}

static int load_extras(const json_t *config, struct http_config *c)
{
    c->precompressed = !json_is_false(json_object_get(config, "precompressed"));
    c->metrics_path = dup_or_null(json_object_get(config, "metrics_path"));
    return load_allow(json_object_get(config, "status_allow"), &c->status_allow) != 0 ||
           load_allow(json_object_get(config, "metrics_allow"), &c->metrics_allow) != 0 ? -1 : 0;
}

int http_config_load(const json_t *config, struct http_config *c)
{
    const json_t *v;
    size_t i;
    int64_t val[sizeof(limits) / sizeof(limits[0])];

    memset(c, 0, sizeof(*c));
    json_array_foreach(json_object_get(config, "listen"), i, v) {
        const json_t *tls = json_object_get(v, "tls");

        c->listen[c->nlisten] = strdup(json_string_value(json_is_object(v)
                                                             ? json_object_get(v, "address")
                                                             : v));
        if (c->listen[c->nlisten++] == NULL ||
            (tls != NULL && (c->tls[c->nlisten - 1] = http_tls_load(tls)) == NULL))
            return -1;
    }
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
    c->serve_hidden = json_is_true(json_object_get(config, "serve_hidden"));
    v = json_object_get(config, "access_log_format");
    c->log_format = strdup(v != NULL ? json_string_value(v) : "combined");
    if (c->log_format == NULL || load_extras(config, c) != 0)
        return -1;
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

/* What the descriptor limit allows: a connection costs one, and a tenth
 * of the limit stays for files, logs, listeners and the daemon.  Past it,
 * new connections get a 503 instead of an accept that waits for a
 * descriptor while the queue fills. */
long http_default_max_connections(void)
{
    struct rlimit rl;
    rlim_t n;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 100000;
    n = rl.rlim_cur - rl.rlim_cur / 10;
    return n < 1 ? 1 : n > 10000000 ? 10000000 : (long)n;
}

/* A route with every key: status 200, body "", headers {} (content_type
 * has no default: without it there is no Content-Type). */
static json_t *effective_route(const json_t *r)
{
    json_t *out = json_deep_copy(r);

    if (out == NULL || json_object_get(out, "handler") != NULL)
        return out;
    if (json_is_true(json_object_get(out, "health"))) {
        if (json_object_get(out, "headers") == NULL)
            json_object_set_new(out, "headers", json_object());
        return out;
    }
    if (json_object_get(out, "status") == NULL)
        json_object_set_new(out, "status", json_integer(200));
    if (json_object_get(out, "body") == NULL)
        json_object_set_new(out, "body", json_string(""));
    if (json_object_get(out, "headers") == NULL)
        json_object_set_new(out, "headers", json_object());
    return out;
}

json_t *http_config_effective(const json_t *config)
{
    json_t *out = json_deep_copy(config), *routes, *r;
    const json_t *v;
    size_t i;

    if (out == NULL)
        return NULL;
    /* root and status_path have no default: absent, they are off */
    if (json_object_get(out, "index") == NULL)
        json_object_set_new(out, "index", json_pack("[s]", "index.html"));
    routes = json_array();
    json_array_foreach(json_object_get(config, "routes"), i, v)
        if ((r = effective_route(v)) != NULL)
            json_array_append_new(routes, r);
    json_object_set_new(out, "routes", routes);
    if (json_object_get(out, "access_log") == NULL)
        json_object_set_new(out, "access_log", json_false());
    if (json_object_get(out, "serve_hidden") == NULL)
        json_object_set_new(out, "serve_hidden", json_false());
    if (json_object_get(out, "access_log_format") == NULL)
        json_object_set_new(out, "access_log_format", json_string("combined"));
    if (json_object_get(out, "precompressed") == NULL)
        json_object_set_new(out, "precompressed", json_true());
    /* metrics_path, like status_path, has no default: absent, it is off */
    if (json_object_get(out, "status_allow") == NULL)
        json_object_set_new(out, "status_allow", json_pack("[ss]", "127.0.0.0/8", "::1"));
    if (json_object_get(out, "metrics_allow") == NULL)
        json_object_set_new(out, "metrics_allow", json_pack("[ss]", "127.0.0.0/8", "::1"));
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        if (json_object_get(out, limits[i].key) == NULL)
            json_object_set_new(out, limits[i].key, json_integer(limits[i].def));
    /* what this process's descriptor limit gives; a service manager may
     * start the daemon with another (LimitNOFILE=) */
    if (!json_is_integer(json_object_get(config, "max_connections")))
        json_object_set_new(out, "max_connections", json_integer(http_default_max_connections()));
    return out;
}

void http_config_free(struct http_config *c)
{
    size_t i;

    for (i = 0; i < c->nlisten; i++) {
        free(c->listen[i]);
        http_tls_free(c->tls[i]);
    }
    free(c->root);
    for (i = 0; c->index != NULL && i < c->nindex; i++)
        free(c->index[i]);
    free(c->index);
    for (i = 0; c->routes != NULL && i < c->nroutes; i++) {
        struct http_route *rt = &c->routes[i];
        size_t k;

        for (k = 0; k < rt->nheaders; k++) {
            free(rt->hname[k]);
            free(rt->hvalue[k]);
        }
        free(rt->hname);
        free(rt->hvalue);
        free(rt->path);
        free(rt->prefix);
        free(rt->handler);
        free(rt->content_type);
        free(rt->body);
    }
    free(c->routes);
    free(c->status_path);
    free(c->access_log);
    free(c->log_format);
    free(c->metrics_path);
    http_allow_free(&c->status_allow);
    http_allow_free(&c->metrics_allow);
    memset(c, 0, sizeof(*c));
}
