/* The kv module as a client sees it: the real asyncd with http.so routing
 * {"prefix": "/kv/", "handler": "kv"} to kv.so, over 127.0.0.1 with raw
 * sockets.  PUT/GET/HEAD/DELETE/list/If-Match, limits and errors, a
 * restart that keeps everything, a real kill -9 in the middle of a write
 * load (every write that got its 2xx must come back, no value torn), a
 * SIGTERM under the same load, a log with garbage appended, and the
 * config's problems by JSON path.  Every wait is bounded; readiness is
 * the log lines of the two modules. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define KV_READY "kv: serving "
#define IO_MS 10000

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

/* ---- fixtures ---- */

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/kv-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_link_module(KV_SO, "kv");
    test_dir_mkdir("www");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    remove_test_dir();
    return 0;
}

/* asyncd.json: http routing /kv/ to the handler, kv with kv_extra keys
 * ("" or starting with ','). */
static void write_config_full(int sync_ms, long max_value, const char *kv_extra)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"modules\":{\n"
             "  \"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\",\n"
             "          \"routes\":[{\"prefix\":\"/kv/\",\"handler\":\"kv\"}]},\n"
             "  \"kv\":{\"file\":\"kv.log\",\"sync_interval_ms\":%d,\"max_value_bytes\":%ld%s}}}\n",
             sync_ms, max_value, kv_extra);
    write_file("asyncd.json", text);
}

static void write_config_sync(int sync_ms, const char *kv_extra)
{
    write_config_full(sync_ms, 1024, kv_extra);
}

static void write_config(const char *kv_extra)
{
    write_config_sync(50, kv_extra);
}

static void start(void)
{
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    wait_log(&D, KV_READY);
}

static void stop_clean(void)
{
    daemon_stop_clean(&D);
}

/* ---- requests ---- */

/* One request on a fresh connection; body may be NULL; extra: more
 * header lines, each ending in \r\n. */
static void request(const char *method, const char *target, const char *extra, const char *body,
                    struct resp *r)
{
    char raw[8192], length[48] = "";

    if (body != NULL)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", strlen(body));
    snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: t\r\n%s%s\r\n%s", method, target,
             extra != NULL ? extra : "", length, body != NULL ? body : "");
    exchange(raw, strcmp(method, "HEAD") == 0, r, NULL);
}

static void expect(const char *method, const char *target, const char *extra, const char *body,
                   int status, const char *want_body)
{
    struct resp r;

    request(method, target, extra, body, &r);
    assert_status(&r, status);
    if (want_body != NULL && strcmp(r.body, want_body) != 0)
        fail_msg("%s %s: expected body '%s', got '%s'", method, target, want_body, r.body);
    resp_free(&r);
}

/* PUT: the new ETag (static storage). */
static const char *put(const char *key, const char *value)
{
    static char etag[64];
    char target[512];
    struct resp r;

    snprintf(target, sizeof(target), "/kv/%s", key);
    request("PUT", target, NULL, value, &r);
    assert_status(&r, 204);
    assert_non_null(hdr(r.head, "ETag"));
    snprintf(etag, sizeof(etag), "%s", hdr(r.head, "ETag"));
    resp_free(&r);
    return etag;
}

/* ------------------------------------------------------------------ */

static void kv_puts_gets_deletes_and_lists_over_http(void **state)
{
    char etag[64], big[2048];
    struct resp r;

    (void)state;
    write_config("");
    start();
    expect("GET", "/kv/a", NULL, NULL, 404, NULL);
    snprintf(etag, sizeof(etag), "%s", put("a", "hello"));
    assert_true(etag[0] == '"');
    request("GET", "/kv/a", NULL, NULL, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, "hello");
    assert_header(&r, "ETag", etag);
    resp_free(&r);
    request("HEAD", "/kv/a", NULL, NULL, &r);
    assert_status(&r, 200);
    assert_header(&r, "Content-Length", "5");
    resp_free(&r);
    put("dir/b", "B");
    put("dir/c", "");
    put("other", "O");
    put("sp%20ace", "S"); /* the key is percent-decoded */
    expect("GET", "/kv/sp%20ace", NULL, NULL, 200, "S");
    expect("GET", "/kv/", NULL, NULL, 200, "[\"a\",\"dir/b\",\"dir/c\",\"other\",\"sp ace\"]\n");
    expect("GET", "/kv/?prefix=dir%2F", NULL, NULL, 200, "[\"dir/b\",\"dir/c\"]\n");
    expect("GET", "/kv/?x=1&prefix=s", NULL, NULL, 200, "[\"sp ace\"]\n");
    expect("GET", "/kv/?prefix=zz", NULL, NULL, 200, "[]\n");
    expect("GET", "/kv/?prefix=%zz", NULL, NULL, 400, NULL);
    expect("GET", "/kv/dir/c", NULL, NULL, 200, "");
    expect("DELETE", "/kv/a", NULL, NULL, 204, NULL);
    expect("DELETE", "/kv/a", NULL, NULL, 404, NULL);
    expect("GET", "/kv/a", NULL, NULL, 404, NULL);

    request("POST", "/kv/a", NULL, "x", &r);
    assert_status(&r, 405);
    assert_header(&r, "Allow", "GET, HEAD, PUT, DELETE");
    resp_free(&r);
    request("DELETE", "/kv/", NULL, NULL, &r);
    assert_status(&r, 405);
    assert_header(&r, "Allow", "GET, HEAD");
    resp_free(&r);

    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect("PUT", "/kv/big", NULL, big, 413, NULL); /* max_value_bytes 1024 */
    big[1024] = '\0';
    put("big", big); /* exactly the limit */
    expect("GET", "/kv/big", NULL, NULL, 200, big);
    stop_clean();
}

/* Bodies in chunks and bodies past the 4 KiB the handler reads on its
 * stack, up to and past max_value_bytes. */
static void kv_takes_chunked_and_large_values(void **state)
{
    size_t big = 300 * 1024, n;
    char *raw = malloc(big + 256), *want = malloc(big + 1);
    struct client *c;
    struct resp r;

    (void)state;
    assert_non_null(raw);
    assert_non_null(want);
    write_config_full(50, 512 * 1024, "");
    start();
    exchange("PUT /kv/ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false, &r, NULL);
    assert_status(&r, 204);
    resp_free(&r);
    expect("GET", "/kv/ch", NULL, NULL, 200, "hello world");

    for (size_t i = 0; i < big; i++)
        want[i] = (char)('a' + i % 23);
    want[big] = '\0';
    n = (size_t)snprintf(raw, 256, "PUT /kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                         big);
    memcpy(raw + n, want, big);
    c = client_open(D.port);
    assert_true(client_sendn(c, raw, n + big));
    must_respond(c, false, &r);
    assert_status(&r, 204);
    resp_free(&r);
    client_close(c);
    expect("GET", "/kv/big", NULL, NULL, 200, want);

    /* past max_value_bytes without a Content-Length to tell in advance */
    c = client_open(D.port);
    assert_true(client_send(c, "PUT /kv/huge HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    for (int i = 0; i < 2 && !c->eof; i++) { /* 2 x 300 KiB > 512 KiB */
        n = (size_t)snprintf(raw, 32, "%zx\r\n", big);
        memcpy(raw + n, want, big);
        memcpy(raw + n + big, "\r\n", 2);
        if (!client_sendn(c, raw, n + big + 2))
            break; /* the server answered and closed early: fine */
    }
    client_send(c, "0\r\n\r\n");
    must_respond(c, false, &r);
    assert_status(&r, 413);
    resp_free(&r);
    client_close(c);
    expect("GET", "/kv/huge", NULL, NULL, 404, NULL);
    free(raw);
    free(want);
    stop_clean();
}

static void kv_if_match_is_compare_and_set(void **state)
{
    char e1[64], e2[64], h[128];

    (void)state;
    write_config("");
    start();
    expect("PUT", "/kv/x", "If-Match: *\r\n", "v0", 412, NULL); /* does not exist */
    expect("DELETE", "/kv/x", "If-Match: *\r\n", NULL, 412, NULL);
    snprintf(e1, sizeof(e1), "%s", put("x", "v1"));
    snprintf(h, sizeof(h), "If-Match: %s\r\n", e1);
    {
        struct resp r;

        request("PUT", "/kv/x", h, "v2", &r);
        assert_status(&r, 204);
        snprintf(e2, sizeof(e2), "%s", hdr(r.head, "ETag"));
        resp_free(&r);
    }
    assert_string_not_equal(e1, e2);
    expect("PUT", "/kv/x", h, "v3", 412, NULL);  /* e1 is stale */
    expect("DELETE", "/kv/x", h, NULL, 412, NULL);
    expect("GET", "/kv/x", NULL, NULL, 200, "v2");
    snprintf(h, sizeof(h), "If-Match: W/%s\r\n", e2); /* weak tags never match */
    expect("PUT", "/kv/x", h, "v3", 412, NULL);
    snprintf(h, sizeof(h), "If-Match: \"1\", %s\r\n", e2);
    expect("PUT", "/kv/x", "If-Match: *\r\n", "v3", 204, NULL);
    expect("DELETE", "/kv/x", h, NULL, 412, NULL); /* e2 went stale with v3 */
    expect("GET", "/kv/x", NULL, NULL, 200, "v3");
    stop_clean();
}

static void kv_restart_keeps_every_key_and_etag(void **state)
{
    char etags[20][64], key[32], val[32];
    struct resp r;

    (void)state;
    write_config("");
    start();
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "value of %d", i);
        snprintf(etags[i], sizeof(etags[i]), "%s", put(key, val));
    }
    expect("DELETE", "/kv/k3", NULL, NULL, 204, NULL);
    stop_clean();
    wait_log(&D, "kv: stopped: log written and fsynced");
    start();
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "/kv/k%d", i);
        snprintf(val, sizeof(val), "value of %d", i);
        request("GET", key, NULL, NULL, &r);
        if (i == 3) {
            assert_status(&r, 404);
        } else {
            assert_status(&r, 200);
            assert_string_equal(r.body, val);
            assert_header(&r, "ETag", etags[i]);
        }
        resp_free(&r);
    }
    stop_clean();
}

/* ---- writes under load, then the process dies ---- */

#define CONNS 16
#define MAX_PUTS 200000

static unsigned char acked[CONNS][MAX_PUTS / CONNS];

struct loader {
    struct client *c;
    int n;          /* PUTs sent on it; the last one in flight while busy */
    bool busy;
};

static struct loader L[CONNS];
static int acks, refused; /* 204s; 503s (a reload's gap: not acknowledged) */

static void send_put(struct loader *l, int conn)
{
    char raw[512], body[128];

    snprintf(body, sizeof(body), "value %d/%d %s", conn, l->n, "padding-to-make-it-64-bytes-long");
    snprintf(raw, sizeof(raw), "PUT /kv/c%d/%d HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
             conn, l->n, strlen(body), body);
    assert_true(client_send(l->c, raw));
    l->busy = true;
}

/* An answer to connection i's PUT in flight: 204 counts as acknowledged,
 * 503 (only where allowed) as refused; the next PUT goes out. */
static void answered(int i, const struct resp *r, bool allow_503)
{
    if (r->status == 204) {
        acked[i][L[i].n] = 1;
        acks++;
    } else if (r->status == 503 && allow_503) {
        refused++;
    } else {
        fail_msg("PUT %d/%d: status %d:\n%s\nlog:\n%s", i, L[i].n, r->status, r->head, D.log);
    }
    L[i].n++;
    L[i].busy = false;
    if (L[i].n < MAX_PUTS / CONNS)
        send_put(&L[i], i);
}

static void load_start(void)
{
    memset(acked, 0, sizeof(acked));
    acks = refused = 0;
    for (int i = 0; i < CONNS; i++) {
        L[i] = (struct loader){.c = client_open(D.port)};
        send_put(&L[i], i);
    }
}

static int count_in_log(const char *text)
{
    int n = 0;

    for (const char *p = D.log; (p = strstr(p, text)) != NULL; p += strlen(text))
        n++;
    return n;
}

/* Keeps CONNS PUTs in flight until `want` are acknowledged and the
 * daemon's log holds `text` at least `times` times (text NULL: no
 * condition).  Bounded: 20 s. */
static void load_until(int want, const char *text, int times, bool allow_503)
{
    int64_t until = now_ms() + 20000;

    while ((acks < want || (text != NULL && count_in_log(text) < times)) && now_ms() < until) {
        struct pollfd p[CONNS];

        pump(&D, 0);
        for (int i = 0; i < CONNS; i++)
            p[i] = (struct pollfd){L[i].c->fd, POLLIN, 0};
        if (poll(p, CONNS, 100) <= 0)
            continue;
        for (int i = 0; i < CONNS; i++) {
            struct resp r;

            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (client_fill(L[i].c, now_ms() + IO_MS) <= 0)
                fail_msg("connection %d ended under load; log:\n%s", i, D.log);
            for (long n; (n = parse_response(L[i].c->buf, L[i].c->len, false, false, &r)) > 0;) {
                consume(L[i].c, (size_t)n);
                resp_free(&r);
                answered(i, &r, allow_503);
            }
        }
    }
    if (acks < want || (text != NULL && count_in_log(text) < times))
        fail_msg("%d of %d PUTs acknowledged, '%s' %d of %d times in the log:\n%s", acks, want,
                 text ? text : "", text ? count_in_log(text) : 0, times, D.log);
}

/* Reads the answers to the PUTs still in flight (those that come count:
 * the server sent them) and closes the connections. */
static void load_finish(void)
{
    for (int i = 0; i < CONNS; i++) {
        struct resp r;

        if (L[i].busy && client_response_ms(L[i].c, false, &r, 5000) == 0) {
            if (r.status == 204) {
                acked[i][L[i].n] = 1;
                acks++;
            }
            resp_free(&r);
        }
        L[i].busy = false;
        client_close(L[i].c);
    }
}

/* Runs PUTs on CONNS connections until `want` have been acknowledged,
 * then sends sig while PUTs are in flight.  Returns the count acked. */
static int load_then_signal(int want, int sig)
{
    int in_flight = 0;

    load_start();
    load_until(want, NULL, 0, false);
    for (int i = 0; i < CONNS; i++)
        in_flight += L[i].busy;
    assert_true(in_flight > 0); /* the signal lands in the middle of writes */
    assert_int_equal(kill(D.pid, sig), 0);
    load_finish();
    return acks;
}

/* After a restart: every acknowledged PUT is there with its value, and
 * every other key that made it is whole. */
static void check_acked(void)
{
    char target[64], want[128];
    int missing = 0, torn = 0, extra = 0;
    struct client *c = client_open(D.port);

    for (int i = 0; i < CONNS; i++)
        for (int n = 0; n < MAX_PUTS / CONNS; n++) {
            struct resp r;
            char raw[128];

            if (!acked[i][n] && (n == 0 || !acked[i][n - 1]))
                break; /* past what was sent on this connection */
            snprintf(target, sizeof(target), "/kv/c%d/%d", i, n);
            snprintf(want, sizeof(want), "value %d/%d %s", i, n, "padding-to-make-it-64-bytes-long");
            snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
            assert_true(client_send(c, raw));
            must_respond(c, false, &r);
            if (r.status == 200 && strcmp(r.body, want) != 0)
                torn++;
            else if (r.status != 200 && acked[i][n])
                missing++;
            else if (r.status == 200 && !acked[i][n])
                extra++; /* written, its answer lost with the process: fine */
            resp_free(&r);
        }
    client_close(c);
    if (missing != 0 || torn != 0)
        fail_msg("%d acknowledged writes missing, %d values torn (%d unacknowledged kept)",
                 missing, torn, extra);
}

static void kv_kill9_under_write_load_loses_no_acknowledged_write(void **state)
{
    (void)state;
    write_config("");
    start();
    load_then_signal(3000, SIGKILL);
    {
        int status;

        read_log_to_eof(&D, 10000);
        close(D.err);
        D.err = -1;
        assert_int_equal(waitpid(D.pid, &status, 0), D.pid); /* SIGKILL: it is dying */
        live = 0;
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    start();
    check_acked();
    fprintf(stderr, "%d writes acknowledged before kill -9, all back\n", acks);
    stop_clean();
}

static void kv_sigterm_under_write_load_loses_no_acknowledged_write(void **state)
{
    int rc;

    (void)state;
    write_config("");
    start();
    load_then_signal(2000, SIGTERM);
    rc = reap(&D, 25000);
    if (rc != 0)
        fail_msg("asyncd exited %d; log:\n%s", rc, D.log);
    assert_non_null(strstr(D.log, "kv: stopped: log written and fsynced"));
    start();
    check_acked();
    assert_null(strstr(D.log, "dropping")); /* a clean stop leaves a clean log */
    fprintf(stderr, "%d writes acknowledged before and during SIGTERM, all back\n", acks);
    stop_clean();
}

static void kv_reload_under_write_load_loses_no_acknowledged_write(void **state)
{
    (void)state;
    write_config("");
    start();
    load_start();
    load_until(1000, NULL, 0, false);
    /* A changed config restarts the module: the old one finishes what is
     * inside and fsyncs, the new one waits for the log's lock, loads it
     * and registers "kv" again.  Writes keep coming throughout. */
    write_config_sync(60, "");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    load_until(acks + 1000, KV_READY, 2, true);
    load_finish();
    assert_non_null(strstr(D.log, "kv: stopped: log written and fsynced"));
    stop_clean();
    start();
    check_acked();
    fprintf(stderr, "%d writes acknowledged across a reload (%d answered 503), all back\n", acks,
            refused);
    stop_clean();
}

static void kv_log_with_garbage_recovers_up_to_the_last_good_record(void **state)
{
    char junk[777], want[128], path[512];
    struct stat st;
    uint64_t x = 0x2545F4914F6CDD1Dull;
    int fd;

    (void)state;
    write_config("");
    start();
    for (int i = 0; i < 50; i++) {
        char key[16], val[16];

        snprintf(key, sizeof(key), "g%d", i);
        snprintf(val, sizeof(val), "%d", i * i);
        put(key, val);
    }
    stop_clean();
    path_of(path, sizeof(path), "kv.log");
    assert_int_equal(stat(path, &st), 0);
    for (size_t i = 0; i < sizeof(junk); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (char)x;
    }
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    start();
    snprintf(want, sizeof(want), "at byte offset %lld; dropping the %zu bytes from there",
             (long long)st.st_size, sizeof(junk));
    wait_log(&D, want);
    assert_non_null(strstr(D.log, "[warning] kv: "));
    for (int i = 0; i < 50; i++) {
        char target[32], val[16];

        snprintf(target, sizeof(target), "/kv/g%d", i);
        snprintf(val, sizeof(val), "%d", i * i);
        expect("GET", target, NULL, NULL, 200, val);
    }
    put("after", "garbage");
    stop_clean();
    start(); /* the garbage is gone: nothing to drop this time */
    expect("GET", "/kv/after", NULL, NULL, 200, "garbage");
    assert_null(strstr(D.log, "dropping"));
    stop_clean();
}

static void kv_config_problems_are_reported_by_json_path(void **state)
{
    char out[16384], cfg[600];
    int rc;

    (void)state;
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{\"enabled\":false},\n"
               " \"kv\":{\"file\":5,\"sync_interval_ms\":0,\"max_value_bytes\":-1,\"bogus\":true}}}\n");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    rc = run_to_end("--check-config", cfg, out, sizeof(out));
    assert_int_equal(rc, 78);
    assert_non_null(strstr(out, "modules.kv.file: must be a non-empty path"));
    assert_non_null(strstr(out, "modules.kv.sync_interval_ms: must be an integer from 1 to 60000"));
    assert_non_null(strstr(out, "modules.kv.max_value_bytes: must be an integer from 0 to"));
    assert_non_null(strstr(out, "modules.kv.bogus: unknown key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(kv_puts_gets_deletes_and_lists_over_http, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_takes_chunked_and_large_values, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_if_match_is_compare_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_restart_keeps_every_key_and_etag, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_kill9_under_write_load_loses_no_acknowledged_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(kv_sigterm_under_write_load_loses_no_acknowledged_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(kv_reload_under_write_load_loses_no_acknowledged_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(kv_log_with_garbage_recovers_up_to_the_last_good_record,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(kv_config_problems_are_reported_by_json_path, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
