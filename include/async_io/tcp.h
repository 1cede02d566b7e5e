/* async_io/tcp.h — waiting for descriptors (TCP streams and listeners are
 * the networking layer's, still to come). */
#ifndef ASYNC_IO_TCP_H
#define ASYNC_IO_TCP_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNC_READABLE 1
#define ASYNC_WRITABLE 2

/* Parks until fd is readable and/or writable (events: ASYNC_READABLE |
 * ASYNC_WRITABLE; an error or hang-up on fd counts as ready): 0.  -1 with
 * ECANCELED / ETIMEDOUT / EPERM, EINVAL (fd < 0 or no event asked).  The fd
 * stays the caller's; it must not be closed while a fiber waits on it. */
ASYNC_API int async_fd_wait(int fd, int events);

#ifdef __cplusplus
}
#endif
#endif
