/* "processes": N, worker processes under a master (daemon/master.h), as an
 * operator and clients see them: every worker accepts from the master's
 * one socket and says which process answered; systemd hears the master
 * alone; a worker killed by a module's fault is logged with its signal
 * and replaced at once while the others serve (only the requests on the
 * dead process's connections fail); one that keeps dying is started
 * again with a growing back-off; SIGHUP, SIGUSR1 and SIGTERM fan out; a
 * bad reload is rejected once, by the master; "processes" changes on
 * reload; a worker that cannot start stops asyncd with status 1; a
 * killed master takes its workers with it; SIGUSR2 upgrades master to
 * master under load without a failed request. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define IO_MS 5000

#include "daemon.h"
#include "load.h"

static struct daemon D;

#include "http_client.h" /* after D, which it reads */
static int shutdown_ms = 5000;   /* shutdown_timeout_ms of the next config written */
static const char *second_listen = ""; /* "" or ",\"127.0.0.1:PORT\"": another address */
static int notify_fd = -1;
static char notify_path[sizeof(dir) + sizeof("/notify")];

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/asyncd-processes-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_link_module(CRASH_SO, "crash_handler");
    test_dir_link_module(CRASHER_SO, "crasher");
    notify_fd = notify_bind(notify_path, sizeof(notify_path));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    shutdown_ms = 5000;
    second_listen = "";
    if (live > 0) /* the master: its workers follow it (PR_SET_PDEATHSIG) */
        kill(live, SIGKILL);
    close(notify_fd);
    notify_fd = -1;
    remove_test_dir();
    return 0;
}


/* processes, the crasher module's config ("" for none), /hello's body. */
static void write_config(int processes, const char *crasher, const char *body)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"processes\":%d,\"runtime\":{\"workers\":1},\n"
             " \"shutdown_timeout_ms\":%d,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"%s],\"status_path\":\"/status\",\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"body\":\"%s\"},\n"
             "             {\"prefix\":\"/crash/\",\"handler\":\"crash\"}]},\n"
             "  \"crasher\":{\"enabled\":%s%s}}}\n",
             processes, shutdown_ms, second_listen, body, crasher[0] != '\0' ? "true," : "false",
             crasher);
    write_file("asyncd.json", text);
}

/* Starts asyncd, waits for the master's "ready"; the port. */
static int start(int processes)
{
    char line[64];

    daemon_start(&D, "asyncd.json", notify_path);
    D.port = number_after(&D, "(port ");
    snprintf(line, sizeof(line), "asyncd: ready: %d worker process(es)", processes);
    wait_log(&D, line);
    return D.port;
}

/* The next notify message with text, within 10 s. */
static void notify_wait(char *buf, size_t len, const char *text)
{
    int64_t until = now_ms() + 10000;

    while (now_ms() < until) {
        struct pollfd p = {notify_fd, POLLIN, 0};
        ssize_t n;

        if (poll(&p, 1, left_ms(until)) <= 0)
            break;
        n = recv(notify_fd, buf, len - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strstr(buf, text) != NULL)
            return;
    }
    fail_msg("no '%s' on the notify socket; log:\n%s", text, D.log);
}

/* GET path on a new connection: the body of a 200 into out, or fails. */
static void get(int port, const char *path, char *out, size_t len)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "curl -sS --max-time 5 -f http://127.0.0.1:%d%s", port, path);
    if (shell_output(cmd, out, len) != 0)
        fail_msg("%s failed (%s); log:\n%s", cmd, out, D.log);
}

/* Which process numbers answered /status, over up to tries connections,
 * as a bit set (bit n for number n); stops once want is seen. */
static unsigned who_answers(int port, unsigned want, int tries)
{
    char body[2048];
    unsigned seen = 0;
    int i;

    for (i = 0; i < tries && (seen & want) != want; i++) {
        const char *at;

        get(port, "/status", body, sizeof(body));
        at = strstr(body, "\"process\":{\"number\":");
        assert_non_null(at);
        seen |= 1u << atoi(at + strlen("\"process\":{\"number\":"));
    }
    return seen;
}

/* The "(pid N)" of the next log line with text. */
static pid_t pid_after(const char *text)
{
    const char *at = wait_next(&D, text), *line = at;

    while (line > D.log && line[-1] != '\n')
        line--;
    at = strstr(line, "(pid ");
    assert_non_null(at);
    return (pid_t)atoi(at + 5);
}

static bool gone(pid_t pid)
{
    return kill(pid, 0) != 0 && errno == ESRCH;
}

/* Waits (bound ms) until pid no longer exists. */
static bool wait_gone(pid_t pid, int ms)
{
    int64_t until = now_ms() + ms;

    while (!gone(pid) && now_ms() < until)
        pump(&D, 10);
    return gone(pid);
}

/* The time of day of a log line ("2026-12-07 22:09:19.219 [info] ..."), in
 * ms. */
static int64_t log_ms(const char *line)
{
    int h, m, sec, ms;

    if (sscanf(line + 11, "%d:%d:%d.%d", &h, &m, &sec, &ms) != 4)
        fail_msg("no time in the log line '%.60s'", line);
    return ((int64_t)(h * 60 + m) * 60 + sec) * 1000 + ms;
}

/* How many times text occurs in the log. */
static int occurrences(const char *text)
{
    const char *at = D.log;
    int n = 0;

    while ((at = strstr(at, text)) != NULL) {
        n++;
        at += strlen(text);
    }
    return n;
}


/* Waits (bound 10 s) until a connect to ip:port is refused. */
static bool refused_at(const char *ip, int port)
{
    int64_t until = now_ms() + 10000;

    while (now_ms() < until) {
        int fd = connect_ip(ip, port);

        if (fd < 0 && errno == ECONNREFUSED)
            return true;
        if (fd >= 0)
            close(fd);
        pump(&D, 20);
    }
    return false;
}

/* ---- tests ---- */

/* Both workers accept on the one port and say who they are; systemd
 * hears READY=1 and MAINPID from the master only; SIGTERM stops every
 * process and the master exits 0. */
static void workers_share_the_port_and_the_master_speaks_for_them(void **state)
{
    char buf[1024], want[32];
    pid_t w1, w2;
    int port;

    (void)state;
    write_config(2, "", "hi");
    daemon_start(&D, "asyncd.json", notify_path);
    w1 = pid_after("started worker process ");
    w2 = pid_after("started worker process ");
    port = D.port = number_after(&D, "(port ");
    wait_log(&D, "asyncd: ready: 2 worker process(es)");
    notify_wait(buf, sizeof(buf), "READY=1");
    snprintf(want, sizeof(want), "MAINPID=%d\n", (int)D.pid);
    if (strstr(buf, want) == NULL) /* a worker's would name its own pid */
        fail_msg("READY=1 does not name the master (%d): %s", (int)D.pid, buf);
    assert_int_equal(who_answers(port, 6, 400), 6); /* numbers 1 and 2 */
    daemon_stop_clean(&D);
    assert_true(wait_gone(w1, 5000));
    assert_true(wait_gone(w2, 5000));
    assert_non_null(strstr(D.log, "asyncd: stopped"));
}

/* A request that faults kills the process that took it: the master
 * names the signal and starts another at once; load on keep-alive
 * connections goes on, and fails at most once per connection (the one
 * request it had on the dead process). */
static void a_faulting_module_costs_one_process_not_the_daemon(void **state)
{
    struct load l[4] = {{0}};
    pthread_t t[4];
    char buf[256];
    long ok_before = 0, ok = 0, failed = 0;
    pid_t dead;
    int i, port, fd;

    (void)state;
    write_config(2, "", "hi");
    port = start(2);
    for (i = 0; i < 4; i++) {
        l[i].port = port;
        l[i].keepalive = true;
        assert_int_equal(pthread_create(&t[i], NULL, load_loop, &l[i]), 0);
    }
    /* one request that faults, on a connection of its own */
    fd = connect_to(port);
    assert_true(fd >= 0);
    snprintf(buf, sizeof(buf), "GET /crash/segv HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(send(fd, buf, strlen(buf), MSG_NOSIGNAL), (ssize_t)strlen(buf));
    dead = pid_after("died of SIGSEGV");
    wait_next(&D, "starting worker process ");
    /* replaced at once: no back-off after a first crash */
    if (strstr(D.log + D.mark, "again now: 0 ms") == NULL)
        wait_next(&D, "again now: 0 ms");
    wait_next(&D, "is ready");
    close(fd);
    assert_true(gone(dead));
    for (i = 0; i < 4; i++)
        ok_before += l[i].ok;
    /* both processes serve again: each answers /status */
    assert_int_equal(who_answers(port, 6, 400), 6);
    for (i = 0; i < 4; i++) {
        atomic_store(&l[i].stop, true);
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
    }
    print_message("      %ld answered, %ld failed across one worker's crash\n", ok, failed);
    if (failed > 4)
        fail_msg("%ld requests failed, more than the 4 connections (first: %s); log:\n%s",
                 failed, l[0].first, D.log);
    assert_true(ok > ok_before); /* the load went on after the crash */
    /* the worker's own fatal line names the module whose code faulted */
    if (strstr(D.log, "fatal SIGSEGV") == NULL || strstr(D.log, "in module crash_handler") == NULL)
        fail_msg("no fatal line naming crash_handler; log:\n%s", D.log);
    daemon_stop_clean(&D);
}

/* A module that faults as soon as it runs makes every new process die:
 * the master starts them again after 100, 200, 400 ms...; when the cause
 * goes, they start and stay. */
static void a_process_that_keeps_dying_is_started_again_with_a_back_off(void **state)
{
    char trigger[600], crasher[700];

    (void)state;
    path_of(trigger, sizeof(trigger), "boom");
    snprintf(crasher, sizeof(crasher), "\"how\":\"abort\",\"trigger\":\"%s\"", trigger);
    write_config(2, crasher, "hi");
    start(2);
    write_file("boom", "");
    wait_next(&D, "died of SIGABRT");
    wait_next(&D, "again in 100 ms");
    wait_next(&D, "again in 200 ms");
    {
        /* and it does wait: the next start of that process comes 400 ms on */
        const char *at = wait_next(&D, "again in 400 ms"), *line = at;
        char next[64];
        int64_t from, to;

        while (line > D.log && line[-1] != '\n')
            line--;
        from = log_ms(line);
        snprintf(next, sizeof(next), "started worker process %d (pid",
                 atoi(strstr(line, "worker process ") + strlen("worker process ")));
        at = wait_next(&D, next);
        for (line = at; line > D.log && line[-1] != '\n'; line--)
            ;
        to = log_ms(line);
        if (to < from) /* across midnight */
            to += 24 * 3600 * 1000;
        if (to - from < 395)
            fail_msg("started again %lld ms after 'again in 400 ms'; log:\n%s",
                     (long long)(to - from), D.log);
    }
    assert_int_equal(unlink(trigger), 0);
    wait_next(&D, "is ready");
    daemon_stop_clean(&D);
}

/* SIGHUP: the master checks the file once; a good one reaches every
 * worker and READY=1 follows once all have reloaded, and an address it
 * drops is closed; a bad one is rejected by the master and no worker
 * reloads.  "processes" grows and shrinks on reload, also in a burst of
 * SIGHUPs.  SIGUSR1 reaches every worker. */
static void signals_fan_out_and_processes_change_on_reload(void **state)
{
    char body[256], buf[1024];
    struct client *idle;
    struct resp r;
    pid_t w2, third;
    int port, i, dropped;

    (void)state;
    second_listen = ",\"127.0.0.2:0\"";
    write_config(2, "", "one");
    daemon_start(&D, "asyncd.json", notify_path);
    pid_after("started worker process 1");
    w2 = pid_after("started worker process 2");
    dropped = atoi(wait_log(&D, "listening on 127.0.0.2:0 (port ") +
                   strlen("listening on 127.0.0.2:0 (port "));
    port = atoi(wait_log(&D, "listening on 127.0.0.1:0 (port ") +
                strlen("listening on 127.0.0.1:0 (port "));
    wait_log(&D, "asyncd: ready: 2 worker process(es)");
    D.mark = D.len;
    notify_wait(buf, sizeof(buf), "READY=1");
    /* a keep-alive client on the address the reload drops keeps the old
     * generation of one worker draining past the reload */
    idle = client_wrap(connect_ip("127.0.0.2", dropped));
    assert_true(client_send(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(idle, false, &r);
    resp_free(&r);
    second_listen = "";
    write_config(2, "", "two");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_next(&D, "asyncd: reloaded: 2 worker process(es)");
    notify_wait(buf, sizeof(buf), "READY=1");
    for (i = 0; i < 20; i++) {
        get(port, "/hello", body, sizeof(body));
        assert_string_equal(body, "two");
    }
    /* its next request is answered with Connection: close, the old
     * generation ends, its worker says what it holds, and the master
     * closes the address no worker holds any more */
    assert_true(client_send(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(idle, false, &r);
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    client_close(idle);
    if (!refused_at("127.0.0.2", dropped))
        fail_msg("port %d, dropped on reload, still takes connects; log:\n%s", dropped, D.log);
    /* a typo: rejected once, by the master */
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"processes\":2,\"modules\":{\"http\":"
                              "{\"listen\":[\"127.0.0.1:0\"],\"roots\":\"x\"}}}\n");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_next(&D, "asyncd: reload rejected");
    get(port, "/hello", body, sizeof(body));
    assert_string_equal(body, "two");
    /* three, then one */
    write_config(3, "", "three");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    third = pid_after("started worker process 3");
    wait_next(&D, "asyncd: reloaded: 3 worker process(es)");
    assert_int_equal(who_answers(port, 14, 600), 14); /* 1, 2 and 3 */
    write_config(1, "", "one again");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_next(&D, "asyncd: reloaded: 1 worker process(es)");
    assert_true(wait_gone(third, 10000));
    assert_true(wait_gone(w2, 10000));
    for (i = 0; i < 20; i++) {
        get(port, "/hello", body, sizeof(body));
        assert_string_equal(body, "one again");
    }
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    wait_next(&D, "asyncd/1: SIGUSR1: reopening log files");
    /* worker 1 reloaded for the three good files, not for the bad one
     * (its lines before the SIGUSR1 one are all in, from one writer) */
    assert_int_equal(occurrences("asyncd/1: reloading"), 3);
    /* a burst: 2, 1, 2 processes; whatever the master makes of it, it ends
     * with two workers serving the last file */
    write_config(2, "", "burst");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    write_config(1, "", "burst");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    write_config(2, "", "final");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    {
        int64_t until = now_ms() + 20000;
        int same = 0;

        while (same < 20 && now_ms() < until) {
            get(port, "/hello", body, sizeof(body));
            same = strcmp(body, "final") == 0 ? same + 1 : 0;
            pump(&D, 5);
        }
        if (same < 20)
            fail_msg("the burst of reloads did not end with 'final' served; log:\n%s", D.log);
    }
    assert_int_equal(who_answers(port, 6, 600), 6);
    daemon_stop_clean(&D);
}

/* A worker killed while a reload is under way: its replacement reads the
 * new file, and the reload is reported once it is ready; both serve the
 * new config. */
static void a_worker_that_dies_during_a_reload_comes_back_with_the_new_config(void **state)
{
    char body[256];
    pid_t w1;
    int port, i;

    (void)state;
    shutdown_ms = 60000; /* the reload must be reported by the replacement's READY, not its bound */
    write_config(2, "", "old");
    daemon_start(&D, "asyncd.json", NULL);
    w1 = pid_after("started worker process 1");
    port = D.port = number_after(&D, "(port ");
    wait_log(&D, "asyncd: ready: 2 worker process(es)");
    write_config(2, "", "new");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_next(&D, "asyncd: reloading");
    assert_int_equal(kill(w1, SIGKILL), 0);
    wait_next(&D, "died of SIGKILL");
    w1 = pid_after("started worker process 1"); /* its replacement */
    wait_next(&D, "asyncd: reloaded: 2 worker process(es)");
    assert_int_equal(who_answers(port, 6, 400), 6);
    for (i = 0; i < 20; i++) {
        get(port, "/hello", body, sizeof(body));
        assert_string_equal(body, "new");
    }
    /* signals fanned out while a worker starts: it reads them once it can */
    assert_int_equal(kill(w1, SIGKILL), 0);
    wait_next(&D, "died of SIGKILL");
    wait_next(&D, "started worker process 1");
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_next(&D, "asyncd: reloaded: 2 worker process(es)");
    assert_null(strstr(D.log, "died of SIGUSR1"));
    assert_null(strstr(D.log, "died of SIGHUP"));
    daemon_stop_clean(&D);
}

/* systemd's socket, full (nobody reads it; a stock kernel queues 10
 * datagrams): the master's messages are dropped after a short wait,
 * never held forever, so reloads and the stop go on. */
static void a_notify_socket_nobody_reads_holds_nothing(void **state)
{
    char body[64];
    int i;

    (void)state;
    write_config(2, "", "r0");
    start(2); /* with notify_path, which this test never reads */
    for (i = 1; i <= 8; i++) { /* 17 messages */
        snprintf(body, sizeof(body), "r%d", i);
        write_config(2, "", body);
        assert_int_equal(kill(D.pid, SIGHUP), 0);
        wait_next(&D, "asyncd: reloaded: 2 worker process(es)");
    }
    daemon_stop_clean(&D);
}

/* A worker that exits at start-up (its module cannot listen: the port is
 * taken) stops asyncd with status 1 and the reason in the log. */
static void a_worker_that_cannot_start_stops_asyncd(void **state)
{
    int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char text[1024];

    (void)state;
    assert_true(taken >= 0);
    setsockopt(taken, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(taken, 8), 0);
    assert_int_equal(getsockname(taken, (struct sockaddr *)&sa, &(socklen_t){sizeof(sa)}), 0);
    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"processes\":2,\"modules\":{\"http\":"
             "{\"listen\":[\"127.0.0.1:%d\"]},\"crasher\":{\"enabled\":false}}}\n",
             ntohs(sa.sin_port));
    write_file("asyncd.json", text);
    daemon_start(&D, "asyncd.json", NULL);
    rc = reap(&D, 25000);
    close(taken);
    if (rc != 1 || strstr(D.log, "failed to start") == NULL)
        fail_msg("exit %d; log:\n%s", rc, D.log);
}

/* SIGKILL to the master: its workers stop by themselves. */
static void workers_do_not_outlive_their_master(void **state)
{
    pid_t w1, w2;
    int status;

    (void)state;
    write_config(2, "", "hi");
    daemon_start(&D, "asyncd.json", NULL);
    w1 = pid_after("started worker process ");
    w2 = pid_after("started worker process ");
    wait_log(&D, "asyncd: ready: 2 worker process(es)");
    assert_int_equal(kill(D.pid, SIGKILL), 0);
    assert_int_equal(waitpid(D.pid, &status, 0), D.pid);
    live = 0;
    if (!wait_gone(w1, 10000) || !wait_gone(w2, 10000))
        fail_msg("a worker outlived its master; log:\n%s", D.log);
}

/* SIGUSR2 to the master under keep-alive and connect-per-request load: a
 * new master with workers of its own takes the sockets; the old master
 * exits 0 once they are ready; no request fails. */
static void the_master_upgrades_under_load_without_a_failed_request(void **state)
{
    struct load l[3] = {{0}};
    pthread_t t[3];
    long ok = 0, failed = 0;
    pid_t old, next;
    int i, port, status;

    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    write_config(2, "", "hi");
    port = start(2);
    old = D.pid;
    for (i = 0; i < 3; i++) {
        l[i].port = port;
        l[i].keepalive = i < 2;
        assert_int_equal(pthread_create(&t[i], NULL, load_loop, &l[i]), 0);
    }
    assert_int_equal(kill(old, SIGUSR2), 0);
    next = pid_after("upgrading: started ");
    wait_next(&D, "is ready; this one");
    assert_int_equal(waitpid(old, &status, 0), old);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    live = next;
    D.pid = next;
    assert_int_equal(who_answers(port, 6, 400), 6);
    for (i = 0; i < 3; i++) {
        atomic_store(&l[i].stop, true);
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
    }
    print_message("      %ld answered, %ld failed across a master's upgrade\n", ok, failed);
    if (failed != 0)
        fail_msg("%ld request(s) failed (first: %s); log:\n%s", failed,
                 l[0].failed ? l[0].first : l[1].failed ? l[1].first : l[2].first, D.log);
    assert_int_equal(kill(next, SIGTERM), 0);
    assert_int_equal(waitpid(next, &status, 0), next);
    live = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(workers_share_the_port_and_the_master_speaks_for_them),
        T(a_faulting_module_costs_one_process_not_the_daemon),
        T(a_process_that_keeps_dying_is_started_again_with_a_back_off),
        T(signals_fan_out_and_processes_change_on_reload),
        T(a_worker_that_dies_during_a_reload_comes_back_with_the_new_config),
        T(a_notify_socket_nobody_reads_holds_nothing),
        T(a_worker_that_cannot_start_stops_asyncd),
        T(workers_do_not_outlive_their_master),
        T(the_master_upgrades_under_load_without_a_failed_request),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
