/* Scale-out behind HAProxy (issue 18, item 6): the http module's health
 * route and asyncd's drain_grace_ms, alone and under a real HAProxy.
 *
 * Alone: once SIGTERM is heard the health route answers 503 while every
 * other request, on new connections and kept-alive ones, is still
 * answered; after the grace keep-alive connections get Connection: close.
 * A second SIGTERM cuts the grace short.  A generation a reload replaces
 * answers 503 on the connections it drains.  The config check names a bad
 * "health" or drain_grace_ms by its path.
 *
 * Under HAProxy: three instances made from conf/haproxy/instance.json,
 * HAProxy running conf/haproxy/asyncd.cfg (ports, bind address and stats
 * socket replaced), keep-alive load from client threads through it, and
 * each instance restarted in turn (SIGTERM, exit, start on its port, back
 * UP in HAProxy's stats): not one failed request, and HAProxy had to
 * retry or redispatch nothing (its wretr and wredis stay 0) — the health
 * check took each instance out before it stopped accepting.  Skipped
 * when haproxy is not installed. */
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
#include <sys/un.h>
#include <unistd.h>

#define IO_MS 5000
#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define READY_LINE "ready: 1 module(s) running"
#define GRACE_LINE "draining: serving on for drain_grace_ms"
#define CANCEL_LINE "draining: every module is cancelled"
#define NINST 3
#define NLOAD 2                 /* client threads, one keep-alive connection each */

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

static struct daemon inst[NINST]; /* D is the single instance of the tests without HAProxy */
static pid_t haproxy_pid;

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/asyncd-haproxy-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    return 0;
}

static void kill_left(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
}

static int teardown(void **state)
{
    int i;

    (void)state;
    close_leftover_clients();
    kill_left(&haproxy_pid);
    for (i = 0; i < NINST; i++) {
        if (live == inst[i].pid)
            live = 0;
        kill_left(&inst[i].pid);
        if (inst[i].err >= 0)
            close(inst[i].err);
        inst[i].err = -1;
    }
    remove_test_dir();
    return 0;
}

/* ---- files from conf/ ---- */

static char *read_conf(const char *name)
{
    char path[600];
    size_t len;
    char *text;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", CONF_DIR, name);
    f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    text = malloc(1 << 16);
    assert_non_null(text);
    len = fread(text, 1, (1 << 16) - 1, f);
    text[len] = '\0';
    fclose(f);
    return text;
}

/* text with its one occurrence of from replaced by to (the old text is
 * freed); fails when from is not there exactly once, so a change to the
 * shipped file that this test no longer matches is noticed. */
static char *replace_once(char *text, const char *from, const char *to)
{
    char *at = strstr(text, from), *out;
    size_t fl = strlen(from), tl = strlen(to), len = strlen(text);

    if (at == NULL || strstr(at + fl, from) != NULL)
        fail_msg("'%s' is not in the shipped file exactly once", from);
    out = malloc(len - fl + tl + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(at - text));
    memcpy(out + (at - text), to, tl);
    strcpy(out + (at - text) + tl, at + fl);
    free(text);
    return out;
}

/* DIR/name: conf/haproxy/instance.json listening on port (0: any), its
 * modules from DIR/modules, with shutdown_timeout_ms and drain_grace_ms
 * replaced when not NULL. */
static void write_instance(const char *name, int port, const char *shutdown_ms,
                           const char *grace_ms)
{
    char *text = read_conf("haproxy/instance.json"), repl[64];

    text = replace_once(text, "\"/usr/local/lib/asyncd/modules\"", "\"modules\"");
    snprintf(repl, sizeof(repl), "\"127.0.0.1:%d\"", port);
    text = replace_once(text, "\"127.0.0.1:8081\"", repl);
    if (shutdown_ms != NULL) {
        snprintf(repl, sizeof(repl), "\"shutdown_timeout_ms\": %s", shutdown_ms);
        text = replace_once(text, "\"shutdown_timeout_ms\": 10000", repl);
    }
    if (grace_ms != NULL) {
        snprintf(repl, sizeof(repl), "\"drain_grace_ms\": %s", grace_ms);
        text = replace_once(text, "\"drain_grace_ms\": 3000", repl);
    }
    write_file(name, text);
    free(text);
}

/* Starts DIR/name, waits until it serves: its port. */
static int start_instance(struct daemon *d, const char *name, int port)
{
    char line[128];

    daemon_start(d, name, NULL);
    if (port == 0) {
        port = number_after(d, PORT_LINE);
    } else {
        snprintf(line, sizeof(line), "http: listening on 127.0.0.1:%d (port %d)", port, port);
        wait_next(d, line);
    }
    wait_next(d, READY_LINE);
    assert_true(port > 0);
    return port;
}

/* ---- one instance, no HAProxy ---- */

static const char *get(struct client *c, const char *path, struct resp *r)
{
    char req[256];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (!client_send(c, req))
        fail_msg("sending GET %s: %s", path, strerror(errno));
    must_respond(c, false, r);
    return r->body;
}

/* One GET on a new connection. */
static int get_once(const char *path, char *body, size_t cap)
{
    struct client *c = client_open(D.port);
    struct resp r;
    int status;

    get(c, path, &r);
    status = r.status;
    snprintf(body, cap, "%s", r.body);
    if (strcmp(path, "/healthz") == 0)
        assert_header(&r, "Cache-Control", "no-store");
    resp_free(&r);
    client_close(c);
    return status;
}

static void health_503_while_the_grace_serves_the_rest(void **state)
{
    struct client *c;
    struct resp r;
    char body[256];
    int i;

    (void)state;
    write_instance("a.json", 0, "5000", "3000");
    D.port = start_instance(&D, "a.json", 0);
    assert_int_equal(get_once("/healthz", body, sizeof(body)), 200);
    assert_string_equal(body, "ok\n");
    c = client_open(D.port);
    assert_string_equal(get(c, "/hello", &r), "Hello, World!");
    resp_free(&r);

    assert_int_equal(kill(D.pid, SIGTERM), 0);
    wait_next(&D, GRACE_LINE);
    assert_int_equal(get_once("/healthz", body, sizeof(body)), 503);
    assert_string_equal(body, "draining\n");
    /* everything else is served as before: new connections are accepted */
    assert_int_equal(get_once("/hello", body, sizeof(body)), 200);
    assert_string_equal(body, "Hello, World!");
    /* and a kept-alive one stays kept alive */
    get(c, "/hello", &r);
    assert_status(&r, 200);
    if (hdr(r.head, "Connection") != NULL)
        fail_msg("Connection: %s during the grace", hdr(r.head, "Connection"));
    resp_free(&r);
    pump(&D, 0);
    if (strstr(D.log, CANCEL_LINE) != NULL)
        fail_msg("the grace ended before the test could look (a loaded machine?):\n%s", D.log);

    /* after it, the drain as before: the next answer says Connection:
     * close (the engine hears of the drain just after the daemon logs
     * the cancel, hence the bounded loop) */
    wait_next(&D, CANCEL_LINE);
    for (i = 0; i < 100; i++) {
        get(c, "/hello", &r);
        assert_status(&r, 200);
        if (hdr(r.head, "Connection") != NULL) {
            assert_header(&r, "Connection", "close");
            resp_free(&r);
            break;
        }
        resp_free(&r);
    }
    if (i == 100)
        fail_msg("100 answers after the cancel, none with Connection: close");
    assert_true(client_eof(c, IO_MS));
    client_close(c);
    assert_int_equal(reap(&D, 20000), 0);
}

static void second_sigterm_cuts_the_grace_short(void **state)
{
    int64_t t0;

    (void)state;
    write_instance("a.json", 0, "5000", "60000");
    D.port = start_instance(&D, "a.json", 0);
    t0 = now_ms();
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    wait_next(&D, GRACE_LINE);
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    wait_next(&D, "draining: grace cut short by a second stop");
    assert_int_equal(reap(&D, 20000), 0);
    if (now_ms() - t0 > 20000)
        fail_msg("exit took %lld ms with a 60 s grace cut short", (long long)(now_ms() - t0));
}

/* A reload that replaces the module: the old generation, draining its
 * connections, answers 503 on them; new connections reach the new
 * generation, which answers 200. */
static void retiring_generation_answers_503(void **state)
{
    struct client *c;
    struct resp r;
    char body[256];
    int i;

    (void)state;
    for (i = 0; i < 2; i++) {
        char text[1024];

        /* header_timeout_ms differs: the module restarts, not reconfigures */
        snprintf(text, sizeof(text),
                 "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"modules\":{\"http\":{\n"
                 " \"listen\":[\"127.0.0.1:0\"],\"header_timeout_ms\":%d,\n"
                 " \"routes\":[{\"path\":\"/healthz\",\"health\":true}]}}}\n",
                 10000 + i);
        write_file("a.json", text);
        if (i == 0)
            D.port = start_instance(&D, "a.json", 0);
    }
    c = client_open(D.port);
    get(c, "/healthz", &r);
    assert_status(&r, 200);
    resp_free(&r);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    /* the old generation is told it stops before the new one starts (on
     * the same port: 127.0.0.1:0 keeps it across generations) */
    wait_next(&D, PORT_LINE);
    get(c, "/healthz", &r);
    assert_status(&r, 503);
    assert_header(&r, "Connection", "close");
    resp_free(&r);
    client_close(c);
    assert_int_equal(get_once("/healthz", body, sizeof(body)), 200);
    wait_next(&D, "reloaded: ");
    assert_int_equal(daemon_stop(&D, SIGTERM), 0);
}

static void check_names_bad_health_and_grace(void **state)
{
    char out[8192], cfg[600], eff[600];
    const char *want[] = {
        "modules.http.routes[0].health: must be true or false",
        "modules.http.routes[1].status: a \"health\" route answers 200 or 503 itself",
        "modules.http.routes[1].body: a \"health\" route answers 200 or 503 itself",
        "modules.http.routes[2].prefix: a \"health\" route answers one \"path\"",
        "modules.http.routes[3].handler: a \"health\" route answers 200 or 503 itself",
        "drain_grace_ms: -1 is out of range",
    };
    size_t i;

    (void)state;
    write_file("bad.json",
               "{\"modules_dir\":\"modules\",\"drain_grace_ms\":-1,\"modules\":{\"http\":{\n"
               " \"listen\":[\"127.0.0.1:0\"],\"routes\":[\n"
               "  {\"path\":\"/a\",\"health\":\"yes\"},\n"
               "  {\"path\":\"/b\",\"health\":true,\"status\":200,\"body\":\"x\"},\n"
               "  {\"prefix\":\"/c/\",\"health\":true},\n"
               "  {\"path\":\"/d\",\"health\":true,\"handler\":\"kv\"}]}}}\n");
    path_of(cfg, sizeof(cfg), "bad.json");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(out, want[i]) == NULL)
            fail_msg("no '%s' in:\n%s", want[i], out);

    /* the effective config of the shipped instance passes the check itself */
    write_instance("a.json", 0, NULL, NULL);
    path_of(cfg, sizeof(cfg), "a.json");
    assert_int_equal(run_to_end("-T", cfg, out, sizeof(out)), 0);
    if (strstr(out, "\"drain_grace_ms\": 3000") == NULL || strstr(out, "\"health\": true") == NULL)
        fail_msg("-T lacks drain_grace_ms or the health route:\n%s", out);
    /* stdout and stderr together: the JSON, then "...: configuration OK" */
    if (strstr(out, "\n}\n") == NULL)
        fail_msg("no JSON object in -T's output:\n%s", out);
    strstr(out, "\n}\n")[3] = '\0';
    write_file("effective.json", strstr(out, "{"));
    path_of(eff, sizeof(eff), "effective.json");
    if (run_to_end("--check-config", eff, out, sizeof(out)) != 0)
        fail_msg("the effective config fails the check:\n%s", out);
}

/* ---- HAProxy ---- */

/* cmd on HAProxy's stats socket: its answer (malloc'd), or NULL while the
 * socket does not answer. */
static char *stats_cmd(const char *cmd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int64_t until = now_ms() + 2000;
    size_t len = 0, cap = 1 << 16;
    char *out;
    ssize_t n;

    assert_true(fd >= 0);
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/haproxy.sock",
                         (int)(sizeof(sa.sun_path) - 14), dir) >= sizeof(sa.sun_path))
        fail_msg("%s: too long for a Unix socket path", dir);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
        close(fd);
        return NULL;
    }
    out = malloc(cap);
    assert_non_null(out);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};

        if (len + 1 == cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        if (poll(&p, 1, left_ms(until)) <= 0 || (n = recv(fd, out + len, cap - 1 - len, 0)) <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

/* Field col of server sv's line in "show stat" (CSV with a "# " header):
 * into out; false when HAProxy does not answer. */
static bool stat_field(const char *sv, const char *col, char *out, size_t cap)
{
    char *csv = stats_cmd("show stat\n"), *line, *save = NULL, *f, *fsave;
    int want = -1, i;
    bool found = false;

    if (csv == NULL)
        return false;
    for (line = strtok_r(csv, "\n", &save); line != NULL && !found;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# ", 2) == 0) {
            for (i = 0, f = strtok_r(line + 2, ",", &fsave); f != NULL;
                 f = strtok_r(NULL, ",", &fsave), i++)
                if (strcmp(f, col) == 0)
                    want = i;
            continue;
        }
        if (strncmp(line, "be_asyncd,", 10) != 0 || strncmp(line + 10, sv, strlen(sv)) != 0 ||
            line[10 + strlen(sv)] != ',')
            continue;
        /* empty fields: strsep, not strtok */
        for (i = 0, fsave = line; (f = strsep(&fsave, ",")) != NULL; i++)
            if (i == want) {
                snprintf(out, cap, "%s", f);
                found = true;
                break;
            }
    }
    free(csv);
    if (want < 0)
        fail_msg("no column %s in HAProxy's show stat", col);
    return found;
}

static long stat_count(const char *sv, const char *col)
{
    char v[64];

    if (!stat_field(sv, col, v, sizeof(v)))
        fail_msg("HAProxy's stats socket does not answer");
    return strtol(v, NULL, 10);
}

static void haproxy_output(char *buf, size_t cap)
{
    size_t len;
    char *text = read_bytes("haproxy.out", &len);

    snprintf(buf, cap, "%s", text != NULL ? text : "(none)");
    free(text);
}

/* Waits up to ms for server sv's status to start with want ("UP" is
 * "UP" alone: not "UP 1/2", which is going down). */
static void wait_status(const char *sv, const char *want, int ms)
{
    int64_t until = now_ms() + ms;
    char st[64] = "";

    while (now_ms() < until) {
        if (stat_field(sv, "status", st, sizeof(st)) &&
            (strcmp(want, "UP") == 0 ? strcmp(st, "UP") == 0
                                     : strncmp(st, want, strlen(want)) == 0))
            return;
        poll(NULL, 0, 20); /* pacing between looks, not a synchronisation */
    }
    {
        char out[8192];

        haproxy_output(out, sizeof(out));
        fail_msg("HAProxy's %s is '%s', not %s, after %d ms; its output:\n%s", sv, st, want, ms,
                 out);
    }
}

static void start_haproxy(int front, const int *ports)
{
    char *text = read_conf("haproxy/asyncd.cfg"), from[64], to[600], cfg[600], out[600];
    int i, fd;

    snprintf(to, sizeof(to), "bind 127.0.0.1:%d", front);
    text = replace_once(text, "bind :80", to);
    for (i = 0; i < NINST; i++) {
        snprintf(from, sizeof(from), "127.0.0.1:%d ", 8081 + i);
        snprintf(to, sizeof(to), "127.0.0.1:%d ", ports[i]);
        text = replace_once(text, from, to);
    }
    snprintf(to, sizeof(to), "%s/haproxy.sock", dir);
    text = replace_once(text, "/run/haproxy/asyncd.sock", to);
    write_file("haproxy.cfg", text);
    free(text);
    path_of(cfg, sizeof(cfg), "haproxy.cfg");
    path_of(out, sizeof(out), "haproxy.out");
    haproxy_pid = fork();
    assert_true(haproxy_pid >= 0);
    if (haproxy_pid == 0) {
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(HAPROXY, HAPROXY, "-f", cfg, "-db", (char *)NULL);
        _exit(127);
    }
}

/* The load: keep-alive GETs through HAProxy, every answer read whole. */
struct load {
    pthread_t thread;
    int port;
    atomic_bool stop;
    atomic_long ok, bad_status, sock_err;
    char first_err[256];        /* the first failure, written once */
    atomic_bool noted;
};

static void note(struct load *l, atomic_long *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(struct load *l, atomic_long *counter, const char *fmt, ...)
{
    va_list ap;
    bool no = false;

    atomic_fetch_add(counter, 1);
    if (!atomic_compare_exchange_strong(&l->noted, &no, true))
        return;
    va_start(ap, fmt);
    vsnprintf(l->first_err, sizeof(l->first_err), fmt, ap);
    va_end(ap);
}

/* One exchange on fd: 1 done and the connection stays, 0 done and it
 * closes, -1 a socket error (noted). */
static int load_exchange(struct load *l, int fd)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096], *end, *cl;
    size_t len = 0, need;
    ssize_t n = 0;
    int status;
    bool close_after;

    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        note(l, &l->sock_err, "send: %s", strerror(errno));
        return -1;
    }
    while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
        if (len == sizeof(buf) - 1 || (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) <= 0) {
            note(l, &l->sock_err, "reading a head: %s after %zu bytes",
                 n == 0 ? "EOF" : strerror(errno), len);
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
    *end = '\0';
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1 ||
        (cl = strcasestr(buf, "\r\nContent-Length:")) == NULL) {
        note(l, &l->sock_err, "not a response with a length: %.100s", buf);
        return -1;
    }
    close_after = strcasestr(buf, "\r\nConnection: close") != NULL;
    need = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
    while (len < need) {
        if (need >= sizeof(buf) || (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) <= 0) {
            note(l, &l->sock_err, "reading a body: %s", n == 0 ? "EOF" : strerror(errno));
            return -1;
        }
        len += (size_t)n;
    }
    if (status / 100 == 2)
        atomic_fetch_add(&l->ok, 1);
    else
        note(l, &l->bad_status, "status %d", status);
    return close_after ? 0 : 1;
}

static void *load_run(void *arg)
{
    struct load *l = arg;
    struct timeval tv = {IO_MS / 1000, 0};
    int fd = -1, rc;

    while (!atomic_load(&l->stop)) {
        if (fd < 0) {
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)l->port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
                note(l, &l->sock_err, "connect: %s", strerror(errno));
                close(fd);
                fd = -1;
                poll(NULL, 0, 10); /* not a spin against a refusing port */
                continue;
            }
        }
        if ((rc = load_exchange(l, fd)) <= 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static long load_ok(const struct load *l)
{
    long n = 0;
    int i;

    for (i = 0; i < NLOAD; i++)
        n += atomic_load(&l[i].ok);
    return n;
}

/* Waits (bounded) for the load to get n more answers than it had. */
static void load_advances(struct load *l, long n, const char *when)
{
    int64_t until = now_ms() + 10000;
    long from = load_ok(l);

    while (load_ok(l) < from + n) {
        if (now_ms() > until)
            fail_msg("the load got %ld answers in 10 s %s", load_ok(l) - from, when);
        poll(NULL, 0, 10);
    }
}

static void rolling_restart_under_load_fails_nothing(void **state)
{
    static struct load load[NLOAD];
    char name[32], sv[32], what[128], out[16384];
    int ports[NINST], front, i, downs = 0;
    long fails = 0, retries = 0;

    (void)state;
    if (access(HAPROXY, X_OK) != 0)
        SKIP("haproxy is not installed (%s); `make deps` installs it", HAPROXY);
    /* each instance first on a port of its own choosing; then its config
     * names that port, for its restart */
    for (i = 0; i < NINST; i++) {
        snprintf(name, sizeof(name), "i%d.json", i);
        write_instance(name, 0, "3000", NULL);
        ports[i] = start_instance(&inst[i], name, 0);
        write_instance(name, ports[i], "3000", NULL);
    }
    live = 0; /* teardown kills each instance */
    front = free_port();
    start_haproxy(front, ports);
    for (i = 0; i < NINST; i++) {
        snprintf(sv, sizeof(sv), "web%d", i + 1);
        wait_status(sv, "UP", 15000);
    }

    for (i = 0; i < NLOAD; i++) {
        load[i].port = front;
        assert_int_equal(pthread_create(&load[i].thread, NULL, load_run, &load[i]), 0);
    }
    load_advances(load, 200, "through HAProxy at first");
    for (i = 0; i < NINST; i++) {
        snprintf(name, sizeof(name), "i%d.json", i);
        snprintf(sv, sizeof(sv), "web%d", i + 1);
        assert_int_equal(kill(inst[i].pid, SIGTERM), 0);
        wait_next(&inst[i], GRACE_LINE);
        /* the check takes it out while it still accepts */
        wait_status(sv, "DOWN", 10000);
        pump(&inst[i], 0);
        if (strstr(inst[i].log, CANCEL_LINE) != NULL)
            fail_msg("%s stopped accepting before HAProxy took it out:\n%s", sv, inst[i].log);
        snprintf(what, sizeof(what), "while %s drains", sv);
        load_advances(load, 50, what);
        assert_int_equal(reap(&inst[i], 25000), 0);
        inst[i].pid = 0;
        start_instance(&inst[i], name, ports[i]);
        live = 0;
        wait_status(sv, "UP", 15000);
        snprintf(what, sizeof(what), "after %s came back", sv);
        load_advances(load, 50, what);
    }
    for (i = 0; i < NLOAD; i++) {
        atomic_store(&load[i].stop, true);
        pthread_join(load[i].thread, NULL);
    }
    for (i = 0; i < NLOAD; i++)
        fails += atomic_load(&load[i].bad_status) + atomic_load(&load[i].sock_err);
    for (i = 0; i < NINST; i++) {
        snprintf(sv, sizeof(sv), "web%d", i + 1);
        retries += stat_count(sv, "wretr") + stat_count(sv, "wredis");
        downs += stat_count(sv, "chkdown") >= 1;
    }
    printf("haproxy: %ld answers, %ld non-2xx, %ld socket errors, %ld retries+redispatches, "
           "%d of %d servers taken down by the check, across %d restarts in turn\n",
           load_ok(load), atomic_load(&load[0].bad_status) + atomic_load(&load[1].bad_status),
           atomic_load(&load[0].sock_err) + atomic_load(&load[1].sock_err), retries, downs,
           NINST, NINST);
    if (downs != NINST)
        fail_msg("HAProxy's check took %d of the %d servers down", downs, NINST);
    if (fails != 0 || retries != 0) {
        haproxy_output(out, sizeof(out));
        fail_msg("%ld failed requests (first: %s%s), %ld retried by HAProxy; its output:\n%s",
                 fails, load[0].first_err, load[1].first_err, retries, out);
    }

    /* a second SIGTERM ends each grace: the end of the test needs no drain */
    assert_int_equal(kill(haproxy_pid, SIGTERM), 0);
    waitpid(haproxy_pid, NULL, 0);
    haproxy_pid = 0;
    for (i = 0; i < NINST; i++) {
        assert_int_equal(kill(inst[i].pid, SIGTERM), 0);
        wait_next(&inst[i], GRACE_LINE);
        assert_int_equal(kill(inst[i].pid, SIGTERM), 0);
        assert_int_equal(reap(&inst[i], 25000), 0);
        inst[i].pid = 0;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(health_503_while_the_grace_serves_the_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(second_sigterm_cuts_the_grace_short, setup, teardown),
        cmocka_unit_test_setup_teardown(retiring_generation_answers_503, setup, teardown),
        cmocka_unit_test_setup_teardown(check_names_bad_health_and_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(rolling_restart_under_load_fails_nothing, setup,
                                        teardown),
    };
    int i;

    for (i = 0; i < NINST; i++)
        inst[i].err = -1;
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
