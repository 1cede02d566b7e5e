/* tests/skips.h: a binary in which a test skipped and none failed exits
 * SKIPPED_EXIT (CTest's SKIP_RETURN_CODE), a failure wins over a skip, and
 * a clean run exits 0.  The binary runs itself as the probe. */
#define _GNU_SOURCE
#include "../skips.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void probe_passes(void **state)
{
    (void)state;
    assert_true(1);
}

static void probe_skips(void **state)
{
    (void)state;
    SKIP("the probe skips on purpose");
    assert_true(0); /* not reached */
}

static void probe_fails(void **state)
{
    (void)state;
    fail_msg("the probe fails on purpose");
}

/* The probe's exit status when run with mode, its output on /dev/null. */
static int probe(const char *mode)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execl("/proc/self/exe", "test_skips", mode, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void skips_a_skip_without_failures_exits_the_skip_code(void **state)
{
    (void)state;
    assert_int_equal(probe("skip"), SKIPPED_EXIT);
}

static void skips_a_failure_wins_over_a_skip(void **state)
{
    (void)state;
    assert_int_equal(probe("skip-and-fail"), 1);
}

static void skips_a_run_without_skips_exits_0(void **state)
{
    (void)state;
    assert_int_equal(probe("pass"), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest pass[] = {cmocka_unit_test(probe_passes)};
    const struct CMUnitTest skip[] = {cmocka_unit_test(probe_passes),
                                      cmocka_unit_test(probe_skips)};
    const struct CMUnitTest skip_and_fail[] = {cmocka_unit_test(probe_skips),
                                               cmocka_unit_test(probe_fails),
                                               cmocka_unit_test(probe_passes)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(skips_a_skip_without_failures_exits_the_skip_code),
        cmocka_unit_test(skips_a_failure_wins_over_a_skip),
        cmocka_unit_test(skips_a_run_without_skips_exits_0),
    };

    if (argc > 1 && strcmp(argv[1], "pass") == 0)
        return skips_exit(cmocka_run_group_tests(pass, NULL, NULL));
    if (argc > 1 && strcmp(argv[1], "skip") == 0)
        return skips_exit(cmocka_run_group_tests(skip, NULL, NULL));
    if (argc > 1 && strcmp(argv[1], "skip-and-fail") == 0)
        return skips_exit(cmocka_run_group_tests(skip_and_fail, NULL, NULL));
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
