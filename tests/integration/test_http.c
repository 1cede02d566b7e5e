/* The http module as a client sees it: the real asyncd, the real http.so,
 * a document root in a temp folder, and requests over 127.0.0.1 from curl
 * and from raw sockets.  Every wait is bounded; nothing sleeps to
 * synchronise: readiness is the module's "listening" line on stderr,
 * responses and EOFs are awaited with poll. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define HELLO "Hello, World!"
#define SMALL "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" /* www/small.txt, 36 bytes */
#define IO_MS 5000                                   /* default bound for one response */

#include "daemon.h"

/* Whether the test folder's file system has room for bytes more (with a
 * margin); a machine without it skips the big-file tests, saying so. */
static bool room_for(uint64_t bytes)
{
    struct statvfs sv;

    if (statvfs(dir, &sv) != 0)
        return true; /* let the write itself fail, loudly */
    if ((uint64_t)sv.f_bavail * sv.f_frsize >= bytes + (512u << 20))
        return true;
    fprintf(stderr, "%llu MiB free in %s, %llu MiB needed\n",
            (unsigned long long)((uint64_t)sv.f_bavail * sv.f_frsize >> 20), dir,
            (unsigned long long)((bytes + (512u << 20)) >> 20));
    return false;
}

/* A file of size bytes of pseudo-random content (xorshift, seeded per
 * MiB so no two MiB are alike). */
static void make_big_file(const char *name, uint64_t size)
{
    enum { BLOCK = 1 << 20 };
    uint64_t *block = malloc(BLOCK), done = 0, x;
    char path[512];
    int fd;
    size_t i;

    assert_non_null(block);
    path_of(path, sizeof(path), name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    while (done < size) {
        size_t n = size - done < BLOCK ? (size_t)(size - done) : BLOCK;

        x = 0x9E3779B97F4A7C15ull ^ (done / BLOCK + 1);
        for (i = 0; i < BLOCK / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block[i] = x;
        }
        assert_int_equal(write(fd, block, n), (ssize_t)n);
        done += n;
    }
    assert_int_equal(close(fd), 0);
    free(block);
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0};
    char path[512], target[512];

    (void)state;
    test_dir_make("/tmp/http-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_mkdir("www");
    test_dir_mkdir("www/sub");
    write_file("www/index.html", "<!doctype html><title>index</title>\n");
    write_file("www/sub/index.html", "<p>sub</p>\n");
    write_file("www/style.css", "body { color: red }\n");
    write_bytes("www/img.png", png, sizeof(png));
    write_file("www/data.json", "{\"a\":1}\n");
    write_file("www/small.txt", SMALL);
    /* symlinks: one leaving the root, two staying inside it */
    test_dir_symlink("/etc/passwd", "www/evil.txt");
    test_dir_symlink("small.txt", "www/alias.txt");
    test_dir_symlink("../small.txt", "www/sub/up.txt");
    path_of(path, sizeof(path), "www/abs_alias.txt");
    path_of(target, sizeof(target), "www/small.txt");
    assert_int_equal(symlink(target, path), 0);
    return 0;
}

static void close_leftover_clients(void);
static void close_many(void);

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    close_many();
    remove_test_dir();
    return 0;
}

/* asyncd.json with the standard routes; extra is more keys for
 * modules.http ("" or starting with ','). */
static void write_config_full(int shutdown_ms, const char *hello_body, const char *root,
                              const char *extra)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":%d,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"%s\",\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"content_type\":\"text/plain\","
             "\"body\":\"%s\"},\n"
             "            {\"path\":\"/old\",\"status\":301,\"headers\":{\"Location\":\"/new\"}}],\n"
             "  \"status_path\":\"/status\",\"access_log\":\"access.log\"%s}}}\n",
             shutdown_ms, root, hello_body, extra);
    write_file("asyncd.json", text);
}

static void write_config(const char *extra)
{
    write_config_full(5000, HELLO, "www", extra);
}

/* ---- the daemon ---- */

static struct daemon D;

static void start_with(const char *extra)
{
    write_config(extra);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
}

#include "http_client.h"

/* The queues /proc/net/tcp shows for the IPv4 socket from 127.0.0.1:lport
 * to 127.0.0.1:rport: bytes not yet acknowledged by the peer (tx) and
 * not yet read (rx).  False if there is no such socket. */
static bool tcp_queues(int lport, int rport, long *tx, long *rx)
{
    char line[512];
    FILE *f = fopen("/proc/net/tcp", "r");
    bool found = false;

    assert_non_null(f);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned la, lp, ra, rp, st;
        unsigned long txq, rxq;

        if (sscanf(line, " %*d: %x:%x %x:%x %x %lx:%lx", &la, &lp, &ra, &rp, &st, &txq, &rxq) ==
                7 &&
            (int)lp == lport && (int)rp == rport) {
            *tx = (long)txq;
            *rx = (long)rxq;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* ================= 1. routes ================= */

static void http_hello_route_has_status_body_type_length_server_and_date(void **state)
{
    struct resp r;
    const char *date;
    struct tm tm = {0};
    char *end, out[256];
    time_t t;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_int_equal(r.body_len, 13);
    assert_string_equal(r.body, HELLO);
    assert_header(&r, "Content-Type", "text/plain");
    assert_header(&r, "Content-Length", "13");
    assert_non_null(hdr(r.head, "Server"));
    date = hdr(r.head, "Date");
    assert_non_null(date);
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    assert_int_equal(strlen(date), 29);
    end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0')
        fail_msg("Date is not an IMF-fixdate: '%s'", date);
    t = timegm(&tm);
    assert_true(llabs((long long)(t - time(NULL))) <= 5);
    resp_free(&r);
    /* and the same through curl */
    assert_int_equal(curl(out, sizeof(out), "-w ' %%{http_code} %%{content_type}' "
                                            "http://127.0.0.1:%d/hello", D.port), 0);
    assert_string_equal(out, HELLO " 200 text/plain");
    daemon_stop_clean(&D);
}

static void http_old_route_redirects_301_to_new(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /old HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 301);
    assert_header(&r, "Location", "/new");
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_head_hello_sends_headers_without_body(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    exchange("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", true, &r, &c);
    assert_status(&r, 200);
    assert_header(&r, "Content-Length", "13");
    assert_header(&r, "Content-Type", "text/plain");
    resp_free(&r);
    /* No body followed: the next bytes on the connection are the next
     * response's status line. */
    assert_true(client_send(c, "GET /old HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 301);
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

/* ================= 2. keep-alive ================= */

static void http_keepalive_curl_reuses_the_connection(void **state)
{
    char out[256];

    (void)state;
    start_with("");
    assert_int_equal(curl(out, sizeof(out),
                          "-o /dev/null -o /dev/null -w '%%{http_code}:%%{num_connects} ' "
                          "http://127.0.0.1:%d/hello http://127.0.0.1:%d/hello",
                          D.port, D.port), 0);
    assert_string_equal(out, "200:1 200:0 ");
    daemon_stop_clean(&D);
}

static void http_keepalive_two_sequential_requests_on_one_socket(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &c);
    assert_status(&r, 200);
    assert_null(hdr(r.head, "Connection"));
    resp_free(&r);
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, HELLO);
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_1_0_without_keepalive_closes_after_response(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.0\r\n\r\n", false, &r, &c);
    assert_status(&r, 200);
    assert_string_equal(r.body, HELLO);
    assert_true(client_eof(c, 2000));
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_1_0_with_keepalive_stays_open(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, &r, &c);
    assert_status(&r, 200);
    assert_header(&r, "Connection", "keep-alive");
    resp_free(&r);
    assert_true(client_send(c, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 301);
    assert_header(&r, "Connection", "keep-alive");
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_1_1_connection_close_closes_after_response(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, &r, &c);
    assert_status(&r, 200);
    assert_header(&r, "Connection", "close");
    assert_true(client_eof(c, 2000));
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

/* ================= 3. pipelining ================= */

static void http_pipelining_100_requests_answered_in_order(void **state)
{
    char *reqs = malloc(100 * 128), want[64];
    size_t len = 0;
    struct client *c;
    struct resp r;
    int i;

    (void)state;
    assert_non_null(reqs);
    start_with("");
    /* Three kinds, each response telling which request it answers: a
     * redirect echoing the query, the route, HEAD of the route. */
    for (i = 0; i < 100; i++) {
        const char *close = i == 99 ? "Connection: close\r\n" : "";

        if (i % 3 == 0)
            len += (size_t)sprintf(reqs + len, "GET /sub?n=%d HTTP/1.1\r\nHost: x\r\n%s\r\n", i,
                                   close);
        else if (i % 3 == 1)
            len += (size_t)sprintf(reqs + len, "GET /hello HTTP/1.1\r\nHost: x\r\n%s\r\n", close);
        else
            len += (size_t)sprintf(reqs + len, "HEAD /hello HTTP/1.1\r\nHost: x\r\n%s\r\n", close);
    }
    c = client_open(D.port);
    assert_true(client_sendn(c, reqs, len)); /* one write */
    for (i = 0; i < 100; i++) {
        if (client_response_ms(c, i % 3 == 2, &r, IO_MS) != 0)
            fail_msg("response %d of 100 missing: %s", i + 1, r.head);
        if (i % 3 == 0) {
            assert_status(&r, 301);
            snprintf(want, sizeof(want), "/sub/?n=%d", i);
            assert_header(&r, "Location", want);
        } else {
            assert_status(&r, 200);
            assert_header(&r, "Content-Length", "13");
            assert_int_equal(r.body_len, i % 3 == 1 ? 13 : 0);
        }
        resp_free(&r);
    }
    assert_true(client_eof(c, 2000)); /* exactly 100: nothing after the last */
    client_close(c);
    free(reqs);
    daemon_stop_clean(&D);
}

/* ================= 4. request bodies ================= */

static void http_expect_100_continue_sends_interim_response_first(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    c = client_open(D.port);
    assert_true(client_send(c, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               "Expect: 100-continue\r\n\r\n"));
    /* the interim response comes before we send the body */
    must_respond(c, false, &r);
    assert_status(&r, 100);
    assert_true(strncmp(r.head, "HTTP/1.1 100 Continue", 21) == 0);
    resp_free(&r);
    assert_true(client_send(c, "hello"));
    must_respond(c, false, &r);
    assert_status(&r, 405);
    assert_non_null(hdr(r.head, "Allow"));
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_chunked_post_to_route_gets_405_and_connection_stays_usable(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    c = client_open(D.port);
    assert_true(client_send(c, "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               "\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 405);
    assert_non_null(hdr(r.head, "Allow"));
    resp_free(&r);
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, HELLO);
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_content_length_over_max_body_gets_413_and_close(void **state)
{
    char req[4096];
    int n;

    (void)state;
    start_with(",\"max_body_bytes\":1000");
    n = snprintf(req, sizeof(req), "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1500\r\n\r\n");
    memset(req + n, 'a', 1500);
    req[n + 1500] = '\0';
    expect_error_and_close(req, 413);
    daemon_stop_clean(&D);
}

static void http_chunked_body_over_max_body_gets_413(void **state)
{
    char req[4096];
    int n;

    (void)state;
    start_with(",\"max_body_bytes\":1000");
    /* two chunks of 600: the second crosses the limit */
    n = snprintf(req, sizeof(req),
                 "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n");
    memset(req + n, 'a', 600);
    n += 600;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n258\r\n");
    memset(req + n, 'b', 600);
    n += 600;
    snprintf(req + n, sizeof(req) - (size_t)n, "\r\n0\r\n\r\n");
    expect_error_and_close(req, 413);
    daemon_stop_clean(&D);
}

/* ================= 5. static files ================= */

static void http_static_index_html_served_for_root(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "<!doctype html><title>index</title>\n");
    assert_true(strncmp(hdr(r.head, "Content-Type"), "text/html", 9) == 0);
    resp_free(&r);
    exchange("GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "<p>sub</p>\n");
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_static_directory_without_slash_redirects(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /sub HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 301);
    assert_header(&r, "Location", "/sub/");
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_static_mime_types_by_extension(void **state)
{
    static const struct {
        const char *path, *type;
    } t[] = {{"/style.css", "text/css"}, {"/img.png", "image/png"},
             {"/data.json", "application/json"}, {"/small.txt", "text/plain"},
             {"/index.html", "text/html"}};
    char out[256];
    size_t i;

    (void)state;
    start_with("");
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_int_equal(curl(out, sizeof(out), "-o /dev/null -w '%%{http_code} %%{content_type}' "
                                                "http://127.0.0.1:%d%s", D.port, t[i].path), 0);
        if (strncmp(out, "200 ", 4) != 0 || strncmp(out + 4, t[i].type, strlen(t[i].type)) != 0)
            fail_msg("%s: expected 200 %s, got '%s'", t[i].path, t[i].type, out);
    }
    daemon_stop_clean(&D);
}

static void http_static_etag_and_last_modified_present(void **state)
{
    struct resp r;
    const char *etag, *lm;
    struct tm tm = {0};
    struct stat st;
    char path[512], *end;

    (void)state;
    start_with("");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    assert_header(&r, "Content-Length", "36");
    etag = hdr(r.head, "ETag");
    lm = hdr(r.head, "Last-Modified");
    assert_non_null(etag);
    assert_non_null(lm);
    assert_true(etag[0] == '"' && etag[strlen(etag) - 1] == '"');
    end = strptime(lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_true(end != NULL && *end == '\0');
    path_of(path, sizeof(path), "www/small.txt");
    assert_int_equal(stat(path, &st), 0);
    assert_true(timegm(&tm) == st.st_mtime);
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_static_if_none_match_gives_304_without_body(void **state)
{
    struct client *c;
    struct resp r;
    char req[512], etag[128];

    (void)state;
    start_with("");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &c);
    assert_non_null(hdr(r.head, "ETag"));
    snprintf(etag, sizeof(etag), "%s", hdr(r.head, "ETag"));
    resp_free(&r);
    snprintf(req, sizeof(req), "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
             etag);
    assert_true(client_send(c, req));
    must_respond(c, false, &r);
    assert_status(&r, 304);
    assert_header(&r, "ETag", etag);
    resp_free(&r);
    /* no body: the next response follows right away */
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    resp_free(&r);
    /* a different ETag: the file again */
    assert_true(client_send(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"nope\"\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_static_if_modified_since_gives_304(void **state)
{
    struct client *c;
    struct resp r;
    char req[512], lm[64];

    (void)state;
    start_with("");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &c);
    assert_non_null(hdr(r.head, "Last-Modified"));
    snprintf(lm, sizeof(lm), "%s", hdr(r.head, "Last-Modified"));
    resp_free(&r);
    snprintf(req, sizeof(req),
             "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: %s\r\n\r\n", lm);
    assert_true(client_send(c, req));
    must_respond(c, false, &r);
    assert_status(&r, 304);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    /* an older date: the file */
    assert_true(client_send(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n"
                               "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_static_range_first_ten_bytes_gives_206(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n", false, &r, NULL);
    assert_status(&r, 206);
    assert_header(&r, "Content-Range", "bytes 0-9/36");
    assert_header(&r, "Content-Length", "10");
    assert_int_equal(r.body_len, 10);
    assert_string_equal(r.body, "0123456789");
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_static_suffix_range_gives_last_bytes(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=-5\r\n\r\n", false, &r, NULL);
    assert_status(&r, 206);
    assert_header(&r, "Content-Range", "bytes 31-35/36");
    assert_string_equal(r.body, "VWXYZ");
    resp_free(&r);
    /* an empty file has no last bytes to show: the whole of it, 200 (as
     * nginx answers), never a Content-Range whose last byte wraps */
    write_file("www/empty.txt", "");
    exchange("GET /empty.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=-5\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_header(&r, "Content-Length", "0");
    assert_null(hdr(r.head, "Content-Range"));
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_static_unsatisfiable_range_gives_416(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=10000000-\r\n\r\n", false, &r,
             NULL);
    assert_status(&r, 416);
    assert_header(&r, "Content-Range", "bytes */36");
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_static_missing_file_gives_404(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /no/such/file.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 404);
    resp_free(&r);
    exchange("GET /nothing.html HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 404);
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* ================= 6. big files ================= */

static void http_big_file_1gib_downloads_intact(void **state)
{
    char want[256], got[256], cmd[1024], code[64];

    (void)state;
    if (!room_for((uint64_t)1 << 30)) {
        SKIP("not enough free space for a 1 GiB file");
        return;
    }
    make_big_file("www/big.bin", (uint64_t)1 << 30);
    start_with("");
    snprintf(cmd, sizeof(cmd), "sha256sum < '%s/www/big.bin'", dir);
    shell_line(cmd, want, sizeof(want));
    assert_true(strlen(want) >= 64);
    snprintf(cmd, sizeof(cmd), "curl -sS -f --max-time 60 http://127.0.0.1:%d/big.bin | sha256sum",
             D.port);
    shell_line(cmd, got, sizeof(got));
    if (strncmp(want, got, 64) != 0)
        fail_msg("sha256 of the download %.64s differs from the file's %.64s", got, want);
    assert_int_equal(curl(code, sizeof(code), "-I -o /dev/null -w '%%{http_code} %%header{content-length}' "
                                              "http://127.0.0.1:%d/big.bin", D.port), 0);
    assert_string_equal(code, "200 1073741824");
    daemon_stop_clean(&D);
}

static void http_sparse_5gib_file_range_past_4gib_and_head_length(void **state)
{
    static const char marker[] = "MARKER@4.5GiB!!!"; /* 16 bytes */
    const uint64_t size = 5ull << 30, at = 4608ull << 20; /* 4.5 GiB */
    struct resp r;
    char path[512], req[256], want[128];
    int fd;

    (void)state;
    path_of(path, sizeof(path), "www/sparse.bin");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, marker, 16, (off_t)at), 16);
    close(fd);
    start_with("");
    snprintf(req, sizeof(req), "GET /sparse.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=%llu-%llu\r\n\r\n",
             (unsigned long long)at, (unsigned long long)(at + 15));
    exchange(req, false, &r, NULL);
    assert_status(&r, 206);
    snprintf(want, sizeof(want), "bytes %llu-%llu/%llu", (unsigned long long)at,
             (unsigned long long)(at + 15), (unsigned long long)size);
    assert_header(&r, "Content-Range", want);
    assert_int_equal(r.body_len, 16);
    assert_memory_equal(r.body, marker, 16);
    resp_free(&r);
    exchange("HEAD /sparse.bin HTTP/1.1\r\nHost: x\r\n\r\n", true, &r, NULL);
    assert_status(&r, 200);
    assert_header(&r, "Content-Length", "5368709120");
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* ================= 7. errors ================= */

static void http_malformed_request_line_gives_400_and_close(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET/hello HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    expect_error_and_close("GET /hello HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400);
    expect_error_and_close("GET /hello\r\nHost: x\r\n\r\n", 400);
    daemon_stop_clean(&D);
}

static void http_unknown_method_gives_501(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("BREW / HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 501);
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_delete_on_route_gives_405_with_allow(void **state)
{
    struct resp r;
    const char *allow;

    (void)state;
    start_with("");
    exchange("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 405);
    allow = hdr(r.head, "Allow");
    assert_non_null(allow);
    assert_non_null(strstr(allow, "GET"));
    assert_null(strstr(allow, "DELETE"));
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_request_line_over_max_header_bytes_gives_414_and_close(void **state)
{
    char req[4096];

    (void)state;
    start_with(",\"max_header_bytes\":1024");
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', 2000);
    strcpy(req + 2005, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_error_and_close(req, 414);
    daemon_stop_clean(&D);
}

static void http_too_many_headers_gives_431_and_close(void **state)
{
    char req[8192];
    size_t n;
    int i;

    (void)state;
    start_with("");
    n = (size_t)sprintf(req, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (i = 0; i < 100; i++)
        n += (size_t)sprintf(req + n, "X-H%d: v\r\n", i);
    strcpy(req + n, "\r\n");
    expect_error_and_close(req, 431);
    daemon_stop_clean(&D);
}

static void http_huge_header_gives_431_and_close(void **state)
{
    char req[4096];
    size_t n;

    (void)state;
    start_with(",\"max_header_bytes\":1024");
    n = (size_t)sprintf(req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'v', 2000);
    strcpy(req + n + 2000, "\r\n\r\n");
    expect_error_and_close(req, 431);
    daemon_stop_clean(&D);
}

static void http_transfer_encoding_gzip_gives_501_and_close(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    daemon_stop_clean(&D);
}

static void http_version_2_0_gives_505_and_close(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    daemon_stop_clean(&D);
}

static void http_expect_other_than_100_continue_gives_417_and_close(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET /hello HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n", 417);
    daemon_stop_clean(&D);
}

static void http_missing_host_in_1_1_gives_400_and_close(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET /hello HTTP/1.1\r\n\r\n", 400);
    daemon_stop_clean(&D);
}

/* ================= 8. smuggling shapes ================= */

static void http_smuggling_content_length_with_transfer_encoding_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                           400);
    daemon_stop_clean(&D);
}

static void http_smuggling_two_content_lengths_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           "Content-Length: 5\r\n\r\nhello",
                           400);
    daemon_stop_clean(&D);
}

static void http_smuggling_content_length_list_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx", 400);
    daemon_stop_clean(&D);
}

static void http_smuggling_obs_fold_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET /hello HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n", 400);
    daemon_stop_clean(&D);
}

static void http_smuggling_bare_lf_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET /hello HTTP/1.1\nHost: x\n\n", 400);
    expect_error_and_close("GET /hello HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400);
    daemon_stop_clean(&D);
}

static void http_smuggling_bare_cr_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("GET /hello HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400);
    daemon_stop_clean(&D);
}

static void http_smuggling_bad_chunk_size_rejected(void **state)
{
    (void)state;
    start_with("");
    expect_error_and_close("POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "zz\r\nhello\r\n0\r\n\r\n",
                           400);
    daemon_stop_clean(&D);
}

static void http_smuggling_nul_in_header_value_rejected(void **state)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    c = client_open(D.port);
    client_sendn(c, req, sizeof(req) - 1);
    if (client_response_ms(c, false, &r, IO_MS) != 0)
        fail_msg("no response: %s", r.head);
    assert_status(&r, 400);
    assert_true(client_eof(c, 2000));
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

/* ================= 9. traversal ================= */

static void assert_not_passwd(const struct resp *r, const char *what)
{
    if (r->status != 400 && r->status != 404)
        fail_msg("%s: expected 400 or 404, got %d", what, r->status);
    if (r->body != NULL && strstr(r->body, "root:") != NULL)
        fail_msg("%s: served /etc/passwd", what);
}

static void http_traversal_dotdot_never_leaves_the_root(void **state)
{
    struct resp r;
    char out[8192];

    (void)state;
    start_with("");
    exchange("GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_not_passwd(&r, "/../etc/passwd");
    resp_free(&r);
    exchange("GET /sub/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_not_passwd(&r, "/sub/../../../../etc/passwd");
    resp_free(&r);
    curl(out, sizeof(out), "--path-as-is -w '\\n%%{http_code}' http://127.0.0.1:%d/../../etc/passwd",
         D.port);
    assert_null(strstr(out, "root:"));
    daemon_stop_clean(&D);
}

static void http_traversal_encoded_dotdot_never_leaves_the_root(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_not_passwd(&r, "/%2e%2e/%2e%2e/etc/passwd");
    resp_free(&r);
    exchange("GET /%2E%2E%2F%2E%2E%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_not_passwd(&r, "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd");
    resp_free(&r);
    exchange("GET /sub/..%2f..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_not_passwd(&r, "/sub/..%2f..%2f..%2fetc/passwd");
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_traversal_encoded_nul_gives_400(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /index.html%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 400);
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_symlink_out_of_the_root_gives_404(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /evil.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 404);
    assert_null(strstr(r.body, "root:"));
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_symlink_within_the_root_is_served(void **state)
{
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /alias.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL); /* -> small.txt */
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    resp_free(&r);
    exchange("GET /sub/up.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL); /* -> ../small.txt */
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* Kernels before 5.6 have no openat2: the module walks the path itself,
 * one O_NOFOLLOW component at a time, and so refuses every symlink. */
static void http_without_openat2_the_walk_keeps_to_the_root_and_refuses_symlinks(void **state)
{
    static const char *const refused[] = {"/evil.txt", "/alias.txt", "/abs_alias.txt",
                                          "/sub/up.txt"};
    struct resp r;
    char req[256];
    size_t i;

    (void)state;
    setenv("ASYNCD_HTTP_NO_OPENAT2", "1", 1);
    start_with("");
    unsetenv("ASYNCD_HTTP_NO_OPENAT2");
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    resp_free(&r);
    exchange("GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "<p>sub</p>\n");
    resp_free(&r);
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", refused[i]);
        exchange(req, false, &r, NULL);
        assert_status(&r, 404);
        assert_not_passwd(&r, refused[i]);
        resp_free(&r);
    }
    exchange("GET /sub/..%2f..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_not_passwd(&r, "/sub/..%2f..%2f..%2fetc/passwd");
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* ================= 9b. open file cache ================= */

#define FRESH_MS 3000 /* bound for a change to show with the default 1 s cache */

/* GET path on c: the 200 and its body in r. */
static void get_on(struct client *c, const char *path, struct resp *r)
{
    char req[512];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    assert_true(client_send(c, req));
    must_respond(c, false, r);
}

/* Writes text to name.tmp, then renames it over name (a new inode). */
static void replace_by_rename(const char *name, const char *text)
{
    char tmp[512], from[600], to[512];

    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    write_file(tmp, text);
    path_of(from, sizeof(from), tmp);
    path_of(to, sizeof(to), name);
    assert_int_equal(rename(from, to), 0);
}

static void http_open_file_cache_0_serves_a_rewrite_on_the_next_request(void **state)
{
    static const char same_size[] = "abcdefghijklmnopqrstuvwxyz9876543210"; /* as SMALL */
    char etag[64];
    struct client *c;
    struct resp r;

    (void)state;
    assert_int_equal(strlen(same_size), strlen(SMALL));
    start_with(",\"open_file_cache_ms\":0");
    c = client_open(D.port);
    get_on(c, "/small.txt", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, SMALL);
    resp_free(&r);
    /* rewritten in place, same size: the next request on the same
     * connection (same worker) sees the new bytes */
    write_file("www/small.txt", same_size);
    get_on(c, "/small.txt", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, same_size);
    assert_header(&r, "Content-Length", "36");
    snprintf(etag, sizeof(etag), "%s", hdr(r.head, "ETag"));
    resp_free(&r);
    /* a different size: new length, new body, new ETag */
    write_file("www/small.txt", "shorter now\n");
    get_on(c, "/small.txt", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, "shorter now\n");
    assert_header(&r, "Content-Length", "12");
    if (strcmp(hdr(r.head, "ETag"), etag) == 0)
        fail_msg("ETag %s unchanged after the size changed", etag);
    resp_free(&r);
    /* and longer, on a new connection too */
    write_file("www/small.txt", SMALL SMALL);
    get_on(c, "/small.txt", &r);
    assert_string_equal(r.body, SMALL SMALL);
    resp_free(&r);
    exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_string_equal(r.body, SMALL SMALL);
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

/* With the default cache (1 s): a rewrite in place, a replacement by
 * rename and a deletion all show within the cache time; right after a
 * rename the connection that primed the cache still gets the file it
 * holds open (the cache is on). */
static void http_open_file_cache_default_shows_changes_after_its_time(void **state)
{
    static const char *const old[] = {SMALL, "{\"a\":1}\n", "body { color: red }\n"};
    static const char rewritten[] = "rewritten in place, and longer than before\n";
    static const char renamed[] = "{\"renamed\":true}\n";
    char etag[2][64];
    struct client *c;
    struct resp r;
    int64_t primed, until, seen[3] = {-1, -1, -1};
    int i;

    (void)state;
    start_with("");
    c = client_open(D.port);
    /* prime the worker's cache: small.txt, data.json, style.css */
    get_on(c, "/small.txt", &r);
    primed = now_ms();
    assert_string_equal(r.body, old[0]);
    snprintf(etag[0], sizeof(etag[0]), "%s", hdr(r.head, "ETag"));
    resp_free(&r);
    get_on(c, "/data.json", &r);
    assert_string_equal(r.body, old[1]);
    snprintf(etag[1], sizeof(etag[1]), "%s", hdr(r.head, "ETag"));
    resp_free(&r);
    get_on(c, "/style.css", &r);
    assert_string_equal(r.body, old[2]);
    resp_free(&r);
    /* change all three */
    write_file("www/small.txt", rewritten); /* same inode, other size */
    replace_by_rename("www/data.json", renamed);
    {
        char path[512];

        path_of(path, sizeof(path), "www/style.css");
        assert_int_equal(unlink(path), 0);
    }
    /* the cache checks its descriptor on every hit (fstat): a rewrite in
     * place, a rename over the file and an unlink all show at once on the
     * worker that holds them, well within the cache time */
    get_on(c, "/small.txt", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, rewritten);
    assert_string_not_equal(hdr(r.head, "ETag"), etag[0]);
    resp_free(&r);
    get_on(c, "/data.json", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, renamed);
    assert_string_not_equal(hdr(r.head, "ETag"), etag[1]);
    resp_free(&r);
    get_on(c, "/style.css", &r);
    assert_status(&r, 404);
    resp_free(&r);
    client_close(c);
    /* then, polled on new connections (any worker), each change shows */
    until = primed + FRESH_MS;
    while ((seen[0] < 0 || seen[1] < 0 || seen[2] < 0) && now_ms() < until) {
        exchange("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
        assert_status(&r, 200);
        if (seen[0] < 0 && strcmp(r.body, rewritten) == 0) {
            if (strcmp(hdr(r.head, "ETag"), etag[0]) == 0)
                fail_msg("new content of small.txt under the old ETag %s", etag[0]);
            assert_header(&r, "Content-Length", "43");
            seen[0] = now_ms() - primed;
        }
        resp_free(&r);
        exchange("GET /data.json HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
        assert_status(&r, 200);
        if (seen[1] < 0 && strcmp(r.body, renamed) == 0) {
            if (strcmp(hdr(r.head, "ETag"), etag[1]) == 0)
                fail_msg("new content of data.json under the old ETag %s", etag[1]);
            seen[1] = now_ms() - primed;
        } else if (strcmp(r.body, renamed) != 0 && strcmp(r.body, old[1]) != 0) {
            fail_msg("data.json: neither old nor new: '%s'", r.body);
        }
        resp_free(&r);
        exchange("GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
        if (r.status == 404) {
            if (seen[2] < 0)
                seen[2] = now_ms() - primed;
        } else if (r.status != 200 || strcmp(r.body, old[2]) != 0) {
            fail_msg("style.css: neither the old file nor 404: %d '%s'", r.status, r.body);
        }
        resp_free(&r);
        pump(&D, 50); /* a bounded pause that also drains the daemon's stderr */
    }
    for (i = 0; i < 3; i++)
        if (seen[i] < 0)
            fail_msg("%s: change not served %d ms after it was cached",
                     i == 0 ? "small.txt (rewritten)" : i == 1 ? "data.json (renamed over)"
                                                               : "style.css (deleted)", FRESH_MS);
    print_message("      fresh after %lld / %lld / %lld ms\n", (long long)seen[0],
                  (long long)seen[1], (long long)seen[2]);
    daemon_stop_clean(&D);
}

/* A download read slowly while its file is renamed over: the response
 * keeps the descriptor it began with, so its bytes are all the old
 * file's, even once the cache has let that file go and newcomers get the
 * new one.  16 MiB, not less: over loopback the server's send buffer grows
 * to 4 MiB, and a smaller file would be all in the kernel before the
 * rename (checked below through /proc/net/tcp). */
static void http_open_file_cache_download_survives_rename_of_its_file(void **state)
{
    const size_t size = 16u << 20;
    char *want, *fresh, head[4096], path[512], tmp[512];
    struct client *dl;
    struct resp r;
    size_t got = 0, len, wl;
    long tx = -1, rx = -1;
    int fd, lport, rcvbuf = 8192;
    int64_t until, started;
    bool newcomer_new = false;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);

    (void)state;
    make_big_file("www/big.bin", size);
    want = read_bytes("www/big.bin", &wl);
    assert_int_equal(wl, size);
    /* the replacement: other bytes, other size */
    fresh = malloc(size / 2);
    assert_non_null(fresh);
    memset(fresh, 'N', size / 2);
    start_with("");
    /* a reader with a small window, so the server is far from done */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    sa.sin_port = htons((uint16_t)D.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    lport = ntohs(sa.sin_port);
    dl = client_wrap(fd);
    assert_true(client_send(dl, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
    started = now_ms();
    read_head(dl, head, sizeof(head), IO_MS);
    assert_true(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
    assert_int_equal(strtoull(hdr(head, "Content-Length"), NULL, 10), size);
    /* the first 64 KiB */
    until = now_ms() + IO_MS;
    while (dl->len < 65536 && client_fill(dl, until) > 0)
        ;
    assert_true(dl->len >= 65536);
    /* replace the file while most of it is still unread by the server */
    path_of(tmp, sizeof(tmp), "www/big.bin.tmp");
    path_of(path, sizeof(path), "www/big.bin");
    write_bytes("www/big.bin.tmp", fresh, size / 2);
    {
        long ctx, crx, stx, srx;

        if (!tcp_queues(lport, D.port, &ctx, &crx) || !tcp_queues(D.port, lport, &stx, &srx))
            fail_msg("the download's sockets are not in /proc/net/tcp");
        tx = stx;
        rx = crx;
        if ((size_t)(dl->len + (size_t)rx + (size_t)tx) >= size - (4u << 20))
            fail_msg("the server already sent %ld of %zu bytes (read %zu, rx %ld, tx %ld): "
                     "nothing left to test", (long)(dl->len + (size_t)rx + (size_t)tx), size,
                     dl->len, rx, tx);
    }
    assert_int_equal(rename(tmp, path), 0);
    /* while the download stalls past the cache time (so its worker's
     * cache lets the old file go when next asked), newcomers get the new
     * file */
    until = now_ms() + FRESH_MS;
    while ((!newcomer_new || now_ms() - started < 1500) && now_ms() < until) {
        exchange("GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-15\r\n\r\n", false, &r,
                 NULL);
        assert_status(&r, 206);
        newcomer_new = memcmp(r.body, "NNNNNNNNNNNNNNNN", 16) == 0;
        if (!newcomer_new && memcmp(r.body, want, 16) != 0)
            fail_msg("a range of neither the old nor the new file");
        resp_free(&r);
        pump(&D, 50);
    }
    if (!newcomer_new)
        fail_msg("the renamed file was not served within %d ms", FRESH_MS);
    /* the download: every byte the old file's */
    until = now_ms() + 20000;
    while (got < size) {
        len = dl->len;
        if (len > 0) {
            if (len > size - got)
                len = size - got;
            if (memcmp(dl->buf, want + got, len) != 0)
                fail_msg("body differs from the old file within bytes %zu..%zu", got, got + len);
            got += len;
            consume(dl, len);
            continue;
        }
        if (client_fill(dl, until) <= 0)
            break;
    }
    if (got != size)
        fail_msg("download ended after %zu of %zu bytes (%s)", got, size,
                 dl->eof ? (dl->err ? strerror(dl->err) : "EOF") : "timeout");
    /* the connection goes on, and soon gets the new file too */
    until = now_ms() + FRESH_MS;
    do {
        assert_true(client_send(dl, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
        must_respond(dl, false, &r);
        assert_status(&r, 200);
        newcomer_new = r.body_len == size / 2 && memcmp(r.body, fresh, size / 2) == 0;
        if (!newcomer_new && (r.body_len != size || memcmp(r.body, want, size) != 0))
            fail_msg("a response of neither the old nor the new file (%zu bytes)", r.body_len);
        resp_free(&r);
    } while (!newcomer_new && now_ms() < until && pump(&D, 50));
    if (!newcomer_new)
        fail_msg("the download's connection never got the new file");
    client_close(dl);
    free(want);
    free(fresh);
    daemon_stop_clean(&D);
}

static void http_check_config_rejects_bad_open_file_cache_ms_with_78(void **state)
{
    static const char *const bad[] = {",\"open_file_cache_ms\":-1", ",\"open_file_cache_ms\":\"x\"",
                                      ",\"open_file_cache_ms\":1.5"};
    char out[8192], cfg[600];
    size_t i;

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    write_config(",\"open_file_cache_ms\":0"); /* control */
    if (run_to_end("--check-config", cfg, out, sizeof(out)) != 0)
        fail_msg("open_file_cache_ms 0 was rejected:\n%s", out);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_config(bad[i]);
        assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
        if (strstr(out, "open_file_cache_ms") == NULL)
            fail_msg("%s: expected a message naming open_file_cache_ms, got:\n%s", bad[i] + 1, out);
    }
}

/* ================= 10. timeouts ================= */

static void http_header_timeout_sends_408_and_closes(void **state)
{
    struct client *c;
    struct resp r;
    int64_t t0;

    (void)state;
    start_with(",\"header_timeout_ms\":300");
    c = client_open(D.port);
    t0 = now_ms();
    assert_true(client_send(c, "GET /hel"));
    if (client_response_ms(c, false, &r, 1500) != 0)
        fail_msg("no 408 within 1.5 s: %s", r.head);
    assert_status(&r, 408);
    assert_true(now_ms() - t0 >= 250);
    assert_true(client_eof(c, 1500 - (int)(now_ms() - t0)));
    resp_free(&r);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_keepalive_timeout_closes_idle_connection(void **state)
{
    struct client *c;
    struct resp r;
    int64_t t0;

    (void)state;
    start_with(",\"keepalive_timeout_ms\":300");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &c);
    t0 = now_ms();
    assert_status(&r, 200);
    resp_free(&r);
    if (!client_eof(c, 1500))
        fail_msg("idle connection still open %lld ms after its response",
                 (long long)(now_ms() - t0));
    assert_true(now_ms() - t0 >= 250);
    client_close(c);
    daemon_stop_clean(&D);
}

static void http_slowloris_cut_at_header_timeout(void **state)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    struct client *c;
    int64_t t0, until;
    size_t i;
    bool cut = false;

    (void)state;
    start_with(",\"header_timeout_ms\":300");
    c = client_open(D.port);
    t0 = now_ms();
    until = t0 + 1500;
    for (i = 0; i < sizeof(req) - 1 && now_ms() < until; i++) {
        struct pollfd pf = {c->fd, POLLIN, 0};

        if (!client_sendn(c, req + i, 1)) {
            cut = true; /* reset */
            break;
        }
        if (poll(&pf, 1, 100) > 0) { /* one byte per 100 ms, unless the server speaks */
            cut = true;
            break;
        }
    }
    if (!cut)
        fail_msg("slowloris still connected after %lld ms and %zu bytes",
                 (long long)(now_ms() - t0), i);
    /* what it said: a 408 (or nothing), then EOF */
    while (!c->eof && client_fill(c, until) > 0)
        ;
    if (!c->eof)
        fail_msg("no EOF within 1.5 s; got %zu bytes", c->len);
    if (c->len > 0 && strncmp(c->buf, "HTTP/1.1 408 ", 13) != 0)
        fail_msg("expected a 408, got: %.*s", (int)c->len, c->buf);
    assert_true(now_ms() - t0 < 1500);
    client_close(c);
    daemon_stop_clean(&D);
}

/* ================= 11. max_connections ================= */

static void http_max_connections_refuses_sixth_with_503(void **state)
{
    struct client *held[5], *c;
    struct resp r;
    int i;
    int64_t until;
    bool served = false;

    (void)state;
    start_with(",\"max_connections\":5");
    for (i = 0; i < 5; i++) {
        exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &held[i]);
        assert_status(&r, 200);
        resp_free(&r);
    }
    /* the sixth: refused without being asked (so no request of ours is
     * left unread when it closes) */
    c = client_open(D.port);
    must_respond(c, false, &r);
    assert_status(&r, 503);
    assert_true(client_eof(c, 2000));
    resp_free(&r);
    client_close(c);
    /* the held ones still work */
    assert_true(client_send(held[4], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(held[4], false, &r);
    assert_status(&r, 200);
    resp_free(&r);
    /* one leaves; once the server counts 4 open (asked over a held one),
     * a newcomer is served */
    client_close(held[0]);
    until = now_ms() + 3000;
    while (!served && now_ms() < until) {
        assert_true(client_send(held[1], "GET /status HTTP/1.1\r\nHost: x\r\n\r\n"));
        must_respond(held[1], false, &r);
        served = json_count(r.body, "\"open\"") == 4;
        resp_free(&r);
    }
    if (!served)
        fail_msg("the server never saw the closed connection go");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &c);
    assert_status(&r, 200);
    resp_free(&r);
    client_close(c);
    for (i = 1; i < 5; i++)
        client_close(held[i]);
    daemon_stop_clean(&D);
}

/* ================= 11b. idle connections hold no fiber ================= */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define IDLE_N 2000
#define IDLE_BATCH 100
#define IDLE_KEEPALIVE_MS 3000

/* 2000 keep-alive connections, each after one exchange, cost the daemon
 * well under a fiber stack each; each wakes for its next request; the
 * keep-alive timeout ends every one of them. */
static void http_idle_keepalive_connections_cost_no_fiber_wake_and_expire(void **state)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    long before, after, open;
    int i, left;
    int64_t t0, t1;
    double per;

    (void)state;
    start_with(",\"keepalive_timeout_ms\":3000");
    /* warm up: as many connections at once as a batch will use, gone again */
    open_many(D.port, IDLE_BATCH);
    many_request(many, IDLE_BATCH, req, HELLO, IO_MS);
    close_many();
    {
        int64_t until = now_ms() + 3000;

        while ((open = status_open()) != 1 && now_ms() < until)
            pump(&D, 20);
        if (open != 1)
            fail_msg("the warm-up connections are still open (%ld)", open);
    }
    before = vm_rss_kb(D.pid);
    /* the 2000, a batch at a time: one request each, then idle */
    t0 = now_ms();
    for (i = 0; i < IDLE_N; i += IDLE_BATCH) {
        open_many(D.port, IDLE_BATCH);
        many_request(many + i, IDLE_BATCH, req, HELLO, IO_MS);
    }
    open = status_open(); /* after every answer: all handed over by now */
    after = vm_rss_kb(D.pid);
    t1 = now_ms();
    if (open != IDLE_N + 1)
        fail_msg("the server counts %ld open connections, expected %d", open, IDLE_N + 1);
    per = (double)(after - before) * 1024.0 / IDLE_N;
    print_message("      VmRSS %ld -> %ld KiB: %.0f bytes per idle connection (%lld ms)\n", before,
                  after, per, (long long)(t1 - t0));
#ifndef UNDER_ASAN /* ASan's redzones and quarantine are not the daemon's */
    if (per >= 2048)
        fail_msg("%.0f bytes of RSS per idle connection (a fiber stack costs >= 4096)", per);
#endif
    /* all of them wake for a second request */
    for (i = 0; i < IDLE_N; i += IDLE_BATCH)
        many_request(many + i, IDLE_BATCH, req, HELLO, IO_MS);
    t0 = now_ms();
    if (t0 - t1 > IDLE_KEEPALIVE_MS / 2)
        fail_msg("the second round took %lld ms: too slow to tell the timeout apart",
                 (long long)(t0 - t1));
    /* and the keep-alive timeout ends every one: bound = timeout + the
     * sweeper's period (timeout / 4) + slack */
    left = many_wait_eof(many, IDLE_N, IDLE_KEEPALIVE_MS + IDLE_KEEPALIVE_MS / 4 + 2000);
    if (left != 0)
        fail_msg("%d of %d idle connections still open %lld ms after their last response", left,
                 IDLE_N, (long long)(now_ms() - t0));
    if (now_ms() - t0 < IDLE_KEEPALIVE_MS - 250)
        fail_msg("idle connections ended after %lld ms, before the %d ms timeout",
                 (long long)(now_ms() - t0), IDLE_KEEPALIVE_MS);
    close_many();
    {
        int64_t until = now_ms() + 2000;

        while ((open = status_open()) != 1 && now_ms() < until)
            pump(&D, 20);
        assert_int_equal(open, 1);
    }
    daemon_stop_clean(&D);
}

/* ================= 12. status ================= */

static void http_status_endpoint_reports_counters_and_2xx_grows(void **state)
{
    static const char *const keys[] = {"\"connections\"", "\"open\"", "\"total\"", "\"requests\"",
                                       "\"2xx\"", "\"4xx\"", "\"runtime\"", "\"workers\"",
                                       "\"run_queue\""};
    struct resp r;
    long before, after;
    size_t i;
    char out[64];

    (void)state;
    start_with("");
    exchange("GET /status HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_header(&r, "Content-Type", "application/json");
    assert_true(r.body[0] == '{');
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strstr(r.body, keys[i]) == NULL)
            fail_msg("no %s in %s", keys[i], r.body);
    assert_true(json_count(r.body, "\"open\"") >= 1);
    assert_true(json_count(r.body, "\"workers\"") >= 1);
    before = json_count(r.body, "\"2xx\"");
    resp_free(&r);
    for (i = 0; i < 3; i++)
        assert_int_equal(curl(out, sizeof(out), "-o /dev/null http://127.0.0.1:%d/hello", D.port), 0);
    exchange("GET /status HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    after = json_count(r.body, "\"2xx\"");
    if (after < before + 4) /* the first status request and three /hello */
        fail_msg("2xx went from %ld to %ld after 4 successful requests", before, after);
    assert_true(json_count(r.body, "\"total\"") >= 5);
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* ================= 13. access log ================= */

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static void http_access_log_gets_combined_format_lines(void **state)
{
    char out[256], *log = NULL, version[64], want[256];
    size_t len = 0;
    int64_t until;
    int i;

    (void)state;
    start_with("");
    shell_line("curl --version | head -1 | cut -d' ' -f2", version, sizeof(version));
    version[strcspn(version, "\n")] = '\0';
    for (i = 0; i < 3; i++)
        assert_int_equal(curl(out, sizeof(out), "-o /dev/null http://127.0.0.1:%d/hello", D.port), 0);
    assert_int_equal(curl(out, sizeof(out), "-o /dev/null -e http://ref.example/ "
                                            "http://127.0.0.1:%d/missing.txt", D.port), 0);
    /* within ~3 s, buffered lines reach the file */
    until = now_ms() + 3000;
    snprintf(want, sizeof(want), "\"GET /hello HTTP/1.1\" 200 13 \"-\" \"curl/%s\"\n", version);
    while (now_ms() < until) {
        free(log);
        log = read_bytes("access.log", &len);
        if (log != NULL && count_lines(log) >= 4)
            break;
        pump(&D, 50); /* a bounded wait that also drains the daemon's stderr */
    }
    if (log == NULL || count_lines(log) < 4)
        fail_msg("access.log has %d line(s) after 3 s:\n%s", log ? count_lines(log) : 0,
                 log ? log : "(missing)");
    if (strncmp(log, "127.0.0.1 - - [", 15) != 0 || strstr(log, want) == NULL)
        fail_msg("expected combined-format lines with '%s', got:\n%s", want, log);
    snprintf(want, sizeof(want), "\"GET /missing.txt HTTP/1.1\" 404 10 \"http://ref.example/\" "
                                 "\"curl/%s\"\n", version);
    if (strstr(log, want) == NULL)
        fail_msg("expected a line with '%s', got:\n%s", want, log);
    /* the date field: [10/Oct/2000:13:55:36 -0700] */
    {
        struct tm tm = {0};
        const char *end = strptime(log + 15, "%d/%b/%Y:%H:%M:%S", &tm);

        assert_non_null(end);
        assert_true(end[0] == ' ' && (end[1] == '+' || end[1] == '-') && end[6] == ']');
    }
    free(log);
    /* two more, then stop: the stop writes what is buffered */
    for (i = 0; i < 2; i++)
        assert_int_equal(curl(out, sizeof(out), "-o /dev/null http://127.0.0.1:%d/old", D.port), 0);
    daemon_stop_clean(&D);
    log = read_bytes("access.log", &len);
    assert_non_null(log);
    if (count_lines(log) != 6)
        fail_msg("expected 6 lines after the stop, got:\n%s", log);
    assert_non_null(strstr(log, "\"GET /old HTTP/1.1\" 301 0 \"-\""));
    free(log);
}

/* ================= 14. graceful drain ================= */

/* The drain with a download in flight and 300 idle connections that were
 * handed over (no fiber of their own): no idle one is closed under a
 * client that may be sending; those that send a request get it answered
 * with Connection: close, then the end; the silent ones stay open until
 * the drain's deadline nears; the listener refuses new connects; the
 * download completes, the daemon exits 0. */
static void http_sigterm_drains_download_answers_idle_refuses_new(void **state)
{
    const size_t size = 200u << 20;
    struct client *idle, *dl;
    struct resp r;
    char *want, *buf;
    size_t got, len;
    int64_t until;
    int fd;

    (void)state;
    if (!room_for(size)) {
        SKIP("not enough free space for a 200 MiB file");
        return;
    }
    make_big_file("www/drain.bin", size);
    write_config_full(8000, HELLO, "www", "");
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    /* an idle keep-alive connection */
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &idle);
    assert_status(&r, 200);
    resp_free(&r);
    /* a download, read only as far as its head and a little body */
    dl = client_open(D.port);
    assert_true(client_send(dl, "GET /drain.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
    until = now_ms() + IO_MS;
    while (memmem(dl->buf, dl->len, "\r\n\r\n", 4) == NULL && client_fill(dl, until) > 0)
        ;
    assert_non_null(memmem(dl->buf, dl->len, "\r\n\r\n", 4));
    assert_true(strncmp(dl->buf, "HTTP/1.1 200 ", 13) == 0);
    {
        char *e = memmem(dl->buf, dl->len, "\r\n\r\n", 4);
        char head[4096];
        size_t hl = (size_t)(e - dl->buf) + 4;

        assert_true(hl < sizeof(head));
        memcpy(head, dl->buf, hl - 2);
        head[hl - 2] = '\0';
        assert_non_null(hdr(head, "Content-Length"));
        assert_int_equal(strtoull(hdr(head, "Content-Length"), NULL, 10), size);
        consume(dl, hl);
    }

    /* 300 more idle ones, each after one exchange */
    open_many(D.port, 300);
    many_request(many, 300, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", HELLO, IO_MS);

    assert_int_equal(kill(D.pid, SIGTERM), 0);
    wait_next(&D, "draining: every module is cancelled");
    /* an idle one that sends gets its answer, the last on the connection */
    assert_true(client_send(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(idle, false, &r);
    assert_status(&r, 200);
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    if (!client_eof(idle, 3000))
        fail_msg("the connection stayed open after its Connection: close answer");
    client_close(idle);
    /* so do half of the 300, at once */
    many_request(many, 150, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", HELLO, IO_MS);
    {
        int left = many_wait_eof(many, 150, 3000);

        if (left != 0)
            fail_msg("%d of 150 connections stayed open after their last answer", left);
    }
    /* the silent half is still open: closing it now would reset a request
     * on its way (the deadline is 8 s off) */
    if (many_wait_eof(many + 150, 150, 200) != 150)
        fail_msg("silent keep-alive connections were closed at the start of the drain");
    /* the listener goes too (the stop wakes the acceptors and the idle
     * connections together, so it may close a moment after them) */
    until = now_ms() + 2000;
    while ((fd = try_connect(D.port)) >= 0 && now_ms() < until) {
        close(fd);
        usleep(10000); /* polling a bounded wait, not synchronising */
    }
    if (fd >= 0) {
        close(fd);
        fail_msg("the listener still accepts connections 2 s into the drain");
    }
    assert_int_equal(errno, ECONNREFUSED);
    /* the download completes, byte for byte, then the server closes */
    want = malloc(size);
    buf = NULL;
    assert_non_null(want);
    {
        char path[512];
        int ffd;

        path_of(path, sizeof(path), "www/drain.bin");
        ffd = open(path, O_RDONLY);
        assert_true(ffd >= 0);
        assert_int_equal(read(ffd, want, size), (ssize_t)size);
        close(ffd);
    }
    got = 0;
    until = now_ms() + 20000;
    while (got < size) {
        len = dl->len;
        if (len > 0) {
            if (len > size - got)
                len = size - got;
            if (memcmp(dl->buf, want + got, len) != 0)
                fail_msg("body differs from the file within bytes %zu..%zu", got, got + len);
            got += len;
            consume(dl, len);
            continue;
        }
        if (client_fill(dl, until) <= 0)
            break;
    }
    if (got != size)
        fail_msg("download ended after %zu of %zu bytes (%s)", got, size,
                 dl->eof ? (dl->err ? strerror(dl->err) : "EOF") : "timeout");
    /* the download's head said keep-alive: its next request is answered,
     * and closes it */
    get_on(dl, "/hello", &r);
    assert_status(&r, 200);
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    assert_true(client_eof(dl, 3000));
    free(want);
    free(buf);
    client_close(dl);
    /* the silent ones are closed as the deadline nears */
    {
        int left = many_wait_eof(many + 150, 150, 12000);

        if (left != 0)
            fail_msg("%d of 150 silent connections not closed by the drain's deadline", left);
    }
    close_many();
    {
        int rc = reap(&D, 25000);

        if (rc != 0)
            fail_msg("asyncd exited %d; log:\n%s", rc, D.log);
    }
}

/* ================= 15. reload ================= */

static void http_reload_serves_the_new_route_body(void **state)
{
    struct resp r;
    size_t from;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_string_equal(r.body, HELLO);
    resp_free(&r);
    write_config_full(5000, "Hello, Reloaded!", "www", "");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    from = D.mark;
    wait_from(&D, from, "reloaded: 1 module(s) running");
    /* only routes changed: applied in place, on the same listener */
    assert_non_null(strstr(D.log + from, "module http: config changed, applied in place"));
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "Hello, Reloaded!");
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* Waits (10 s bound) until text appears n times in asyncd's log. */
static void wait_count(struct daemon *d, const char *text, int n)
{
    int64_t until = now_ms() + 10000;
    int k;

    for (;;) {
        const char *p = d->log;

        for (k = 0; (p = strstr(p, text)) != NULL; k++)
            p += strlen(text);
        if (k >= n)
            return;
        if (now_ms() >= until || !pump(d, left_ms(until)))
            fail_msg("'%s' appeared %d times, not %d, in asyncd's log:\n%s", text, k, n, d->log);
    }
}

#define RACE_ROUNDS 20
#define RACE_CONNS 8

/* Requests that reach handed-over (idle, fiberless) connections while the
 * module restarts for a changed route body and header timeout: each gets a whole answer from
 * the old config or the new one, never a close with nothing sent (the old
 * generation drains: an idle connection answers its next request with
 * Connection: close), a hang or a broken response; an answer that came
 * before the drain (keep-alive) leaves the connection usable, and its
 * next answer closes it.  The port stays (the daemon keeps the socket).
 * The sends are spread from just before the SIGHUP to ~10 ms after it,
 * shifted each round. */
static void http_reload_racing_requests_on_idle_connections(void **state)
{
    char body[2][64];
    struct client *c[RACE_CONNS];
    struct resp r;
    int round, i, k, answered = 0, closed = 0;

    (void)state;
    snprintf(body[0], sizeof(body[0]), "gen-0");
    /* a header timeout that changes each round: the engine's, so the
     * module restarts (a route body alone is applied in place) */
    write_config_full(5000, body[0], "www", ",\"header_timeout_ms\":10000");
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    for (round = 1; round <= RACE_ROUNDS; round++) {
        int64_t t0;
        int delay_us[RACE_CONNS];
        bool sent[RACE_CONNS] = {false};

        char extra[64];

        snprintf(body[1], sizeof(body[1]), "gen-%d", round);
        snprintf(extra, sizeof(extra), ",\"header_timeout_ms\":%d", 10000 + round);
        for (i = 0; i < RACE_CONNS; i++) {
            c[i] = client_open(D.port);
            get_on(c[i], "/hello", &r);
            assert_status(&r, 200);
            assert_string_equal(r.body, body[0]);
            resp_free(&r);
            /* -1 ms .. +10 ms around the signal, a different mix each round */
            delay_us[i] = -1000 + ((round * 3 + i * 7) % RACE_CONNS) * 11000 / RACE_CONNS +
                          (round * 137) % 1000;
        }
        write_config_full(5000, body[1], "www", extra);
        t0 = now_ms() * 1000;
        for (i = 0; i < RACE_CONNS; i++)
            if (delay_us[i] < 0) {
                assert_true(client_send(c[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
                sent[i] = true;
            }
        assert_int_equal(kill(D.pid, SIGHUP), 0);
        for (;;) {
            int next = -1;

            for (i = 0; i < RACE_CONNS; i++)
                if (!sent[i] && (next < 0 || delay_us[i] < delay_us[next]))
                    next = i;
            if (next < 0)
                break;
            {
                struct timespec ts = {0, 0};
                int64_t wait = t0 + delay_us[next] - now_ms() * 1000;

                if (wait > 0) {
                    ts.tv_nsec = (long)wait * 1000;
                    nanosleep(&ts, NULL);
                }
            }
            /* the server may have closed already: a failed send is a close */
            client_send(c[next], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
            sent[next] = true;
        }
        for (i = 0; i < RACE_CONNS; i++) {
            bool last = false;

            if (client_response_ms(c[i], false, &r, IO_MS) == 0) {
                if (r.status != 200 ||
                    (strcmp(r.body, body[0]) != 0 && strcmp(r.body, body[1]) != 0))
                    fail_msg("round %d, connection %d: expected a 200 '%s' or '%s', got:\n%s\n%s",
                             round, i, body[0], body[1], r.head, r.body);
                last = hdr(r.head, "Connection") != NULL;
                resp_free(&r);
                answered++;
            } else if (c[i]->eof && c[i]->len == 0) {
                closed++;
                continue;
            } else {
                fail_msg("round %d, connection %d: neither an answer nor a clean close: %s; "
                         "log:\n%s", round, i, r.head, D.log);
            }
            /* answered before the drain: more requests, each answered,
             * until the one the drain makes the last */
            for (k = 0; !last && k < 10000; k++) {
                get_on(c[i], "/hello", &r);
                if (r.status != 200)
                    fail_msg("round %d, connection %d: expected a 200, got:\n%s", round, i,
                             r.head);
                last = hdr(r.head, "Connection") != NULL &&
                       strcmp(hdr(r.head, "Connection"), "close") == 0;
                resp_free(&r);
            }
            if (!last)
                fail_msg("round %d, connection %d: never answered with Connection: close",
                         round, i);
            /* after the close answer the old server goes: an end, nothing more */
            if (!client_eof(c[i], IO_MS))
                fail_msg("round %d, connection %d: still open (or sent more) after the reload",
                         round, i);
        }
        for (i = 0; i < RACE_CONNS; i++)
            client_close(c[i]);
        /* the new generation listens on the same socket; then it serves
         * the new body */
        assert_int_equal(atoi(wait_next(&D, PORT_LINE) + strlen(PORT_LINE)), D.port);
        wait_count(&D, "reloaded: 1 module(s) running", round);
        exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
        assert_status(&r, 200);
        assert_string_equal(r.body, body[1]);
        resp_free(&r);
        memcpy(body[0], body[1], sizeof(body[0]));
    }
    print_message("      %d answered, %d closed unanswered\n", answered, closed);
    if (closed != 0)
        fail_msg("%d request(s) met a close instead of an answer", closed);
    daemon_stop_clean(&D);
}

static void http_reload_rejected_by_module_check_keeps_old_config(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_with("");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, &c);
    resp_free(&r);
    write_config_full(5000, "Hello, Broken!", "missing-dir", "");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    /* the reload ends one way or the other */
    {
        int64_t until = now_ms() + 10000;
        size_t from = D.mark;

        while (strstr(D.log + from, "reload rejected") == NULL &&
               strstr(D.log + from, "reloaded: ") == NULL && now_ms() < until)
            if (!pump(&D, left_ms(until)))
                break;
        if (strstr(D.log + from, "reload rejected") == NULL &&
            strstr(D.log + from, "reloaded: ") == NULL)
            fail_msg("the reload never finished; log:\n%s", D.log);
    }
    /* the same connection, and a new one, see the old config */
    if (!client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n") ||
        client_response_ms(c, false, &r, IO_MS) != 0)
        fail_msg("the old config stopped serving (kept-alive connection: %s); log:\n%s", r.head,
                 D.log);
    assert_string_equal(r.body, HELLO);
    resp_free(&r);
    client_close(c);
    {
        int fd = try_connect(D.port);

        if (fd < 0)
            fail_msg("the old config stopped serving (new connection: %s); log:\n%s",
                     strerror(errno), D.log);
        close(fd);
    }
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, HELLO);
    resp_free(&r);
    daemon_stop_clean(&D);
}

static void http_check_config_rejects_missing_root_with_78(void **state)
{
    char out[8192], cfg[600];

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    write_config(""); /* control: the good one passes, from another cwd too */
    if (run_to_end("--check-config", cfg, out, sizeof(out)) != 0)
        fail_msg("the good config was rejected:\n%s", out);
    write_config_full(5000, HELLO, "missing-dir", "");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "root") == NULL || strstr(out, "missing-dir") == NULL)
        fail_msg("expected a message naming root, got:\n%s", out);
}

static void http_check_config_rejects_unknown_key_with_78(void **state)
{
    char out[8192], cfg[600];

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    write_config(",\"bogus\":1");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "bogus") == NULL)
        fail_msg("expected a message naming bogus, got:\n%s", out);
}


/* ================= config check: every problem, by path ================= */

/* Runs "asyncd ARGS" through sh with stdout alone into out (stderr to
 * DIR/stderr.txt); asyncd's exit code. */
static int asyncd_stdout(char *out, size_t outlen, const char *args)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>'%s/stderr.txt'", ASYNCD, args, dir);
    return shell_output(cmd, out, outlen);
}

static void expect_line(const char *out, const char *cfg, const char *where_and_what)
{
    char want[1024];

    snprintf(want, sizeof(want), "%s:%s", cfg, where_and_what);
    if (strstr(out, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, out);
}

static void http_check_config_reports_every_problem_with_line_column_and_path(void **state)
{
    char out[16384], t_out[16384], cfg[600];

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    /* columns: count from 1; every key below starts where the comment says */
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\n"
               " \"modules\":{\"http\":{\n"
               "  \"listen\":[\"127.0.0.1:70000\", \"127.0.0.1\", \"[::1]:80\", \"*:80\"],\n"
               "  \"root\":\"www\",\n"
               "  \"routes\":[{\"path\":\"/a\"},{\"path\":\"/b\"},\n"
               "            {\"path\":\"/c\",\"status\":99}],\n"
               "  \"bogus\":1,\n"
               "  \"x.y\":2,\n"
               "  \"serve_hidden\":\"yes\"}}}\n");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    expect_line(out, cfg, "3:13: modules.http.listen[0]: \"127.0.0.1:70000\": the port is above 65535");
    expect_line(out, cfg, "3:32: modules.http.listen[1]: \"127.0.0.1\": no \":port\"");
    expect_line(out, cfg, "6:26: modules.http.routes[2].status: must be an integer from 200 to 599");
    expect_line(out, cfg, "7:3: modules.http.bogus: unknown key");
    expect_line(out, cfg, "8:3: modules.http.x.y: unknown key"); /* a key with a dot */
    expect_line(out, cfg, "9:3: modules.http.serve_hidden: must be true or false");
    if (strstr(out, "listen[2]") != NULL || strstr(out, "listen[3]") != NULL)
        fail_msg("a good address was rejected:\n%s", out);
    /* -t is --check-config */
    assert_int_equal(run_to_end("-t", cfg, t_out, sizeof(t_out)), 78);
    expect_line(t_out, cfg, "6:26: modules.http.routes[2].status");
    /* and start-up refuses the file before anything listens */
    daemon_start(&D, "asyncd.json", NULL);
    assert_int_equal(reap(&D, 10000), 78);
    if (strstr(D.log, "listening") != NULL || strstr(D.log, "routes[2].status") == NULL)
        fail_msg("start-up did not refuse the config as the check does:\n%s", D.log);
    /* a problem in an object the file does not have is placed at the
     * nearest one it has: here http.so runs with {} and lacks listen */
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\n"
                              "  \"modules\": {}}\n");
    assert_int_equal(run_to_end("-t", cfg, out, sizeof(out)), 78);
    expect_line(out, cfg, "2:3: modules.http: needs \"listen\"");
}

/* 20,000 routes with a bad status and a repeated path: every problem is
 * reported, each at its own line, in bounded time.  The check used to walk
 * the whole file per problem and compare each route's path with all the
 * ones before it: 59 s for this file, 0.3 s now (release build); the bound
 * below leaves room for sanitizers and a busy machine. */
static void http_check_config_places_20000_problems(void **state)
{
    enum { N = 20000 };
    size_t cap = (size_t)N * 64 + 4096, len = 0, outcap = (size_t)N * 256, got = 0;
    char *text = malloc(cap), *out = malloc(outcap), cfg[600], cmd[1400], want[800];
    int64_t started;
    FILE *f;
    size_t n, i, lines = 0;
    int status;
    const char *p;

    (void)state;
    assert_non_null(text);
    assert_non_null(out);
    len += (size_t)snprintf(text + len, cap - len,
                            "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{"
                            "\"listen\":[\"127.0.0.1:0\"],\"routes\":[\n");
    for (i = 0; i < N; i++) /* route i on line i + 2 */
        len += (size_t)snprintf(text + len, cap - len, "{\"path\":\"/r%zu\",\"status\":99},\n",
                                i == N - 1 ? (size_t)0 : i);
    snprintf(text + len - 2, cap - len + 2, "]}}}\n");
    write_file("asyncd.json", text);
    path_of(cfg, sizeof(cfg), "asyncd.json");
    snprintf(cmd, sizeof(cmd), "'%s' -t '%s' 2>&1", ASYNCD, cfg);
    started = now_ms();
    f = popen(cmd, "r");
    assert_non_null(f);
    while (got < outcap - 1 && (n = fread(out + got, 1, outcap - 1 - got, f)) > 0)
        got += n;
    out[got] = '\0';
    status = pclose(f);
    /* Reported, not asserted: a time bound fails on a loaded machine, and
     * a check gone quadratic would run past the suite's timeout anyway. */
    print_message("      the check of %d problems took %lld ms\n", N, (long long)(now_ms() - started));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 78);
    for (p = out; (p = strstr(p, ".status: must be an integer from 200 to 599")) != NULL; p++)
        lines++;
    assert_int_equal(lines, N);
    expect_line(out, cfg, "2:15: modules.http.routes[0].status: must be an integer");
    snprintf(want, sizeof(want), "%d:15: modules.http.routes[%d].status", N + 1, N - 1);
    expect_line(out, cfg, want);
    snprintf(want, sizeof(want), "%d:2: modules.http.routes[%d].path: repeats routes[0].path",
             N + 1, N - 1);
    expect_line(out, cfg, want);
    free(text);
    free(out);
}

static void http_check_config_rejects_hostile_listen_addresses(void **state)
{
    static const char *const bad[] = {
        "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8o", "127.0.0.1:", ":", "::1:80", "[::1]80",
        "[::1", "[]:80", "[nope]:80", "300.1.2.3:80", "a b:80", "bad_host:80", "h\\u00e9:80",
        "x\\r\\ny:80", "127.0.0.1:0000080",
    };
    char out[8192], cfg[600], text[512];
    size_t i;

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{\"listen\":[\"%s\"]}}}\n",
                 bad[i]);
        write_file("asyncd.json", text);
        if (run_to_end("--check-config", cfg, out, sizeof(out)) != 78 ||
            strstr(out, "modules.http.listen[0]: ") == NULL)
            fail_msg("listen \"%s\" was not rejected at listen[0]:\n%s", bad[i], out);
    }
    /* the shapes that are fine: names are not resolved, nothing is bound */
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{\"listen\":"
               "[\"127.0.0.1:1\",\"[::1]:65535\",\"*:80\",\":0\",\"no-such-host.invalid:80\"]}}}\n");
    if (run_to_end("--check-config", cfg, out, sizeof(out)) != 0)
        fail_msg("good addresses rejected:\n%s", out);
}

static void http_check_config_T_prints_every_default_as_json(void **state)
{
    char out[16384], cfg[600], args[1300], cmd[2048];

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    write_config("");
    snprintf(args, sizeof(args), "-T '%s'", cfg);
    assert_int_equal(asyncd_stdout(out, sizeof(out), args), 0);
    write_file("effective.json", out);
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); h=d[\"modules\"][\"http\"]; "
             "assert h[\"keepalive_timeout_ms\"]==75000 and h[\"max_header_bytes\"]==8192, h; "
             "assert h[\"serve_hidden\"] is False and h[\"index\"]==[\"index.html\"], h; "
             "assert h[\"enabled\"] is True and h[\"routes\"][1][\"status\"]==301, h; "
             "assert h[\"routes\"][1][\"body\"]==\"\", h; "
             "assert h[\"max_headers\"]==100 and h[\"lingering_time_ms\"]==30000, h; "
             "assert h[\"max_connections\"]>=1, h; " /* from the descriptor limit, never -1 */
             "assert d[\"runtime\"][\"workers\"]>0 and d[\"runtime\"][\"stack_size\"]>=16384, d; "
             "assert d[\"shutdown_timeout_ms\"]==5000 and d[\"log_level\"]==\"info\", d; "
             "assert d[\"modules_dir\"].startswith(\"/\"), d' '%s/effective.json'",
             dir);
    if (system(cmd) != 0)
        fail_msg("-T printed:\n%s", out);
    /* what -T prints is itself a config that passes */
    snprintf(cmd, sizeof(cmd), "%s/effective.json", dir);
    if (run_to_end("-t", cmd, out, sizeof(out)) != 0)
        fail_msg("the effective configuration does not pass the check:\n%s", out);
    /* a bad config: 78 and nothing on stdout */
    write_config(",\"max_connections\":0");
    assert_int_equal(asyncd_stdout(out, sizeof(out), args), 78);
    assert_string_equal(out, "");
}

/* ================= route headers: no framing, one Server, one Date ================= */

static void http_route_framing_headers_are_rejected_with_their_path(void **state)
{
    static const char *const names[] = {"Content-Length", "transfer-encoding", "CONNECTION",
                                        "Keep-Alive", "Upgrade", "TE", "Trailer",
                                        "Proxy-Connection"};
    char out[8192], cfg[600], extra[256], want[256], text[1024];
    size_t i;

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(extra, sizeof(extra),
                 ",\"routes\":[{\"path\":\"/x\",\"headers\":{\"X-Ok\":\"1\",\"%s\":\"5\"}}]",
                 names[i]);
        snprintf(text, sizeof(text),
                 "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{"
                 "\"listen\":[\"127.0.0.1:0\"]%s}}}\n", extra);
        write_file("asyncd.json", text);
        assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
        snprintf(want, sizeof(want), "modules.http.routes[0].headers.%s: ", names[i]);
        if (strstr(out, want) == NULL || strstr(out, "hop-by-hop or framing") == NULL)
            fail_msg("%s: expected \"%s...hop-by-hop or framing\", got:\n%s", names[i], want, out);
        if (strstr(out, "X-Ok") != NULL)
            fail_msg("a harmless header was rejected:\n%s", out);
    }
    /* a field given twice in two cases, or Content-Type beside content_type,
     * would go out twice */
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],"
               "\"routes\":[{\"path\":\"/x\",\"headers\":{\"Server\":\"a\",\"X-A\":\"1\","
               "\"server\":\"b\"}},{\"path\":\"/y\",\"content_type\":\"text/plain\","
               "\"headers\":{\"content-type\":\"text/html\"}}]}}}\n");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "modules.http.routes[0].headers.server: repeats routes[0].headers.Server") ==
            NULL ||
        strstr(out, "modules.http.routes[1].headers.content-type: repeats routes[1].content_type") ==
            NULL || strstr(out, "headers.Server:") != NULL)
        fail_msg("expected the repeated fields named:\n%s", out);
}

/* How many fields named name (any case) the head holds. */
static int count_fields(const char *head, const char *name)
{
    size_t nl = strlen(name);
    const char *p = head;
    int n = 0;

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            n++;
    }
    return n;
}

static void http_route_server_and_date_replace_the_defaults(void **state)
{
    struct resp r;

    (void)state;
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],"
               "\"routes\":[{\"path\":\"/both\",\"headers\":{\"server\":\"mine/1\","
               "\"Date\":\"Thu, 01 Jan 1970 00:00:00 GMT\"}},"
               "{\"path\":\"/server\",\"headers\":{\"Server\":\"mine/2\"}},"
               "{\"path\":\"/plain\",\"body\":\"p\"}]}}}\n");
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    exchange("GET /both HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    if (count_fields(r.head, "Server") != 1 || count_fields(r.head, "Date") != 1)
        fail_msg("expected one Server and one Date:\n%s", r.head);
    assert_header(&r, "Server", "mine/1");
    assert_header(&r, "Date", "Thu, 01 Jan 1970 00:00:00 GMT");
    resp_free(&r);
    exchange("HEAD /server HTTP/1.1\r\nHost: x\r\n\r\n", true, &r, NULL);
    if (count_fields(r.head, "Server") != 1 || count_fields(r.head, "Date") != 1)
        fail_msg("expected one Server and one Date:\n%s", r.head);
    assert_header(&r, "Server", "mine/2");
    assert_true(strcmp(hdr(r.head, "Date"), "Thu, 01 Jan 1970 00:00:00 GMT") != 0);
    resp_free(&r);
    exchange("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL); /* the defaults */
    if (count_fields(r.head, "Server") != 1 || count_fields(r.head, "Date") != 1 ||
        count_fields(r.head, "Content-Length") != 1)
        fail_msg("expected one Server, Date and Content-Length:\n%s", r.head);
    assert_header(&r, "Server", "async_io");
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* ================= hidden files ================= */

static void make_dir(const char *name)
{
    char path[512];

    path_of(path, sizeof(path), name);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void make_hidden_tree(void)
{
    make_dir("www/.git");
    write_file("www/.git/config", "[core]\n");
    write_file("www/.env", "SECRET=1\n");
    write_file("www/.htpasswd", "admin:x\n");
    make_dir("www/a");
    make_dir("www/a/.hidden");
    write_file("www/a/.hidden/x", "x\n");
    write_file("www/a/visible", "v\n");
    make_dir("www/.well-known");
    write_file("www/.well-known/x", "token\n");
    write_file("www/.well-known/.secret", "s\n");
}

static void http_hidden_files_answer_404_unless_serve_hidden(void **state)
{
    static const char *const hidden[] = {"/.git/config", "/.env", "/.htpasswd", "/a/.hidden/x",
                                         "/%2Eenv", "/a/%2ehidden/x", "/a/../.env", "/.git/",
                                         "/.git", "/.well-known/.secret"};
    static const char *const shown[] = {"/.well-known/x", "/a/visible"};
    char req[256];
    struct resp r, missing;
    size_t i;

    (void)state;
    make_hidden_tree();
    start_with("");
    exchange("GET /no-such-file HTTP/1.1\r\nHost: x\r\n\r\n", false, &missing, NULL);
    assert_status(&missing, 404);
    for (i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", hidden[i]);
        exchange(req, false, &r, NULL);
        if (r.status != 404 || strcmp(r.body, missing.body) != 0)
            fail_msg("%s: expected the 404 of a missing file, got:\n%s\n%s", hidden[i], r.head,
                     r.body);
        resp_free(&r);
    }
    for (i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", shown[i]);
        exchange(req, false, &r, NULL);
        if (r.status != 200)
            fail_msg("%s: expected 200, got:\n%s", shown[i], r.head);
        resp_free(&r);
    }
    resp_free(&missing);
    daemon_stop_clean(&D);

    start_with(",\"serve_hidden\":true");
    exchange("GET /.git/config HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "[core]\n");
    resp_free(&r);
    exchange("GET /a/.hidden/x HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    resp_free(&r);
    exchange("GET /.env HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    resp_free(&r);
    daemon_stop_clean(&D);
}

/* ================= redirects re-encode the path ================= */

static void http_redirect_reencodes_the_decoded_path(void **state)
{
    static const struct {
        const char *dir, *request, *location;
    } t[] = {
        {"www/x\r\nSet-Cookie: pwn=1", "/x%0D%0ASet-Cookie:%20pwn=1", "/x%0D%0ASet-Cookie:%20pwn=1/"},
        {"www/q?x", "/q%3Fx", "/q%3Fx/"},
        {"www/p%41", "/p%2541", "/p%2541/"},
        {"www/h#f", "/h%23f?a=1&b", "/h%23f/?a=1&b"},            /* the query as received */
        {"www/caf\xc3\xa9 <\"\\^`{|}>", "/caf%C3%A9%20%3C%22%5C%5E%60%7B%7C%7D%3E",
         "/caf%C3%A9%20%3C%22%5C%5E%60%7B%7C%7D%3E/"},
        {"www/ok-._~!$&'()*+,;=:@", "/ok-._~!$&'()*+,;=:@", "/ok-._~!$&'()*+,;=:@/"},
    };
    char req[512];
    struct resp r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        make_dir(t[i].dir);
    start_with("");
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", t[i].request);
        exchange(req, false, &r, NULL);
        assert_status(&r, 301);
        assert_header(&r, "Location", t[i].location);
        if (count_fields(r.head, "Set-Cookie") != 0 || count_fields(r.head, "Location") != 1)
            fail_msg("%s: a header was injected:\n%s", t[i].request, r.head);
        resp_free(&r);
    }
    daemon_stop_clean(&D);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(http_hello_route_has_status_body_type_length_server_and_date),
        T(http_old_route_redirects_301_to_new),
        T(http_head_hello_sends_headers_without_body),
        T(http_keepalive_curl_reuses_the_connection),
        T(http_keepalive_two_sequential_requests_on_one_socket),
        T(http_1_0_without_keepalive_closes_after_response),
        T(http_1_0_with_keepalive_stays_open),
        T(http_1_1_connection_close_closes_after_response),
        T(http_pipelining_100_requests_answered_in_order),
        T(http_expect_100_continue_sends_interim_response_first),
        T(http_chunked_post_to_route_gets_405_and_connection_stays_usable),
        T(http_content_length_over_max_body_gets_413_and_close),
        T(http_chunked_body_over_max_body_gets_413),
        T(http_static_index_html_served_for_root),
        T(http_static_directory_without_slash_redirects),
        T(http_static_mime_types_by_extension),
        T(http_static_etag_and_last_modified_present),
        T(http_static_if_none_match_gives_304_without_body),
        T(http_static_if_modified_since_gives_304),
        T(http_static_range_first_ten_bytes_gives_206),
        T(http_static_suffix_range_gives_last_bytes),
        T(http_static_unsatisfiable_range_gives_416),
        T(http_static_missing_file_gives_404),
        T(http_big_file_1gib_downloads_intact),
        T(http_sparse_5gib_file_range_past_4gib_and_head_length),
        T(http_malformed_request_line_gives_400_and_close),
        T(http_unknown_method_gives_501),
        T(http_delete_on_route_gives_405_with_allow),
        T(http_request_line_over_max_header_bytes_gives_414_and_close),
        T(http_too_many_headers_gives_431_and_close),
        T(http_huge_header_gives_431_and_close),
        T(http_transfer_encoding_gzip_gives_501_and_close),
        T(http_version_2_0_gives_505_and_close),
        T(http_expect_other_than_100_continue_gives_417_and_close),
        T(http_missing_host_in_1_1_gives_400_and_close),
        T(http_smuggling_content_length_with_transfer_encoding_rejected),
        T(http_smuggling_two_content_lengths_rejected),
        T(http_smuggling_content_length_list_rejected),
        T(http_smuggling_obs_fold_rejected),
        T(http_smuggling_bare_lf_rejected),
        T(http_smuggling_bare_cr_rejected),
        T(http_smuggling_bad_chunk_size_rejected),
        T(http_smuggling_nul_in_header_value_rejected),
        T(http_traversal_dotdot_never_leaves_the_root),
        T(http_traversal_encoded_dotdot_never_leaves_the_root),
        T(http_traversal_encoded_nul_gives_400),
        T(http_symlink_out_of_the_root_gives_404),
        T(http_symlink_within_the_root_is_served),
        T(http_without_openat2_the_walk_keeps_to_the_root_and_refuses_symlinks),
        T(http_open_file_cache_0_serves_a_rewrite_on_the_next_request),
        T(http_open_file_cache_default_shows_changes_after_its_time),
        T(http_open_file_cache_download_survives_rename_of_its_file),
        T(http_check_config_rejects_bad_open_file_cache_ms_with_78),
        T(http_header_timeout_sends_408_and_closes),
        T(http_keepalive_timeout_closes_idle_connection),
        T(http_slowloris_cut_at_header_timeout),
        T(http_max_connections_refuses_sixth_with_503),
        T(http_idle_keepalive_connections_cost_no_fiber_wake_and_expire),
        T(http_status_endpoint_reports_counters_and_2xx_grows),
        T(http_access_log_gets_combined_format_lines),
        T(http_sigterm_drains_download_answers_idle_refuses_new),
        T(http_reload_serves_the_new_route_body),
        T(http_reload_racing_requests_on_idle_connections),
        T(http_reload_rejected_by_module_check_keeps_old_config),
        T(http_check_config_rejects_missing_root_with_78),
        T(http_check_config_rejects_unknown_key_with_78),
        T(http_check_config_reports_every_problem_with_line_column_and_path),
        T(http_check_config_rejects_hostile_listen_addresses),
        T(http_check_config_places_20000_problems),
        T(http_check_config_T_prints_every_default_as_json),
        T(http_route_framing_headers_are_rejected_with_their_path),
        T(http_route_server_and_date_replace_the_defaults),
        T(http_hidden_files_answer_404_unless_serve_hidden),
        T(http_redirect_reencodes_the_decoded_path),
    };

    signal(SIGPIPE, SIG_IGN);
    {
        /* thousands of connections: as many descriptors as allowed */
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
