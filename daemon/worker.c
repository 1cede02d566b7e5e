/* daemon/worker.c — the worker's side of the link to its master (see
 * worker.h).
 *
 * Threads.  link_fd and number are set once by main before any thread.
 * Asks ('L') may come from module fibers on any runtime worker: asking
 * (a mutex of the runtime, so a waiting fiber parks, not its thread) is
 * held from the send to the answer's receipt, so each asker reads its own
 * answer.  'H' and 'N' are single non-blocking sends, safe from any
 * thread (a SEQPACKET message is sent whole or not at all). */
#include "worker.h"

#include "listeners.h"
#include "log.h"

#include <async_io.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int link_fd = -1;
static unsigned number;
static async_mutex *asking;

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
    int type = 0;

    if (fd == 0 && n == 0)
        return false;
    unsetenv("ASYNCD_MASTER_FD");
    unsetenv("ASYNCD_PROCESS");
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

/* One message out, without waiting: 0 or -1 errno. */
static int put(const char *msg, size_t len)
{
    return send(link_fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

/* The answer to an 'L': the descriptor, or -1 errno. */
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
        if (errno == EAGAIN && async_fd_wait(link_fd, ASYNC_READABLE) != 0)
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
    snprintf(owner, len, "%s", buf + 1 + sizeof(int));
    errno = err != 0 ? err : EPROTO;
    return -1;
}

int asyncd_worker_listen(const char *address, const char *module, unsigned nth, char *owner,
                         size_t len)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "L%s%c%s%c%u", address, '\0', module, '\0', nth);
    int fd, err;

    if (link_fd < 0 || n < 0 || (size_t)n >= sizeof(msg)) {
        errno = link_fd < 0 ? ENOTCONN : ENAMETOOLONG;
        return -1;
    }
    if (async_mutex_lock(asking) != 0)
        return -1;
    fd = put(msg, (size_t)n) == 0 ? answer(owner, len) : -1;
    err = errno;
    async_mutex_unlock(asking);
    errno = err;
    return fd;
}

void asyncd_worker_notify(const char *text, size_t len)
{
    char msg[1100];

    if (link_fd < 0 || len + 1 > sizeof(msg))
        return;
    msg[0] = 'N';
    memcpy(msg + 1, text, len);
    (void)put(msg, len + 1); /* a master too busy to read loses a status line */
}

void asyncd_worker_holds(void)
{
    char *msg;
    size_t n;

    if (link_fd < 0 || (msg = malloc(ASYNCD_LINK_MAX)) == NULL)
        return;
    msg[0] = 'H';
    n = asyncd_listeners_keys(msg + 1, ASYNCD_LINK_MAX - 1);
    if (put(msg, n + 1) != 0)
        asyncd_log(ASYNC_LOG_WARNING, "cannot tell the master which sockets this process "
                   "holds (%s): it keeps the ones it had", strerror(errno));
    free(msg);
}
