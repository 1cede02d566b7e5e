/* Installed as a Debian package would install it: the tree configured
 * with -DCMAKE_INSTALL_PREFIX=/usr (in a build folder of its own, beside
 * this test), `cmake --install` into a DESTDIR, then the paths checked:
 * the config in /etc/asyncd (not /usr/etc), an asyncd that finds its
 * library where it was installed (no ldconfig, no LD_LIBRARY_PATH) and
 * accepts the installed config, which serves http only with its access log
 * in systemd's LogsDirectory, the two units and the man pages.  Then the
 * installed tree as a library: a program and a module built out of tree
 * against it, once with find_package(async_io) and once with pkg-config,
 * and run (the program on its own, the module in the installed asyncd). */
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

static char destdir[64];        /* the DESTDIR: a temp folder */
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
    static char buf[4][1024];
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

/* Writes text to destdir + path. */
static void write_in_dest(const char *path, const char *text)
{
    FILE *f = fopen(in_dest(path), "w");

    if (f == NULL)
        fail_msg("cannot write %s", in_dest(path));
    fputs(text, f);
    fclose(f);
}

/* The folder systemd.pc names for units, as the /usr build should have
 * used it (the tree's default when there is no systemd.pc). */
static const char *unit_dir(void)
{
    static char found[512];
    char out[512], prefix[512];

    if (found[0] == '\0') {
        if (run("pkg-config --variable=systemdsystemunitdir systemd", out, sizeof(out)) == 0 &&
            out[0] == '/' &&
            run("pkg-config --variable=prefix systemd", prefix, sizeof(prefix)) == 0 &&
            strcmp(prefix, "/usr\n") == 0)
            snprintf(found, sizeof(found), "%.*s", (int)strcspn(out, "\n"), out);
        else
            snprintf(found, sizeof(found), "/usr/lib/systemd/system");
    }
    return found;
}

static void expect_unit_line(const char *unit, const char *want)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", unit_dir(), unit);
    expect_in_file(path, want);
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
    expect_unit_line("asyncd.service",
                     "ExecStart=/usr/sbin/asyncd --config /etc/asyncd/asyncd.json\n");
    expect_unit_line("asyncd.service",
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

static void install_adds_the_units_the_man_pages_and_the_logrotate_file(void **state)
{
    /* in systemd.pc's unit folder, where systemd looks */
    expect_unit_line("asyncd.service", "LogsDirectory=asyncd\n");
    expect_unit_line("asyncd@.service", "LogsDirectory=asyncd\n");
    expect_unit_line("asyncd@.service",
                     "ExecStart=/usr/sbin/asyncd --config /etc/asyncd/%i.json\n");
    expect_unit_line("asyncd@.service",
                     "ExecStartPre=/usr/sbin/asyncd --check-config /etc/asyncd/%i.json\n");
    /* socket activation, on the installed config's http address */
    expect_unit_line("asyncd.socket", "ListenStream=127.0.0.1:8080\n");
    expect_in_file("/etc/asyncd/asyncd.json", "\"127.0.0.1:8080\"");
    expect_in_file("/usr/share/man/man8/asyncd.8", ".TH ASYNCD 8 ");
    expect_in_file("/usr/share/man/man8/asyncd.8", ".I /etc/asyncd/asyncd.json\n");
    expect_in_file("/usr/share/man/man5/asyncd.json.5", ".TH ASYNCD.JSON 5 ");
    expect_in_file("/usr/share/man/man5/asyncd.json.5", "/var/log/asyncd/access.log");
    expect_file("/usr/share/doc/async_io/README.md");
    expect_file("/usr/share/doc/async_io/examples/haproxy/asyncd.cfg");
    expect_file("/usr/share/doc/async_io/examples/haproxy/instance.json");
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

/* ---- the installed tree as a library ---- */

/* A program on the runtime alone: one fiber spawns and joins another. */
static const char program_c[] =
    "#include <async_io.h>\n"
    "#include <stdint.h>\n"
    "#include <stdio.h>\n"
    "static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }\n"
    "static void *first(void *arg)\n"
    "{\n"
    "    async_task *t = async_spawn(add_one, (void *)41);\n"
    "    void *r = NULL;\n"
    "    if (t != NULL && async_join(t, &r) == 0)\n"
    "        printf(\"a fiber says %ld on async_io %s (headers %d.%d.%d)\\n\", (long)(intptr_t)r,\n"
    "               async_version(), ASYNC_IO_VERSION_MAJOR, ASYNC_IO_VERSION_MINOR,\n"
    "               ASYNC_IO_VERSION_PATCH);\n"
    "    return NULL;\n"
    "}\n"
    "int main(void) { return async_runtime(NULL, first, NULL) == 0 ? 0 : 1; }\n";

/* A module that says it runs (calling jansson, which only the module's
 * entries bring), then stops asyncd; hello_words is not static, so only
 * hidden visibility keeps it out of the exported names. */
static const char module_c[] =
    "#include <async_io.h>\n"
    "#include <async_io/module.h>\n"
    "#include <signal.h>\n"
    "#include <unistd.h>\n"
    "const char *hello_words(void) { return \"running\"; }\n"
    "static int run(async_module_host *host, const json_t *config)\n"
    "{\n"
    "    async_module_log(host, ASYNC_LOG_NOTICE, \"%s on async_io %s with %zu keys\",\n"
    "                     hello_words(), async_version(), json_object_size(config));\n"
    "    kill(getpid(), SIGTERM);\n"
    "    while (async_sleep_ms(1000) == 0)\n"
    "        ;\n"
    "    return 0;\n"
    "}\n"
    "const struct async_module async_module = {\n"
    "    .abi_version = ASYNC_MODULE_ABI_VERSION, .name = \"hello\", .version = \"1.0\",\n"
    "    .run = run,\n"
    "};\n";

/* The consumer's CMakeLists.txt: a version it must refuse, then the
 * package with both components, each target once. */
static const char consumer_cmake[] =
    "cmake_minimum_required(VERSION 3.20)\n"
    "project(consumer C)\n"
    "find_package(async_io 99 QUIET)\n"
    "if(async_io_FOUND)\n"
    "  message(FATAL_ERROR \"async_io 99 accepted\")\n"
    "endif()\n"
    "find_package(async_io 0.1 REQUIRED COMPONENTS module static)\n"
    "message(STATUS \"async_io ${async_io_VERSION} from ${async_io_DIR}\")\n"
    "message(STATUS \"modules go to ${ASYNC_IO_MODULE_DIR}\")\n"
    "add_executable(program program.c)\n"
    "target_link_libraries(program PRIVATE async_io::async_io)\n"
    "target_link_options(program PRIVATE -Wl,--no-as-needed)\n"
    "add_executable(program_static program.c)\n"
    "target_link_libraries(program_static PRIVATE async_io::async_io_static)\n"
    "add_library(hello MODULE hello.c)\n"
    "target_link_libraries(hello PRIVATE async_io::module)\n"
    "set_target_properties(hello PROPERTIES PREFIX \"\")\n";

/* The consumer's folder, with its sources. */
static void write_consumer(const char *name)
{
    char path[512], cmd[1024], out[1024];

    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/modules", in_dest(name), in_dest(name));
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    snprintf(path, sizeof(path), "%s/program.c", name);
    write_in_dest(path, program_c);
    snprintf(path, sizeof(path), "%s/hello.c", name);
    write_in_dest(path, module_c);
    snprintf(path, sizeof(path), "%s/CMakeLists.txt", name);
    write_in_dest(path, consumer_cmake);
}

/* The shared objects a binary asks the loader for: libasync_io, never
 * libev or jansson (a program on the runtime needs neither).  The binary
 * is linked with --no-as-needed (gcc may default to --as-needed), so
 * every library its link line named shows here. */
static void expect_needs_only_async_io(const char *binary)
{
    char cmd[1024], out[4096];

    snprintf(cmd, sizeof(cmd), "readelf -d %s", binary);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    if (strstr(out, "[libasync_io.so.0]") == NULL || strstr(out, "libjansson") != NULL ||
        strstr(out, "libev") != NULL)
        fail_msg("%s should need libasync_io and neither jansson nor libev:\n%s", binary, out);
}

static void expect_program_runs(const char *cmd)
{
    char out[4096], want[256];

    snprintf(want, sizeof(want), "a fiber says 42 on async_io %s (headers %s)\n", VERSION, VERSION);
    if (run(cmd, out, sizeof(out)) != 0 || strcmp(out, want) != 0)
        fail_msg("%s:\n%s", cmd, out);
}

/* nm -D --defined-only lists async_module alone. */
static void expect_exports_async_module_alone(const char *so)
{
    char cmd[1024], out[8192];

    snprintf(cmd, sizeof(cmd), "nm -D --defined-only %s | awk '{print $NF}'", so);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    if (strcmp(out, "async_module\n") != 0)
        fail_msg("%s exports more (or less) than async_module:\n%s", so, out);
}

/* The module in the installed asyncd, alone in a modules folder: it logs
 * that it runs and stops the daemon with SIGTERM, which drains and exits
 * (within a bound: a daemon that does not is killed, and the test fails). */
static void expect_module_runs_in_installed_asyncd(const char *name)
{
    char cfg[512], cmd[2048], out[8192], want[256];

    snprintf(cfg, sizeof(cfg), "%s/asyncd.json", name);
    write_in_dest(cfg, "{ \"modules_dir\": \"modules\", \"modules\": { \"hello\": {} } }\n");
    snprintf(cmd, sizeof(cmd),
             "env -u NOTIFY_SOCKET -u LD_LIBRARY_PATH timeout -s KILL 60 %s --config %s",
             in_dest("/usr/sbin/asyncd"), in_dest(cfg));
    if (run(cmd, out, sizeof(out)) != 0)
        fail_msg("%s:\n%s", cmd, out);
    snprintf(want, sizeof(want), "hello: running on async_io %s with 0 keys", VERSION);
    if (strstr(out, want) == NULL)
        fail_msg("the module did not run (no '%s'):\n%s", want, out);
}

static void installed_package_builds_a_program_and_a_module_with_find_package(void **state)
{
    static char out[1 << 16];
    char cmd[4096], want[1024], path[1024];

    write_consumer("/cmake");
    snprintf(cmd, sizeof(cmd),
             "cmake -S %s -B %s/build -DCMAKE_PREFIX_PATH=%s/usr -DCMAKE_BUILD_TYPE=Release && "
             "cmake --build %s/build",
             in_dest("/cmake"), in_dest("/cmake"), destdir, in_dest("/cmake"));
    if (run(cmd, out, sizeof(out)) != 0)
        fail_msg("%s\n%s", cmd, out);
    snprintf(want, sizeof(want), "async_io %s from %s/usr/%s/cmake/async_io\n", VERSION, destdir,
             libdir);
    if (strstr(out, want) == NULL)
        fail_msg("found another async_io (not '%s'):\n%s", want, out);
    snprintf(want, sizeof(want), "modules go to %s/usr/%s/asyncd/modules\n", destdir, libdir);
    if (strstr(out, want) == NULL)
        fail_msg("ASYNC_IO_MODULE_DIR is not '%s':\n%s", want, out);

    /* The shared library's program: found through the run path CMake
     * sets, needing nothing beyond libasync_io. */
    snprintf(path, sizeof(path), "%s/build/program", in_dest("/cmake"));
    expect_needs_only_async_io(path);
    snprintf(cmd, sizeof(cmd), "env -u LD_LIBRARY_PATH %s", path);
    expect_program_runs(cmd);
    /* The static library's: libev, threads and dl come with the target. */
    snprintf(cmd, sizeof(cmd), "%s/build/program_static", in_dest("/cmake"));
    expect_program_runs(cmd);

    snprintf(path, sizeof(path), "%s/build/hello.so", in_dest("/cmake"));
    expect_exports_async_module_alone(path);
    snprintf(cmd, sizeof(cmd), "cp %s %s/modules/", path, in_dest("/cmake"));
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    expect_module_runs_in_installed_asyncd("/cmake");
}

static void installed_pkg_config_files_build_a_program_and_a_module(void **state)
{
    static char out[1 << 16];
    char env[2048], cmd[4096], path[1024];

    write_consumer("/pc");
    /* The tree as it will be on the machine, seen from the DESTDIR: the
     * sysroot prefixes its -I and -L, jansson is the system's. */
    snprintf(env, sizeof(env),
             "PKG_CONFIG_SYSROOT_DIR=%s PKG_CONFIG_PATH=%s/usr/%s/pkgconfig "
             "PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1",
             destdir, destdir, libdir);

    /* async_io.pc: the runtime alone, jansson nowhere. */
    snprintf(cmd, sizeof(cmd), "%s pkg-config --print-requires --cflags --libs async_io", env);
    if (run(cmd, out, sizeof(out)) != 0 || strstr(out, "jansson") != NULL)
        fail_msg("%s:\n%s", cmd, out);
    snprintf(cmd, sizeof(cmd), "%s pkg-config --print-requires async_io_module", env);
    if (run(cmd, out, sizeof(out)) != 0 || strstr(out, "jansson") == NULL ||
        strstr(out, "async_io") == NULL)
        fail_msg("async_io_module.pc should require async_io and jansson:\n%s", out);
    snprintf(cmd, sizeof(cmd), "%s pkg-config --variable=moduledir async_io_module", env);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    snprintf(path, sizeof(path), "/usr/%s/asyncd/modules", libdir);
    if (strstr(out, path) == NULL)
        fail_msg("moduledir is not %s: %s", path, out);

    snprintf(path, sizeof(path), "%s/program", in_dest("/pc"));
    snprintf(cmd, sizeof(cmd), "cd %s && cc -Wl,--no-as-needed -o program program.c "
             "$(%s pkg-config --cflags --libs async_io)",
             in_dest("/pc"), env);
    if (run(cmd, out, sizeof(out)) != 0)
        fail_msg("%s\n%s", cmd, out);
    expect_needs_only_async_io(path);
    snprintf(cmd, sizeof(cmd), "LD_LIBRARY_PATH=%s/usr/%s %s", destdir, libdir, path);
    expect_program_runs(cmd);

    snprintf(cmd, sizeof(cmd),
             "cd %s && cc -shared -fPIC -o modules/hello.so hello.c "
             "$(%s pkg-config --cflags --libs async_io_module) && readelf -d modules/hello.so",
             in_dest("/pc"), env);
    if (run(cmd, out, sizeof(out)) != 0 || strstr(out, "[libjansson") == NULL)
        fail_msg("the module does not link jansson through async_io_module:\n%s\n%s", cmd, out);
    snprintf(path, sizeof(path), "%s/modules/hello.so", in_dest("/pc"));
    expect_exports_async_module_alone(path);
    expect_module_runs_in_installed_asyncd("/pc");
}

/* The tree's own modules, as installed, export async_module alone. */
static void installed_modules_export_async_module_alone(void **state)
{
    static const char *const mods[] = {"echo.so", "http.so"};
    char path[1024];
    size_t i;

    for (i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        snprintf(path, sizeof(path), "%s/usr/%s/asyncd/modules/%s", destdir, libdir, mods[i]);
        expect_exports_async_module_alone(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(install_puts_the_config_in_etc_where_asyncd_and_the_units_look),
        cmocka_unit_test(installed_asyncd_finds_its_library_without_ldconfig),
        cmocka_unit_test(installed_config_serves_http_only_and_logs_in_var_log_asyncd),
        cmocka_unit_test(installed_asyncd_accepts_the_installed_config),
        cmocka_unit_test(install_adds_the_units_the_man_pages_and_the_logrotate_file),
        cmocka_unit_test(installed_man_pages_render_without_warnings),
        cmocka_unit_test(install_with_another_prefix_keeps_the_config_under_it),
        cmocka_unit_test(installed_modules_export_async_module_alone),
        cmocka_unit_test(installed_package_builds_a_program_and_a_module_with_find_package),
        cmocka_unit_test(installed_pkg_config_files_build_a_program_and_a_module),
    };

    return skips_exit(cmocka_run_group_tests(tests, install_tree, remove_tree));
}
