/* HTTP handlers from other modules, routed by the http module: the real
 * asyncd with http.so and the greeter fixture (tests/fixtures/greeter.c),
 * over 127.0.0.1, raw clients; every wait is bounded. */
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
#define IO_MS 10000

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/http-handlers-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_link_module(GREETER_SO, "greeter");
    test_dir_mkdir("www");
    write_file("www/index.html", "<p>index</p>\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    remove_test_dir();
    return 0;
}

/* asyncd.json: http with routes, greeter with its keys ("" or more keys). */
static void write_config(const char *routes, const char *greeter)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\",\n"
             "  \"routes\":%s},\n"
             " \"greeter\":{%s}}}\n",
             routes, greeter);
    write_file("asyncd.json", text);
}

#define ROUTES                                                                        \
    "[{\"prefix\":\"/api/\",\"handler\":\"greet\"},"                                  \
    " {\"prefix\":\"/api/v2/\",\"handler\":\"nobody\"},"                              \
    " {\"path\":\"/api/exact\",\"status\":200,\"content_type\":\"text/plain\","       \
    "\"body\":\"fixed\"}]"

static void start(const char *routes, const char *greeter)
{
    write_config(routes, greeter);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    wait_log(&D, "serving greet");
}

static void stop(void)
{
    daemon_stop_clean(&D);
}

static void get(const char *target, struct resp *r)
{
    char raw[1024];

    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    exchange(raw, false, r, NULL);
}

static void handlers_routes_reach_a_module_handler_exact_paths_first(void **state)
{
    struct resp r;

    (void)state;
    start(ROUTES, "\"gen\":\"1\"");
    get("/api/hello?x=1", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, "greeter 1: /api/hello ?x=1\n");
    resp_free(&r);
    get("/api/exact", &r); /* an exact path beats the prefix */
    assert_status(&r, 200);
    assert_string_equal(r.body, "fixed");
    resp_free(&r);
    get("/api", &r); /* not under the prefix: static files, none there */
    assert_status(&r, 404);
    resp_free(&r);
    get("/", &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, "<p>index</p>\n");
    resp_free(&r);
    stop();
}

static void handlers_read_the_request_body_and_stream_the_answer(void **state)
{
    struct client *c;
    struct resp r;
    char head[256];
    char *body = malloc(200000);
    int n;

    (void)state;
    assert_non_null(body);
    for (n = 0; n < 200000; n++)
        body[n] = (char)('a' + n % 23);
    start(ROUTES, "");
    c = client_open(D.port);
    n = snprintf(head, sizeof(head),
                 "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n");
    assert_true(client_sendn(c, head, (size_t)n));
    assert_true(client_sendn(c, body, 200000));
    must_respond(c, false, &r);
    assert_status(&r, 200);
    assert_header(&r, "Transfer-Encoding", "chunked");
    assert_int_equal(r.body_len, 200000);
    assert_memory_equal(r.body, body, 200000);
    resp_free(&r);
    client_close(c);
    free(body);
    stop();
}

/* A route to a name no module provides: after a bounded wait for it to
 * appear (a reload in progress), 503 with Retry-After. */
static void handlers_a_name_nobody_provides_answers_503_retry_after(void **state)
{
    struct resp r;
    int64_t t0;

    (void)state;
    start(ROUTES, "");
    wait_log(&D, "no module provides handler \"nobody\"");
    t0 = now_ms();
    get("/api/v2/x", &r);
    assert_status(&r, 503);
    assert_header(&r, "Retry-After", "1");
    assert_true(now_ms() - t0 >= 900); /* it waited for the name first */
    resp_free(&r);
    stop();
}

/* A handler module that fails in run before it registers: the reason is
 * logged, the daemon and the http module carry on, and its routes answer
 * 503 after the bounded wait. */
static void handlers_a_provider_that_fails_before_registering_leaves_503(void **state)
{
    struct resp r;

    (void)state;
    write_config(ROUTES, "\"name\":\"no spaces allowed\"");
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    wait_log(&D, "cannot register no spaces allowed: Invalid argument");
    get("/api/x", &r);
    assert_status(&r, 503);
    resp_free(&r);
    get("/api/exact", &r); /* the rest of the http module serves on */
    assert_status(&r, 200);
    resp_free(&r);
    stop();
}

/* --check-config knows which handlers the modules will provide: a route
 * to one nobody declares is a warning with its place, the config still
 * passes; a declared one is quiet. */
static void handlers_check_config_warns_about_a_handler_nobody_provides(void **state)
{
    char out[8192], cfg[600];

    (void)state;
    write_config(ROUTES, "");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    assert_int_equal(run_to_end("-t", cfg, out, sizeof(out)), 0);
    print_message("      %s", out);
    if (strstr(out, "asyncd.json:3:72: modules.http.routes[1].handler: no module provides "
                    "handler \"nobody\"") == NULL)
        fail_msg("no warning placed at routes[1].handler:\n%s", out);
    assert_null(strstr(out, "handler \"greet\""));
    /* the greeter declares the name its config gives it */
    write_config(ROUTES, "\"name\":\"nobody\"");
    assert_int_equal(run_to_end("-t", cfg, out, sizeof(out)), 0);
    assert_null(strstr(out, "handler \"nobody\""));
    assert_non_null(strstr(out, "handler \"greet\""));
}

static void handlers_a_name_is_unique_across_the_daemon(void **state)
{
    (void)state;
    start(ROUTES, "\"twice\":true");
    wait_log(&D, "second registration: File exists");
    stop();
}

/* Reloading the handler's module under requests: the request inside the
 * old handler finishes on the old code, new ones reach the new code, and
 * none fails in between (a gap is bridged by waiting for the name). */
static void handlers_reloading_the_provider_loses_no_request(void **state)
{
    struct client *slow, *c;
    struct resp r;
    int i, gen2 = 0;
    int64_t until;

    (void)state;
    start(ROUTES, "\"gen\":\"1\",\"sleep_ms\":600");
    slow = client_open(D.port);
    assert_true(client_send(slow, "GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n"));
    wait_log(&D, "slow request inside (gen 1)");
    write_config(ROUTES, "\"gen\":\"2\",\"sleep_ms\":600");
    kill(D.pid, SIGHUP);
    c = client_open(D.port);
    /* gen 1 answers until gen 2 is loaded beside it: bounded by time, not
     * by a count a slow (sanitizer) build may use up first */
    until = now_ms() + 20000;
    for (i = 0; now_ms() < until && gen2 < 5; i++) {
        assert_true(client_send(c, "GET /api/n HTTP/1.1\r\nHost: t\r\n\r\n"));
        must_respond(c, false, &r);
        if (r.status != 200)
            fail_msg("request %d during the reload: %d %s\nlog:\n%s", i, r.status, r.body,
                     D.log);
        if (strstr(r.body, "greeter 2:") != NULL)
            gen2++;
        resp_free(&r);
    }
    assert_int_equal(gen2, 5);
    must_respond(slow, false, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, "greeter 1: /api/slow ?\n");
    resp_free(&r);
    client_close(slow);
    client_close(c);
    stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(handlers_routes_reach_a_module_handler_exact_paths_first,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(handlers_read_the_request_body_and_stream_the_answer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(handlers_a_name_nobody_provides_answers_503_retry_after,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(handlers_a_name_is_unique_across_the_daemon, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            handlers_check_config_warns_about_a_handler_nobody_provides, setup, teardown),
        cmocka_unit_test_setup_teardown(
            handlers_a_provider_that_fails_before_registering_leaves_503, setup, teardown),
        cmocka_unit_test_setup_teardown(handlers_reloading_the_provider_loses_no_request, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
