/* kv — an HTTP key-value store that loses nothing it acknowledged.
 *
 *   "kv": { "file": "kv.log", "sync_interval_ms": 100, "max_value_bytes": 1048576 }
 *
 * It registers one HTTP handler, named "kv", which the http module's
 * config routes with {"prefix": "/kv/", "handler": "kv"}.  The key is what
 * follows the first "/kv/" of the request's path (percent-decoded, with
 * "." and ".." resolved and slashes merged by the engine, so "a//b" and
 * "a/b" are one key):
 *
 *   PUT /kv/KEY      body = value (up to max_value_bytes, else 413): 204
 *                    with the new ETag, sent once the change reached
 *                    write(2) on the log (store.h says what that survives)
 *   GET /kv/KEY      200 with the value and its ETag; 404 (HEAD alike)
 *   DELETE /kv/KEY   204; 404
 *   GET /kv/         the keys as a JSON array, sorted; ?prefix=P keeps
 *                    those starting with P (percent-decoded)
 *   If-Match on PUT and DELETE: compare-and-set on the ETag ("*": the key
 *   exists); 412 when it does not hold.  Other methods: 405 with Allow.
 *
 * Stopping (SIGTERM, a reload, disabling): new requests get 503 with
 * Retry-After: 1, the ones inside the handler finish, then the log is
 * written out and fsynced before run returns.
 *
 * Threads: the handler runs on the http connections' fibers, on every
 * worker at once; `state` below is shared by them and run. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the build defines it for modules; the unit tests may not */
#endif
#include "store.h"

#include <async_io.h>
#include <async_io/http.h>
#include <async_io/module.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_FILE "kv.log"
#define DEFAULT_SYNC_MS 100
#define DEFAULT_MAX_VALUE 1048576
#define MAX_SYNC_MS 60000
#define MAX_MAX_VALUE (1LL << 30)
#define INFLIGHT_SLOTS 64

/* The module's state lives in its own data, not on run's stack: the code
 * (and so this) stays loaded until no request is inside the handler.
 * The daemon withdraws the handler and waits for the requests inside it
 * before it cancels the module, but that wait ends at its shutdown
 * timeout; the counters below keep a request still running then from
 * finding its store closed under it.  `store` is set by run before it registers and is
 * read by handlers only between their in-flight increment and decrement:
 * run sets `closing` and then waits for every counter to reach 0 before
 * it closes the store (both sides seq_cst: a handler either sees
 * `closing` or is counted).  Counters are per worker, on lines of their
 * own, so requests on different workers do not share a cache line. */
static struct {
    async_module_host *host;
    kv_store *store;
    size_t max_value;
    atomic_bool closing;
    struct {
        atomic_long n;
        char pad[64 - sizeof(atomic_long)];
    } inflight[INFLIGHT_SLOTS];
} state;

/* ---- config ---- */

static const char *const keys[] = {"file", "sync_interval_ms", "max_value_bytes"};

static bool known(const char *key)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

static int check_int(const json_t *config, const char *key, long long min, long long max,
                     async_module_report *rep)
{
    const json_t *v = json_object_get(config, key);

    if (v == NULL || (json_is_integer(v) && json_integer_value(v) >= min &&
                      json_integer_value(v) <= max))
        return 0;
    async_module_problem(rep, key, "must be an integer from %lld to %lld", min, max);
    return 1;
}

static int kv_validate(const json_t *config, async_module_report *rep)
{
    const json_t *v;
    const char *key;
    int n = 0;

    if (!json_is_object(config)) {
        async_module_problem(rep, "", "must be an object");
        return 1;
    }
    json_object_foreach((json_t *)config, key, v) {
        if (!known(key) && strcmp(key, "enabled") != 0) {
            async_module_problem(rep, key, "unknown key (known: file, sync_interval_ms, "
                                 "max_value_bytes)");
            n++;
        }
    }
    v = json_object_get(config, "file");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 ||
                      strlen(json_string_value(v)) != json_string_length(v))) {
        async_module_problem(rep, "file", "must be a non-empty path without NUL");
        n++;
    }
    n += check_int(config, "sync_interval_ms", 1, MAX_SYNC_MS, rep);
    n += check_int(config, "max_value_bytes", 0, MAX_MAX_VALUE, rep);
    return n;
}

static long long int_or(const json_t *config, const char *key, long long def)
{
    const json_t *v = json_object_get(config, key);

    return json_is_integer(v) ? json_integer_value(v) : def;
}

static const char *file_of(const json_t *config)
{
    const json_t *v = json_object_get(config, "file");

    return json_is_string(v) ? json_string_value(v) : DEFAULT_FILE;
}

static json_t *kv_effective(const json_t *config)
{
    return json_pack("{s:s, s:I, s:I}", "file", file_of(config), "sync_interval_ms",
                     (json_int_t)int_or(config, "sync_interval_ms", DEFAULT_SYNC_MS),
                     "max_value_bytes",
                     (json_int_t)int_or(config, "max_value_bytes", DEFAULT_MAX_VALUE));
}

/* ---- answers ---- */

static int answer(async_http_request *req, int status, const char *text)
{
    return async_http_respond(req, status, "text/plain", text, strlen(text));
}

/* A store failure (-1 with errno) as a response. */
static int failure(async_http_request *req, const char *what)
{
    char msg[128];

    if (errno == ECANCELED || errno == ETIMEDOUT)
        return -1; /* the connection is going: the engine ends it */
    if (errno == EINVAL)
        return answer(req, 400, "bad key: 1 to 4096 bytes\n");
    snprintf(msg, sizeof(msg), "%s failed: %s\n", what, strerror(errno));
    if (errno == ENOMEM)
        async_http_add_header(req, "Retry-After", "1");
    return answer(req, errno == ENOMEM ? 503 : 500, msg);
}

static void set_etag(async_http_request *req, uint64_t version)
{
    char etag[32];

    snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
    async_http_add_header(req, "ETag", etag);
}

/* If-Match (RFC 9110 13.1.1) into a condition: "*", or a list of entity
 * tags.  Weak tags and tags that are not ours never match (strong
 * comparison), so they stand for version 0, which no value has. */
static void parse_if_match(const char *h, struct kv_cond *c)
{
    *c = (struct kv_cond){.kind = KV_ALWAYS};
    if (h == NULL)
        return;
    while (*h == ' ' || *h == '\t')
        h++;
    if (h[0] == '*') {
        c->kind = KV_IF_EXISTS;
        return;
    }
    c->kind = KV_IF_VERSION;
    while (*h != '\0' && c->n < KV_MAX_IF_MATCH) {
        uint64_t v = 0;
        bool weak = false, digits = false;
        const char *p;

        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        if (*h == '\0')
            break;
        if (h[0] == 'W' && h[1] == '/') {
            weak = true;
            h += 2;
        }
        p = h;
        if (*p == '"') {
            for (p++; *p >= '0' && *p <= '9' && v < UINT64_MAX / 10; p++, digits = true)
                v = v * 10 + (uint64_t)(*p - '0');
            if (*p != '"')
                digits = false;
        }
        c->versions[c->n++] = weak || !digits ? 0 : v;
        while (*p != '\0' && *p != ',')
            p++;
        h = p;
    }
    if (c->n == 0)
        c->versions[c->n++] = 0;
}

/* ---- the operations ---- */

static int do_get(async_http_request *req, const char *key, size_t klen)
{
    struct kv_value *v;
    int rc = kv_store_get(state.store, key, klen, &v);

    if (rc < 0)
        return failure(req, "get");
    if (rc == KV_NOT_FOUND)
        return answer(req, 404, "no such key\n");
    set_etag(req, v->version);
    rc = async_http_respond(req, 200, "application/octet-stream", v->data, v->len);
    kv_value_release(v);
    return rc;
}

/* Reads the whole body into *out (*len bytes; a small one into small):
 * 0, 1 when it is past max_value_bytes, -1 on a failed read. */
static int read_value(async_http_request *req, char *small, size_t smallcap, char **out,
                      size_t *len)
{
    const char *cl = async_http_header(req, "Content-Length");
    char *buf = small;
    size_t cap = smallcap, n = 0;
    ssize_t got;

    if (cl != NULL && strtoull(cl, NULL, 10) > state.max_value)
        return 1; /* say so before the client sends it all */
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2 > state.max_value + 1 ? state.max_value + 1 : cap * 2;
            char *nb;

            if (ncap <= cap)
                ncap = cap + 1;
            nb = buf == small ? malloc(ncap) : realloc(buf, ncap);
            if (nb == NULL)
                goto fail;
            if (buf == small)
                memcpy(nb, small, n);
            buf = nb;
            cap = ncap;
        }
        got = async_http_read_body(req, buf + n, cap - n);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EMSGSIZE) /* past the http module's max_body_bytes */
                n = state.max_value + 1;
            else
                goto fail;
        } else {
            n += (size_t)got;
        }
        if (n > state.max_value) {
            if (buf != small)
                free(buf);
            return 1;
        }
    }
    *out = buf;
    *len = n;
    return 0;
fail:
    if (buf != small)
        free(buf);
    return -1;
}

static int do_put(async_http_request *req, const char *key, size_t klen)
{
    char small[4096], *val = NULL, msg[96];
    struct kv_cond c;
    uint64_t version;
    size_t len;
    int rc;

    parse_if_match(async_http_header(req, "If-Match"), &c);
    rc = read_value(req, small, sizeof(small), &val, &len);
    if (rc == 1) {
        async_http_close_after(req); /* the rest of the body may be large */
        snprintf(msg, sizeof(msg), "value larger than max_value_bytes (%zu)\n", state.max_value);
        return answer(req, 413, msg);
    }
    if (rc < 0)
        return errno == ENOMEM ? failure(req, "read") : -1; /* the peer went */
    rc = kv_store_put(state.store, key, klen, val, len, &c, &version);
    if (val != small)
        free(val);
    if (rc < 0)
        return failure(req, "put");
    if (rc == KV_PRECONDITION)
        return answer(req, 412, "If-Match does not hold\n");
    set_etag(req, version);
    return async_http_respond(req, 204, NULL, NULL, 0);
}

static int do_delete(async_http_request *req, const char *key, size_t klen)
{
    struct kv_cond c;
    int rc;

    parse_if_match(async_http_header(req, "If-Match"), &c);
    rc = kv_store_delete(state.store, key, klen, &c);
    if (rc < 0)
        return failure(req, "delete");
    if (rc == KV_NOT_FOUND)
        return answer(req, 404, "no such key\n");
    if (rc == KV_PRECONDITION)
        return answer(req, 412, "If-Match does not hold\n");
    return async_http_respond(req, 204, NULL, NULL, 0);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The prefix parameter of the query, percent-decoded into out (of the
 * query's size + 1): its length, or -1 for a bad escape. */
static long query_prefix(const char *q, char *out)
{
    size_t n = 0;

    for (const char *p = q; p != NULL && *p != '\0'; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, "prefix=", 7) != 0)
            continue;
        for (p += 7; *p != '\0' && *p != '&'; p++) {
            if (*p != '%') {
                out[n++] = *p;
                continue;
            }
            if (hexval(p[1]) < 0 || hexval(p[2]) < 0)
                return -1;
            out[n++] = (char)(hexval(p[1]) << 4 | hexval(p[2]));
            p += 2;
        }
        break;
    }
    out[n] = '\0';
    return (long)n;
}

/* Appends s as a JSON string. */
static void json_str(char *out, size_t *at, const char *s, size_t len)
{
    out[(*at)++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            out[(*at)++] = '\\';
            out[(*at)++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *at += (size_t)sprintf(out + *at, "\\u%04x", c);
        } else {
            out[(*at)++] = (char)c;
        }
    }
    out[(*at)++] = '"';
}

static int do_list(async_http_request *req)
{
    const char *q = async_http_query(req);
    char *prefix = malloc(strlen(q) + 1), *body = NULL;
    struct kv_keys k;
    size_t cap = 3, at = 0, i;
    long plen;
    int rc;

    if (prefix == NULL)
        return errno = ENOMEM, failure(req, "list");
    plen = query_prefix(q, prefix);
    if (plen < 0) {
        free(prefix);
        return answer(req, 400, "bad percent escape in the query\n");
    }
    rc = kv_store_list(state.store, prefix, (size_t)plen, &k);
    free(prefix);
    if (rc != 0)
        return failure(req, "list");
    for (i = 0; i < k.n; i++)
        cap += k.lens[i] * 6 + 3; /* every byte escaped at worst, quotes, comma */
    body = malloc(cap + 1);
    if (body == NULL) {
        kv_keys_free(&k);
        return errno = ENOMEM, failure(req, "list");
    }
    body[at++] = '[';
    for (i = 0; i < k.n; i++) {
        if (i > 0)
            body[at++] = ',';
        json_str(body, &at, k.keys[i], k.lens[i]);
    }
    body[at++] = ']';
    body[at++] = '\n';
    kv_keys_free(&k);
    rc = async_http_respond(req, 200, "application/json", body, at);
    free(body);
    return rc;
}

/* ---- the handler ---- */

static bool is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

static int serve(async_http_request *req)
{
    const char *m = async_http_method(req), *path = async_http_path(req);
    const char *key = strstr(path, "/kv/");
    size_t klen;

    if (key == NULL)
        return answer(req, 404, "not under /kv/: route {\"prefix\": \"/kv/\", \"handler\": "
                      "\"kv\"}\n");
    key += 4;
    klen = strlen(key);
    if (klen == 0) {
        if (is(m, "GET") || is(m, "HEAD"))
            return do_list(req);
        async_http_add_header(req, "Allow", "GET, HEAD");
        return answer(req, 405, "the key list is read-only\n");
    }
    if (klen > KV_MAX_KEY)
        return answer(req, 414, "key longer than 4096 bytes\n");
    if (is(m, "GET") || is(m, "HEAD"))
        return do_get(req, key, klen);
    if (is(m, "PUT"))
        return do_put(req, key, klen);
    if (is(m, "DELETE"))
        return do_delete(req, key, klen);
    async_http_add_header(req, "Allow", "GET, HEAD, PUT, DELETE");
    return answer(req, 405, "method not allowed\n");
}

static int kv_handle(async_http_request *req, void *ctx)
{
    int w = async_worker_id();
    atomic_long *mine = &state.inflight[(unsigned)(w < 0 ? 0 : w) % INFLIGHT_SLOTS].n;
    int rc;

    (void)ctx;
    atomic_fetch_add(mine, 1);
    if (atomic_load(&state.closing)) {
        atomic_fetch_sub(mine, 1);
        async_http_add_header(req, "Retry-After", "1");
        return answer(req, 503, "kv is stopping\n");
    }
    rc = serve(req);
    atomic_fetch_sub(mine, 1);
    return rc;
}

/* ---- run ---- */

static void kv_log(void *ctx, int level, const char *msg)
{
    async_module_log(ctx, level, "%s", msg);
}

static long inflight(void)
{
    long n = 0;

    for (int i = 0; i < INFLIGHT_SLOTS; i++)
        n += atomic_load(&state.inflight[i].n);
    return n;
}

/* Registers "kv"; on a reload the old instance may hold the name for a
 * moment while it stops, so EEXIST is retried for a while. */
static int register_handler(async_module_host *host)
{
    int64_t until = async_now_ms() + 10000;

    while (async_module_add_http_handler(host, "kv", kv_handle, NULL) != 0) {
        if (errno != EEXIST || async_now_ms() > until || async_sleep_ms(10) != 0) {
            async_module_log(host, ASYNC_LOG_ERROR, "cannot register the handler \"kv\": %s",
                             strerror(errno == EEXIST ? EEXIST : errno));
            return -1;
        }
    }
    return 0;
}

/* Shielded: no new request gets in, the ones inside finish (within the
 * daemon's stop deadline), then everything is written and fsynced. */
static int stop(async_module_host *host)
{
    int64_t deadline = async_module_stop_deadline(host);

    atomic_store(&state.closing, true);
    while (inflight() > 0) {
        if (deadline >= 0 && async_now_ms() > deadline - 100) {
            /* The store stays open (and leaks) rather than be freed under
             * a request: the daemon keeps the code loaded until it ends. */
            async_module_log(host, ASYNC_LOG_ERROR, "%ld requests still inside at the stop "
                             "deadline: the log is left open", inflight());
            return 1;
        }
        async_sleep_ms(1);
    }
    if (kv_store_close(state.store) != 0)
        return 1;
    state.store = NULL;
    async_module_log(host, ASYNC_LOG_INFO, "stopped: log written and fsynced");
    return 0;
}

static int kv_run(async_module_host *host, const json_t *config)
{
    struct kv_store_options o = {
        .path = file_of(config),
        .sync_interval_ms = (unsigned)int_or(config, "sync_interval_ms", DEFAULT_SYNC_MS),
        .log = kv_log,
        .log_ctx = host,
    };
    int old, rc;

    state.host = host;
    state.max_value = (size_t)int_or(config, "max_value_bytes", DEFAULT_MAX_VALUE);
    atomic_store(&state.closing, false);
    if (kv_store_open(&o, &state.store) != 0)
        return 1; /* the store said why; the daemon retries with a back-off */
    if (register_handler(host) != 0) {
        old = async_shield(1);
        kv_store_close(state.store);
        state.store = NULL;
        async_shield(old);
        return 1;
    }
    async_module_log(host, ASYNC_LOG_NOTICE, "serving %zu keys from %s as handler \"kv\"",
                     kv_store_count(state.store), o.path);
    async_module_ready(host);
    while (async_sleep_ms(3600 * 1000) == 0)
        ; /* until the daemon cancels the module */
    old = async_shield(1);
    rc = stop(host);
    async_shield(old);
    return rc;
}

/* The handler run registers: one, whatever the config. */
static void kv_http_handlers(const json_t *config, async_module_report *report)
{
    (void)config;
    async_module_provide_handler(report, "kv");
}

/* The one symbol kv.so exports (it is built with hidden visibility). */
ASYNC_API const struct async_module async_module = {
    .abi_version = ASYNC_MODULE_ABI_VERSION,
    .size = ASYNC_MODULE_SIZE,
    .name = "kv",
    .version = "1.0",
    .run = kv_run,
    .flags = ASYNC_MODULE_NOTIFY_READY,
    .validate = kv_validate,
    .effective_config = kv_effective,
    .http_handlers = kv_http_handlers,
};
