/* tests/unit/test_http_engine.c — the HTTP engine of libasync_io
 * (async_io/http.h) as a program uses it, with no daemon: a listener on
 * 127.0.0.1, handlers written as blocking code, and clients that are
 * fibers writing raw bytes and reading the raw answer to the end of the
 * connection (every test's last request says "Connection: close", so
 * EOF ends each exchange without any timing). */
#define _GNU_SOURCE
#include "harness.h"

#include <async_io/http.h>
#include <async_io/layer.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#define BIG (900 * 1024)              /* under the default max_body_bytes */
#define HUGE (3 * 1024 * 1024)          /* over ASYNC_HTTP_DRAIN_MAX_BYTES */

struct env {
    async_listener *l;
    int port;
    async_http_server *srv;     /* NULL: async_http_serve per connection */
    async_task *acceptor;
    char *reply;                /* what the client read, NUL-terminated */
    size_t reply_len;
    _Atomic unsigned calls;
    char log[8192];
    size_t log_len;
};

static struct env E;

/* ---- handlers ---- */

/* Echoes what it was asked, accessors included. */
static int h_info(async_http_request *req, void *ctx)
{
    char body[2048];
    const char *name, *value;
    size_t i, n;

    (void)ctx;
    atomic_fetch_add(&E.calls, 1);
    n = (size_t)snprintf(body, sizeof(body), "m=%s t=%s p=%s q=%s v=%d host=%s peer=%s\n",
                         async_http_method(req), async_http_target(req), async_http_path(req),
                         async_http_query(req), async_http_version(req),
                         async_http_header(req, "hOsT") ? async_http_header(req, "hOsT") : "-",
                         async_http_peer(req));
    for (i = 0; async_http_header_at(req, i, &name, &value) == 0; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "[%s=%s]", name, value);
    CHECK_FAILS(async_http_header_at(req, i, &name, &value), ENOENT);
    return async_http_respond(req, 200, "text/plain", body, n);
}

/* The body back, streamed (chunked unless HTTP/1.0); 413 when too big. */
static int h_echo(async_http_request *req, void *ctx)
{
    char buf[7000];
    ssize_t n;

    (void)ctx;
    while ((n = async_http_read_body(req, buf, sizeof(buf))) > 0)
        if (async_http_write(req, buf, (size_t)n) != 0)
            return -1;
    return n < 0 ? -1 : 0;
}

/* Three pieces and no Content-Length. */
static int h_stream(async_http_request *req, void *ctx)
{
    (void)ctx;
    CHECK_OK(async_http_add_header(req, "X-Kind", "stream"));
    CHECK_OK(async_http_write(req, "one,", 4));
    CHECK_OK(async_http_flush(req));
    CHECK_FAILS(async_http_set_status(req, 201), EALREADY);
    CHECK_FAILS(async_http_add_header(req, "X-Late", "1"), EALREADY);
    CHECK_OK(async_http_write(req, "two,", 4));
    CHECK_OK(async_http_write(req, "three", 5));
    return 0;
}

/* The API's refusals, then an answer. */
static int h_rules(async_http_request *req, void *ctx)
{
    (void)ctx;
    CHECK_FAILS(async_http_add_header(req, "X-Bad", "a\r\nInjected: yes"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "X-Bad", "a\nb"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "Bad Name", "a"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "", "a"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "Transfer-Encoding", "chunked"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "connection", "close"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "Keep-Alive", "5"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "Upgrade", "h2c"), EINVAL);
    CHECK_FAILS(async_http_add_header(req, "Content-Length", "12x"), EINVAL);
    CHECK_FAILS(async_http_set_status(req, 99), EINVAL);
    CHECK_FAILS(async_http_set_status(req, 1000), EINVAL);
    CHECK_OK(async_http_set_status(req, 202));
    CHECK_OK(async_http_add_header(req, "Content-Length", "5"));
    CHECK_OK(async_http_add_header(req, "Server", "mine"));
    CHECK_OK(async_http_write(req, "abc", 3));
    CHECK_FAILS(async_http_write(req, "def", 3), EMSGSIZE);
    CHECK_OK(async_http_write(req, "de", 2));
    return 0;
}

static int h_fail_early(async_http_request *req, void *ctx)
{
    (void)req;
    (void)ctx;
    return -1;
}

/* Promises 100 bytes, sends 5 and gives up. */
static int h_fail_late(async_http_request *req, void *ctx)
{
    (void)ctx;
    CHECK_OK(async_http_add_header(req, "Content-Length", "100"));
    CHECK_OK(async_http_write(req, "short", 5));
    CHECK_OK(async_http_flush(req));
    return -1;
}

/* Ignores whatever body came. */
static int h_ignore(async_http_request *req, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&E.calls, 1);
    return async_http_respond(req, 200, NULL, "ok\n", 3);
}

static char file_path[64];

/* A file, with Content-Length (/file) or chunked (/file-chunked). */
static int h_file(async_http_request *req, void *ctx)
{
    int fd = open(file_path, O_RDONLY), rc;
    char num[32];

    (void)ctx;
    if (fd < 0)
        return -1;
    if (strcmp(async_http_path(req), "/file") == 0) {
        snprintf(num, sizeof(num), "%d", 1000);
        CHECK_OK(async_http_add_header(req, "Content-Length", num));
    }
    rc = async_http_sendfile(req, fd, 100, 1000);
    close(fd);
    return rc;
}

/* ---- the server side ---- */

struct conn_arg {
    async_stream *s;
    async_http_handler fn;
};

static void *conn_fiber(void *arg)
{
    struct conn_arg *a = arg;

    CHECK_OK(async_http_serve(a->s, a->fn, NULL));
    free(a);
    return NULL;
}

static async_http_handler acceptor_fn;

static void *acceptor(void *arg)
{
    async_stream *s;

    (void)arg;
    while ((s = async_listener_accept(E.l)) != NULL) {
        if (E.srv != NULL) {
            if (async_http_server_start(E.srv, s, -1) != 0)
                CHECK(errno == EBUSY);
            continue;
        }
        struct conn_arg *a = malloc(sizeof(*a));
        async_task *t;

        a->s = s;
        a->fn = acceptor_fn;
        t = async_spawn(conn_fiber, a);
        CHECK(t != NULL);
        async_detach(t);
    }
    return NULL;
}

static void server_up(async_http_handler fn)
{
    E.l = async_listener_bind("127.0.0.1:0");
    CHECK(E.l != NULL);
    E.port = async_listener_port(E.l);
    acceptor_fn = fn;
    E.acceptor = async_spawn(acceptor, NULL);
    CHECK(E.acceptor != NULL);
}

static void server_down(void)
{
    async_cancel(E.acceptor);
    async_join(E.acceptor, NULL);
    async_listener_close(E.l);
    if (E.srv != NULL) {
        async_http_server_shutdown(E.srv, async_now_ms() + BOUND_MS);
        async_http_server_free(E.srv);
        E.srv = NULL;
    }
}

/* ---- the client side ---- */

static async_stream *dial(void)
{
    char addr[64];
    async_stream *s;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", E.port);
    s = async_tcp_connect(addr);
    CHECK(s != NULL);
    return s;
}

/* Reads to the end of the connection into E.reply. */
static void read_all(async_stream *s)
{
    size_t cap = 1 << 16;
    ssize_t n;

    free(E.reply);
    E.reply = malloc(cap + 1);
    E.reply_len = 0;
    async_deadline(async_now_ms() + BOUND_MS);
    for (;;) {
        if (E.reply_len == cap)
            E.reply = realloc(E.reply, (cap *= 2) + 1);
        n = async_stream_read(s, E.reply + E.reply_len, cap - E.reply_len);
        if (n <= 0) {
            CHECK(n == 0 || errno == ECONNRESET);
            break;
        }
        E.reply_len += (size_t)n;
    }
    async_deadline(-1);
    E.reply[E.reply_len] = '\0';
}

/* Sends text, then reads the whole answer. */
static void ask(const char *text, size_t len)
{
    async_stream *s = dial();

    if (s == NULL)
        return;
    CHECK_OK(async_stream_write_all(s, text, len));
    read_all(s);
    async_stream_close(s);
}

#define ASK(lit) ask(lit, sizeof(lit) - 1)

static unsigned count(const char *hay, const char *needle)
{
    unsigned n = 0;

    for (; (hay = strstr(hay, needle)) != NULL; hay += strlen(needle))
        n++;
    return n;
}

#define HAS(needle)                                                                     \
    do {                                                                                \
        if (strstr(E.reply, needle) == NULL)                                            \
            failed(__FILE__, __LINE__, "no \"%s\" in:\n%.2000s", needle, E.reply);      \
    } while (0)

/* ---- tests ---- */

static void *t_accessors(void *arg)
{
    (void)arg;
    server_up(h_info);
    ASK("GET /a/./b/../c%20d?x=1&y HTTP/1.1\r\nHost: example.test\r\nX-One: 1\r\n"
        "Connection: close\r\n\r\n");
    HAS("HTTP/1.1 200 OK\r\n");
    HAS("Server: async_io\r\n");
    HAS("\r\nDate: ");
    HAS("Content-Length: ");
    HAS("m=GET t=/a/./b/../c%20d?x=1&y p=/a/c d q=x=1&y v=11 host=example.test peer=127.0.0.1:");
    HAS("[Host=example.test][X-One=1][Connection=close]");
    ASK("GET http://other.test/abs/path HTTP/1.0\r\n\r\n");
    HAS("p=/abs/path q= v=10 host=-");
    HAS("Connection: close\r\n"); /* 1.0 without keep-alive */
    CHECK_FAILS(async_http_serve(NULL, h_info, NULL), EINVAL);
    server_down();
    return NULL;
}

static void http_engine_accessors_give_the_request_as_received_and_decoded(void **state)
{
    (void)state;
    RUN(2, t_accessors, NULL);
}

static void *t_pipeline(void *arg)
{
    (void)arg;
    server_up(h_info);
    atomic_store(&E.calls, 0);
    ASK("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        "HEAD /3 HTTP/1.1\r\nHost: a\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    CHECK_EQ(count(E.reply, "HTTP/1.1 200 OK\r\n"), 4);
    CHECK(strstr(E.reply, "p=/1 ") < strstr(E.reply, "p=/2 "));
    CHECK(strstr(E.reply, "p=/2 ") < strstr(E.reply, "p=/4 "));
    CHECK(strstr(E.reply, "p=/3 ") == NULL); /* HEAD: the head only */
    CHECK_EQ(atomic_load(&E.calls), 4);
    server_down();
    return NULL;
}

static void http_engine_answers_pipelined_requests_in_order_and_head_without_body(void **state)
{
    (void)state;
    RUN(2, t_pipeline, NULL);
}

static void *t_stream(void *arg)
{
    (void)arg;
    server_up(h_stream);
    ASK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    HAS("Transfer-Encoding: chunked\r\n");
    HAS("X-Kind: stream\r\n");
    HAS("\r\n\r\n4\r\none,\r\n");
    HAS("4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n");
    ASK("GET / HTTP/1.0\r\n\r\n");
    HAS("Connection: close\r\n");
    CHECK(strstr(E.reply, "chunked") == NULL);
    CHECK(E.reply_len > 13 && strcmp(E.reply + E.reply_len - 13, "one,two,three") == 0);
    server_down();
    return NULL;
}

static void http_engine_streams_chunked_for_1_1_and_until_close_for_1_0(void **state)
{
    (void)state;
    RUN(1, t_stream, NULL);
}

static void *t_rules(void *arg)
{
    (void)arg;
    server_up(h_rules);
    ASK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    HAS("HTTP/1.1 202 Accepted\r\n");
    HAS("Server: mine\r\n");
    CHECK(strstr(E.reply, "Server: async_io") == NULL);
    CHECK(strstr(E.reply, "Injected") == NULL);
    HAS("Content-Length: 5\r\n");
    CHECK_EQ(count(E.reply, "Content-Length"), 1);
    CHECK(strcmp(E.reply + E.reply_len - 9, "\r\n\r\nabcde") == 0);
    server_down();
    return NULL;
}

static void http_engine_refuses_bad_headers_statuses_and_writes_past_content_length(void **state)
{
    (void)state;
    RUN(1, t_rules, NULL);
}

static void *t_failures(void *arg)
{
    (void)arg;
    server_up(h_fail_early);
    ASK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    HAS("HTTP/1.1 500 Internal Server Error\r\n");
    server_down();
    server_up(h_fail_late);
    ASK("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /again HTTP/1.1\r\nHost: a\r\n\r\n");
    HAS("Content-Length: 100\r\n");
    CHECK(strcmp(E.reply + E.reply_len - 9, "\r\n\r\nshort") == 0); /* then closed */
    CHECK_EQ(count(E.reply, "HTTP/1.1"), 1);
    server_down();
    return NULL;
}

static void http_engine_answers_500_or_closes_when_a_handler_fails(void **state)
{
    (void)state;
    RUN(1, t_failures, NULL);
}

static void *t_bodies(void *arg)
{
    static const char chunked[] =
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n";
    char *big;
    size_t n, i;

    (void)arg;
    server_up(h_echo);
    ASK("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
        "hello world");
    HAS("\r\n\r\nb\r\nhello world\r\n0\r\n\r\n");
    ask(chunked, sizeof(chunked) - 1);
    HAS("hello world");
    /* 900 KiB in pieces that straddle the buffer: every byte back */
    big = malloc(HUGE + 256);
    n = (size_t)sprintf(big, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n"
                             "Connection: close\r\n\r\n", BIG);
    for (i = 0; i < BIG; i++)
        big[n + i] = (char)('a' + i % 26);
    ask(big, n + BIG);
    CHECK(count(E.reply, "HTTP/1.1 200") == 1);
    {
        /* de-chunk what came back and compare */
        const char *p = strstr(E.reply, "\r\n\r\n");
        size_t got = 0, len;
        char *end;

        CHECK(p != NULL);
        for (p = p != NULL ? p + 4 : E.reply; p != NULL && (len = strtoul(p, &end, 16)) > 0;
             p = end + 2 + len + 2) {
            for (i = 0; i < len; i++)
                if (end[2 + i] != (char)('a' + (got + i) % 26))
                    break;
            CHECK_EQ(i, len);
            got += len;
        }
        CHECK_EQ(got, BIG);
    }
    /* over the default 1 MiB: 413 from the handler's -1 */
    n = (size_t)sprintf(big, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "200000\r\n");
    memset(big + n, 'x', 0x200000);
    ask(big, n + 0x200000);
    HAS("HTTP/1.1 413 ");
    /* a malformed chunk: 400 */
    ASK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    HAS("HTTP/1.1 400 ");
    free(big);
    server_down();
    return NULL;
}

static void http_engine_reads_bodies_de_chunked_and_bounded(void **state)
{
    (void)state;
    RUN(2, t_bodies, NULL);
}

static void *t_continue(void *arg)
{
    async_stream *s;
    char buf[256];
    ssize_t n;

    (void)arg;
    server_up(h_echo);
    s = dial();
    if (s == NULL)
        return NULL;
    static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                               "Expect: 100-continue\r\nConnection: close\r\n\r\n";

    CHECK_OK(async_stream_write_all(s, head, sizeof(head) - 1));
    /* nothing of the body was sent: the interim answer must come first */
    async_deadline(async_now_ms() + BOUND_MS);
    n = async_stream_read(s, buf, sizeof(buf) - 1);
    async_deadline(-1);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strcmp(buf, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    CHECK_OK(async_stream_write_all(s, "ping", 4));
    read_all(s);
    async_stream_close(s);
    HAS("HTTP/1.1 200 OK\r\n");
    HAS("4\r\nping\r\n0\r\n\r\n");
    server_down();
    return NULL;
}

static void http_engine_sends_100_continue_on_the_first_body_read(void **state)
{
    (void)state;
    RUN(1, t_continue, NULL);
}

static void *t_unread(void *arg)
{
    char *big;
    size_t n;

    (void)arg;
    E.srv = async_http_server_new(h_ignore, NULL);
    CHECK_OK(async_http_server_set(E.srv, ASYNC_HTTP_MAX_BODY_BYTES, 64 << 20));
    server_up(NULL);
    atomic_store(&E.calls, 0);
    /* a body the handler never reads is read away: the next request is served */
    big = malloc(HUGE + 256);
    n = (size_t)sprintf(big, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n");
    memset(big + n, 'y', 20000);
    n += 20000;
    n += (size_t)sprintf(big + n, "GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    ask(big, n);
    CHECK_EQ(count(E.reply, "HTTP/1.1 200 OK"), 2);
    CHECK_EQ(atomic_load(&E.calls), 2);
    /* past ASYNC_HTTP_DRAIN_MAX_BYTES: answered, then closed */
    n = (size_t)sprintf(big, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", HUGE);
    memset(big + n, 'z', HUGE);
    ask(big, n + 64 * 1024);
    CHECK_EQ(count(E.reply, "HTTP/1.1 200 OK"), 1);
    HAS("Connection: close\r\n");
    free(big);
    server_down();
    return NULL;
}

static void http_engine_reads_away_unread_bodies_up_to_a_bound(void **state)
{
    (void)state;
    RUN(1, t_unread, NULL);
}

static void *t_errors(void *arg)
{
    (void)arg;
    server_up(h_info);
    ASK("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    HAS("HTTP/1.1 400 Bad Request\r\n");
    ASK("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n");
    HAS("HTTP/1.1 400 Bad Request\r\n");
    ASK("GET / HTTP/2.0\r\nHost: a\r\n\r\n");
    HAS("HTTP/1.1 505 ");
    ASK("GET * HTTP/1.1\r\nHost: a\r\n\r\n");
    HAS("HTTP/1.1 400 ");
    ASK("GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n");
    HAS("HTTP/1.1 417 ");
    server_down();
    return NULL;
}

static void http_engine_answers_malformed_requests_itself(void **state)
{
    (void)state;
    RUN(1, t_errors, NULL);
}

/* file_path: a new file of len patterned bytes, also into data. */
static void make_file(char *data, size_t len)
{
    size_t i;
    int fd;

    strcpy(file_path, "/tmp/async-http-engine-XXXXXX");
    fd = mkstemp(file_path);
    CHECK(fd >= 0);
    for (i = 0; i < len; i++)
        data[i] = (char)('A' + i % 26);
    CHECK(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static void *t_sendfile(void *arg)
{
    char data[2000];

    (void)arg;
    make_file(data, sizeof(data));
    server_up(h_file);
    ASK("GET /file HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    HAS("Content-Length: 1000\r\n");
    CHECK(E.reply_len >= 1000 && memcmp(E.reply + E.reply_len - 1000, data + 100, 1000) == 0);
    ASK("GET /file-chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    HAS("Transfer-Encoding: chunked\r\n");
    HAS("\r\n\r\n3e8\r\n");
    CHECK(E.reply_len > 1007 &&
          memcmp(E.reply + E.reply_len - 1007, data + 100, 1000) == 0 &&
          strcmp(E.reply + E.reply_len - 7, "\r\n0\r\n\r\n") == 0);
    server_down();
    unlink(file_path);
    return NULL;
}

static void http_engine_sends_files_with_a_length_or_chunked(void **state)
{
    (void)state;
    RUN(1, t_sendfile, NULL);
}

/* ---- files through a layer (what kernel TLS does) ---- */

/* A layer that passes bytes through unchanged; its sendfile either sends
 * (sendfile(2), at most 700 bytes a call: several calls per file) or says
 * EOPNOTSUPP, as TLS without kernel TLS does.  One connection at a time. */
static struct {
    bool sends;
    _Atomic unsigned calls;     /* to the layer's sendfile */
    _Atomic size_t bytes;       /* it sent */
} pass;

static ssize_t pass_io(async_stream *s, void *buf, size_t len, bool out)
{
    int fd = async_stream_fd(s);
    ssize_t n;

    for (;;) {
        n = out ? send(fd, buf, len, MSG_NOSIGNAL) : recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN ||
            async_stream_socket_wait(s, out ? ASYNC_WRITABLE : ASYNC_READABLE) != 0)
            return -1;
    }
}

static ssize_t pass_read(void *ctx, async_stream *s, void *buf, size_t len)
{
    (void)ctx;
    return pass_io(s, buf, len, false);
}

static ssize_t pass_write(void *ctx, async_stream *s, const void *buf, size_t len)
{
    (void)ctx;
    return pass_io(s, (void *)buf, len, true);
}

static ssize_t pass_try_read(void *ctx, async_stream *s, void *buf, size_t len)
{
    ssize_t n = recv(async_stream_fd(s), buf, len, MSG_DONTWAIT);

    (void)ctx;
    if (n < 0 && errno == EWOULDBLOCK)
        errno = EAGAIN;
    return n;
}

static size_t pass_pending(void *ctx)
{
    (void)ctx;
    return 0;
}

static void pass_free(void *ctx)
{
    (void)ctx;
}

static ssize_t pass_sendfile(void *ctx, async_stream *s, int fd, off_t *off, size_t len)
{
    ssize_t n;

    (void)ctx;
    atomic_fetch_add(&pass.calls, 1);
    if (!pass.sends) {
        errno = EOPNOTSUPP;
        return -1;
    }
    while ((n = sendfile(async_stream_fd(s), fd, off, len < 700 ? len : 700)) < 0 &&
           (errno == EINTR || (errno == EAGAIN && async_stream_socket_wait(s, ASYNC_WRITABLE) == 0)))
        ;
    if (n > 0)
        atomic_fetch_add(&pass.bytes, (size_t)n);
    return n;
}

static const struct async_stream_layer pass_layer = {
    .read = pass_read,
    .write = pass_write,
    .try_read = pass_try_read,
    .pending = pass_pending,
    .free = pass_free,
    .sendfile = pass_sendfile,
};

static void *pass_serve(void *arg)
{
    async_stream *s = async_listener_accept(E.l);

    (void)arg;
    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_stream_set_layer(s, &pass_layer, &pass));
    CHECK_OK(async_http_serve(s, h_file, NULL));
    return NULL;
}

/* Two files on one connection through the layer; the reply in E.reply. */
static void pass_two_files(bool sends)
{
    static const char two[] = "GET /file HTTP/1.1\r\nHost: a\r\n\r\n"
                              "GET /file HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    async_task *srv;
    async_stream *c;

    pass.sends = sends;
    atomic_store(&pass.calls, 0);
    atomic_store(&pass.bytes, 0);
    E.l = async_listener_bind("127.0.0.1:0");
    if (!CHECK(E.l != NULL))
        return;
    E.port = async_listener_port(E.l);
    srv = async_spawn(pass_serve, NULL);
    if ((c = dial()) != NULL) {
        CHECK_OK(async_stream_write_all(c, two, sizeof(two) - 1));
        read_all(c);
        async_stream_close(c);
    }
    async_join(srv, NULL);
    async_listener_close(E.l);
}

static void *t_layer_files(void *arg)
{
    char data[2000];
    const char *body;

    (void)arg;
    make_file(data, sizeof(data));
    /* the layer sends: each file by its sendfile, in pieces, none copied */
    pass_two_files(true);
    CHECK_EQ(count(E.reply, "HTTP/1.1 200 OK\r\n"), 2);
    body = strstr(E.reply, "\r\n\r\n");
    CHECK(body != NULL && memcmp(body + 4, data + 100, 1000) == 0);
    CHECK(E.reply_len >= 1000 && memcmp(E.reply + E.reply_len - 1000, data + 100, 1000) == 0);
    CHECK_EQ(atomic_load(&pass.bytes), 2000);
    CHECK(atomic_load(&pass.calls) >= 4);
    /* it cannot (TLS without kernel TLS): asked once for the connection,
     * then both files are copied through its write */
    pass_two_files(false);
    CHECK_EQ(count(E.reply, "HTTP/1.1 200 OK\r\n"), 2);
    body = strstr(E.reply, "\r\n\r\n");
    CHECK(body != NULL && memcmp(body + 4, data + 100, 1000) == 0);
    CHECK(E.reply_len >= 1000 && memcmp(E.reply + E.reply_len - 1000, data + 100, 1000) == 0);
    CHECK_EQ(atomic_load(&pass.calls), 1);
    CHECK_EQ(atomic_load(&pass.bytes), 0);
    unlink(file_path);
    return NULL;
}

static void http_engine_hands_files_to_a_layer_that_sends_them_and_copies_for_one_that_cannot(
    void **state)
{
    (void)state;
    RUN(1, t_layer_files, NULL);
}

/* ---- the server object ---- */

static void log_fmt(const async_http_request *req, async_http_log_line *line, void *ctx)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s %s %d ", async_http_method(req),
                     async_http_target(req), async_http_status(req));

    (void)ctx;
    async_http_log_add(line, buf, (size_t)n);
    async_http_log_body_bytes(line);
    async_http_log_add(line, "\n", 1);
}

static void log_write(const char *lines, size_t len, void *ctx)
{
    (void)ctx;
    if (E.log_len + len < sizeof(E.log)) {
        memcpy(E.log + E.log_len, lines, len);
        E.log_len += len;
        E.log[E.log_len] = '\0';
    }
}

static void *t_server(void *arg)
{
    struct async_http_stats st;
    async_stream *idle;
    char buf[16];

    (void)arg;
    E.srv = async_http_server_new(h_info, NULL);
    CHECK(E.srv != NULL);
    CHECK_FAILS(async_http_server_set(E.srv, ASYNC_HTTP_MAX_HEADERS, 0), EINVAL);
    CHECK_FAILS(async_http_server_set(E.srv, (enum async_http_option)999, 1), EINVAL);
    CHECK_OK(async_http_server_set(E.srv, ASYNC_HTTP_MAX_CONNECTIONS, 2));
    CHECK_OK(async_http_server_set_name(E.srv, "engine-test"));
    CHECK_OK(async_http_server_set_log(E.srv, log_fmt, log_write, NULL));
    E.log_len = 0;
    server_up(NULL);
    ASK("GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /nope%zz HTTP/1.1\r\nHost: a\r\n\r\n");
    HAS("Server: engine-test\r\n");
    HAS("HTTP/1.1 400 ");
    /* that connection has gone (it lingered until we closed) */
    for (int i = 0; i < BOUND_MS / 5; i++) {
        async_http_server_stats(E.srv, &st);
        if (st.connections_open == 0)
            break;
        async_sleep_ms(5);
    }
    CHECK_EQ(st.connections_open, 0);
    CHECK_FAILS(async_http_server_set(E.srv, ASYNC_HTTP_MAX_HEADERS, 10), EBUSY);
    /* one idle connection holds a place; a third is over the limit */
    idle = dial();
    CHECK_OK(async_stream_write_all(idle, "GET /idle HTTP/1.1\r\nHost: a\r\n\r\n", 31));
    async_deadline(async_now_ms() + BOUND_MS);
    CHECK(async_stream_read(idle, buf, sizeof(buf)) > 0); /* answered: now idle, parked */
    async_deadline(-1);
    {
        async_stream *s1 = dial(), *s2;

        CHECK_OK(async_stream_write_all(s1, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", 28));
        async_deadline(async_now_ms() + BOUND_MS);
        CHECK(async_stream_read(s1, buf, sizeof(buf)) > 0);
        async_deadline(-1);
        s2 = dial();
        read_all(s2);
        HAS("HTTP/1.1 503 Service Unavailable\r\n");
        HAS("Retry-After: 1\r\n");
        async_stream_close(s2);
        async_stream_close(s1);
    }
    async_http_server_stats(E.srv, &st);
    CHECK(st.connections_refused >= 1);
    CHECK(st.responses[2] >= 3);
    CHECK(st.responses[4] >= 1);
    /* shutdown ends the idle connection: its client reads the end */
    async_cancel(E.acceptor);
    async_join(E.acceptor, NULL);
    CHECK_EQ(async_http_server_shutdown(E.srv, async_now_ms() + BOUND_MS), 0);
    read_all(idle);
    async_stream_close(idle);
    async_listener_close(E.l);
    async_http_server_free(E.srv);
    E.srv = NULL;
    if (strstr(E.log, "GET /x 200 ") == NULL || strstr(E.log, "GET /nope%zz 400 16\n") == NULL)
        failed(__FILE__, __LINE__, "log:\n%s", E.log);
    return NULL;
}

static void http_engine_server_limits_counts_logs_and_shuts_down(void **state)
{
    (void)state;
    RUN(2, t_server, NULL);
}

/* ---- tags and hooks ---- */

static int marker;
static _Atomic unsigned logged, done;

/* Tags its exchange, says what it saw of the connection's tag and the
 * host, and answers by path: /fail returns -1, /missing 404. */
static int h_tagged(async_http_request *req, void *ctx)
{
    const char *host = async_http_host(req);
    char body[256];

    (void)ctx;
    async_http_set_tag(req, &marker);
    CHECK(async_http_tag(req) == &marker);
    if (strcmp(async_http_path(req), "/fail") == 0)
        return -1;
    snprintf(body, sizeof(body), "conn=%s host=%s\n",
             async_http_conn_tag(req) == (void *)5 ? "ok" : "bad", host != NULL ? host : "-");
    return async_http_respond(req, strcmp(async_http_path(req), "/missing") == 0 ? 404 : 200,
                              "text/plain", body, strlen(body));
}

static void hook_head(async_http_request *req, void *tag)
{
    char v[16];

    CHECK(tag == &marker);
    snprintf(v, sizeof(v), "%d", async_http_status(req));
    CHECK_OK(async_http_add_header(req, "X-Hook", v));
}

static void hook_done(async_http_request *req, void *tag)
{
    (void)req;
    CHECK(tag == &marker);
    /* after its log line */
    CHECK_EQ(atomic_load(&logged), atomic_load(&done) + 1);
    atomic_fetch_add(&done, 1);
}

static void tag_log_fmt(const async_http_request *req, async_http_log_line *line, void *ctx)
{
    (void)ctx;
    if (async_http_tag(req) == &marker)
        atomic_fetch_add(&logged, 1);
    async_http_log_add(line, "x\n", 2);
}

static void tag_log_write(const char *lines, size_t len, void *ctx)
{
    (void)lines, (void)len, (void)ctx;
}

static void *tagged_acceptor(void *arg)
{
    async_stream *s;

    (void)arg;
    while ((s = async_listener_accept(E.l)) != NULL)
        CHECK_OK(async_http_server_start_tagged(E.srv, s, -1, (void *)5));
    return NULL;
}

static void *t_hooks(void *arg)
{
    const struct async_http_hooks hooks = {.head = hook_head, .done = hook_done};

    (void)arg;
    E.srv = async_http_server_new(h_tagged, NULL);
    CHECK(E.srv != NULL);
    CHECK_FAILS(async_http_server_set_hooks(E.srv, NULL), EINVAL);
    CHECK_OK(async_http_server_set_hooks(E.srv, &hooks));
    CHECK_OK(async_http_server_set_log(E.srv, tag_log_fmt, tag_log_write, NULL));
    E.l = async_listener_bind("127.0.0.1:0");
    CHECK(E.l != NULL);
    E.port = async_listener_port(E.l);
    E.acceptor = async_spawn(tagged_acceptor, NULL);
    ASK("GET /a HTTP/1.1\r\nHost: Ex.test:81\r\n\r\n"
        "GET http://abs.test:8/b HTTP/1.1\r\nHost: ex\r\n\r\n"
        "GET /missing HTTP/1.1\r\nHost: ex\r\n\r\n"
        "GET /fail HTTP/1.1\r\nHost: ex\r\nConnection: close\r\n\r\n");
    HAS("conn=ok host=Ex.test:81\n");
    HAS("conn=ok host=abs.test:8\n");
    HAS("HTTP/1.1 404 Not Found\r\n");
    HAS("X-Hook: 200\r\n");
    HAS("X-Hook: 404\r\n");
    HAS("X-Hook: 500\r\n"); /* the engine's answer to -1, still tagged */
    CHECK_EQ(atomic_load(&done), 4);
    /* the engine's own 400, before any handler: no tag, no hooks */
    ASK("GET / HTTP/1.1\r\nHost: bad host\r\n\r\n");
    HAS("HTTP/1.1 400 ");
    CHECK(strstr(E.reply, "X-Hook") == NULL);
    ASK("GET / HTTP/1.0\r\n\r\n");
    HAS("host=-\n");
    CHECK_EQ(atomic_load(&done), 5);
    CHECK_FAILS(async_http_server_set_hooks(E.srv, &hooks), EBUSY);
    server_down();
    return NULL;
}

static void http_engine_tags_and_hooks_see_every_handled_exchange_once(void **state)
{
    (void)state;
    RUN(2, t_hooks, NULL);
}

/* The error hook: the engine's own errors answered by the program (an
 * error page), tagged so the head and done hooks see them; a hook that
 * sends nothing leaves the built-in answer, without the fields it added. */
static _Atomic unsigned error_calls;

static int h_error(async_http_request *req, int status, void *ctx)
{
    const char *host = async_http_host(req);
    char body[128];

    CHECK(ctx == &error_calls);
    atomic_fetch_add(&error_calls, 1);
    CHECK_OK(async_http_add_header(req, "X-Dropped", "1"));
    if (host != NULL && strcmp(host, "decline.test") == 0)
        return 1; /* no page: the engine's body */
    if (async_http_tag(req) == NULL)
        async_http_set_tag(req, &marker);
    snprintf(body, sizeof(body), "<page %d host=%s>", status, host != NULL ? host : "-");
    return async_http_respond(req, status, "text/html", body, strlen(body));
}

static void *t_error_hook(void *arg)
{
    const struct async_http_hooks hooks = {.head = hook_head, .done = hook_done};

    (void)arg;
    atomic_store(&logged, 0);
    atomic_store(&done, 0);
    E.srv = async_http_server_new(h_tagged, NULL);
    CHECK(E.srv != NULL);
    CHECK_FAILS(async_http_server_set_error_hook(E.srv, NULL, NULL), EINVAL);
    CHECK_OK(async_http_server_set_error_hook(E.srv, h_error, &error_calls));
    CHECK_OK(async_http_server_set_hooks(E.srv, &hooks));
    CHECK_OK(async_http_server_set_log(E.srv, tag_log_fmt, tag_log_write, NULL));
    CHECK_OK(async_http_server_set(E.srv, ASYNC_HTTP_MAX_BODY_BYTES, 100));
    E.l = async_listener_bind("127.0.0.1:0");
    CHECK(E.l != NULL);
    E.port = async_listener_port(E.l);
    E.acceptor = async_spawn(tagged_acceptor, NULL);
    /* a Host the engine refuses: no host to read, the hook's page */
    ASK("GET / HTTP/1.1\r\nHost: bad host\r\n\r\n");
    HAS("HTTP/1.1 400 Bad Request\r\n");
    HAS("X-Hook: 400\r\n"); /* tagged by the error hook: the head hook ran */
    HAS("X-Dropped: 1\r\n");
    HAS("Connection: close\r\n");
    HAS("\r\n\r\n<page 400 host=->");
    CHECK_EQ(atomic_load(&done), 1);
    /* a body past max_body_bytes: the head was read, its host with it */
    ASK("POST /x HTTP/1.1\r\nHost: ex.test\r\nContent-Length: 1000\r\n\r\n");
    HAS("HTTP/1.1 413 ");
    HAS("Connection: close\r\n");
    HAS("<page 413 host=ex.test>");
    CHECK_EQ(atomic_load(&done), 2);
    /* the hook sends nothing: the built-in body, its field dropped */
    ASK("POST /x HTTP/1.1\r\nHost: decline.test\r\nContent-Length: 1000\r\n\r\n");
    HAS("HTTP/1.1 413 Content Too Large\r\n");
    HAS("\r\n\r\n413 Content Too Large\n");
    CHECK(strstr(E.reply, "X-Dropped") == NULL);
    CHECK(strstr(E.reply, "X-Hook") == NULL); /* untagged: no hooks */
    CHECK_EQ(atomic_load(&done), 2);
    /* a handler that failed before answering: already tagged, once */
    ASK("GET /fail HTTP/1.1\r\nHost: ex\r\nConnection: close\r\n\r\n");
    HAS("HTTP/1.1 500 ");
    HAS("X-Hook: 500\r\n");
    HAS("<page 500 host=ex>");
    CHECK_EQ(count(E.reply, "HTTP/1.1 "), 1);
    CHECK_EQ(atomic_load(&done), 3);
    CHECK_EQ(atomic_load(&error_calls), 4);
    CHECK_FAILS(async_http_server_set_error_hook(E.srv, h_error, &error_calls), EBUSY);
    server_down();
    return NULL;
}

static void http_engine_error_hook_answers_the_engines_own_errors_once(void **state)
{
    (void)state;
    RUN(2, t_error_hook, NULL);
}

/* ---- the client ---- */

static int h_mux(async_http_request *req, void *ctx)
{
    if (strcmp(async_http_path(req), "/echo") == 0)
        return h_echo(req, ctx);
    return h_info(req, ctx);
}

/* A call's whole body into E.reply. */
static void call_body(async_http_call *c)
{
    size_t cap = 1 << 16;
    ssize_t n;

    free(E.reply);
    E.reply = malloc(cap + 1);
    E.reply_len = 0;
    for (;;) {
        if (E.reply_len == cap)
            E.reply = realloc(E.reply, (cap *= 2) + 1);
        n = async_http_call_read(c, E.reply + E.reply_len, cap - E.reply_len);
        if (n <= 0) {
            CHECK_EQ(n, 0);
            break;
        }
        E.reply_len += (size_t)n;
    }
    E.reply[E.reply_len] = '\0';
}

static void wait_open(size_t want)
{
    struct async_http_stats st;
    int i;

    for (i = 0; i < BOUND_MS / 5; i++) {
        async_http_server_stats(E.srv, &st);
        if (st.connections_open == want)
            return;
        async_sleep_ms(5);
    }
    failed(__FILE__, __LINE__, "%zu connections open, not %zu", (size_t)st.connections_open, want);
}

static void *t_client(void *arg)
{
    struct async_http_stats st;
    async_http_pool *pool = async_http_pool_new(4);
    async_http_call *c;
    char addr[64], piece[10000];
    int i;

    (void)arg;
    E.srv = async_http_server_new(h_mux, NULL);
    CHECK_OK(async_http_server_set(E.srv, ASYNC_HTTP_KEEPALIVE_TIMEOUT_MS, 300));
    server_up(NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", E.port);
    /* three calls, one connection: the pool keeps it between them */
    for (i = 0; i < 3; i++) {
        c = async_http_call_new(pool, "GET", addr, "/a?b=c");
        CHECK(c != NULL);
        CHECK_OK(async_http_call_add_header(c, "X-Try", "1"));
        CHECK_FAILS(async_http_call_add_header(c, "X-Bad", "a\r\nb: c"), EINVAL);
        CHECK_FAILS(async_http_call_add_header(c, "Transfer-Encoding", "chunked"), EINVAL);
        CHECK_OK(async_http_call_send(c));
        CHECK_EQ(async_http_call_status(c), 200);
        CHECK_EQ(async_http_call_version(c), 11);
        CHECK(async_http_call_header(c, "content-length") != NULL);
        CHECK(strcmp(async_http_call_header(c, "Server"), "async_io") == 0);
        call_body(c);
        HAS("p=/a q=b=c v=11 host=127.0.0.1:");
        HAS("[X-Try=1]");
        async_http_call_free(c);
    }
    CHECK_EQ(async_http_pool_idle(pool), 1);
    async_http_server_stats(E.srv, &st);
    CHECK_EQ(st.connections_total, 1);
    /* a body streamed chunked both ways: 200 KB out, every byte back */
    c = async_http_call_new(pool, "POST", addr, "/echo");
    for (i = 0; i < (int)sizeof(piece); i++)
        piece[i] = (char)('0' + i % 10);
    for (i = 0; i < 20; i++)
        CHECK_OK(async_http_call_write(c, piece, sizeof(piece)));
    CHECK_OK(async_http_call_send(c));
    CHECK_EQ(async_http_call_status(c), 200);
    CHECK(strcmp(async_http_call_header(c, "Transfer-Encoding"), "chunked") == 0);
    call_body(c);
    CHECK_EQ(E.reply_len, 20 * sizeof(piece));
    for (i = 0; i < 20; i++)
        CHECK(memcmp(E.reply + i * sizeof(piece), piece, sizeof(piece)) == 0);
    async_http_call_free(c);
    /* a small body with a length, and HEAD: no body to read */
    c = async_http_call_new(pool, "POST", addr, "/echo");
    CHECK_OK(async_http_call_add_header(c, "Content-Length", "5"));
    CHECK_FAILS(async_http_call_write(c, "123456", 6), EMSGSIZE);
    CHECK_OK(async_http_call_write(c, "12345", 5));
    CHECK_OK(async_http_call_send(c));
    call_body(c);
    CHECK(strcmp(E.reply, "12345") == 0);
    async_http_call_free(c);
    c = async_http_call_new(pool, "HEAD", addr, "/h");
    CHECK_OK(async_http_call_send(c));
    CHECK_EQ(async_http_call_status(c), 200);
    call_body(c);
    CHECK_EQ(E.reply_len, 0);
    async_http_call_free(c);
    async_http_server_stats(E.srv, &st);
    CHECK_EQ(st.connections_total, 1);
    /* the server closes the idle connection: the pool finds out and the
     * next call opens a new one */
    wait_open(0);
    c = async_http_call_new(pool, "GET", addr, "/again");
    CHECK_OK(async_http_call_send(c));
    call_body(c);
    HAS("p=/again");
    async_http_call_free(c);
    async_http_server_stats(E.srv, &st);
    CHECK_EQ(st.connections_total, 2);
    server_down();
    /* nobody listens there any more */
    c = async_http_call_new(NULL, "GET", addr, "/");
    CHECK_FAILS(async_http_call_send(c), ECONNREFUSED);
    async_http_call_free(c);
    CHECK(async_http_call_new(pool, "G T", addr, "/") == NULL);
    CHECK(async_http_call_new(pool, "GET", addr, "/a b") == NULL);
    async_http_pool_free(pool);
    return NULL;
}

static void http_engine_client_calls_reuse_pooled_connections_and_stream_bodies(void **state)
{
    (void)state;
    RUN(2, t_client, NULL);
}

/* A server that answers every connection with the bytes it is given. */
static void *raw_server(void *arg)
{
    const char *answer = arg;
    async_stream *s;
    char buf[4096];

    while ((s = async_listener_accept(E.l)) != NULL) {
        async_deadline(async_now_ms() + BOUND_MS);
        if (async_stream_read(s, buf, sizeof(buf)) > 0 && answer != NULL)
            async_stream_write_all(s, answer, strlen(answer));
        if (answer == NULL) /* silent: wait for the client to go */
            while (async_stream_read(s, buf, sizeof(buf)) > 0)
                ;
        async_deadline(-1);
        async_stream_close(s);
    }
    return NULL;
}

static void call_raw(const char *answer, int err)
{
    async_task *t;
    async_http_call *c;
    char addr[64];

    E.l = async_listener_bind("127.0.0.1:0");
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", async_listener_port(E.l));
    t = async_spawn(raw_server, (void *)answer);
    c = async_http_call_new(NULL, "GET", addr, "/");
    if (answer == NULL)
        async_deadline(async_now_ms() + 200);
    CHECK_FAILS(async_http_call_send(c), err);
    async_deadline(-1);
    async_http_call_free(c);
    async_cancel(t);
    async_join(t, NULL);
    async_listener_close(E.l);
}

/* ---- pooled connections the server closed while they sat idle ---- */

/* A plain server on a thread of its own: answers one request per
 * connection as if it kept it alive, then closes it (as a server whose
 * keep-alive timeout ran out would).  Its k-th connection (k = 1, 2)
 * answers only at step 2k-1 and closes only at step 2k, so that the
 * client is parked in its read when the answer comes (its watcher is
 * started) and its loop has not seen the close when the connection is
 * taken from the pool again. */
static struct {
    int fd, port;
    atomic_int accepted, requests, closed, step;
} once;

static void wait_step(int want)
{
    int i;

    for (i = 0; atomic_load(&once.step) < want && i < 10 * 1000 * 1000; i++) /* bounded */
        sched_yield();
}

static void *answer_once_then_close(void *arg)
{
    char buf[4096], *end;
    size_t len;
    long body;
    ssize_t n;
    int c, k;

    (void)arg;
    while ((c = accept(once.fd, NULL, NULL)) >= 0) {
        k = atomic_fetch_add(&once.accepted, 1) + 1;
        len = 0;
        while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL && len < sizeof(buf) &&
               (n = read(c, buf + len, sizeof(buf) - len)) > 0)
            len += (size_t)n;
        if (end != NULL) {
            char *cl = memmem(buf, (size_t)(end - buf), "Content-Length: ", 16);

            body = cl != NULL ? strtol(cl + 16, NULL, 10) : 0;
            body -= (long)(len - (size_t)(end + 4 - buf));
            while (body > 0 && (n = read(c, buf, sizeof(buf))) > 0)
                body -= n;
            atomic_fetch_add(&once.requests, 1);
            if (k <= 2)
                wait_step(2 * k - 1);
            if (write(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40) != 40)
                break;
        }
        if (k <= 2)
            wait_step(2 * k);
        close(c);
        atomic_fetch_add(&once.closed, 1);
    }
    return NULL;
}

/* Waits for the server's close of connection n without giving this
 * worker's loop a turn: the pool cannot have seen the FIN. */
static void spin_until_closed(int n)
{
    int64_t start = async_now_ms();

    while (atomic_load(&once.closed) < n && !timed_out(start))
        sched_yield();
    CHECK(atomic_load(&once.closed) >= n);
}

struct stale_call {
    async_http_pool *pool;
    const char *method, *addr;
};

static void *call_ok(void *arg)
{
    struct stale_call *sc = arg;
    async_http_call *c = async_http_call_new(sc->pool, sc->method, sc->addr, "/");

    CHECK(c != NULL);
    if (strcmp(sc->method, "POST") == 0) {
        CHECK_OK(async_http_call_add_header(c, "Content-Length", "2"));
        CHECK_OK(async_http_call_write(c, "hi", 2));
    }
    CHECK_OK(async_http_call_send(c));
    CHECK_EQ(async_http_call_status(c), 200);
    call_body(c);
    CHECK(strcmp(E.reply, "ok") == 0);
    async_http_call_free(c);
    return NULL;
}

/* Runs the call in a fiber that is parked in its read when the server
 * answers on its k-th connection; then lets the server close it. */
static void call_answered_while_parked(struct stale_call *sc, int k)
{
    async_task *t = async_spawn(call_ok, sc);

    CHECK(yield_until_at_least(&once.requests, k) && wait_parked(t));
    atomic_store(&once.step, 2 * k - 1);
    CHECK_OK(async_join(t, NULL));
    atomic_store(&once.step, 2 * k);
    spin_until_closed(k);
}

static void *t_client_stale(void *arg)
{
    struct stale_call sc = {async_http_pool_new(4), "GET", NULL};
    char addr[64];

    (void)arg;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", once.port);
    sc.addr = addr;
    call_answered_while_parked(&sc, 1);
    /* its connection is closed, but as far as this worker has seen it is
     * quiet: a GET goes out on it, fails, and is sent again on a new one */
    call_answered_while_parked(&sc, 2);
    CHECK_EQ(atomic_load(&once.accepted), 2);
    /* a POST cannot be sent twice: the pool asks the kernel first, finds
     * the close and opens a new connection */
    sc.method = "POST";
    call_ok(&sc);
    CHECK_EQ(atomic_load(&once.accepted), 3);
    async_http_pool_free(sc.pool);
    return NULL;
}

static void http_engine_client_replaces_pooled_connections_the_server_closed(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    pthread_t server;

    (void)state;
    once.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(once.fd >= 0);
    assert_int_equal(bind(once.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(once.fd, 16), 0);
    assert_int_equal(getsockname(once.fd, (struct sockaddr *)&a, &alen), 0);
    once.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&server, NULL, answer_once_then_close, NULL), 0);
    RUN(1, t_client_stale, NULL);
    shutdown(once.fd, SHUT_RDWR); /* ends the accept */
    pthread_join(server, NULL);
    close(once.fd);
}

static void *t_client_bad(void *arg)
{
    (void)arg;
    call_raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
             EPROTO);
    call_raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", EPROTO);
    call_raw("HTTP/1.1 200 OK\nContent-Length: 1\n\nx", EPROTO);
    call_raw("HTTP/1.1 200 OK\r\n Folded: yes\r\n\r\n", EPROTO);
    call_raw("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", EPROTO);
    call_raw("HTTP/1.1 2x0 OK\r\n\r\n", EPROTO);
    call_raw("", ECONNRESET);     /* closed without a byte */
    call_raw(NULL, ETIMEDOUT);    /* never answers: the fiber's deadline */
    return NULL;
}

static void http_engine_client_refuses_malformed_and_ambiguous_responses(void **state)
{
    (void)state;
    RUN(1, t_client_bad, NULL);
}

/* ---- a pool used with ever new addresses ---- */

#define MANY_ADDRESSES 2000

static _Atomic unsigned open_servers; /* connections the one_address fibers hold */

/* One address's server: its first connection, answered as often as asked
 * until the client closes it.  The listener closes after that accept, so
 * a second connection to the address would be refused. */
static void *one_address(void *arg)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    async_listener *l = arg;
    async_stream *s = async_listener_accept(l);
    char buf[2048];

    async_listener_close(l);
    CHECK(s != NULL);
    atomic_fetch_add(&open_servers, 1);
    /* a request a read (small GETs over the loopback) */
    while (async_stream_read(s, buf, sizeof(buf)) > 0)
        if (async_stream_write_all(s, answer, sizeof(answer) - 1) != 0)
            break;
    async_stream_close(s);
    atomic_fetch_sub(&open_servers, 1);
    return NULL;
}

static void get_ok(async_http_pool *pool, const char *addr)
{
    async_http_call *c = async_http_call_new(pool, "GET", addr, "/");
    char buf[8];

    CHECK(c != NULL);
    CHECK_OK(async_http_call_send(c));
    CHECK_EQ(async_http_call_status(c), 200);
    CHECK_EQ(async_http_call_read(c, buf, sizeof(buf)), 2);
    CHECK_EQ(async_http_call_read(c, buf, sizeof(buf)), 0);
    async_http_call_free(c);
}

/* 2,001 addresses (127.0.0.2 to .251, the whole of 127/8 being the
 * loopback's, each on ports of its own), one keep-alive call each, and a
 * call to the first one between any two: the pool never keeps more than
 * ASYNC_HTTP_POOL_ADDRESSES entries or idle connections on the worker,
 * drops the least recently used (its connection closed: the servers'
 * open connections follow the pool's idle count down), and never the
 * first, whose one connection serves all its calls. */
static void *t_many_addresses(void *arg)
{
    async_http_pool *pool = async_http_pool_new(2);
    async_task **t = calloc(MANY_ADDRESSES + 1, sizeof(*t));
    char addr[64], first[64], host[32];
    unsigned most = 0;
    int64_t until;
    int i;

    (void)arg;
    CHECK(pool != NULL && t != NULL);
    for (i = 0; i <= MANY_ADDRESSES; i++) {
        async_listener *l;

        snprintf(host, sizeof(host), "127.0.0.%d:0", 2 + i % 250);
        l = async_listener_bind(host);
        CHECK(l != NULL);
        snprintf(addr, sizeof(addr), "127.0.0.%d:%d", 2 + i % 250, async_listener_port(l));
        if (i == 0)
            snprintf(first, sizeof(first), "%s", addr);
        t[i] = async_spawn(one_address, l);
        CHECK(t[i] != NULL);
        get_ok(pool, addr);
        get_ok(pool, first);
        if (async_http_pool_addresses(pool) > most)
            most = async_http_pool_addresses(pool);
        CHECK(async_http_pool_addresses(pool) <= ASYNC_HTTP_POOL_ADDRESSES);
        CHECK(async_http_pool_idle(pool) <= ASYNC_HTTP_POOL_ADDRESSES);
    }
    CHECK_EQ(most, ASYNC_HTTP_POOL_ADDRESSES);
    CHECK_EQ(async_http_pool_idle(pool), ASYNC_HTTP_POOL_ADDRESSES);
    /* the dropped connections were closed: their servers saw the end */
    for (until = async_now_ms() + BOUND_MS;
         atomic_load(&open_servers) > async_http_pool_idle(pool) && async_now_ms() < until;)
        async_sleep_ms(1);
    CHECK_EQ(atomic_load(&open_servers), ASYNC_HTTP_POOL_ADDRESSES);
    async_http_pool_free(pool);
    for (i = 0; i <= MANY_ADDRESSES; i++)
        async_join(t[i], NULL);
    CHECK_EQ(atomic_load(&open_servers), 0);
    free(t);
    return NULL;
}

static void http_engine_client_pool_keeps_a_bounded_table_of_addresses(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), bound;

    (void)state;
    inet_pton(AF_INET, "127.0.0.251", &sa.sin_addr);
    bound = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    if (!bound)
        SKIP("no 127.0.0.2-251 on this loopback");
    RUN(1, t_many_addresses, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_engine_accessors_give_the_request_as_received_and_decoded),
        cmocka_unit_test(http_engine_answers_pipelined_requests_in_order_and_head_without_body),
        cmocka_unit_test(http_engine_streams_chunked_for_1_1_and_until_close_for_1_0),
        cmocka_unit_test(http_engine_refuses_bad_headers_statuses_and_writes_past_content_length),
        cmocka_unit_test(http_engine_answers_500_or_closes_when_a_handler_fails),
        cmocka_unit_test(http_engine_reads_bodies_de_chunked_and_bounded),
        cmocka_unit_test(http_engine_sends_100_continue_on_the_first_body_read),
        cmocka_unit_test(http_engine_reads_away_unread_bodies_up_to_a_bound),
        cmocka_unit_test(http_engine_answers_malformed_requests_itself),
        cmocka_unit_test(http_engine_sends_files_with_a_length_or_chunked),
        cmocka_unit_test(
            http_engine_hands_files_to_a_layer_that_sends_them_and_copies_for_one_that_cannot),
        cmocka_unit_test(http_engine_server_limits_counts_logs_and_shuts_down),
        cmocka_unit_test(http_engine_tags_and_hooks_see_every_handled_exchange_once),
        cmocka_unit_test(http_engine_error_hook_answers_the_engines_own_errors_once),
        cmocka_unit_test(http_engine_client_calls_reuse_pooled_connections_and_stream_bodies),
        cmocka_unit_test(http_engine_client_replaces_pooled_connections_the_server_closed),
        cmocka_unit_test(http_engine_client_refuses_malformed_and_ambiguous_responses),
        cmocka_unit_test(http_engine_client_pool_keeps_a_bounded_table_of_addresses),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
