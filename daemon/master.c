/* daemon/master.c — the master of "processes": N (see master.h).
 *
 * Each worker process has a slot, numbered from 1, and a fiber that
 * supervises it: start the process, serve its link until the link
 * closes (the process ended), reap it, say how it ended, wait out the
 * back-off, start the next.  The daemon's fiber hears the slots and the
 * signals on one channel (ints: EV_*, or a signal number), as a lone
 * asyncd hears its modules and signals.
 *
 * Between fork and exec the child of this multi-threaded process makes
 * only async-signal-safe calls: its argv and environment are built
 * before the fork. */
#include "master.h"

#include "check.h"
#include "listeners.h"
#include "log.h"
#include "logsink.h"
#include "modules.h"
#include "notify.h"
#include "signals.h"
#include "upgrade.h"
#include "watcher.h"
#include "worker.h"

#include <async_io.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EV_SLOT 0               /* a slot's process started, became ready, or ended */
#define EV_BROKEN (-1)          /* the signals cannot be read */
#define EV_UPGRADE (-2)         /* the new master of an upgrade is ready, or failed */
#define STABLE_MS 10000         /* a process that lived this long is replaced at once */
#define FIRST_DELAY_MS 100      /* else the back-off starts here, */
#define MAX_DELAY_MS 10000      /* doubles, and stops growing here */
#define KILL_MARGIN_MS 2000     /* past the workers' own drain bound: SIGKILL */
#define NAG_MS 10000            /* at start-up, name the processes not ready this often */
#define UPGRADE_MIN_WAIT_MS 1000
#define REAP_POLL_MS 20         /* without a pidfd: how often an ending worker is looked at */

extern char **environ;

struct slot {
    unsigned number;            /* 1.. */
    async_task *task;           /* its supervising fiber */
    pid_t pid;                  /* the process, 0 when none runs */
    int pidfd, link;            /* its pidfd and our end of its link, -1 when none */
    int64_t started_ms;
    int64_t delay_ms;           /* the back-off before the next start */
    unsigned early_deaths;      /* in a row, each within STABLE_MS of its start */
    bool ready;                 /* said READY=1 since it started, or since the last SIGHUP */
    bool was_ready;             /* this process said READY=1 once */
    async_channel *wake;        /* ends its back-off early (a stop, a retirement): a slot's
                                   fiber is never cancelled, so nothing else it parks on fails */
    bool retired;               /* beyond "processes": not started again */
    bool recalled;              /* was retiring, wanted again: its exit is no failure */
    bool done;                  /* its fiber has returned, or returns without parking */
    bool failed_start;          /* exited non-zero before the start-up was over */
    unsigned config_gen;        /* the configuration it fetched last ('C') */
};

enum wait { WAIT_NONE, WAIT_START, WAIT_RELOAD };

static struct {
    struct asyncd_master *m;
    struct slot slots[ASYNCD_MAX_PROCESSES];
    unsigned used;              /* slots[0..used) have been started once */
    async_channel *events;
    struct asyncd_signal_pump pump;
    enum wait wait;
    int64_t wait_began, nag_at;
    unsigned config_gen;        /* counts the configurations accepted (reloads) */
    bool reload_pending;        /* SIGHUP during the start-up */
    bool stopping, upgraded;
    int64_t kill_at;            /* stopping: what still runs is killed then */
    char **argv, **env;         /* for the workers; env has room for the number */
    char *number_at;            /* where in env the number goes */
    sigset_t keep_blocked;      /* the signals a worker reads: blocked across its exec */
    int max_fd;                 /* what the child closes up to when close_range cannot */
} ms;

/* To the daemon's fiber (a send never parks). */
static void tell(int ev)
{
    async_channel_send(ms.events, &ev);
}

/* ---- starting a worker ---- */

/* The descriptor limit, for a child that cannot ask (sysconf is not
 * async-signal-safe). */
static int open_max(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1 << 20)
        return 1 << 16;
    return (int)rl.rlim_cur;
}

/* argv: the master's own argv[0], then --config FILE; env: ours without
 * what is systemd's or the master's alone, plus the link and the number. */
static int prepare(void)
{
    size_t count = 0, i, k = 0;

    for (i = 0; environ[i] != NULL; i++)
        count++;
    ms.argv = calloc(4, sizeof(*ms.argv));
    ms.env = calloc(count + 4, sizeof(*ms.env));
    if (ms.argv == NULL || ms.env == NULL)
        return -1;
    ms.argv[0] = "asyncd";
    ms.argv[1] = "--config";
    ms.argv[2] = (char *)ms.m->file;
    for (i = 0; environ[i] != NULL; i++)
        if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0 &&
            strncmp(environ[i], "LISTEN_", 7) != 0 && strncmp(environ[i], "WATCHDOG_", 9) != 0 &&
            strncmp(environ[i], "ASYNCD_", 7) != 0)
            ms.env[k++] = environ[i];
    ms.env[k++] = "ASYNCD_MASTER_FD=3";
    if ((ms.env[k] = malloc(48)) == NULL)
        return -1;
    snprintf(ms.env[k++], 48, "ASYNCD_MASTER_PID=%d", (int)getpid());
    if ((ms.env[k] = malloc(32)) == NULL)
        return -1;
    strcpy(ms.env[k], "ASYNCD_PROCESS=");
    ms.number_at = ms.env[k] + strlen("ASYNCD_PROCESS=");
    asyncd_signals_set(&ms.keep_blocked);
    ms.max_fd = open_max();
    return 0;
}

/* The child, between fork and exec: async-signal-safe calls only. */
static void child(int link, pid_t master)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    int fd, i;

    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master)
        _exit(1); /* the master is gone already */
    /* above 3 first: dup2 onto itself would keep close-on-exec */
    if ((fd = fcntl(link, F_DUPFD, 4)) < 0 || dup2(fd, 3) != 3)
        _exit(126);
    if (close_range(4, ~0U, 0) != 0)
        for (i = 4; i < ms.max_fd; i++)
            close(i);
    /* the signals the worker reads stay blocked until its signalfd takes
     * them (a SIGHUP fanned out while it loads would kill it); the rest
     * as a fresh process has them */
    sigprocmask(SIG_SETMASK, &ms.keep_blocked, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    execve("/proc/self/exe", ms.argv, ms.env);
    _exit(127);
}

static int start(struct slot *s)
{
    int pair[2];
    pid_t master = getpid();

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        return -1;
    snprintf(ms.number_at, 16, "%u", s->number);
    s->pid = fork();
    if (s->pid == 0)
        child(pair[1], master);
    close(pair[1]);
    if (s->pid < 0) {
        s->pid = 0;
        close(pair[0]);
        return -1;
    }
    s->link = pair[0];
    fcntl(s->link, F_SETFL, O_NONBLOCK);
    s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
    if (s->pidfd < 0) /* Linux < 5.3, or no descriptor left: reap polls */
        asyncd_log(ASYNC_LOG_WARNING, "worker process %u: pidfd_open: %s; its end is polled for",
                   s->number, strerror(errno));
    s->started_ms = async_now_ms();
    s->ready = s->was_ready = false;
    asyncd_log(ASYNC_LOG_INFO, "started worker process %u (pid %d)", s->number, (int)s->pid);
    return 0;
}

/* ---- its link ---- */

static void answer(struct slot *s, int err, int fd, const char *owner)
{
    char buf[512], ctl[CMSG_SPACE(sizeof(int))] = {0};
    size_t len = 1 + sizeof(err);
    struct iovec iov = {buf, 0};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;

    buf[0] = 'R';
    memcpy(buf + 1, &err, sizeof(err));
    if (owner != NULL && owner[0] != '\0') {
        snprintf(buf + len, sizeof(buf) - len, "%s", owner);
        len += strlen(buf + len);
    }
    iov.iov_len = len;
    if (fd >= 0) {
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof(ctl);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
    }
    if (sendmsg(s->link, &mh, MSG_NOSIGNAL) < 0) /* it is gone: its end comes next */
        asyncd_log(ASYNC_LOG_INFO, "worker process %u: %s", s->number, strerror(errno));
}

/* 'L' address \0 module \0 nth */
static void lend(struct slot *s, const char *msg, size_t len)
{
    const char *address = msg, *module, *nth;
    char owner[128] = "";
    int fd, err;

    if ((module = memchr(address, '\0', len)) == NULL ||
        (nth = memchr(module + 1, '\0', len - (size_t)(module + 1 - msg))) == NULL) {
        answer(s, EPROTO, -1, NULL);
        return;
    }
    module++;
    nth++;
    fd = asyncd_listeners_lend(s->number, address, module, (unsigned)strtoul(nth, NULL, 10),
                               owner, sizeof(owner));
    err = fd >= 0 ? 0 : errno;
    if (fd < 0 && err != EADDRINUSE)
        asyncd_log(ASYNC_LOG_ERROR, "worker process %u: cannot listen on %s for module %s: %s",
                   s->number, address, module, strerror(err));
    answer(s, err, fd, owner);
}

/* 'N': what the worker would tell systemd.  Only its readiness counts:
 * the master speaks for every worker. */
static void notified(struct slot *s, const char *msg, size_t len)
{
    const char *p = msg, *end = msg + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

        if (n == 7 && memcmp(p, "READY=1", 7) == 0) {
            if (!s->was_ready && ms.wait == WAIT_NONE)
                asyncd_log(ASYNC_LOG_NOTICE, "worker process %u (pid %d) is ready", s->number,
                           (int)s->pid);
            s->was_ready = true;
            /* ready with what the master runs now: one that fetched the
             * configuration before a reload accepted a new one has the
             * SIGHUP still to act on */
            s->ready = s->config_gen == ms.config_gen;
            tell(EV_SLOT);
        }
        p += n + 1;
    }
}

/* 'H': what the worker holds now.  Outside a start-up (whose inherited
 * sockets wait for their first claim) what no worker holds any more is
 * closed at once: a dropped address refuses connects. */
static void held(struct slot *s, const char *keys, size_t len)
{
    asyncd_listeners_slot_holds(s->number, keys, len);
    if (ms.wait == WAIT_NONE)
        asyncd_listeners_sweep();
}

/* 'C': the configuration checked last, in a memfd of its own (a fresh
 * one each time: no offset shared with another reader). */
static void send_config(struct slot *s)
{
    const char *text = ms.m->config.text;
    size_t len = text != NULL ? strlen(text) : 0, at = 0;
    int fd = memfd_create("asyncd.json", MFD_CLOEXEC);
    ssize_t n;

    while (fd >= 0 && at < len && (n = write(fd, text + at, len - at)) > 0)
        at += (size_t)n;
    if (fd < 0 || at < len || lseek(fd, 0, SEEK_SET) != 0) {
        int err = errno != 0 ? errno : EIO;

        asyncd_log(ASYNC_LOG_ERROR, "worker process %u: cannot hand it the configuration: %s",
                   s->number, strerror(err));
        answer(s, err, -1, NULL);
    } else {
        s->config_gen = ms.config_gen;
        answer(s, 0, fd, NULL);
    }
    if (fd >= 0)
        close(fd);
}

/* Serves the link until it closes: the process ended (or closed it). */
static void serve_link(struct slot *s)
{
    char *buf = malloc(ASYNCD_LINK_MAX + 1);
    ssize_t n;

    while (buf != NULL) {
        n = recv(s->link, buf, ASYNCD_LINK_MAX, 0);
        if (n > 0) {
            buf[n] = '\0';
            if (buf[0] == 'L')
                lend(s, buf + 1, (size_t)n - 1);
            else if (buf[0] == 'N')
                notified(s, buf + 1, (size_t)n - 1);
            else if (buf[0] == 'H')
                held(s, buf + 1, (size_t)n - 1);
            else if (buf[0] == 'C')
                send_config(s);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            break;
        if (errno == EAGAIN && async_fd_wait(s->link, ASYNC_READABLE) != 0)
            break;
    }
    free(buf);
}

/* ---- its end ---- */

/* The wait before the next start: none after a first early death (or any
 * death after STABLE_MS of life), then FIRST_DELAY_MS, doubling with each
 * early death in a row, up to MAX_DELAY_MS. */
static void back_off(struct slot *s, int64_t lived)
{
    s->early_deaths = lived < STABLE_MS ? s->early_deaths + 1 : 0;
    if (s->early_deaths <= 1)
        s->delay_ms = 0;
    else if (s->early_deaths - 2 >= 16 || FIRST_DELAY_MS << (s->early_deaths - 2) > MAX_DELAY_MS)
        s->delay_ms = MAX_DELAY_MS;
    else
        s->delay_ms = FIRST_DELAY_MS << (s->early_deaths - 2);
}

/* Waits for the process to end (it closed the link: it is ending), reaps
 * it and says how it ended. */
static void reap(struct slot *s)
{
    int64_t lived = async_now_ms() - s->started_ms;
    int status = 0;
    pid_t r;

    close(s->link);
    s->link = -1;
    for (;;) { /* it closed the link: it is ending, or ended */
        r = waitpid(s->pid, &status, WNOHANG);
        if (r != 0)
            break;
        if (s->pidfd < 0 || async_fd_wait(s->pidfd, ASYNC_READABLE) != 0)
            async_sleep_ms(REAP_POLL_MS); /* never waitpid(0): one thread serves all */
    }
    if (s->pidfd >= 0)
        close(s->pidfd);
    s->pidfd = -1;
    s->ready = false;
    if (r < 0) {
        asyncd_log(ASYNC_LOG_ERROR, "worker process %u (pid %d): waitpid: %s", s->number,
                   (int)s->pid, strerror(errno));
    } else if (s->recalled && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        asyncd_log(ASYNC_LOG_INFO, "worker process %u (pid %d) stopped; it was retiring, and "
                   "is wanted again", s->number, (int)s->pid);
    } else if (WIFSIGNALED(status)) {
        char name[32];

        asyncd_log(ms.stopping || s->retired ? ASYNC_LOG_WARNING : ASYNC_LOG_ERROR,
                   "worker process %u (pid %d) died of %s (%s) after %lld ms",
                   s->number, (int)s->pid, asyncd_signal_name(WTERMSIG(status), name, sizeof(name)),
                   strsignal(WTERMSIG(status)), (long long)lived);
    } else if (WIFEXITED(status) && (WEXITSTATUS(status) != 0 || (!ms.stopping && !s->retired))) {
        asyncd_log(ASYNC_LOG_ERROR, "worker process %u (pid %d) exited with status %d after "
                   "%lld ms", s->number, (int)s->pid, WEXITSTATUS(status), (long long)lived);
        if (WEXITSTATUS(status) != 0 && !s->was_ready && ms.wait == WAIT_START)
            s->failed_start = true;
    } else {
        asyncd_log(ASYNC_LOG_INFO, "worker process %u (pid %d) stopped", s->number, (int)s->pid);
    }
    s->pid = 0;
    if (s->recalled)
        s->delay_ms = 0;
    else
        back_off(s, lived);
    s->recalled = false;
}

/* Waits out s's back-off, or until woken (drop_waiting): a token left
 * by a wake that came after an earlier wait ended is dropped first. */
static void back_off_wait(struct slot *s)
{
    int64_t old;
    int token;

    while (async_channel_try_receive(s->wake, &token) == 0)
        ;
    if (ms.stopping || s->retired)
        return;
    old = async_deadline(async_now_ms() + s->delay_ms);
    async_channel_receive(s->wake, &token); /* ETIMEDOUT: the back-off is over */
    async_deadline(old);
}

static void *supervise(void *arg)
{
    struct slot *s = arg;

    for (;;) {
        if (start(s) != 0) {
            asyncd_log(ASYNC_LOG_ERROR, "cannot start worker process %u: %s", s->number,
                       strerror(errno));
            back_off(s, 0);
        } else {
            tell(EV_SLOT);
            serve_link(s);
            reap(s);
        }
        if (ms.stopping || s->retired || s->failed_start)
            break;
        asyncd_log(ASYNC_LOG_NOTICE, "starting worker process %u again %s%lld ms", s->number,
                   s->delay_ms > 0 ? "in " : "now: ", (long long)s->delay_ms);
        tell(EV_SLOT);
        if (s->delay_ms > 0)
            back_off_wait(s);
        if (ms.stopping || s->retired)
            break;
    }
    if (s->retired || ms.stopping)
        asyncd_listeners_slot_holds(s->number, NULL, 0);
    s->done = true; /* nothing parks from here on */
    tell(EV_SLOT);
    return NULL;
}

static int launch(struct slot *s)
{
    if (s->wake == NULL && (s->wake = async_channel_new(sizeof(int))) == NULL) {
        s->done = true;
        return -1;
    }
    s->pidfd = s->link = -1;
    s->done = s->retired = s->recalled = s->failed_start = false;
    s->delay_ms = 0;
    s->early_deaths = 0;
    if ((s->task = async_spawn(supervise, s)) == NULL) {
        s->done = true;
        return -1;
    }
    return 0;
}

/* ---- the daemon's fiber ---- */

static unsigned wanted(void)
{
    return ms.m->config.processes;
}

static void fan_out(int sig)
{
    unsigned i;

    for (i = 0; i < ms.used; i++)
        if (ms.slots[i].pid > 0)
            kill(ms.slots[i].pid, sig);
}

/* Wakes a slot's fiber that waits out a back-off (it starts nothing
 * more: the caller is stopping or retiring it). */
static void drop_waiting(struct slot *s)
{
    static const int token = 1;

    if (!s->done)
        async_channel_send(s->wake, &token); /* never parks */
}

static void begin_stop(int code)
{
    unsigned i;

    if (ms.stopping)
        return;
    ms.stopping = true;
    ms.m->exit_code = code;
    if (!ms.upgraded && !asyncd_upgrade_pending())
        asyncd_notify("STOPPING=1");
    asyncd_log(ASYNC_LOG_NOTICE, "stopping: every worker process drains and stops");
    fan_out(SIGTERM);
    for (i = 0; i < ms.used; i++)
        drop_waiting(&ms.slots[i]);
    ms.kill_at = async_now_ms() + ms.m->config.drain_grace_ms +
                 ms.m->config.shutdown_timeout_ms + KILL_MARGIN_MS;
}

/* Every slot that counts is ready: the start-up or the reload is over. */
static void wait_over(void)
{
    unsigned n = wanted();

    if (ms.wait == WAIT_START) {
        asyncd_log(ASYNC_LOG_NOTICE, "ready: %u worker process(es)", n);
        asyncd_notify("READY=1\nMAINPID=%d\nSTATUS=%u worker process(es) running", (int)getpid(),
                      n);
        asyncd_upgrade_tell_ready();
    } else {
        asyncd_log(ASYNC_LOG_NOTICE, "reloaded: %u worker process(es)", n);
        asyncd_notify("READY=1\nSTATUS=%u worker process(es) running", n);
    }
    ms.wait = WAIT_NONE;
    asyncd_listeners_sweep(); /* every worker said what it holds before READY=1 */
}

static void reload(void);

/* After any event: a failed start, or the end of a wait. */
static void look(void)
{
    unsigned i, ready = 0, n = wanted();
    char late[256] = "";

    for (i = 0; i < ms.used; i++)
        if (ms.slots[i].failed_start && !ms.stopping) {
            asyncd_log(ASYNC_LOG_ERROR, "stopping, to exit 1: worker process %u failed to "
                       "start (its log says why)", ms.slots[i].number);
            begin_stop(1);
            return;
        }
    if (ms.wait == WAIT_NONE || ms.stopping)
        return;
    for (i = 0; i < n; i++) {
        if (ms.slots[i].ready)
            ready++;
        else if (strlen(late) + 8 < sizeof(late))
            snprintf(late + strlen(late), sizeof(late) - strlen(late), " %u", i + 1);
    }
    if (ready < n) {
        if (async_now_ms() >= ms.nag_at) {
            if (ms.nag_at > ms.wait_began)
                asyncd_log(ASYNC_LOG_WARNING, "%lld ms after the %s, worker process(es)%s not "
                           "ready", (long long)(async_now_ms() - ms.wait_began),
                           ms.wait == WAIT_START ? "start-up" : "reload", late);
            ms.nag_at = async_now_ms() + NAG_MS;
        }
        if (!(ms.wait == WAIT_RELOAD &&
              async_now_ms() >= ms.wait_began + ms.m->config.shutdown_timeout_ms))
            return; /* a reload is reported done at its bound anyway, as a lone asyncd's */
    }
    wait_over();
    if (ms.reload_pending) {
        ms.reload_pending = false;
        reload();
    }
}

/* A new "processes": more slots started, the extra ones drained. */
static void resize(unsigned from, unsigned to)
{
    unsigned i;

    for (i = to; i < from && i < ms.used; i++) {
        struct slot *s = &ms.slots[i];

        if (s->done)
            continue;
        s->retired = true;
        drop_waiting(s);
        if (s->pid > 0)
            kill(s->pid, SIGTERM);
    }
    for (i = from; i < to; i++) {
        struct slot *s = &ms.slots[i];

        if (i < ms.used && !s->done) { /* still retiring from a shrink: keep it */
            if (s->retired && s->pid > 0) { /* told to stop: its successor reloads */
                s->recalled = true;
                s->ready = false;
            }
            s->retired = false;
            continue;
        }
        if (i < ms.used) /* done: it parks no more, so this returns */
            async_join(s->task, NULL);
        s->number = i + 1;
        if (launch(s) != 0)
            asyncd_log(ASYNC_LOG_ERROR, "cannot supervise worker process %u: %s", i + 1,
                       strerror(errno));
        if (i + 1 > ms.used)
            ms.used = i + 1;
    }
}



/* SIGHUP: checked here once, then handed to every worker. */
static void reload(void)
{
    struct asyncd_config next = {0};
    struct asyncd_problems p = {0};
    unsigned i, before = wanted();

    asyncd_notify_reloading();
    asyncd_log(ASYNC_LOG_NOTICE, "reloading %s", ms.m->file);
    if (asyncd_config_load_off_stack(ms.m->file, &next, &p) != 0 ||
        asyncd_modules_check_folder(&next, ms.m->modules, &p) != 0) {
        asyncd_reload_rejected(&p, "the worker processes serve on with the running "
                                   "configuration");
        asyncd_problems_free(&p);
        asyncd_config_free(&next);
        return;
    }
    asyncd_problems_free(&p);
    asyncd_log_set_level(next.log_level);
    asyncd_config_free(&ms.m->config);
    ms.m->config = next;
    ms.config_gen++;
    for (i = 0; i < ms.used; i++)
        if (ms.slots[i].pid > 0 && !ms.slots[i].retired) {
            ms.slots[i].ready = false;
            kill(ms.slots[i].pid, SIGHUP);
        }
    if (wanted() != before)
        asyncd_log(ASYNC_LOG_NOTICE, "processes: %u -> %u", before, wanted());
    resize(before, wanted());
    ms.wait = WAIT_RELOAD;
    ms.wait_began = async_now_ms();
    ms.nag_at = ms.wait_began + NAG_MS;
}

static void upgrade(void)
{
    int64_t bound = ms.m->config.shutdown_timeout_ms;

    if (ms.wait != WAIT_NONE && !asyncd_upgrade_running()) {
        asyncd_log(ASYNC_LOG_WARNING, "SIGUSR2 during the %s: ignored; send it again once "
                   "asyncd is ready", ms.wait == WAIT_START ? "start-up" : "reload");
        return;
    }
    asyncd_upgrade_start(bound > UPGRADE_MIN_WAIT_MS ? bound : UPGRADE_MIN_WAIT_MS, ms.events,
                         EV_UPGRADE);
}

/* The next event, or ETIMEDOUT at the next thing due. */
static int next_event(int *ev)
{
    int64_t due = -1, old;
    int rc, err;

    if (ms.stopping)
        due = ms.kill_at != INT64_MAX ? ms.kill_at : -1;
    else if (ms.wait != WAIT_NONE)
        due = ms.wait == WAIT_RELOAD && ms.wait_began + ms.m->config.shutdown_timeout_ms < ms.nag_at
                  ? ms.wait_began + ms.m->config.shutdown_timeout_ms : ms.nag_at;
    old = async_deadline(due);
    rc = async_channel_receive(ms.events, ev);
    err = errno;
    async_deadline(old);
    errno = err;
    return rc;
}

static bool all_over(void)
{
    unsigned i;

    for (i = 0; i < ms.used; i++)
        if (!ms.slots[i].done)
            return false;
    return true;
}

/* Something due came: the kill, or a nag. */
static void due(void)
{
    unsigned i;

    if (!ms.stopping) {
        look();
        return;
    }
    if (async_now_ms() >= ms.kill_at) {
        for (i = 0; i < ms.used; i++)
            if (ms.slots[i].pid > 0) {
                asyncd_log(ASYNC_LOG_ERROR, "worker process %u (pid %d) did not stop in time: "
                           "killed", ms.slots[i].number, (int)ms.slots[i].pid);
                kill(ms.slots[i].pid, SIGKILL);
            }
        ms.m->exit_code = 1;
        ms.kill_at = INT64_MAX;
    }
}

static void handle(int ev)
{
    if (ev == EV_SLOT) {
        look();
    } else if (ev == EV_BROKEN) {
        begin_stop(1);
    } else if (ev == EV_UPGRADE) {
        if (asyncd_upgrade_finish()) {
            ms.upgraded = true;
            begin_stop(0);
        }
    } else if (ev == SIGUSR2) {
        if (!ms.stopping)
            upgrade();
    } else if (ev == SIGHUP) {
        if (ms.stopping || asyncd_upgrade_running())
            asyncd_log(ASYNC_LOG_WARNING, "SIGHUP %s: ignored",
                       ms.stopping ? "while stopping" : "during an upgrade");
        else if (ms.wait == WAIT_START)
            ms.reload_pending = true;
        else
            reload();
    } else if (ev == SIGUSR1) {
        asyncd_log(ASYNC_LOG_NOTICE, "SIGUSR1: reopening log files, here and in every worker "
                   "process");
        asyncd_logsink_reopen();
        fan_out(SIGUSR1);
    } else if (ms.stopping) { /* a second stop: the workers cut their grace short */
        fan_out(SIGTERM);
    } else {
        asyncd_log(ASYNC_LOG_NOTICE, "%s: stopping", strsignal(ev));
        begin_stop(0);
    }
}

void *asyncd_master_main(void *arg)
{
    async_task *signals = NULL;
    unsigned i;
    int ev;

    ms.m = arg;
    ms.events = async_channel_new(sizeof(int));
    ms.pump = (struct asyncd_signal_pump){ms.m->sigfd, ms.events, EV_BROKEN};
    if (ms.events == NULL || prepare() != 0 ||
        (signals = async_spawn(asyncd_signals_pump, &ms.pump)) == NULL) {
        asyncd_log(ASYNC_LOG_ERROR, "cannot start: %s", strerror(errno));
        ms.m->exit_code = 1;
        goto out;
    }
    /* systemd's watchdog sees the master's own loop; each worker logs its
     * own blocked threads */
    if (asyncd_watcher_start(async_runtime_self(), ms.m->config.blocked_warn_ms,
                             ms.m->watchdog_ms) != 0)
        asyncd_log(ASYNC_LOG_WARNING, "no watcher thread (%s)", strerror(errno));
    asyncd_log(ASYNC_LOG_NOTICE, "master (pid %d): starting %u worker process(es)",
               (int)getpid(), wanted());
    ms.wait = WAIT_START;
    ms.wait_began = async_now_ms();
    ms.nag_at = ms.wait_began + NAG_MS;
    resize(0, wanted());
    while (!(ms.stopping && all_over())) {
        if (next_event(&ev) != 0) {
            if (errno == ETIMEDOUT) {
                due();
                continue;
            }
            asyncd_log(ASYNC_LOG_ERROR, "waiting for events: %s", strerror(errno));
            begin_stop(1);
            continue;
        }
        handle(ev);
    }
    if (asyncd_upgrade_abandon())
        ms.upgraded = true;
    asyncd_watcher_stop();
    for (i = 0; i < ms.used; i++)
        async_join(ms.slots[i].task, NULL);
    /* Only now: the workers accepted until their modules stopped (a
     * shutdown under them would fail their accepts).  Connects are
     * refused from here on (not when shared with a new master). */
    asyncd_listeners_shutdown();
    for (i = 0; i < ms.used; i++)
        async_channel_free(ms.slots[i].wake);
    async_cancel(signals);
    async_join(signals, NULL);
    asyncd_listeners_close_all();
out:
    async_channel_free(ms.events);
    return NULL;
}
