/* tests/skips.h — a skipped test is reported to CTest as skipped, never as
 * passed.
 *
 * cmocka's skip() marks the test "[  SKIPPED ]" in its own output, but the
 * binary still exits 0, so CTest (and CI) count the test as passed: the
 * systemd unit checks "passed" on machines without systemd-analyze.  So:
 * SKIP(why) prints why and records the skip, and main returns
 * skips_exit(cmocka_run_group_tests(...)), which is SKIPPED_EXIT when
 * something was skipped and nothing failed.  tests/CMakeLists.txt gives
 * CTest that code as SKIP_RETURN_CODE, and CTest then lists the binary as
 * "Skipped" (its other tests did pass: the output says which were
 * skipped).  A failure always wins over a skip.
 *
 * harness.h and daemon.h include it.  Plain skip() is poisoned below, so
 * no test can skip without saying why and without being counted. */
#ifndef ASYNC_TESTS_SKIPS_H
#define ASYNC_TESTS_SKIPS_H

/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#define SKIPPED_EXIT 77

static int skips_seen;

/* Ends the current test as skipped; why is a printf format. */
#define SKIP(...)                                                                   \
    do {                                                                            \
        skips_seen++;                                                               \
        fprintf(stderr, "skipped (%s:%d): ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                        \
        _skip(__FILE__, __LINE__);                                                  \
    } while (0)

#undef skip
#define skip() skip_without_a_reason_use_SKIP_why_from_skips_h

/* What main returns: failures first, then "skipped", then success. */
static inline int skips_exit(int failed)
{
    if (failed != 0)
        return failed >= SKIPPED_EXIT ? 1 : failed;
    if (skips_seen != 0) {
        fprintf(stderr, "%d test(s) skipped, none failed: exit %d (CTest: Skipped)\n",
                skips_seen, SKIPPED_EXIT);
        return SKIPPED_EXIT;
    }
    return 0;
}

#endif /* ASYNC_TESTS_SKIPS_H */
