/* runtime/net/listener — listening sockets and accept.
 *
 * One listening socket per listener, shared by every fiber that accepts
 * on it; accepted connections become fibers wherever the acceptor spawns
 * them (async_spawn: idle workers steal those that have not started;
 * async_spawn_on: a given worker).  ASYNC_LISTEN_REUSEPORT lets one
 * listener per worker share a port.  A borrowed listener (async_listener_borrow)
 * accepts on a socket that stays its lender's: closing it neither closes
 * nor shuts the socket down.  README "Listeners" has the
 * measurements behind the choice the examples and the HTTP module make. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct async_listener {
    struct async__sock sock; /* first: freed through it */
    int port;
};

static int open_listener(const struct addrinfo *ai, int flags, int *fd_out)
{
    int fd, one = 1, zero = 0;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((flags & ASYNC_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int err = errno;

        close(fd);
        return err;
    }
    if (ai->ai_family == AF_INET6) /* "[::]" and "*" also take IPv4 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int err = errno;

        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

async_listener *async_listener_bind(const char *address)
{
    return async_listener_bind_flags(address, 0);
}

async_listener *async_listener_bind_flags(const char *address, int flags)
{
    struct async__hostport hp;
    struct addrinfo *res = NULL, *ai;
    async_listener *l;
    int err, fd = -1;

    if ((flags & ~ASYNC_LISTEN_REUSEPORT) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if ((err = async__split_address(address, &hp)) != 0 ||
        (err = async__resolve(&hp, true, &res)) != 0) {
        errno = err;
        return NULL;
    }
    err = EADDRNOTAVAIL;
    for (ai = res; ai != NULL; ai = ai->ai_next)
        if ((err = open_listener(ai, flags, &fd)) == 0)
            break;
    freeaddrinfo(res);
    if (fd < 0) {
        errno = err;
        return NULL;
    }
    l = malloc(sizeof(*l));
    if (l == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    async__sock_init(&l->sock, fd);
    /* an acceptor lives as long as its listener: nothing to gain from a
     * watcher that outlives it, and a borrowed socket is never shut down
     * to stop one (its holder may close the descriptor under it) */
    async__fdw_no_orphan(&l->sock.watch);
    l->port = local_port(fd);
    return l;
}

async_listener *async_listener_borrow(int fd)
{
    async_listener *l;
    int listening = 0, flags;
    socklen_t len = sizeof(listening);

    if (fd < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0)
        return NULL; /* ENOTSOCK, EBADF */
    if (!listening) {
        errno = EINVAL;
        return NULL;
    }
    if ((flags = fcntl(fd, F_GETFL)) < 0 ||
        (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0))
        return NULL;
    if ((l = malloc(sizeof(*l))) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    async__sock_init(&l->sock, fd);
    async__fdw_no_orphan(&l->sock.watch); /* as async_listener_bind's */
    l->sock.borrowed = true;
    l->port = local_port(fd);
    return l;
}

int async_listener_fd(const async_listener *l)
{
    if (l == NULL) {
        errno = EINVAL;
        return -1;
    }
    return l->sock.fd;
}

int async_listener_port(const async_listener *l)
{
    if (l == NULL) {
        errno = EINVAL;
        return -1;
    }
    return l->port;
}

/* Times accept found no descriptor or memory, process-wide: for a
 * monitor that logs it (asyncd does, at most once a second). */
static _Atomic uint64_t shortages;

uint64_t async_fd_shortages(void)
{
    return atomic_load_explicit(&shortages, memory_order_relaxed);
}

/* Out of descriptors: wait for some to be closed, 1 ms doubling to 64. */
static int back_off(unsigned *ms)
{
    int err;

    atomic_fetch_add_explicit(&shortages, 1, memory_order_relaxed);
    *ms = *ms == 0 ? 1 : (*ms < 64 ? *ms * 2 : 64);
    if (async_sleep_ms(*ms) != 0) {
        err = errno;
        return err;
    }
    return 0;
}

async_stream *async_listener_accept(async_listener *l)
{
    unsigned backoff = 0;
    int fd = -1, err;

    if (async__parking_self(l) == NULL)
        return NULL;
    if ((err = async__sock_enter(&l->sock)) != 0) {
        errno = err;
        return NULL;
    }
    for (;;) {
        /* A borrowed socket outlives this handle: a connection it has not
         * accepted yet stays queued for the socket's next holder. */
        if (l->sock.borrowed && atomic_load_explicit(&l->sock.closed, memory_order_acquire)) {
            err = EBADF;
            break;
        }
        fd = accept4(l->sock.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (!l->sock.borrowed && atomic_load_explicit(&l->sock.closed, memory_order_acquire)) {
            if (fd >= 0)
                close(fd);
            fd = -1;
            err = EBADF;
            break;
        }
        if (fd >= 0)
            break;
        err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            backoff = 0;
            err = async__fdw_wait(&l->sock.watch, ASYNC_READABLE);
        } else if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
            err = back_off(&backoff);
        } else if (err == ECONNABORTED || err == EINTR || err == EPROTO || err == EPERM) {
            err = 0; /* that connection is gone; take the next */
        }
        /* EINVAL: the socket was shut down; when that is how a stop
         * reached us, the cancel is what to report */
        if (err == 0 || err == EINVAL) {
            int intr = async__check_interrupt(async__current());

            err = intr != 0 ? intr : err;
        }
        if (err != 0)
            break;
    }
    async__sock_leave(&l->sock);
    if (fd < 0) {
        errno = err;
        return NULL;
    }
    return async__stream_new(fd);
}

void async_listener_close(async_listener *l)
{
    if (l != NULL)
        async__sock_close(&l->sock, SHUT_RD);
}
