/* daemon/upgrade.c — SIGUSR2, the binary upgrade (see upgrade.h).
 *
 * Why fork then exec rather than posix_spawn: LISTEN_PID must be the new
 * process's own pid, known only in the child.  Between fork and exec the
 * child of this multi-threaded process may only make async-signal-safe
 * calls: everything it needs (the environment, with room for the pid's
 * digits) is built before the fork, and the child only writes digits,
 * moves descriptors, restores the signal mask and SIGPIPE, and execs.
 *
 * Sharing.  From the fork on, the sockets are the new process's too:
 * asyncd_listeners_shared keeps this one from shutting them down (which
 * would reset the accept queue both serve), even if it is told to stop
 * meanwhile.  A failed upgrade gives them back to this process alone.
 *
 * Threads.  Everything runs on the daemon's fiber but wait_ready, a fiber
 * that writes up.outcome and then sends the event; the channel orders the
 * two, so the daemon's fiber reads outcome after receiving it. */
#include "upgrade.h"

#include "listeners.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define REAP_MS 2000            /* a failed new process must be gone by then */
#define PID_DIGITS 20

extern char **environ;

enum outcome { PENDING, READY, CLOSED, LATE, BROKEN };

static struct {
    char *exe, *cwd;            /* recorded at start-up */
    char **argv;
    pid_t pid;                  /* the new process, while running */
    int rd;                     /* the pipe's read end */
    int64_t bound_ms;
    int max_fd;                 /* what the child closes up to when close_range cannot */
    async_task *waiter;
    async_channel *events;
    int event, err;
    enum outcome outcome;
    bool running;
} up = {.rd = -1};

static int ready_fd = -1;      /* in the new process: the old one's pipe */

/* argv0 as an absolute path, or NULL. */
static char *absolute(const char *argv0)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];

    if (argv0 == NULL || argv0[0] == '\0')
        return NULL;
    if (argv0[0] == '/')
        return strdup(argv0);
    if (strchr(argv0, '/') != NULL) {
        if (getcwd(buf, sizeof(buf)) == NULL ||
            strlen(buf) + 1 + strlen(argv0) >= sizeof(buf))
            return NULL;
        strcat(buf, "/");
        strcat(buf, argv0);
        return strdup(buf);
    }
    while (path != NULL && *path != '\0') { /* run by name: the PATH entry it came from */
        const char *end = strchr(path, ':');
        size_t len = end != NULL ? (size_t)(end - path) : strlen(path);

        if (len > 0 && len + 1 + strlen(argv0) < sizeof(buf) &&
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, argv0) < (int)sizeof(buf)) {
            if (buf[0] == '/' && access(buf, X_OK) == 0)
                return strdup(buf);
        }
        path = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

void asyncd_upgrade_record(int argc, char **argv)
{
    (void)argc;
    up.exe = absolute(argv[0]);
    up.cwd = getcwd(NULL, 0);
    up.argv = argv; /* main's: they live as long as the process */
}

bool asyncd_upgrade_running(void)
{
    return up.running;
}

/* The descriptor limit, for a child that cannot ask (sysconf is not
 * async-signal-safe). */
static int open_max(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1 << 20)
        return 1 << 16;
    return (int)rl.rlim_cur;
}

/* ---- the child, between fork and exec: async-signal-safe calls only ---- */

static void put_pid(char *at, pid_t pid)
{
    char digits[PID_DIGITS];
    int n = 0;

    do {
        digits[n++] = (char)('0' + pid % 10);
        pid /= 10;
    } while (pid > 0 && n < PID_DIGITS);
    while (n > 0)
        *at++ = digits[--n];
    *at = '\0';
}

static void child(const int *fds, int n, int wr, char **env, char *listen_pid,
                  char *watchdog_pid)
{
    int base = 3 + n + 1, i, pw;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;

    put_pid(listen_pid, getpid());
    if (watchdog_pid != NULL)
        put_pid(watchdog_pid, getpid());
    /* first out of the way of 3..3+n, then into place (dup2 clears
     * close-on-exec); everything else the exec must not see is closed */
    pw = fcntl(wr, F_DUPFD, base);
    int moved[n > 0 ? n : 1];
    for (i = 0; i < n; i++)
        if ((moved[i] = fcntl(fds[i], F_DUPFD, base)) < 0)
            _exit(126);
    if (pw < 0)
        _exit(126);
    for (i = 0; i < n; i++)
        if (dup2(moved[i], 3 + i) < 0)
            _exit(126);
    if (dup2(pw, 3 + n) < 0)
        _exit(126);
    if (close_range((unsigned)base, ~0U, 0) != 0) /* before Linux 5.9, or filtered */
        for (i = base; i < up.max_fd; i++)
            close(i);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    if (up.cwd != NULL && chdir(up.cwd) != 0)
        _exit(126);
    execve(up.exe, up.argv, env);
    _exit(127);
}

/* ---- the old process ---- */

/* "NAME=value" (malloc'd), with room for PID_DIGITS more bytes. */
static char *var(const char *name, const char *value)
{
    size_t len = strlen(name) + 1 + strlen(value);
    char *v = malloc(len + PID_DIGITS + 1);

    if (v != NULL)
        snprintf(v, len + 1, "%s=%s", name, value);
    return v;
}

/* Frees env and the strings child_env added to ours: those from index
 * added on. */
static void free_env(char **env, size_t added)
{
    size_t i;

    for (i = added; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

/* The environment for the new process: ours without LISTEN_*,
 * ASYNCD_UPGRADE_FD and WATCHDOG_PID, plus those, set for it (*added:
 * where they start).  *listen_pid and *watchdog_pid (NULL without
 * WATCHDOG_USEC) point at the room for its pid.  NULL: no memory. */
static char **child_env(int n, const char *names, size_t *added, char **listen_pid,
                        char **watchdog_pid)
{
    size_t count = 0, i, k = 0, want;
    char **env, num[16];

    for (i = 0; environ[i] != NULL; i++)
        count++;
    if ((env = calloc(count + 6, sizeof(*env))) == NULL)
        return NULL;
    for (i = 0; environ[i] != NULL; i++)
        if (strncmp(environ[i], "LISTEN_", 7) != 0 &&
            strncmp(environ[i], "ASYNCD_UPGRADE_FD=", 18) != 0 &&
            strncmp(environ[i], "WATCHDOG_PID=", 13) != 0)
            env[k++] = environ[i];
    *added = k;
    want = k + 4 + (getenv("WATCHDOG_USEC") != NULL); /* systemd's watchdog follows MAINPID */
    snprintf(num, sizeof(num), "%d", n);
    env[k++] = var("LISTEN_FDS", num);
    env[k++] = var("LISTEN_FDNAMES", names);
    snprintf(num, sizeof(num), "%d", 3 + n);
    env[k++] = var("ASYNCD_UPGRADE_FD", num);
    env[k++] = var("LISTEN_PID", "");
    *listen_pid = env[k - 1] != NULL ? env[k - 1] + strlen("LISTEN_PID=") : NULL;
    *watchdog_pid = NULL;
    if (want > k) {
        env[k++] = var("WATCHDOG_PID", "");
        *watchdog_pid = env[k - 1] != NULL ? env[k - 1] + strlen("WATCHDOG_PID=") : NULL;
    }
    for (i = *added; i < want; i++)
        if (env[i] == NULL) {
            for (k = i + 1; k < want; k++) /* the ones after the gap */
                free(env[k]);
            env[i] = NULL;
            free_env(env, *added);
            return NULL;
        }
    return env;
}

static void *wait_ready(void *arg)
{
    char byte;
    ssize_t n;

    (void)arg;
    async_deadline(async_now_ms() + up.bound_ms);
    for (;;) {
        n = read(up.rd, &byte, 1);
        if (n == 1) {
            up.outcome = READY;
            break;
        }
        if (n == 0) {
            up.outcome = CLOSED;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && async_fd_wait(up.rd, ASYNC_READABLE) == 0)
            continue;
        up.err = errno;
        up.outcome = errno == ETIMEDOUT ? LATE : BROKEN;
        break;
    }
    async_deadline(-1);
    if (up.outcome != BROKEN || up.err != ECANCELED)
        async_channel_send(up.events, &up.event);
    return NULL;
}

int asyncd_upgrade_start(int64_t bound_ms, async_channel *events, int event)
{
    char *names = NULL, **env = NULL, *listen_pid = NULL, *watchdog_pid = NULL;
    int *fds = NULL, n, p[2] = {-1, -1};
    size_t added = 0;
    struct stat st;

    if (up.running) {
        asyncd_log(ASYNC_LOG_WARNING, "SIGUSR2: an upgrade is under way (new pid %d): ignored",
                   (int)up.pid);
        return -1;
    }
    if (up.exe == NULL) {
        asyncd_log(ASYNC_LOG_ERROR, "SIGUSR2: cannot upgrade: the path asyncd was started "
                   "from is unknown; still serving");
        return -1;
    }
    if (stat(up.exe, &st) != 0 || access(up.exe, X_OK) != 0 || !S_ISREG(st.st_mode)) {
        asyncd_log(ASYNC_LOG_ERROR, "SIGUSR2: cannot upgrade: %s: %s; still serving", up.exe,
                   stat(up.exe, &st) != 0 || access(up.exe, X_OK) != 0 ? strerror(errno)
                                                                       : "not a regular file");
        return -1;
    }
    if ((n = asyncd_listeners_export(&fds, &names)) < 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0 ||
        (env = child_env(n, names, &added, &listen_pid, &watchdog_pid)) == NULL)
        goto fail;
    asyncd_listeners_shared(true); /* before the fork: from then on they are its too */
    up.max_fd = open_max(); /* for the child, which may not ask */
    up.pid = fork();
    if (up.pid == 0)
        child(fds, n, p[1], env, listen_pid, watchdog_pid);
    if (up.pid < 0) {
        asyncd_listeners_shared(false);
        goto fail;
    }
    close(p[1]);
    free_env(env, added);
    free(fds);
    free(names);
    up.rd = p[0];
    up.bound_ms = bound_ms;
    up.events = events;
    up.event = event;
    up.outcome = PENDING;
    up.err = 0;
    up.running = true;
    if ((up.waiter = async_spawn(wait_ready, NULL)) == NULL) {
        /* cannot wait for it: count it failed at once */
        up.outcome = BROKEN;
        up.err = errno;
        async_channel_send(events, &event);
    }
    asyncd_log(ASYNC_LOG_NOTICE, "SIGUSR2: upgrading: started %s (pid %d) with %d listening "
               "socket(s); waiting up to %lld ms for it to be ready", up.exe, (int)up.pid, n,
               (long long)bound_ms);
    return 0;
fail:
    asyncd_log(ASYNC_LOG_ERROR, "SIGUSR2: cannot upgrade: %s; still serving", strerror(errno));
    if (p[0] >= 0) {
        close(p[0]);
        close(p[1]);
    }
    if (env != NULL)
        free_env(env, added);
    free(fds);
    free(names);
    return -1;
}

/* How the failed new process ended, into buf: reaped within REAP_MS or
 * killed. */
static const char *reap(char *buf, size_t len)
{
    int64_t until = async_now_ms() + REAP_MS;
    int status;
    pid_t r;

    while ((r = waitpid(up.pid, &status, WNOHANG)) == 0 && async_now_ms() < until)
        async_sleep_ms(10);
    if (r == 0) {
        kill(up.pid, SIGKILL);
        r = waitpid(up.pid, &status, 0);
        snprintf(buf, len, "killed: it did not exit");
    } else if (r < 0) {
        snprintf(buf, len, "waitpid: %s", strerror(errno));
    } else if (WIFEXITED(status)) {
        snprintf(buf, len, "it exited with status %d%s", WEXITSTATUS(status),
                 WEXITSTATUS(status) == 127 ? " (exec failed)" :
                 WEXITSTATUS(status) == 78 ? " (configuration rejected)" : "");
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "it died of signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(buf, len, "status %#x", status);
    }
    return buf;
}

bool asyncd_upgrade_finish(void)
{
    char how[128];

    if (up.waiter != NULL) {
        async_join(up.waiter, NULL);
        up.waiter = NULL;
    }
    close(up.rd);
    up.rd = -1;
    up.running = false;
    if (up.outcome == READY) {
        asyncd_log(ASYNC_LOG_NOTICE, "upgrade: the new asyncd (pid %d) is ready; this one "
                   "(pid %d) stops accepting, drains and exits", (int)up.pid, (int)getpid());
        return true;
    }
    if (up.outcome == LATE) {
        kill(up.pid, SIGKILL);
        asyncd_log(ASYNC_LOG_ERROR, "upgrade failed: the new asyncd (pid %d) was not ready "
                   "within %lld ms; %s; still serving", (int)up.pid, (long long)up.bound_ms,
                   reap(how, sizeof(how)));
    } else if (up.outcome == CLOSED) {
        asyncd_log(ASYNC_LOG_ERROR, "upgrade failed: the new asyncd (pid %d) ended before it "
                   "was ready: %s; still serving", (int)up.pid, reap(how, sizeof(how)));
    } else {
        kill(up.pid, SIGKILL);
        asyncd_log(ASYNC_LOG_ERROR, "upgrade failed: waiting for the new asyncd (pid %d): %s; "
                   "%s; still serving", (int)up.pid, strerror(up.err), reap(how, sizeof(how)));
    }
    asyncd_listeners_shared(false);
    return false;
}

bool asyncd_upgrade_abandon(void)
{
    if (!up.running)
        return false;
    if (up.waiter != NULL) {
        async_cancel(up.waiter);
        async_join(up.waiter, NULL);
        up.waiter = NULL;
    }
    close(up.rd);
    up.rd = -1;
    up.running = false;
    asyncd_log(ASYNC_LOG_NOTICE, "stopping during an upgrade: the new asyncd (pid %d) goes on "
               "starting by itself; the listening sockets are left to it", (int)up.pid);
    return true;
}

/* ---- the new process ---- */

void asyncd_upgrade_take_fd(void)
{
    const char *v = getenv("ASYNCD_UPGRADE_FD");
    char *end;
    long fd;

    if (v == NULL)
        return;
    fd = strtol(v, &end, 10);
    if (*end == '\0' && fd > 2 && fd < INT_MAX && fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
        ready_fd = (int)fd;
    else
        asyncd_log(ASYNC_LOG_WARNING, "ASYNCD_UPGRADE_FD=%s: not an open descriptor; ignored",
                   v);
    unsetenv("ASYNCD_UPGRADE_FD");
}

void asyncd_upgrade_tell_ready(void)
{
    if (ready_fd < 0)
        return;
    if (write(ready_fd, "1", 1) != 1) /* the old one stopped meanwhile: nothing to tell */
        asyncd_log(ASYNC_LOG_INFO, "upgrade: the previous asyncd is gone (%s)",
                   strerror(errno));
    close(ready_fd);
    ready_fd = -1;
}

bool asyncd_upgrade_pending(void)
{
    return ready_fd >= 0;
}
