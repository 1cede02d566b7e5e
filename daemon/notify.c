#include "notify.h"

#include "worker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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
    n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
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
