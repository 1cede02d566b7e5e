/* The http module's virtual hosts as a client meets them: which server a
 * Host picks (case, port, trailing dot, punycode, wildcards against exact
 * names, the absolute-form target, the default of each address), the
 * Hosts the engine refuses, per-path and server-wide header fields, error
 * pages (and the page that is itself missing), a per-server access log, a
 * reload that changes the servers under an open keep-alive connection,
 * and --check-config's bad input.  The real asyncd with http.so over
 * 127.0.0.1 and 127.0.0.2; every wait is bounded. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define PORT2_LINE "http: listening on 127.0.0.2:0 (port "
#define IO_MS 10000

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/sites-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_mkdir("a");
    test_dir_mkdir("a/assets");
    test_dir_mkdir("a/assets/raw");
    test_dir_mkdir("a/errors");
    test_dir_mkdir("b");
    write_file("a/index.html", "site a\n");
    write_file("a/assets/app.css", "body{}\n");
    write_file("a/assets/raw/x.txt", "raw\n");
    write_file("a/errors/404.html", "<h1>a: not here</h1>\n");
    write_file("a/errors/5xx.html", "<h1>a: broken</h1>\n");
    write_file("b/index.html", "site b\n");
    write_file("b/gone.html", "<h1>b: gone</h1>\n");
    write_file("a/errors/4xx.html", "<h1>a: client error</h1>\n");
    write_file("b/e400.html", "<h1>d: bad request</h1>\n");
    write_file("b/e431.html", "<h1>d: head too big</h1>\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    if (D.err >= 0)
        close(D.err);
    D.err = -1;
    remove_test_dir();
    return 0;
}

/* asyncd.json with modules.http = http (a JSON object's text). */
static void write_http(const char *http)
{
    char text[16384];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"runtime\":{\"workers\":2},\n"
             " \"modules\":{\"http\":%s}}\n",
             http);
    write_file("asyncd.json", text);
}

static void start_http(const char *http)
{
    write_http(http);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
}

static void stop(void)
{
    daemon_stop_clean(&D);
}

/* A route /who answering the server's name. */
#define WHO(s) "\"routes\":[{\"path\":\"/who\",\"status\":200,\"body\":\"" s "\"}]"

/* The body of GET /who with this Host line ("" for none) on a new
 * connection, HTTP/1.1. */
static void expect_who(const char *host_line, const char *want)
{
    char req[1024];
    struct resp r;

    snprintf(req, sizeof(req), "GET /who HTTP/1.1\r\n%s\r\n", host_line);
    exchange(req, false, &r, NULL);
    assert_status(&r, 200);
    if (strcmp(r.body, want) != 0)
        fail_msg("%s: expected server %s, got %s", host_line, want, r.body);
    resp_free(&r);
}

static const char *const three_sites =
    "{\"listen\":[\"127.0.0.1:0\"],\"servers\":[\n"
    " {\"names\":[\"fallback.test\"]," WHO("fallback") "},\n"
    " {\"names\":[\"example.com\",\"www.example.com\",\"xn--bcher-kva.example\"]," WHO("exact") "},\n"
    " {\"names\":[\"*.example.org\"]," WHO("wild") "},\n"
    " {\"names\":[\"*.deep.example.org\"]," WHO("deeper") "},\n"
    " {\"names\":[\"www.deep.example.org\"]," WHO("www-deep") "}]}";

static void sites_host_ignores_case_port_and_one_trailing_dot(void **state)
{
    (void)state;
    start_http(three_sites);
    expect_who("Host: example.com\r\n", "exact");
    expect_who("Host: EXAMPLE.Com\r\n", "exact");
    expect_who("Host: example.com:8080\r\n", "exact");
    expect_who("Host: example.com.\r\n", "exact");
    expect_who("Host: WWW.example.COM.:80\r\n", "exact");
    /* one dot only, and a port is not part of the name */
    expect_who("Host: example.com..\r\n", "fallback");
    expect_who("Host: example.com8080\r\n", "fallback");
    /* an IDNA name in its punycode form, any case */
    expect_who("Host: xn--bcher-kva.example\r\n", "exact");
    expect_who("Host: XN--BCHER-KVA.EXAMPLE\r\n", "exact");
    stop();
}

static void sites_exact_names_win_over_wildcards_longest_wildcard_first(void **state)
{
    (void)state;
    start_http(three_sites);
    expect_who("Host: www.deep.example.org\r\n", "www-deep");
    expect_who("Host: x.deep.example.org\r\n", "deeper");
    expect_who("Host: a.b.deep.example.org\r\n", "deeper");
    expect_who("Host: a.example.org\r\n", "wild");
    expect_who("Host: Deep.Example.Org\r\n", "wild");
    /* "*.example.org" is the names under it, not example.org */
    expect_who("Host: example.org\r\n", "fallback");
    expect_who("Host: unknown.test\r\n", "fallback");
    stop();
}

static void sites_absolute_form_target_host_before_the_host_field(void **state)
{
    struct resp r;

    (void)state;
    start_http(three_sites);
    exchange("GET http://a.example.org/who HTTP/1.1\r\nHost: example.com\r\n\r\n", false, &r,
             NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "wild");
    resp_free(&r);
    exchange("GET http://EXAMPLE.com:81/who?x=1 HTTP/1.1\r\nHost: nothing.test\r\n\r\n", false,
             &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "exact");
    resp_free(&r);
    /* a userinfo in the target, or an authority that is not a host: 400 */
    expect_error_and_close("GET http://user@example.com/who HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    expect_error_and_close("GET http:///who HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    stop();
}

static void sites_bad_or_missing_hosts_are_400_http10_without_host_is_default(void **state)
{
    (void)state;
    start_http(three_sites);
    expect_error_and_close("GET /who HTTP/1.1\r\n\r\n", 400);
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: example.com\r\nHost: example.com\r\n\r\n",
                           400);
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: example.com evil.test\r\n\r\n", 400);
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", 400);
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: example.com/x\r\n\r\n", 400);
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: a@example.com\r\n\r\n", 400);
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: example.com:80x\r\n\r\n", 400);
    /* HTTP/1.0 may go without: the default server */
    {
        struct resp r;

        exchange("GET /who HTTP/1.0\r\n\r\n", false, &r, NULL);
        assert_status(&r, 200);
        assert_string_equal(r.body, "fallback");
        resp_free(&r);
    }
    /* an empty Host (a target without authority) is valid: the default */
    expect_who("Host:\r\n", "fallback");
    expect_who("Host: [::1]:8080\r\n", "fallback");
    stop();
}

/* A connection to 127.0.0.2:port. */
static struct client *open_second(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr), 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail_msg("connect to 127.0.0.2:%d: %s", port, strerror(errno));
    return client_wrap(fd);
}

static void who_on(struct client *c, const char *host, const char *want)
{
    char req[512];
    struct resp r;

    snprintf(req, sizeof(req), "GET /who HTTP/1.1\r\nHost: %s\r\n\r\n", host);
    assert_true(client_send(c, req));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    if (strcmp(r.body, want) != 0)
        fail_msg("Host %s: expected %s, got %s", host, want, r.body);
    resp_free(&r);
}

static void sites_unknown_host_goes_to_the_default_of_its_address(void **state)
{
    struct client *one, *two;
    int port2;

    (void)state;
    start_http("{\"servers\":[\n"
               " {\"names\":[\"a.test\"],\"listen\":[\"127.0.0.1:0\",\"127.0.0.2:0\"],"
               WHO("a") "},\n"
               " {\"names\":[\"b.test\"],\"listen\":[\"127.0.0.2:0\"],\"default\":true,"
               WHO("b") "},\n"
               " {\"names\":[\"c.test\"],\"listen\":[\"127.0.0.1:0\"]," WHO("c") "}]}");
    port2 = number_after(&D, PORT2_LINE);
    one = client_open(D.port);
    two = open_second(port2);
    /* 127.0.0.1: nobody marked, so the first that listens there */
    who_on(one, "nobody.test", "a");
    who_on(one, "c.test", "c");
    /* b.test does not listen on 127.0.0.1 */
    who_on(one, "b.test", "a");
    /* 127.0.0.2: the one marked default */
    who_on(two, "nobody.test", "b");
    who_on(two, "a.test", "a");
    who_on(two, "c.test", "b");
    client_close(one);
    client_close(two);
    stop();
}

static const char *const headers_site =
    "{\"listen\":[\"127.0.0.1:0\"],\"servers\":[\n"
    " {\"names\":[\"a.test\"],\"root\":\"a\",\n"
    "  \"headers\":{\"X-Content-Type-Options\":\"nosniff\"},\n"
    "  \"routes\":[{\"path\":\"/assets/route\",\"status\":200,\"body\":\"r\"},"
    "{\"path\":\"/teapot\",\"status\":418,\"body\":\"t\"}],\n"
    "  \"locations\":[{\"prefix\":\"/assets/\",\"headers\":{\"Cache-Control\":"
    "\"public, max-age=31536000, immutable\"}},\n"
    "                {\"prefix\":\"/assets/raw/\",\"headers\":{\"Cache-Control\":\"no-store\"}},\n"
    "                {\"prefix\":\"/always/\",\"headers\":{\"X-Always\":\"yes\"},\"always\":true}],\n"
    "  \"error_pages\":{\"404\":\"/errors/404.html\",\"5xx\":\"/errors/5xx.html\"}},\n"
    " {\"names\":[\"b.test\"],\"root\":\"b\",\"error_pages\":{\"404\":\"/gone.html\"}}]}";

static void get(const char *path, const char *host, bool head, struct resp *r)
{
    char req[512];

    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", head ? "HEAD" : "GET", path,
             host);
    exchange(req, head, r, NULL);
}

static void expect_no_header(const struct resp *r, const char *name)
{
    if (hdr(r->head, name) != NULL)
        fail_msg("expected no %s in:\n%s", name, r->head);
}

static void sites_locations_longest_prefix_and_server_headers_everywhere(void **state)
{
    struct resp r;

    (void)state;
    start_http(headers_site);
    get("/assets/app.css", "a.test", false, &r);
    assert_status(&r, 200);
    assert_header(&r, "Cache-Control", "public, max-age=31536000, immutable");
    assert_header(&r, "X-Content-Type-Options", "nosniff");
    resp_free(&r);
    get("/assets/raw/x.txt", "a.test", false, &r); /* the longer prefix wins */
    assert_status(&r, 200);
    assert_header(&r, "Cache-Control", "no-store");
    resp_free(&r);
    get("/assets/route", "a.test", false, &r); /* a route under the prefix too */
    assert_status(&r, 200);
    assert_header(&r, "Cache-Control", "public, max-age=31536000, immutable");
    resp_free(&r);
    get("/index.html", "a.test", false, &r); /* no location: the server's only */
    assert_status(&r, 200);
    expect_no_header(&r, "Cache-Control");
    assert_header(&r, "X-Content-Type-Options", "nosniff");
    resp_free(&r);
    /* errors: the server's fields, a location's only with "always" */
    get("/assets/missing.css", "a.test", false, &r);
    assert_status(&r, 404);
    expect_no_header(&r, "Cache-Control");
    assert_header(&r, "X-Content-Type-Options", "nosniff");
    resp_free(&r);
    get("/always/missing", "a.test", false, &r);
    assert_status(&r, 404);
    assert_header(&r, "X-Always", "yes");
    resp_free(&r);
    /* the other server has none of them */
    get("/index.html", "b.test", false, &r);
    assert_status(&r, 200);
    expect_no_header(&r, "X-Content-Type-Options");
    resp_free(&r);
    stop();
}

static void sites_error_pages_keep_the_status_and_never_loop(void **state)
{
    struct resp r;
    char path[512];

    (void)state;
    start_http(headers_site);
    get("/nope", "a.test", false, &r);
    assert_status(&r, 404);
    assert_string_equal(r.body, "<h1>a: not here</h1>\n");
    assert_header(&r, "Content-Type", "text/html; charset=utf-8");
    resp_free(&r);
    get("/nope", "a.test", true, &r);
    assert_status(&r, 404);
    assert_header(&r, "Content-Length", "21");
    resp_free(&r);
    /* the class: a route's 418 is its own answer, the 501 of an unknown
     * method is the module's error and gets the 5xx page */
    exchange("BREW /x HTTP/1.1\r\nHost: a.test\r\n\r\n", false, &r, NULL);
    assert_status(&r, 501);
    assert_string_equal(r.body, "<h1>a: broken</h1>\n");
    resp_free(&r);
    get("/teapot", "a.test", false, &r);
    assert_status(&r, 418);
    assert_string_equal(r.body, "t");
    resp_free(&r);
    /* b's page is there at first... */
    get("/nope", "b.test", false, &r);
    assert_status(&r, 404);
    assert_string_equal(r.body, "<h1>b: gone</h1>\n");
    resp_free(&r);
    /* ...then goes: its own 404 falls back to the built-in body, once */
    path_of(path, sizeof(path), "b/gone.html");
    assert_int_equal(unlink(path), 0);
    get("/nope", "b.test", false, &r);
    assert_status(&r, 404);
    assert_string_equal(r.body, "Not Found\n");
    resp_free(&r);
    stop();
}

/* The engine's own errors, refused before any handler: a.test has a
 * page for the whole class, the default server d.test one per status
 * (its 408 page goes missing once the config was checked). */
static const char *const engine_errors_site =
    "{\"listen\":[\"127.0.0.1:0\"],\"max_header_bytes\":1024,\"max_body_bytes\":1000,\n"
    " \"header_timeout_ms\":300,\"servers\":[\n"
    " {\"names\":[\"a.test\"],\"root\":\"a\",\"error_pages\":{\"4xx\":\"/errors/4xx.html\"}},\n"
    " {\"names\":[\"d.test\"],\"default\":true,\"root\":\"b\",\"headers\":{\"X-Site\":\"d\"},\n"
    "  \"error_pages\":{\"400\":\"/e400.html\",\"431\":\"/e431.html\",\"408\":\"/e408.html\"}}]}";

/* Sends raw (all of it, or until the server closes) and reads the
 * answer, which must end its connection: r holds it. */
static void refused(const char *raw, size_t len, int status, struct resp *r)
{
    struct client *c = client_open(D.port);

    client_sendn(c, raw, len); /* the server may close before all is sent */
    if (client_response_ms(c, false, r, IO_MS) != 0)
        fail_msg("request %.40s...: no response: %s", raw, r->head);
    assert_status(r, status);
    assert_header(r, "Connection", "close");
    if (!client_eof(c, 2000))
        fail_msg("request %.40s...: connection still open 2 s after the %d", raw, status);
    client_close(c);
}

static void sites_error_pages_answer_the_engines_own_errors(void **state)
{
    char big[4096];
    struct resp r;
    int n;

    (void)state;
    write_file("b/e408.html", "<h1>d: too slow</h1>\n");
    start_http(engine_errors_site);
    path_of(big, sizeof(big), "b/e408.html");
    assert_int_equal(unlink(big), 0);
    /* a request line the engine cannot parse: no Host read, the default's */
    {
        const char *bad = "GET /x HTTP/1.1 junk\r\nHost: a.test\r\n\r\n";

        refused(bad, strlen(bad), 400, &r);
    }
    assert_string_equal(r.body, "<h1>d: bad request</h1>\n");
    assert_header(&r, "Content-Type", "text/html; charset=utf-8");
    assert_header(&r, "X-Site", "d");
    resp_free(&r);
    /* a header block past max_header_bytes, the client sending on: 431,
     * the default's page, then the end (the engine's lingering close,
     * which test_http_conn tests, is the same as for its built-in body) */
    {
        size_t len = 256 * 1024;
        char *flood = malloc(len);

        assert_non_null(flood);
        memset(flood, 'x', len);
        n = snprintf(flood, len, "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ");
        flood[n] = 'x';
        refused(flood, len, 431, &r);
        free(flood);
    }
    assert_string_equal(r.body, "<h1>d: head too big</h1>\n");
    resp_free(&r);
    /* a body past max_body_bytes: the head was read, so a.test's class page */
    n = snprintf(big, sizeof(big), "POST /x HTTP/1.1\r\nHost: a.test\r\n"
                 "Content-Length: 5000\r\n\r\n%0100d", 0);
    refused(big, (size_t)n, 413, &r);
    assert_string_equal(r.body, "<h1>a: client error</h1>\n");
    assert_true(hdr(r.head, "X-Site") == NULL);
    resp_free(&r);
    /* a head too slow, and the default's 408 page is missing: the
     * built-in body, with the server's fields still */
    {
        const char *slow = "GET / HTTP/1.1\r\nHost: d.test\r\n";

        refused(slow, strlen(slow), 408, &r);
    }
    assert_string_equal(r.body, "408 Request Timeout\n");
    assert_header(&r, "X-Site", "d");
    resp_free(&r);
    /* the server goes on answering */
    get("/index.html", "a.test", false, &r);
    assert_status(&r, 200);
    resp_free(&r);
    stop();
}

/* Waits (10 s) until the file name holds text; its contents. */
static char *wait_file_has(const char *name, const char *text)
{
    int64_t until = now_ms() + 10000;
    size_t len;
    char *s;

    for (;;) {
        s = read_bytes(name, &len);
        if (s != NULL && strstr(s, text) != NULL)
            return s;
        free(s);
        if (now_ms() >= until)
            fail_msg("%s never held '%s'", name, text);
        pump(&D, 20); /* bounded wait for the daemon's writer (it writes within a second) */
    }
}

static void sites_each_server_has_its_own_access_log(void **state)
{
    char *a, *b;

    (void)state;
    start_http("{\"listen\":[\"127.0.0.1:0\"],\"access_log\":\"default.log\",\n"
               " \"access_log_format\":\"$host $server_name $request_uri $status\",\n"
               " \"servers\":[{\"names\":[\"a.test\"],\"access_log\":\"a.log\"," WHO("a") "},\n"
               "             {\"names\":[\"b.test\"],\"access_log\":\"b.log\"," WHO("b") "},\n"
               "             {\"names\":[\"c.test\"]," WHO("c") "}]}");
    expect_who("Host: a.test\r\n", "a");
    expect_who("Host: b.test\r\n", "b");
    expect_who("Host: c.test\r\n", "c");
    expect_error_and_close("GET /who HTTP/1.1\r\nHost: bad host\r\n\r\n", 400);
    a = wait_file_has("a.log", "a.test a.test /who 200");
    b = wait_file_has("b.log", "b.test b.test /who 200");
    free(wait_file_has("default.log", "c.test c.test /who 200"));
    if (strstr(a, "b.test") != NULL || strstr(b, "a.test") != NULL)
        fail_msg("a line in the other server's log:\na.log:\n%s\nb.log:\n%s", a, b);
    free(a);
    free(b);
    stop();
}

static void sites_json_access_log_names_the_server(void **state)
{
    (void)state;
    start_http("{\"listen\":[\"127.0.0.1:0\"],\"access_log\":\"all.log\",\n"
               " \"access_log_format\":\"json\",\n"
               " \"servers\":[{\"names\":[\"a.test\"]," WHO("a") "},\n"
               "             {\"names\":[\"b.test\",\"*.b.test\"]," WHO("b") "}]}");
    expect_who("Host: x.B.test\r\n", "b");
    free(wait_file_has("all.log", "\"server_name\":\"b.test\""));
    stop();
}

static void sites_reload_changes_servers_under_an_open_keepalive_connection(void **state)
{
    struct client *c;
    size_t from;
    int port;

    (void)state;
    start_http("{\"listen\":[\"127.0.0.1:0\"],\"servers\":[\n"
               " {\"names\":[\"a.test\"]," WHO("a-1") "},\n"
               " {\"names\":[\"b.test\"]," WHO("b-1") "}]}");
    port = D.port;
    c = client_open(D.port);
    who_on(c, "a.test", "a-1");
    who_on(c, "c.test", "a-1"); /* no such server yet: the default */
    write_http("{\"listen\":[\"127.0.0.1:0\"],\"servers\":[\n"
               " {\"names\":[\"a.test\"]," WHO("a-2") "},\n"
               " {\"names\":[\"c.test\"],\"default\":true," WHO("c-2") "}]}");
    from = D.len;
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_from(&D, from, "module http: config changed, applied in place");
    wait_from(&D, from, "reloaded: 1 module(s) running");
    /* the same connection, served by the new servers */
    who_on(c, "a.test", "a-2");
    who_on(c, "c.test", "c-2");
    who_on(c, "b.test", "c-2"); /* b is gone: the new default */
    assert_false(c->eof);
    client_close(c);
    /* still the same listener */
    assert_null(strstr(D.log + from, PORT_LINE));
    D.port = port;
    expect_who("Host: a.test\r\n", "a-2");
    stop();
}

/* asyncd -T writes each server block out whole: what it inherits from
 * the top level and every default, and the result passes the check. */
static void sites_T_fills_every_servers_defaults(void **state)
{
    char out[32768], cfg[600], cmd[2048];
    char *end;

    (void)state;
    write_http("{\"listen\":[\"127.0.0.1:0\"],\"root\":\"a\",\n"
               " \"routes\":[{\"path\":\"/hello\",\"body\":\"hi\"}],\"servers\":[\n"
               " {\"names\":[\"a.test\"],\"locations\":[{\"prefix\":\"/assets/\","
               "\"headers\":{\"X-A\":\"1\"}}]},\n"
               " {\"names\":[\"b.test\"],\"root\":\"b\",\"default\":true,\"index\":[\"home.html\"],"
               "\"error_pages\":{\"404\":\"/gone.html\"}}]}");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    snprintf(cmd, sizeof(cmd),
             "'%s' -T '%s' 2>/dev/null | python3 -c 'import json,sys\n"
             "s=json.load(sys.stdin)[\"modules\"][\"http\"][\"servers\"]\n"
             "a,b=s\n"
             "assert a[\"root\"]==\"a\" and a[\"listen\"]==[\"127.0.0.1:0\"], a\n"
             "assert a[\"index\"]==[\"index.html\"] and a[\"default\"] is False, a\n"
             "assert a[\"access_log\"] is False and a[\"serve_hidden\"] is False, a\n"
             "assert a[\"open_file_cache_ms\"]==1000 and a[\"headers\"]=={}, a\n"
             "assert a[\"error_pages\"]=={} and \"status_path\" not in a, a\n"
             "assert a[\"routes\"]==[{\"path\":\"/hello\",\"body\":\"hi\",\"status\":200,"
             "\"headers\":{}}], a\n"
             "assert a[\"locations\"]==[{\"prefix\":\"/assets/\",\"headers\":{\"X-A\":\"1\"},"
             "\"always\":False}], a\n"
             "assert b[\"root\"]==\"b\" and b[\"index\"]==[\"home.html\"], b\n"
             "assert b[\"default\"] is True and b[\"locations\"]==[], b\n"
             "assert b[\"error_pages\"]=={\"404\":\"/gone.html\"}, b\n"
             "assert \"max_body_bytes\" not in a and \"names\" in b, b'",
             ASYNCD, cfg);
    assert_int_equal(system(cmd), 0);
    /* the effective config is a config that passes the check */
    assert_int_equal(run_to_end("-T", cfg, out, sizeof(out)), 0);
    if ((end = strstr(out, "\n}\n")) == NULL)
        fail_msg("no JSON object in -T's output:\n%s", out);
    end[3] = '\0';
    write_file("effective.json", strstr(out, "{"));
    path_of(cfg, sizeof(cfg), "effective.json");
    if (run_to_end("--check-config", cfg, out, sizeof(out)) != 0)
        fail_msg("the effective config fails the check:\n%s", out);
}

/* Runs asyncd --check-config on asyncd.json: its exit code, its output. */
static int check(char *out, size_t len)
{
    char cfg[600];

    path_of(cfg, sizeof(cfg), "asyncd.json");
    return run_to_end("--check-config", cfg, out, len);
}

static void expect_problem(const char *out, const char *path, const char *words)
{
    char key[256];
    const char *at;

    snprintf(key, sizeof(key), ": modules.http.%s: ", path);
    at = strstr(out, key);
    if (at == NULL || strstr(at, words) == NULL)
        fail_msg("expected '%s' ... '%s' in:\n%s", key, words, out);
    /* FILE:LINE:COL before it */
    {
        const char *line = at, *p;

        while (line > out && line[-1] != '\n')
            line--;
        p = strstr(line, "asyncd.json:");
        if (p == NULL || p > at)
            fail_msg("expected FILE:LINE:COL before %s in:\n%s", key, out);
        p += strlen("asyncd.json:");
        if (strspn(p, "0123456789") == 0 || p[strspn(p, "0123456789")] != ':' ||
            strspn(p + strspn(p, "0123456789") + 1, "0123456789") == 0)
            fail_msg("expected asyncd.json:LINE:COL, got:\n%.200s", line);
    }
}

static void sites_check_config_names_each_bad_server_key_by_path(void **state)
{
    char out[16384], path[512], target[512];

    (void)state;
    /* a page that leaves the root by a symlink */
    path_of(path, sizeof(path), "a/errors/escape.html");
    path_of(target, sizeof(target), "b/index.html");
    assert_int_equal(symlink(target, path), 0);
    write_http("{\"listen\":[\"127.0.0.1:0\"],\"servers\":[\n"
               " {\"names\":[\"a.test\",\"*.a.test\"],\"root\":\"a\",\"default\":true},\n"
               " {\"names\":[\"A.test.\"],\"root\":\"a\",\"default\":true,\n"
               "  \"locations\":[{\"prefix\":\"assets/\",\"headers\":{\"X\":\"1\"}}],\n"
               "  \"error_pages\":{\"404\":\"/../b/index.html\",\"5xx\":\"/errors/escape.html\","
               "\"600\":\"/errors/404.html\"}},\n"
               " {\"root\":\"a\"},\n"
               " {\"names\":[\"x.test:80\",\"b\\u00fccher.test\",\"a.*.test\"],"
               "\"keepalive_timeout_ms\":5,\n"
               "  \"headers\":{\"Content-Length\":\"1\"}}]}");
    assert_int_equal(check(out, sizeof(out)), 78);
    expect_problem(out, "servers[1].names[0]", "servers[0]'s already");
    expect_problem(out, "servers[1].default", "default on 127.0.0.1:0 already");
    expect_problem(out, "servers[1].locations[0].prefix", "starting with '/'");
    expect_problem(out, "servers[1].error_pages.404", "outside the root");
    expect_problem(out, "servers[1].error_pages.5xx", "outside the root");
    expect_problem(out, "servers[1].error_pages.600", "not a status");
    expect_problem(out, "servers[2]", "needs \"names\"");
    expect_problem(out, "servers[3].names[0]", "no port");
    expect_problem(out, "servers[3].names[1]", "punycode");
    expect_problem(out, "servers[3].names[2]", "wildcard");
    expect_problem(out, "servers[3].keepalive_timeout_ms", "top level");
    expect_problem(out, "servers[3].headers.Content-Length", "framing");
    /* a server that listens nowhere */
    write_http("{\"servers\":[{\"names\":[\"a.test\"]}]}");
    assert_int_equal(check(out, sizeof(out)), 78);
    expect_problem(out, "servers[0]", "needs \"listen\"");
    /* and the good one passes */
    write_http(headers_site);
    if (check(out, sizeof(out)) != 0)
        fail_msg("the good config was rejected:\n%s", out);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(sites_host_ignores_case_port_and_one_trailing_dot),
        T(sites_exact_names_win_over_wildcards_longest_wildcard_first),
        T(sites_absolute_form_target_host_before_the_host_field),
        T(sites_bad_or_missing_hosts_are_400_http10_without_host_is_default),
        T(sites_unknown_host_goes_to_the_default_of_its_address),
        T(sites_locations_longest_prefix_and_server_headers_everywhere),
        T(sites_error_pages_keep_the_status_and_never_loop),
        T(sites_error_pages_answer_the_engines_own_errors),
        T(sites_each_server_has_its_own_access_log),
        T(sites_json_access_log_names_the_server),
        T(sites_reload_changes_servers_under_an_open_keepalive_connection),
        T(sites_check_config_names_each_bad_server_key_by_path),
        T(sites_T_fills_every_servers_defaults),
    };

    signal(SIGPIPE, SIG_IGN);
    D.err = -1;
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
