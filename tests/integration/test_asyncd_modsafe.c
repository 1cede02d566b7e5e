/* Module files as asyncd must treat them.  Changed under a running asyncd:
 * cp over a loaded module (the same bytes, another module's, a rebuild),
 * truncation to zero, each while a client thread keeps requesting from
 * http and echo, with and without a SIGHUP after.  The daemon runs private
 * copies of its modules: nothing done to the files touches the running
 * code, and a reload acts on what the bytes say.  And unsafe to load
 * (strict_modules): writable by others, owned by another user, or not
 * named after the module they declare.  Waits are bounded and on the log
 * or on counts of answered requests; nothing sleeps to synchronise. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

#define HTTP_LINE "http: listening on 127.0.0.1:0 (port "
#define ECHO_LINE "echo: listening on 127.0.0.1:0 (port "
#define AFTER 300 /* answered requests, of each module, that must follow a change */

/* ---- files ---- */

static void *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n + 64);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* What cp does to an existing file: truncate it in place, then write. */
static void overwrite(const char *name, const void *bytes, size_t len)
{
    char path[512];
    int fd;

    path_of(path, sizeof(path), name);
    fd = open(path, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0); /* whatever the umask */
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void cp(const char *src, const char *name)
{
    size_t len;
    void *bytes = slurp(src, &len);

    overwrite(name, bytes, len);
    free(bytes);
}

/* ---- clients ---- */

static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET /hello on fd (kept alive): whether a 200 with the body came. */
static bool hello_on(int fd)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[2048];
    size_t got = 0;
    ssize_t n;

    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
        return false;
    while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
        const char *end;

        got += (size_t)n;
        buf[got] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL && strstr(end, "Hello!") != NULL)
            return strncmp(buf, "HTTP/1.1 200", 12) == 0;
    }
    return false;
}

static bool echo_on(int fd)
{
    char buf[6] = {0};

    return send(fd, "hello", 5, MSG_NOSIGNAL) == 5 && recv(fd, buf, 5, MSG_WAITALL) == 5 &&
           strcmp(buf, "hello") == 0;
}

/* The load: a thread that requests from both modules, each on a new
 * connection, until told to stop, counting what was answered and what
 * was not (per module). */
static struct load {
    pthread_t thread;
    _Atomic bool stop;
    _Atomic int http_port, echo_port;
    _Atomic long http_ok, http_failed, echo_ok, echo_failed;
} L;

static void *load_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&L.stop)) {
        int fd = dial(atomic_load(&L.http_port));
        bool ok = fd >= 0 && hello_on(fd);

        if (fd >= 0)
            close(fd);
        atomic_fetch_add(ok ? &L.http_ok : &L.http_failed, 1);
        fd = dial(atomic_load(&L.echo_port));
        ok = fd >= 0 && echo_on(fd);
        if (fd >= 0)
            close(fd);
        atomic_fetch_add(ok ? &L.echo_ok : &L.echo_failed, 1);
    }
    return NULL;
}

static void alive(struct daemon *d)
{
    int status;

    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
        live = 0;
        read_log_to_eof(d, 2000);
        fail_msg("asyncd died (%s %d); log:\n%s", WIFSIGNALED(status) ? "signal" : "exit",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), d->log);
    }
}

/* Waits (10 s bound) until both modules answered AFTER more requests,
 * reading the daemon's log meanwhile and checking it is alive. */
static void answered_after(struct daemon *d)
{
    long h = atomic_load(&L.http_ok) + AFTER, e = atomic_load(&L.echo_ok) + AFTER;
    int64_t until = now_ms() + 10000;

    while ((atomic_load(&L.http_ok) < h || atomic_load(&L.echo_ok) < e) && now_ms() < until) {
        alive(d);
        pump(d, 5);
    }
    alive(d);
    if (atomic_load(&L.http_ok) < h || atomic_load(&L.echo_ok) < e)
        fail_msg("the load stalled (http %ld ok %ld failed, echo %ld ok %ld failed); log:\n%s",
                 atomic_load(&L.http_ok), atomic_load(&L.http_failed), atomic_load(&L.echo_ok),
                 atomic_load(&L.echo_failed), d->log);
}

/* ---- the daemon ---- */

/* Two connections opened before the change, checked after it. */
static int kept_http, kept_echo;

static void start(struct daemon *d)
{
    cp(HTTP_SO, "modules/http.so");
    cp(ECHO_SO, "modules/echo.so");
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
               " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\n"
               "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"body\":\"Hello!\"}]},\n"
               "  \"echo\":{\"listen\":[\"127.0.0.1:0\"]}}}\n");
    daemon_start(d, "asyncd.json", NULL);
    wait_log(d, "ready: 2 module(s) running");
    memset(&L, 0, sizeof(L));
    atomic_store(&L.http_port, atoi(wait_log(d, HTTP_LINE) + strlen(HTTP_LINE)));
    atomic_store(&L.echo_port, atoi(wait_log(d, ECHO_LINE) + strlen(ECHO_LINE)));
    kept_http = dial(atomic_load(&L.http_port));
    kept_echo = dial(atomic_load(&L.echo_port));
    assert_true(hello_on(kept_http));
    assert_true(echo_on(kept_echo));
    assert_int_equal(pthread_create(&L.thread, NULL, load_loop, NULL), 0);
    answered_after(d);
}

/* Stops the load; every request it made was answered. */
static void stop_load(struct daemon *d, bool http_may_fail)
{
    atomic_store(&L.stop, true);
    pthread_join(L.thread, NULL);
    if (atomic_load(&L.echo_failed) != 0 || (!http_may_fail && atomic_load(&L.http_failed) != 0))
        fail_msg("requests failed under load: http %ld, echo %ld; log:\n%s",
                 atomic_load(&L.http_failed), atomic_load(&L.echo_failed), d->log);
}

static void reload(struct daemon *d)
{
    assert_int_equal(kill(d->pid, SIGHUP), 0);
    wait_next(d, "reloading ");
    wait_next(d, "reloaded: 2 module(s) running");
}

static void finish(struct daemon *d)
{
    close(kept_http);
    close(kept_echo);
    assert_int_equal(daemon_stop(d, SIGTERM), 0);
    assert_null(strstr(d->log, "unloaded module"));
    assert_null(strstr(d->log, "will not name it")); /* every copy found in the address table */
}

static int setup(void **state)
{
    char path[600];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/asyncd-modsafe-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/modules", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (L.thread != 0 && !atomic_load(&L.stop)) {
        atomic_store(&L.stop, true);
        pthread_join(L.thread, NULL);
    }
    remove_test_dir();
    return 0;
}

/* ---- the tests ---- */

/* cp of the same build over each loaded module: nothing happens, and a
 * reload restarts nothing (content decides, not inode or mtime). */
static void cp_of_the_same_bytes_changes_nothing_even_on_reload(void **state)
{
    struct daemon d;

    (void)state;
    start(&d);
    cp(HTTP_SO, "modules/http.so");
    answered_after(&d);
    cp(ECHO_SO, "modules/echo.so");
    answered_after(&d);
    reload(&d);
    wait_log(&d, "module http: ");
    assert_non_null(strstr(d.log, "http.so was rewritten with the same bytes; not restarted"));
    assert_non_null(strstr(d.log, "echo.so was rewritten with the same bytes; not restarted"));
    answered_after(&d);
    stop_load(&d, false);
    assert_null(strstr(d.log, "changed; loading"));
    assert_true(hello_on(kept_http)); /* the connections from before */
    assert_true(echo_on(kept_echo));
    finish(&d);
}

/* Truncation to zero under load, then a reload: the files no longer load,
 * the running modules stay. */
static void truncation_to_zero_leaves_the_running_modules_alone(void **state)
{
    struct daemon d;

    (void)state;
    start(&d);
    overwrite("modules/http.so", "", 0);
    answered_after(&d);
    overwrite("modules/echo.so", "", 0);
    answered_after(&d);
    reload(&d);
    wait_log(&d, "module http: ");
    assert_non_null(strstr(d.log, "module http: "));
    assert_non_null(strstr(d.log, "http.so changed but cannot be loaded; the running module stays"));
    assert_non_null(strstr(d.log, "echo.so changed but cannot be loaded; the running module stays"));
    answered_after(&d);
    stop_load(&d, false);
    assert_true(hello_on(kept_http));
    assert_true(echo_on(kept_echo));
    finish(&d);
}

/* echo.so copied over http.so: the file now declares 'echo', not what
 * its name says; the reload skips it and http keeps serving. */
static void cp_of_another_module_is_refused_and_the_running_one_stays(void **state)
{
    struct daemon d;

    (void)state;
    start(&d);
    cp(ECHO_SO, "modules/http.so");
    answered_after(&d);
    reload(&d);
    assert_non_null(strstr(d.log, "http.so: it declares 'echo': a module's file must be echo.so"));
    assert_non_null(strstr(d.log, "http.so changed but cannot be loaded; the running module stays"));
    answered_after(&d);
    stop_load(&d, false);
    assert_true(hello_on(kept_http));
    assert_true(echo_on(kept_echo));
    finish(&d);
}

/* Other bytes declaring the same name (a rebuild: here the build with
 * bytes appended, which the loader ignores): nothing until the reload,
 * which replaces http and leaves echo and its connections alone. */
static void a_rebuilt_module_is_replaced_on_reload_only(void **state)
{
    struct daemon d;
    size_t len;
    char *bytes = slurp(HTTP_SO, &len);
    int port;

    (void)state;
    start(&d);
    memcpy(bytes + len, "rebuilt", 7);
    overwrite("modules/http.so", bytes, len + 7);
    free(bytes);
    answered_after(&d);
    assert_null(strstr(d.log, "changed; loading"));
    wait_next(&d, HTTP_LINE); /* the first one */
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "module http: ");
    wait_next(&d, "http.so changed; loading its new bytes");
    wait_next(&d, "loaded module http");
    port = atoi(wait_next(&d, HTTP_LINE) + strlen(HTTP_LINE)); /* the new generation */
    wait_next(&d, "reloaded: 2 module(s) running");
    atomic_store(&L.http_port, port);
    answered_after(&d);
    stop_load(&d, true); /* http restarted: its requests meanwhile may fail */
    assert_true(echo_on(kept_echo)); /* echo was not touched */
    assert_null(strstr(d.log, "echo.so was rewritten"));
    close(kept_http);
    close(kept_echo);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}


/* ---- strict_modules ---- */

static const char echo_only[] =
    "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
    " \"modules\":{\"echo\":{\"listen\":[\"127.0.0.1:0\"]}}}\n";

static const char both[] =
    "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
    " \"modules\":{\"echo\":{\"listen\":[\"127.0.0.1:0\"]},\n"
    "  \"http\":{\"listen\":[\"127.0.0.1:0\"]}}}\n";

static int check(const char *cfgname, char *out, size_t len)
{
    char cfg[600];

    path_of(cfg, sizeof(cfg), cfgname);
    return run_to_end("--check-config", cfg, out, len);
}

static void chmod_in(const char *name, mode_t mode)
{
    char path[512];

    path_of(path, sizeof(path), name);
    assert_int_equal(chmod(path, mode), 0);
}

/* Files and folders others can write, or owned by another user, are
 * refused: at start (logged, in STATUS=, the others load) and by
 * --check-config (a problem); strict_modules: false lets them load. */
static void strict_modules_refuses_what_others_can_write(void **state)
{
    char out[8192];
    struct daemon d;

    (void)state;
    cp(ECHO_SO, "modules/echo.so");
    cp(HTTP_SO, "modules/http.so");
    chmod_in("modules/http.so", 0664);
    write_file("asyncd.json", both);
    assert_int_equal(check("asyncd.json", out, sizeof(out)), 78);
    assert_non_null(strstr(out, "modules/http.so: the file is writable by its group (mode 0664; "
                                "strict_modules)"));
    write_file("asyncd.json", echo_only); /* modules.http would name a module not loaded */
    daemon_start(&d, "asyncd.json", NULL);
    wait_log(&d, "skipping module ");
    wait_log(&d, "ready: 1 module(s) running; refused: http.so (the file is writable by its group");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    write_file("asyncd.json", both);

    chmod_in("modules/http.so", 0646);
    assert_int_equal(check("asyncd.json", out, sizeof(out)), 78);
    assert_non_null(strstr(out, "http.so: the file is writable by others (mode 0646"));
    chmod_in("modules/http.so", 0644);
    assert_int_equal(check("asyncd.json", out, sizeof(out)), 0);
    if (geteuid() == 0) {
        char path[512];

        path_of(path, sizeof(path), "modules/http.so");
        assert_int_equal(chown(path, 1, 1), 0);
        assert_int_equal(check("asyncd.json", out, sizeof(out)), 78);
        assert_non_null(strstr(out, "http.so: the file is owned by uid 1, neither root nor "
                                    "asyncd's uid 0"));
        assert_int_equal(chown(path, 0, 0), 0);
    }

    chmod_in("modules", 0770); /* the folder: every file in it */
    assert_int_equal(check("asyncd.json", out, sizeof(out)), 78);
    assert_non_null(strstr(out, "echo.so: the modules directory "));
    assert_non_null(strstr(out, "is writable by its group (mode 0770"));

    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"strict_modules\":false,\n"
               " \"modules\":{\"echo\":{\"listen\":[\"127.0.0.1:0\"]},\n"
               "  \"http\":{\"listen\":[\"127.0.0.1:0\"]}}}\n");
    chmod_in("modules/http.so", 0666);
    assert_int_equal(check("asyncd.json", out, sizeof(out)), 0);
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\n \"strict_modules\":\"no\"}\n");
    chmod_in("modules", 0700);
    assert_int_equal(check("asyncd.json", out, sizeof(out)), 78);
    assert_non_null(strstr(out, "asyncd.json:2:2: strict_modules: must be true or false"));
    if (geteuid() != 0)
        SKIP("the ownership part needs root");
}

/* A reload that would load a refused file is rejected whole; the running
 * modules go on; once the file is safe the same reload goes through. */
static void a_reload_that_would_load_a_refused_module_is_rejected(void **state)
{
    struct daemon d;
    int port;

    (void)state;
    cp(ECHO_SO, "modules/echo.so");
    write_file("asyncd.json", echo_only);
    daemon_start(&d, "asyncd.json", NULL);
    port = atoi(wait_log(&d, ECHO_LINE) + strlen(ECHO_LINE));
    kept_echo = dial(port);
    assert_true(echo_on(kept_echo));
    cp(HTTP_SO, "modules/http.so");
    chmod_in("modules/http.so", 0666);
    write_file("asyncd.json", both);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "http.so: the file is writable by others (mode 0666; strict_modules)");
    wait_next(&d, "reload rejected");
    assert_true(echo_on(kept_echo));
    chmod_in("modules/http.so", 0644);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "loaded module http");
    wait_next(&d, "reloaded: 2 module(s) running");
    assert_true(echo_on(kept_echo));
    close(kept_echo);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* A backup beside the real file (http-old.so sorts before http.so) is
 * skipped with a warning, at start and on reload; http.so is loaded. */
static void a_file_not_named_after_its_module_is_skipped(void **state)
{
    struct daemon d;

    (void)state;
    cp(HTTP_SO, "modules/http-old.so");
    cp(HTTP_SO, "modules/http.so");
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"log_level\":\"info\",\n"
               " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"]}}}\n");
    daemon_start(&d, "asyncd.json", NULL);
    wait_log(&d, "[warning] asyncd: skipping module ");
    wait_log(&d, "http-old.so: it declares 'http': a module's file must be http.so");
    /* loaded module http 1.0 from DIR/modules/http.so: the only line ending so */
    wait_log(&d, "/modules/http.so\n");
    assert_null(strstr(d.log, "/modules/http-old.so\n"));
    wait_log(&d, "ready: 1 module(s) running; refused: http-old.so (it declares 'http'");
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "reloaded: 1 module(s) running; refused: http-old.so");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cp_of_the_same_bytes_changes_nothing_even_on_reload,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(truncation_to_zero_leaves_the_running_modules_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(cp_of_another_module_is_refused_and_the_running_one_stays,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_rebuilt_module_is_replaced_on_reload_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(strict_modules_refuses_what_others_can_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_reload_that_would_load_a_refused_module_is_rejected,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_not_named_after_its_module_is_skipped, setup,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
