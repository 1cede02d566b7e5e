/* asyncd as a user runs it: a real process, a config file, a modules
 * folder, signals, and clients over 127.0.0.1. */
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
#include <time.h>
#include <unistd.h>

#include "daemon.h"

static void link_module(const char *src, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/modules/%s", dir, name);
    assert_int_equal(symlink(src, path), 0);
}

static int setup(void **state)
{
    char cmd[600];

    snprintf(dir, sizeof(dir), "/tmp/asyncd-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "%s/modules", dir);
    assert_int_equal(mkdir(cmd, 0700), 0);
    return 0;
}

static int teardown(void **state)
{
    remove_test_dir();
    return 0;
}

static void asyncd_check_config_accepts_a_good_file(void **state)
{
    char out[4096], cfg[600];

    link_module(ECHO_SO, "echo.so");
    write_file("ok.json", "{\n  \"modules_dir\": \"modules\",\n"
                          "  \"modules\": { \"echo\": { \"listen\": [\"127.0.0.1:0\"] } }\n}\n");
    snprintf(cfg, sizeof(cfg), "%s/ok.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "configuration OK"));
}

static void asyncd_check_config_names_file_line_column_and_path(void **state)
{
    char out[8192], cfg[600], want[700];

    link_module(ECHO_SO, "echo.so");
    write_file("bad.json", "{\n"
                           "  \"runtime\": { \"workers\": \"two\" },\n"
                           "  \"bogus\": 1,\n"
                           "  \"log_level\": \"loud\",\n"
                           "  \"modules_dir\": \"modules\",\n"
                           "  \"modules\": { \"other\": { \"enabled\": 1 }, \"echo\": { \"listen\": \"nope\" } }\n"
                           "}\n");
    snprintf(cfg, sizeof(cfg), "%s/bad.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    snprintf(want, sizeof(want), "%s:2:16: runtime.workers: must be an integer", cfg);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s:3:3: bogus: unknown key", cfg);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s:4:3: log_level: must be one of", cfg);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s:6:27: modules.other.enabled: must be true or false", cfg);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "modules.echo: listen: must be an array")); /* the module's check */
}

static void asyncd_rejects_invalid_json_with_its_position(void **state)
{
    char out[4096], cfg[600], want[700];

    write_file("broken.json", "{\n  \"log_level\": \"info\",\n  oops\n}\n");
    snprintf(cfg, sizeof(cfg), "%s/broken.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    snprintf(want, sizeof(want), "%s:3:", cfg);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "invalid JSON"));
    assert_int_equal(run_to_end("--config", cfg, out, sizeof(out)), 78); /* nor does it start */
    assert_int_equal(run_to_end("--version", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "asyncd "));
}

static void asyncd_check_config_rejects_a_module_name_no_module_declares(void **state)
{
    char out[8192], t_out[8192], cfg[600], want[1400];
    struct daemon d;

    link_module(ECHO_SO, "echo.so");
    write_file("typo.json", "{\n"
                            "  \"modules_dir\": \"modules\",\n"
                            "  \"modules\": {\n"
                            "    \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
                            "    \"ecoh\": { \"enabled\": false },\n"
                            "    \"zzzzzz\": {}\n"
                            "  }\n"
                            "}\n");
    snprintf(cfg, sizeof(cfg), "%s/typo.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    snprintf(want, sizeof(want), "%s:5:5: modules.ecoh: no module named 'ecoh' in %s/modules "
             "(modules there: echo); did you mean 'echo'?", cfg, dir);
    if (strstr(out, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, out);
    snprintf(want, sizeof(want), "%s:6:5: modules.zzzzzz: no module named 'zzzzzz'", cfg);
    if (strstr(out, want) == NULL || strstr(strstr(out, want), "did you mean") != NULL)
        fail_msg("expected \"%s\" without a guess in:\n%s", want, out);
    /* -t is --check-config */
    assert_int_equal(run_to_end("-t", cfg, t_out, sizeof(t_out)), 78);
    assert_non_null(strstr(t_out, "modules.ecoh: no module named 'ecoh'"));
    /* start-up refuses it before any module runs */
    daemon_start(&d, "typo.json", NULL);
    assert_int_equal(reap(&d, 10000), 78);
    assert_non_null(strstr(d.log, "modules.ecoh: no module named 'ecoh'"));
    assert_null(strstr(d.log, "listening on"));
}

static void asyncd_refuses_to_start_with_a_module_config_its_check_rejects(void **state)
{
    char cfg[600], out[4096];
    struct daemon d;

    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json", "{\n  \"modules_dir\": \"modules\",\n"
                              "  \"modules\": { \"echo\": { \"listen\": [\"127.0.0.1:99999\"] } }\n}\n");
    daemon_start(&d, "asyncd.json", NULL); /* used to skip echo and run on */
    assert_int_equal(reap(&d, 10000), 78);
    if (strstr(d.log, ":3:16: modules.echo: listen[0]: \"127.0.0.1:99999\": the port is above "
                      "65535") == NULL || strstr(d.log, "configuration rejected") == NULL)
        fail_msg("expected the echo check's problem at 3:16 (modules.echo); log:\n%s", d.log);
    snprintf(cfg, sizeof(cfg), "%s/asyncd.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
}

static void asyncd_check_config_places_keys_with_dots_and_brackets(void **state)
{
    char out[8192], cfg[600], want[700];
    static const char *const expect[] = {
        "3:3: a.b: unknown key",           "4:3: c[0]: unknown key", "5:3: [: unknown key",
        "6:3: ].: unknown key",            "7:3: .: unknown key",
        "8:16: runtime.x.y: unknown key",  "9:16: runtime.[1: unknown key",
        "10:3: runtime[1: unknown key", /* not the member "[1" of runtime */
        "11:3: caf\xc3\xa9: unknown key",  /* placed by its decoded name */
    };
    size_t i;

    link_module(ECHO_SO, "echo.so");
    write_file("keys.json", "{\n"
                            "  \"modules_dir\": \"modules\",\n"
                            "  \"a.b\": 1,\n"
                            "  \"c[0]\": 2,\n"
                            "  \"[\": 3,\n"
                            "  \"].\": 4,\n"
                            "  \".\": 5,\n"
                            "  \"runtime\": { \"x.y\": 6,\n"
                            "               \"[1\": 7 },\n"
                            "  \"runtime[1\": 8,\n"
                            "  \"caf\\u00e9\": 9\n"
                            "}\n");
    snprintf(cfg, sizeof(cfg), "%s/keys.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        snprintf(want, sizeof(want), "%s:%s", cfg, expect[i]);
        if (strstr(out, want) == NULL)
            fail_msg("expected \"%s\" in:\n%s", want, out);
    }
}

static void asyncd_T_prints_the_effective_configuration_as_json(void **state)
{
    char cmd[2048], out[4096];

    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"log_level\": \"notice\",\n"
                              "  \"modules\": { \"echo\": { \"listen\": [\"127.0.0.1:0\"] } } }\n");
    /* stdout alone must be JSON: the verdict goes to stderr */
    snprintf(cmd, sizeof(cmd),
             "'%s' -T '%s/asyncd.json' 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); "
             "assert d[\"runtime\"][\"workers\"]>0 and d[\"runtime\"][\"stack_size\"]>=65536, d; "
             "assert d[\"shutdown_timeout_ms\"]==10000 and d[\"log_level\"]==\"notice\", d; "
             "assert d[\"modules_dir\"]==sys.argv[1]+\"/modules\", d; "
             "assert d[\"modules\"]=={\"echo\":{\"enabled\":True,\"optional\":False,\"listen\":[\"127.0.0.1:0\"]}}, d' '%s'",
             ASYNCD, dir, dir);
    assert_int_equal(system(cmd), 0);
    /* a bad config: 78, as for --check-config */
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"modules\": { \"ecoh\": {} } }\n");
    snprintf(cmd, sizeof(cmd), "%s/asyncd.json", dir);
    assert_int_equal(run_to_end("-T", cmd, out, sizeof(out)), 78);
    assert_null(strstr(out, "\"runtime\""));
    /* --help names the short forms */
    assert_int_equal(run_to_end("--help", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "asyncd -t [FILE]"));
    assert_non_null(strstr(out, "asyncd -T [FILE]"));
}

/* ---- a running daemon ---- */

/* Signals the daemon, waits for it to exit, checks that it said it was
 * stopping; its exit status. */
static int stop(struct daemon *d, int sig)
{
    int rc = daemon_stop(d, sig);

    if (strstr(d->log, sig == SIGTERM ? "Terminated: stopping" : "Interrupt: stopping") == NULL)
        fail_msg("asyncd did not say it was stopping; log:\n%s", d->log);
    return rc;
}

static int echo_port(struct daemon *d)
{
    const char *at = wait_log(d, "echo: listening on 127.0.0.1:0 (port ");

    return atoi(at + strlen("echo: listening on 127.0.0.1:0 (port "));
}

static int echoes(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    char buf[6] = {0};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && send(fd, "hello", 5, 0) == 5 &&
         recv(fd, buf, 5, MSG_WAITALL) == 5 && strcmp(buf, "hello") == 0;
    close(fd);
    return ok;
}

static const char good_config[] =
    "{\n  \"modules_dir\": \"modules\",\n  \"shutdown_timeout_ms\": 5000,\n"
    "  \"modules\": { \"echo\": { \"listen\": [\"127.0.0.1:0\"] } }\n}\n";

static void asyncd_skips_bad_modules_runs_good_ones_and_restarts_failing_ones(void **state)
{
    struct daemon d;

    link_module(ECHO_SO, "echo.so");
    link_module(ECHO_SO, "echo_again.so");
    link_module(BAD_ABI_SO, "bad_abi.so");
    link_module(NO_SYMBOL_SO, "no_symbol.so");
    link_module(FAILING_SO, "failing.so");
    link_module(ABI1_SO, "abi1.so");
    link_module(BIG_DESC_SO, "big_desc.so");
    write_file("modules/junk.so", "this is not an ELF file\n");
    write_file("asyncd.json", good_config);
    daemon_start(&d, "asyncd.json", NULL);
    assert_true(echoes(echo_port(&d)));
    wait_log(&d, "bad_abi.so: built for module ABI 1000, newer than this asyncd's 2");
    wait_log(&d, "abi1.so: built for module ABI 1; this asyncd loads ABI 2: rebuild it");
    wait_log(&d, "big_desc: big descriptor module running"); /* a newer ABI 2 header */
    wait_log(&d, "no_symbol.so: no 'async_module' symbol");
    wait_log(&d, "junk.so: not a loadable module");
    wait_log(&d, "echo_again.so: it declares 'echo': a module's file must be echo.so");
    wait_log(&d, "module failing failed (run returned 1); restarting in 1000 ms");
    wait_log(&d, "module failing failed (run returned 1); restarting in 2000 ms");
    assert_true(echoes(echo_port(&d))); /* still serving */
    assert_int_equal(stop(&d, SIGTERM), 0);
}

static void asyncd_tells_systemd_ready_watchdog_and_stopping(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct daemon d;
    char buf[256];
    int fd, i;
    ssize_t n;
    struct timeval tv = {10, 0};

    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json", good_config);
    assert_true(strlen(dir) + sizeof("/notify") <= sizeof(sa.sun_path));
    memcpy(sa.sun_path, dir, strlen(dir));
    memcpy(sa.sun_path + strlen(dir), "/notify", sizeof("/notify"));
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setenv("WATCHDOG_USEC", "100000", 1); /* 100 ms: pets every 50 */
    daemon_start(&d, "asyncd.json", sa.sun_path);
    unsetenv("WATCHDOG_USEC");
    do { /* pets may come first: READY=1 waits for the modules */
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
    } while (strstr(buf, "WATCHDOG=1") != NULL);
    assert_non_null(strstr(buf, "READY=1"));
    for (i = 0; i < 3; i++) { /* the watchdog keeps being petted */
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_non_null(strstr(buf, "WATCHDOG=1"));
    }
    assert_true(echoes(echo_port(&d))); /* the modules had started */
    kill(d.pid, SIGTERM);
    do { /* watchdog pets may come first */
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
    } while (strstr(buf, "WATCHDOG=1") != NULL);
    assert_non_null(strstr(buf, "STOPPING=1"));
    assert_int_equal(stop(&d, SIGTERM), 0);
    close(fd);
}

static void asyncd_speaks_to_an_abstract_notify_socket(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {10, 0};
    struct daemon d;
    char name[64], buf[256];
    socklen_t len;
    ssize_t n;
    int fd;

    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json", good_config);
    snprintf(name, sizeof(name), "@asyncd-test-%d", (int)getpid());
    memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1); /* sun_path[0] = 0: abstract */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    daemon_start(&d, "asyncd.json", name);
    n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "READY=1"));
    assert_int_equal(stop(&d, SIGTERM), 0);
    close(fd);
}

static void asyncd_gives_up_on_a_module_that_ignores_cancellation(void **state)
{
    struct daemon d;

    link_module(ECHO_SO, "echo.so");
    link_module(STUBBORN_SO, "stubborn.so");
    write_file("asyncd.json", "{\n  \"modules_dir\": \"modules\",\n  \"shutdown_timeout_ms\": 300,\n"
                              "  \"modules\": { \"echo\": { \"listen\": [\"127.0.0.1:0\"] } }\n}\n");
    daemon_start(&d, "asyncd.json", NULL);
    wait_log(&d, "stubborn: running and never stopping");
    assert_true(echoes(echo_port(&d)));
    assert_int_equal(stop(&d, SIGINT), 1);
    assert_non_null(strstr(d.log, "module stubborn did not stop within 300 ms"));
    assert_null(strstr(d.log, "module echo did not stop"));
}

/* ---- reload ---- */

static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static int round_trip(int fd, const char *msg)
{
    char buf[64] = {0};
    size_t len = strlen(msg);

    return send(fd, msg, len, MSG_NOSIGNAL) == (ssize_t)len &&
           recv(fd, buf, len, MSG_WAITALL) == (ssize_t)len && memcmp(buf, msg, len) == 0;
}

static void asyncd_reload_adds_removes_restarts_and_leaves_the_rest_alone(void **state)
{
    struct daemon d;
    char path[600];
    int p1, p2, p2b, c1, c2;

    link_module(ECHO_SO, "echo.so");
    link_module(ECHO2_SO, "echo2.so");
    write_file("asyncd.json",
               "{ \"modules_dir\": \"modules\", \"modules\": {\n"
               "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
               "  \"echo2\": { \"listen\": [\"127.0.0.1:0\"] } } }\n");
    daemon_start(&d, "asyncd.json", NULL);
    p1 = number_after(&d, "echo: listening on 127.0.0.1:0 (port ");
    p2 = atoi(wait_log(&d, "echo2: listening on 127.0.0.1:0 (port ") +
              strlen("echo2: listening on 127.0.0.1:0 (port "));
    c1 = connect_to(p1); /* stays open across every reload below */
    c2 = connect_to(p2);
    assert_true(round_trip(c1, "one") && round_trip(c2, "two"));

    /* echo2's config changes: it restarts; echo is untouched. */
    write_file("asyncd.json",
               "{ \"modules_dir\": \"modules\", \"modules\": {\n"
               "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
               "  \"echo2\": { \"listen\": [\"127.0.0.1:0\", \"127.0.0.1:0\"] } } }\n");
    kill(d.pid, SIGHUP);
    wait_next(&d, "module echo2: config changed, restarting");
    {
        size_t from = d.mark; /* the restarted module logs concurrently */

        wait_from(&d, from, "reloaded: 2 module(s) running");
        p2b = number_after(&d, "echo2: listening on 127.0.0.1:0 (port ");
        d.mark = from;
        wait_next(&d, "reloaded: 2 module(s) running");
    }
    assert_true(round_trip(c1, "still here"));
    assert_true(echoes(p2b));
    close(c2);

    /* echo2 removed (its file and its entry): stopped and unloaded; echo
     * untouched. */
    snprintf(path, sizeof(path), "%s/modules/echo2.so", dir);
    assert_int_equal(unlink(path), 0);
    write_file("asyncd.json", "{ \"modules_dir\": \"modules\", \"modules\": {\n"
                              "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] } } }\n");
    kill(d.pid, SIGHUP);
    {
        size_t from = d.mark; /* the reload does not wait for echo2 to be unloaded */

        wait_from(&d, from, "unloaded module echo2");
        wait_from(&d, from, "reloaded: 1 module(s) running");
        d.mark = d.len;
    }
    assert_true(round_trip(c1, "and here"));

    /* echo2 back, disabled: loaded, not started. */
    link_module(ECHO2_SO, "echo2.so");
    write_file("asyncd.json",
               "{ \"modules_dir\": \"modules\", \"modules\": {\n"
               "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
               "  \"echo2\": { \"enabled\": false, \"listen\": [\"127.0.0.1:0\"] } } }\n");
    kill(d.pid, SIGHUP);
    wait_next(&d, "loaded module echo2 1.0 from");
    wait_next(&d, "reloaded: 1 module(s) running");

    /* A bad config is rejected and nothing changes. */
    write_file("asyncd.json", "{ \"modules_dir\": 7 }\n");
    kill(d.pid, SIGHUP);
    wait_next(&d, "modules_dir: must be a non-empty string");
    wait_next(&d, "reload rejected");
    assert_true(round_trip(c1, "survived"));
    assert_true(echoes(p1));
    close(c1);
    assert_int_equal(stop(&d, SIGTERM), 0);
}

/* Writes modules_dir, then "x" holding depth - 1 nested arrays under the
 * top-level object, then echo's config: the bracket that makes depth
 * levels opens at column strlen(head) + depth - 1. */
static void write_nested(int depth)
{
    static const char head[] = "{\"modules_dir\":\"modules\",\"x\":";
    size_t n = (size_t)depth - 1, len = strlen(head);
    char *text = malloc(len + 2 * n + 100);

    assert_non_null(text);
    memcpy(text, head, len);
    memset(text + len, '[', n);
    memset(text + len + n, ']', n);
    strcpy(text + len + 2 * n, ",\"modules\":{\"echo\":{\"listen\":[\"127.0.0.1:0\"]}}}\n");
    write_file("asyncd.json", text);
    free(text);
}

/* The config is parsed, copied and compared by recursive code on a
 * fiber's stack at reload: 2,000 nested arrays overflowed it and killed
 * the daemon.  Nesting is now bounded (32) before anything recursive
 * reads the file. */
static void asyncd_refuses_deep_nesting_and_a_reload_of_it_keeps_serving(void **state)
{
    char out[8192], cfg[600], want[700];
    struct daemon d;
    int port;

    link_module(ECHO_SO, "echo.so");
    snprintf(cfg, sizeof(cfg), "%s/asyncd.json", dir);
    write_nested(32); /* as deep as allowed: only x is wrong */
    assert_int_equal(run_to_end("-t", cfg, out, sizeof(out)), 78);
    if (strstr(out, ":1:26: x: unknown key") == NULL || strstr(out, "nested deeper") != NULL)
        fail_msg("32 levels:\n%s", out);
    write_nested(33);
    assert_int_equal(run_to_end("-t", cfg, out, sizeof(out)), 78);
    snprintf(want, sizeof(want), "%s:1:%d: nested deeper than 32 objects and arrays", cfg,
             (int)strlen("{\"modules_dir\":\"modules\",\"x\":") + 32);
    if (strstr(out, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, out);

    write_file("asyncd.json", good_config);
    daemon_start(&d, "asyncd.json", NULL);
    port = echo_port(&d);
    write_nested(100000);
    kill(d.pid, SIGHUP);
    wait_next(&d, ": nested deeper than 32 objects and arrays");
    wait_next(&d, "reload rejected");
    assert_true(echoes(port));
    assert_int_equal(stop(&d, SIGTERM), 0);
}

static void asyncd_reload_rejects_unknown_names_and_bad_configs_of_new_modules(void **state)
{
    struct daemon d;
    int p1, c1;

    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json", good_config);
    daemon_start(&d, "asyncd.json", NULL);
    p1 = echo_port(&d);
    c1 = connect_to(p1);
    assert_true(round_trip(c1, "before"));

    /* a typo'd module name: rejected whole, echo keeps serving */
    write_file("asyncd.json",
               "{ \"modules_dir\": \"modules\", \"modules\": {\n"
               "  \"echo\": { \"listen\": [\"127.0.0.1:0\", \"127.0.0.1:0\"] },\n"
               "  \"ehco2\": { \"listen\": [\"127.0.0.1:0\"] } } }\n");
    kill(d.pid, SIGHUP);
    wait_next(&d, ":3:3: modules.ehco2: no module named 'ehco2'");
    wait_next(&d, "reload rejected");
    assert_null(strstr(d.log, "module echo: config changed")); /* echo's change was not applied */
    assert_true(round_trip(c1, "after a typo"));
    assert_true(echoes(p1));

    /* a new module file with a config its check rejects: rejected too,
     * and the new module does not start */
    link_module(ECHO2_SO, "echo2.so");
    write_file("asyncd.json",
               "{ \"modules_dir\": \"modules\", \"modules\": {\n"
               "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
               "  \"echo2\": { \"listen\": [\"127.0.0.1:65536\"] } } }\n");
    kill(d.pid, SIGHUP);
    wait_next(&d, ":3:3: modules.echo2: listen[0]: \"127.0.0.1:65536\": the port is above 65535");
    wait_next(&d, "reload rejected");
    assert_null(strstr(d.log, "echo2: listening"));
    assert_true(round_trip(c1, "after a bad new module"));

    /* fixed: the new module's name is known (probed from its file) and it starts */
    write_file("asyncd.json",
               "{ \"modules_dir\": \"modules\", \"modules\": {\n"
               "  \"echo\": { \"listen\": [\"127.0.0.1:0\"] },\n"
               "  \"echo2\": { \"listen\": [\"127.0.0.1:0\"] } } }\n");
    kill(d.pid, SIGHUP);
    wait_next(&d, "reloaded: 2 module(s) running");
    wait_log(&d, "echo2: listening on 127.0.0.1:0 (port ");
    assert_true(round_trip(c1, "still the same connection"));
    close(c1);
    assert_int_equal(stop(&d, SIGTERM), 0);
}

/* ---- a module built out of tree, dropped into a running daemon ---- */

static const char hello_module[] =
    "#include <async_io.h>\n"
    "#include <async_io/module.h>\n"
    "static int run(async_module_host *host, const json_t *config)\n"
    "{\n"
    "    async_listener *l = async_listener_bind(\"127.0.0.1:0\");\n"
    "    async_stream *s;\n"
    "    if (l == NULL) return 1;\n"
    "    async_module_log(host, ASYNC_LOG_NOTICE, \"serving on port %d\", async_listener_port(l));\n"
    "    while ((s = async_listener_accept(l)) != NULL) {\n"
    "        async_stream_write_all(s, \"hi\\n\", 3);\n"
    "        async_stream_close(s);\n"
    "    }\n"
    "    async_listener_close(l);\n"
    "    return 0;\n"
    "}\n"
    "const struct async_module async_module = {\n"
    "    .abi_version = ASYNC_MODULE_ABI_VERSION, .name = \"hello\", .version = \"1.0\", .run = run,\n"
    "};\n";

static void asyncd_serves_a_module_built_with_pkg_config_after_a_reload(void **state)
{
    struct daemon d;
    char cmd[2048], buf[8] = {0};
    int port, fd;

    /* Install the tree, as a user would, into the test's folder. */
    snprintf(cmd, sizeof(cmd), "cmake --install %s --prefix %s/inst > /dev/null", BUILD_DIR, dir);
    assert_int_equal(system(cmd), 0);
    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json", good_config);
    daemon_start(&d, "asyncd.json", NULL);
    echo_port(&d);
    /* Build the module with nothing but pkg-config, into the live folder. */
    write_file("hello.c", hello_module);
    snprintf(cmd, sizeof(cmd),
             "cd %s && cc -shared -fPIC -o modules/hello.so.tmp hello.c "
             "$(PKG_CONFIG_PATH=%s/inst/lib/pkgconfig pkg-config --define-prefix --cflags --libs "
             "async_io_module) && mv modules/hello.so.tmp modules/hello.so",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    kill(d.pid, SIGHUP);
    port = atoi(wait_log(&d, "hello: serving on port ") + strlen("hello: serving on port "));
    fd = connect_to(port);
    assert_int_equal(recv(fd, buf, 3, MSG_WAITALL), 3);
    assert_string_equal(buf, "hi\n");
    close(fd);
    assert_int_equal(stop(&d, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(asyncd_check_config_accepts_a_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_check_config_names_file_line_column_and_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_rejects_invalid_json_with_its_position, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_check_config_rejects_a_module_name_no_module_declares,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_refuses_to_start_with_a_module_config_its_check_rejects,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_check_config_places_keys_with_dots_and_brackets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_T_prints_the_effective_configuration_as_json, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            asyncd_skips_bad_modules_runs_good_ones_and_restarts_failing_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_tells_systemd_ready_watchdog_and_stopping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_speaks_to_an_abstract_notify_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_gives_up_on_a_module_that_ignores_cancellation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_reload_adds_removes_restarts_and_leaves_the_rest_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            asyncd_reload_rejects_unknown_names_and_bad_configs_of_new_modules, setup, teardown),
        cmocka_unit_test_setup_teardown(
            asyncd_refuses_deep_nesting_and_a_reload_of_it_keeps_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_serves_a_module_built_with_pkg_config_after_a_reload,
                                        setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
