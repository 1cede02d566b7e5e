/* runtime/net — addresses and TCP on top of the reactor.  Internal. */
#ifndef ASYNC_NET_H
#define ASYNC_NET_H

#include "../reactor/reactor.h"
#include "../sched/sched.h"

#include <async_io/tcp.h>

#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>

/* "host:port" split into its parts; host "" means any local address. */
struct async__hostport {
    char host[256];
    char port[6];
};

/* 0 or EINVAL. */
int async__split_address(const char *address, struct async__hostport *out);

/* getaddrinfo for hp (passive: for bind).  Numeric hosts resolve on the
 * calling thread; names on a helper thread when called from a fiber.
 * 0, or ENXIO / EAGAIN / ENOMEM / EINVAL / ECANCELED / ETIMEDOUT.  The
 * caller frees *res with freeaddrinfo. */
int async__resolve(const struct async__hostport *hp, bool passive, struct addrinfo **res);

/* What listeners and streams share: a descriptor that a close may shut
 * down under parked fibers.
 *
 * refs: 1 for the handle, +1 for every call in progress.  A call enters
 * (refs++) and then checks `closed`; close sets `closed`, shuts the socket
 * down (which wakes every parked waiter on every worker: a shut socket
 * polls readable and writable) and drops the handle's ref.  Whoever drops
 * the last ref closes the fd and frees.  Both sides use seq_cst, so either
 * the call sees `closed` or close's drop leaves the call's ref standing. */
struct async__sock {
    int fd;
    _Atomic int refs;
    _Atomic bool closed;
    bool borrowed;      /* fd is not ours: never shut down or closed */
    struct async__fdw watch;
    void (*dtor)(struct async__sock *s); /* before the free, at the last ref; NULL: none */
};

void async__sock_init(struct async__sock *s, int fd);
/* 0, or EBADF if closed; on 0 the caller must async__sock_leave. */
int  async__sock_enter(struct async__sock *s);
void async__sock_leave(struct async__sock *s);
/* Marks closed, shuts down (how: SHUT_RD or SHUT_RDWR), drops the handle. */
void async__sock_close(struct async__sock *s, int how);

/* A new stream owning fd (non-blocking); NULL + ENOMEM (fd closed). */
async_stream *async__stream_new(int fd);

/* Whether nothing can have arrived on a plain stream since its last read
 * emptied the receive queue, as far as its worker's loop has seen
 * (async__fdw_quiet): for reusing an idle connection without a system
 * call, by a caller that recovers when the hint is stale.  False for a
 * layered stream (its layer may hold bytes). */
bool async__stream_quiet(async_stream *s);


#endif
