/* runtime/fiber/advise — one madvise advice over many scattered ranges in
 * as few system calls as the kernel allows.
 *
 * A slab's guard pages, the top pages of its stacks, the stacks a pool
 * gives back: each is a row of page ranges a stride apart, never one
 * range.  One madvise per range cost the spawn of a parked fiber a system
 * call (guard) and a page fault (first touch), and the exit of one a
 * system call and a TLB shootdown (release).  process_madvise(2) on the
 * calling process takes the whole row at once (Linux 6.13 lets a process
 * give itself any advice; 6.16 flushes the TLB once per call for
 * MADV_DONTNEED).  Older kernels get one madvise per range.
 *
 * Any thread; the only shared state is a flag per advice that goes from
 * "try process_madvise" to "use madvise" once, relaxed (a race only means
 * one more failed attempt). */
#ifndef ASYNC_FIBER_ADVISE_H
#define ASYNC_FIBER_ADVISE_H

#include <stddef.h>
#include <sys/uio.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14 */
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  /* Linux 6.13 uapi; older headers lack it */
#endif

/* Applies advice to every range of iov[0..n).  0, or the errno of the
 * first range that failed (the ranges before it were advised; the rest
 * may not be).  errno is left as it was. */
int async__advise(const struct iovec *iov, size_t n, int advice);

#endif
