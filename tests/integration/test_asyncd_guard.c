/* asyncd guarding against its modules: a worker a module's fiber blocks
 * is noticed and named, systemd's watchdog waits for it, and a module that
 * crashes the process is named in its last line. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

#define IO_MS 10000             /* http_client.h's bound on one exchange */
static struct daemon D;         /* http_client.h's daemon; the crash tests' too */

#include "http_client.h"

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "

static void link_module(const char *src, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/modules/%s", dir, name);
    assert_int_equal(symlink(src, path), 0);
}

static int setup(void **state)
{
    char path[600];
    struct rlimit no_core = {0, 0};

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/asyncd-guard-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/modules", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    /* the crashes below would dump cores: the daemons inherit this */
    assert_int_equal(setrlimit(RLIMIT_CORE, &no_core), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_test_dir();
    return 0;
}

/* ---- a blocked worker ---- */

static void asyncd_names_the_module_and_fiber_that_block_a_worker(void **state)
{
    struct daemon d;
    char out[4096];
    const char *at;
    int port;

    (void)state;
    link_module(HTTP_SO, "http.so");
    link_module(BLOCKER_SO, "blocker.so");
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"runtime\":{\"workers\":2},\n"
               " \"modules\":{\"blocker\":{\"block_ms\":1800},\n"
               "  \"http\":{\"listen\":[\"127.0.0.1:0\"],\"status_path\":\"/status\"}}}\n");
    daemon_start(&d, "asyncd.json", NULL);
    port = number_after(&d, PORT_LINE);
    at = wait_log(&d, " blocked for ");
    assert_non_null(strstr(at, "by module blocker, entry blocker_stall"));
    at = wait_log(&d, " still blocked after ");
    assert_non_null(strstr(at, "by module blocker, entry blocker_stall"));
    wait_log(&d, " moved again after ");
    wait_log(&d, "blocker: unblocked");
    assert_int_equal(curl(out, sizeof(out), "http://127.0.0.1:%d/status", port), 0);
    assert_non_null(strstr(out, "\"workers_blocked\":1,"));
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* A module's run enters through the daemon's supervisor: run is named. */
static void asyncd_names_a_modules_run_that_blocks_a_worker(void **state)
{
    struct daemon d;
    const char *at;

    (void)state;
    link_module(BLOCKER_SO, "blocker.so");
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"blocked_warn_ms\":50,\n"
                              " \"modules\":{\"blocker\":{\"delay_ms\":0,\"block_ms\":300,"
                              "\"in_run\":true}}}\n");
    daemon_start(&d, "asyncd.json", NULL);
    at = wait_log(&d, " blocked for ");
    assert_non_null(strstr(at, "by module blocker, entry blocker.so+0x"));
    assert_non_null(strstr(at, " (its run): every fiber"));
    wait_log(&d, " moved again after ");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

static void asyncd_reads_blocked_warn_ms_and_checks_it(void **state)
{
    struct daemon d;
    char out[4096], cfg[600], want[700];

    (void)state;
    link_module(BLOCKER_SO, "blocker.so");
    write_file("bad.json", "{\"modules_dir\":\"modules\",\n \"blocked_warn_ms\":\"soon\"}\n");
    snprintf(cfg, sizeof(cfg), "%s/bad.json", dir);
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    snprintf(want, sizeof(want), "%s:2:2: blocked_warn_ms: must be an integer", cfg);
    assert_non_null(strstr(out, want));
    write_file("bad.json", "{\"modules_dir\":\"modules\",\n \"blocked_warn_ms\":0}\n");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    assert_non_null(strstr(out, "blocked_warn_ms: 0 is out of range [1, 3600000]"));
    /* a block shorter than the warning's threshold is no warning */
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"blocked_warn_ms\":5000,\n"
                              " \"modules\":{\"blocker\":{\"delay_ms\":0,\"block_ms\":500}}}\n");
    daemon_start(&d, "asyncd.json", NULL);
    wait_log(&d, "blocker: unblocked");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    assert_null(strstr(d.log, " blocked for "));
}

/* A module that appears on a reload is loaded, its constructors run, off
 * the daemon fiber's stack: one that needs 1 MiB of stack used to end
 * asyncd with "fiber stack overflow" on SIGHUP. */
static void asyncd_loads_a_module_with_a_deep_constructor_on_reload(void **state)
{
    struct daemon d;

    (void)state;
    link_module(BLOCKER_SO, "blocker.so");
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\n"
                              " \"modules\":{\"blocker\":{\"delay_ms\":0,\"block_ms\":0}}}\n");
    daemon_start(&d, "asyncd.json", NULL);
    wait_log(&d, "ready: 1 module(s) running");
    link_module(DEEP_CTOR_SO, "deep_ctor.so");
    kill(d.pid, SIGHUP);
    wait_log(&d, "deep_ctor: deep constructor ran");
    wait_log(&d, "reloaded: 2 module(s) running");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* The test's NOTIFY_SOCKET, in the test folder. */
static int notify_socket(struct sockaddr_un *sa)
{
    int fd;

    sa->sun_family = AF_UNIX;
    assert_true(strlen(dir) + sizeof("/notify") <= sizeof(sa->sun_path));
    memcpy(sa->sun_path, dir, strlen(dir));
    memcpy(sa->sun_path + strlen(dir), "/notify", sizeof("/notify"));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    return fd;
}

static void asyncd_pets_the_watchdog_only_while_no_worker_is_blocked(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct daemon d;
    int64_t until = now_ms() + 15000, last = 0, gap = 0, gap_at = 0;
    int fd, before = 0, after = 0;
    size_t moved = 0;
    char buf[256];

    (void)state;
    link_module(BLOCKER_SO, "blocker.so");
    /* two workers: the other one stays free, and used to keep petting */
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"runtime\":{\"workers\":2},"
                              "\"blocked_warn_ms\":50,\n"
                              " \"modules\":{\"blocker\":{\"delay_ms\":500,\"block_ms\":1500}}}\n");
    fd = notify_socket(&sa);
    setenv("WATCHDOG_USEC", "200000", 1); /* 200 ms: pets every 100 */
    daemon_start(&d, "asyncd.json", sa.sun_path);
    unsetenv("WATCHDOG_USEC");
    /* Every pet's time, until three came after the worker moved again. */
    while (now_ms() < until && (moved == 0 || after < 3)) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {d.err, POLLIN, 0}};
        ssize_t n;

        poll(p, 2, left_ms(until));
        while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0) {
            int64_t t = now_ms();

            buf[n] = '\0';
            if (strstr(buf, "WATCHDOG=1") == NULL)
                continue;
            if (last != 0 && t - last > gap) {
                gap = t - last;
                gap_at = t;
            }
            last = t;
            if (moved != 0)
                after++;
            else if (strstr(d.log, " blocked for ") == NULL)
                before++;
        }
        if (p[1].revents != 0)
            pump(&d, 0);
        if (moved == 0 && strstr(d.log, " moved again after ") != NULL)
            moved = 1;
    }
    assert_true(moved != 0);
    assert_true(before >= 1);
    assert_true(after >= 3);
    /* the block lasted 1500 ms; the warning came after 50 of them */
    if (gap < 1200)
        fail_msg("the longest time without WATCHDOG=1 was %lld ms (at %lld); log:\n%s",
                 (long long)gap, (long long)gap_at, d.log);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    close(fd);
}

/* ---- crashes ---- */

/* Waits for a daemon that is meant to die; how it ended. */
static int reap_crash(struct daemon *d)
{
    int status;

    read_log_to_eof(d, 10000);
    close(d->err);
    d->err = -1;
    assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
    live = 0;
    return status;
}

/* asyncd with the crasher module doing how; its log and end. */
static int crash(const char *how, struct daemon *d)
{
    char text[512];

    link_module(CRASHER_SO, "crasher.so");
    snprintf(text, sizeof(text), "{\"modules_dir\":\"modules\",\n"
                                 " \"modules\":{\"crasher\":{\"how\":\"%s\"}}}\n", how);
    write_file("asyncd.json", text);
    daemon_start(d, "asyncd.json", NULL);
    return reap_crash(d);
}

static void expect_death(const struct daemon *d, int status, int sig, const char *line)
{
    if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
        fail_msg("asyncd ended with status %#x, not signal %d; log:\n%s", status, sig, d->log);
    if (strstr(d->log, line) == NULL)
        fail_msg("no '%s' in asyncd's log:\n%s", line, d->log);
    /* one line, naming the module whose fiber ran */
    if (strstr(strstr(d->log, line), "fiber of module crasher, entry its run, crasher.so+0x") ==
        NULL)
        fail_msg("the crash line does not name the fiber's module:\n%s", d->log);
}

static void asyncd_dies_of_a_modules_sigsegv_naming_the_module(void **state)
{
    (void)state;
    expect_death(&D, crash("segv", &D), SIGSEGV, "asyncd: fatal SIGSEGV (address 0x0) at crasher.so+0x");
    assert_non_null(strstr(D.log, " in module crasher; worker "));
}

static void asyncd_dies_of_a_modules_abort_naming_the_module(void **state)
{
    (void)state;
    expect_death(&D, crash("abort", &D), SIGABRT,
                 "asyncd: fatal SIGABRT (raised by asyncd itself: abort() or an assertion)");
}

static void asyncd_dies_of_a_modules_sigfpe_naming_the_module(void **state)
{
    (void)state;
    expect_death(&D, crash("fpe", &D), SIGFPE, "asyncd: fatal SIGFPE (address 0x");
    assert_non_null(strstr(D.log, " in module crasher; worker "));
}

static void a_fiber_stack_overflow_in_a_module_still_gets_the_runtimes_report(void **state)
{
    int status;

    (void)state;
    status = crash("overflow", &D);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("asyncd ended with status %#x; log:\n%s", status, D.log);
    assert_non_null(strstr(D.log, "async_io: fiber stack overflow: fiber "));
    assert_non_null(strstr(D.log, "asyncd: fatal SIGABRT"));
    assert_non_null(strstr(D.log, "fiber of module crasher, entry crasher.so+0x"));
}

/* The access log's queued lines reach the file before the process dies:
 * the writer would otherwise take them up to a second later. */
static void a_crash_writes_the_queued_access_log_first(void **state)
{
    struct daemon d;
    char out[4096], text[1024], path[600], log[8192];
    int port, i, status;
    FILE *f;
    size_t n;

    (void)state;
    link_module(HTTP_SO, "http.so");
    link_module(CRASHER_SO, "crasher.so");
    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\n"
             " \"modules\":{\"crasher\":{\"how\":\"segv\",\"trigger\":\"%s/go\"},\n"
             "  \"http\":{\"listen\":[\"127.0.0.1:0\"],\"access_log\":\"access.log\",\n"
             "   \"routes\":[{\"path\":\"/hello\",\"body\":\"hi\"}]}}}\n", dir);
    write_file("asyncd.json", text);
    daemon_start(&d, "asyncd.json", NULL);
    port = number_after(&d, PORT_LINE);
    for (i = 0; i < 3; i++)
        assert_int_equal(curl(out, sizeof(out), "http://127.0.0.1:%d/hello?n=%d", port, i), 0);
    write_file("go", "");
    status = reap_crash(&d);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    path_of(path, sizeof(path), "access.log");
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(log, 1, sizeof(log) - 1, f);
    log[n] = '\0';
    fclose(f);
    if (strstr(log, "/hello?n=2") == NULL)
        fail_msg("the access log lost its last lines:\n%s\nasyncd's log:\n%s", log, d.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(asyncd_names_the_module_and_fiber_that_block_a_worker,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_names_a_modules_run_that_blocks_a_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_reads_blocked_warn_ms_and_checks_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_pets_the_watchdog_only_while_no_worker_is_blocked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_dies_of_a_modules_sigsegv_naming_the_module, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_dies_of_a_modules_abort_naming_the_module, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_dies_of_a_modules_sigfpe_naming_the_module, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_fiber_stack_overflow_in_a_module_still_gets_the_runtimes_report, setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_loads_a_module_with_a_deep_constructor_on_reload,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_writes_the_queued_access_log_first, setup,
                                        teardown),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
