/* SIGUSR2, the binary upgrade (daemon/upgrade.c), and sockets handed to
 * asyncd at start-up (daemon/inherit.c), as clients and an operator see
 * them: upgrades under keep-alive and connect-loop load fail no request,
 * each old process exits 0 and the new one serves; a new binary that is
 * missing, not executable, crashes, hangs, or a config only the new
 * process reads and rejects, leave the old one serving with the reason
 * logged; SIGUSR2 twice, SIGTERM during an upgrade; socket activation
 * through systemd-socket-activate; inherited descriptors that are not
 * listening sockets.
 *
 * The test process is a child subreaper (PR_SET_CHILD_SUBREAPER), so
 * each new asyncd, orphaned when the old one exits, becomes its child:
 * its exit status can be waited for like the first one's.  Every asyncd
 * of a test writes to the same stderr pipe, so the log in D is theirs
 * together, in order. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define IO_MS 5000

#include "daemon.h"
#include "load.h"

static struct daemon D;
static pid_t others[16];        /* new processes a failed test may leave: teardown kills */

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/asyncd-upgrade-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    return 0;
}

static int teardown(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (others[i] > 0) {
            kill(others[i], SIGKILL);
            waitpid(others[i], NULL, 0);
            others[i] = 0;
        }
    remove_test_dir();
    return 0;
}

static void track(pid_t pid)
{
    size_t i;

    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (others[i] == 0 || others[i] == pid) {
            others[i] = pid;
            return;
        }
}

static void untrack(pid_t pid)
{
    size_t i;

    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (others[i] == pid)
            others[i] = 0;
}

/* shutdown_timeout_ms, the listen address, /hello's body. */
static void write_config(int timeout_ms, const char *listen, const char *body)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":%d,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[\"%s\"],\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"body\":\"%s\"}]}}}\n",
             timeout_ms, listen, body);
    write_file("asyncd.json", text);
}

/* Runs argv (argv[0] the program) with stderr on D's pipe; before the
 * exec, in the child, prepare(arg) when not NULL. */
static void spawn(char *const argv[], void (*prepare)(void *), void *arg)
{
    int fds[2];

    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    D.len = D.mark = 0;
    D.log[0] = '\0';
    D.port = 0;
    D.pid = fork();
    assert_true(D.pid >= 0);
    if (D.pid == 0) {
        dup2(fds[1], 2);
        unsetenv("NOTIFY_SOCKET");
        if (prepare != NULL)
            prepare(arg);
        execv(argv[0], argv);
        _exit(127);
    }
    live = D.pid;
    close(fds[1]);
    D.err = fds[0];
}

/* asyncd (the binary at exe) serving DIR/asyncd.json; its port. */
static int start_from(const char *exe)
{
    char cfg[600];
    char *argv[] = {(char *)exe, "--config", cfg, NULL};

    path_of(cfg, sizeof(cfg), "asyncd.json");
    spawn(argv, NULL, NULL);
    D.port = number_after(&D, "(port ");
    wait_next(&D, "ready: 1 module(s) running");
    return D.port;
}

/* Waits (bound ms) for pid, a child of ours, to exit, reading the log
 * meanwhile; its exit status, or fails. */
static int wait_exit(pid_t pid, int ms)
{
    int64_t until = now_ms() + ms;
    int status;
    pid_t r;

    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < until)
        pump(&D, 10);
    if (r != pid)
        fail_msg("pid %d did not exit within %d ms; log:\n%s", (int)pid, ms, D.log);
    untrack(pid);
    if (pid == live)
        live = 0;
    if (!WIFEXITED(status))
        fail_msg("pid %d died of signal %d; log:\n%s", (int)pid, WTERMSIG(status), D.log);
    return WEXITSTATUS(status);
}

/* ---- clients: load.h ---- */

/* One GET /hello on a new connection must answer want. */
static void must_answer(int port, const char *want)
{
    char why[256];
    bool close_after;
    int fd = connect_to(port);

    if (fd < 0)
        fail_msg("connect to %d: %s; log:\n%s", port, strerror(errno), D.log);
    if (get_hello(fd, want, &close_after, why, sizeof(why)) != 0)
        fail_msg("GET /hello: %s; log:\n%s", why, D.log);
    close(fd);
}

/* The pid in the old process's "started ... (pid N)" line after the mark. */
static pid_t started_pid(void)
{
    const char *at = wait_next(&D, "upgrading: started ");
    const char *p = strstr(at, "(pid ");

    assert_non_null(p);
    return (pid_t)atoi(p + 5);
}

/* SIGUSR2 to old; the new process once ready, old exited 0. */
static pid_t upgrade(pid_t old)
{
    char want[128];
    pid_t pid;

    assert_int_equal(kill(old, SIGUSR2), 0);
    pid = started_pid();
    track(pid);
    snprintf(want, sizeof(want), "the new asyncd (pid %d) is ready; this one (pid %d) stops",
             (int)pid, (int)old);
    wait_next(&D, want);
    if (wait_exit(old, 25000) != 0)
        fail_msg("the old asyncd (pid %d) did not exit 0; log:\n%s", (int)old, D.log);
    live = pid;
    return pid;
}

/* ---- upgrades under load ---- */

/* Five upgrades while two keep-alive clients and one connecting afresh
 * for each request run: no request fails, each old process exits 0, the
 * new one answers (its predecessor has exited) on the same port. */
static void upgrade_under_load_fails_no_request(void **state)
{
    struct load l[3] = {{0}};
    pthread_t t[3];
    long ok = 0, failed = 0, closes = 0;
    pid_t pid;
    int i, port;

    (void)state;
    write_config(10000, "127.0.0.1:0", "hi");
    port = start_from(ASYNCD);
    pid = D.pid;
    for (i = 0; i < 3; i++) {
        l[i].port = port;
        l[i].keepalive = i < 2;
        assert_int_equal(pthread_create(&t[i], NULL, load_loop, &l[i]), 0);
    }
    for (i = 0; i < 5; i++) {
        pid = upgrade(pid);
        /* the new one listens on the same socket, whose port is the same */
        must_answer(port, "hi");
    }
    for (i = 0; i < 3; i++) {
        atomic_store(&l[i].stop, true);
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
        closes += l[i].closes;
    }
    print_message("      %ld answered, %ld failed, %ld Connection: close across 5 upgrades\n",
                  ok, failed, closes);
    if (failed != 0)
        fail_msg("%ld request(s) failed (first: %s)", failed,
                 l[0].first[0] ? l[0].first : l[1].first[0] ? l[1].first : l[2].first);
    assert_true(ok > 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid, 25000), 0);
}

/* ---- a new binary that cannot serve ---- */

/* DIR/asyncd: a copy of the build's binary (or, with script, a shell
 * script), to start from and then spoil. */
static void install_binary(const char *script)
{
    char cmd[2600], path[600];

    path_of(path, sizeof(path), "asyncd");
    if (script == NULL) {
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", ASYNCD, path, path,
                 path);
        assert_int_equal(system(cmd), 0);
        return;
    }
    write_file("asyncd.tmp", script);
    snprintf(cmd, sizeof(cmd), "chmod 755 '%s.tmp' && mv '%s.tmp' '%s'", path, path, path);
    assert_int_equal(system(cmd), 0);
}

/* SIGUSR2 fails with want in the log; the old process serves on (and
 * still acts on signals: it did not start to stop). */
static void upgrade_fails(const char *want)
{
    assert_int_equal(kill(D.pid, SIGUSR2), 0);
    wait_next(&D, want);
    wait_next(&D, "still serving");
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    wait_next(&D, "SIGUSR1: reopening log files");
    must_answer(D.port, "hi");
}

static void upgrade_a_missing_or_unexecutable_binary_keeps_the_old_one(void **state)
{
    char path[600], want[700];

    (void)state;
    write_config(10000, "127.0.0.1:0", "hi");
    install_binary(NULL);
    path_of(path, sizeof(path), "asyncd");
    start_from(path);
    assert_int_equal(unlink(path), 0);
    snprintf(want, sizeof(want), "SIGUSR2: cannot upgrade: %s: No such file or directory", path);
    upgrade_fails(want);
    install_binary(NULL);
    assert_int_equal(chmod(path, 0644), 0);
    snprintf(want, sizeof(want), "SIGUSR2: cannot upgrade: %s: Permission denied", path);
    upgrade_fails(want);
    /* and once the binary is back, the upgrade goes through */
    assert_int_equal(chmod(path, 0755), 0);
    D.pid = upgrade(D.pid);
    must_answer(D.port, "hi");
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(D.pid, 25000), 0);
}

static void upgrade_a_config_only_the_new_process_rejects_keeps_the_old_one(void **state)
{
    (void)state;
    write_config(10000, "127.0.0.1:0", "hi");
    start_from(ASYNCD);
    write_file("asyncd.json", "{\"modules_dir\": \"modules\", \"shutdown_timeout_ms\": -5}\n");
    upgrade_fails("ended before it was ready: it exited with status 78 (configuration "
                  "rejected)");
    assert_non_null(strstr(D.log, "shutdown_timeout_ms"));
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(D.pid, 25000), 0);
}

static void set_notify(void *arg)
{
    setenv("NOTIFY_SOCKET", arg, 1);
}

/* Every datagram on fd within ms (or until one holds until, when not
 * NULL), appended to out. */
static void read_notify(int fd, char *out, size_t cap, int ms, const char *until)
{
    int64_t end = now_ms() + ms;
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;
    size_t len = strlen(out);

    while (poll(&p, 1, left_ms(end)) > 0 && len + 2 < cap) {
        n = recv(fd, out + len, cap - 2 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        out[len++] = '\n';
        out[len] = '\0';
        if (until != NULL && strstr(out, until) != NULL)
            return;
    }
}

/* The new process's module cannot start (its port is taken): it exits 1,
 * and says nothing to systemd on the way (its STOPPING=1 would stop the
 * service the old one still serves). */
static void upgrade_a_new_process_whose_module_fails_says_nothing_to_systemd(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char notify[600], got[8192] = "", addr[64];
    char cfg[600], *argv[] = {ASYNCD, "--config", cfg, NULL};
    int nfd, taken, port;

    (void)state;
    path_of(notify, sizeof(notify), "notify");
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(nfd >= 0);
    assert_true(strlen(notify) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, notify, strlen(notify) + 1);
    assert_int_equal(bind(nfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    write_config(10000, "127.0.0.1:0", "hi");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    spawn(argv, set_notify, notify);
    D.port = number_after(&D, "(port ");
    read_notify(nfd, got, sizeof(got), 10000, "READY=1");
    assert_non_null(strstr(got, "READY=1"));
    got[0] = '\0';
    /* a port held by the test: the new process's http cannot bind it */
    port = free_port();
    taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

        assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(taken, 1), 0);
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    write_config(10000, addr, "hi");
    upgrade_fails("ended before it was ready: it exited with status 1;");
    read_notify(nfd, got, sizeof(got), 200, NULL); /* whatever came meanwhile */
    if (strstr(got, "STOPPING=1") != NULL)
        fail_msg("the failed new process told systemd:\n%s", got);
    close(taken);
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(D.pid, 25000), 0);
    read_notify(nfd, got, sizeof(got), 200, NULL);
    assert_non_null(strstr(got, "STOPPING=1")); /* the old one, stopping, does */
    close(nfd);
}

static void upgrade_a_binary_that_crashes_or_hangs_at_start_keeps_the_old_one(void **state)
{
    char path[600];

    (void)state;
    write_config(1000, "127.0.0.1:0", "hi");
    install_binary(NULL);
    path_of(path, sizeof(path), "asyncd");
    start_from(path);
    install_binary("#!/bin/sh\nkill -SEGV $$\n");
    upgrade_fails("ended before it was ready: it died of signal 11");
    install_binary("#!/bin/sh\nexec sleep 600\n");
    upgrade_fails("was not ready within 1000 ms");
    /* the listening socket is whole: the old one still accepts */
    must_answer(D.port, "hi");
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(D.pid, 25000), 0);
}

/* A new binary that waits for DIR/go before it becomes the real asyncd:
 * an upgrade the test holds in progress. */
static void install_gated_binary(void)
{
    char script[1500], go[600];

    path_of(go, sizeof(go), "go");
    snprintf(script, sizeof(script),
             "#!/bin/sh\n"
             "i=0\n"
             "while [ ! -e '%s' ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n"
             "exec '%s' \"$@\"\n", go, ASYNCD);
    install_binary(script);
}

/* An asyncd serving "hi" from its own copy of the binary, sent SIGUSR2
 * with the gated binary installed: the new process (its pid) is held back
 * until the test writes "go"; the old one's pid in *old. */
static pid_t upgrade_held_back(pid_t *old)
{
    char path[600];
    pid_t pid;

    write_config(20000, "127.0.0.1:0", "hi");
    install_binary(NULL);
    path_of(path, sizeof(path), "asyncd");
    start_from(path);
    *old = D.pid;
    install_gated_binary();
    assert_int_equal(kill(*old, SIGUSR2), 0);
    pid = started_pid();
    track(pid);
    return pid;
}

static void upgrade_sigusr2_during_an_upgrade_is_ignored(void **state)
{
    char want[128];
    pid_t old, pid;

    (void)state;
    pid = upgrade_held_back(&old);
    assert_int_equal(kill(old, SIGUSR2), 0);
    snprintf(want, sizeof(want), "SIGUSR2: an upgrade is under way (new pid %d): ignored",
             (int)pid);
    wait_next(&D, want);
    must_answer(D.port, "hi");
    write_file("go", "");
    snprintf(want, sizeof(want), "the new asyncd (pid %d) is ready", (int)pid);
    wait_next(&D, want);
    assert_int_equal(wait_exit(old, 25000), 0);
    live = pid;
    must_answer(D.port, "hi");
    {
        const char *at = D.log;
        int n = 0;

        while ((at = strstr(at, "upgrading: started")) != NULL && ++n)
            at++;
        assert_int_equal(n, 1);
    }
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid, 25000), 0);
}

/* SIGTERM while the new process starts: the old one stops as always (exit
 * 0) but leaves the sockets whole; the new one, once ready, serves. */
static void upgrade_sigterm_during_an_upgrade_stops_the_old_one_only(void **state)
{
    pid_t old, pid;

    (void)state;
    pid = upgrade_held_back(&old);
    assert_int_equal(kill(old, SIGTERM), 0);
    wait_next(&D, "stopping during an upgrade: the new asyncd");
    assert_int_equal(wait_exit(old, 25000), 0);
    live = pid;
    write_file("go", "");
    wait_next(&D, "ready: 1 module(s) running");
    wait_next(&D, "upgrade: the previous asyncd is gone");
    must_answer(D.port, "hi");
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid, 25000), 0);
}

/* ---- sockets at start-up ---- */


static bool find_in_path(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096], *save = NULL, *d;

    snprintf(buf, sizeof(buf), "%s:/usr/bin:/bin", path != NULL ? path : "");
    for (d = strtok_r(buf, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", d, name);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

/* systemd-socket-activate binds two ports and, at the first connection,
 * execs asyncd with both; the config names the first as "localhost:P"
 * (another spelling: matched by address, not by string): /hello is
 * served through the inherited socket, and the second, which no module
 * asks for, is logged and closed. */
static void activation_serves_through_the_inherited_socket(void **state)
{
    char tool[600], cfg[600], l1[64], l2[64], listen[64], want[128];
    int port = free_port(), other = free_port(), fd;
    char *argv[] = {tool, "-l", l1, "-l", l2, ASYNCD, "--config", cfg, NULL};

    (void)state;
    while (other == port) /* two free ports, not one twice */
        other = free_port();
    if (!find_in_path("systemd-socket-activate", tool, sizeof(tool)))
        SKIP("no systemd-socket-activate (Debian's systemd package)");
    snprintf(l1, sizeof(l1), "127.0.0.1:%d", port);
    snprintf(l2, sizeof(l2), "127.0.0.1:%d", other);
    snprintf(listen, sizeof(listen), "localhost:%d", port);
    write_config(10000, listen, "hi");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    spawn(argv, NULL, NULL);
    snprintf(want, sizeof(want), "Listening on 127.0.0.1:%d", other);
    wait_next(&D, want);
    must_answer(port, "hi"); /* the first connect starts asyncd */
    snprintf(want, sizeof(want), "listening on 127.0.0.1:%d", port);
    wait_log(&D, want);
    wait_log(&D, "listener localhost:");
    snprintf(want, sizeof(want), "): no module listens there");
    wait_log(&D, want);
    fd = connect_to(other);
    if (fd >= 0)
        fail_msg("127.0.0.1:%d still accepts; log:\n%s", other, D.log);
    /* a stop leaves systemd's socket whole: not shut down, only closed */
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(D.pid, 25000), 0);
}

/* Descriptors at 3.. for a process that asyncd then becomes. */
struct handed {
    int fds[4];
    const char *names;
};

static void hand(void *arg)
{
    struct handed *h = arg;
    char pid[32];
    int i;

    for (i = 0; i < 4; i++) /* in order: h->fds are above 6 */
        if (dup2(h->fds[i], 3 + i) != 3 + i)
            _exit(126);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "4", 1);
    setenv("LISTEN_FDNAMES", h->names, 1);
}

/* Above 6, so that hand() moves them into 3..6 without a clash. */
static int high(int fd)
{
    int h;

    assert_true(fd >= 0);
    h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    assert_true(h >= 10);
    close(fd);
    return h;
}

static void activation_descriptors_that_are_not_listening_sockets_are_not_used(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    struct handed h = {.names = "afile:idle:udp:web"};
    char cfg[600], addr[64], want[128];
    char *argv[] = {ASYNCD, "--config", cfg, NULL};
    int i, port;

    (void)state;
    write_file("plain", "not a socket\n");
    path_of(cfg, sizeof(cfg), "plain");
    h.fds[0] = high(open(cfg, O_RDONLY));
    h.fds[1] = high(socket(AF_INET, SOCK_STREAM, 0));
    h.fds[2] = high(socket(AF_INET, SOCK_DGRAM, 0));
    h.fds[3] = high(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(bind(h.fds[3], (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(h.fds[3], 16), 0);
    assert_int_equal(getsockname(h.fds[3], (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    write_config(10000, addr, "hi");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    spawn(argv, hand, &h);
    for (i = 0; i < 4; i++)
        close(h.fds[i]);
    wait_log(&D, "inherited descriptor 3 (afile): not a socket; closed, not used");
    wait_log(&D, "inherited descriptor 4 (idle): not listening; closed, not used");
    wait_log(&D, "inherited descriptor 5 (udp): not a stream socket; closed, not used");
    snprintf(want, sizeof(want), "inherited socket 6 (web) listening on 127.0.0.1:%d", port);
    wait_log(&D, want);
    wait_log(&D, "ready: 1 module(s) running");
    /* the only listener on that port is the handed one: asyncd serves
     * through it (a bind of its own would have failed: it is taken) */
    must_answer(port, "hi");
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(wait_exit(D.pid, 25000), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(upgrade_under_load_fails_no_request),
        T(upgrade_a_missing_or_unexecutable_binary_keeps_the_old_one),
        T(upgrade_a_config_only_the_new_process_rejects_keeps_the_old_one),
        T(upgrade_a_new_process_whose_module_fails_says_nothing_to_systemd),
        T(upgrade_a_binary_that_crashes_or_hangs_at_start_keeps_the_old_one),
        T(upgrade_sigusr2_during_an_upgrade_is_ignored),
        T(upgrade_sigterm_during_an_upgrade_stops_the_old_one_only),
        T(activation_serves_through_the_inherited_socket),
        T(activation_descriptors_that_are_not_listening_sockets_are_not_used),
    };

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
