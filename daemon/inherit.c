/* daemon/inherit.c — sockets from LISTEN_FDS into the listener table.
 *
 * A descriptor is only trusted as far as it is checked: whatever is at
 * 3..3+LISTEN_FDS-1 may be a file, a datagram socket, a socket nobody
 * called listen() on.  Such a descriptor is never used: it is logged (its
 * number and its name from LISTEN_FDNAMES) and closed.  A good one is
 * made close-on-exec (the modules' children must not hold it) and given
 * to the table, which hands it to the module asking for its address and
 * closes it after start-up if none does (daemon/listeners.c). */
#include "inherit.h"

#include "listeners.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FDS 4096            /* more is a garbled variable, not a socket set */

/* Why fd cannot be used as a listener, or NULL when it can. */
static const char *unfit(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(int), salen = sizeof(sa);
    struct stat st;
    int type = 0, listening = 0;

    if (fstat(fd, &st) != 0)
        return "not open";
    if (!S_ISSOCK(st.st_mode))
        return "not a socket";
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return "not a stream socket";
    if (getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
        (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
        return "not an IPv4 or IPv6 socket";
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
        return "not listening";
    return NULL;
}

/* "127.0.0.1:8080", "[::]:8080": fd's local address, into buf. */
static const char *local(int fd, char *buf, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    getsockname(fd, (struct sockaddr *)&sa, &salen);
    if (sa.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof(host));
        port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        snprintf(buf, len, "%s:%d", host, port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof(host));
        port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        snprintf(buf, len, "[%s]:%d", host, port);
    }
    return buf;
}

static void take(int fd, const char *name, size_t len)
{
    char label[300], addr[80];
    const char *why;

    snprintf(label, sizeof(label), "%.*s", (int)len, name);
    if ((why = unfit(fd)) != NULL) {
        asyncd_log(ASYNC_LOG_ERROR, "inherited descriptor %d (%s): %s; closed, not used", fd,
                   label, why);
        close(fd);
        return;
    }
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || asyncd_listeners_adopt(fd, name, len) != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "inherited socket %d (%s): %s; closed, not used", fd, label,
                   strerror(errno));
        close(fd);
        return;
    }
    asyncd_log(ASYNC_LOG_INFO, "inherited socket %d (%s) listening on %s", fd, label,
               local(fd, addr, sizeof(addr)));
}

void asyncd_inherit_listeners(void)
{
    const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
    const char *names = getenv("LISTEN_FDNAMES"), *name, *end;
    char *stop = NULL;
    long n = 0, i;

    if (fds == NULL)
        goto done;
    if (pid == NULL || strtol(pid, NULL, 10) != (long)getpid()) {
        asyncd_log(ASYNC_LOG_WARNING, "LISTEN_FDS=%s is for pid %s, not this one (%d): "
                   "ignored", fds, pid != NULL ? pid : "(none)", (int)getpid());
        goto done;
    }
    n = strtol(fds, &stop, 10);
    if (*fds == '\0' || *stop != '\0' || n < 0 || n > MAX_FDS) {
        asyncd_log(ASYNC_LOG_ERROR, "LISTEN_FDS=%s: not a count of descriptors; ignored", fds);
        goto done;
    }
    name = names;
    for (i = 0; i < n; i++) {
        char fallback[32];
        size_t len;

        if (name != NULL) {
            end = strchr(name, ':');
            len = end != NULL ? (size_t)(end - name) : strlen(name);
        } else {
            len = (size_t)snprintf(fallback, sizeof(fallback), "unnamed");
        }
        take(3 + (int)i, name != NULL ? name : fallback, len);
        if (name != NULL)
            name = end != NULL ? end + 1 : NULL;
    }
done:
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
}
