/* async_io/channel.h — unbounded multi-producer multi-consumer channel.
 *
 * Elements are copied by value (elem_size bytes); sending a pointer hands
 * over what it points to.  Safe between fibers of any worker.  Receivers are
 * served in the order they parked. */
#ifndef ASYNC_IO_CHANNEL_H
#define ASYNC_IO_CHANNEL_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_channel async_channel;

/* A new open channel, or NULL + EINVAL (elem_size 0) / ENOMEM. */
ASYNC_API async_channel *async_channel_new(size_t elem_size);

/* Copies *elem in (never parks): 0, or -1 EPIPE once closed, EINVAL, ENOMEM.
 * May be called from any thread, fiber or not. */
ASYNC_API int async_channel_send(async_channel *ch, const void *elem);

/* Parks until an element is available and copies it to *elem: 0.  After
 * close, what was sent is still delivered, then -1 EPIPE.  Also ECANCELED,
 * ETIMEDOUT, EPERM, EINVAL.  No element is lost to a cancelled receiver. */
ASYNC_API int async_channel_receive(async_channel *ch, void *elem);

/* Never parks: 0, or -1 EAGAIN when empty, EPIPE when closed and drained. */
ASYNC_API int async_channel_try_receive(async_channel *ch, void *elem);

/* Closes: later sends fail with EPIPE; parked receivers wake with EPIPE. */
ASYNC_API void async_channel_close(async_channel *ch);

/* Frees the channel and any elements still in it.  No fiber may be parked
 * on it. */
ASYNC_API void async_channel_free(async_channel *ch);

#ifdef __cplusplus
}
#endif
#endif
