/* async_io/ring.h — bounded multi-producer multi-consumer ring buffer.
 *
 * Elements are copied by value.  Senders park while the ring is full,
 * receivers while it is empty; both are served in the order they parked, and
 * elements come out in the order their sends completed. */
#ifndef ASYNC_IO_RING_H
#define ASYNC_IO_RING_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_ring async_ring;

/* A ring holding up to capacity elements of elem_size bytes, or NULL +
 * EINVAL (either is 0) / ENOMEM. */
ASYNC_API async_ring *async_ring_new(size_t capacity, size_t elem_size);

/* Parks while full, then copies *elem in: 0, or -1 EPIPE once closed,
 * ECANCELED, ETIMEDOUT, EPERM, EINVAL.  A send that fails did not enqueue. */
ASYNC_API int async_ring_send(async_ring *r, const void *elem);

/* Parks while empty, then copies the oldest element to *elem: 0.  After close
 * the remaining elements are still delivered, then -1 EPIPE.  Also ECANCELED,
 * ETIMEDOUT, EPERM, EINVAL. */
ASYNC_API int async_ring_recv(async_ring *r, void *elem);

/* Closes: parked senders and later sends fail with EPIPE; receivers drain. */
ASYNC_API void async_ring_close(async_ring *r);

/* Frees the ring.  No fiber may be parked on it. */
ASYNC_API void async_ring_free(async_ring *r);

#ifdef __cplusplus
}
#endif
#endif
