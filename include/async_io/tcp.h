/* async_io/tcp.h — TCP for fibers, and waiting on any descriptor.
 *
 * Addresses are "host:port": "1.2.3.4:80", "[::1]:80", "[::]:8080",
 * "localhost:8080", and "*:80" or ":80" for every local address (IPv6 and
 * IPv4 where the system allows a dual-stack socket).  Port 0 asks for an
 * ephemeral port (see async_listener_port).  Host names are resolved with
 * getaddrinfo on a helper thread (async_io/blocking.h) while the fiber
 * parks; numeric addresses never leave the calling thread.
 *
 * Errors common to every call here: EINVAL for a malformed address or a
 * NULL handle, ENXIO for a host name that does not resolve, EAGAIN for a
 * temporary resolver failure.  Writing to a peer that went away fails with
 * EPIPE or ECONNRESET; the process never gets SIGPIPE.
 *
 * Closing while another fiber is parked on the same listener or stream is
 * safe: the close shuts the socket down, the parked call wakes and fails
 * with EBADF, and the descriptor is released when the last call has left.
 * The handle must not be used by calls that start after the close. */
#ifndef ASYNC_IO_TCP_H
#define ASYNC_IO_TCP_H

#include "runtime.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNC_READABLE 1
#define ASYNC_WRITABLE 2

typedef struct async_listener async_listener;
typedef struct async_stream async_stream;

/* Reads address exactly as async_listener_bind and async_tcp_connect do,
 * without resolving a name or touching the network, so that a
 * configuration can be checked before anything listens.  Accepted forms:
 * "host:port" where host is a name (letters, digits, '-' and '.') or an
 * IPv4 address, "[v6]:port" (an IPv6 literal, optionally with a %zone),
 * and "*:port" or ":port" for every local address; port is 0 to 65535 in
 * at most five decimal digits.  0, with the host (no brackets, "" for
 * every local address) copied into host[0..hostlen) when host is not
 * NULL, and the port in *port when port is not NULL.  -1 + EINVAL when
 * malformed (also for a NULL address), or ENAMETOOLONG when the host does
 * not fit hostlen; *why, when why is not NULL, then points to a short
 * static reason in English ("port above 65535").  Never parks; any
 * thread. */
ASYNC_API int async_address_parse(const char *address, char *host, size_t hostlen, int *port,
                                  const char **why);

/* A listening socket on address: non-blocking, close-on-exec, SO_REUSEADDR,
 * backlog SOMAXCONN.  NULL + EINVAL / ENXIO / EADDRINUSE / EACCES / EMFILE /
 * ENOMEM, ...  Parks only to resolve a host name (then only in a fiber;
 * outside one the name is resolved on the calling thread).  Free with
 * async_listener_close. */
ASYNC_API async_listener *async_listener_bind(const char *address);

/* async_listener_bind with options.  ASYNC_LISTEN_REUSEPORT sets
 * SO_REUSEPORT: several listeners (of this process or another of the same
 * user) may then bind the same address, and the kernel spreads incoming
 * connections over them by a hash of the peer's address and port.  With
 * one such listener per worker, each accepted by a fiber started there
 * with async_spawn_on, every worker serves the connections it accepts (see
 * README, "Listeners").  Bind port 0 once, then the port it got.  Unknown
 * flags: EINVAL. */
#define ASYNC_LISTEN_REUSEPORT 1
ASYNC_API async_listener *async_listener_bind_flags(const char *address, int flags);

/* The local port (useful after binding port 0), or -1 EINVAL. */
ASYNC_API int async_listener_port(const async_listener *l);

/* Parks until a connection arrives: a new stream (TCP_NODELAY on) that the
 * caller closes.  NULL + ECANCELED / ETIMEDOUT / EPERM / EINVAL / EBADF
 * (closed meanwhile) / ENOMEM.  Aborted connections are skipped; when the
 * process is out of descriptors (EMFILE, ENFILE) the listener stays
 * registered and retries with a short back-off (1 ms doubling to 64 ms)
 * until descriptors are free again. */
ASYNC_API async_stream *async_listener_accept(async_listener *l);

/* Closes the listener; fibers parked in accept on it fail with EBADF. */
ASYNC_API void async_listener_close(async_listener *l);

/* The listening socket's descriptor (still the listener's: do not close
 * it), or -1 EINVAL. */
ASYNC_API int async_listener_fd(const async_listener *l);

/* A listener over fd, a listening socket that stays the caller's (a
 * daemon that keeps its sockets across the generations of the code that
 * accepts on them; an inherited socket).  fd is made non-blocking.
 * Accept works as on any listener; async_listener_close only releases the
 * handle: it neither closes fd nor shuts it down (a shutdown would reset
 * every connection waiting in the socket's accept queue, for every holder
 * of the socket).  So a fiber parked in accept when it is closed is not
 * woken by the close: it fails with EBADF at its next wake-up (its
 * cancellation, or a connection, which it then leaves in the queue).  The
 * caller keeps fd open until every call on the listener has returned.
 * NULL + EINVAL (fd < 0, or not listening) / ENOTSOCK / EBADF / ENOMEM. */
ASYNC_API async_listener *async_listener_borrow(int fd);

/* Parks while connecting: resolves the host, then tries each address in
 * the resolver's order (IPv6 and IPv4) until one accepts.  A new stream
 * (TCP_NODELAY on) or NULL + ECONNREFUSED / ETIMEDOUT (also past the
 * fiber's deadline) / ECANCELED / ENETUNREACH / EHOSTUNREACH / ENXIO /
 * EINVAL / EPERM / ... (the error of the last address tried). */
ASYNC_API async_stream *async_tcp_connect(const char *address);

/* Parks until at least one byte can be read, then reads up to len bytes:
 * the count, 0 at end of stream, or -1 with ECONNRESET / ECANCELED /
 * ETIMEDOUT / EBADF (closed meanwhile) / EPERM / EINVAL.  buf stays the
 * caller's. */
ASYNC_API ssize_t async_stream_read(async_stream *s, void *buf, size_t len);

/* Parks until some bytes can be written, then writes up to len: the count
 * (possibly short), or -1 with EPIPE / ECONNRESET / ECANCELED / ETIMEDOUT /
 * EBADF / EPERM / EINVAL. */
ASYNC_API ssize_t async_stream_write(async_stream *s, const void *buf, size_t len);

/* Writes all len bytes, parking as needed: 0, or -1 with the errors of
 * async_stream_write; after a failure an unknown prefix may have been
 * sent. */
ASYNC_API int async_stream_write_all(async_stream *s, const void *buf, size_t len);

/* How many times, since the process started, an accept found the process
 * or the system out of descriptors (EMFILE, ENFILE) or memory and waited
 * (accept rides such shortages out with a 1-64 ms back-off, so its caller
 * never sees them): a monitor that compares it over time can say so. */
ASYNC_API uint64_t async_fd_shortages(void);

/* Parks until s is readable and/or writable (events as for async_fd_wait):
 * 0, or -1 with ECANCELED / ETIMEDOUT / EBADF (closed meanwhile) / EPERM /
 * EINVAL.  Uses the stream's own registration with the reactor, so unlike
 * async_fd_wait on its descriptor it costs no epoll_ctl.  For code that
 * does its own syscalls on the descriptor (sendfile, recv after a short
 * read, MSG_MORE) and only needs to wait. */
ASYNC_API int async_stream_wait(async_stream *s, int events);

/* Spawns fn(arg) as a detached fiber that starts only once s is readable
 * (bytes, end of stream or an error are waiting), so that a connection
 * that goes quiet holds no fiber and no stack: the calling fiber hands s
 * over and returns, the new fiber picks s up.  Until it starts it costs a
 * task record (about 140 bytes) and the stream's registration with the
 * reactor.  It runs on the caller's worker, as a member of the caller's
 * group; since it has no handle, only its group's cancel reaches it, and
 * that starts it at once (its parking calls then fail with ECANCELED
 * unless it shields).  There is no timeout: to bound idleness, shut the
 * socket down (shutdown(2) makes it readable) from a fiber that keeps
 * time.  From this call on, s belongs to the new fiber: nobody else may
 * use or close it.  0, or -1 with EPERM (not a fiber), EINVAL (s or fn
 * NULL), EBADF (s closed), EBUSY (another fiber waits on s), EXDEV (s was
 * first waited on by a fiber of another worker), ENOMEM. */
ASYNC_API int async_spawn_when_readable(async_stream *s, async_fn fn, void *arg);

/* The stream's descriptor, for setsockopt, shutdown(SHUT_WR) and the like
 * (still owned by the stream: do not close it), or -1 EINVAL. */
ASYNC_API int async_stream_fd(const async_stream *s);

/* Closes the stream and frees the handle (see the note on closing above). */
ASYNC_API void async_stream_close(async_stream *s);

/* Parks until fd is readable and/or writable (events: ASYNC_READABLE |
 * ASYNC_WRITABLE; an error or hang-up on fd counts as ready): 0.  -1 with
 * ECANCELED / ETIMEDOUT / EPERM, EINVAL (fd < 0 or no event asked).  The fd
 * stays the caller's; it must not be closed while a fiber waits on it
 * (streams and listeners above handle that case for their own fds). */
ASYNC_API int async_fd_wait(int fd, int events);

#ifdef __cplusplus
}
#endif
#endif
