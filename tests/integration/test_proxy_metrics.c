/* The proxy's figures in the http module's metrics endpoint (a metrics
 * writer, async_module_add_metrics_writer): the real asyncd with http.so
 * and proxy.so over 127.0.0.1 in front of Python's http.server
 * (backend.py), scraped by a raw client, checked by promtool and parsed
 * here; a backend killed under health checks; a reload that changes the
 * upstream's servers and one that disables the proxy.  Every wait is
 * bounded: on a log line or on a response. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define IO_MS 10000
#define REQUESTS 20

#include "daemon.h"
#include "promtool.h"

static struct daemon D;

#include "backend.h"
#include "http_client.h"

static struct backend B[2];

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/proxy-metrics-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_link_module(PROXY_SO, "proxy");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    backend_stop(&B[0]);
    backend_stop(&B[1]);
    remove_test_dir();
    return 0;
}

/* asyncd.json: the http module with a metrics endpoint, /hello answered
 * by the http module itself and the rest sent to upstream app; proxy is
 * the proxy module's whole config object (a JSON text). */
static void write_config(const char *proxy)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\"metrics_path\":\"/metrics\",\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"content_type\":\"text/plain\","
             "\"body\":\"hello\"},\n"
             "            {\"prefix\":\"/\",\"handler\":\"app\"}]},\n"
             " \"proxy\":%s}}\n",
             proxy);
    write_file("asyncd.json", text);
}

/* The proxy's config for upstream app over servers (a JSON list) with
 * more upstream keys ("" or starting with ','). */
static void proxy_config(char *out, size_t n, const char *servers, const char *extra)
{
    snprintf(out, n, "{\"upstreams\":{\"app\":{\"servers\":%s%s}}}", servers, extra);
}

static void start(const char *servers, const char *extra)
{
    char proxy[1024];

    proxy_config(proxy, sizeof(proxy), servers, extra);
    write_config(proxy);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
    wait_log(&D, "upstream app:");
}

/* Rewrites the config with the proxy's object and reloads: returns once
 * the reload is applied and the daemon logged then (a generation of the
 * proxy that starts is ready before its run registers anything). */
static void reload(const char *proxy, const char *then)
{
    size_t from = D.len;

    write_config(proxy);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    wait_from(&D, from, "reloaded: ");
    wait_from(&D, from, then);
}

/* One scrape of /metrics: the body, malloc'd. */
static char *scrape(void)
{
    struct resp r;
    char *body;

    exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_header(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    body = r.body;
    r.body = NULL;
    resp_free(&r);
    return body;
}

/* Where the sample whose name and labels are exactly series starts, or
 * NULL. */
static const char *find_sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    const char *p = body;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == body || p[-1] == '\n') && p[n] == ' ')
            return p;
        p += n;
    }
    return NULL;
}

/* The value of that sample; fails the test when there is none. */
static double sample(const char *body, const char *series)
{
    const char *p = find_sample(body, series);

    if (p == NULL)
        fail_msg("no sample %s in:\n%s", series, body);
    return strtod(p + strlen(series) + 1, NULL);
}

/* The series of family name (suffix included) for server port of
 * upstream app, with more labels (",le=\"0.1\"" or ""). */
static const char *series(char *out, size_t n, const char *name, int port, const char *more)
{
    snprintf(out, n, "%s{upstream=\"app\",server=\"127.0.0.1:%d\"%s}", name, port, more);
    return out;
}

static double server_sample(const char *body, const char *name, int port, const char *more)
{
    char s[256];

    return sample(body, series(s, sizeof(s), name, port, more));
}

/* How many lines of body start with prefix. */
static int lines_starting(const char *body, const char *prefix)
{
    const char *p;
    int n = 0;

    for (p = body; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        n += strncmp(p, prefix, strlen(prefix)) == 0;
    return n;
}

static const char *const families[] = {
    "asyncd_proxy_requests_total", "asyncd_proxy_failures_total",
    "asyncd_proxy_server_up", "asyncd_proxy_requests_in_flight",
    "asyncd_proxy_connections_idle", "asyncd_proxy_response_head_seconds",
};

/* Every family has its HELP and TYPE once. */
static void families_once(const char *body)
{
    char line[128];
    size_t i;

    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(line, sizeof(line), "# HELP %s ", families[i]);
        if (lines_starting(body, line) != 1)
            fail_msg("%s: %d HELP lines in:\n%s", families[i], lines_starting(body, line), body);
        snprintf(line, sizeof(line), "# TYPE %s ", families[i]);
        if (lines_starting(body, line) != 1)
            fail_msg("%s: %d TYPE lines in:\n%s", families[i], lines_starting(body, line), body);
    }
}

/* The failures of server port, all kinds. */
static double failures(const char *body, int port)
{
    static const char *const kinds[] = {"refused", "reset", "timeout", "invalid", "other"};
    char more[64];
    double sum = 0;
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        snprintf(more, sizeof(more), ",kind=\"%s\"", kinds[i]);
        sum += server_sample(body, "asyncd_proxy_failures_total", port, more);
    }
    return sum;
}

/* The response-time histogram of server port: buckets that only grow,
 * ending at +Inf, which equals _count; returns the count. */
static double histogram_count(const char *body, int port)
{
    static const char *const le[] = {"0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5",
                                     "+Inf"};
    const char *name = "asyncd_proxy_response_head_seconds";
    char more[32], s[64];
    double prev = 0, v = 0, count;
    size_t i;

    for (i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
        snprintf(more, sizeof(more), ",le=\"%s\"", le[i]);
        snprintf(s, sizeof(s), "%s_bucket", name);
        v = server_sample(body, s, port, more);
        if (v < prev)
            fail_msg("bucket le=%s holds %g, less than the one before (%g)", le[i], v, prev);
        prev = v;
    }
    snprintf(s, sizeof(s), "%s_count", name);
    count = server_sample(body, s, port, "");
    assert_true(count == v);
    snprintf(s, sizeof(s), "%s_sum", name);
    assert_true(server_sample(body, s, port, "") >= 0);
    return count;
}

/* ---- the tests ---- */

/* N requests through the proxy: N counted for the server, N in its
 * histogram, no failure, the server up, nothing in flight, the kept
 * connection idle; the whole scrape passes promtool, and so does one
 * taken while the requests are being served. */
static void proxy_metrics_count_the_requests_of_each_server(void **state)
{
    struct client *c;
    struct resp r;
    char servers[64];
    char *body;
    int i;

    (void)state;
    if (access(PROMTOOL, X_OK) != 0)
        SKIP("no " PROMTOOL " (Debian package prometheus; make deps installs it)");
    backend_start(&B[0], "a", NULL);
    snprintf(servers, sizeof(servers), "[\"127.0.0.1:%d\"]", B[0].port);
    start(servers, "");
    /* pipelined, and scraped while the proxy works through them (on
     * another connection, so on any worker): what a scrape reads races
     * with what requests count, which TSan watches */
    c = client_open(D.port);
    for (i = 0; i < REQUESTS; i++)
        assert_true(client_send(c, "GET /id HTTP/1.1\r\nHost: t\r\n\r\n"));
    body = scrape();
    promtool_check(body);
    assert_true(server_sample(body, "asyncd_proxy_requests_total", B[0].port, "") <= REQUESTS);
    free(body);
    for (i = 0; i < REQUESTS; i++) {
        must_respond(c, false, &r);
        assert_status(&r, 200);
        assert_string_equal(r.body, "backend a");
        resp_free(&r);
    }
    client_close(c);
    body = scrape();
    promtool_check(body);
    families_once(body);
    assert_int_equal(server_sample(body, "asyncd_proxy_requests_total", B[0].port, ""),
                     REQUESTS);
    assert_int_equal(histogram_count(body, B[0].port), REQUESTS);
    assert_int_equal(failures(body, B[0].port), 0);
    assert_int_equal(server_sample(body, "asyncd_proxy_server_up", B[0].port, ""), 1);
    assert_int_equal(server_sample(body, "asyncd_proxy_requests_in_flight", B[0].port, ""), 0);
    /* one client on one worker: its one kept connection */
    assert_int_equal(sample(body, "asyncd_proxy_connections_idle{upstream=\"app\"}"), 1);
    /* the http module's own figures are still there, before the proxy's */
    assert_non_null(strstr(body, "\nasyncd_http_connections_total "));
    assert_true(strstr(body, "asyncd_http_connections_total") <
                strstr(body, "asyncd_proxy_requests_total"));
    free(body);
    daemon_stop_clean(&D);
}

/* A backend killed under active health checks: its state falls to 0 once
 * the checks fail, its failures rise from 0; the other stays up. */
static void proxy_metrics_show_a_killed_backend_down(void **state)
{
    char servers[128], *body;
    struct resp r;
    int i;

    (void)state;
    backend_start(&B[0], "a", NULL);
    backend_start(&B[1], "b", NULL);
    snprintf(servers, sizeof(servers), "[\"127.0.0.1:%d\",\"127.0.0.1:%d\"]", B[0].port,
             B[1].port);
    start(servers, ",\"health\":{\"path\":\"/health\",\"interval_ms\":20,\"timeout_ms\":1000,"
                   "\"fall\":2,\"rise\":2}");
    for (i = 0; i < 4; i++) {
        exchange("GET /id HTTP/1.1\r\nHost: t\r\n\r\n", false, &r, NULL);
        assert_status(&r, 200);
        resp_free(&r);
    }
    body = scrape();
    assert_int_equal(server_sample(body, "asyncd_proxy_server_up", B[1].port, ""), 1);
    assert_int_equal(failures(body, B[1].port), 0);
    assert_int_equal(server_sample(body, "asyncd_proxy_requests_total", B[1].port, ""), 2);
    free(body);
    {
        int port = B[1].port;

        backend_stop(&B[1]);
        wait_log(&D, "is down (health check failed)");
        body = scrape();
        promtool_check(body);
        assert_int_equal(server_sample(body, "asyncd_proxy_server_up", port, ""), 0);
        assert_int_equal(server_sample(body, "asyncd_proxy_server_up", B[0].port, ""), 1);
        /* fall = 2 checks failed before the state changed (refused, or
         * reset for one the kill cut) */
        if (failures(body, port) < 2)
            fail_msg("%g failures of the killed backend:\n%s", failures(body, port), body);
        assert_int_equal(failures(body, B[0].port), 0);
        free(body);
    }
    daemon_stop_clean(&D);
}

/* The lines belong to the proxy's running generation: a reload that
 * changes the servers shows the new ones only, one that disables the
 * proxy takes every line away, and the daemon answers throughout. */
static void proxy_metrics_go_with_the_proxy_generation(void **state)
{
    char servers[64], proxy[1024], old[256], *body;
    struct resp r;

    (void)state;
    if (access(PROMTOOL, X_OK) != 0)
        SKIP("no " PROMTOOL " (Debian package prometheus; make deps installs it)");
    backend_start(&B[0], "a", NULL);
    backend_start(&B[1], "b", NULL);
    snprintf(servers, sizeof(servers), "[\"127.0.0.1:%d\"]", B[0].port);
    start(servers, "");
    exchange("GET /id HTTP/1.1\r\nHost: t\r\n\r\n", false, &r, NULL);
    assert_string_equal(r.body, "backend a");
    resp_free(&r);
    body = scrape();
    assert_int_equal(server_sample(body, "asyncd_proxy_requests_total", B[0].port, ""), 1);
    free(body);

    /* another server: a new generation, counting from 0 */
    snprintf(servers, sizeof(servers), "[\"127.0.0.1:%d\"]", B[1].port);
    proxy_config(proxy, sizeof(proxy), servers, "");
    reload(proxy, "module proxy provides metrics writer");
    exchange("GET /id HTTP/1.1\r\nHost: t\r\n\r\n", false, &r, NULL);
    assert_string_equal(r.body, "backend b");
    resp_free(&r);
    body = scrape();
    promtool_check(body);
    families_once(body);
    assert_int_equal(server_sample(body, "asyncd_proxy_requests_total", B[1].port, ""), 1);
    series(old, sizeof(old), "asyncd_proxy_requests_total", B[0].port, "");
    assert_null(find_sample(body, old));
    free(body);

    /* no proxy: none of its lines, the rest of the endpoint as before */
    reload("{\"enabled\":false}", "module proxy withdraws metrics writer");
    body = scrape();
    promtool_check(body);
    if (strstr(body, "asyncd_proxy_") != NULL)
        fail_msg("proxy lines after the proxy was disabled:\n%s", body);
    assert_non_null(strstr(body, "\nasyncd_http_connections_total "));
    free(body);
    exchange("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.body, "hello");
    resp_free(&r);
    /* and back: the new generation's lines again */
    proxy_config(proxy, sizeof(proxy), servers, "");
    reload(proxy, "module proxy provides metrics writer");
    body = scrape();
    assert_int_equal(server_sample(body, "asyncd_proxy_requests_total", B[1].port, ""), 0);
    families_once(body);
    free(body);
    daemon_stop_clean(&D);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(proxy_metrics_count_the_requests_of_each_server, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_metrics_show_a_killed_backend_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_metrics_go_with_the_proxy_generation, setup,
                                        teardown),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
