/* HTTPS in the http module: the real asyncd and http.so with certificates
 * made at test time (tests/tls_certs.h), talked to by curl, openssl
 * s_client, raw sockets and an OpenSSL client of this process.  Every wait
 * is bounded; readiness and reloads are the lines the daemon logs. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include "daemon.h"
#include "../tls_certs.h"

#define TLS_PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define V6_PORT_LINE "http: listening on [::1]:0 (port "
#define IO_MS 10000

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/https-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    assert_int_equal(tls_certs_make(dir), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_test_dir();
    return 0;
}

static bool have(const char *tool)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* A config serving /hello on the listen entries given (JSON). */
static void write_config(const char *name, const char *listen)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\": \"modules\", \"log_level\": \"info\", \"shutdown_timeout_ms\": 3000,\n"
             " \"modules\": {\"http\": {\n"
             "  \"listen\": %s,\n"
             "  \"routes\": [{\"path\": \"/hello\", \"content_type\": \"text/plain\", "
             "\"body\": \"Hello, TLS!\"}]}}}\n",
             listen);
    write_file(name, text);
}

#define EC_PAIR "{\"cert\": \"ec.pem\", \"key\": \"ec.key\"}"
#define RSA_PAIR "{\"cert\": \"rsa.pem\", \"key\": \"rsa.key\"}"

/* Starts a daemon whose only listener is TLS on 127.0.0.1:0 with tls
 * (JSON); its port in d->port. */
static void start_tls(struct daemon *d, const char *tls)
{
    char listen[1024];

    snprintf(listen, sizeof(listen), "[{\"address\": \"127.0.0.1:0\", \"tls\": %s}]", tls);
    write_config("asyncd.json", listen);
    daemon_start(d, "asyncd.json", NULL);
    d->port = number_after(d, TLS_PORT_LINE);
    wait_log(d, "TLS)");
}

/* Runs cmd through sh in the test folder; its output (both streams). */
static int shell(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int shell(char *out, size_t outlen, const char *fmt, ...)
{
    char args[4096], cmd[4400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "cd '%s' && { %s ; } 2>&1", dir, args);
    return shell_output(cmd, out, outlen);
}

/* ---- curl ---- */

static void https_curl_gets_hello_over_ipv4_and_ipv6(void **state)
{
    struct daemon d;
    char out[4096];
    int v6;

    if (!have("curl"))
        SKIP("needs curl");
    write_config("asyncd.json", "[{\"address\": \"127.0.0.1:0\", \"tls\": [" EC_PAIR ", " RSA_PAIR
                                "]}, {\"address\": \"[::1]:0\", \"tls\": " EC_PAIR "}]");
    daemon_start(&d, "asyncd.json", NULL);
    d.port = number_after(&d, TLS_PORT_LINE);
    v6 = number_after(&d, V6_PORT_LINE);
    wait_log(&d, "ready");
    assert_int_equal(shell(out, sizeof(out),
                           "curl -sS --max-time 20 --cacert ca.pem "
                           "--resolve localhost:%d:127.0.0.1 https://localhost:%d/hello",
                           d.port, d.port),
                     0);
    assert_string_equal(out, "Hello, TLS!");
    assert_int_equal(shell(out, sizeof(out),
                           "curl -sS --max-time 20 --cacert ca.pem https://[::1]:%d/hello", v6),
                     0);
    assert_string_equal(out, "Hello, TLS!");
    /* two requests on one connection: keep-alive over TLS */
    assert_int_equal(shell(out, sizeof(out),
                           "curl -sS --max-time 20 --cacert ca.pem https://127.0.0.1:%d/hello "
                           "https://127.0.0.1:%d/hello",
                           d.port, d.port),
                     0);
    assert_string_equal(out, "Hello, TLS!Hello, TLS!");
    /* a client that does not trust the CA refuses */
    assert_int_not_equal(shell(out, sizeof(out),
                               "curl -sS --max-time 20 https://127.0.0.1:%d/hello", d.port),
                         0);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* Server blocks (virtual hosts) on one HTTPS address: the Host picks
 * the site behind the handshake. */
static void https_server_blocks_share_a_tls_address(void **state)
{
    struct daemon d;
    char out[4096], text[4096];

    if (!have("curl"))
        SKIP("needs curl");
    snprintf(text, sizeof(text),
             "{\"modules_dir\": \"modules\", \"log_level\": \"info\", \"shutdown_timeout_ms\": 3000,\n"
             " \"modules\": {\"http\": {\"servers\": [\n"
             "  {\"names\": [\"a.test\"], \"default\": true,\n"
             "   \"listen\": [{\"address\": \"127.0.0.1:0\", \"tls\": " EC_PAIR "}],\n"
             "   \"routes\": [{\"path\": \"/hello\", \"body\": \"site a\"}]},\n"
             "  {\"names\": [\"b.test\"],\n"
             "   \"listen\": [{\"address\": \"127.0.0.1:0\", \"tls\": " EC_PAIR "}],\n"
             "   \"routes\": [{\"path\": \"/hello\", \"body\": \"site b\"}]}]}}}\n");
    write_file("asyncd.json", text);
    daemon_start(&d, "asyncd.json", NULL);
    d.port = number_after(&d, TLS_PORT_LINE);
    wait_log(&d, "ready");
    assert_int_equal(shell(out, sizeof(out),
                           "curl -sS --max-time 20 --cacert ca.pem -H 'Host: b.test' "
                           "--resolve localhost:%d:127.0.0.1 https://localhost:%d/hello",
                           d.port, d.port),
                     0);
    assert_string_equal(out, "site b");
    assert_int_equal(shell(out, sizeof(out),
                           "curl -sS --max-time 20 --cacert ca.pem -H 'Host: a.test' "
                           "--resolve localhost:%d:127.0.0.1 https://localhost:%d/hello",
                           d.port, d.port),
                     0);
    assert_string_equal(out, "site a");
    /* plain HTTP to it is still the TLS port's 400 */
    assert_int_equal(shell(out, sizeof(out),
                           "curl -s --max-time 20 -o /dev/null -w '%%{http_code}' "
                           "http://127.0.0.1:%d/hello", d.port),
                     0);
    assert_string_equal(out, "400");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- plain HTTP to the TLS port ---- */

static void https_plain_http_to_the_tls_port_gets_400_in_plain_text_then_the_end(void **state)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct daemon d;
    char buf[1024];
    size_t got = 0;
    ssize_t n;
    int fd;
    struct pollfd p;
    int64_t until;

    start_tls(&d, EC_PAIR);
    sa.sin_port = htons((uint16_t)d.port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    until = now_ms() + IO_MS;
    for (;;) {
        p = (struct pollfd){fd, POLLIN, 0};
        assert_true(poll(&p, 1, left_ms(until)) == 1);
        n = read(fd, buf + got, sizeof(buf) - 1 - got);
        assert_true(n >= 0);
        if (n == 0)
            break; /* the end, after the answer */
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(strstr(buf, "The plain HTTP request was sent to HTTPS port.\n"));
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- a handshake that stalls ---- */

/* Half a ClientHello, then silence: the connection holds no fiber while
 * it waits (the engine parks it) and ends at header_timeout_ms. */
static void https_stalled_handshake_ends_at_header_timeout(void **state)
{
    static const char half[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct daemon d;
    struct pollfd p;
    int64_t start;
    char b[64];
    int fd;

    write_file("stall.json",
               "{\"modules_dir\": \"modules\", \"log_level\": \"info\",\n"
               " \"modules\": {\"http\": {\"header_timeout_ms\": 300,\n"
               "  \"listen\": [{\"address\": \"127.0.0.1:0\", \"tls\": " EC_PAIR "}]}}}\n");
    daemon_start(&d, "stall.json", NULL);
    d.port = number_after(&d, TLS_PORT_LINE);
    wait_log(&d, "TLS)");
    sa.sin_port = htons((uint16_t)d.port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, half, sizeof(half) - 1), (ssize_t)sizeof(half) - 1);
    start = now_ms();
    p = (struct pollfd){fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, IO_MS), 1);
    assert_true(read(fd, b, sizeof(b)) <= 0); /* the end (or a reset), no answer */
    assert_true(now_ms() - start >= 250);     /* not before the timeout */
    close(fd);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- openssl s_client ---- */

static void https_s_client_refuses_tls_1_0_and_1_1_and_chooses_alpn_http_1_1(void **state)
{
    struct daemon d;
    char out[16384];

    if (!have("openssl"))
        SKIP("needs the openssl command");
    start_tls(&d, EC_PAIR);
    /* the client may offer old versions (SECLEVEL 0): the server says no */
    shell(out, sizeof(out),
          "openssl s_client -connect 127.0.0.1:%d -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' "
          "</dev/null", d.port);
    assert_non_null(strstr(out, "alert protocol version"));
    shell(out, sizeof(out),
          "openssl s_client -connect 127.0.0.1:%d -tls1 -cipher 'DEFAULT:@SECLEVEL=0' "
          "</dev/null", d.port);
    assert_non_null(strstr(out, "alert protocol version"));
    shell(out, sizeof(out),
          "openssl s_client -connect 127.0.0.1:%d -tls1_2 -alpn h2,http/1.1 -CAfile ca.pem "
          "-servername localhost </dev/null", d.port);
    assert_non_null(strstr(out, "ALPN protocol: http/1.1"));
    assert_non_null(strstr(out, "Verify return code: 0 (ok)"));
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* -sess_out then -sess_in: the second handshake resumes.  The client
 * sends a request and reads to the end (-ign_eof), so the tickets, which
 * TLS 1.3 sends after the handshake, have arrived before it saves. */
static void resume_with(struct daemon *d, const char *version)
{
    char out[16384];

    shell(out, sizeof(out),
          "printf 'GET /hello HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
          "openssl s_client -connect 127.0.0.1:%d %s -CAfile ca.pem -servername localhost "
          "-ign_eof -sess_out sess.pem", d->port, version);
    assert_non_null(strstr(out, "Hello, TLS!"));
    assert_non_null(strstr(out, "New, TLSv1."));
    shell(out, sizeof(out),
          "printf 'GET /hello HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
          "openssl s_client -connect 127.0.0.1:%d %s -CAfile ca.pem -servername localhost "
          "-ign_eof -sess_in sess.pem", d->port, version);
    assert_non_null(strstr(out, "Hello, TLS!"));
    if (strstr(out, "Reused, TLSv1.") == NULL)
        fail_msg("%s: not resumed:\n%s", version, out);
}

static void https_sessions_resume_from_tickets_on_tls_1_2_and_1_3(void **state)
{
    struct daemon d;

    if (!have("openssl"))
        SKIP("needs the openssl command");
    start_tls(&d, EC_PAIR);
    resume_with(&d, "-tls1_3");
    resume_with(&d, "-tls1_2");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- --check-config ---- */

static void https_check_config_names_bad_certificates_by_their_json_path(void **state)
{
    char out[16384];

    write_config("bad.json",
                 "[{\"address\": \"127.0.0.1:0\", \"tls\": {\"cert\": \"ec.pem\", \"key\": \"rsa.key\"}},\n"
                 " {\"address\": \"127.0.0.1:0\", \"tls\": {\"cert\": \"nowhere.pem\", \"key\": \"ec.key\"}},\n"
                 " {\"address\": \"127.0.0.1:0\", \"tls\": [{\"cert\": \"badchain.pem\", \"key\": \"chain.key\"}]}]");
    path_of(out, sizeof(out), "bad.json");
    assert_int_not_equal(run_to_end("--check-config", out, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "modules.http.listen[0].tls.key: rsa.key does not match the "
                                "certificate in ec.pem"));
    assert_non_null(strstr(out, "modules.http.listen[1].tls.cert: cannot read nowhere.pem: No "
                                "such file or directory"));
    assert_non_null(strstr(out, "modules.http.listen[2].tls[0].cert: badchain.pem: certificate 2 "
                                "did not issue certificate 1: the chain is out of order"));
    /* expired: a warning, and the config passes */
    write_config("expired.json", "[{\"address\": \"127.0.0.1:0\", \"tls\": "
                                 "{\"cert\": \"expired.pem\", \"key\": \"ec.key\"}}]");
    path_of(out, sizeof(out), "expired.json");
    assert_int_equal(run_to_end("--check-config", out, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "[warning]"));
    assert_non_null(strstr(out, "modules.http.listen[0].tls.cert: expired.pem expired"));
    assert_non_null(strstr(out, "configuration OK"));
}

/* ---- SIGHUP with new certificate files ---- */

struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

/* A blocking OpenSSL client: connects and handshakes, trusting ca.pem. */
static void conn_open(struct conn *c, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char ca[512];
    struct timeval tv = {IO_MS / 1000, 0};

    path_of(ca, sizeof(ca), "ca.pem");
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* a bound, not a wait */
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    assert_int_equal(SSL_connect(c->ssl), 1);
}

/* The serial number of the certificate the server showed, in hex. */
static void conn_serial(struct conn *c, char *out, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = BN_bn2hex(bn);

    snprintf(out, len, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
}

/* GET /hello on the connection (keep-alive): the body must come back. */
static void conn_get(struct conn *c)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char buf[1024] = "";
    int got = 0, n;

    assert_int_equal(SSL_write(c->ssl, req, sizeof(req) - 1), (int)sizeof(req) - 1);
    while (strstr(buf, "Hello, TLS!") == NULL) {
        n = SSL_read(c->ssl, buf + got, (int)sizeof(buf) - 1 - got);
        assert_true(n > 0);
        got += n;
        buf[got] = '\0';
    }
    assert_true(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
}

static void conn_close(struct conn *c)
{
    SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    ERR_clear_error();
}

static void copy(const char *from, const char *to)
{
    char out[1024];

    assert_int_equal(shell(out, sizeof(out), "cp %s %s.new && mv %s.new %s", from, to, to, to), 0);
}

static void https_sighup_with_new_certificate_files_serves_them_to_new_handshakes(void **state)
{
    struct daemon d;
    struct conn old, fresh, after_bad;
    char s_old[128], s_new[128], s_after[128];

    copy("ec.pem", "site.pem");
    copy("ec.key", "site.key");
    start_tls(&d, "{\"cert\": \"site.pem\", \"key\": \"site.key\"}");
    conn_open(&old, d.port);
    conn_get(&old);
    conn_serial(&old, s_old, sizeof(s_old));

    /* new files under the same names (as certbot renews), then SIGHUP */
    copy("rsa.pem", "site.pem");
    copy("rsa.key", "site.key");
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "certificates read again for new connections");
    conn_open(&fresh, d.port);
    conn_get(&fresh);
    conn_serial(&fresh, s_new, sizeof(s_new));
    assert_string_not_equal(s_old, s_new);
    conn_get(&old); /* the established connection carries on */

    /* a key that does not match: the reload is rejected, the RSA one serves */
    copy("ec.key", "site.key");
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "reload rejected");
    assert_non_null(strstr(d.log, "listen[0].tls.key: site.key does not match"));
    conn_open(&after_bad, d.port);
    conn_get(&after_bad);
    conn_serial(&after_bad, s_after, sizeof(s_after));
    assert_string_equal(s_new, s_after);
    conn_get(&old);
    conn_get(&fresh);
    conn_close(&old);
    conn_close(&fresh);
    conn_close(&after_bad);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- a real scanner: testssl.sh ---- */

/* testssl.sh's own checks (protocols, cipher categories, forward secrecy,
 * the server's preferences, its defaults and certificates, headers and
 * every vulnerability it knows) against the listener, trusting the test
 * CA; its JSON findings may hold nothing rated HIGH or CRITICAL.  Each
 * cipher one by one and the client simulations are left out: they take
 * most of its time and rate nothing. */
static void https_testssl_finds_nothing_high_or_critical(void **state)
{
    static char out[1 << 16];
    struct daemon d;
    char *checked;

    if (!have("testssl"))
        SKIP("needs testssl.sh (the Debian package testssl.sh)");
    if (!have("python3"))
        SKIP("needs python3 to read testssl's JSON");
    write_file("findings.py",
               "import json\n"
               "d = json.load(open('testssl.json'))\n"
               "for x in d:\n"
               "    if x.get('severity') in ('HIGH', 'CRITICAL'):\n"
               "        print('FINDING', x['severity'], x['id'], x['finding'])\n"
               "    if x.get('id') in ('TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3', 'ALPN'):\n"
               "        print(x['id'], x['finding'])\n"
               "print('checked', len(d))\n");
    start_tls(&d, "[" EC_PAIR ", " RSA_PAIR "]");
    shell(out, sizeof(out),
          "testssl --quiet --color 0 --warnings off --ip one --add-ca ca.pem "
          "-p -s -f -P -S -h -U --jsonfile testssl.json 127.0.0.1:%d >testssl.out 2>&1; "
          "python3 findings.py",
          d.port);
    fprintf(stderr, "%s", out);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    checked = strstr(out, "checked ");
    assert_non_null(checked);
    assert_true(atoi(checked + 8) > 50); /* it did run its checks */
    assert_non_null(strstr(out, "TLS1 not offered"));
    assert_non_null(strstr(out, "TLS1_1 not offered"));
    assert_non_null(strstr(out, "TLS1_3 offered"));
    assert_null(strstr(out, "FINDING"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest scanner[] = {
        cmocka_unit_test_setup_teardown(https_testssl_finds_nothing_high_or_critical, setup,
                                        teardown),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(https_curl_gets_hello_over_ipv4_and_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(https_server_blocks_share_a_tls_address, setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_plain_http_to_the_tls_port_gets_400_in_plain_text_then_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(https_stalled_handshake_ends_at_header_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            https_s_client_refuses_tls_1_0_and_1_1_and_chooses_alpn_http_1_1, setup, teardown),
        cmocka_unit_test_setup_teardown(https_sessions_resume_from_tickets_on_tls_1_2_and_1_3,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_check_config_names_bad_certificates_by_their_json_path, setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_sighup_with_new_certificate_files_serves_them_to_new_handshakes, setup,
            teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "testssl") == 0) /* its own CTest: slow */
        return skips_exit(cmocka_run_group_tests(scanner, NULL, NULL));
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
