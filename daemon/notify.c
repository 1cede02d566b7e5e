#include "notify.h"

#include "worker.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_WAIT_MS 200       /* for room in a full notify socket's queue */

int asyncd_notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char msg[1024];
    size_t plen;
    socklen_t len;
    va_list ap;
    ssize_t n;
    int fd;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (asyncd_worker_number() != 0) { /* the master speaks for its workers */
        asyncd_worker_notify(msg, strlen(msg));
        return 0;
    }
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return -1;
    plen = strlen(path);
    if (plen >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* Never blocking: a receiver whose queue is full (max_dgram_qlen is
     * 10 on a stock kernel; systemd raises it, a slow or absent reader
     * does not drain it) would otherwise hold the daemon's fiber, and its
     * worker, for as long as it likes.  A full queue gets NOTIFY_WAIT_MS. */
    /* connected, so that POLLOUT waits for room in the receiver's queue */
    if (connect(fd, (struct sockaddr *)&sa, len) != 0) {
        close(fd);
        return -1;
    }
    n = send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
        struct pollfd p = {fd, POLLOUT, 0};

        if (poll(&p, 1, NOTIFY_WAIT_MS) > 0)
            n = send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close(fd);
    return n < 0 ? -1 : 0;
}

int asyncd_notify_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return asyncd_notify("RELOADING=1\nMONOTONIC_USEC=%lld",
                         (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}
