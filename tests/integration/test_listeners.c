/* The daemon's listening sockets (daemon/listeners.c) and the drain of a
 * retiring module generation (runtime/http's shutdown), as a client sees
 * them across reloads: a connect waiting in the accept queue is answered
 * by the next generation, connects in a loop are never refused, a
 * keep-alive client gets its answer with Connection: close rather than a
 * reset, two modules cannot share an address, and an address no longer
 * listed is closed once the reload is done. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IO_MS 5000
#define PORT_LINE "http: listening on 127.0.0.1:0 (port "

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/asyncd-listeners-XXXXXX");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    remove_test_dir();
    return 0;
}

static void link_module(const char *src, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/modules/%s", dir, name);
    assert_int_equal(symlink(src, path), 0);
}

/* modules/http.so: the build's bytes plus tail extra bytes (0: the same
 * bytes), written beside and renamed in, as an install does. */
static void install_http(int tail)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd), "cp '%s' '%s/modules/.http.tmp' && head -c %d /dev/zero >> "
             "'%s/modules/.http.tmp' && mv '%s/modules/.http.tmp' '%s/modules/http.so'",
             HTTP_SO, dir, tail, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
}

/* A config whose header timeout follows the body, so that a new body
 * restarts the module with a new generation (a new route body alone the
 * http module applies in place, keeping its generation). */
static void write_http_config(const char *body, const char *listen)
{
    char text[2048];
    unsigned sum = 0;
    const char *p;

    for (p = body; *p != '\0'; p++)
        sum += (unsigned char)*p;
    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[%s],\"header_timeout_ms\":%u,\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"body\":\"%s\"}]}}}\n",
             listen, 10000 + sum % 1000, body);
    write_file("asyncd.json", text);
}

static void start_http(const char *body)
{
    install_http(0);
    write_http_config(body, "\"127.0.0.1:0\"");
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    wait_next(&D, "ready: 1 module(s) running");
}

static void reload_and_wait(void)
{
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_next(&D, "reloaded: ");
}


/* Reads a line the lazy fixture writes (bounded); its length, or -1. */
static int read_line(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int64_t until = now_ms() + ms;
    size_t len = 0;
    ssize_t n;

    while (len + 1 < cap && poll(&p, 1, left_ms(until)) > 0) {
        n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (buf[len - 1] == '\n')
            break;
    }
    buf[len] = '\0';
    return len > 0 && buf[len - 1] == '\n' ? (int)len : -1;
}

/* ---- 1. a connect queued while no generation accepts ---- */

static void write_lazy_config(const char *tag, int after_ms)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"modules\":{\"lazy\":{\"listen\":\"127.0.0.1:0\",\"tag\":\"%s\","
             "\"accept_after_ms\":%d}}}\n", tag, after_ms);
    write_file("asyncd.json", text);
}

/* The new generation takes the socket but accepts only 1.5 s later; a
 * client that connects after the old one is gone waits in the accept
 * queue, and the new one answers it. */
static void listeners_a_connect_queued_during_a_reload_is_answered_by_the_next_generation(
    void **state)
{
    char line[64];
    int fd, port;

    (void)state;
    link_module(LAZY_SO, "lazy.so");
    write_lazy_config("a", 0);
    daemon_start(&D, "asyncd.json", NULL);
    port = number_after(&D, "lazy: tag a listening on port ");
    wait_next(&D, "tag a accepting");
    fd = connect_ip("127.0.0.1", port);
    assert_true(fd >= 0);
    assert_true(read_line(fd, line, sizeof(line), IO_MS) > 0);
    assert_string_equal(line, "a\n");
    close(fd);

    write_lazy_config("b", 1500);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    /* the same socket; the old generation is gone before b accepts */
    assert_int_equal(number_after(&D, "lazy: tag b listening on port "), port);
    /* (searched from the start: the daemon may log the unload before the
     * new generation's port line) */
    wait_log(&D, "unloaded the previous generation of module lazy");
    if (strstr(D.log + D.mark, "tag b accepting") != NULL)
        SKIP("the new generation accepted before the old one was unloaded: a machine "
             "too slow to show the queue");
    fd = connect_ip("127.0.0.1", port);
    if (fd < 0)
        fail_msg("connect during the reload: %s; log:\n%s", strerror(errno), D.log);
    wait_next(&D, "tag b accepting");
    if (read_line(fd, line, sizeof(line), IO_MS) < 0)
        fail_msg("the queued connection was not answered (got '%s'); log:\n%s", line, D.log);
    assert_string_equal(line, "b\n");
    close(fd);
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

/* ---- 2. connects in a loop across reloads ---- */

struct loop {
    int port;
    atomic_bool stop;
    long ok, refused, broken;
    char first_broken[256];
};

/* One request on a new connection (Connection: close): 0 for a whole 200,
 * 1 refused, 2 anything else (reset, EOF, another status). */
static int one_request(int port, char *why, size_t whylen)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[1024];
    size_t len = 0;
    ssize_t n;
    int fd = connect_ip("127.0.0.1", port);

    if (fd < 0) {
        snprintf(why, whylen, "connect: %s", strerror(errno));
        return errno == ECONNREFUSED ? 1 : 2;
    }
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        snprintf(why, whylen, "send: %s", strerror(errno));
        close(fd);
        return 2;
    }
    while (len + 1 < sizeof(buf) && (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
        len += (size_t)n;
    n = n < 0 ? -errno : 0;
    close(fd);
    buf[len] = '\0';
    if (strncmp(buf, "HTTP/1.1 200 ", 13) == 0 && strstr(buf, "\r\n\r\ngen-") != NULL)
        return 0;
    snprintf(why, whylen, "%s after %zu bytes: %.80s", n < 0 ? strerror((int)-n) : "EOF", len,
             buf);
    return 2;
}

static void *connect_loop(void *arg)
{
    struct loop *l = arg;
    char why[256];
    int rc;

    while (!atomic_load(&l->stop)) {
        rc = one_request(l->port, why, sizeof(why));
        if (rc == 0) {
            l->ok++;
            continue;
        }
        if (rc == 1)
            l->refused++;
        else
            l->broken++;
        if (l->first_broken[0] == '\0')
            snprintf(l->first_broken, sizeof(l->first_broken), "%s", why);
    }
    return NULL;
}

/* 10 config-changing reloads and 10 replacements of http.so while two
 * clients connect in a loop: every connect answered with a 200. */
static void listeners_reloads_and_replacements_under_a_connect_loop_refuse_nothing(
    void **state)
{
    struct loop l[2] = {0};
    pthread_t t[2];
    char body[32];
    long ok = 0, refused = 0, broken = 0;
    int i;

    (void)state;
    start_http("gen-0");
    for (i = 0; i < 2; i++) {
        l[i].port = D.port;
        assert_int_equal(pthread_create(&t[i], NULL, connect_loop, &l[i]), 0);
    }
    for (i = 1; i <= 20; i++) {
        snprintf(body, sizeof(body), "gen-%d", i);
        if (i % 2 == 0) {
            write_http_config(body, "\"127.0.0.1:0\"");
        } else {
            install_http(1 + (i / 2) % 2); /* bytes other than the running ones */
        }
        reload_and_wait();
        if (i % 2 == 1)
            assert_non_null(strstr(D.log, "changed; loading its new bytes"));
    }
    for (i = 0; i < 2; i++) {
        atomic_store(&l[i].stop, true);
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        refused += l[i].refused;
        broken += l[i].broken;
    }
    print_message("      %ld answered, %ld refused, %ld broken across 20 reloads\n", ok, refused,
                  broken);
    if (refused != 0 || broken != 0)
        fail_msg("%ld refused, %ld broken (first: %s)", refused, broken,
                 l[0].first_broken[0] ? l[0].first_broken : l[1].first_broken);
    assert_true(ok > 0);
    /* every generation listened on the first one's port */
    {
        const char *at = D.log;
        int n = 0;

        while ((at = strstr(at, PORT_LINE)) != NULL) {
            at += strlen(PORT_LINE);
            if (atoi(at) != D.port)
                fail_msg("a generation listened on port %d, not %d", atoi(at), D.port);
            n++;
        }
        assert_true(n >= 2);
    }
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

/* ---- 3. a keep-alive client during a reload ---- */

static void get_on(struct client *c, struct resp *r)
{
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    must_respond(c, false, r);
}

/* The old generation drains: the idle keep-alive connection is not cut,
 * its next request is answered (by the old config) with Connection:
 * close, then the connection ends; the next connection gets the new.
 * The reload is reported (READY=1) once the new generation serves, while
 * the old one still drains, not when the drain is over. */
static void listeners_a_keepalive_client_during_a_reload_gets_connection_close(void **state)
{
    struct client *c;
    struct resp r;

    (void)state;
    start_http("gen-old");
    c = client_open(D.port);
    get_on(c, &r);
    assert_status(&r, 200);
    assert_null(hdr(r.head, "Connection"));
    resp_free(&r);

    write_http_config("gen-new", "\"127.0.0.1:0\"");
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    /* the new generation listens after the old one was cancelled */
    wait_next(&D, "a new generation takes over");
    assert_int_equal(number_after(&D, PORT_LINE), D.port);
    wait_next(&D, "reloaded: ");
    if (strstr(D.log, "unloaded the previous generation of module http") != NULL)
        fail_msg("the reload was reported only after the old generation drained; log:\n%s",
                 D.log);
    get_on(c, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, "gen-old");
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    if (!client_eof(c, IO_MS))
        fail_msg("the connection stayed open after its Connection: close answer");
    client_close(c);
    wait_next(&D, "unloaded the previous generation of module http");
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_string_equal(r.body, "gen-new");
    resp_free(&r);
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

/* ---- 4. two modules, one address ---- */

/* lazy answers on port with its tag. */
static void lazy_answers(int port, const char *want)
{
    char line[64];
    int fd = connect_ip("127.0.0.1", port);

    assert_true(fd >= 0);
    assert_true(read_line(fd, line, sizeof(line), IO_MS) > 0);
    assert_string_equal(line, want);
    close(fd);
}

/* Both ask for one address string: whichever asks second is refused,
 * and the log names both; the first serves on. */
static void listeners_two_modules_on_one_address_is_an_error_naming_both(void **state)
{
    char text[1024], want[2][256];
    int port = free_port();
    const char *at;

    (void)state;
    link_module(LAZY_SO, "lazy.so");
    link_module(ECHO_SO, "echo.so");
    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\n"
             " \"modules\":{\"lazy\":{\"optional\":true,\"listen\":\"127.0.0.1:%d\",\"tag\":\"a\"},\n"
             "             \"echo\":{\"optional\":true,\"listen\":[\"127.0.0.1:%d\"]}}}\n",
             port, port);
    write_file("asyncd.json", text);
    daemon_start(&D, "asyncd.json", NULL);
    wait_next(&D, "ready: ");
    /* (when both bind at once, the kernel refuses the second and the
     * owner is named with its address: "module echo (127.0.0.1:N)") */
    snprintf(want[0], sizeof(want[0]), "module echo cannot listen on 127.0.0.1:%d: module lazy",
             port);
    snprintf(want[1], sizeof(want[1]), "module lazy cannot listen on 127.0.0.1:%d: module echo",
             port);
    at = strstr(D.log, want[0]);
    if (at == NULL && strstr(D.log, want[1]) == NULL)
        fail_msg("neither '%s' nor '%s' in the log:\n%s", want[0], want[1], D.log);
    if (at != NULL)
        lazy_answers(port, "a\n");
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

/* Another spelling of a port a module holds ("127.0.0.1:P" for the
 * socket it asked for as "127.0.0.1:0"): the kernel refuses the bind, and
 * the log says which module holds the port. */
static void listeners_another_spelling_of_a_held_port_names_its_module(void **state)
{
    char text[1024], want[256];
    int port;

    (void)state;
    link_module(LAZY_SO, "lazy.so");
    link_module(ECHO_SO, "echo.so");
    write_file("asyncd.json",
               "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\n"
               " \"modules\":{\"lazy\":{\"listen\":\"127.0.0.1:0\",\"tag\":\"a\"},\n"
               "             \"echo\":{\"enabled\":false,\"listen\":[\"127.0.0.1:0\"]}}}\n");
    daemon_start(&D, "asyncd.json", NULL);
    port = number_after(&D, "lazy: tag a listening on port ");
    wait_next(&D, "ready: ");
    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\n"
             " \"modules\":{\"lazy\":{\"listen\":\"127.0.0.1:0\",\"tag\":\"a\"},\n"
             "             \"echo\":{\"listen\":[\"127.0.0.1:%d\"]}}}\n", port);
    write_file("asyncd.json", text);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    snprintf(want, sizeof(want), "module echo cannot listen on 127.0.0.1:%d: module lazy "
             "(127.0.0.1:0) listens there", port);
    wait_next(&D, want);
    wait_next(&D, "module echo failed to start");
    lazy_answers(port, "a\n");
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

/* ---- 5. an address dropped from the config ---- */

static void listeners_an_address_no_generation_asks_for_is_closed_after_the_reload(
    void **state)
{
    struct resp r;
    int fd, other;

    (void)state;
    install_http(0);
    write_http_config("gen-0", "\"127.0.0.1:0\", \"127.0.0.2:0\"");
    daemon_start(&D, "asyncd.json", NULL);
    D.port = number_after(&D, PORT_LINE);
    other = number_after(&D, "http: listening on 127.0.0.2:0 (port ");
    wait_next(&D, "ready: ");
    fd = connect_ip("127.0.0.2", other);
    if (fd < 0)
        SKIP("no 127.0.0.2 on this loopback");
    close(fd);
    write_http_config("gen-1", "\"127.0.0.1:0\"");
    reload_and_wait();
    wait_log(&D, "closed listener 127.0.0.2:0: module http listens there no more");
    fd = connect_ip("127.0.0.2", other);
    if (fd >= 0)
        fail_msg("127.0.0.2:%d still accepts after the reload", other);
    assert_int_equal(errno, ECONNREFUSED);
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_string_equal(r.body, "gen-1");
    resp_free(&r);
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(listeners_a_connect_queued_during_a_reload_is_answered_by_the_next_generation),
        T(listeners_reloads_and_replacements_under_a_connect_loop_refuse_nothing),
        T(listeners_a_keepalive_client_during_a_reload_gets_connection_close),
        T(listeners_two_modules_on_one_address_is_an_error_naming_both),
        T(listeners_another_spelling_of_a_held_port_names_its_module),
        T(listeners_an_address_no_generation_asks_for_is_closed_after_the_reload),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
