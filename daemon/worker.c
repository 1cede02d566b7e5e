/* daemon/worker.c — the worker's side of the link to its master (see
 * worker.h).
 *
 * Threads.  link_fd and number are set once by main before any thread.
 * Asks ('C', 'L') may come from fibers on any runtime worker: the link's
 * lock (a mutex of the runtime, so a waiting fiber parks, not its thread)
 * is held from the send to the answer's receipt, so each asker reads its
 * own answer.  'N' is a single send, safe from any thread (a SEQPACKET
 * message is sent whole or not at all).  config_fd is taken by whoever
 * fetched it, an atomic exchange. */
#include "worker.h"

#include "listeners.h"
#include "log.h"

#include <async_io.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEND_WAIT_MS 1000       /* a full link: what a message waits for room */
#define ANSWER_WAIT_MS 10000    /* before the runtime: what an answer is waited for */

static int link_fd = -1;
static unsigned number;
static async_mutex *asking;
static atomic_int config_fd = -1;

/* A positive int from the environment, or 0. */
static long env_number(const char *name)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (v == NULL)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    return errno == 0 && *end == '\0' && end != v && n > 0 && n < INT_MAX ? n : -1;
}

bool asyncd_worker_take(void)
{
    long fd = env_number("ASYNCD_MASTER_FD"), n = env_number("ASYNCD_PROCESS");
    long master = env_number("ASYNCD_MASTER_PID");
    int type = 0;

    if (fd == 0 && n == 0)
        return false;
    unsetenv("ASYNCD_MASTER_FD");
    unsetenv("ASYNCD_PROCESS");
    unsetenv("ASYNCD_MASTER_PID");
    /* again: an exec of a binary with file capabilities (setcap, to bind
     * :80 without root) clears it; and the master may be gone already */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || master <= 0 || getppid() != (pid_t)master) {
        asyncd_log(ASYNC_LOG_ERROR, "the master (pid %ld) is gone: not starting", master);
        exit(1);
    }
    if (fd <= 2 || n <= 0 ||
        getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){sizeof(type)}) != 0 ||
        type != SOCK_SEQPACKET || fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl((int)fd, F_SETFL, O_NONBLOCK) != 0 || (asking = async_mutex_new()) == NULL) {
        asyncd_log(ASYNC_LOG_ERROR, "ASYNCD_MASTER_FD / ASYNCD_PROCESS: not a worker's link "
                   "to its master; asyncd sets them for its worker processes only");
        exit(1);
    }
    link_fd = (int)fd;
    number = (unsigned)n;
    asyncd_log_set_process(number);
    return true;
}

unsigned asyncd_worker_number(void)
{
    return number;
}

int asyncd_worker_lock(void)
{
    int shield, rc;

    if (asking == NULL || async_worker_id() < 0)
        return 0;
    shield = async_shield(1); /* a cancelled module fiber still gets its answer */
    rc = async_mutex_lock(asking);
    async_shield(shield);
    return rc;
}

void asyncd_worker_unlock(void)
{
    if (asking != NULL && async_worker_id() >= 0)
        async_mutex_unlock(asking);
}

/* Waits until the link is ready for events, bounded: 0 or -1 errno.  A
 * fiber parks; any other thread polls. */
static int link_wait(int events, int ms)
{
    struct pollfd p = {link_fd, (short)events, 0};
    int64_t old;
    int rc, err;

    if (async_worker_id() < 0) {
        rc = poll(&p, 1, ms);
        if (rc == 0)
            errno = ETIMEDOUT;
        return rc > 0 ? 0 : -1;
    }
    old = async_deadline(async_now_ms() + ms);
    rc = async_fd_wait(link_fd, events == POLLIN ? ASYNC_READABLE : ASYNC_WRITABLE);
    err = errno;
    async_deadline(old);
    errno = err;
    return rc;
}

/* One message out, waiting a bounded time for room: 0 or -1 errno. */
static int put(const char *msg, size_t len)
{
    int tries;

    for (tries = 0; tries < 2; tries++) {
        if (send(link_fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len)
            return 0;
        if (errno != EAGAIN || link_wait(POLLOUT, SEND_WAIT_MS) != 0)
            return -1;
    }
    return -1;
}

/* The answer to a 'C' or an 'L': the descriptor, or -1 errno. */
static int answer(char *owner, size_t len)
{
    char buf[512], ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof(buf) - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof(ctl)};
    struct cmsghdr *cm;
    ssize_t n;
    int err, fd = -1;

    for (;;) {
        n = recvmsg(link_fd, &mh, MSG_CMSG_CLOEXEC);
        if (n > 0)
            break;
        if (n == 0) {
            errno = EPIPE; /* the master is gone */
            return -1;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (errno == EAGAIN && link_wait(POLLIN, ANSWER_WAIT_MS) != 0)
            return -1;
    }
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
    if ((size_t)n < 1 + sizeof(int) || buf[0] != 'R') {
        if (fd >= 0)
            close(fd);
        errno = EPROTO;
        return -1;
    }
    memcpy(&err, buf + 1, sizeof(err));
    buf[n] = '\0';
    if (err == 0 && fd >= 0)
        return fd;
    if (fd >= 0)
        close(fd);
    if (owner != NULL)
        snprintf(owner, len, "%s", buf + 1 + sizeof(int));
    /* no descriptor with a yes: it did not fit (MSG_CTRUNC: our limit) */
    errno = err != 0 ? err : (mh.msg_flags & MSG_CTRUNC) ? EMFILE : EPROTO;
    return -1;
}

/* Drops an answer left on the link by an ask that gave up waiting (the
 * master answered after ANSWER_WAIT_MS): it is no one's now. */
static void drop_stale(void)
{
    char buf[512], ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr mh;
    struct cmsghdr *cm;
    int fd;

    for (;;) {
        mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                             .msg_controllen = sizeof(ctl)};
        if (recvmsg(link_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
            return;
        for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
                close(fd);
            }
    }
}

/* One ask and its answer, shielded: a cancel in between would leave the
 * answer to the next asker (and one given up on for the time is dropped
 * by the next ask).  Under the link's lock. */
static int ask(const char *msg, size_t len, char *owner, size_t olen)
{
    int shield = async_shield(1), fd, err;

    drop_stale();
    fd = put(msg, len) == 0 ? answer(owner, olen) : -1;
    err = errno;
    if (shield >= 0)
        async_shield(shield);
    errno = err;
    return fd;
}

int asyncd_worker_listen(const char *address, const char *module, unsigned nth, char *owner,
                         size_t len)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "L%s%c%s%c%u", address, '\0', module, '\0', nth);

    if (link_fd < 0 || n < 0 || (size_t)n >= sizeof(msg)) {
        errno = link_fd < 0 ? ENOTCONN : ENAMETOOLONG;
        return -1;
    }
    return ask(msg, (size_t)n, owner, len);
}

int asyncd_worker_fetch_config(void)
{
    int fd, old;

    if (link_fd < 0) {
        errno = ENOTCONN;
        return -1;
    }
    if (asyncd_worker_lock() != 0)
        return -1;
    fd = ask("C", 1, NULL, 0);
    asyncd_worker_unlock();
    if (fd < 0)
        return -1;
    if ((old = atomic_exchange(&config_fd, fd)) >= 0)
        close(old);
    return 0;
}

int asyncd_worker_take_config(void)
{
    int fd = atomic_exchange(&config_fd, -1);

    if (fd < 0)
        errno = ENOENT;
    return fd;
}

void asyncd_worker_notify(const char *text, size_t len)
{
    char msg[1100];

    if (link_fd < 0 || len + 1 > sizeof(msg))
        return;
    msg[0] = 'N';
    memcpy(msg + 1, text, len);
    if (put(msg, len + 1) != 0)
        asyncd_log(ASYNC_LOG_WARNING, "cannot tell the master \"%.*s\": %s", (int)len, text,
                   strerror(errno));
}

void asyncd_worker_holds(void)
{
    char *msg;
    ssize_t n;

    if (link_fd < 0 || (msg = malloc(ASYNCD_LINK_MAX)) == NULL)
        return;
    msg[0] = 'H';
    if (asyncd_worker_lock() != 0) { /* no ask between the table read and the send */
        free(msg);
        return;
    }
    n = asyncd_listeners_keys(msg + 1, ASYNCD_LINK_MAX - 1);
    if (n < 0)
        asyncd_log(ASYNC_LOG_WARNING, "this process holds more listening sockets than one "
                   "message names: the master keeps every one it lent");
    else if (put(msg, (size_t)n + 1) != 0)
        asyncd_log(ASYNC_LOG_WARNING, "cannot tell the master which sockets this process "
                   "holds (%s): it keeps the ones it lent", strerror(errno));
    asyncd_worker_unlock();
    free(msg);
}
