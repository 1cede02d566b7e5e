/* Installed as a Debian package would install it: the tree configured
 * with -DCMAKE_INSTALL_PREFIX=/usr (in a build folder of its own, beside
 * this test), `cmake --install` into a DESTDIR, then the paths checked:
 * the config in /etc/asyncd (not /usr/etc), an asyncd that finds its
 * library where it was installed (no ldconfig, no LD_LIBRARY_PATH) and
 * accepts the installed config, which serves http only with its access log
 * in systemd's LogsDirectory, the two units and the man pages. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../skips.h" /* SKIP(why), skips_exit */

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char destdir[256];       /* the DESTDIR: a temp folder */
static char libdir[512];        /* CMAKE_INSTALL_LIBDIR of the /usr build: lib/<multiarch> */

/* ---- helpers ---- */

/* Runs cmd through the shell; its exit status (-1 if it did not exit),
 * and what it wrote to stdout and stderr in out. */
static int run(const char *cmd, char *out, size_t len)
{
    char full[4096];
    size_t n = 0;
    FILE *f;
    int st;

    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    f = popen(full, "r");
    assert_non_null(f);
    while (n + 1 < len && (st = (int)fread(out + n, 1, len - 1 - n, f)) > 0)
        n += (size_t)st;
    out[n] = '\0';
    while (fgetc(f) != EOF) /* the rest, so the command never blocks on a full pipe */
        ;
    st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* destdir + an absolute path of the installed tree. */
static const char *in_dest(const char *path)
{
    static char buf[4][512];
    static int next;
    char *b = buf[next++ % 4];

    snprintf(b, sizeof(buf[0]), "%s%s", destdir, path);
    return b;
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static void expect_file(const char *path)
{
    if (!exists(in_dest(path)))
        fail_msg("%s was not installed (looked in %s)", path, destdir);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

static void expect_in_file(const char *path, const char *want)
{
    char *text = slurp(in_dest(path));

    if (strstr(text, want) == NULL)
        fail_msg("%s lacks '%s':\n%s", path, want, text);
    free(text);
}

/* CMAKE_INSTALL_LIBDIR as the /usr build chose it. */
static int read_libdir(void)
{
    static const char key[] = "CMAKE_INSTALL_LIBDIR:PATH=";
    char line[512];
    FILE *f = fopen(SUB_BUILD "/CMakeCache.txt", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, sizeof(key) - 1) == 0) {
            snprintf(libdir, sizeof(libdir), "%s", line + sizeof(key) - 1);
            libdir[strcspn(libdir, "\n")] = '\0';
        }
    fclose(f);
    return libdir[0] != '\0' ? 0 : -1;
}

/* Configures and builds the tree with the prefix /usr (again: only what
 * changed is rebuilt), and installs it into a new DESTDIR. */
static int install_tree(void **state)
{
    static char out[1 << 16];
    char cmd[2048];

    snprintf(destdir, sizeof(destdir), "/tmp/asyncd-install-XXXXXX");
    if (mkdtemp(destdir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "cmake -S %s -B %s -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo "
             "-DASYNC_BUILD_TESTS=OFF -DASYNC_BUILD_BENCH=OFF > /dev/null && "
             "cmake --build %s -j2 > /dev/null && DESTDIR=%s cmake --install %s > /dev/null",
             SOURCE_DIR, SUB_BUILD, SUB_BUILD, destdir, SUB_BUILD);
    if (run(cmd, out, sizeof(out)) != 0) {
        fprintf(stderr, "%s\nfailed:\n%s\n", cmd, out);
        return -1;
    }
    return read_libdir();
}

static int remove_tree(void **state)
{
    char cmd[512], out[256];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", destdir);
    return run(cmd, out, sizeof(out)) == 0 ? 0 : -1;
}

/* ---- the tests ---- */

static void install_puts_the_config_in_etc_where_asyncd_and_the_units_look(void **state)
{
    char out[4096], cmd[1024];

    expect_file("/etc/asyncd/asyncd.json");
    if (exists(in_dest("/usr/etc")))
        fail_msg("something was installed in /usr/etc");
    snprintf(cmd, sizeof(cmd), "%s --help", in_dest("/usr/sbin/asyncd"));
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    if (strstr(out, "default FILE: /etc/asyncd/asyncd.json\n") == NULL)
        fail_msg("asyncd reads another default config:\n%s", out);
    expect_in_file("/usr/lib/systemd/system/asyncd.service",
                   "ExecStart=/usr/sbin/asyncd --config /etc/asyncd/asyncd.json\n");
    expect_in_file("/usr/lib/systemd/system/asyncd.service",
                   "ExecStartPre=/usr/sbin/asyncd --check-config /etc/asyncd/asyncd.json\n");
}

static void installed_asyncd_finds_its_library_without_ldconfig(void **state)
{
    char out[8192], cmd[1024], want[1024], found[1024], found_real[PATH_MAX],
        want_real[PATH_MAX];
    const char *at;

    unsetenv("LD_LIBRARY_PATH");
    /* Which libasync_io the loader picks: the installed one, not "not
     * found", nor one that happens to be on this machine. */
    snprintf(cmd, sizeof(cmd), "LD_TRACE_LOADED_OBJECTS=1 %s", in_dest("/usr/sbin/asyncd"));
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    if ((at = strstr(out, "libasync_io.so.0 => ")) == NULL)
        fail_msg("no libasync_io.so.0 in:\n%s", out);
    at += strlen("libasync_io.so.0 => ");
    snprintf(found, sizeof(found), "%.*s", (int)strcspn(at, " \n"), at);
    snprintf(want, sizeof(want), "%s/usr/%s/libasync_io.so.0", destdir, libdir);
    if (realpath(found, found_real) == NULL || realpath(want, want_real) == NULL ||
        strcmp(found_real, want_real) != 0)
        fail_msg("the installed asyncd does not find the installed %s:\n%s", want, out);
    snprintf(cmd, sizeof(cmd), "%s --version", in_dest("/usr/sbin/asyncd"));
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "asyncd "));
}

static void installed_config_serves_http_only_and_logs_in_var_log_asyncd(void **state)
{
    json_error_t e;
    json_t *c = json_load_file(in_dest("/etc/asyncd/asyncd.json"), 0, &e), *mods, *http;
    char want[1024];

    if (c == NULL)
        fail_msg("the installed config is not JSON: %d:%d: %s", e.line, e.column, e.text);
    snprintf(want, sizeof(want), "/usr/%s/asyncd/modules", libdir);
    assert_string_equal(json_string_value(json_object_get(c, "modules_dir")), want);
    strncat(want, "/http.so", sizeof(want) - strlen(want) - 1);
    expect_file(want);
    mods = json_object_get(c, "modules");
    /* echo is installed, so it would run with an empty config unless told not to */
    assert_true(json_is_false(json_object_get(json_object_get(mods, "echo"), "enabled")));
    http = json_object_get(mods, "http");
    assert_non_null(http);
    assert_false(json_is_false(json_object_get(http, "enabled")));
    assert_string_equal(json_string_value(json_object_get(http, "access_log")),
                        "/var/log/asyncd/access.log");
    assert_string_equal(json_string_value(json_object_get(http, "root")), "/usr/share/asyncd/www");
    expect_file("/usr/share/asyncd/www/index.html");
    json_decref(c);
}

static void installed_asyncd_accepts_the_installed_config(void **state)
{
    char out[8192], cmd[2048], want[1024];

    unsetenv("LD_LIBRARY_PATH");
    /* As installed: its absolute paths are not on this machine, but it
     * runs and reads the file (78 and the missing folders, not 127). */
    snprintf(cmd, sizeof(cmd), "%s --check-config %s", in_dest("/usr/sbin/asyncd"),
             in_dest("/etc/asyncd/asyncd.json"));
    if (run(cmd, out, sizeof(out)) == 127 || strstr(out, "shared librar") != NULL)
        fail_msg("the installed asyncd does not run:\n%s", out);
    /* Its absolute paths moved into the DESTDIR, as they will be on the
     * machine it is installed on: the daemon's part and http's check pass
     * (modules folder, root, a writable logs folder). */
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s && sed -e 's|\"/usr/|\"%s/usr/|g' -e 's|\"/var/|\"%s/var/|g' %s > %s",
             in_dest("/var/log/asyncd"), destdir, destdir, in_dest("/etc/asyncd/asyncd.json"),
             in_dest("/etc/asyncd/in-destdir.json"));
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd), "%s --check-config %s", in_dest("/usr/sbin/asyncd"),
             in_dest("/etc/asyncd/in-destdir.json"));
    if (run(cmd, out, sizeof(out)) != 0 || strstr(out, "configuration OK") == NULL)
        fail_msg("%s\n%s", cmd, out);
    snprintf(want, sizeof(want), "loaded module http 1.0 from %s/usr/%s/asyncd/modules/http.so",
             destdir, libdir);
    if (strstr(out, want) == NULL)
        fail_msg("the installed http module was not checked:\n%s", out);
}

static void install_adds_both_units_the_man_pages_and_the_logrotate_file(void **state)
{
    expect_in_file("/usr/lib/systemd/system/asyncd.service", "LogsDirectory=asyncd\n");
    expect_in_file("/usr/lib/systemd/system/asyncd@.service", "LogsDirectory=asyncd\n");
    expect_in_file("/usr/lib/systemd/system/asyncd@.service",
                   "ExecStart=/usr/sbin/asyncd --config /etc/asyncd/%i.json\n");
    expect_in_file("/usr/lib/systemd/system/asyncd@.service",
                   "ExecStartPre=/usr/sbin/asyncd --check-config /etc/asyncd/%i.json\n");
    expect_in_file("/usr/share/man/man8/asyncd.8", ".TH ASYNCD 8 ");
    expect_in_file("/usr/share/man/man8/asyncd.8", ".I /etc/asyncd/asyncd.json\n");
    expect_in_file("/usr/share/man/man5/asyncd.json.5", ".TH ASYNCD.JSON 5 ");
    expect_in_file("/usr/share/man/man5/asyncd.json.5", "/var/log/asyncd/access.log");
    expect_file("/usr/share/doc/async_io/README.md");
    /* logrotate's file beside the config, rotating where the config logs */
    expect_in_file("/etc/logrotate.d/asyncd", "/var/log/asyncd/*.log");
}

static void installed_man_pages_render_without_warnings(void **state)
{
    static const char *const pages[] = {"/usr/share/man/man8/asyncd.8",
                                        "/usr/share/man/man5/asyncd.json.5"};
    char out[8192], cmd[1024];
    size_t i;

    if (system("command -v groff > /dev/null 2>&1") != 0)
        SKIP("groff is not installed (make deps installs groff-base)");
    for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        snprintf(cmd, sizeof(cmd), "groff -man -ww -z %s", in_dest(pages[i]));
        if (run(cmd, out, sizeof(out)) != 0 || out[0] != '\0')
            fail_msg("%s:\n%s", pages[i], out);
    }
}

/* The build under test, configured with another prefix (/usr/local),
 * installed with --prefix: the config follows the prefix, so nothing is
 * written outside it. */
static void install_with_another_prefix_keeps_the_config_under_it(void **state)
{
    char out[4096], cmd[1024];

    snprintf(cmd, sizeof(cmd), "cmake --install %s --prefix %s/other", BUILD_DIR, destdir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    if (strstr(out, "Installing: /etc/") != NULL || strstr(out, "Installing: /usr/") != NULL)
        fail_msg("installed outside the prefix:\n%s", out);
    expect_file("/other/etc/asyncd/asyncd.json");
    expect_file("/other/sbin/asyncd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(install_puts_the_config_in_etc_where_asyncd_and_the_units_look),
        cmocka_unit_test(installed_asyncd_finds_its_library_without_ldconfig),
        cmocka_unit_test(installed_config_serves_http_only_and_logs_in_var_log_asyncd),
        cmocka_unit_test(installed_asyncd_accepts_the_installed_config),
        cmocka_unit_test(install_adds_both_units_the_man_pages_and_the_logrotate_file),
        cmocka_unit_test(installed_man_pages_render_without_warnings),
        cmocka_unit_test(install_with_another_prefix_keeps_the_config_under_it),
    };

    return skips_exit(cmocka_run_group_tests(tests, install_tree, remove_tree));
}
