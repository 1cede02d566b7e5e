/* READY=1 means serving: the real asyncd, the real http and echo modules
 * and a slow fixture, a test-owned NOTIFY_SOCKET, and ports taken on
 * purpose.  At start-up a module that cannot start stops asyncd (exit 1,
 * named, no READY=1) unless it is optional; READY=1 waits for modules
 * that bind late; after a reload a failed start is logged and the rest
 * serve. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

static int notify_fd = -1;      /* the test's NOTIFY_SOCKET */
static char notify_path[sizeof(dir) + sizeof("/notify")]; /* fits sun_path: setup checks */

static void link_module(const char *src, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/modules/%s", dir, name);
    assert_int_equal(symlink(src, path), 0);
}

static int setup(void **state)
{
    char path[512];

    snprintf(dir, sizeof(dir), "/tmp/asyncd-ready-XXXXXX");
    assert_non_null(mkdtemp(dir));
    path_of(path, sizeof(path), "modules");
    assert_int_equal(mkdir(path, 0700), 0);
    notify_fd = notify_bind(notify_path, sizeof(notify_path));
    return 0;
}

static int teardown(void **state)
{
    close(notify_fd);
    notify_fd = -1;
    remove_test_dir();
    return 0;
}

/* ---- the notify socket ---- */

/* The next datagram within ms, into buf; false if none came. */
static bool notify_next(char *buf, size_t len, int ms)
{
    struct pollfd p = {notify_fd, POLLIN, 0};
    ssize_t n;

    if (poll(&p, 1, ms) <= 0)
        return false;
    n = recv(notify_fd, buf, len - 1, MSG_DONTWAIT);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* Waits (10 s bound) for a datagram holding text; returns it in buf. */
static void notify_wait(char *buf, size_t len, const char *text, struct daemon *d)
{
    int64_t until = now_ms() + 10000;

    while (now_ms() < until)
        if (notify_next(buf, len, left_ms(until)) && strstr(buf, text) != NULL)
            return;
    read_log_to_eof(d, 100);
    fail_msg("no '%s' on the notify socket; asyncd's log:\n%s", text, d->log);
}

/* After the daemon exited: nothing it sent holds text. */
static void notify_never(const char *text)
{
    char buf[1024];

    while (notify_next(buf, sizeof(buf), 0))
        if (strstr(buf, text) != NULL)
            fail_msg("asyncd sent '%s' after all: %s", text, buf);
}

/* ---- ports ---- */

/* A listening socket on 127.0.0.1:0, so that its port is taken. */
static int take_port(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A connection to 127.0.0.1:port, or -1 (errno) at once if refused. */
static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static bool echoes(int port)
{
    char buf[6] = {0};
    int fd = dial(port);
    bool ok;

    if (fd < 0)
        return false;
    ok = send(fd, "hello", 5, MSG_NOSIGNAL) == 5 && recv(fd, buf, 5, MSG_WAITALL) == 5 &&
         strcmp(buf, "hello") == 0;
    close(fd);
    return ok;
}

/* An HTTP answer from port: its status line starts "HTTP/1.1 ". */
static bool http_answers(int port)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[16] = {0};
    int fd = dial(port);
    bool ok;

    if (fd < 0)
        return false;
    ok = send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1 &&
         recv(fd, buf, 9, MSG_WAITALL) == 9 && strcmp(buf, "HTTP/1.1 ") == 0;
    close(fd);
    return ok;
}

static int port_in_log(struct daemon *d, const char *prefix)
{
    return atoi(wait_log(d, prefix) + strlen(prefix));
}

static void expect_log(struct daemon *d, const char *text)
{
    if (strstr(d->log, text) == NULL)
        fail_msg("'%s' is not in asyncd's log:\n%s", text, d->log);
}

/* echo on an ephemeral port and http on port, with "optional" for http
 * when optional is not NULL (its JSON text). */
static void write_echo_http(int port, const char *optional)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "{\n  \"modules_dir\": \"modules\",\n  \"shutdown_timeout_ms\": 5000,\n"
             "  \"modules\": {\n    \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
             "    \"http\": { %s%s%s\"listen\": [\"127.0.0.1:%d\"],\n"
             "      \"routes\": [{ \"path\": \"/hello\", \"body\": \"hi\" }] }\n  }\n}\n",
             optional != NULL ? "\"optional\": " : "", optional != NULL ? optional : "",
             optional != NULL ? ", " : "", port);
    write_file("asyncd.json", text);
}

/* ---- (a) start-up: a module that cannot start stops asyncd ---- */

static void asyncd_exits_1_naming_a_module_whose_port_is_taken(void **state)
{
    struct daemon d;
    char want[256];
    int port, taken = take_port(&port);

    link_module(ECHO_SO, "echo.so");
    link_module(HTTP_SO, "http.so");
    write_echo_http(port, NULL);
    daemon_start(&d, "asyncd.json", notify_path);
    assert_int_equal(reap(&d, 20000), 1);
    snprintf(want, sizeof(want),
             "asyncd: module http failed to start: cannot listen on 127.0.0.1:%d: "
             "Address already in use", port);
    expect_log(&d, want);
    expect_log(&d, "echo: listening on"); /* it had started ... */
    if (strstr(d.log, "did not stop") != NULL)  /* ... and was stopped in time */
        fail_msg("a module outlived the stop:\n%s", d.log);
    notify_never("READY=1");
    close(taken);
}

static void asyncd_exits_1_when_a_module_ends_before_it_is_ready(void **state)
{
    struct daemon d;

    link_module(SLOW_READY_SO, "slow_ready.so");
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"modules\": { \"slow_ready\": "
                              "{ \"delay_ms\": 0, \"end_before_ready\": true } } }\n");
    daemon_start(&d, "asyncd.json", notify_path);
    assert_int_equal(reap(&d, 20000), 1);
    expect_log(&d, "module slow_ready failed to start: run returned 0 before it was ready");
    notify_never("READY=1");
}

/* ---- (b) an optional module is skipped, named, and tried on reload ---- */

static void asyncd_skips_an_optional_module_that_cannot_start(void **state)
{
    struct daemon d;
    char buf[1024];
    int port, taken = take_port(&port);

    link_module(ECHO_SO, "echo.so");
    link_module(HTTP_SO, "http.so");
    write_echo_http(port, "true");
    daemon_start(&d, "asyncd.json", notify_path);
    notify_wait(buf, sizeof(buf), "READY=1", &d);
    if (strstr(buf, "STATUS=1 module(s) running; failed to start: http") == NULL)
        fail_msg("READY=1 does not name http as failed: %s", buf);
    wait_log(&d, "module http failed to start: cannot listen on");
    wait_log(&d, "Address already in use; it is optional: skipped");
    assert_true(echoes(port_in_log(&d, "echo: listening on 127.0.0.1:0 (port ")));

    /* The port is free now: a reload, config unchanged, tries http again. */
    close(taken);
    kill(d.pid, SIGHUP);
    notify_wait(buf, sizeof(buf), "RELOADING=1", &d);
    notify_wait(buf, sizeof(buf), "READY=1", &d);
    if (strstr(buf, "STATUS=2 module(s) running") == NULL || strstr(buf, "failed") != NULL)
        fail_msg("after the reload http should run: %s", buf);
    wait_log(&d, "module http: it failed to start; trying again");
    assert_true(http_answers(port)); /* READY=1 came, so it serves now */
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- (c) READY=1 waits for a module that binds late ---- */

static void asyncd_says_ready_only_once_a_slow_module_serves(void **state)
{
    struct daemon d;
    char text[512], buf[1024], up[4] = {0};
    int port = free_port(), fd;
    int64_t began;

    link_module(SLOW_READY_SO, "slow_ready.so");
    snprintf(text, sizeof(text),
             "{ \"modules_dir\": \"modules\", \"modules\": { \"slow_ready\": "
             "{ \"listen\": \"127.0.0.1:%d\", \"delay_ms\": 400 } } }\n", port);
    write_file("asyncd.json", text);
    began = now_ms();
    daemon_start(&d, "asyncd.json", notify_path);
    notify_wait(buf, sizeof(buf), "READY=1", &d);
    /* At once, with no look at the log: READY=1 must mean serving. */
    fd = dial(port);
    if (fd < 0)
        fail_msg("READY=1 after %lld ms, but connecting failed: %s", (long long)(now_ms() - began),
                 strerror(errno));
    assert_int_equal(recv(fd, up, 3, MSG_WAITALL), 3);
    assert_string_equal(up, "up\n");
    close(fd);
    assert_true(now_ms() - began >= 400);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

static void asyncd_stops_at_sigterm_while_a_module_is_starting(void **state)
{
    struct daemon d;

    link_module(SLOW_READY_SO, "slow_ready.so");
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"modules\": { \"slow_ready\": "
                              "{ \"listen\": \"127.0.0.1:0\", \"delay_ms\": 60000 } } }\n");
    daemon_start(&d, "asyncd.json", notify_path);
    wait_log(&d, "slow_ready: waiting 60000 ms before binding");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0); /* heard while waiting, not after */
    expect_log(&d, "Terminated: stopping");
    notify_never("READY=1");
}

static void asyncd_defers_a_sighup_that_comes_during_start_up(void **state)
{
    struct daemon d;
    char buf[1024];
    const char *ready, *reloading;

    link_module(SLOW_READY_SO, "slow_ready.so");
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"modules\": { \"slow_ready\": "
                              "{ \"listen\": \"127.0.0.1:0\", \"delay_ms\": 300 } } }\n");
    daemon_start(&d, "asyncd.json", notify_path);
    wait_log(&d, "slow_ready: waiting 300 ms before binding");
    kill(d.pid, SIGHUP);
    notify_wait(buf, sizeof(buf), "READY=1", &d); /* the start-up's */
    notify_wait(buf, sizeof(buf), "RELOADING=1", &d);
    notify_wait(buf, sizeof(buf), "READY=1", &d); /* the reload's */
    ready = wait_log(&d, "asyncd: ready: 1 module(s) running");
    reloading = wait_log(&d, "asyncd: reloading");
    assert_true(ready < reloading);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- (d) reload: a failed start is logged, the others serve ---- */

static void asyncd_reload_logs_a_module_that_fails_to_start_and_serves_on(void **state)
{
    struct daemon d;
    char text[1024], buf[1024], want[256];
    int port, taken = take_port(&port), p1, c;

    link_module(ECHO_SO, "echo.so");
    link_module(ECHO2_SO, "echo2.so");
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"modules\": {\n"
                              "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
                              "  \"echo2\": { \"listen\": [\"127.0.0.1:0\"] } } }\n");
    daemon_start(&d, "asyncd.json", notify_path);
    notify_wait(buf, sizeof(buf), "READY=1", &d);
    p1 = port_in_log(&d, "echo: listening on 127.0.0.1:0 (port ");
    c = dial(p1); /* stays open across the reload */
    assert_true(c >= 0);

    /* echo2 moves to the taken port: restarted, fails, is logged. */
    snprintf(text, sizeof(text), "{ \"modules_dir\": \"modules\", \"modules\": {\n"
                                 "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
                                 "  \"echo2\": { \"listen\": [\"127.0.0.1:%d\"] } } }\n", port);
    write_file("asyncd.json", text);
    kill(d.pid, SIGHUP);
    notify_wait(buf, sizeof(buf), "RELOADING=1", &d);
    notify_wait(buf, sizeof(buf), "READY=1", &d);
    if (strstr(buf, "STATUS=1 module(s) running; failed to start: echo2") == NULL)
        fail_msg("READY=1 after the reload does not name echo2: %s", buf);
    snprintf(want, sizeof(want), "module echo2 failed to start: cannot listen on 127.0.0.1:%d: "
             "Address already in use; the others serve", port);
    wait_log(&d, want);
    wait_log(&d, "reloaded: 1 module(s) running; failed to start: echo2");
    assert_int_equal(send(c, "still", 5, MSG_NOSIGNAL), 5); /* echo never stopped */
    assert_int_equal(recv(c, text, 5, MSG_WAITALL), 5);
    assert_true(echoes(p1));
    assert_int_equal(kill(d.pid, 0), 0);
    close(c);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    close(taken);
}

static void asyncd_reload_reports_done_when_a_module_stays_unready(void **state)
{
    struct daemon d;
    char buf[1024];

    link_module(SLOW_READY_SO, "slow_ready.so");
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"shutdown_timeout_ms\": 300,\n"
                              "  \"modules\": { \"slow_ready\": "
                              "{ \"listen\": \"127.0.0.1:0\", \"delay_ms\": 0 } } }\n");
    daemon_start(&d, "asyncd.json", notify_path);
    notify_wait(buf, sizeof(buf), "READY=1", &d);
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"shutdown_timeout_ms\": 300,\n"
                              "  \"modules\": { \"slow_ready\": "
                              "{ \"listen\": \"127.0.0.1:0\", \"delay_ms\": 60000 } } }\n");
    kill(d.pid, SIGHUP);
    notify_wait(buf, sizeof(buf), "RELOADING=1", &d);
    notify_wait(buf, sizeof(buf), "READY=1", &d); /* bounded by shutdown_timeout_ms */
    if (strstr(buf, "still starting: slow_ready") == NULL)
        fail_msg("READY=1 should say slow_ready is still starting: %s", buf);
    wait_log(&d, "not ready: slow_ready; reporting it done anyway");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- (e) "optional" in the config ---- */

static void asyncd_check_config_names_a_bad_optional(void **state)
{
    static const char *const bad[] = {"\"yes\"", "1", "null", "[]", "{}"};
    char out[4096], cfg[600], want[700];
    size_t i;

    link_module(ECHO_SO, "echo.so");
    link_module(HTTP_SO, "http.so");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_echo_http(8080, bad[i]); /* "optional" is on line 6, column 15 */
        assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
        snprintf(want, sizeof(want), "%s:6:15: modules.http.optional: must be true or false", cfg);
        if (strstr(out, want) == NULL)
            fail_msg("\"optional\": %s: expected '%s', got:\n%s", bad[i], want, out);
        assert_int_equal(run_to_end("--config", cfg, out, sizeof(out)), 78); /* nor does it start */
    }
    /* true and false pass, and the module's own check never sees the key
     * (http's check refuses keys it does not know). */
    write_echo_http(8080, "true");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 0);
    write_echo_http(8080, "false");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(asyncd_exits_1_naming_a_module_whose_port_is_taken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_exits_1_when_a_module_ends_before_it_is_ready,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_skips_an_optional_module_that_cannot_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_says_ready_only_once_a_slow_module_serves, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_stops_at_sigterm_while_a_module_is_starting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_defers_a_sighup_that_comes_during_start_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            asyncd_reload_logs_a_module_that_fails_to_start_and_serves_on, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_reload_reports_done_when_a_module_stays_unready,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_check_config_names_a_bad_optional, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
