/* tests/integration/daemon.h — what the integration tests share: a temp
 * folder, files in it, and a real asyncd process driven through its log.
 *
 * Include after <cmocka.h>, in a test built with ASYNCD defined (the path
 * of the daemon) and _GNU_SOURCE defined before its first include.  Every
 * wait on a running daemon is bounded (run_to_end, for the commands that
 * exit by themselves, relies on ctest's timeout); nothing sleeps to
 * synchronise: a test waits for the line the daemon writes when the thing
 * it waits for has happened.  The functions are static inline only so
 * that a test which does not use one is not warned about it. */
#ifndef ASYNC_TEST_DAEMON_H
#define ASYNC_TEST_DAEMON_H

#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before the first include (pipe2)"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skips.h" /* SKIP(why), skips_exit */

static char dir[256]; /* the test's temp folder: setup makes it, teardown removes it */
static pid_t live;    /* a daemon a failed test left running: teardown kills it */
static unsigned long daemon_nofile; /* non-zero: the next daemon's RLIMIT_NOFILE (soft and hard) */

/* ---- time ---- */

static inline int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int left_ms(int64_t deadline)
{
    int64_t l = deadline - now_ms();

    return l < 0 ? 0 : (int)l;
}

/* ---- the temp folder ---- */

static inline void path_of(char *out, size_t n, const char *name)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        fail_msg("path too long: %s/%s", dir, name);
}

static inline void write_bytes(const char *name, const void *p, size_t len)
{
    char path[512];
    FILE *f;

    path_of(path, sizeof(path), name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static inline void write_file(const char *name, const char *text)
{
    write_bytes(name, text, strlen(text));
}

/* The whole file (NUL-terminated, malloc'd; *len its size), or NULL when
 * it does not exist. */
static inline char *read_bytes(const char *name, size_t *len)
{
    char path[512], *buf;
    struct stat st;
    int fd;

    path_of(path, sizeof(path), name);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    buf[st.st_size] = '\0';
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

/* Makes the test folder from a mkdtemp template ("/tmp/NAME-XXXXXX")
 * with an empty modules/ in it, for test_dir_link_module. */
static inline void test_dir_make(const char *template)
{
    char path[512];

    if ((size_t)snprintf(dir, sizeof(dir), "%s", template) >= sizeof(dir))
        fail_msg("template too long: %s", template);
    assert_non_null(mkdtemp(dir));
    path_of(path, sizeof(path), "modules");
    assert_int_equal(mkdir(path, 0700), 0);
}

/* A folder (mode 0755) in the test folder. */
static inline void test_dir_mkdir(const char *name)
{
    char path[512];

    path_of(path, sizeof(path), name);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* name in the test folder as a symbolic link to target. */
static inline void test_dir_symlink(const char *target, const char *name)
{
    char path[512];

    path_of(path, sizeof(path), name);
    assert_int_equal(symlink(target, path), 0);
}

/* modules/NAME.so in the test folder, linked to the built module so. */
static inline void test_dir_link_module(const char *so, const char *name)
{
    char rel[256];

    snprintf(rel, sizeof(rel), "modules/%s.so", name);
    test_dir_symlink(so, rel);
}

/* A port nobody listens on now (bound on 127.0.0.1, read, closed). */
static inline int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Kills a daemon a failed test left behind and removes the folder. */
static inline void remove_test_dir(void)
{
    char cmd[600];

    if (live > 0) {
        kill(live, SIGKILL);
        waitpid(live, NULL, 0);
        live = 0;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A TCP connection to ip:port (IPv4), or -1 with errno. */
static inline int connect_ip(const char *ip, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* A datagram socket bound at DIR/notify, for a daemon's NOTIFY_SOCKET:
 * its descriptor, the path into path. */
static inline int notify_bind(char *path, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    snprintf(path, len, "%s/notify", dir);
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* ---- a running daemon ---- */

struct daemon {
    pid_t pid;
    int err;            /* its stderr */
    int port;           /* for tests that read one from the log */
    size_t len, mark;   /* wait_next searches from mark */
    char log[1 << 18];
};

/* Starts asyncd --config DIR/cfgname with its stderr on a pipe; with
 * NOTIFY_SOCKET set to notify, or unset when notify is NULL. */
static inline void daemon_start(struct daemon *d, const char *cfgname, const char *notify)
{
    int fds[2];
    char cfg[600];

    path_of(cfg, sizeof(cfg), cfgname);
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    d->len = d->mark = 0;
    d->log[0] = '\0';
    d->port = 0;
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        dup2(fds[1], 2);
        if (daemon_nofile != 0) {
            struct rlimit rl = {daemon_nofile, daemon_nofile};

            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                _exit(126);
        }
        if (notify != NULL)
            setenv("NOTIFY_SOCKET", notify, 1);
        else
            unsetenv("NOTIFY_SOCKET");
        execl(ASYNCD, ASYNCD, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    live = d->pid;
    close(fds[1]);
    d->err = fds[0];
}

/* Reads what the daemon wrote, waiting up to ms; false at EOF.  A log
 * that outgrows the buffer keeps its newer half. */
static inline bool pump(struct daemon *d, int ms)
{
    struct pollfd p = {d->err, POLLIN, 0};
    ssize_t n;

    if (d->err < 0 || poll(&p, 1, ms) <= 0)
        return d->err >= 0;
    if (d->len + 1 >= sizeof(d->log)) {
        memmove(d->log, d->log + sizeof(d->log) / 2, d->len - sizeof(d->log) / 2);
        d->len -= sizeof(d->log) / 2;
        d->mark = d->mark > sizeof(d->log) / 2 ? d->mark - sizeof(d->log) / 2 : 0;
    }
    n = read(d->err, d->log + d->len, sizeof(d->log) - 1 - d->len);
    if (n <= 0)
        return false;
    d->len += (size_t)n;
    d->log[d->len] = '\0';
    return true;
}

/* Waits (10 s bound) for text in the log at or after from; returns where. */
static inline const char *wait_from(struct daemon *d, size_t from, const char *text)
{
    int64_t until = now_ms() + 10000;
    const char *at;

    while ((at = strstr(d->log + from, text)) == NULL && now_ms() < until)
        if (!pump(d, left_ms(until)))
            break;
    if (at == NULL)
        fail_msg("'%s' never appeared in asyncd's log:\n%s", text, d->log);
    return at;
}

/* Anywhere in the log. */
static inline const char *wait_log(struct daemon *d, const char *text)
{
    return wait_from(d, 0, text);
}

/* After the previous wait_next match: for lines that repeat. */
static inline const char *wait_next(struct daemon *d, const char *text)
{
    const char *at = wait_from(d, d->mark, text);

    d->mark = (size_t)(at - d->log) + strlen(text);
    return at;
}

/* The number that follows prefix in the next matching line. */
static inline int number_after(struct daemon *d, const char *prefix)
{
    return atoi(wait_next(d, prefix) + strlen(prefix));
}

/* Reads the log to its end (the daemon exited or closed stderr), bounded. */
static inline void read_log_to_eof(struct daemon *d, int ms)
{
    int64_t until = now_ms() + ms;

    while (now_ms() < until && pump(d, left_ms(until)))
        ;
}

/* The last part of the log, where a failure shows (cmocka cuts long
 * messages). */
static inline const char *log_tail(const struct daemon *d)
{
    return d->len > 12000 ? d->log + d->len - 12000 : d->log;
}

/* Waits for the daemon to exit (bound ms); its exit status.  The whole
 * log is in d->log afterwards. */
static inline int reap(struct daemon *d, int ms)
{
    int status;
    pid_t r;

    read_log_to_eof(d, ms);
    close(d->err);
    d->err = -1;
    if ((r = waitpid(d->pid, &status, WNOHANG)) == 0) {
        /* stderr closed but still there: give it the rest of a short bound */
        int64_t until = now_ms() + 2000;

        while ((r = waitpid(d->pid, &status, WNOHANG)) == 0) {
            if (now_ms() > until) {
                fprintf(stderr, "asyncd's log, its end:\n%s\n", log_tail(d)); /* whole */
                fail_msg("asyncd did not exit (its log's end is above)");
            }
            poll(NULL, 0, 10);
        }
    }
    assert_int_equal(r, d->pid);
    live = 0;
    if (!WIFEXITED(status))
        fail_msg("asyncd died of signal %d; log:\n%s", WTERMSIG(status), d->log);
    return WEXITSTATUS(status);
}

/* Sends sig and waits (25 s bound) for the daemon to exit; its status. */
static inline int daemon_stop(struct daemon *d, int sig)
{
    assert_int_equal(kill(d->pid, sig), 0);
    return reap(d, 25000);
}

/* daemon_start, then its port from the log: the number after port_line
 * (the http module's "http: listening on 127.0.0.1:0 (port "), in
 * d->port. */
static inline void daemon_start_port(struct daemon *d, const char *cfgname, const char *port_line)
{
    daemon_start(d, cfgname, NULL);
    d->port = number_after(d, port_line);
    assert_true(d->port > 0);
}

/* SIGTERM, and the daemon must exit 0 (else the test fails with its log). */
static inline void daemon_stop_clean(struct daemon *d)
{
    int rc = daemon_stop(d, SIGTERM);

    if (rc != 0)
        fail_msg("asyncd exited %d; log:\n%s", rc, d->log);
}

/* Runs cmd through sh to its end (ctest's timeout bounds it): what it
 * printed on stdout (cut to outlen - 1, NUL-terminated) and its exit code,
 * -1 if it did not exit. */
static inline int shell_output(const char *cmd, char *out, size_t outlen)
{
    size_t got = 0, n;
    FILE *p = popen(cmd, "r");
    int status;

    assert_non_null(p);
    while (got < outlen - 1 && (n = fread(out + got, 1, outlen - 1 - got, p)) > 0)
        got += n;
    out[got] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs asyncd with arg1 arg2 to its end; output (stdout+stderr) and code. */
static inline int run_to_end(const char *arg1, const char *arg2, char *out, size_t outlen)
{
    int fds[2], status;
    pid_t pid;
    size_t got = 0;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        execl(ASYNCD, ASYNCD, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (got < outlen - 1 && (n = read(fds[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

#endif
