/* The metrics endpoint (metrics_path) and who may read it and the status
 * endpoint (metrics_allow, status_allow): the real asyncd and http.so over
 * 127.0.0.1, scraped by raw sockets, checked by promtool and scraped by a
 * real Prometheus server the test starts; requests counted by the server
 * (virtual host) that answered, the engine's own errors included, and
 * kept across a reload that changes the servers.  Every wait is bounded;
 * the Prometheus test polls Prometheus's own API for the state it waits
 * for. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define IO_MS 10000
#define HELLO "Hello, World!"
#define PROMETHEUS "/usr/bin/prometheus"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

#include "daemon.h"
#include "promtool.h"

static struct daemon D;

#include "http_client.h"

static pid_t prom; /* a Prometheus a failed test left running: teardown stops it */

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/http-metrics-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_mkdir("www");
    write_file("www/index.html", "<p>index</p>\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    close_many();
    if (prom > 0) {
        kill(prom, SIGKILL);
        waitpid(prom, NULL, 0);
        prom = 0;
    }
    remove_test_dir();
    return 0;
}

static void write_config(const char *extra)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\",\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"content_type\":\"text/plain\","
             "\"body\":\"" HELLO "\"}],\n"
             "  \"status_path\":\"/status\",\"metrics_path\":\"/metrics\"%s}}}\n",
             extra);
    write_file("asyncd.json", text);
}

static void start(const char *extra)
{
    write_config(extra);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
}

static void stop(void)
{
    daemon_stop_clean(&D);
}

/* ---- scraping ---- */

/* A connection to the daemon from local address from ("127.0.0.2"). */
static struct client *client_from(const char *from)
{
    struct sockaddr_in me = {.sin_family = AF_INET}, sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, from, &me.sin_addr), 1);
    if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0)
        fail_msg("bind %s: %s", from, strerror(errno));
    sa.sin_port = htons((uint16_t)D.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail_msg("connect from %s: %s", from, strerror(errno));
    return client_wrap(fd);
}

/* GET path from a local address; the response in r. */
static void get_from(const char *from, const char *path, struct resp *r)
{
    struct client *c = client_from(from);
    char raw[512];

    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    assert_true(client_send(c, raw));
    must_respond(c, false, r);
    client_close(c);
}

/* GET path over a new connection that closes after it: every byte the
 * server sent for it (head and body), counted until EOF. */
static size_t get_counting_bytes(const char *path)
{
    struct client *c = client_open(D.port);
    int64_t until = now_ms() + IO_MS;
    char raw[512];
    size_t n;

    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    assert_true(client_send(c, raw));
    while (!c->eof)
        if (client_fill(c, until) < 0)
            fail_msg("no EOF after %s within %d ms", path, IO_MS);
    n = c->len;
    client_close(c);
    return n;
}

/* One scrape: the body in *body (malloc'd); all the bytes of the
 * response in *wire when wire is not NULL. */
static char *scrape(size_t *wire)
{
    struct client *c = client_open(D.port);
    int64_t until = now_ms() + IO_MS;
    struct resp r;
    size_t total;

    assert_true(client_send(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    while (!c->eof)
        if (client_fill(c, until) < 0)
            fail_msg("no EOF after the scrape within %d ms", IO_MS);
    total = c->len;
    if (client_response_ms(c, false, &r, IO_MS) != 0)
        fail_msg("no scrape response: %s", r.head);
    assert_status(&r, 200);
    assert_header(&r, "Content-Type", METRICS_TYPE);
    client_close(c);
    if (wire != NULL)
        *wire = total;
    return r.body;
}

/* The value of the sample whose name and labels are exactly series
 * ("asyncd_http_requests_total{server=\"default\",code=\"2xx\"}"). */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    const char *p = body;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == body || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    fail_msg("no sample %s in:\n%s", series, body);
    return 0;
}

#define REQ(code) "asyncd_http_requests_total{server=\"default\",code=\"" code "\"}"
#define DUR_COUNT "asyncd_http_request_duration_seconds_count{server=\"default\"}"
#define SENT "asyncd_http_sent_bytes_total"
#define CONNS "asyncd_http_connections_total"

/* ---- the tests ---- */

static void metrics_scrape_passes_promtool_check(void **state)
{
    char *body;

    (void)state;
    if (access(PROMTOOL, X_OK) != 0)
        SKIP("no " PROMTOOL " (Debian package prometheus; make deps installs it)");
    start("");
    get_counting_bytes("/hello");
    get_counting_bytes("/nothing-here"); /* a 404, so two classes have counts */
    body = scrape(NULL);
    promtool_check(body);
    /* what the issue asks for is there */
    assert_true(strstr(body, "asyncd_build_info{version=\"") != NULL);
    assert_true(sample(body, "asyncd_uptime_seconds") >= 0);
    assert_true(sample(body, "asyncd_runtime_workers") >= 1);
    assert_true(sample(body, "asyncd_runtime_fibers_live") >= 1);
    sample(body, "asyncd_runtime_global_queue");
    sample(body, "asyncd_runtime_run_queue{worker=\"0\"}");
    sample(body, "asyncd_http_connections_open");
    sample(body, "asyncd_http_connections_idle");
    sample(body, "asyncd_http_connections_lingering");
    sample(body, "asyncd_reloads_total{result=\"applied\"}");
    sample(body, "asyncd_module_restarts_total");
    assert_true(sample(body, REQ("4xx")) == 1);
    assert_true(sample(body, "asyncd_http_request_duration_seconds_bucket{server=\"default\","
                             "le=\"+Inf\"}") == sample(body, DUR_COUNT));
    free(body);
    stop();
}

/* Between two scrapes, a known set of requests: each counter moves by
 * exactly what they add (the first scrape's own response counts in the
 * second, the second's own not yet). */
static void metrics_counters_move_by_exactly_what_requests_add(void **state)
{
    size_t wire_a, wire = 0;
    char *a, *b;
    int i;

    (void)state;
    start("");
    get_counting_bytes("/hello"); /* the worker's counters exist before the first scrape */
    a = scrape(&wire_a);
    for (i = 0; i < 7; i++)
        wire += get_counting_bytes("/hello");
    for (i = 0; i < 3; i++)
        wire += get_counting_bytes("/missing");
    b = scrape(NULL);
    assert_true(sample(b, REQ("2xx")) - sample(a, REQ("2xx")) == 7 + 1);
    assert_true(sample(b, REQ("4xx")) - sample(a, REQ("4xx")) == 3);
    assert_true(sample(b, REQ("5xx")) - sample(a, REQ("5xx")) == 0);
    assert_true(sample(b, DUR_COUNT) - sample(a, DUR_COUNT) == 7 + 3 + 1);
    /* 10 connections, and the second scrape's */
    assert_true(sample(b, CONNS) - sample(a, CONNS) == 10 + 1);
    if (sample(b, SENT) - sample(a, SENT) != (double)(wire + wire_a))
        fail_msg("sent bytes moved by %.0f, the clients read %zu",
                 sample(b, SENT) - sample(a, SENT), wire + wire_a);
    free(a);
    free(b);
    stop();
}

static void metrics_counts_idle_connections(void **state)
{
    struct client *c[5];
    struct resp r;
    char *body;
    int i;

    (void)state;
    start("");
    for (i = 0; i < 5; i++) { /* each answered once, then idle on keep-alive */
        c[i] = client_open(D.port);
        assert_true(client_send(c[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
        must_respond(c[i], false, &r);
        resp_free(&r);
    }
    /* a connection parks once its fiber has finished with it: wait for
     * the figure, bounded (the state it reports, not a sleep) */
    {
        int64_t until = now_ms() + IO_MS;
        double idle = 0;

        while (now_ms() < until) {
            body = scrape(NULL);
            idle = sample(body, "asyncd_http_connections_idle");
            free(body);
            if (idle == 5)
                break;
        }
        if (idle != 5)
            fail_msg("idle connections: %.0f, want 5", idle);
    }
    for (i = 0; i < 5; i++)
        client_close(c[i]);
    stop();
}

static void metrics_and_status_refuse_peers_outside_their_allow_lists(void **state)
{
    struct resp r;

    (void)state;
    start(",\"metrics_allow\":[\"127.0.0.1\"],\"status_allow\":[\"10.0.0.0/8\",\"::1\"]");
    get_from("127.0.0.2", "/metrics", &r);
    assert_status(&r, 403);
    resp_free(&r);
    get_from("127.0.0.1", "/metrics", &r);
    assert_status(&r, 200);
    resp_free(&r);
    get_from("127.0.0.1", "/status", &r);
    assert_status(&r, 403);
    resp_free(&r);
    get_from("127.0.0.1", "/hello", &r); /* the rest of the site is not concerned */
    assert_status(&r, 200);
    resp_free(&r);
    stop();
}

static void metrics_default_allow_list_is_loopback(void **state)
{
    struct resp r;

    (void)state;
    start("");
    get_from("127.0.0.2", "/metrics", &r); /* 127.0.0.0/8 is loopback */
    assert_status(&r, 200);
    resp_free(&r);
    get_from("127.0.0.3", "/status", &r);
    assert_status(&r, 200);
    resp_free(&r);
    stop();
    /* an empty list lets nobody in */
    start(",\"metrics_allow\":[]");
    get_from("127.0.0.1", "/metrics", &r);
    assert_status(&r, 403);
    resp_free(&r);
    stop();
}

static void metrics_check_config_names_bad_allow_entries(void **state)
{
    char out[8192], cfg[600];

    (void)state;
    path_of(cfg, sizeof(cfg), "asyncd.json");
    write_config(",\"metrics_allow\":[\"127.0.0.1\",\"10.0.0.1/8\"],"
                 "\"status_allow\":[\"localhost\"]");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "modules.http.metrics_allow[1]") == NULL ||
        strstr(out, "modules.http.status_allow[0]") == NULL ||
        strstr(out, "past its prefix length") == NULL)
        fail_msg("expected both entries named by their JSON path, got:\n%s", out);
    write_config(",\"metrics_allow\":\"127.0.0.1\"");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "modules.http.metrics_allow") == NULL)
        fail_msg("expected modules.http.metrics_allow, got:\n%s", out);
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{"
                              "\"listen\":[\"127.0.0.1:0\"],\"status_path\":\"/s\","
                              "\"metrics_path\":\"/s\"}}}\n");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "modules.http.metrics_path") == NULL)
        fail_msg("expected modules.http.metrics_path, got:\n%s", out);
}

static void metrics_count_reloads_applied_and_rejected(void **state)
{
    char *body;
    size_t from;

    (void)state;
    start("");
    body = scrape(NULL);
    assert_true(sample(body, "asyncd_reloads_total{result=\"applied\"}") == 0);
    free(body);
    from = D.len;
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_from(&D, from, "reloaded: 1 module(s) running");
    write_file("asyncd.json", "{ this is not json");
    from = D.len;
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_from(&D, from, "reload rejected");
    body = scrape(NULL);
    assert_true(sample(body, "asyncd_reloads_total{result=\"applied\"}") == 1);
    assert_true(sample(body, "asyncd_reloads_total{result=\"rejected\"}") == 1);
    free(body);
    stop();
}

static void metrics_count_module_restarts(void **state)
{
    char *body;

    (void)state;
    test_dir_link_module(FAILING_SO, "failing");
    start("");
    /* the first restart is done once the second run has failed */
    wait_log(&D, "module failing failed (run returned 1); restarting in 2000 ms");
    body = scrape(NULL);
    assert_true(sample(body, "asyncd_module_restarts_total") == 1);
    free(body);
    stop();
}

/* ---- a real Prometheus ---- */

/* The TCP port pid listens on (from /proc), or 0 while it listens on none. */
static int listening_port(pid_t pid)
{
    char path[64], link[128], line[512];
    unsigned long inode[64];
    size_t n = 0, i;
    struct dirent *e;
    DIR *d;
    FILE *f;
    int port = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path)) == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < 64) {
        char fdp[600];
        ssize_t k;

        snprintf(fdp, sizeof(fdp), "%s/%s", path, e->d_name);
        if ((k = readlink(fdp, link, sizeof(link) - 1)) > 0) {
            link[k] = '\0';
            if (sscanf(link, "socket:[%lu]", &inode[n]) == 1)
                n++;
        }
    }
    closedir(d);
    if ((f = fopen("/proc/net/tcp", "r")) == NULL)
        return 0;
    while (port == 0 && fgets(line, sizeof(line), f) != NULL) {
        unsigned lport, st;
        unsigned long ino;

        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport, &st,
                   &ino) != 3 || st != 0x0A)
            continue;
        for (i = 0; i < n; i++)
            if (inode[i] == ino)
                port = (int)lport;
    }
    fclose(f);
    return port;
}

static void metrics_a_real_prometheus_scrapes_the_target_up(void **state)
{
    char text[1024], storage[512], cfgpath[512], out[1 << 16], logpath[512];
    int64_t until;
    int port = 0;
    bool up = false;

    (void)state;
    if (access(PROMETHEUS, X_OK) != 0)
        SKIP("no " PROMETHEUS " (Debian package prometheus; make deps installs it)");
    start("");
    snprintf(text, sizeof(text),
             "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
             "scrape_configs:\n  - job_name: asyncd\n    metrics_path: /metrics\n"
             "    static_configs:\n      - targets: ['127.0.0.1:%d']\n", D.port);
    write_file("prometheus.yml", text);
    path_of(cfgpath, sizeof(cfgpath), "prometheus.yml");
    path_of(storage, sizeof(storage), "prom-data");
    path_of(logpath, sizeof(logpath), "prometheus.log");
    prom = fork();
    assert_true(prom >= 0);
    if (prom == 0) {
        char a1[600], a2[600];
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        snprintf(a1, sizeof(a1), "--config.file=%s", cfgpath);
        snprintf(a2, sizeof(a2), "--storage.tsdb.path=%s", storage);
        /* port 0: the kernel picks one; the test reads it from /proc */
        execl(PROMETHEUS, PROMETHEUS, a1, a2, "--web.listen-address=127.0.0.1:0",
              (char *)NULL);
        _exit(127);
    }
    /* bounded: Prometheus listens within seconds, then scrapes every second */
    until = now_ms() + 60000;
    while (port == 0 && now_ms() < until) {
        if (waitpid(prom, NULL, WNOHANG) == prom) {
            size_t len;
            char *log = read_bytes("prometheus.log", &len);

            prom = 0;
            fail_msg("prometheus exited:\n%s", log != NULL ? log : "");
        }
        if ((port = listening_port(prom)) == 0)
            poll(NULL, 0, 20); /* re-reading /proc, bounded by until */
    }
    if (port == 0)
        fail_msg("prometheus never listened");
    while (!up && now_ms() < until) {
        /* the target's health as Prometheus saw it in its last scrape */
        if (curl(out, sizeof(out), "'http://127.0.0.1:%d/api/v1/targets?state=active'", port) ==
                0 &&
            strstr(out, "\"health\":\"up\"") != NULL)
            up = true;
        else
            poll(NULL, 0, 100); /* between two questions to its API, bounded by until */
    }
    if (!up)
        fail_msg("the target never came up; last answer:\n%s", out);
    /* and the samples arrived: a query for one of ours */
    until = now_ms() + 30000;
    for (;;) {
        assert_int_equal(curl(out, sizeof(out), "'http://127.0.0.1:%d/api/v1/query?query="
                              "asyncd_build_info'", port), 0);
        if (strstr(out, "\"__name__\":\"asyncd_build_info\"") != NULL)
            break;
        if (now_ms() > until)
            fail_msg("no asyncd_build_info in Prometheus:\n%s", out);
        poll(NULL, 0, 100);
    }
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
    prom = 0;
    stop();
}

/* ---- by server ---- */

/* Sends raw and reads the answer and the close: its status. */
static int raw_status(const char *raw)
{
    struct client *c = client_open(D.port);
    struct resp r;
    int status;

    assert_true(client_send(c, raw));
    must_respond(c, false, &r);
    client_close(c);
    status = r.status;
    resp_free(&r);
    return status;
}

/* GET path with Host host on a connection of its own: the status. */
static int get_host(const char *host, const char *path)
{
    char raw[512];

    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
             path, host);
    return raw_status(raw);
}

#define SREQ(server, code) "asyncd_http_requests_total{server=\"" server "\",code=\"" code "\"}"
#define SDUR(server) "asyncd_http_request_duration_seconds_count{server=\"" server "\"}"

/* The scrapes go to the unnamed default server ("default"); a.test and
 * b.test each get their own requests. */
#define TWO_SITES ",\"servers\":[{\"default\":true},{\"names\":[\"a.test\",\"www.a.test\"]}," \
                  "{\"names\":[\"b.test\"]}]"

static void metrics_requests_to_two_virtual_hosts_move_their_own_series(void **state)
{
    char *a, *b;
    int i;

    (void)state;
    start(TWO_SITES);
    get_host("a.test", "/hello"); /* every worker's counters exist, whoever serves */
    a = scrape(NULL);
    for (i = 0; i < 4; i++)
        assert_int_equal(get_host(i % 2 ? "A.TEST:80" : "www.a.test", "/hello"), 200);
    for (i = 0; i < 2; i++)
        assert_int_equal(get_host("b.test", "/missing"), 404);
    assert_int_equal(get_host("b.test", "/hello"), 200);
    /* the engine's own errors count for the server their Host names, or
     * the default: a body past max_body_bytes (Host parsed), then a
     * request line it cannot parse */
    assert_int_equal(raw_status("POST /hello HTTP/1.1\r\nHost: b.test\r\n"
                                "Content-Length: 99999999999\r\n\r\n"), 413);
    assert_int_equal(raw_status("GET /hello HTTP/1.1 junk\r\nHost: b.test\r\n\r\n"), 400);
    b = scrape(NULL);
    if (access(PROMTOOL, X_OK) == 0)
        promtool_check(b);
    assert_true(sample(b, SREQ("a.test", "2xx")) - sample(a, SREQ("a.test", "2xx")) == 4);
    assert_true(sample(b, SREQ("a.test", "4xx")) - sample(a, SREQ("a.test", "4xx")) == 0);
    assert_true(sample(b, SREQ("b.test", "2xx")) - sample(a, SREQ("b.test", "2xx")) == 1);
    assert_true(sample(b, SREQ("b.test", "4xx")) - sample(a, SREQ("b.test", "4xx")) == 2 + 1);
    /* the first scrape's own answer, and the unparsable request's 400 */
    assert_true(sample(b, SREQ("default", "2xx")) - sample(a, SREQ("default", "2xx")) == 1);
    assert_true(sample(b, SREQ("default", "4xx")) - sample(a, SREQ("default", "4xx")) == 1);
    assert_true(sample(b, SDUR("a.test")) - sample(a, SDUR("a.test")) == 4);
    /* the 413 was refused before it was timed */
    assert_true(sample(b, SDUR("b.test")) - sample(a, SDUR("b.test")) == 3);
    /* one series per server: www.a.test is a.test's */
    assert_null(strstr(b, "server=\"www.a.test\""));
    free(a);
    free(b);
    stop();
}

static void metrics_a_reload_keeps_the_counts_of_servers_that_stay(void **state)
{
    char *a, *b;
    size_t from;
    int i;

    (void)state;
    start(TWO_SITES);
    for (i = 0; i < 3; i++)
        get_host("a.test", "/hello");
    for (i = 0; i < 2; i++)
        get_host("b.test", "/hello");
    a = scrape(NULL);
    assert_true(sample(a, SREQ("a.test", "2xx")) == 3);
    assert_true(sample(a, SREQ("b.test", "2xx")) == 2);
    assert_null(strstr(a, "server=\"c.test\""));
    /* b.test goes, c.test comes, a.test stays */
    write_config(",\"servers\":[{\"default\":true},{\"names\":[\"c.test\"]},"
                 "{\"names\":[\"a.test\"]}]");
    from = D.len;
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_from(&D, from, "module http: config changed, applied in place");
    wait_from(&D, from, "reloaded: 1 module(s) running");
    get_host("a.test", "/hello");
    get_host("c.test", "/hello");
    get_host("c.test", "/missing");
    b = scrape(NULL);
    if (access(PROMTOOL, X_OK) == 0)
        promtool_check(b);
    assert_true(sample(b, SREQ("a.test", "2xx")) == 3 + 1);
    assert_true(sample(b, SREQ("c.test", "2xx")) == 1);
    assert_true(sample(b, SREQ("c.test", "4xx")) == 1);
    /* gone from the config, its counts stay as they were */
    assert_true(sample(b, SREQ("b.test", "2xx")) == 2);
    /* the scrapes, before and after */
    assert_true(sample(b, SREQ("default", "2xx")) == sample(a, SREQ("default", "2xx")) + 1);
    free(a);
    free(b);
    stop();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(metrics_scrape_passes_promtool_check),
        T(metrics_counters_move_by_exactly_what_requests_add),
        T(metrics_counts_idle_connections),
        T(metrics_and_status_refuse_peers_outside_their_allow_lists),
        T(metrics_default_allow_list_is_loopback),
        T(metrics_check_config_names_bad_allow_entries),
        T(metrics_count_reloads_applied_and_rejected),
        T(metrics_count_module_restarts),
        T(metrics_a_real_prometheus_scrapes_the_target_up),
        T(metrics_requests_to_two_virtual_hosts_move_their_own_series),
        T(metrics_a_reload_keeps_the_counts_of_servers_that_stay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
