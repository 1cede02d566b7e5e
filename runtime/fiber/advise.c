#include "advise.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#define PIDFD_SELF_THREAD (-10000) /* Linux 6.14: the caller, without a pidfd */
#define ROW_MAX 512                /* under IOV_MAX (1024) */

/* Per advice we use (guard, populate, dontneed): whether process_madvise
 * refused it once. */
static _Atomic bool refused[3];

static _Atomic bool *refusal_of(int advice)
{
    switch (advice) {
    case MADV_GUARD_INSTALL:
        return &refused[0];
    case MADV_POPULATE_WRITE:
        return &refused[1];
    default:
        return &refused[2];
    }
}

static int one_by_one(const struct iovec *iov, size_t n, int advice)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (madvise(iov[i].iov_base, iov[i].iov_len, advice) != 0)
            return errno;
    return 0;
}

/* One process_madvise for up to ROW_MAX ranges: the number of ranges it
 * advised in full (the kernel stops at the first that fails), or -1 if it
 * cannot do this advice at all. */
static long batch(const struct iovec *iov, size_t n, int advice)
{
    size_t total = 0, done, i;
    long r = syscall(SYS_process_madvise, PIDFD_SELF_THREAD, iov, n, advice, 0);

    if (r < 0)
        return errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM ? -1 : 0;
    for (i = 0; i < n; i++)
        total += iov[i].iov_len;
    if ((size_t)r == total)
        return (long)n;
    for (done = 0, i = 0; i < n && done + iov[i].iov_len <= (size_t)r; i++)
        done += iov[i].iov_len;
    return (long)i;
}

int async__advise(const struct iovec *iov, size_t n, int advice)
{
    _Atomic bool *no = refusal_of(advice);
    int saved = errno, err = 0;

    while (n > 0 && err == 0) {
        size_t row = n < ROW_MAX ? n : ROW_MAX;
        long got = -1;

        if (!atomic_load_explicit(no, memory_order_relaxed) &&
            (got = batch(iov, row, advice)) < 0)
            atomic_store_explicit(no, true, memory_order_relaxed);
        if (got < 0) {
            err = one_by_one(iov, row, advice);
            got = (long)row;
        } else if ((size_t)got < row) {
            /* Stopped at a range: madvise tells us its errno (or does it). */
            if ((err = one_by_one(iov + got, 1, advice)) == 0)
                got++;
        }
        iov += got;
        n -= (size_t)got;
    }
    errno = saved;
    return err;
}
