/* runtime/net/connect — non-blocking connect over every resolved address. */
#include "net.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

/* One address: 0 and *fd_out, or the errno that ended the attempt. */
static int try_one(const struct addrinfo *ai, int *fd_out)
{
    int fd, err = 0;
    socklen_t len = sizeof(err);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            if (async_fd_wait(fd, ASYNC_WRITABLE) != 0)
                err = errno; /* ECANCELED, ETIMEDOUT */
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
    if (err != 0) {
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

async_stream *async_tcp_connect(const char *address)
{
    struct async__hostport hp;
    struct addrinfo *res = NULL, *ai;
    int err, fd = -1;

    if (async__parking_self(address) == NULL)
        return NULL;
    if ((err = async__split_address(address, &hp)) != 0)
        goto fail;
    if (hp.host[0] == '\0') {
        err = EINVAL; /* "*:80" names no peer */
        goto fail;
    }
    if ((err = async__resolve(&hp, false, &res)) != 0)
        goto fail;
    err = EADDRNOTAVAIL;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        err = try_one(ai, &fd);
        if (err == 0 || err == ECANCELED || err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (err != 0)
        goto fail;
    return async__stream_new(fd);
fail:
    errno = err;
    return NULL;
}
