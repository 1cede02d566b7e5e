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
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* ---- SNI: a certificate per server block ---- */

/* A certificate for name (its CN and only SAN), signed by the test CA,
 * into stem.pem / stem.key. */
static void make_cert(const char *stem, const char *name)
{
    char out[4096];

    if (shell(out, sizeof(out),
              "openssl req -x509 -CA ca.pem -CAkey ca.key -newkey ec "
              "-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.pem -days 30 "
              "-subj '/CN=%s' -addext 'subjectAltName=DNS:%s' "
              "-addext 'basicConstraints=critical,CA:FALSE' "
              "-addext 'extendedKeyUsage=serverAuth'",
              stem, stem, name, name) != 0)
        fail_msg("openssl req -x509 for %s: %s", name, out);
}

/* Five server blocks on one HTTPS address: the default (localhost, the
 * ec.pem certificate), a.example and b.example with their own, a
 * wildcard, and c.example with "tls": true (the default's). */
static void start_sni(struct daemon *d)
{
    char text[4096];

    make_cert("a", "a.example");
    make_cert("b", "b.example");
    make_cert("w", "*.w.example");
#define SNI_LISTEN(tls) "\"listen\": [{\"address\": \"127.0.0.1:0\", \"tls\": " tls "}]"
#define SNI_HELLO(body) "\"routes\": [{\"path\": \"/hello\", \"body\": \"" body "\"}]"
    snprintf(text, sizeof(text),
             "{\"modules_dir\": \"modules\", \"log_level\": \"info\", \"shutdown_timeout_ms\": 3000,\n"
             " \"modules\": {\"http\": {\"servers\": [\n"
             "  {\"names\": [\"a.example\"], " SNI_LISTEN("{\"cert\": \"a.pem\", \"key\": \"a.key\"}")
             ", " SNI_HELLO("site a") "},\n"
             "  {\"names\": [\"localhost\"], \"default\": true, " SNI_LISTEN(EC_PAIR) ", "
             SNI_HELLO("default") "},\n"
             "  {\"names\": [\"b.example\", \"B2.Example.\"], "
             SNI_LISTEN("{\"cert\": \"b.pem\", \"key\": \"b.key\"}") ", " SNI_HELLO("site b") "},\n"
             "  {\"names\": [\"*.w.example\"], "
             SNI_LISTEN("{\"cert\": \"w.pem\", \"key\": \"w.key\"}") ", " SNI_HELLO("site w") "},\n"
             "  {\"names\": [\"c.example\"], " SNI_LISTEN("true") ", " SNI_HELLO("site c") "}]}}}\n");
    write_file("sni.json", text);
    daemon_start(d, "sni.json", NULL);
    d->port = number_after(d, TLS_PORT_LINE);
    wait_log(d, "ready");
}

/* The subject CN of the certificate the server shows to a handshake with
 * servername (NULL: no SNI), as openssl s_client prints it. */
static void sni_subject_with(const struct daemon *d, const char *servername, const char *extra,
                             char *cn, size_t len)
{
    static char out[16384];
    char opt[300];
    const char *p;

    if (servername != NULL)
        snprintf(opt, sizeof(opt), "-servername '%s'", servername);
    else
        snprintf(opt, sizeof(opt), "-noservername");
    shell(out, sizeof(out), "openssl s_client -connect 127.0.0.1:%d %s %s -CAfile ca.pem </dev/null",
          d->port, opt, extra);
    if ((p = strstr(out, "\nsubject=")) == NULL)
        fail_msg("no certificate for %s:\n%s", servername != NULL ? servername : "(no SNI)", out);
    p += strlen("\nsubject=");
    snprintf(cn, len, "%.*s", (int)strcspn(p, "\n"), p);
}

static void sni_subject(const struct daemon *d, const char *servername, char *cn, size_t len)
{
    sni_subject_with(d, servername, "", cn, len);
}

static void https_sni_picks_the_certificate_of_the_server_block_that_names_it(void **state)
{
    struct daemon d;
    char cn[256];

    if (!have("openssl"))
        SKIP("needs the openssl command");
    start_sni(&d);
    sni_subject(&d, "a.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = a.example");
    sni_subject(&d, "b.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = b.example");
    /* a key share for a group the server does not take: a HelloRetryRequest,
     * and a second ClientHello, to the SSL_CTX switched to */
    sni_subject_with(&d, "a.example", "-tls1_3 -groups X448:P-256", cn, sizeof(cn));
    assert_string_equal(cn, "CN = a.example");
    /* the Host's rules: any case, one trailing dot */
    sni_subject(&d, "B2.EXAMPLE.", cn, sizeof(cn));
    assert_string_equal(cn, "CN = b.example");
    /* a wildcard matches a name under it, not the name itself */
    sni_subject(&d, "x.w.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = *.w.example");
    sni_subject(&d, "deeper.x.w.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = *.w.example");
    sni_subject(&d, "w.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = localhost");
    /* a block without a certificate of its own, an unknown name, no SNI:
     * the default server's */
    sni_subject(&d, "c.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = localhost");
    sni_subject(&d, "unknown.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = localhost");
    sni_subject(&d, NULL, cn, sizeof(cn));
    assert_string_equal(cn, "CN = localhost");
    /* SIGHUP reads every block's certificates again, the names stay theirs */
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "certificates read again for new connections");
    sni_subject(&d, "a.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = a.example");
    sni_subject(&d, "x.w.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = *.w.example");
    sni_subject(&d, "unknown.example", cn, sizeof(cn));
    assert_string_equal(cn, "CN = localhost");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* curl checks each name against the certificate it gets: each site
 * answers over its own. */
static void https_sni_curl_reaches_each_name_with_its_certificate(void **state)
{
    static const char *const name[] = {"a.example", "b.example", "x.w.example", "localhost"};
    static const char *const body[] = {"site a", "site b", "site w", "default"};
    struct daemon d;
    char out[4096];
    size_t i;

    if (!have("curl") || !have("openssl"))
        SKIP("needs curl and the openssl command");
    start_sni(&d);
    for (i = 0; i < sizeof(name) / sizeof(name[0]); i++) {
        if (shell(out, sizeof(out),
                  "curl -sS --max-time 20 --cacert ca.pem --resolve %s:%d:127.0.0.1 "
                  "https://%s:%d/hello", name[i], d.port, name[i], d.port) != 0)
            fail_msg("curl https://%s: %s", name[i], out);
        assert_string_equal(out, body[i]);
    }
    /* c.example has the default's certificate, which does not name it */
    assert_int_not_equal(shell(out, sizeof(out),
                               "curl -sS --max-time 20 --cacert ca.pem --resolve "
                               "c.example:%d:127.0.0.1 https://c.example:%d/hello",
                               d.port, d.port),
                         0);
    assert_non_null(strstr(out, "SSL"));
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* A ticket issued under b.example's certificate resumes: every set shares
 * the address's ticket keys. */
static void https_sni_sessions_resume_under_a_server_block_certificate(void **state)
{
    static const char *const version[] = {"-tls1_3", "-tls1_2"};
    struct daemon d;
    static char out[16384];
    size_t i;

    if (!have("openssl"))
        SKIP("needs the openssl command");
    start_sni(&d);
    for (i = 0; i < 2; i++) {
        shell(out, sizeof(out),
              "printf 'GET /hello HTTP/1.1\\r\\nHost: b.example\\r\\nConnection: close\\r\\n\\r\\n' | "
              "openssl s_client -connect 127.0.0.1:%d %s -CAfile ca.pem -servername b.example "
              "-ign_eof -sess_out sess.pem", d.port, version[i]);
        assert_non_null(strstr(out, "site b"));
        assert_non_null(strstr(out, "subject=CN = b.example"));
        assert_non_null(strstr(out, "New, TLSv1."));
        shell(out, sizeof(out),
              "printf 'GET /hello HTTP/1.1\\r\\nHost: b.example\\r\\nConnection: close\\r\\n\\r\\n' | "
              "openssl s_client -connect 127.0.0.1:%d %s -CAfile ca.pem -servername b.example "
              "-ign_eof -sess_in sess.pem", d.port, version[i]);
        assert_non_null(strstr(out, "site b"));
        if (strstr(out, "Reused, TLSv1.") == NULL)
            fail_msg("%s: not resumed:\n%s", version[i], out);
    }
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* The check: one address is TLS in every server block or in none, and
 * the default server of a TLS address has a certificate. */
static void https_sni_check_config_names_mixed_entries_and_a_default_without_certificate(void **state)
{
    char out[16384];

    write_file("mixed.json",
               "{\"modules_dir\": \"modules\", \"modules\": {\"http\": {\"servers\": [\n"
               "  {\"names\": [\"a.example\"], \"listen\": [{\"address\": \"127.0.0.1:0\", "
               "\"tls\": " EC_PAIR "}]},\n"
               "  {\"names\": [\"b.example\"], \"listen\": [\"127.0.0.1:0\"]}]}}}\n");
    path_of(out, sizeof(out), "mixed.json");
    assert_int_not_equal(run_to_end("--check-config", out, out, sizeof(out)), 0);
    if (strstr(out, "modules.http.servers[1].listen[0]: 127.0.0.1:0 is HTTPS in "
                    "servers[0].listen[0]") == NULL)
        fail_msg("%s", out);
    write_file("nocert.json",
               "{\"modules_dir\": \"modules\", \"modules\": {\"http\": {\"servers\": [\n"
               "  {\"names\": [\"a.example\"], \"listen\": [{\"address\": \"127.0.0.1:0\", "
               "\"tls\": " EC_PAIR "}]},\n"
               "  {\"names\": [\"b.example\"], \"default\": true, \"listen\": [{\"address\": "
               "\"127.0.0.1:0\", \"tls\": true}]}]}}}\n");
    path_of(out, sizeof(out), "nocert.json");
    assert_int_not_equal(run_to_end("--check-config", out, out, sizeof(out)), 0);
    if (strstr(out, "modules.http.servers[1].listen[0].tls: true borrows the certificate of "
                    "the default server") == NULL)
        fail_msg("%s", out);
    write_config("flat.json", "[{\"address\": \"127.0.0.1:0\", \"tls\": true}]");
    path_of(out, sizeof(out), "flat.json");
    assert_int_not_equal(run_to_end("--check-config", out, out, sizeof(out)), 0);
    if (strstr(out, "modules.http.listen[0].tls: true borrows") == NULL)
        fail_msg("%s", out);
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

/* ---- SIGHUP under load ---- */

/* A client thread (no cmocka asserts off the main thread: failures are
 * counted, the first one's reason kept): new handshakes, one request
 * each, and requests on one keep-alive connection opened before the
 * reload, in turn, until told to stop. */
struct load {
    int port;
    char ca[512];
    char old_serial[128];       /* set before the thread starts */
    _Atomic bool stop, reloaded;
    _Atomic long requests, failures, fresh, keepalive_after;
    _Atomic long new_serial;    /* handshakes after the reload that showed another serial */
    _Atomic long old_after;     /* ... that showed the old one */
    char why[256];              /* the first failure */
    pthread_mutex_t lock;       /* with moved: a round is done */
    pthread_cond_t moved;
};

static void load_fail(struct load *l, const char *what)
{
    if (atomic_fetch_add(&l->failures, 1) == 0)
        snprintf(l->why, sizeof(l->why), "%s (%s)", what,
                 ERR_reason_error_string(ERR_peek_error()) != NULL
                     ? ERR_reason_error_string(ERR_peek_error())
                     : strerror(errno));
}

/* Connects and handshakes with SNI localhost: 0, or -1. */
static int load_open(struct load *l, struct conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
    struct timeval tv = {IO_MS / 1000, 0};

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->ssl = NULL;
    c->ctx = NULL;
    if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* a bound, not a wait */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        SSL_CTX_load_verify_locations(c->ctx, l->ca, NULL) != 1)
        return -1;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if ((c->ssl = SSL_new(c->ctx)) == NULL)
        return -1;
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    return SSL_connect(c->ssl) == 1 ? 0 : -1;
}

/* GET /hello, keep-alive: 0 when the whole 200 came back, else -1. */
static int load_get(struct conn *c)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char buf[1024] = "";
    int got = 0, n;

    if (SSL_write(c->ssl, req, sizeof(req) - 1) != (int)sizeof(req) - 1)
        return -1;
    while (strstr(buf, "\r\n\r\nHello, TLS!") == NULL) {
        if (got >= (int)sizeof(buf) - 1 || (n = SSL_read(c->ssl, buf + got, (int)sizeof(buf) - 1 - got)) <= 0)
            return -1;
        got += n;
        buf[got] = '\0';
    }
    return strncmp(buf, "HTTP/1.1 200 ", 13) == 0 ? 0 : -1;
}

static void load_close(struct conn *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    ERR_clear_error();
}

static void *load_run(void *arg)
{
    struct load *l = arg;
    struct conn ka, c;
    char serial[128];
    bool reloaded;

    if (load_open(l, &ka) != 0) {
        load_fail(l, "the keep-alive connection's handshake");
        load_close(&ka);
        return NULL;
    }
    while (!atomic_load(&l->stop)) {
        reloaded = atomic_load(&l->reloaded);
        if (load_open(l, &c) != 0 || load_get(&c) != 0) {
            load_fail(l, "a new connection");
        } else {
            conn_serial(&c, serial, sizeof(serial));
            atomic_fetch_add(&l->fresh, 1);
            if (reloaded && strcmp(serial, l->old_serial) != 0)
                atomic_fetch_add(&l->new_serial, 1);
            else if (reloaded)
                atomic_fetch_add(&l->old_after, 1);
        }
        load_close(&c);
        atomic_fetch_add(&l->requests, 1);
        if (load_get(&ka) != 0)
            load_fail(l, "the keep-alive connection");
        else if (reloaded)
            atomic_fetch_add(&l->keepalive_after, 1);
        atomic_fetch_add(&l->requests, 1);
        pthread_mutex_lock(&l->lock);
        pthread_cond_broadcast(&l->moved);
        pthread_mutex_unlock(&l->lock);
    }
    load_close(&ka);
    return NULL;
}

/* Waits (bounded: a minute) until *counter reaches n or a request
 * failed; the client thread signals after each round. */
static void wait_count(_Atomic long *counter, long n, struct load *l)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&l->lock);
    while (atomic_load(counter) < n && atomic_load(&l->failures) == 0 &&
           pthread_cond_timedwait(&l->moved, &l->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&l->lock);
}

static void https_sighup_under_load_keeps_every_request_and_serves_the_new_certificate(void **state)
{
    static struct load l;
    struct daemon d;
    struct conn probe;
    pthread_t th;
    long before;

    make_cert("renewed", "localhost");
    copy("ec.pem", "site.pem");
    copy("ec.key", "site.key");
    start_tls(&d, "{\"cert\": \"site.pem\", \"key\": \"site.key\"}");
    memset(&l, 0, sizeof(l));
    pthread_mutex_init(&l.lock, NULL);
    pthread_cond_init(&l.moved, NULL);
    l.port = d.port;
    path_of(l.ca, sizeof(l.ca), "ca.pem");
    conn_open(&probe, d.port);
    conn_serial(&probe, l.old_serial, sizeof(l.old_serial));
    conn_close(&probe);
    assert_int_equal(pthread_create(&th, NULL, load_run, &l), 0);
    wait_count(&l.requests, 50, &l);

    /* renewed files under the same names (as certbot does), then SIGHUP
     * while the client goes on */
    copy("renewed.pem", "site.pem");
    copy("renewed.key", "site.key");
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_next(&d, "certificates read again for new connections");
    atomic_store(&l.reloaded, true);
    before = atomic_load(&l.requests);
    wait_count(&l.new_serial, 20, &l);
    wait_count(&l.keepalive_after, 20, &l);
    wait_count(&l.requests, before + 50, &l);
    atomic_store(&l.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_cond_destroy(&l.moved);
    pthread_mutex_destroy(&l.lock);
    fprintf(stderr, "reload under load: %ld requests (%ld new handshakes), %ld failed; after "
            "the reload %ld handshakes saw the renewed certificate, %ld keep-alive requests "
            "went on\n", atomic_load(&l.requests), atomic_load(&l.fresh),
            atomic_load(&l.failures), atomic_load(&l.new_serial),
            atomic_load(&l.keepalive_after));
    if (atomic_load(&l.failures) != 0)
        fail_msg("%ld failed request(s); the first: %s", atomic_load(&l.failures), l.why);
    assert_true(atomic_load(&l.new_serial) >= 20);
    assert_int_equal(atomic_load(&l.old_after), 0);
    assert_true(atomic_load(&l.keepalive_after) >= 20);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- a handshake flood ---- */

#define FLOOD 5000
#define FLOOD_BATCH 100         /* connections open at once: far below the fd cap */

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    fclose(f);
    return kib;
}

static int open_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *fdir;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((fdir = opendir(path)) == NULL)
        return -1;
    while ((e = readdir(fdir)) != NULL)
        n += e->d_name[0] != '.';
    closedir(fdir);
    return n;
}

/* Waits (bounded) until the daemon holds at most n descriptors: every
 * flood connection it accepted is closed.  Its descriptor table is the
 * state that says so; it is looked at every 20 ms. */
static void wait_fds_at_most(struct daemon *d, int n)
{
    int64_t until = now_ms() + 30000;
    int now;

    while ((now = open_fds(d->pid)) > n && now_ms() < until)
        pump(d, 20);
    if (now > n)
        fail_msg("the daemon still holds %d descriptors (%d before the flood)", now, n);
}

/* One flood connection, kind by i: a ClientHello cut short, garbage in a
 * handshake record, bytes that are not TLS at all, a full handshake then
 * close at once, a connect then a reset. */
static void flood_one(int port, SSL_CTX *ctx, int i, int fd)
{
    static const char half[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    static const char junk[] = "\x16\x03\x01\x00\x20" "0123456789abcdef0123456789abcdef";
    static const char text[] = "\x01\x02\x03 not TLS at all\r\n\r\n";
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct linger lg = {1, 0};
    SSL *ssl;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail_msg("flood connection %d: connect: %s", i, strerror(errno));
    switch (i % 5) {
    case 0:
        (void)!write(fd, half, sizeof(half) - 1);
        break;
    case 1:
        (void)!write(fd, junk, sizeof(junk) - 1);
        break;
    case 2:
        (void)!write(fd, text, sizeof(text) - 1);
        break;
    case 3:
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "localhost");
        if (SSL_connect(ssl) != 1)
            fail_msg("flood connection %d: handshake failed", i);
        SSL_free(ssl); /* and close without close_notify */
        break;
    default:
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* close = RST */
        break;
    }
}

/* FLOOD connections in batches; between batches a new connection and the
 * established ka are served. */
static void flood(struct daemon *d, struct conn *ka)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int fds[FLOOD_BATCH], i, k;
    struct conn c;

    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    for (i = 0; i < FLOOD; i += FLOOD_BATCH) {
        for (k = 0; k < FLOOD_BATCH; k++) {
            fds[k] = socket(AF_INET, SOCK_STREAM, 0);
            assert_true(fds[k] >= 0);
            flood_one(d->port, ctx, i + k, fds[k]);
        }
        for (k = 0; k < FLOOD_BATCH; k++)
            close(fds[k]);
        pump(d, 0);
        conn_open(&c, d->port);
        conn_get(&c);
        conn_close(&c);
        conn_get(ka);
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
}

/* ASan keeps freed memory in quarantine (its RSS only grows): there its
 * leak checker at the daemon's exit is the bound, not the RSS. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUNDED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_BOUNDED 0
#endif
#endif
#ifndef RSS_BOUNDED
#define RSS_BOUNDED 1
#endif

static void https_handshake_flood_leaves_the_server_serving_with_bounded_memory(void **state)
{
    struct daemon d;
    struct conn ka, c;
    int base_fds, i;
    long rss0, rss1, rss2;
    int64_t start, ms1, ms2;

    write_file("flood.json",
               "{\"modules_dir\": \"modules\", \"log_level\": \"info\", \"shutdown_timeout_ms\": 3000,\n"
               " \"modules\": {\"http\": {\"header_timeout_ms\": 2000,\n"
               "  \"listen\": [{\"address\": \"127.0.0.1:0\", \"tls\": " EC_PAIR "}],\n"
               "  \"routes\": [{\"path\": \"/hello\", \"content_type\": \"text/plain\", "
               "\"body\": \"Hello, TLS!\"}]}}}\n");
    daemon_start(&d, "flood.json", NULL);
    d.port = number_after(&d, TLS_PORT_LINE);
    wait_log(&d, "ready");
    /* warm: the first handshakes load what OpenSSL loads once */
    for (i = 0; i < 20; i++) {
        conn_open(&c, d.port);
        conn_get(&c);
        conn_close(&c);
    }
    conn_open(&ka, d.port); /* established before the flood, used through it */
    conn_get(&ka);
    base_fds = open_fds(d.pid);
    rss0 = rss_kib(d.pid);
    start = now_ms();
    flood(&d, &ka);
    wait_fds_at_most(&d, base_fds);
    ms1 = now_ms() - start;
    rss1 = rss_kib(d.pid);
    /* a second flood: a leak per connection would grow the RSS again */
    start = now_ms();
    flood(&d, &ka);
    wait_fds_at_most(&d, base_fds);
    ms2 = now_ms() - start;
    rss2 = rss_kib(d.pid);
    /* and afterwards */
    for (i = 0; i < 20; i++) {
        conn_open(&c, d.port);
        conn_get(&c);
        conn_close(&c);
    }
    conn_get(&ka);
    conn_close(&ka);
    fprintf(stderr, "flood: 2 x %d connections (%lld ms, %lld ms); daemon RSS %ld KiB before, "
            "%ld KiB after the first, %ld KiB after the second\n", FLOOD, (long long)ms1,
            (long long)ms2, rss0, rss1, rss2);
    if (RSS_BOUNDED) {
        assert_true(rss1 - rss0 < 32 * 1024); /* what the allocator keeps, at most */
        assert_true(rss2 - rss1 < 2 * 1024);  /* 5,000 more: not 400 bytes each */
    }
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

/* ---- kernel TLS ("ktls") ---- */

#define KTLS_BYTES (8 * 1024 * 1024 + 333)

/* Whether the kernel takes TLS keys: TCP_ULP "tls" on a connected
 * loopback socket, the test's own probe (not the daemon's).  0, or the
 * errno. */
static int kernel_tls(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

    assert_true(l >= 0 && c >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    err = setsockopt(c, IPPROTO_TCP, 31 /* TCP_ULP */, "tls", sizeof("tls")) == 0 ? 0 : errno;
    close(c);
    close(l);
    return err;
}

/* The kernel's own count of sockets given TLS sending keys in software,
 * or -1 where it keeps none. */
static long kernel_tx_sw(void)
{
    char text[4096], *at;
    FILE *f = fopen("/proc/net/tls_stat", "r");
    size_t n;

    if (f == NULL)
        return -1;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    at = strstr(text, "TlsTxSw");
    return at != NULL ? strtol(at + strlen("TlsTxSw"), NULL, 10) : -1;
}

/* A daemon with two HTTPS addresses — the first with "ktls": true, the
 * second without — and a plain one for /metrics, serving www/ where
 * big.bin is a patterned file of KTLS_BYTES.  Ports in *kport, *tport,
 * *mport. */
static void start_ktls(struct daemon *d, int *kport, int *tport, int *mport)
{
    unsigned char *data = malloc(KTLS_BYTES);
    char text[2048];
    size_t i;

    assert_non_null(data);
    for (i = 0; i < KTLS_BYTES; i++)
        data[i] = (unsigned char)(i * 13 + i / 65536);
    test_dir_mkdir("www");
    write_bytes("www/big.bin", data, KTLS_BYTES);
    free(data);
    *tport = free_port();
    *mport = free_port();
    snprintf(text, sizeof(text),
             "{\"modules_dir\": \"modules\", \"log_level\": \"info\", \"shutdown_timeout_ms\": 3000,\n"
             " \"modules\": {\"http\": {\"root\": \"www\", \"metrics_path\": \"/metrics\",\n"
             "  \"listen\": [{\"address\": \"127.0.0.1:0\", \"tls\": " EC_PAIR ", \"ktls\": true},\n"
             "             {\"address\": \"127.0.0.1:%d\", \"tls\": " EC_PAIR "},\n"
             "             \"127.0.0.1:%d\"]}}}\n",
             *tport, *mport);
    write_file("asyncd.json", text);
    daemon_start(d, "asyncd.json", NULL);
    *kport = number_after(d, TLS_PORT_LINE);
    wait_log(d, "ready");
}

/* curl's copy of big.bin over HTTPS from port compared with the file. */
static void get_big(int port)
{
    char out[4096];

    assert_int_equal(shell(out, sizeof(out),
                           "rm -f got.bin && curl -sS --http1.1 --max-time 60 --cacert ca.pem "
                           "--resolve localhost:%d:127.0.0.1 -o got.bin "
                           "https://localhost:%d/big.bin && cmp www/big.bin got.bin && echo same",
                           port, port),
                     0);
    if (strstr(out, "same") == NULL)
        fail_msg("big.bin over HTTPS on port %d differs:\n%s", port, out);
}

/* The kernel-TLS counters of /metrics: [0] connections, [1] bytes. */
static void ktls_metrics(int mport, unsigned long long *v)
{
    char out[65536], *at;

    assert_int_equal(shell(out, sizeof(out), "curl -sS --max-time 20 http://127.0.0.1:%d/metrics",
                           mport),
                     0);
    at = strstr(out, "\nasyncd_tls_kernel_connections_total ");
    assert_non_null(at);
    v[0] = strtoull(at + strlen("\nasyncd_tls_kernel_connections_total "), NULL, 10);
    at = strstr(out, "\nasyncd_tls_kernel_sent_bytes_total ");
    assert_non_null(at);
    v[1] = strtoull(at + strlen("\nasyncd_tls_kernel_sent_bytes_total "), NULL, 10);
}

/* Where the kernel has TLS: the file leaves by sendfile under the
 * kernel's keys (the daemon's counters and the kernel's own say so) and
 * arrives exact; the address without "ktls" still copies. */
static void https_ktls_sends_a_large_static_file_with_sendfile_where_the_kernel_has_tls(
    void **state)
{
    unsigned long long before[2], after[2], later[2];
    int kport, tport, mport, err = kernel_tls();
    long sw;
    struct daemon d;

    (void)state;
    if (err != 0)
        SKIP("the kernel has no TLS: setsockopt(TCP_ULP, \"tls\") on a loopback socket: %s "
             "(CONFIG_TLS, modprobe tls)", strerror(err));
    if (!have("curl"))
        SKIP("needs curl");
    start_ktls(&d, &kport, &tport, &mport);
    wait_log(&d, "kernel TLS (\"ktls\"): on:");
    wait_log(&d, ", TLS, kernel TLS)");
    ktls_metrics(mport, before);
    sw = kernel_tx_sw();
    get_big(kport);
    ktls_metrics(mport, after);
    assert_int_equal(after[0] - before[0], 1);
    assert_int_equal(after[1] - before[1], KTLS_BYTES);
    if (sw >= 0)
        assert_true(kernel_tx_sw() > sw);
    get_big(tport); /* no "ktls" there: copied, not counted */
    ktls_metrics(mport, later);
    assert_true(later[0] == after[0] && later[1] == after[1]);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* Everywhere: "ktls" on a kernel without TLS logs why once and serves the
 * file exact through OpenSSL (no kernel-TLS byte counted); on a kernel
 * with it, at least the address without "ktls" copies.  And the check
 * names a "ktls" that is not a boolean or has no "tls" beside it. */
static void https_ktls_without_kernel_tls_serves_files_through_openssl_and_logs_why(
    void **state)
{
    unsigned long long before[2], after[2];
    int kport, tport, mport, err = kernel_tls();
    const char *line;
    char out[16384];
    struct daemon d;

    (void)state;
    if (!have("curl"))
        SKIP("needs curl");
    start_ktls(&d, &kport, &tport, &mport);
    if (err != 0) {
        line = wait_log(&d, "kernel TLS (\"ktls\") is not available: ");
        assert_true(strstr(line, "TCP_ULP") != NULL && strstr(line, strerror(err)) != NULL);
        assert_null(strstr(d.log, "kernel TLS)"));
        assert_null(strstr(d.log, "kernel TLS (\"ktls\"): on"));
        /* once, not per address or connection */
        assert_null(strstr(line + strlen("kernel TLS (\"ktls\") is not"), "is not available"));
    }
    ktls_metrics(mport, before);
    get_big(tport);
    ktls_metrics(mport, after);
    assert_true(after[0] == before[0] && after[1] == before[1]);
    get_big(kport);
    get_big(kport);
    if (err != 0) {
        ktls_metrics(mport, after);
        assert_true(after[0] == 0 && after[1] == 0);
    }
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);

    write_config("bad.json", "[{\"address\": \"127.0.0.1:0\", \"tls\": " EC_PAIR ", "
                             "\"ktls\": \"yes\"},\n"
                             " {\"address\": \"127.0.0.1:0\", \"ktls\": true}]");
    path_of(out, sizeof(out), "bad.json");
    assert_int_not_equal(run_to_end("--check-config", out, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "modules.http.listen[0].ktls: must be true or false"));
    assert_non_null(strstr(out, "modules.http.listen[1].ktls: needs \"tls\" beside it"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest scanner[] = {
        cmocka_unit_test_setup_teardown(https_testssl_finds_nothing_high_or_critical, setup,
                                        teardown),
    };
    /* its own CTest (https_ktls): skipped where the kernel has no TLS */
    const struct CMUnitTest kernel[] = {
        cmocka_unit_test_setup_teardown(
            https_ktls_sends_a_large_static_file_with_sendfile_where_the_kernel_has_tls, setup,
            teardown),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(https_curl_gets_hello_over_ipv4_and_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_ktls_without_kernel_tls_serves_files_through_openssl_and_logs_why, setup,
            teardown),
        cmocka_unit_test_setup_teardown(https_server_blocks_share_a_tls_address, setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_sni_picks_the_certificate_of_the_server_block_that_names_it, setup, teardown),
        cmocka_unit_test_setup_teardown(https_sni_curl_reaches_each_name_with_its_certificate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_sni_sessions_resume_under_a_server_block_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(
            https_sni_check_config_names_mixed_entries_and_a_default_without_certificate, setup,
            teardown),
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
        cmocka_unit_test_setup_teardown(
            https_sighup_under_load_keeps_every_request_and_serves_the_new_certificate, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            https_handshake_flood_leaves_the_server_serving_with_bounded_memory, setup,
            teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "testssl") == 0) /* its own CTest: slow */
        return skips_exit(cmocka_run_group_tests(scanner, NULL, NULL));
    if (argc > 1 && strcmp(argv[1], "ktls") == 0)
        return skips_exit(cmocka_run_group_tests(kernel, NULL, NULL));
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
