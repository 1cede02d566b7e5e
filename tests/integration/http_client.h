/* tests/integration/http_client.h — a raw HTTP/1.1 client for the
 * integration tests: connections as plain sockets, requests written as
 * bytes, responses parsed by hand, so a test can behave unlike curl
 * (write everything before reading, pipeline, go silent, half-close).
 *
 * Include after daemon.h, with IO_MS (the default bound of one response,
 * in ms) defined and `static struct daemon D;` (the daemon under test,
 * whose port exchange() and status_open() use) declared.  Every wait is
 * bounded. */
#ifndef ASYNC_TEST_HTTP_CLIENT_H
#define ASYNC_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- raw HTTP client ---- */

struct client {
    int fd;
    char *buf;
    size_t len, cap;
    bool eof;
    int err;            /* errno of a failed read (ECONNRESET ...) */
};

struct resp {
    int status;
    char head[16384];   /* status line and fields, NUL-terminated */
    char *body;         /* malloc'd, NUL-terminated */
    size_t body_len;
};

/* Open clients, so a failed test's teardown can close what it left. */
static struct client *open_clients[64];

static inline int try_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* A client around a connected descriptor. */
static inline struct client *client_wrap(int fd)
{
    struct client *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    c->fd = fd;
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
    c->buf[0] = '\0';
    for (size_t i = 0; i < sizeof(open_clients) / sizeof(open_clients[0]); i++)
        if (open_clients[i] == NULL) {
            open_clients[i] = c;
            break;
        }
    return c;
}

static inline struct client *client_open(int port)
{
    int fd = try_connect(port);

    if (fd < 0)
        fail_msg("connect to 127.0.0.1:%d: %s", port, strerror(errno));
    return client_wrap(fd);
}

static inline void client_close(struct client *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < sizeof(open_clients) / sizeof(open_clients[0]); i++)
        if (open_clients[i] == c)
            open_clients[i] = NULL;
    close(c->fd);
    free(c->buf);
    free(c);
}

static inline void close_leftover_clients(void)
{
    for (size_t i = 0; i < sizeof(open_clients) / sizeof(open_clients[0]); i++)
        if (open_clients[i] != NULL)
            client_close(open_clients[i]);
}

static inline bool client_sendn(struct client *c, const void *p, size_t n)
{
    const char *q = p;
    int64_t until = now_ms() + IO_MS;

    while (n > 0) {
        ssize_t k = send(c->fd, q, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (k > 0) {
            q += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {c->fd, POLLOUT, 0};

            if (now_ms() >= until || poll(&pf, 1, left_ms(until)) < 0)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

static inline bool client_send(struct client *c, const char *s)
{
    return client_sendn(c, s, strlen(s));
}

/* Reads more before deadline: > 0 bytes read, 0 at EOF (or reset, see
 * err), -1 on timeout. */
static inline ssize_t client_fill(struct client *c, int64_t deadline)
{
    struct pollfd pf = {c->fd, POLLIN, 0};
    ssize_t n;

    if (c->eof)
        return 0;
    if (c->len + 1 >= c->cap) { /* room for the NUL that keeps sscanf inside the bytes */
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    for (;;) {
        int rc = poll(&pf, 1, left_ms(deadline));

        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->eof = true;
            c->err = n < 0 ? errno : 0;
            return 0;
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        return n;
    }
}

static inline void consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* The value of field name in a response head, trimmed; NULL if absent.
 * (Rotating static buffers: a few may be used in one expression.) */
static inline const char *hdr(const char *head, const char *name)
{
    static char vals[4][8192];
    static int next;
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p != NULL && p[2] != '\0') {
        const char *line = p + 2, *end = strstr(line, "\r\n");

        if (end == NULL)
            end = line + strlen(line);
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            char *v = vals[next++ & 3];
            const char *s = line + nl + 1;
            size_t n;

            while (s < end && (*s == ' ' || *s == '\t'))
                s++;
            n = (size_t)(end - s);
            while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
            if (n >= sizeof(vals[0]))
                n = sizeof(vals[0]) - 1;
            memcpy(v, s, n);
            v[n] = '\0';
            return v;
        }
        p = end[0] != '\0' ? end : NULL;
    }
    return NULL;
}

static inline void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Parses one response at the start of buf[0..len): bytes it spans, 0 if
 * incomplete (at_eof: a body without Content-Length ends at EOF), -1 if
 * the bytes are not a response. */
/* A chunked body at buf[0..len): its length on the wire, its data
 * de-chunked into a new *out (*outlen), 0 while incomplete, -1 if bad. */
static inline long dechunk(const char *buf, size_t len, char **out, size_t *outlen)
{
    size_t p = 0, got = 0, n;
    const char *eol;
    char *data = NULL, *end;

    for (;;) {
        eol = memmem(buf + p, len - p, "\r\n", 2);
        if (eol == NULL)
            goto more;
        n = strtoul(buf + p, &end, 16);
        if (end == buf + p)
            goto bad;
        p = (size_t)(eol - buf) + 2;
        if (n == 0)
            break;
        if (len - p < n + 2)
            goto more;
        data = realloc(data, got + n + 1);
        assert_non_null(data);
        memcpy(data + got, buf + p, n);
        got += n;
        p += n + 2;
    }
    /* trailers, then the empty line */
    while ((eol = memmem(buf + p, len - p, "\r\n", 2)) != NULL && eol != buf + p)
        p = (size_t)(eol - buf) + 2;
    if (eol == NULL)
        goto more;
    if (data == NULL)
        data = calloc(1, 1);
    data[got] = '\0';
    *out = data;
    *outlen = got;
    return (long)(p + 2);
more:
    free(data);
    return 0;
bad:
    free(data);
    return -1;
}

static inline long parse_response(const char *buf, size_t len, bool head_req, bool at_eof,
                           struct resp *r)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4), *cl;
    size_t hl, bl;

    if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
        return -1;
    if (end == NULL)
        return 0;
    hl = (size_t)(end - buf) + 4;
    if (hl - 2 >= sizeof(r->head) || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    memcpy(r->head, buf, hl - 2);
    r->head[hl - 2] = '\0';
    cl = hdr(r->head, "Content-Length");
    if (head_req || r->status / 100 == 1 || r->status == 204 || r->status == 304) {
        bl = 0;
    } else if (hdr(r->head, "Transfer-Encoding") != NULL) {
        long k = dechunk(buf + hl, len - hl, &r->body, &r->body_len);

        return k <= 0 ? k : (long)hl + k;
    } else if (cl != NULL)
        bl = (size_t)strtoull(cl, NULL, 10);
    else if (at_eof)
        bl = len - hl;
    else
        return 0;
    if (len - hl < bl)
        return 0;
    r->body = malloc(bl + 1);
    assert_non_null(r->body);
    memcpy(r->body, buf + hl, bl);
    r->body[bl] = '\0';
    r->body_len = bl;
    return (long)(hl + bl);
}

/* Reads one response (ms bound); 0, or -1 with why in *r->head. */
static inline int client_response_ms(struct client *c, bool head_req, struct resp *r, int ms)
{
    int64_t until = now_ms() + ms;
    long n;

    memset(r, 0, offsetof(struct resp, body));
    r->body = NULL;
    for (;;) {
        n = parse_response(c->buf, c->len, head_req, c->eof, r);
        if (n > 0) {
            consume(c, (size_t)n);
            return 0;
        }
        if (n < 0) {
            snprintf(r->head, sizeof(r->head), "(not a response: %.*s)",
                     (int)(c->len < 200 ? c->len : 200), c->buf);
            return -1;
        }
        if (c->eof || client_fill(c, until) <= 0) {
            snprintf(r->head, sizeof(r->head), "(%s after %zu bytes: %.*s)",
                     c->eof ? (c->err ? strerror(c->err) : "EOF") : "timeout", c->len,
                     (int)(c->len < 200 ? c->len : 200), c->buf);
            return -1;
        }
    }
}

static inline void must_respond(struct client *c, bool head_req, struct resp *r)
{
    if (client_response_ms(c, head_req, r, IO_MS) != 0)
        fail_msg("no response: %s", r->head);
}

/* True if the server ends the connection (EOF or reset) within ms, with
 * nothing else sent. */
static inline bool client_eof(struct client *c, int ms)
{
    int64_t until = now_ms() + ms;

    while (!c->eof) {
        if (c->len > 0)
            return false;
        if (client_fill(c, until) < 0)
            return false;
    }
    return c->len == 0;
}

/* One request on a new connection; the response in r; the connection
 * (for more checks) in *out or closed. */
static inline void exchange(const char *raw, bool head_req, struct resp *r, struct client **out)
{
    struct client *c = client_open(D.port);

    assert_true(client_send(c, raw));
    must_respond(c, head_req, r);
    if (out != NULL)
        *out = c;
    else
        client_close(c);
}

static inline void assert_status(const struct resp *r, int status)
{
    if (r->status != status)
        fail_msg("expected status %d, got %d:\n%s", status, r->status, r->head);
}

static inline void assert_header(const struct resp *r, const char *name, const char *value)
{
    const char *v = hdr(r->head, name);

    if (v == NULL || strcmp(v, value) != 0)
        fail_msg("expected '%s: %s', got %s%s in:\n%s", name, value, v ? "'" : "", v ? v : "none",
                 r->head);
}

/* The request gets status, and then the server closes the connection. */
static inline void expect_error_and_close(const char *raw, int status)
{
    struct client *c = client_open(D.port);
    struct resp r;

    client_send(c, raw); /* the server may close before all is sent */
    if (client_response_ms(c, false, &r, IO_MS) != 0)
        fail_msg("request %.60s...: no %d response: %s", raw, status, r.head);
    assert_status(&r, status);
    if (!client_eof(c, 2000))
        fail_msg("request %.60s...: connection still open 2 s after the %d", raw, status);
    resp_free(&r);
    client_close(c);
}

/* ---- curl ---- */

/* Runs "curl -sS --max-time 30 ARGS" through sh; stdout (and stderr) into
 * out; curl's exit code. */
static inline int curl(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int curl(char *out, size_t outlen, const char *fmt, ...)
{
    char args[4096], cmd[4200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "curl -sS --max-time 30 %s 2>&1", args);
    return shell_output(cmd, out, outlen);
}

/* One line of a shell command's output. */
static inline void shell_line(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");

    assert_non_null(p);
    if (fgets(out, (int)outlen, p) == NULL)
        out[0] = '\0';
    pclose(p);
}

/* The number after "key": in a flat JSON body (the status endpoint's). */
static inline long json_count(const char *body, const char *key)
{
    const char *p = strstr(body, key);

    if (p == NULL)
        fail_msg("no %s in %s", key, body);
    p += strlen(key);
    while (*p == '"' || *p == ':' || *p == ' ')
        p++;
    return strtol(p, NULL, 10);
}

/* ---- many connections, as bare descriptors ---- */

/* Descriptors opened by open_many; teardown closes what a failed test left. */
static int many[4096];
static int nmany;

static inline void close_many(void)
{
    while (nmany > 0)
        close(many[--nmany]);
}

/* Appends n new connections to many[]. */
static inline void open_many(int port, int n)
{
    int i, fd;

    assert_true(nmany + n <= (int)(sizeof(many) / sizeof(many[0])));
    for (i = 0; i < n; i++) {
        fd = try_connect(port);
        if (fd < 0)
            fail_msg("connection %d of %d to port %d: %s", nmany, nmany + n - i, port,
                     strerror(errno));
        many[nmany++] = fd;
    }
}

/* Sends req on each of fds[0..n) at once, then reads one response from
 * each (all within ms): every one a 200 with body want. */
static inline void many_request(const int *fds, int n, const char *req, const char *want, int ms)
{
    enum { CAP = 2048 };
    static struct resp r;
    char *buf = malloc((size_t)n * CAP);
    size_t *len = calloc((size_t)n, sizeof(size_t)), rl = strlen(req);
    int *idx = calloc((size_t)n, sizeof(int)), left = n, i, k, rc;
    bool *done = calloc((size_t)n, sizeof(bool));
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    int64_t until = now_ms() + ms;

    assert_true(buf != NULL && len != NULL && idx != NULL && done != NULL && pf != NULL);
    for (i = 0; i < n; i++)
        if (send(fds[i], req, rl, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)rl)
            fail_msg("request on connection %d of %d: %s", i, n, strerror(errno));
    while (left > 0) {
        for (i = k = 0; i < n; i++)
            if (!done[i]) {
                pf[k] = (struct pollfd){fds[i], POLLIN, 0};
                idx[k++] = i;
            }
        rc = poll(pf, (nfds_t)k, left_ms(until));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            fail_msg("%d of %d connections unanswered after %d ms", left, n, ms);
        for (k = 0; rc > 0 && k < left; k++) {
            ssize_t got;
            long used;

            if (pf[k].revents == 0)
                continue;
            rc--;
            i = idx[k];
            got = recv(fds[i], buf + (size_t)i * CAP + len[i], CAP - 1 - len[i], 0);
            if (got <= 0)
                fail_msg("connection %d of %d: %s before a whole response (%zu bytes: %.*s)", i,
                         n, got == 0 ? "EOF" : strerror(errno), len[i], (int)len[i],
                         buf + (size_t)i * CAP);
            len[i] += (size_t)got;
            used = parse_response(buf + (size_t)i * CAP, len[i], false, false, &r);
            if (used < 0 || (used == 0 && len[i] == CAP - 1))
                fail_msg("connection %d of %d: not a response: %.*s", i, n, (int)len[i],
                         buf + (size_t)i * CAP);
            if (used == 0)
                continue;
            if (r.status != 200 || strcmp(r.body, want) != 0 || (size_t)used != len[i])
                fail_msg("connection %d of %d: expected a 200 '%s' alone, got %ld of %zu "
                         "bytes:\n%s\n%s", i, n, want, used, len[i], r.head, r.body);
            resp_free(&r);
            done[i] = true;
            len[i] = 0;
        }
        for (i = left = 0; i < n; i++)
            left += !done[i];
    }
    free(buf);
    free(len);
    free(idx);
    free(done);
    free(pf);
}

/* Waits up to ms for the server to end each of fds[0..n) (EOF or reset,
 * nothing else sent); how many are still open then. */
static inline int many_wait_eof(const int *fds, int n, int ms)
{
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    bool *ended = calloc((size_t)n, sizeof(bool));
    int *idx = calloc((size_t)n, sizeof(int)), left = n, i, k, rc;
    int64_t until = now_ms() + ms;
    char byte;

    assert_true(pf != NULL && ended != NULL && idx != NULL);
    while (left > 0) {
        for (i = k = 0; i < n; i++)
            if (!ended[i]) {
                pf[k] = (struct pollfd){fds[i], POLLIN, 0};
                idx[k++] = i;
            }
        rc = poll(pf, (nfds_t)k, left_ms(until));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        for (k = 0; k < left; k++) {
            ssize_t got;

            if (pf[k].revents == 0)
                continue;
            got = recv(fds[idx[k]], &byte, 1, MSG_DONTWAIT);
            if (got > 0)
                fail_msg("connection %d of %d: bytes where its end was expected", idx[k], n);
            if (got == 0 || errno != EAGAIN)
                ended[idx[k]] = true;
        }
        for (i = left = 0; i < n; i++)
            left += !ended[i];
    }
    free(pf);
    free(ended);
    free(idx);
    return left;
}

/* The daemon's resident set (VmRSS), in KiB. */
static inline long vm_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

/* The status endpoint's "open" count, asked over a new connection (which
 * it counts too). */
static inline long status_open(void)
{
    struct resp r;
    long open;

    exchange("GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    open = json_count(r.body, "\"open\"");
    resp_free(&r);
    return open;
}

/* Reads c up to and including the end of a response head (ms bound):
 * the head without its final CRLF in head. */
static inline void read_head(struct client *c, char *head, size_t cap, int ms)
{
    int64_t until = now_ms() + ms;
    char *e;
    size_t hl;

    while ((e = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL && client_fill(c, until) > 0)
        ;
    if (e == NULL)
        fail_msg("no response head within %d ms (%zu bytes)", ms, c->len);
    hl = (size_t)(e - c->buf) + 4;
    assert_true(hl - 2 < cap);
    memcpy(head, c->buf, hl - 2);
    head[hl - 2] = '\0';
    consume(c, hl);
}


#endif
