/* modules/http/sites_config.c — the config of virtual hosts.
 *
 * "servers": [ {...}, ... ] holds server blocks; a config without it is one
 * server made of the top level, as before.  A server's config is the top
 * level's keys with its own on top (http_sites_server_config), so a root,
 * an index or an access_log at the top is every server's unless it names
 * its own; timeouts and limits are the engine's, one for all, and only the
 * top level may set them.  What a block adds — names, default, headers,
 * locations, error_pages — is checked and read here; the keys it shares
 * with the top level are config.c's. */
#include "http.h"
#include "sites.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_NAME 253

/* The keys of a server block. */
static const char *const server_keys[] = {
    "names", "default", "listen", "root", "index", "routes", "status_path", "access_log",
    "serve_hidden", "open_file_cache_ms", "headers", "locations", "error_pages",
};

struct report {
    async_module_report *rep;
    unsigned n;
};

static void problem(struct report *r, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct report *r, const char *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    async_module_problem(r->rep, path, "%s", msg);
    r->n++;
}

/* A host name as the tables keep it: lower case, without one trailing
 * dot; "*.example.org" stays a wildcard.  NULL when it is fine, else why
 * not. */
static const char *normalize_name(const char *in, char *out)
{
    size_t n = strlen(in), i, label = 0;
    bool wild = n > 2 && in[0] == '*' && in[1] == '.';

    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > MAX_NAME)
        return "must be 1 to 253 characters";
    if (in[0] == '[') { /* an IPv6 literal, as Host carries it */
        for (i = 1; i < n - 1; i++)
            if (strchr("0123456789abcdefABCDEF:.", in[i]) == NULL)
                return "not an IPv6 address in brackets";
        if (in[n - 1] != ']' || n < 3)
            return "not an IPv6 address in brackets";
    } else {
        for (i = wild ? 2 : 0; i < n; i++) {
            unsigned char c = (unsigned char)in[i];

            if (c >= 0x80)
                return "an internationalised name goes in its punycode (xn--) form";
            if (c == ':')
                return "a name has no port: it matches whatever the port";
            if (c == '*')
                return "a wildcard is \"*.\" at the start only";
            if (c == '.') {
                if (label == 0)
                    return "has an empty label";
                label = 0;
                continue;
            }
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_'))
                return "may hold letters, digits, '-', '_' and '.' only";
            label++;
        }
        if (label == 0)
            return "has an empty label";
    }
    for (i = 0; i < n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
    out[n] = '\0';
    return NULL;
}

static void check_header_object(const json_t *v, const char *path, struct report *r)
{
    const char *name, *why;
    const json_t *hv;
    char p[512];

    if (!json_is_object(v)) {
        problem(r, path, "must be an object of field names to string values");
        return;
    }
    json_object_foreach((json_t *)v, name, hv) {
        snprintf(p, sizeof(p), "%s.%s", path, name);
        if ((why = http_config_header_problem(name, hv)) != NULL)
            problem(r, p, "%s", why);
    }
}

static void check_locations(const json_t *v, const char *prefix, struct report *r)
{
    const json_t *loc, *e;
    const char *key;
    char path[512], kp[600];
    json_t *seen = json_object();
    size_t i;

    snprintf(path, sizeof(path), "%slocations", prefix);
    if (!json_is_array(v)) {
        problem(r, path, "must be an array of {\"prefix\": \"/...\", \"headers\": {...}}");
        json_decref(seen);
        return;
    }
    json_array_foreach(v, i, loc) {
        snprintf(path, sizeof(path), "%slocations[%zu]", prefix, i);
        if (!json_is_object(loc)) {
            problem(r, path, "must be an object");
            continue;
        }
        e = json_object_get(loc, "prefix");
        if (e == NULL)
            problem(r, path, "needs a \"prefix\"");
        json_object_foreach((json_t *)loc, key, e) {
            snprintf(kp, sizeof(kp), "%s.%s", path, key);
            if (strcmp(key, "prefix") == 0) {
                if (!json_is_string(e) || json_string_value(e)[0] != '/')
                    problem(r, kp, "must be a path prefix starting with '/'");
                else if (json_object_get(seen, json_string_value(e)) != NULL)
                    problem(r, kp, "repeats locations[%lld].prefix",
                            (long long)json_integer_value(json_object_get(seen,
                                                                          json_string_value(e))));
                else
                    json_object_set_new(seen, json_string_value(e), json_integer((json_int_t)i));
            } else if (strcmp(key, "headers") == 0) {
                check_header_object(e, kp, r);
            } else if (strcmp(key, "always") == 0) {
                if (!json_is_boolean(e))
                    problem(r, kp, "must be true or false");
            } else {
                problem(r, kp, "unknown key");
            }
        }
    }
    json_decref(seen);
}

/* "404", "4xx" or "5xx": the code (404) or the class (4); 0 if neither. */
static int page_code(const char *k)
{
    if (strlen(k) != 3 || k[0] < '4' || k[0] > '5')
        return 0;
    if (strcmp(k + 1, "xx") == 0)
        return k[0] - '0';
    if (k[1] < '0' || k[1] > '9' || k[2] < '0' || k[2] > '9')
        return 0;
    return atoi(k);
}

/* An error page must be a file beneath root: no "." or ".." segment,
 * and, resolved, inside the resolved root (a symlink out is refused). */
static void check_page(const json_t *v, const char *path, const char *root, struct report *r)
{
    char full[PATH_MAX], real[PATH_MAX], realroot[PATH_MAX];
    const char *s = json_string_value(v), *p;
    struct stat st;
    size_t rl;

    if (!json_is_string(v) || s[0] != '/') {
        problem(r, path, "must be a path beneath the root, starting with '/'");
        return;
    }
    for (p = s; (p = strstr(p, "/.")) != NULL; p++)
        if (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))) {
            problem(r, path, "\"%s\" is outside the root (no \".\" or \"..\" segments)", s);
            return;
        }
    if (root == NULL) {
        problem(r, path, "error pages come from the server's root, and it has none");
        return;
    }
    snprintf(full, sizeof(full), "%s%s", root, s);
    if (realpath(root, realroot) == NULL)
        return; /* the root's own problem, reported there */
    if (realpath(full, real) == NULL || stat(real, &st) != 0) {
        problem(r, path, "%s: %s", full, strerror(errno));
        return;
    }
    rl = strlen(realroot);
    if (strncmp(real, realroot, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
        problem(r, path, "\"%s\" is outside the root %s (it resolves to %s)", s, root, real);
        return;
    }
    if (!S_ISREG(st.st_mode))
        problem(r, path, "%s: not a regular file", full);
}

static void check_pages(const json_t *v, const char *prefix, const char *root,
                        struct report *r)
{
    const char *key;
    const json_t *e;
    char path[512];

    snprintf(path, sizeof(path), "%serror_pages", prefix);
    if (!json_is_object(v)) {
        problem(r, path, "must be an object: {\"404\": \"/404.html\", \"5xx\": \"/5xx.html\"}");
        return;
    }
    json_object_foreach((json_t *)v, key, e) {
        snprintf(path, sizeof(path), "%serror_pages.%s", prefix, key);
        if (page_code(key) == 0)
            problem(r, path, "not a status from 400 to 599, \"4xx\" or \"5xx\"");
        else
            check_page(e, path, root, r);
    }
}

/* What a server (or the flat top level, prefix "") adds. */
static void check_extras(const json_t *obj, const char *prefix, const char *root,
                         struct report *r)
{
    const json_t *v;
    char path[512];

    if ((v = json_object_get(obj, "headers")) != NULL) {
        snprintf(path, sizeof(path), "%sheaders", prefix);
        check_header_object(v, path, r);
    }
    if ((v = json_object_get(obj, "locations")) != NULL)
        check_locations(v, prefix, r);
    if ((v = json_object_get(obj, "error_pages")) != NULL)
        check_pages(v, prefix, root, r);
}

static const char *root_of(const json_t *top, const json_t *server)
{
    const json_t *v = json_object_get(server, "root");

    if (v == NULL)
        v = json_object_get(top, "root");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A listen entry's address: the string, or an object's "address" (HTTPS). */
static const char *addr_of(const json_t *a)
{
    return json_string_value(json_is_object(a) ? json_object_get(a, "address") : a);
}

static const json_t *listen_of(const json_t *top, const json_t *server)
{
    const json_t *v = json_object_get(server, "listen");

    return v != NULL ? v : json_object_get(top, "listen");
}

static void check_names(const json_t *v, const char *prefix, struct report *r)
{
    char path[512], name[MAX_NAME + 1];
    const char *why;
    const json_t *e;
    size_t i;

    snprintf(path, sizeof(path), "%snames", prefix);
    if (!json_is_array(v) || json_array_size(v) == 0) {
        problem(r, path, "must be an array of host names (\"example.com\", \"*.example.org\")");
        return;
    }
    json_array_foreach(v, i, e) {
        snprintf(path, sizeof(path), "%snames[%zu]", prefix, i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e))
            problem(r, path, "must be a host name");
        else if ((why = normalize_name(json_string_value(e), name)) != NULL)
            problem(r, path, "\"%s\": %s", json_string_value(e), why);
    }
}

/* One server block: its keys, its names, its additions. */
static void check_server(const json_t *top, const json_t *s, size_t i, size_t count,
                         struct report *r)
{
    char prefix[64], path[128];
    const char *key;
    const json_t *v;
    size_t k;

    snprintf(prefix, sizeof(prefix), "servers[%zu].", i);
    snprintf(path, sizeof(path), "servers[%zu]", i);
    if (!json_is_object(s)) {
        problem(r, path, "must be an object");
        return;
    }
    json_object_foreach((json_t *)s, key, v) {
        for (k = 0; k < sizeof(server_keys) / sizeof(server_keys[0]); k++)
            if (strcmp(key, server_keys[k]) == 0)
                break;
        if (k < sizeof(server_keys) / sizeof(server_keys[0]))
            continue;
        snprintf(path, sizeof(path), "%s%s", prefix, key);
        problem(r, path, "unknown key in a server (timeouts, limits and access_log_format are "
                "the engine's: the top level sets them, once for every server)");
    }
    r->n += http_config_validate_server(s, prefix, r->rep);
    if (listen_of(top, s) == NULL) {
        snprintf(path, sizeof(path), "servers[%zu]", i);
        problem(r, path, "needs \"listen\" (here or at the top level)");
    }
    v = json_object_get(s, "default");
    if (v != NULL && !json_is_boolean(v)) {
        snprintf(path, sizeof(path), "%sdefault", prefix);
        problem(r, path, "must be true or false");
    }
    if ((v = json_object_get(s, "names")) != NULL) {
        check_names(v, prefix, r);
    } else if (count > 1 && !json_is_true(json_object_get(s, "default"))) {
        snprintf(path, sizeof(path), "servers[%zu]", i);
        problem(r, path, "needs \"names\" (only a \"default\": true server may go without)");
    }
    check_extras(s, prefix, root_of(top, s), r);
}

/* Across servers: a name twice on one address, two defaults on one
 * address, too many addresses. */
static void check_across(const json_t *top, const json_t *servers, struct report *r)
{
    json_t *names = json_object(), *defaults = json_object(), *addrs = json_object();
    char key[600], path[128], name[MAX_NAME + 1];
    const json_t *s, *a, *n, *first;
    size_t i, j, k;

    json_array_foreach(servers, i, s) {
        const json_t *listen = listen_of(top, s);

        if (!json_is_object(s) || !json_is_array(listen))
            continue;
        json_array_foreach(listen, j, a) {
            const char *addr = addr_of(a);

            if (addr == NULL)
                continue;
            json_object_set_new(addrs, addr, json_true());
            if (json_is_true(json_object_get(s, "default"))) {
                if ((first = json_object_get(defaults, addr)) != NULL) {
                    snprintf(path, sizeof(path), "servers[%zu].default", i);
                    problem(r, path, "servers[%lld] is the default on %s already",
                            (long long)json_integer_value(first), addr);
                } else {
                    json_object_set_new(defaults, addr,
                                        json_integer((json_int_t)i));
                }
            }
            json_array_foreach(json_object_get(s, "names"), k, n) {
                if (!json_is_string(n) || normalize_name(json_string_value(n), name) != NULL)
                    continue;
                snprintf(key, sizeof(key), "%s %s", addr, name);
                if ((first = json_object_get(names, key)) != NULL &&
                    json_integer_value(first) != (json_int_t)i) {
                    snprintf(path, sizeof(path), "servers[%zu].names[%zu]", i, k);
                    problem(r, path, "\"%s\" is servers[%lld]'s already, on %s",
                            json_string_value(n), (long long)json_integer_value(first),
                            addr);
                } else if (first == NULL) {
                    json_object_set_new(names, key, json_integer((json_int_t)i));
                }
            }
        }
    }
    if (json_object_size(addrs) > HTTP_MAX_LISTEN)
        problem(r, "servers", "the servers listen on %zu addresses; at most %d",
                json_object_size(addrs), HTTP_MAX_LISTEN);
    json_decref(names);
    json_decref(defaults);
    json_decref(addrs);
}

/* Server i of config (NULL for a flat config: the top level alone). */
static const json_t *server_at(const json_t *config, size_t i)
{
    return json_array_get(json_object_get(config, "servers"), i);
}

/* A server's first listen entry for addr, and its index in *j; NULL if
 * it does not listen there. */
static const json_t *entry_for(const json_t *listen, const char *addr, size_t *j)
{
    const json_t *a;
    const char *s;
    size_t i;

    json_array_foreach(listen, i, a)
        if ((s = addr_of(a)) != NULL && strcmp(s, addr) == 0) {
            *j = i;
            return a;
        }
    return NULL;
}

/* The default server on addr: the one marked, else the first that listens
 * there (sites.c's rule); n if none. */
static size_t default_on(const json_t *config, const char *addr)
{
    size_t n = http_sites_count(config), i, j, first = n;

    for (i = 0; i < n; i++) {
        const json_t *s = server_at(config, i);

        if (entry_for(listen_of(config, s), addr, &j) == NULL)
            continue;
        if (json_is_true(json_object_get(s, "default")))
            return i;
        if (first == n)
            first = i;
    }
    return first;
}

/* The path of server i's listen entry j ("listen[j]" when it is the top
 * level's). */
static void entry_path(char *out, size_t len, const json_t *config, size_t i, size_t j)
{
    if (json_object_get(server_at(config, i), "listen") != NULL)
        snprintf(out, len, "servers[%zu].listen[%zu]", i, j);
    else
        snprintf(out, len, "listen[%zu]", j);
}

/* HTTPS across servers: every entry of an address is TLS or none is (one
 * socket speaks one protocol), and the default server of an HTTPS
 * address has a certificate of its own, which "tls": true elsewhere
 * borrows. */
static void check_tls(const json_t *config, struct report *r)
{
    json_t *first = json_object(), *seen = json_object();
    size_t n = http_sites_count(config), i, j, d;
    char path[128], other[160];
    const json_t *a, *f;
    const char *addr;

    for (i = 0; i < n; i++) {
        const json_t *listen = listen_of(config, server_at(config, i));

        if (!json_is_array(listen))
            continue;
        json_array_foreach(listen, j, a) {
            bool tls = json_object_get(a, "tls") != NULL;

            if ((addr = addr_of(a)) == NULL)
                continue;
            entry_path(path, sizeof(path), config, i, j);
            if ((f = json_object_get(first, addr)) == NULL) {
                json_object_set_new(first, addr, json_pack("{s:s, s:b}", "path", path, "tls", tls));
                continue;
            }
            if (json_is_true(json_object_get(f, "tls")) == tls ||
                json_object_get(seen, path) != NULL)
                continue;
            json_object_set_new(seen, path, json_true());
            snprintf(other, sizeof(other), "%s", json_string_value(json_object_get(f, "path")));
            if (tls)
                problem(r, path, "%s is plain HTTP in %s; one address speaks one protocol (give "
                        "that entry a \"tls\" too, or use another address)", addr, other);
            else
                problem(r, path, "%s is HTTPS in %s; one address speaks one protocol (make this "
                        "entry {\"address\": \"%s\", \"tls\": ...}: its own certificate, or "
                        "true for the default server's)", addr, other, addr);
        }
    }
    json_object_foreach(first, addr, f) {
        const json_t *e;

        if (!json_is_true(json_object_get(f, "tls")) || (d = default_on(config, addr)) == n ||
            (e = entry_for(listen_of(config, server_at(config, d)), addr, &j)) == NULL ||
            !json_is_true(json_object_get(e, "tls")))
            continue;
        entry_path(path, sizeof(path), config, d, j);
        snprintf(other, sizeof(other), "%s.tls", path);
        problem(r, other, "true borrows the certificate of the default server on %s, and this "
                "is it (%s): it needs {\"cert\": FILE, \"key\": FILE}", addr,
                n > 1 ? "the one marked, else the first there" : "the only server");
    }
    json_decref(first);
    json_decref(seen);
}

unsigned http_sites_validate(const json_t *config, async_module_report *report)
{
    struct report r = {report, 0};
    const json_t *servers = json_object_get(config, "servers"), *s;
    size_t i;

    check_extras(config, "", root_of(config, NULL), &r);
    if (servers == NULL) {
        check_tls(config, &r);
        return r.n;
    }
    if (!json_is_array(servers) || json_array_size(servers) == 0) {
        problem(&r, "servers", "must be an array of server objects");
        return r.n;
    }
    json_array_foreach(servers, i, s)
        check_server(config, s, i, json_array_size(servers), &r);
    check_across(config, servers, &r);
    check_tls(config, &r);
    return r.n;
}

/* What a server block may hold that out (a server's config, or the top
 * level) leaves out, at its default. */
static void effective_fill(json_t *out)
{
    json_t *locs = json_object_get(out, "locations"), *loc;
    size_t i;

    if (json_object_get(out, "headers") == NULL)
        json_object_set_new(out, "headers", json_object());
    if (json_object_get(out, "error_pages") == NULL)
        json_object_set_new(out, "error_pages", json_object());
    if (locs == NULL)
        json_object_set_new(out, "locations", json_array());
    json_array_foreach(locs, i, loc) {
        if (json_object_get(loc, "headers") == NULL)
            json_object_set_new(loc, "headers", json_object());
        if (json_object_get(loc, "always") == NULL)
            json_object_set_new(loc, "always", json_false());
    }
}

/* Server block i in effect: every key a block may hold, from its merged
 * config with every default, "default" false unless marked ("names"
 * stays absent when it was: only a default may go without).  NULL when
 * out of memory. */
static json_t *effective_server(const json_t *config, size_t i)
{
    json_t *merged = http_sites_server_config(config, i); /* no "servers": no recursion */
    json_t *full = merged != NULL ? http_config_effective(merged) : NULL;
    json_t *out = full != NULL ? json_object() : NULL, *v;
    size_t k;

    json_decref(merged);
    if (out == NULL) {
        json_decref(full);
        return NULL;
    }
    effective_fill(full);
    for (k = 0; k < sizeof(server_keys) / sizeof(server_keys[0]); k++)
        if ((v = json_object_get(full, server_keys[k])) != NULL)
            json_object_set(out, server_keys[k], v);
    if (json_object_get(out, "default") == NULL)
        json_object_set_new(out, "default", json_false());
    json_decref(full);
    return out;
}

json_t *http_sites_effective(const json_t *config)
{
    json_t *out = http_config_effective(config), *servers, *s;
    size_t i, n = http_sites_count(config);

    if (out == NULL)
        return NULL;
    effective_fill(out);
    if (json_object_get(config, "servers") == NULL)
        return out;
    /* each block written out whole: what it inherits, and every default */
    servers = json_array();
    for (i = 0; servers != NULL && i < n; i++)
        if ((s = effective_server(config, i)) == NULL || json_array_append_new(servers, s) != 0) {
            json_decref(servers);
            servers = NULL;
        }
    if (servers == NULL) {
        json_decref(out);
        return NULL;
    }
    json_object_set_new(out, "servers", servers);
    return out;
}

size_t http_sites_count(const json_t *config)
{
    const json_t *servers = json_object_get(config, "servers");

    return servers != NULL ? json_array_size(servers) : 1;
}

json_t *http_sites_server_config(const json_t *config, size_t i)
{
    json_t *out = json_deep_copy(config);
    const json_t *s = json_array_get(json_object_get(config, "servers"), i);

    if (out == NULL || s == NULL)
        return out;
    json_object_del(out, "servers");
    if (json_object_update(out, (json_t *)s) != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Server s's entry e on an HTTPS address serves its names with its
 * certificates (or the default's): 0, or -1 (ENOMEM). */
static int add_server(struct http_tls *t, const json_t *s, const json_t *e)
{
    const json_t *v = json_object_get(s, "names");
    size_t n = json_array_size(v), k;
    char **names = calloc(n + 1, sizeof(char *));
    int rc = -1;

    if (names == NULL)
        return -1;
    for (k = 0; k < n; k++) {
        if ((names[k] = malloc(MAX_NAME + 1)) == NULL)
            goto out;
        normalize_name(json_string_value(json_array_get(v, k)), names[k]); /* checked */
    }
    rc = http_tls_add_server(t, json_object_get(e, "tls"), names, n);
out:
    for (k = 0; k < n; k++)
        free(names[k]);
    free(names);
    return rc;
}

/* The certificates of the HTTPS address addr: the default server's (tls),
 * then every server's there for its names.  NULL when out of memory. */
static struct http_tls *tls_of(const json_t *config, const char *addr, const json_t *tls)
{
    struct http_tls *t = http_tls_load(tls);
    size_t n = http_sites_count(config), i, j;
    const json_t *s, *e;

    for (i = 0; t != NULL && i < n; i++) {
        s = server_at(config, i);
        e = entry_for(listen_of(config, s), addr, &j);
        if (e != NULL && json_object_get(e, "tls") != NULL && add_server(t, s, e) != 0)
            goto fail;
    }
    if (t != NULL && http_tls_index(t) == 0)
        return t;
fail:
    http_tls_free(t);
    return NULL;
}

int http_sites_listen(const json_t *config, struct http_config *c)
{
    size_t n = http_sites_count(config), i, j, k, d;

    for (i = 0; i < n; i++) {
        const json_t *listen = listen_of(config, server_at(config, i)), *a;

        json_array_foreach(listen, j, a) {
            const char *addr = addr_of(a);

            if (addr == NULL)
                continue;
            for (k = 0; k < c->nlisten && strcmp(c->listen[k], addr) != 0; k++)
                ;
            if (k < c->nlisten || c->nlisten == HTTP_MAX_LISTEN)
                continue;
            if ((c->listen[c->nlisten] = strdup(addr)) == NULL)
                return -1;
            c->nlisten++;
        }
    }
    /* an address is HTTPS when its default server's entry says so (the
     * check made every server there agree); its "ktls" too */
    for (k = 0; k < c->nlisten; k++) {
        const json_t *e, *tls;

        if ((d = default_on(config, c->listen[k])) == n ||
            (e = entry_for(listen_of(config, server_at(config, d)), c->listen[k], &j)) == NULL ||
            (tls = json_object_get(e, "tls")) == NULL)
            continue;
        if ((c->tls[k] = tls_of(config, c->listen[k], tls)) == NULL)
            return -1;
        http_tls_set_ktls(c->tls[k], json_is_true(json_object_get(e, "ktls")));
    }
    return 0;
}

static int load_headers(const json_t *v, struct http_header_list *h)
{
    const char *name;
    const json_t *e;

    h->n = 0;
    h->name = calloc(json_object_size(v) + 1, sizeof(char *));
    h->value = calloc(json_object_size(v) + 1, sizeof(char *));
    if (h->name == NULL || h->value == NULL)
        return -1;
    json_object_foreach((json_t *)v, name, e) {
        h->name[h->n] = strdup(name);
        h->value[h->n] = strdup(json_string_value(e));
        if (h->name[h->n] == NULL || h->value[h->n] == NULL)
            return -1;
        h->n++;
    }
    return 0;
}

static void free_headers(struct http_header_list *h)
{
    size_t i;

    for (i = 0; h->name != NULL && i < h->n; i++) {
        free(h->name[i]);
        free(h->value[i]);
    }
    free(h->name);
    free(h->value);
}

static int by_length_down(const void *a, const void *b)
{
    const struct http_location *x = a, *y = b;

    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static int load_locations(const json_t *v, struct http_site_cfg *s)
{
    const json_t *loc;
    size_t i;

    s->loc = calloc(json_array_size(v) + 1, sizeof(*s->loc));
    if (s->loc == NULL)
        return -1;
    json_array_foreach(v, i, loc) {
        struct http_location *l = &s->loc[s->nloc++];

        l->prefix = strdup(json_string_value(json_object_get(loc, "prefix")));
        if (l->prefix == NULL || load_headers(json_object_get(loc, "headers"), &l->headers) != 0)
            return -1;
        l->len = strlen(l->prefix);
        l->always = json_is_true(json_object_get(loc, "always"));
    }
    /* the first that matches is then the longest */
    qsort(s->loc, s->nloc, sizeof(*s->loc), by_length_down);
    return 0;
}

int http_site_cfg_load(const json_t *server, struct http_site_cfg *s)
{
    const json_t *v, *e;
    const char *key;
    size_t i;

    memset(s, 0, sizeof(*s));
    s->is_default = json_is_true(json_object_get(server, "default"));
    v = json_object_get(server, "names");
    s->names = calloc(json_array_size(v) + 1, sizeof(char *));
    if (s->names == NULL)
        return -1;
    json_array_foreach(v, i, e) {
        if ((s->names[s->nnames] = malloc(MAX_NAME + 1)) == NULL)
            return -1;
        normalize_name(json_string_value(e), s->names[s->nnames++]);
    }
    if (load_headers(json_object_get(server, "headers"), &s->headers) != 0 ||
        load_locations(json_object_get(server, "locations"), s) != 0)
        return -1;
    v = json_object_get(server, "error_pages");
    s->pages = calloc(json_object_size(v) + 1, sizeof(*s->pages));
    if (s->pages == NULL)
        return -1;
    json_object_foreach((json_t *)v, key, e) {
        s->pages[s->npages].code = page_code(key);
        if ((s->pages[s->npages].path = strdup(json_string_value(e))) == NULL)
            return -1;
        s->npages++;
    }
    return 0;
}

void http_site_cfg_free(struct http_site_cfg *s)
{
    size_t i;

    for (i = 0; s->names != NULL && i < s->nnames; i++)
        free(s->names[i]);
    free(s->names);
    free_headers(&s->headers);
    for (i = 0; s->loc != NULL && i < s->nloc; i++) {
        free(s->loc[i].prefix);
        free_headers(&s->loc[i].headers);
    }
    free(s->loc);
    for (i = 0; s->pages != NULL && i < s->npages; i++)
        free(s->pages[i].path);
    free(s->pages);
    memset(s, 0, sizeof(*s));
}
