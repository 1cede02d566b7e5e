/* modules/proxy/proxy.c — a reverse proxy on the handler platform: each
 * upstream in the config is an HTTP handler of its name, which the http
 * module's routes send requests to ({"prefix": "/", "handler": "app"}).
 *
 *   "proxy": { "upstreams": { "app": {
 *       "servers": ["127.0.0.1:9001", "127.0.0.1:9002"],
 *       "balance": "round_robin",          // or "least_conn"
 *       "keepalive": 32,                   // idle connections kept per server and worker
 *       "connect_timeout_ms": 2000, "response_timeout_ms": 30000,
 *       "health": { "path": "/health", "interval_ms": 1000, "timeout_ms": 1000,
 *                   "fall": 3, "rise": 2 },
 *       "retries": 1, "host": "app.internal", "tunnel_idle_timeout_ms": 60000,
 *       "tls": { "verify": true, "ca": "ca.pem", "server_name": "app.internal" } } } }
 *
 * "tls" (upstream_tls.c) makes every connection to the upstream's servers
 * HTTPS, health checks included, pooled and reused like plain ones.
 *
 * A request goes to the next server that is up (round robin, or the one
 * with the fewest requests in flight); a refused or reset connection — or
 * an upstream that closes before any response byte, for idempotent
 * methods — moves to the next server, up to `retries` times, and only
 * while nothing of the request body has been read (a body cannot be sent
 * twice).  Once response bytes were forwarded nothing is retried.  Failures
 * answer 502 (refused, reset, a malformed response) or 504 (timeouts);
 * with every server down, 503 with Retry-After.  A server that fails
 * `fall` health checks in a row (or as many requests) leaves the
 * rotation until `rise` checks pass.
 *
 * Forwarding (RFC 9110 §7.6): hop-by-hop fields are dropped both ways
 * (Connection and the fields it names, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-*); X-Forwarded-For gets the client's
 * address appended, X-Forwarded-Proto and X-Forwarded-Host are set, Via
 * is added; Host passes through unless the upstream sets "host".  Bodies
 * stream both ways through the handler's fiber, a buffer at a time, so a
 * large upload or download holds no more memory than that buffer.
 *
 * Upgrades.  A request with "Connection: Upgrade" (WebSocket) is sent on
 * with its Upgrade; when the upstream answers 101 the client's connection
 * and the upstream's (plain or TLS) become one two-way byte tunnel — one
 * fiber per direction, both on the handler's worker — in which each side's
 * end is passed on to the other (half-close), and which ends when both
 * sides have ended, on an error, or when nothing passes either way for
 * tunnel_idle_timeout_ms.
 *
 * Threads: handlers run on every worker.  A server's counters are relaxed
 * atomics (proxy.h; figures.c shows them in the status handler and the
 * metrics endpoint); its up/down state is an atomic flag written by its
 * health fiber and by failing requests.  A tunnel's two fibers share its
 * state (struct tunnel) unlocked: both run on one worker, never at once. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the build defines it for modules; the unit tests may not */
#endif
#include "proxy.h"
#include "upstream_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define BUF_SIZE (64 * 1024)

/* ---- config ---- */

static const char *const upstream_keys[] = {
    "servers", "balance", "keepalive", "connect_timeout_ms", "response_timeout_ms", "health",
    "retries", "host", "tunnel_idle_timeout_ms", "tls",
};
static const char *const health_keys[] = {"path", "interval_ms", "timeout_ms", "fall", "rise"};

static bool known(const char *key, const char *const *keys, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

static void check_int(async_module_report *r, const char *path, const json_t *v, json_int_t lo,
                      json_int_t hi, int *bad)
{
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < lo ||
                      json_integer_value(v) > hi)) {
        async_module_problem(r, path, "must be an integer from %lld to %lld", (long long)lo,
                             (long long)hi);
        (*bad)++;
    }
}

static void check_health(async_module_report *r, const char *name, const json_t *v, int *bad);

/* "servers": 1 to MAX_SERVERS "host:port" addresses. */
static void check_servers(async_module_report *r, const char *name, const json_t *v, int *bad)
{
    char path[512];
    const json_t *s;
    size_t i;

    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_SERVERS) {
        snprintf(path, sizeof(path), "upstreams.%s.servers", name);
        async_module_problem(r, path, "must be a list of 1 to %d \"host:port\" addresses",
                             MAX_SERVERS);
        (*bad)++;
        return;
    }
    json_array_foreach(v, i, s) {
        const char *why = "a port is needed";
        char host[256];
        int port = 0;

        if (!json_is_string(s) || async_address_parse(json_string_value(s), host, sizeof(host),
                                                      &port, &why) != 0 ||
            port == 0) {
            snprintf(path, sizeof(path), "upstreams.%s.servers[%zu]", name, i);
            async_module_problem(r, path, "not a \"host:port\" address: %s",
                                 json_is_string(s) ? why : "not a string");
            (*bad)++;
        }
    }
}

static void check_upstream(async_module_report *r, const char *name, const json_t *u, int *bad)
{
    char path[512];
    const char *key;
    const json_t *v;

    snprintf(path, sizeof(path), "upstreams.%s", name);
    if (!json_is_object(u)) {
        async_module_problem(r, path, "must be an object");
        (*bad)++;
        return;
    }
    json_object_foreach((json_t *)u, key, v) {
        if (!known(key, upstream_keys, sizeof(upstream_keys) / sizeof(upstream_keys[0]))) {
            snprintf(path, sizeof(path), "upstreams.%s.%s", name, key);
            async_module_problem(r, path, "unknown key");
            (*bad)++;
        }
    }
    check_servers(r, name, json_object_get(u, "servers"), bad);
    v = json_object_get(u, "balance");
    if (v != NULL && (!json_is_string(v) || (strcmp(json_string_value(v), "round_robin") != 0 &&
                                             strcmp(json_string_value(v), "least_conn") != 0))) {
        snprintf(path, sizeof(path), "upstreams.%s.balance", name);
        async_module_problem(r, path, "must be \"round_robin\" or \"least_conn\"");
        (*bad)++;
    }
#define INT_KEY(k, lo, hi)                                                                  \
    do {                                                                                    \
        snprintf(path, sizeof(path), "upstreams.%s.%s", name, k);                           \
        check_int(r, path, json_object_get(u, k), lo, hi, bad);                             \
    } while (0)
    INT_KEY("keepalive", 0, 100000);
    INT_KEY("connect_timeout_ms", 1, 3600000);
    INT_KEY("response_timeout_ms", 1, 86400000);
    INT_KEY("retries", 0, MAX_SERVERS);
    INT_KEY("tunnel_idle_timeout_ms", 1, 86400000);
#undef INT_KEY
    v = json_object_get(u, "host");
    if (v != NULL && (!json_is_string(v) || strpbrk(json_string_value(v), "\r\n") != NULL ||
                      json_string_length(v) == 0)) {
        snprintf(path, sizeof(path), "upstreams.%s.host", name);
        async_module_problem(r, path, "must be a host name");
        (*bad)++;
    }
    if ((v = json_object_get(u, "health")) != NULL)
        check_health(r, name, v, bad);
    if ((v = json_object_get(u, "tls")) != NULL)
        upstream_tls_check(r, name, v, bad);
}

static void check_health(async_module_report *r, const char *name, const json_t *v, int *bad)
{
    char path[512];
    const char *key;
    const json_t *s;

    snprintf(path, sizeof(path), "upstreams.%s.health", name);
    if (!json_is_object(v)) {
        async_module_problem(r, path, "must be an object");
        (*bad)++;
        return;
    }
    json_object_foreach((json_t *)v, key, s)
        if (!known(key, health_keys, sizeof(health_keys) / sizeof(health_keys[0]))) {
            snprintf(path, sizeof(path), "upstreams.%s.health.%s", name, key);
            async_module_problem(r, path, "unknown key");
            (*bad)++;
        }
    s = json_object_get(v, "path");
    if (s == NULL || !json_is_string(s) || json_string_value(s)[0] != '/') {
        snprintf(path, sizeof(path), "upstreams.%s.health.path", name);
        async_module_problem(r, path, "must be a path starting with '/'");
        (*bad)++;
    }
#define HEALTH_KEY(k, lo, hi)                                                               \
    do {                                                                                    \
        snprintf(path, sizeof(path), "upstreams.%s.health.%s", name, k);                    \
        check_int(r, path, json_object_get(v, k), lo, hi, bad);                             \
    } while (0)
    HEALTH_KEY("interval_ms", 10, 3600000);
    HEALTH_KEY("timeout_ms", 1, 3600000);
    HEALTH_KEY("fall", 1, 1000);
    HEALTH_KEY("rise", 1, 1000);
#undef HEALTH_KEY
}

static int proxy_validate(const json_t *config, async_module_report *r)
{
    const json_t *ups = json_object_get(config, "upstreams"), *u;
    const char *key, *name;
    int bad = 0;

    json_object_foreach((json_t *)config, key, u)
        if (strcmp(key, "upstreams") != 0) {
            async_module_problem(r, key, "unknown key");
            bad++;
        }
    if (ups == NULL) /* nothing to proxy: the module idles */
        return bad > 0 ? -1 : 0;
    if (!json_is_object(ups)) {
        async_module_problem(r, "upstreams", "must be an object of upstreams by name");
        return -1;
    }
    json_object_foreach((json_t *)ups, name, u)
        check_upstream(r, name, u, &bad);
    return bad > 0 ? -1 : 0;
}

static int64_t int_or(const json_t *o, const char *key, int64_t def)
{
    const json_t *v = json_object_get(o, key);

    return v != NULL ? (int64_t)json_integer_value(v) : def;
}

static int upstream_load(struct upstream *up, const char *name, const json_t *u)
{
    const json_t *v = json_object_get(u, "servers"), *s, *h;
    size_t i;

    memset(up, 0, sizeof(*up));
    up->name = name;
    json_array_foreach(v, i, s) {
        if ((up->servers[i].address = strdup(json_string_value(s))) == NULL)
            return -1;
        atomic_store(&up->servers[i].up, true);
        up->n++;
    }
    v = json_object_get(u, "balance");
    up->least_conn = v != NULL && strcmp(json_string_value(v), "least_conn") == 0;
    up->keepalive = (unsigned)int_or(u, "keepalive", 32);
    up->connect_timeout_ms = int_or(u, "connect_timeout_ms", 2000);
    up->response_timeout_ms = int_or(u, "response_timeout_ms", 30000);
    up->retries = (unsigned)int_or(u, "retries", 1);
    up->tunnel_idle_timeout_ms = int_or(u, "tunnel_idle_timeout_ms", 60000);
    up->host = json_string_value(json_object_get(u, "host"));
    h = json_object_get(u, "health");
    up->fall = (unsigned)int_or(h, "fall", 3);
    up->rise = (unsigned)int_or(h, "rise", 2);
    if (h != NULL) {
        up->health_path = json_string_value(json_object_get(h, "path"));
        up->health_interval_ms = int_or(h, "interval_ms", 1000);
        up->health_timeout_ms = int_or(h, "timeout_ms", 1000);
    }
    return 0;
}

/* ---- servers up and down ---- */

static enum failure failure_kind(int err)
{
    switch (err) {
    case ECONNREFUSED: return FAIL_REFUSED;
    case ECONNRESET: case EPIPE: return FAIL_RESET;
    case ETIMEDOUT: return FAIL_TIMEOUT;
    case EPROTO: return FAIL_INVALID;
    default: return FAIL_OTHER;
    }
}

static void server_failed(struct upstream *up, struct server *s, int err, const char *why)
{
    atomic_fetch_add_explicit(&s->failures[failure_kind(err)], 1, memory_order_relaxed);
    atomic_store(&s->oks, 0);
    if (atomic_fetch_add(&s->fails, 1) + 1u >= up->fall && atomic_exchange(&s->up, false))
        async_module_log(up->mod, ASYNC_LOG_WARNING, "upstream %s: server %s is down (%s)",
                         up->name, s->address, why);
}

static void server_ok(struct upstream *up, struct server *s)
{
    atomic_store(&s->fails, 0);
    if (!atomic_load(&s->up) && atomic_fetch_add(&s->oks, 1) + 1u >= up->rise &&
        !atomic_exchange(&s->up, true))
        async_module_log(up->mod, ASYNC_LOG_NOTICE, "upstream %s: server %s is up again",
                         up->name, s->address);
}

/* The next server that is up and not in tried (a bit per server), or NULL. */
static struct server *pick(struct upstream *up, uint64_t tried)
{
    struct server *best = NULL;
    unsigned start = atomic_fetch_add_explicit(&up->next, 1, memory_order_relaxed);
    size_t i;

    for (i = 0; i < up->n; i++) {
        size_t k = (start + i) % up->n;
        struct server *s = &up->servers[k];

        if ((tried >> k & 1) || !atomic_load_explicit(&s->up, memory_order_relaxed))
            continue;
        if (!up->least_conn)
            return s;
        if (best == NULL || atomic_load_explicit(&s->active, memory_order_relaxed) <
                                atomic_load_explicit(&best->active, memory_order_relaxed))
            best = s;
    }
    return best;
}

/* Active checks of one server: GET health_path every interval. */
struct check_arg {
    struct upstream *up;
    struct server *s;
};

static void *health_loop(void *arg)
{
    struct check_arg *a = arg;
    struct upstream *up = a->up;
    struct server *s = a->s;
    async_http_call *c;
    char sink[4096];
    int status;

    while (async_sleep_ms((uint64_t)up->health_interval_ms) == 0) {
        c = async_http_call_new(up->check_pool, "GET", s->address, up->health_path);
        if (c == NULL)
            continue;
        if (up->host != NULL)
            async_http_call_add_header(c, "Host", up->host);
        async_deadline(async_now_ms() + up->health_timeout_ms);
        status = async_http_call_send(c) == 0 ? async_http_call_status(c) : -errno;
        while (status > 0 && async_http_call_read(c, sink, sizeof(sink)) > 0)
            ;
        async_deadline(-1);
        async_http_call_free(c);
        if (status >= 200 && status < 400)
            server_ok(up, s);
        else if (errno != ECANCELED)
            server_failed(up, s, status > 0 ? 0 : -status,
                          status > 0 ? "health check status" : "health check failed");
    }
    free(a);
    return NULL;
}

/* ---- forwarding ---- */

/* What forwarding does with a field, by its name: one comparison at most
 * (the length picks the candidate). */
enum field_fate {
    FIELD_PASS,
    FIELD_HOP,          /* hop-by-hop: stays on its side */
    FIELD_XFF,          /* X-Forwarded-For: extended with the peer */
    FIELD_REPLACED,     /* X-Forwarded-Proto, X-Forwarded-Host: ours replace them */
    FIELD_HOST,
};

static enum field_fate field_fate(const char *name)
{
    size_t n = strlen(name);

    if (n >= 6 && strncasecmp(name, "Proxy-", 6) == 0)
        return FIELD_HOP;
    switch (n) {
    case 2: return strcasecmp(name, "TE") == 0 ? FIELD_HOP : FIELD_PASS;
    case 4: return strcasecmp(name, "Host") == 0 ? FIELD_HOST : FIELD_PASS;
    case 7:
        return strcasecmp(name, "Upgrade") == 0 || strcasecmp(name, "Trailer") == 0 ? FIELD_HOP
                                                                                   : FIELD_PASS;
    case 10:
        return strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Keep-Alive") == 0
                   ? FIELD_HOP : FIELD_PASS;
    case 15: return strcasecmp(name, "X-Forwarded-For") == 0 ? FIELD_XFF : FIELD_PASS;
    case 16: return strcasecmp(name, "X-Forwarded-Host") == 0 ? FIELD_REPLACED : FIELD_PASS;
    case 17:
        if (strcasecmp(name, "Transfer-Encoding") == 0)
            return FIELD_HOP;
        return strcasecmp(name, "X-Forwarded-Proto") == 0 ? FIELD_REPLACED : FIELD_PASS;
    default: return FIELD_PASS;
    }
}

/* Whether the Connection field's value names the field. */
static bool named_by(const char *connection, const char *name)
{
    size_t n = strlen(name);
    const char *p;

    for (p = connection; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, name, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
                                             p[n] == '\t'))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* X-Forwarded-For's new value: the client's (xff, or NULL), then the
 * peer's address without its port ("[::1]:5000" gives "::1"), into buf
 * when it fits, else into memory of its own (a client's long chain is
 * passed on whole).  The value, buf or one to free; NULL for ENOMEM. */
static char *forwarded_for(const char *peer, const char *xff, char *buf, size_t size)
{
    const char *host = peer, *end = strrchr(peer, ':');
    size_t n = 0, xn = xff != NULL ? strlen(xff) : 0, hn;
    char *out = buf;

    if (peer[0] == '[') {
        host = peer + 1;
        end = strchr(host, ']');
    }
    hn = end != NULL ? (size_t)(end - host) : strlen(host);
    if (xn + 2 + hn + 1 > size && (out = malloc(xn + 2 + hn + 1)) == NULL)
        return NULL;
    if (xff != NULL) {
        memcpy(out, xff, xn);
        memcpy(out + xn, ", ", 2);
        n = xn + 2;
    }
    memcpy(out + n, host, hn);
    out[n + hn] = '\0';
    return out;
}

/* The request's fields onto the call, as RFC 9110 §7.6 says. */
static int forward_request_fields(async_http_request *req, async_http_call *c,
                                  const struct upstream *up)
{
    const char *connection = async_http_header(req, "Connection"), *name, *value;
    const char *xff = NULL, *host = async_http_header(req, "Host");
    char buf[1024];
    size_t i;
    int rc;

    for (i = 0; async_http_header_at(req, i, &name, &value) == 0; i++) {
        /* (a Content-Length goes up as the length of what we stream, so
         * an HTTP/1.0 upstream gets a body it can read; without one the
         * body goes up chunked) */
        enum field_fate fate = field_fate(name);

        if (fate == FIELD_HOP || fate == FIELD_REPLACED || (fate == FIELD_HOST && up->host != NULL) ||
            named_by(connection, name))
            continue;
        if (fate == FIELD_XFF) {
            xff = value;
            continue;
        }
        if (async_http_call_add_header(c, name, value) != 0)
            return -1;
    }
    if ((xff = forwarded_for(async_http_peer(req), xff, buf, sizeof(buf))) == NULL)
        return -1;
    rc = async_http_call_add_header(c, "X-Forwarded-For", xff);
    if (xff != buf)
        free((char *)xff);
    if (rc != 0 ||
        async_http_call_add_header(c, "X-Forwarded-Proto", "http") != 0 ||
        (host != NULL && async_http_call_add_header(c, "X-Forwarded-Host", host) != 0) ||
        async_http_call_add_header(c, "Via", async_http_version(req) == 10 ? "1.0 asyncd"
                                                                             : "1.1 asyncd") != 0 ||
        (up->host != NULL && async_http_call_add_header(c, "Host", up->host) != 0))
        return -1;
    return 0;
}

static int forward_response_fields(async_http_request *req, async_http_call *c)
{
    const char *connection = async_http_call_header(c, "Connection"), *name, *value;
    size_t i;

    for (i = 0; async_http_call_header_at(c, i, &name, &value) == 0; i++) {
        if (field_fate(name) == FIELD_HOP || named_by(connection, name))
            continue;
        /* the engine frames the answer; a Content-Length we pass on fixes
         * it, Server and Date replace ours */
        if (async_http_add_header(req, name, value) != 0 && errno != EINVAL)
            return -1;
    }
    return 0;
}

static int answer(async_http_request *req, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, async_http_reason(status));

    if (status == 503)
        async_http_add_header(req, "Retry-After", "1");
    return async_http_respond(req, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* Sends the request body along as it comes. */
static int forward_body(async_http_request *req, async_http_call *c, char *buf, bool *read_any)
{
    ssize_t n;

    while ((n = async_http_read_body(req, buf, BUF_SIZE)) > 0) {
        *read_any = true;
        if (async_http_call_write(c, buf, (size_t)n) != 0)
            return -1;
    }
    return n < 0 ? -2 : 0; /* -2: the client's side failed */
}

/* ---- tunnels ---- */

/* A tunnel's two directions: two fibers on one worker (pinned there), so
 * never at once — a stream with a layer (TLS to the upstream, or from the
 * client) is used by one fiber at a time, as layer.h asks, though one
 * fiber may be parked reading it while the other writes it.  `last` is
 * touched by those two fibers only, hence plain. */
struct tunnel {
    int64_t idle_ms;
    int64_t last;               /* async_now_ms when bytes last passed, either way */
};

struct pipe_end {
    async_stream *from, *to;
    struct tunnel *t;
};

/* Copies one direction until its end, then passes the end on (a FIN, a
 * TLS stream's close_notify first); an error, or nothing passing either
 * way for idle_ms, cuts both directions. */
static void *pipe_copy(void *arg)
{
    struct pipe_end *p = arg;
    struct tunnel *t = p->t;
    char buf[16384];
    ssize_t n;

    for (;;) {
        async_deadline(t->last + t->idle_ms);
        n = async_stream_read(p->from, buf, sizeof(buf));
        if (n < 0 && errno == ETIMEDOUT && async_now_ms() < t->last + t->idle_ms)
            continue; /* quiet this way, not the other: the tunnel is alive */
        if (n <= 0)
            break;
        t->last = async_now_ms();
        async_deadline(t->last + t->idle_ms); /* a peer that takes nothing is idle too */
        if (async_stream_write_all(p->to, buf, (size_t)n) != 0) {
            n = -1;
            break;
        }
        t->last = async_now_ms();
    }
    async_deadline(-1);
    if (n == 0) {
        async_stream_shutdown_write(p->to);
    } else {
        /* an abort: the sockets shut under both fibers, whatever layer */
        shutdown(async_stream_fd(p->from), SHUT_RDWR);
        shutdown(async_stream_fd(p->to), SHUT_RDWR);
    }
    return NULL;
}

/* The connection tokens of a request say "upgrade". */
static bool wants_upgrade(async_http_request *req)
{
    const char *conn = async_http_header(req, "Connection"), *p;

    if (conn == NULL || async_http_header(req, "Upgrade") == NULL)
        return false;
    for (p = conn; (p = strcasestr(p, "upgrade")) != NULL; p += 7)
        if ((p == conn || p[-1] == ' ' || p[-1] == ',' || p[-1] == '\t') &&
            (p[7] == '\0' || p[7] == ',' || p[7] == ' ' || p[7] == '\t'))
            return true;
    return false;
}

/* After the upstream's 101: the client's and the upstream's connections
 * joined until either ends. */
static int tunnel(async_http_request *req, struct upstream *up, async_http_call *c)
{
    const char *proto = async_http_call_header(c, "Upgrade");
    const void *early_c, *early_u;
    size_t nc, nu;
    struct pipe_end down, upward;
    struct tunnel state = {up->tunnel_idle_timeout_ms, async_now_ms()};
    async_stream *cs, *us;
    async_task *t;

    if (proto == NULL || forward_response_fields(req, c) != 0)
        return -1;
    if ((cs = async_http_upgrade(req, proto, &early_c, &nc)) == NULL)
        return -1;
    if ((us = async_http_call_take_stream(c, &early_u, &nu)) == NULL)
        return -1;
    if ((nu > 0 && async_stream_write_all(cs, early_u, nu) != 0) ||
        (nc > 0 && async_stream_write_all(us, early_c, nc) != 0)) {
        async_stream_close(us);
        return -1;
    }
    down = (struct pipe_end){us, cs, &state};
    upward = (struct pipe_end){cs, us, &state};
    if ((t = async_spawn_on((unsigned)async_worker_id(), pipe_copy, &down)) != NULL) {
        pipe_copy(&upward);
        async_join(t, NULL);
    }
    async_stream_close(us);
    return 0;
}

/* One try on server s: 0 with *out, the call, its response head read;
 * -1 with errno when the upstream failed; -2 when the client's body did
 * (the engine then answers 413, 400 or 408). */
static int try_server(async_http_request *req, struct upstream *up, struct server *s,
                      bool body, char *buf, bool *read_any, async_http_call **out)
{
    int64_t t0 = async_now_ms();
    async_http_call *c;
    int rc = -1, err;

    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    c = async_http_call_new(up->pool, async_http_method(req), s->address, async_http_target(req));
    async_deadline(async_now_ms() + up->connect_timeout_ms + up->response_timeout_ms);
    if (c != NULL && wants_upgrade(req) &&
        async_http_call_upgrade(c, async_http_header(req, "Upgrade")) != 0)
        rc = -1;
    else if (c != NULL && forward_request_fields(req, c, up) == 0 &&
        (rc = body ? forward_body(req, c, buf, read_any) : 0) == 0)
        rc = async_http_call_send(c);
    err = errno;
    async_deadline(-1);
    if (rc == 0) {
        proxy_timed(s, async_now_ms() - t0);
        *out = c;
        return 0;
    }
    async_http_call_free(c);
    errno = err;
    return rc;
}

/* The upstream's answer to the client, a buffer at a time, each sent at
 * once when flush says so, and whatever was passed on sent before the
 * upstream is waited for (a trickle reaches the client as it comes): 0,
 * or -1 when either side failed mid-body (the engine closes the client's
 * end). */
static int relay(async_http_request *req, struct upstream *up, async_http_call *c, char *buf,
                 bool flush)
{
    ssize_t n;
    int rc = 0;

    async_http_set_status(req, async_http_call_status(c));
    if (forward_response_fields(req, c) != 0)
        return -1;
    async_deadline(async_now_ms() + up->response_timeout_ms);
    while ((n = async_http_call_read(c, buf, BUF_SIZE)) > 0)
        if (async_http_write(req, buf, (size_t)n) != 0 ||
            ((flush || async_http_call_would_wait(c)) && async_http_flush(req) != 0)) {
            rc = -1;
            break;
        }
    async_deadline(-1);
    return n < 0 ? -1 : rc;
}

/* ---- bodies that stream ---- */

/* The answer's half of a streamed exchange: a fiber on the request's
 * worker that reads the upstream's answer and relays it while the
 * handler's fiber still sends the body.  Both fibers run on one thread,
 * so these fields need no atomics; each is written by the side named. */
struct answer_side {
    async_http_request *req;
    struct upstream *up;
    struct server *s;
    async_http_call *c;
    int64_t t0;
    bool body_done;             /* handler: the body went up, or failed */
    int head;                   /* answer side: 0 once the head was read, else -1 */
    int err;                    /* answer side: errno of a failed head */
    int relayed;                /* answer side: relay()'s result, after a head */
};

static void *answer_side(void *arg)
{
    struct answer_side *a = arg;
    char *buf = malloc(BUF_SIZE);

    /* Like the connection's own fiber (the engine shields it): a module
     * that stops drains its requests; its deadlines bound it. */
    async_shield(1);
    async_deadline(async_now_ms() + a->up->response_timeout_ms);
    a->head = buf != NULL ? async_http_call_response(a->c) : -1;
    a->err = buf != NULL ? errno : ENOMEM;
    async_deadline(-1);
    if (a->head == 0) {
        proxy_timed(a->s, async_now_ms() - a->t0);
        /* in duplex the body reader never sends the output: each piece
         * leaves here, or a client that waits for it waits forever */
        a->relayed = relay(a->req, a->up, a->c, buf, true);
        /* Answered while the body still goes up to an upstream that
         * stopped reading it: end the upload rather than wait it out. */
        if (!a->body_done)
            async_http_call_abort(a->c);
    }
    free(buf);
    return NULL;
}

/* A request whose body streams (chunked, or more than a call buffers):
 * the body goes up from this fiber while answer_side reads the answer and
 * relays it, so an upstream that answers before it has read everything
 * (an early 413 or 401) or echoes the body as it reads it is served
 * instead of cut at the response timeout.  0 or -1 once answered
 * (*answered set: relay's result); -2 when the client's body failed first
 * (the engine answers 413, 400 or 408); -1 with errno when the upstream
 * failed before any answer. */
static int exchange_streamed(async_http_request *req, struct upstream *up, struct server *s,
                             char *buf, bool *read_any, bool *answered)
{
    struct answer_side a = {.req = req, .up = up, .s = s, .t0 = async_now_ms(), .head = -1};
    async_task *t = NULL;
    int sent = -1, err, shield;

    if (async_http_duplex(req) != 0)
        return -2; /* the client went: no fault of the server's */
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    a.c = async_http_call_new(up->pool, async_http_method(req), s->address, async_http_target(req));
    async_deadline(a.t0 + up->connect_timeout_ms + up->response_timeout_ms);
    if (a.c != NULL && forward_request_fields(req, a.c, up) == 0 &&
        async_http_call_stream(a.c) == 0 &&
        (t = async_spawn_on((unsigned)async_worker_id(), answer_side, &a)) != NULL) {
        sent = forward_body(req, a.c, buf, read_any);
        if (sent == 0 && async_http_call_finish(a.c) != 0)
            sent = -1;
    }
    err = errno;
    async_deadline(-1);
    a.body_done = true;
    if (t != NULL) {
        /* A body cut short: the answer, if any, cannot end; the answer
         * side is shielded, so end it through its connection. */
        if (sent == -2)
            async_http_call_abort(a.c);
        shield = async_shield(1); /* a and a.c are its until it ends */
        async_join(t, NULL);
        async_shield(shield);
    }
    async_http_call_free(a.c);
    if (a.head == 0) {
        *answered = true;
        return a.relayed;
    }
    if (sent == -2)
        return -2;
    errno = t != NULL ? a.err : err;
    return -1;
}

/* Whether the request's body is to stream (see exchange_streamed): one
 * that fits a call's buffer goes up whole, and may be sent again on a
 * fresh connection when a pooled one turns out closed. */
static bool body_streams(async_http_request *req)
{
    const char *len = async_http_header(req, "Content-Length");

    return len == NULL || strtoull(len, NULL, 10) > ASYNC_HTTP_COALESCE_BYTES;
}

static int proxy_handle(async_http_request *req, void *ctx)
{
    struct upstream *up = ctx;
    const char *method = async_http_method(req);
    bool idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
                      strcmp(method, "OPTIONS") == 0 || strcmp(method, "PUT") == 0 ||
                      strcmp(method, "DELETE") == 0;
    bool body = async_http_header(req, "Content-Length") != NULL ||
                async_http_header(req, "Transfer-Encoding") != NULL;
    bool streams = body && !wants_upgrade(req) && body_streams(req);
    bool read_any = false, answered = false;
    uint64_t tried = 0;
    async_http_call *c = NULL;
    struct server *s;
    unsigned attempt;
    int rc = -1, err = 0;
    char *buf;

    if ((buf = malloc(BUF_SIZE)) == NULL)
        return -1;
    for (attempt = 0; attempt <= up->retries; attempt++) {
        if ((s = pick(up, tried)) == NULL) {
            rc = answer(req, attempt == 0 ? 503 : err == ETIMEDOUT ? 504 : 502);
            goto out;
        }
        tried |= 1ull << (s - up->servers);
        atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
        if (streams) {
            rc = exchange_streamed(req, up, s, buf, &read_any, &answered);
            err = errno;
            atomic_fetch_sub_explicit(&s->active, 1, memory_order_relaxed);
            if (answered) {
                server_ok(up, s);
                goto out;
            }
            if (rc == -2 || err == ECANCELED || err == ENOMEM) {
                rc = -1; /* the engine answers for the client's body, or 500 */
                goto out;
            }
            server_failed(up, s, err, strerror(err));
            if (read_any || err != ECONNREFUSED)
                break;
            continue;
        }
        rc = try_server(req, up, s, body, buf, &read_any, &c);
        if (rc == 0) {
            server_ok(up, s);
            rc = async_http_call_status(c) == 101 ? tunnel(req, up, c)
                                                   : relay(req, up, c, buf, false);
            async_http_call_free(c);
            atomic_fetch_sub_explicit(&s->active, 1, memory_order_relaxed);
            goto out;
        }
        err = errno;
        atomic_fetch_sub_explicit(&s->active, 1, memory_order_relaxed);
        if (rc == -2 || err == ECANCELED) {
            rc = -1;
            goto out;
        }
        server_failed(up, s, err, strerror(err));
        /* Only what cannot have reached the application is tried again. */
        if (read_any || !(err == ECONNREFUSED || (err == ECONNRESET && idempotent)))
            break;
    }
    rc = answer(req, err == ETIMEDOUT ? 504 : 502);
out:
    free(buf);
    return rc;
}

/* ---- the module ---- */

struct proxy {
    struct upstream *ups;
    size_t n;
    async_task **checks;        /* health fibers, joined before anything is freed */
    size_t nchecks;
    struct proxy_figures *figures;
};

static void proxy_free(struct proxy *p)
{
    size_t i, k;

    for (i = 0; i < p->n; i++) {
        async_http_pool_free(p->ups[i].pool);
        async_http_pool_free(p->ups[i].check_pool);
        upstream_tls_free(p->ups[i].tls);
        for (k = 0; k < p->ups[i].n; k++)
            free(p->ups[i].servers[k].address);
    }
    free(p->ups);
}

/* Starts up's health fibers and registers it: 0 or -1. */
static int upstream_start(struct proxy *p, struct upstream *up, async_module_host *host)
{
    size_t k;

    for (k = 0; up->health_path != NULL && k < up->n; k++) {
        struct check_arg *a = malloc(sizeof(*a));
        async_task *t;

        if (a == NULL)
            return -1;
        a->up = up;
        a->s = &up->servers[k];
        if ((t = async_spawn(health_loop, a)) == NULL) {
            free(a);
            return -1;
        }
        p->checks[p->nchecks++] = t;
    }
    if (async_module_add_http_handler(host, up->name, proxy_handle, up) != 0) {
        async_module_log(host, ASYNC_LOG_ERROR, "upstream %s: cannot register it: %s", up->name,
                         strerror(errno));
        return -1;
    }
    async_module_log(host, ASYNC_LOG_NOTICE, "upstream %s: %zu server(s), %s", up->name, up->n,
                     up->least_conn ? "least_conn" : "round_robin");
    return 0;
}

/* The figures: for a route {"path": "/proxy-status", "handler":
 * "proxy_status"}, and in the http module's metrics endpoint. */
static void figures_start(struct proxy *p, async_module_host *host)
{
    static const char status_name[] = "proxy_status";

    if ((p->figures = malloc(sizeof(*p->figures))) == NULL)
        return;
    p->figures->ups = p->ups;
    p->figures->n = p->n;
    if (async_module_add_http_handler(host, status_name, proxy_status_handle, p->figures) != 0)
        async_module_log(host, ASYNC_LOG_WARNING, "%s: %s", status_name, strerror(errno));
    if (async_module_add_metrics_writer(host, "proxy", proxy_metrics_write, p->figures) != 0 &&
        errno != ENOSYS)
        async_module_log(host, ASYNC_LOG_WARNING, "metrics: %s", strerror(errno));
}

/* An upstream with "tls": its pools connect through TLS.  0 or -1. */
static int upstream_https(struct upstream *up, async_module_host *host, const json_t *tls)
{
    if (tls == NULL || json_is_false(tls))
        return 0;
    if ((up->tls = upstream_tls_new(host, up->name, tls, up->host)) == NULL)
        return -1;
    async_http_pool_set_connect(up->pool, upstream_tls_connect, up->tls);
    if (up->health_path != NULL) {
        if ((up->check_pool = async_http_pool_new(0)) == NULL)
            return -1;
        async_http_pool_set_connect(up->check_pool, upstream_tls_connect, up->tls);
    }
    return 0;
}

static int proxy_run(async_module_host *host, const json_t *config)
{
    const json_t *ups = json_object_get(config, "upstreams"), *u;
    struct proxy p = {0};
    const char *name;
    size_t i;
    int rc = 1;

    if (json_object_size(ups) == 0)
        async_module_log(host, ASYNC_LOG_INFO, "no upstreams configured");
    p.ups = calloc(json_object_size(ups) + 1, sizeof(*p.ups));
    p.checks = calloc(json_object_size(ups) * MAX_SERVERS + 1, sizeof(*p.checks));
    if (p.ups == NULL || p.checks == NULL) {
        free(p.ups);
        free(p.checks);
        return 1;
    }
    json_object_foreach((json_t *)ups, name, u) {
        struct upstream *up = &p.ups[p.n];

        if (upstream_load(up, name, u) != 0 ||
            (up->pool = async_http_pool_new(up->keepalive)) == NULL)
            goto done;
        up->mod = host;
        p.n++;
        if (upstream_https(up, host, json_object_get(u, "tls")) != 0)
            goto done;
    }
    for (i = 0; i < p.n; i++)
        if (upstream_start(&p, &p.ups[i], host) != 0)
            goto done;
    figures_start(&p, host);
    /* Serve until stopped: asyncd withdraws the handlers and waits for the
     * requests inside them before it cancels us. */
    while (async_sleep_ms(60000) == 0)
        ;
    rc = 0;
done:
    /* the health fibers use what we free: stop them first */
    async_shield(1);
    for (i = 0; i < p.nchecks; i++)
        async_cancel(p.checks[i]);
    for (i = 0; i < p.nchecks; i++)
        async_join(p.checks[i], NULL);
    async_shield(0);
    free(p.checks);
    free(p.figures);
    proxy_free(&p);
    return rc;
}

/* Each upstream is a handler of its name, and the figures are one more. */
static void proxy_http_handlers(const json_t *config, async_module_report *report)
{
    const char *name;
    const json_t *u;

    json_object_foreach((json_t *)json_object_get(config, "upstreams"), name, u)
        async_module_provide_handler(report, name);
    async_module_provide_handler(report, "proxy_status");
}

const struct async_module async_module = {
    .abi_version = ASYNC_MODULE_ABI_VERSION,
    .size = ASYNC_MODULE_SIZE,
    .name = "proxy",
    .version = "1.0",
    .validate = proxy_validate,
    .run = proxy_run,
    .http_handlers = proxy_http_handlers,
};
