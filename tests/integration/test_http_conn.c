/* The http module's connections against clients that behave unlike curl:
 * ones that write a whole request before they read (the lingering close),
 * that never send a byte, that go away in the middle of a download (the
 * access log's byte count), and a daemon that runs short of descriptors.
 * The real asyncd and http.so, over 127.0.0.1; every wait is bounded. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define HELLO "Hello, World!"
#define IO_MS 10000

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/http-conn-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_mkdir("www");
    write_file("www/index.html", "<p>index</p>\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    close_many();
    daemon_nofile = 0;
    remove_test_dir();
    return 0;
}

/* Starts asyncd with workers and more keys for modules.http ("" or
 * starting with ','). */
static void start(unsigned workers, const char *extra)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"runtime\":{\"workers\":%u},\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\",\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"content_type\":\"text/plain\","
             "\"body\":\"" HELLO "\"}],\n"
             "  \"status_path\":\"/status\",\"access_log\":\"access.log\"%s}}}\n",
             workers, extra);
    write_file("asyncd.json", text);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
}

static void stop(void)
{
    daemon_stop_clean(&D);
}

/* A blocking connection whose sends and receives give up after ms. */
static int blocking_connect(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int fd = try_connect(D.port);

    if (fd < 0)
        fail_msg("connect: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* ================= 1. error answers reach the client ================= */

/* A request that the server refuses before reading it whole, followed by
 * body bytes: what a script that sends everything, then reads, writes. */
struct refused {
    int status;
    const char *name;
    void (*head)(char **buf, size_t *len, size_t body);
};

static void append(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char **buf, size_t *len, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    *buf = realloc(*buf, *len + (size_t)n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, s, (size_t)n + 1);
    *len += (size_t)n;
    free(s);
}

static void append_repeat(char **buf, size_t *len, char ch, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    assert_non_null(*buf);
    memset(*buf + *len, ch, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void head_big_field(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nX-Big: ", body);
    append_repeat(b, n, 'a', 20000);
    append(b, n, "\r\n\r\n");
}

static void head_long_uri(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /");
    append_repeat(b, n, 'u', 100000);
    append(b, n, " HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", body);
}

static void head_too_long_body(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", body);
}

static void head_bad_length(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %zux\r\n\r\n", body);
}

static void head_no_host(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", body);
}

static void head_gzip(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n");
}

static void head_http2(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/2.0\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", body);
}

static void head_expect(char **b, size_t *n, size_t body)
{
    append(b, n, "POST /hello HTTP/1.1\r\nHost: x\r\nExpect: pony\r\nContent-Length: %zu\r\n\r\n",
           body);
}

static const struct refused refusals[] = {
    {431, "a 20 KB header line", head_big_field},
    {414, "a 100 KB URI", head_long_uri},
    {413, "a body over max_body_bytes", head_too_long_body},
    {400, "a malformed Content-Length", head_bad_length},
    {400, "no Host", head_no_host},
    {501, "Transfer-Encoding: gzip", head_gzip},
    {505, "HTTP/2.0", head_http2},
    {417, "Expect: pony", head_expect},
};

/* The whole request in one send, then the answer: status, then the end
 * of the stream (not a reset). */
static void write_then_read(const struct refused *t, size_t body)
{
    char *req = NULL, head[512];
    size_t len = 0, got = 0;
    int fd = blocking_connect(IO_MS), status = 0;
    ssize_t n;
    char buf[4096];

    t->head(&req, &len, body);
    append_repeat(&req, &len, 'b', body);
    n = send(fd, req, len, MSG_NOSIGNAL);
    if (n != (ssize_t)len)
        fail_msg("%s with a %zu-byte body: the send stopped at %zd of %zu bytes (%s)", t->name,
                 body, n, len, n < 0 ? strerror(errno) : "short");
    /* read to the end: the answer, then EOF */
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        if (got + (size_t)n < sizeof(head)) {
            memcpy(head + got, buf, (size_t)n);
            got += (size_t)n;
        }
    }
    if (n < 0)
        fail_msg("%s with a %zu-byte body: %s after %zu bytes of the answer (%.*s)", t->name,
                 body, strerror(errno), got, (int)got, head);
    head[got < sizeof(head) ? got : sizeof(head) - 1] = '\0';
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1 || status != t->status)
        fail_msg("%s with a %zu-byte body: expected %d, got: %s", t->name, body, t->status, head);
    if (strstr(head, "Connection: close\r\n") == NULL)
        fail_msg("%s: no 'Connection: close' in %s", t->name, head);
    close(fd);
    free(req);
}

static void refusals_reach_write_then_read_clients(unsigned workers)
{
    static const size_t bodies[] = {64 << 10, 1 << 20, 16 << 20};
    size_t i, j;

    start(workers, ",\"max_body_bytes\":65535");
    for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
        for (j = 0; j < sizeof(bodies) / sizeof(bodies[0]); j++)
            write_then_read(&refusals[i], bodies[j]);
    stop();
}

static void conn_refusals_reach_write_then_read_clients_1_worker(void **state)
{
    (void)state;
    refusals_reach_write_then_read_clients(1);
}

static void conn_refusals_reach_write_then_read_clients_2_workers(void **state)
{
    (void)state;
    refusals_reach_write_then_read_clients(2);
}

/* A chunked body over the limit: the 413 comes mid-body. */
static void conn_chunked_body_over_the_limit_gets_its_413_before_the_close(void **state)
{
    static const struct refused chunked = {413, "a chunked body over max_body_bytes", NULL};
    char *req = NULL, chunk[16384 + 16];
    size_t len = 0, i;
    int fd;
    ssize_t n;
    struct client *c;
    struct resp r;

    (void)state;
    start(2, ",\"max_body_bytes\":65535");
    append(&req, &len, "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    memset(chunk, 'c', sizeof(chunk));
    for (i = 0; i < 256; i++) { /* 4 MiB */
        append(&req, &len, "4000\r\n");
        append_repeat(&req, &len, 'c', 16384);
        append(&req, &len, "\r\n");
    }
    append(&req, &len, "0\r\n\r\n");
    fd = blocking_connect(IO_MS);
    n = send(fd, req, len, MSG_NOSIGNAL);
    if (n != (ssize_t)len)
        fail_msg("%s: the send stopped at %zd of %zu (%s)", chunked.name, n, len,
                 n < 0 ? strerror(errno) : "short");
    c = client_wrap(fd);
    must_respond(c, false, &r);
    assert_status(&r, 413);
    if (!client_eof(c, IO_MS) || c->err != 0)
        fail_msg("%s: no clean end after the 413 (%s)", chunked.name,
                 c->err ? strerror(c->err) : "still open");
    resp_free(&r);
    client_close(c);
    free(req);
    stop();
}

/* Bytes pipelined after a request that closes the connection are read
 * and dropped, so the answer to that request is not destroyed by a reset. */
static void conn_bytes_after_a_closing_request_do_not_reset_its_answer(void **state)
{
    char *req = NULL, buf[4096], all[1024];
    size_t len = 0, got = 0;
    ssize_t n;
    int fd;

    (void)state;
    start(1, "");
    append(&req, &len, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    append(&req, &len, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n");
    append_repeat(&req, &len, 'p', 4000000);
    fd = blocking_connect(IO_MS);
    n = send(fd, req, len, MSG_NOSIGNAL);
    assert_int_equal(n, (ssize_t)len);
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        if (got + (size_t)n < sizeof(all)) {
            memcpy(all + got, buf, (size_t)n);
            got += (size_t)n;
        }
    if (n < 0)
        fail_msg("%s after %zu bytes", strerror(errno), got);
    all[got] = '\0';
    if (strncmp(all, "HTTP/1.1 200 ", 13) != 0 || strstr(all, "\r\n\r\n" HELLO) == NULL ||
        strstr(all + 13, "HTTP/1.1") != NULL)
        fail_msg("expected the one 200 and nothing after it, got:\n%s", all);
    close(fd);
    free(req);
    stop();
}

/* ================= 2. lingering is bounded ================= */

/* A refused request whose client then neither sends nor closes: the
 * server lingers lingering_timeout_ms, then closes, holding no fiber. */
static void conn_lingering_ends_after_lingering_timeout_when_the_peer_goes_quiet(void **state)
{
    struct client *c;
    struct resp r;
    int64_t t0, until;
    long open;

    (void)state;
    start(2, ",\"lingering_timeout_ms\":1500");
    c = client_open(D.port);
    assert_true(client_send(c, "GET / HTTP/2.0\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    t0 = now_ms();
    assert_status(&r, 505);
    resp_free(&r);
    assert_true(client_eof(c, IO_MS)); /* the server shut its side at once */
    /* still lingering (this status connection is the second) */
    open = status_open();
    if (now_ms() - t0 < 1000 && open != 2)
        fail_msg("expected the lingering connection to be open, the server counts %ld", open);
    until = now_ms() + 5000;
    while ((open = status_open()) != 1 && now_ms() < until)
        pump(&D, 50);
    if (open != 1)
        fail_msg("the lingering connection was not closed within 5 s");
    if (now_ms() - t0 < 1500 - 100)
        fail_msg("closed after %lld ms, before lingering_timeout_ms",
                 (long long)(now_ms() - t0));
    client_close(c);
    stop();
}

/* A client that keeps sending after its refusal is cut at
 * lingering_time_ms, however often it sends. */
static void conn_lingering_stops_at_lingering_time_however_the_peer_trickles(void **state)
{
    struct client *c;
    struct resp r;
    int64_t t0, until, elapsed;
    bool cut = false;

    (void)state;
    start(1, ",\"lingering_time_ms\":1200,\"lingering_timeout_ms\":1000");
    c = client_open(D.port);
    assert_true(client_send(c, "GET / HTTP/2.0\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 505);
    resp_free(&r);
    t0 = now_ms();
    until = t0 + 6000;
    /* a byte every 50 ms (poll as the pace keeper): the server must cut us */
    while (!cut && now_ms() < until) {
        struct pollfd pf = {c->fd, POLLIN, 0};

        if (send(c->fd, "x", 1, MSG_NOSIGNAL) != 1)
            cut = true;
        else if (poll(&pf, 1, 50) > 0 && recv(c->fd, &(char){0}, 1, MSG_DONTWAIT) < 0 &&
                 errno == ECONNRESET)
            cut = true;
    }
    elapsed = now_ms() - t0;
    if (!cut)
        fail_msg("a trickling client is still lingering after 6 s");
    /* the server's lingering began before we read its answer: under load
     * (sanitizers, a busy machine) we start counting up to a few hundred
     * ms late */
    if (elapsed < 1200 - 300 || elapsed > 1200 + 2500)
        fail_msg("cut after %lld ms, lingering_time_ms is 1200", (long long)elapsed);
    client_close(c);
    stop();
}

/* Past lingering_max_bytes the server stops dropping and closes. */
static void conn_lingering_stops_at_lingering_max_bytes(void **state)
{
    char *req = NULL;
    size_t len = 0, sent = 0;
    int fd;
    ssize_t n;

    (void)state;
    start(1, ",\"max_body_bytes\":1024,\"lingering_max_bytes\":1048576");
    append(&req, &len, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 256 << 20);
    append_repeat(&req, &len, 'm', 256 << 20);
    fd = blocking_connect(IO_MS);
    while (sent < len && (n = send(fd, req + sent, len - sent, MSG_NOSIGNAL)) > 0)
        sent += (size_t)n;
    if (sent == len)
        fail_msg("256 MiB were taken in; lingering_max_bytes is 1 MiB");
    if (errno != ECONNRESET && errno != EPIPE)
        fail_msg("the send ended with %s after %zu bytes, not a reset", strerror(errno), sent);
    close(fd);
    free(req);
    stop();
}

/* Reads each of fds[0..n) to its end (ms for all): how many did not end
 * cleanly (a reset, or still open). */
static int many_read_to_end(const int *fds, int n, int ms)
{
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    int64_t until = now_ms() + ms;
    int i, left = n, bad = 0;
    char buf[4096];

    assert_non_null(pf);
    for (i = 0; i < n; i++)
        pf[i] = (struct pollfd){fds[i], POLLIN, 0};
    while (left > 0 && poll(pf, (nfds_t)n, left_ms(until)) > 0)
        for (i = 0; i < n; i++) {
            ssize_t k;

            if (pf[i].revents == 0)
                continue;
            k = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
            if (k > 0 || (k < 0 && errno == EAGAIN))
                continue;
            bad += k < 0;
            pf[i].fd = -1;
            left--;
        }
    free(pf);
    return bad + left;
}

/* Lingering connections are parked like idle ones: a task record each,
 * no fiber stack, no buffer. */
static void conn_lingering_connections_hold_no_stack(void **state)
{
    enum { N = 2000, BATCH = 100 };
    static const char bad[] = "GET / HTTP/2.0\r\nHost: x\r\n\r\n";
    long before, after, open;
    int i, k;
    double per;

    (void)state;
    start(2, ",\"lingering_timeout_ms\":30000");
    /* warm up the allocator with a batch that comes and goes */
    open_many(D.port, BATCH);
    for (k = 0; k < BATCH; k++)
        assert_int_equal(send(many[k], bad, sizeof(bad) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(bad) - 1);
    assert_int_equal(many_read_to_end(many, BATCH, IO_MS), 0);
    close_many();
    {
        int64_t until = now_ms() + 5000;

        while ((open = status_open()) != 1 && now_ms() < until)
            pump(&D, 20);
        assert_int_equal(open, 1);
    }
    before = vm_rss_kb(D.pid);
    for (i = 0; i < N; i += BATCH) {
        open_many(D.port, BATCH);
        for (k = i; k < i + BATCH; k++)
            assert_int_equal(send(many[k], bad, sizeof(bad) - 1, MSG_NOSIGNAL),
                             (ssize_t)sizeof(bad) - 1);
        /* each got its 505 and the server's end of stream: now lingering */
        assert_int_equal(many_read_to_end(many + i, BATCH, IO_MS), 0);
    }
    open = status_open();
    after = vm_rss_kb(D.pid);
    if (open != N + 1)
        fail_msg("the server counts %ld open connections, expected %d lingering + 1", open, N + 1);
    per = (double)(after - before) * 1024.0 / N;
    print_message("      VmRSS %ld -> %ld KiB: %.0f bytes per lingering connection\n", before,
                  after, per);
#ifndef UNDER_ASAN
    if (per > 1024)
        fail_msg("%.0f bytes of RSS per lingering connection (target <= 1024)", per);
#endif
    close_many();
    stop();
}

/* ================= 3. silent connections ================= */

/* Connections that never send a byte hold no stack and no buffer, and end
 * at header_timeout_ms, not at the keep-alive timeout. */
static void conn_silent_connections_hold_no_stack_and_end_at_header_timeout(void **state)
{
    enum { N = 2000, BATCH = 200, HEADER_MS = 2000 };
    long before, after, open;
    int i, left;
    int64_t t0;
    double per;

    (void)state;
    start(2, ",\"header_timeout_ms\":2000,\"keepalive_timeout_ms\":60000");
    assert_int_equal(status_open(), 1); /* and the allocator warmed by one request */
    before = vm_rss_kb(D.pid);
    t0 = now_ms();
    for (i = 0; i < N; i += BATCH)
        open_many(D.port, BATCH);
    /* the server has accepted them all once it counts them */
    {
        int64_t until = now_ms() + 5000;

        while ((open = status_open()) != N + 1 && now_ms() < until)
            pump(&D, 20);
        if (open != N + 1)
            fail_msg("the server counts %ld open connections, expected %d", open, N + 1);
    }
    after = vm_rss_kb(D.pid);
    per = (double)(after - before) * 1024.0 / N;
    print_message("      VmRSS %ld -> %ld KiB: %.0f bytes per silent connection\n", before, after,
                  per);
#ifndef UNDER_ASAN
    if (per > 1024)
        fail_msg("%.0f bytes of RSS per silent connection (a buffer is 12 KiB, a stack 4+)", per);
#endif
    left = many_wait_eof(many, N, HEADER_MS + HEADER_MS / 4 + 3000);
    if (left != 0)
        fail_msg("%d of %d silent connections still open %lld ms after they were made", left, N,
                 (long long)(now_ms() - t0));
    if (now_ms() - t0 < HEADER_MS - 250)
        fail_msg("silent connections ended after %lld ms, before header_timeout_ms",
                 (long long)(now_ms() - t0));
    close_many();
    stop();
}

/* ================= 4. the access log tells the truth ================= */

/* The access log's line for target (bounded wait: lines reach the file
 * within about a second); the byte count in it, or -1. */
static long long logged_bytes(const char *target, int status)
{
    char want[512], *log = NULL;
    const char *at = NULL;
    long long bytes = -1;
    int64_t until = now_ms() + 5000;
    size_t len;

    snprintf(want, sizeof(want), "\"GET %s HTTP/1.1\" %d ", target, status);
    while (now_ms() < until) {
        free(log);
        log = read_bytes("access.log", &len);
        if (log != NULL && (at = strstr(log, want)) != NULL)
            break;
        pump(&D, 50);
    }
    if (at == NULL)
        fail_msg("no line with %s in the access log:\n%s", want, log ? log : "(none)");
    bytes = strtoll(at + strlen(want), NULL, 10);
    free(log);
    return bytes;
}

static void conn_access_log_counts_the_body_bytes_that_left(void **state)
{
    enum { SIZE = 64 << 20 };
    struct linger lg = {1, 0};
    char buf[65536], *data = malloc(SIZE);
    size_t got = 0;
    long long bytes;
    struct client *c;
    struct resp r;
    int fd;
    ssize_t n;

    (void)state;
    assert_non_null(data);
    memset(data, 'd', SIZE);
    write_bytes("www/big.bin", data, SIZE);
    free(data);
    start(2, "");
    /* a download cut after 1 MiB: the client resets */
    fd = blocking_connect(IO_MS);
    assert_true(send(fd, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", 35, 0) == 35);
    while (got < (1 << 20) && (n = recv(fd, buf, sizeof(buf), 0)) > 0)
        got += (size_t)n;
    assert_true(got >= (1 << 20));
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    bytes = logged_bytes("/big.bin", 200);
    print_message("      cut after %zu bytes read: the log says %lld of %d\n", got, bytes, SIZE);
    if (bytes >= SIZE || bytes < (long long)got - 4096)
        fail_msg("the log says %lld bytes for a download cut after %zu of %d", bytes, got, SIZE);
    /* whole answers: their true sizes, pipelined ones included */
    c = client_open(D.port);
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
                               "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    resp_free(&r);
    must_respond(c, false, &r);
    resp_free(&r);
    must_respond(c, true, &r);
    resp_free(&r);
    must_respond(c, false, &r);
    resp_free(&r);
    client_close(c);
    assert_int_equal(logged_bytes("/hello", 200), (long long)strlen(HELLO));
    assert_int_equal(logged_bytes("/index.html", 200), (long long)strlen("<p>index</p>\n"));
    assert_int_equal(logged_bytes("/nothing", 404), (long long)strlen("Not Found\n"));
    {
        char *log = NULL;
        size_t len;

        stop();
        log = read_bytes("access.log", &len);
        assert_non_null(log);
        if (strstr(log, "\"HEAD /hello HTTP/1.1\" 200 0 ") == NULL)
            fail_msg("no HEAD line with 0 bytes in:\n%s", log);
        free(log);
    }
}

/* ================= 5. descriptors ================= */

/* The daemon's descriptors; *deleted: those of deleted files. */
static int fd_count(pid_t pid, int *deleted)
{
    char path[64], link[512], target[1024];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    assert_non_null(d);
    *deleted = 0;
    while ((e = readdir(d)) != NULL) {
        ssize_t k;

        if (e->d_name[0] == '.')
            continue;
        n++;
        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        k = readlink(link, target, sizeof(target) - 1);
        if (k > 0) {
            target[k] = '\0';
            /* a module's private copy (a memfd) is no file of the site */
            *deleted += strstr(target, " (deleted)") != NULL && strncmp(target, "/memfd:", 7) != 0;
        }
    }
    closedir(d);
    return n;
}

/* Files served once are closed when their cache time is over, even when
 * no request comes after them; deleted ones give their blocks back. */
static void conn_open_file_cache_closes_expired_files_while_idle(void **state)
{
    enum { FILES = 300 };
    char name[64], req[128];
    int i, base, peak, now, deleted = 0;
    int64_t until;
    struct client *c;
    struct resp r;

    (void)state;
    for (i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "www/f%d.txt", i);
        write_file(name, "file\n");
    }
    start(2, ",\"open_file_cache_ms\":500");
    base = fd_count(D.pid, &deleted);
    c = client_open(D.port);
    for (i = 0; i < FILES; i++) {
        snprintf(req, sizeof(req), "GET /f%d.txt HTTP/1.1\r\nHost: x\r\n\r\n", i);
        assert_true(client_send(c, req));
        must_respond(c, false, &r);
        assert_status(&r, 200);
        resp_free(&r);
    }
    peak = fd_count(D.pid, &deleted);
    if (peak < base + FILES / 2)
        fail_msg("%d descriptors before, %d after serving %d files: no cache to test?", base, peak,
                 FILES);
    for (i = 0; i < FILES; i++) {
        char path[512];

        snprintf(name, sizeof(name), "www/f%d.txt", i);
        path_of(path, sizeof(path), name);
        assert_int_equal(unlink(path), 0);
    }
    /* nothing more is asked; the cache must empty itself */
    until = now_ms() + 5000;
    while ((now = fd_count(D.pid, &deleted)) > base + 1 && now_ms() < until)
        pump(&D, 50);
    if (now > base + 1 || deleted != 0)
        fail_msg("%d descriptors (%d of deleted files) 5 s after the last request; %d before "
                 "serving, %d after", now, deleted, base, peak);
    client_close(c);
    stop();
}

/* Connections among fds[0..n) that got a 503 within ms (together). */
static int count_503(const int *fds, int n, int want, int ms)
{
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    int64_t until = now_ms() + ms;
    int i, got = 0;

    assert_non_null(pf);
    for (i = 0; i < n; i++)
        pf[i] = (struct pollfd){fds[i], POLLIN, 0};
    while (got < want && poll(pf, (nfds_t)n, left_ms(until)) > 0)
        for (i = 0; i < n; i++) {
            char buf[64] = "";

            if (pf[i].revents == 0)
                continue;
            if (recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT) > 0 &&
                strncmp(buf, "HTTP/1.1 503", 12) == 0)
                got++;
            pf[i].fd = -1; /* answered or ended: once */
        }
    free(pf);
    return got;
}

/* max_connections' default comes from the descriptor limit: with 256
 * descriptors, 231 (a tenth stays for files, logs and the daemon), and
 * the 232nd connection gets the 503. */
static void conn_max_connections_defaults_from_the_descriptor_limit(void **state)
{
    enum { N = 260, MAX = 256 - 256 / 10 };
    struct client *c;
    struct resp r;
    int refused;

    (void)state;
    daemon_nofile = 256;
    start(1, "");
    daemon_nofile = 0;
    wait_log(&D, "max_connections 231 (from the descriptor limit, 256)");
    open_many(D.port, N);
    refused = count_503(many, N, N - MAX, 5000);
    print_message("      %d of %d connections refused with 503\n", refused, N);
    if (refused != N - MAX)
        fail_msg("%d of %d connections got a 503, expected %d", refused, N, N - MAX);
    wait_log(&D, "max_connections (231) reached");
    close_many();
    /* and it serves again, once it has seen those closes (each one an EOF
     * its connection fiber reads in its own time: a loaded machine, ASan,
     * may answer 503 for a moment; a client would retry, as here) */
    for (int64_t until = now_ms() + 10000;;) {
        c = client_open(D.port);
        assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
        must_respond(c, false, &r);
        client_close(c);
        if (r.status != 503 || now_ms() > until)
            break;
        resp_free(&r);
    }
    assert_status(&r, 200);
    resp_free(&r);
    stop();
}

/* Past the descriptor limit, accept waits and the daemon says why, at
 * most once a second; it serves again once descriptors come back. */
static void conn_running_out_of_descriptors_is_logged(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    daemon_nofile = 128;
    start(1, ",\"max_connections\":100000");
    daemon_nofile = 0;
    open_many(D.port, 200);
    wait_log(&D, "asyncd: out of file descriptors: accepting waited ");
    close_many();
    c = client_open(D.port);
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    resp_free(&r);
    client_close(c);
    stop();
}

/* Files that cannot be opened for want of a descriptor get a 503 and the
 * operator a warning, at most once a second; the connection carries on. */
static void conn_running_out_of_descriptors_for_files_is_logged(void **state)
{
    enum { FILES = 100 };
    char name[64], req[128];
    struct client *c;
    struct resp r;
    int i, ok = 0, busy = 0;

    (void)state;
    for (i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "www/f%d.txt", i);
        write_file(name, "file\n");
    }
    daemon_nofile = 64; /* fewer than the files: the open-file cache runs out */
    start(1, ",\"open_file_cache_ms\":60000");
    daemon_nofile = 0;
    c = client_open(D.port);
    for (i = 0; i < FILES; i++) {
        snprintf(req, sizeof(req), "GET /f%d.txt HTTP/1.1\r\nHost: x\r\n\r\n", i);
        assert_true(client_send(c, req));
        must_respond(c, false, &r);
        if (r.status == 503)
            busy++;
        else if (r.status == 200)
            ok++;
        else
            fail_msg("GET /f%d.txt answered %d", i, r.status);
        resp_free(&r);
    }
    print_message("      %d files served, %d answered 503\n", ok, busy);
    if (ok == 0 || busy == 0)
        fail_msg("%d files served and %d answered 503 with 64 descriptors: expected both", ok,
                 busy);
    wait_log(&D, "cannot open a file to serve: Too many open files; ");
    client_close(c);
    stop();
}

/* ================= 6. header count ================= */

static void request_with_fields(int fields, int status)
{
    char *req = NULL;
    size_t len = 0;
    int i;
    struct client *c = client_open(D.port);
    struct resp r;

    append(&req, &len, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (i = 1; i < fields; i++)
        append(&req, &len, "X-F%d: v\r\n", i);
    append(&req, &len, "\r\n");
    assert_true(client_sendn(c, req, len));
    must_respond(c, false, &r);
    if (r.status != status)
        fail_msg("%d fields: expected %d, got %d", fields, status, r.status);
    resp_free(&r);
    client_close(c);
    free(req);
}

static void conn_100_fields_are_accepted_and_max_headers_sets_the_limit(void **state)
{
    (void)state;
    start(1, "");
    request_with_fields(100, 200);
    request_with_fields(101, 431);
    stop();
    start(1, ",\"max_headers\":10");
    request_with_fields(10, 200);
    request_with_fields(11, 431);
    stop();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(conn_refusals_reach_write_then_read_clients_1_worker),
        T(conn_refusals_reach_write_then_read_clients_2_workers),
        T(conn_chunked_body_over_the_limit_gets_its_413_before_the_close),
        T(conn_bytes_after_a_closing_request_do_not_reset_its_answer),
        T(conn_lingering_ends_after_lingering_timeout_when_the_peer_goes_quiet),
        T(conn_lingering_stops_at_lingering_time_however_the_peer_trickles),
        T(conn_lingering_stops_at_lingering_max_bytes),
        T(conn_lingering_connections_hold_no_stack),
        T(conn_silent_connections_hold_no_stack_and_end_at_header_timeout),
        T(conn_access_log_counts_the_body_bytes_that_left),
        T(conn_open_file_cache_closes_expired_files_while_idle),
        T(conn_max_connections_defaults_from_the_descriptor_limit),
        T(conn_running_out_of_descriptors_is_logged),
        T(conn_running_out_of_descriptors_for_files_is_logged),
        T(conn_100_fields_are_accepted_and_max_headers_sets_the_limit),
    };
    struct rlimit rl;

    signal(SIGPIPE, SIG_IGN);
    /* thousands of connections: as many descriptors as allowed */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
