/* runtime/fiber/advise: one advice over many scattered ranges. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../skips.h"

#include "fiber/advise.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static bool resident(const char *p)
{
    unsigned char v = 0;

    assert_int_equal(mincore((void *)p, page(), &v), 0);
    return (v & 1) != 0;
}

/* More ranges than one process_madvise takes (512): every other page of a
 * mapping is populated, then released; the pages between stay untouched. */
static void advise_applies_to_every_range_of_a_long_row(void **state)
{
    enum { N = 1200 };
    char *base = mmap(NULL, 2 * N * page(), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    struct iovec *row = calloc(N, sizeof(*row));
    int i;

    assert_true(base != MAP_FAILED);
    assert_non_null(row);
    madvise(base, 2 * N * page(), MADV_NOHUGEPAGE);
    for (i = 0; i < N; i++)
        row[i] = (struct iovec){base + 2 * i * page(), page()};
    if (async__advise(row, 1, MADV_POPULATE_WRITE) == EINVAL)
        SKIP("MADV_POPULATE_WRITE needs Linux 5.14");
    assert_int_equal(async__advise(row, N, MADV_POPULATE_WRITE), 0);
    for (i = 0; i < N; i++) {
        assert_true(resident(base + 2 * i * page()));
        assert_false(resident(base + (2 * i + 1) * page()));
    }
    assert_int_equal(async__advise(row, N, MADV_DONTNEED), 0);
    for (i = 0; i < N; i++)
        assert_false(resident(base + 2 * i * page()));
    free(row);
    munmap(base, 2 * N * page());
}

/* A range that is not mapped stops the row with madvise's own error, the
 * ranges before it done; errno stays the caller's. */
static void advise_reports_an_unmapped_range_and_leaves_errno(void **state)
{
    char *base = mmap(NULL, 3 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct iovec row[3];

    assert_true(base != MAP_FAILED);
    assert_int_equal(munmap(base + page(), page()), 0);
    row[0] = (struct iovec){base, page()};
    row[1] = (struct iovec){base + page(), page()}; /* the hole */
    row[2] = (struct iovec){base + 2 * page(), page()};
    base[0] = 1;
    errno = EDOM;
    assert_int_equal(async__advise(row, 3, MADV_DONTNEED), ENOMEM);
    assert_int_equal(errno, EDOM);
    assert_false(resident(base));
    munmap(base, page());
    munmap(base + 2 * page(), page());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(advise_applies_to_every_range_of_a_long_row),
        cmocka_unit_test(advise_reports_an_unmapped_range_and_leaves_errno),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
