/* The systemd units, asyncd.service and the template asyncd@.service (one
 * file, systemd/asyncd.service.in, made twice), and asyncd.socket: each
 * must verify, man pages included, and each service's sandbox must score
 * "OK" (2.0 or lower) in systemd-analyze security.  The copies tested here point ExecStart at
 * the build tree, since verify insists the binary exists, and MANPATH at
 * the built man pages. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../skips.h" /* SKIP(why), skips_exit */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

/* dir/name from the .in, with config as its @CONFIG@ and which as @WHICH@. */
static int make_unit(const char *name, const char *config, const char *which)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd),
             "sed -e 's|@SBINDIR@|%s|g' -e 's|@CONFIG@|%s|g' -e 's|@WHICH@|%s|g' "
             "-e 's|@SYSCONFDIR@|/etc|g' -e 's|@DOCDIR@|%s|g' %s > %s/%s",
             BUILD_DIR, config, which, SOURCE_DIR, UNIT_IN, dir, name);
    return system(cmd) == 0 ? 0 : -1;
}

static int make_units(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/asyncd-unit-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    setenv("MANPATH", BUILD_DIR "/man", 1);
    if (make_unit("asyncd.service", CONFIG, "") != 0)
        return -1;
    return make_unit("asyncd@.service", SOURCE_DIR "/conf/%i.json", "@%i");
}

static int remove_units(void **state)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int have_analyze(void)
{
    return system("command -v systemd-analyze > /dev/null 2>&1") == 0;
}

/* unit: a file of dir, or an instance of a template in dir. */
static void verifies(const char *unit)
{
    char cmd[512];

    if (!have_analyze())
        SKIP("systemd-analyze is not installed (the systemd package has it)");
    snprintf(cmd, sizeof(cmd), "systemd-analyze verify %s/%s", dir, unit);
    assert_int_equal(system(cmd), 0);
}

static void scores_ok(const char *unit)
{
    char cmd[512], line[512];
    double score = 99;
    FILE *f;

    if (!have_analyze())
        SKIP("systemd-analyze is not installed (the systemd package has it)");
    snprintf(cmd, sizeof(cmd), "systemd-analyze security --offline=yes %s/%s 2>&1", dir, unit);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *at = strstr(line, "Overall exposure level for");

        if (at != NULL && (at = strchr(at, ':')) != NULL)
            score = strtod(at + 1, NULL);
    }
    pclose(f);
    print_message("%s: exposure level %.1f\n", unit, score);
    assert_true(score <= 2.0);
}

static void systemd_unit_verifies(void **state)
{
    verifies("asyncd.service");
}

static void systemd_unit_sandbox_scores_ok(void **state)
{
    scores_ok("asyncd.service");
}

static void systemd_template_instance_verifies(void **state)
{
    verifies("asyncd@test.service");
}

static void systemd_template_sandbox_scores_ok(void **state)
{
    scores_ok("asyncd@test.service");
}

/* asyncd.socket, beside the service it activates. */
static void systemd_socket_unit_verifies(void **state)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "cp %s/systemd/asyncd.socket %s/", SOURCE_DIR, dir);
    assert_int_equal(system(cmd), 0);
    verifies("asyncd.socket");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(systemd_unit_verifies),
        cmocka_unit_test(systemd_unit_sandbox_scores_ok),
        cmocka_unit_test(systemd_template_instance_verifies),
        cmocka_unit_test(systemd_template_sandbox_scores_ok),
        cmocka_unit_test(systemd_socket_unit_verifies),
    };

    return skips_exit(cmocka_run_group_tests(tests, make_units, remove_units));
}
