/* async_io/layer.h — a protocol between a stream's socket and its users.
 *
 * A layer (TLS is the one the project ships, async_io/tls.h) turns a
 * plain TCP stream into a stream of its own protocol while the handle
 * stays the same async_stream: async_stream_read, write, write_all, wait,
 * try_read, close and async_spawn_when_readable go through the layer, so
 * code written for streams (the HTTP server and client) runs over it
 * unchanged.  async_stream_fd still names the socket: code that does its
 * own syscalls on it must first ask async_stream_layered.
 *
 * The layer talks to the socket itself (through async_stream_fd, never
 * blocking) and parks with async_stream_socket_wait, so cancellation,
 * deadlines and a close from another fiber reach it as they reach the
 * plain stream.  Its callbacks run on the fiber that called the stream
 * function, with the stream held open for the call; a layer's state is
 * not locked, so one stream is used by one fiber at a time (or by fibers
 * of one worker, which never run at once). */
#ifndef ASYNC_IO_LAYER_H
#define ASYNC_IO_LAYER_H

#include "tcp.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct async_stream_layer {
    /* Parks as async_stream_read / async_stream_write do (the same
     * errors; EPROTO for the layer's own protocol errors). */
    ssize_t (*read)(void *ctx, async_stream *s, void *buf, size_t len);
    ssize_t (*write)(void *ctx, async_stream *s, const void *buf, size_t len);
    /* Never parks: what read would return, or -1 EAGAIN when it would
     * have to wait. */
    ssize_t (*try_read)(void *ctx, async_stream *s, void *buf, size_t len);
    /* Bytes the layer holds that a read returns without the socket: they
     * count as readable for async_stream_wait and
     * async_spawn_when_readable.  Must not park. */
    size_t (*pending)(void *ctx);
    /* Sends the layer's goodbye (TLS close_notify) without parking long;
     * called by async_stream_close and async_stream_shutdown_write while
     * no other call is in progress on the stream.  May be NULL. */
    void (*goodbye)(void *ctx, async_stream *s);
    /* The last reference to the stream went: free ctx.  Any thread. */
    void (*free)(void *ctx);
    /* Optional (NULL: none).  Sends bytes of the file fd from *off, at
     * most len, as the layer's payload without copying them through user
     * space (TLS: sendfile(2) once the kernel holds the sending keys),
     * parking as write does; advances *off by the count it returns.  -1
     * EOPNOTSUPP, before anything was sent, when this stream cannot (the
     * caller reads the file and writes it); else write's errors. */
    ssize_t (*sendfile)(void *ctx, async_stream *s, int fd, off_t *off, size_t len);
};

/* Puts layer (static, borrowed for the stream's life) with ctx on s, a
 * plain stream no other fiber is using.  From then on the stream frees
 * ctx with layer->free.  0, or -1 EINVAL (s or layer NULL), EBUSY (s
 * already has a layer), EBADF (s closed).  Never parks. */
ASYNC_API int async_stream_set_layer(async_stream *s, const struct async_stream_layer *layer,
                                     void *ctx);

/* The ctx given with layer if s carries that layer, else NULL. */
ASYNC_API void *async_stream_layer_ctx(const async_stream *s, const struct async_stream_layer *layer);

/* Whether s has a layer (1) or is a plain socket stream (0); -1 EINVAL. */
ASYNC_API int async_stream_layered(const async_stream *s);

/* For layers: parks until the socket itself is readable and/or writable,
 * whatever the layer holds.  As async_stream_wait otherwise. */
ASYNC_API int async_stream_socket_wait(async_stream *s, int events);

/* Never parks: reads what is there now (through the layer), the count or
 * 0 at the end, or -1 EAGAIN when nothing is, or the errors of
 * async_stream_read. */
ASYNC_API ssize_t async_stream_try_read(async_stream *s, void *buf, size_t len);

/* Sends bytes of the file fd from *off, at most len, through s's layer
 * without a copy in user space (the layer's sendfile), parking as
 * async_stream_write does until some went: the count (advancing *off),
 * or -1 with async_stream_write's errors, or EOPNOTSUPP when s cannot —
 * a plain stream (whose owner calls sendfile(2) on async_stream_fd) or a
 * layer that does not, or not on this connection (TLS without kernel
 * TLS): the caller then reads the file and writes it. */
ASYNC_API ssize_t async_stream_sendfile(async_stream *s, int fd, off_t *off, size_t len);

/* Ends the sending direction: the layer's goodbye (if no other call is in
 * progress), then shutdown(SHUT_WR) of the socket.  0, or -1 EBADF /
 * EINVAL / the errors of shutdown(2).  Never parks long. */
ASYNC_API int async_stream_shutdown_write(async_stream *s);

#ifdef __cplusplus
}
#endif
#endif
