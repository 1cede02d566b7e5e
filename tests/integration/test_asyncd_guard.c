/* asyncd guarding against its modules: a worker a module's fiber blocks
 * is noticed and named, and systemd's watchdog waits for it. */
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
static struct daemon D;         /* http_client.h's daemon */

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

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/asyncd-guard-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/modules", dir);
    assert_int_equal(mkdir(path, 0700), 0);
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

/* The test's NOTIFY_SOCKET, in the test folder. */
static int notify_socket(struct sockaddr_un *sa)
{
    int fd;

    sa->sun_family = AF_UNIX;
    assert_true(strlen(dir) + sizeof("/notify") <= sizeof(sa->sun_path));
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/notify", dir);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    return fd;
}

static void asyncd_pets_the_watchdog_only_while_no_worker_is_blocked(void **state)
{
    struct sockaddr_un sa;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(asyncd_names_the_module_and_fiber_that_block_a_worker,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(asyncd_reads_blocked_warn_ms_and_checks_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(asyncd_pets_the_watchdog_only_while_no_worker_is_blocked,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
