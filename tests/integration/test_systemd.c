/* The systemd unit: it must verify, and its sandbox must score "OK" (2.0
 * or lower) in systemd-analyze security.  The copy tested here points
 * ExecStart at the build tree, since verify insists the binary exists. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char unit[256];

static int make_unit(void **state)
{
    char cmd[2048];

    snprintf(unit, sizeof(unit), "/tmp/asyncd-unit-%d/asyncd.service", (int)getpid());
    snprintf(cmd, sizeof(cmd),
             "mkdir -p $(dirname %s) && sed -e 's|@SBINDIR@|%s|g' -e 's|@SYSCONFDIR@/asyncd/asyncd.json|%s|g' "
             "-e 's|@DOCDIR@|%s|g' %s > %s",
             unit, BUILD_DIR, CONFIG, SOURCE_DIR, UNIT_IN, unit);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_unit(void **state)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf $(dirname %s)", unit);
    return system(cmd) == 0 ? 0 : -1;
}

static int have_analyze(void)
{
    return system("command -v systemd-analyze > /dev/null 2>&1") == 0;
}

static void systemd_unit_verifies(void **state)
{
    char cmd[512];

    if (!have_analyze())
        skip();
    snprintf(cmd, sizeof(cmd), "systemd-analyze verify %s", unit);
    assert_int_equal(system(cmd), 0);
}

static void systemd_unit_sandbox_scores_ok(void **state)
{
    char cmd[512], line[512];
    double score = 99;
    FILE *f;

    if (!have_analyze())
        skip();
    snprintf(cmd, sizeof(cmd), "systemd-analyze security --offline=yes %s 2>&1", unit);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *at = strstr(line, "Overall exposure level for");

        if (at != NULL && (at = strchr(at, ':')) != NULL)
            score = strtod(at + 1, NULL);
    }
    pclose(f);
    print_message("exposure level: %.1f\n", score);
    assert_true(score <= 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(systemd_unit_verifies),
        cmocka_unit_test(systemd_unit_sandbox_scores_ok),
    };

    return cmocka_run_group_tests(tests, make_unit, remove_unit);
}
