/* TLS streams (async_io/tls.h) over 127.0.0.1, with certificates made at
 * test time (tests/tls_certs.h).  Both ends are ours except where a test
 * needs to see the wire as another client does: then a plain OpenSSL
 * client runs on a helper thread (async_blocking), blocking, as s_client
 * would. */
#define _GNU_SOURCE
#include "harness.h" /* fibers record failures with CHECK*, never assert */

#include "../tls_certs.h"

#include <async_io/http.h>
#include <async_io/tls.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>

static char dir[64];
static char ca_pem[128], ec_pem[128], ec_key[128], rsa_pem[128], rsa_key[128];
static char other_pem[128], other_key[128], expired_pem[128], chain_pem[128], chain_key[128],
    badchain_pem[128];

#define PLAIN_REPLY "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nplain HTTP to TLS\n"

static void path(char *out, const char *name)
{
    snprintf(out, 128, "%s/%s", dir, name);
}

static int make_certs(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/async-tls-test.XXXXXX");
    if (mkdtemp(dir) == NULL || tls_certs_make(dir) != 0) {
        fprintf(stderr, "cannot make test certificates in %s\n", dir);
        return -1;
    }
    path(ca_pem, "ca.pem");
    path(ec_pem, "ec.pem");
    path(ec_key, "ec.key");
    path(rsa_pem, "rsa.pem");
    path(rsa_key, "rsa.key");
    path(other_pem, "other.pem");
    path(other_key, "other.key");
    path(expired_pem, "expired.pem");
    path(chain_pem, "chain.pem");
    path(chain_key, "chain.key");
    path(badchain_pem, "badchain.pem");
    return 0;
}

static int remove_certs(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static async_tls_context *server_ctx_with(const char *cert, const char *key, const char *reply)
{
    struct async_tls_cert certs[] = {{cert, key}};
    struct async_tls_server_config cfg = {
        .certs = certs, .ncerts = 1, .alpn = "http/1.1", .plaintext_reply = reply};
    char why[256] = "";
    async_tls_context *ctx = async_tls_server_new(&cfg, why, sizeof(why));

    if (ctx == NULL)
        failed(__FILE__, __LINE__, "server context: %s", why);
    return ctx;
}

static async_tls_context *server_ctx(const char *reply)
{
    struct async_tls_cert certs[] = {{ec_pem, ec_key}, {rsa_pem, rsa_key}};
    struct async_tls_server_config cfg = {
        .certs = certs, .ncerts = 2, .alpn = "http/1.1", .plaintext_reply = reply};
    char why[256] = "";
    async_tls_context *ctx = async_tls_server_new(&cfg, why, sizeof(why));

    if (ctx == NULL)
        failed(__FILE__, __LINE__, "server context: %s", why);
    return ctx;
}

static async_tls_context *client_ctx(void)
{
    struct async_tls_client_config cfg = {.ca_file = ca_pem, .alpn = "http/1.1"};
    char why[256] = "";
    async_tls_context *ctx = async_tls_client_new(&cfg, why, sizeof(why));

    if (ctx == NULL)
        failed(__FILE__, __LINE__, "client context: %s", why);
    return ctx;
}

static char *address_of(async_listener *l, char *buf)
{
    snprintf(buf, 64, "127.0.0.1:%d", async_listener_port(l));
    return buf;
}

/* A TLS client stream to l, not yet handshaken. */
static async_stream *tls_connect(async_listener *l, async_tls_context *cctx, const char *name)
{
    char address[64];
    async_stream *s = async_tcp_connect(address_of(l, address));

    if (!CHECK(s != NULL))
        return NULL;
    if (!CHECK_OK(async_tls_client(s, cctx, name))) {
        async_stream_close(s);
        return NULL;
    }
    return s;
}

/* ---- echo ---- */

#define ECHO_BYTES (256 * 1024)

struct echo_server {
    async_listener *l;
    async_tls_context *ctx;
    int conns;                  /* how many to serve */
};

static void *echo_conn(void *arg)
{
    async_stream *s = arg;
    char buf[8192];
    ssize_t n;

    while ((n = async_stream_read(s, buf, sizeof(buf))) > 0)
        if (async_stream_write_all(s, buf, (size_t)n) != 0)
            break;
    CHECK(n == 0);
    async_stream_close(s);
    return NULL;
}

static void *echo_accept(void *arg)
{
    struct echo_server *e = arg;
    async_stream *s;
    int i;

    for (i = 0; i < e->conns && (s = async_listener_accept(e->l)) != NULL; i++) {
        if (!CHECK_OK(async_tls_server(s, e->ctx))) {
            async_stream_close(s);
            continue;
        }
        async_detach(async_spawn(echo_conn, s));
    }
    return NULL;
}

/* ---- the set-up most tests share ---- */

/* A TLS server on 127.0.0.1:0 whose fiber runs serve (echo_accept,
 * handshake_and_close) on e, and the client context of the test. */
struct fixture {
    struct echo_server e;
    async_tls_context *cctx;    /* the test's client context, or NULL */
    async_task *srv;
};

/* Binds, and spawns serve for conns connections with the server context
 * sctx (NULL: server_ctx(NULL)); cctx is freed with the rest.  False
 * (and a failed CHECK) when a piece could not be made: fixture_stop still
 * frees what was. */
static bool fixture_start(struct fixture *f, void *(*serve)(void *), async_tls_context *sctx,
                          async_tls_context *cctx, int conns)
{
    f->e = (struct echo_server){async_listener_bind("127.0.0.1:0"),
                                sctx != NULL ? sctx : server_ctx(NULL), conns};
    f->cctx = cctx;
    f->srv = NULL;
    if (!CHECK(f->e.l != NULL && f->e.ctx != NULL))
        return false;
    f->srv = async_spawn(serve, &f->e);
    return true;
}

/* Waits for the server fiber, then closes and frees all of it. */
static void fixture_stop(struct fixture *f)
{
    if (f->srv != NULL)
        async_join(f->srv, NULL);
    if (f->e.l != NULL)
        async_listener_close(f->e.l);
    if (f->e.ctx != NULL)
        async_tls_context_free(f->e.ctx);
    if (f->cctx != NULL)
        async_tls_context_free(f->cctx);
}

struct half {
    async_stream *s;
    const unsigned char *data;
};

static void *send_half(void *arg)
{
    struct half *h = arg;

    CHECK_OK(async_stream_write_all(h->s, h->data, ECHO_BYTES));
    return NULL;
}

/* Writes ECHO_BYTES and reads them back at once; the writer runs on this
 * fiber's worker, as a stream's fibers must (layer.h). */
static void echo_once(async_listener *l, async_tls_context *cctx, unsigned seed)
{
    async_stream *s = tls_connect(l, cctx, "localhost");
    unsigned char *data = malloc(ECHO_BYTES), *back = malloc(ECHO_BYTES);
    struct half h;
    async_task *w;
    size_t got = 0, i;
    ssize_t n;

    if (s == NULL)
        goto out;
    for (i = 0; i < ECHO_BYTES; i++)
        data[i] = (unsigned char)(rand_r(&seed) >> 5);
    h.s = s;
    h.data = data;
    w = async_spawn_on((unsigned)async_worker_id(), send_half, &h);
    while (got < ECHO_BYTES && (n = async_stream_read(s, back + got, ECHO_BYTES - got)) > 0)
        got += (size_t)n;
    async_join(w, NULL);
    CHECK_EQ(got, ECHO_BYTES);
    CHECK(memcmp(data, back, ECHO_BYTES) == 0);
    CHECK(strcmp(async_tls_alpn(s), "http/1.1") == 0);
    CHECK(strcmp(async_tls_version(s), "TLSv1.3") == 0);
    CHECK_EQ(async_tls_resumed(s), 0);
    async_stream_close(s);
out:
    free(data);
    free(back);
}

static void *echo_main(void *arg)
{
    struct fixture f;

    if (fixture_start(&f, echo_accept, NULL, client_ctx(), 1) && CHECK(f.cctx != NULL))
        echo_once(f.e.l, f.cctx, 7);
    fixture_stop(&f);
    return NULL;
}

static void tls_echo_of_256k_between_our_client_and_server(void **state)
{
    RUN(2, echo_main, NULL);
}

/* ---- many connections on 2 workers ---- */

#define MANY 40

struct many {
    async_listener *l;
    async_tls_context *cctx;
    unsigned seed;
};

static void *many_client(void *arg)
{
    struct many *m = arg;

    echo_once(m->l, m->cctx, m->seed);
    return NULL;
}

static void *many_main(void *arg)
{
    struct fixture f;
    struct many m[MANY];
    async_task *t[MANY];
    int i;

    if (fixture_start(&f, echo_accept, NULL, NULL, MANY)) {
        for (i = 0; i < MANY; i++) {
            m[i] = (struct many){f.e.l, client_ctx(), (unsigned)i};
            t[i] = async_spawn(many_client, &m[i]);
        }
        for (i = 0; i < MANY; i++) {
            async_join(t[i], NULL);
            async_tls_context_free(m[i].cctx);
        }
    }
    fixture_stop(&f);
    return NULL;
}

static void tls_40_concurrent_sessions_on_2_workers_share_one_context(void **state)
{
    RUN(2, many_main, NULL);
}

/* ---- verification ---- */

struct verify_case {
    const char *name;            /* what the client asks for */
    bool trust;                  /* the client trusts our CA */
};

static void *handshake_and_close(void *arg)
{
    struct echo_server *e = arg;
    async_stream *s = async_listener_accept(e->l);
    char b;

    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_tls_server(s, e->ctx));
    async_deadline(async_now_ms() + BOUND_MS);
    async_stream_read(s, &b, 1); /* fails one way or another */
    async_stream_close(s);
    return NULL;
}

static void *verify_main(void *arg)
{
    const struct verify_case *v = arg;
    struct async_tls_client_config system_cas = {0};
    struct fixture f;
    async_stream *s;

    if (fixture_start(&f, handshake_and_close, NULL,
                      v->trust ? client_ctx() : async_tls_client_new(&system_cas, NULL, 0), 1) &&
        (s = tls_connect(f.e.l, f.cctx, v->name)) != NULL) {
        async_deadline(async_now_ms() + BOUND_MS);
        CHECK_EQ(async_tls_handshake(s), -1);
        CHECK_EQ(errno, EPROTO);
        CHECK(strstr(async_tls_error(s), "certificate verify failed") != NULL);
        async_stream_close(s);
    }
    fixture_stop(&f);
    return NULL;
}

static void tls_client_refuses_a_certificate_for_another_name(void **state)
{
    struct verify_case v = {"other.example", true};

    RUN(1, verify_main, &v);
}

static void tls_client_refuses_a_certificate_from_an_unknown_ca(void **state)
{
    struct verify_case v = {"localhost", false};

    RUN(1, verify_main, &v);
}

/* ---- SNI sets ---- */

static int sni_calls;

static int pick_other(const char *name, void *arg)
{
    (void)arg;
    sni_calls++;
    return strcasecmp(name, "other.example") == 0 ? 0 : -1;
}

/* A server with localhost's certificate by default and other.example's as
 * an SNI set: a client that checks either name gets a certificate for
 * it. */
static void *sni_main(void *arg)
{
    static const char *const names[] = {"other.example", "localhost", "OTHER.example"};
    struct async_tls_cert def[] = {{ec_pem, ec_key}}, other[] = {{other_pem, other_key}};
    struct async_tls_cert_set sets[] = {{other, 1}};
    struct async_tls_server_config cfg = {
        .certs = def, .ncerts = 1, .alpn = "http/1.1",
        .sni_sets = sets, .nsni_sets = 1, .sni = pick_other};
    char why[256] = "";
    struct echo_server e = {async_listener_bind("127.0.0.1:0"),
                            async_tls_server_new(&cfg, why, sizeof(why)), 1};
    async_tls_context *cctx = client_ctx();
    size_t i;

    (void)arg;
    if (!CHECK(e.ctx != NULL))
        return NULL;
    async_deadline(async_now_ms() + BOUND_MS);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        async_task *srv = async_spawn(handshake_and_close, &e);
        async_stream *s = tls_connect(e.l, cctx, names[i]);

        if (s != NULL) {
            if (!CHECK_OK(async_tls_handshake(s)))
                fprintf(stderr, "%s: %s\n", names[i], async_tls_error(s));
            async_stream_close(s);
        }
        async_join(srv, NULL);
    }
    CHECK_EQ(sni_calls, 3);
    async_listener_close(e.l);
    async_tls_context_free(e.ctx);
    async_tls_context_free(cctx);
    return NULL;
}

static void tls_sni_sets_serve_the_certificate_of_the_name_asked_for(void **state)
{
    RUN(1, sni_main, NULL);
}

static void *ip_name_main(void *arg)
{
    struct fixture f;
    async_stream *s;
    char buf[4];

    if (fixture_start(&f, echo_accept, NULL, client_ctx(), 1) &&
        (s = tls_connect(f.e.l, f.cctx, "127.0.0.1")) != NULL) {
        CHECK_OK(async_tls_handshake(s));
        CHECK_OK(async_stream_write_all(s, "ping", 4));
        CHECK_EQ(async_stream_read(s, buf, 4), 4);
        async_stream_close(s);
    }
    fixture_stop(&f);
    return NULL;
}

static void tls_client_checks_an_ip_address_against_the_certificate(void **state)
{
    RUN(1, ip_name_main, NULL);
}

/* ---- a stalled handshake: deadline and cancel ---- */

struct stall {
    async_listener *l;
    async_tls_context *ctx;
    int how;                    /* 0: deadline, 1: cancel */
    atomic_int parked;
};

static void *stalled_server(void *arg)
{
    struct stall *st = arg;
    async_stream *s = async_listener_accept(st->l);
    int64_t start = async_now_ms();
    char b;

    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_tls_server(s, st->ctx));
    if (st->how == 0)
        async_deadline(start + 200);
    atomic_store(&st->parked, 1);
    CHECK_EQ(async_stream_read(s, &b, 1), -1);
    CHECK_EQ(errno, st->how == 0 ? ETIMEDOUT : ECANCELED);
    CHECK(async_now_ms() - start < BOUND_MS);
    async_stream_close(s);
    return NULL;
}

static void *stall_main(void *arg)
{
    struct stall *st = arg;
    char address[64];
    async_stream *c;
    async_task *srv;

    st->l = async_listener_bind("127.0.0.1:0");
    st->ctx = server_ctx(NULL);
    srv = async_spawn(stalled_server, st);
    c = async_tcp_connect(address_of(st->l, address)); /* says nothing */
    CHECK(c != NULL);
    if (st->how == 1) {
        CHECK(wait_parked(srv) && atomic_load(&st->parked) == 1);
        CHECK_OK(async_cancel(srv));
    }
    async_join(srv, NULL);
    async_stream_close(c);
    async_listener_close(st->l);
    async_tls_context_free(st->ctx);
    return NULL;
}

static void tls_stalled_handshake_ends_at_the_deadline(void **state)
{
    struct stall st = {.how = 0};

    RUN(1, stall_main, &st);
}

static void tls_stalled_handshake_ends_on_cancel(void **state)
{
    struct stall st = {.how = 1};

    RUN(1, stall_main, &st);
}

/* A server that accepts and never answers: the client's handshake is
 * bounded by its deadline too. */
static void *client_stall_main(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_tls_context *cctx = client_ctx();
    async_stream *s = tls_connect(l, cctx, "localhost");
    int64_t start = async_now_ms();

    async_deadline(start + 200);
    if (s != NULL) {
        CHECK_EQ(async_tls_handshake(s), -1);
        CHECK_EQ(errno, ETIMEDOUT);
        async_stream_close(s);
    }
    async_listener_close(l);
    async_tls_context_free(cctx);
    return NULL;
}

static void tls_client_handshake_with_a_silent_server_ends_at_the_deadline(void **state)
{
    RUN(1, client_stall_main, NULL);
}

/* ---- garbage and plain text ---- */

struct garbage {
    const char *bytes;
    size_t len;
    const char *reply;          /* the server's plaintext_reply */
    const char *expect;         /* what the peer reads back, or NULL: nothing */
};

static void *garbage_server(void *arg)
{
    void **a = arg;
    async_listener *l = a[0];
    const struct garbage *g = a[1];
    async_tls_context *ctx = server_ctx(g->reply);
    async_stream *s = async_listener_accept(l);
    char b[16];

    if (CHECK(s != NULL && ctx != NULL)) {
        CHECK_OK(async_tls_server(s, ctx));
        async_deadline(async_now_ms() + BOUND_MS);
        CHECK_EQ(async_stream_read(s, b, sizeof(b)), -1);
        CHECK_EQ(errno, EPROTO);
        CHECK(async_tls_error(s)[0] != '\0');
        async_stream_close(s);
    }
    async_tls_context_free(ctx);
    return NULL;
}

static void *garbage_main(void *arg)
{
    const struct garbage *g = arg;
    async_listener *l = async_listener_bind("127.0.0.1:0");
    void *a[2] = {l, (void *)g};
    async_task *srv = async_spawn(garbage_server, a);
    char address[64], buf[512];
    async_stream *c = async_tcp_connect(address_of(l, address));
    size_t got = 0;
    ssize_t n;

    async_deadline(async_now_ms() + BOUND_MS);
    CHECK_OK(async_stream_write_all(c, g->bytes, g->len));
    while (got < sizeof(buf) - 1 && (n = async_stream_read(c, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    if (g->expect != NULL)
        CHECK(strcmp(buf, g->expect) == 0);
    else
        CHECK(got == 0 || (unsigned char)buf[0] == 21); /* nothing, or a TLS alert */
    async_join(srv, NULL);
    async_stream_close(c);
    async_listener_close(l);
    return NULL;
}

static void tls_garbage_handshake_fails_eproto(void **state)
{
    /* a handshake record header, then nonsense */
    static const char junk[] = "\x16\x03\x01\x00\x20this is not a client hello at all!!";
    struct garbage g = {junk, sizeof(junk) - 1, NULL, NULL};

    RUN(1, garbage_main, &g);
}

static void tls_plain_text_to_a_tls_server_gets_the_plaintext_reply_then_the_end(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct garbage g = {req, sizeof(req) - 1, PLAIN_REPLY, PLAIN_REPLY};

    RUN(1, garbage_main, &g);
}

/* ---- close_notify, seen by a plain OpenSSL client ---- */

struct raw_client {
    int port;
    const char *sigalgs;         /* NULL: OpenSSL's */
    char got[64];
    int end;                     /* SSL_get_error of the read after the data */
    int key_type;                /* EVP_PKEY_id of the server's certificate key */
    SSL_SESSION *resume;         /* offered for resumption, or NULL */
    SSL_SESSION *session;        /* the session after the end (the caller frees) */
    int reused;
};

/* Blocking OpenSSL, on a helper thread: reads until the end. */
static void *raw_client_run(void *arg)
{
    struct raw_client *r = arg;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    X509 *peer;
    int fd = socket(AF_INET, SOCK_STREAM, 0), n, got = 0;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (!CHECK(ctx != NULL && fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0))
        goto out;
    SSL_CTX_load_verify_locations(ctx, ca_pem, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (r->sigalgs != NULL)
        SSL_CTX_set1_sigalgs_list(ctx, r->sigalgs);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (r->resume != NULL)
        SSL_set_session(ssl, r->resume);
    if (!CHECK_EQ(SSL_connect(ssl), 1))
        goto out;
    /* says something first, as clients of a server do: a server that
     * reads completes the handshake (and sends TLS 1.3's tickets) before
     * its answer */
    CHECK_EQ(SSL_write(ssl, "hi", 2), 2);
    if ((peer = SSL_get1_peer_certificate(ssl)) != NULL) {
        r->key_type = EVP_PKEY_id(X509_get0_pubkey(peer));
        X509_free(peer);
    }
    while ((n = SSL_read(ssl, r->got + got, (int)sizeof(r->got) - 1 - got)) > 0)
        got += n;
    r->end = SSL_get_error(ssl, n);
    /* read to the end: TLS 1.3's tickets, sent after the handshake, are in */
    r->reused = SSL_session_reused(ssl);
    r->session = SSL_get1_session(ssl);
    SSL_shutdown(ssl); /* without it, SSL_free marks the session not resumable */
out:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* The raw client's "hi". */
static void hear_hi(async_stream *s)
{
    char hi[2];
    size_t got = 0;
    ssize_t n;

    while (got < 2 && (n = async_stream_read(s, hi + got, 2 - got)) > 0)
        got += (size_t)n;
    CHECK(got == 2 && memcmp(hi, "hi", 2) == 0);
}

static void *bye_server(void *arg)
{
    void **a = arg;
    async_stream *s = async_listener_accept(a[0]);

    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_tls_server(s, a[1]));
    async_deadline(async_now_ms() + BOUND_MS);
    hear_hi(s);
    CHECK_OK(async_stream_write_all(s, "bye", 3));
    async_stream_close(s); /* close_notify, then the FIN */
    return NULL;
}

static void *close_notify_main(void *arg)
{
    struct raw_client *r = arg;
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_tls_context *ctx = server_ctx(NULL);
    void *a[2] = {l, ctx};
    async_task *srv = async_spawn(bye_server, a);

    r->port = async_listener_port(l);
    CHECK_OK(async_blocking(raw_client_run, r, NULL));
    async_join(srv, NULL);
    async_listener_close(l);
    async_tls_context_free(ctx);
    return NULL;
}

static void tls_close_sends_close_notify_that_the_peer_sees(void **state)
{
    struct raw_client r = {0};

    RUN(1, close_notify_main, &r);
    SSL_SESSION_free(r.session);
    assert_string_equal(r.got, "bye");
    /* ZERO_RETURN is a close_notify; a bare FIN would be SSL_ERROR_SSL
     * ("unexpected eof while reading") for this client */
    assert_int_equal(r.end, SSL_ERROR_ZERO_RETURN);
}

static void tls_ecdsa_and_rsa_certificates_serve_side_by_side(void **state)
{
    struct raw_client ec = {.sigalgs = "ECDSA+SHA256"};
    struct raw_client rsa = {.sigalgs = "rsa_pss_rsae_sha256"};

    RUN(1, close_notify_main, &ec);
    RUN(1, close_notify_main, &rsa);
    SSL_SESSION_free(ec.session);
    SSL_SESSION_free(rsa.session);
    assert_int_equal(ec.key_type, EVP_PKEY_EC);
    assert_int_equal(rsa.key_type, EVP_PKEY_RSA);
}

/* ---- session tickets: resumption and key rotation ---- */

#define TICKET_S 2

static void *bye_loop(void *arg)
{
    void **a = arg;
    async_stream *s;

    while ((s = async_listener_accept(a[0])) != NULL) {
        if (CHECK_OK(async_tls_server(s, a[1]))) {
            hear_hi(s);
            CHECK_OK(async_stream_write_all(s, "bye", 3));
        }
        async_stream_close(s);
    }
    return NULL;
}

/* The name of the key that encrypted a session's ticket: its first 16
 * bytes (tickets.c). */
static bool same_key(SSL_SESSION *a, SSL_SESSION *b)
{
    const unsigned char *ta, *tb;
    size_t la, lb;

    SSL_SESSION_get0_ticket(a, &ta, &la);
    SSL_SESSION_get0_ticket(b, &tb, &lb);
    return la >= 16 && lb >= 16 && memcmp(ta, tb, 16) == 0;
}

static void *rotation_main(void *arg)
{
    struct raw_client *r = arg; /* [4] */
    struct async_tls_cert certs[] = {{ec_pem, ec_key}};
    struct async_tls_server_config cfg = {
        .certs = certs, .ncerts = 1, .ticket_lifetime_s = TICKET_S};
    int64_t born = async_now_ms(); /* the first key's birth, at the latest */
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_tls_context *ctx = async_tls_server_new(&cfg, NULL, 0);
    void *a[2] = {l, ctx};
    async_task *srv = async_spawn(bye_loop, a);
    int i;

    for (i = 0; i < 4; i++)
        r[i].port = async_listener_port(l);
    CHECK_OK(async_blocking(raw_client_run, &r[0], NULL)); /* a full handshake: a ticket */
    r[1].resume = r[2].resume = r[3].resume = r[0].session;
    CHECK_OK(async_blocking(raw_client_run, &r[1], NULL)); /* resumed */
    /* past one lifetime: the key rotates, the old one still decrypts */
    async_sleep_ms((uint64_t)(born + TICKET_S * 1000 + 600 - async_now_ms()));
    CHECK_OK(async_blocking(raw_client_run, &r[2], NULL));
    /* two lifetimes after that: the first key is forgotten (and the
     * session's own lifetime, two ticket lifetimes, is over) */
    async_sleep_ms((uint64_t)(born + 3 * TICKET_S * 1000 + 1100 - async_now_ms()));
    /* (the new key, born at the third connection, is 4.5 s old: past two
     * lifetimes, the key before it is forgotten) */
    CHECK_OK(async_blocking(raw_client_run, &r[3], NULL));
    async_listener_close(l);
    async_join(srv, NULL);
    async_tls_context_free(ctx);
    return NULL;
}

static void tls_tickets_resume_and_their_keys_rotate(void **state)
{
    struct raw_client r[4] = {{0}};
    int i;

    bool first_key_kept, key_changed;

    RUN(1, rotation_main, r);
    first_key_kept = r[0].session != NULL && r[1].session != NULL &&
                     same_key(r[0].session, r[1].session);
    /* reissued under the new key */
    key_changed = r[0].session != NULL && r[2].session != NULL &&
                  !same_key(r[0].session, r[2].session);
    for (i = 0; i < 4; i++)
        SSL_SESSION_free(r[i].session);
    assert_int_equal(r[0].reused, 0);
    assert_int_equal(r[1].reused, 1);
    assert_int_equal(r[2].reused, 1);
    assert_int_equal(r[3].reused, 0);
    assert_true(first_key_kept);
    assert_true(key_changed);
}

/* ---- bytes held inside SSL count as readable ---- */

struct pending {
    async_listener *l;
    async_tls_context *ctx;
};

static void *read_rest(void *arg)
{
    async_stream *s = arg;
    char buf[100];

    /* started at once: the socket has nothing, the layer has 99 bytes */
    CHECK_EQ(async_stream_try_read(s, buf, sizeof(buf)), 49);
    async_stream_close(s);
    return NULL;
}

static void *pending_server(void *arg)
{
    struct pending *p = arg;
    async_stream *s = async_listener_accept(p->l);
    char b[50];

    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_tls_server(s, p->ctx));
    async_deadline(async_now_ms() + BOUND_MS);
    CHECK_EQ(async_stream_read(s, b, 1), 1); /* one byte of a 100-byte record */
    /* the socket is empty now and the client says no more */
    async_deadline(async_now_ms() + 2000);
    CHECK_OK(async_stream_wait(s, ASYNC_READABLE));
    CHECK_EQ(async_stream_read(s, b, 50), 50);
    async_deadline(-1);
    CHECK_OK(async_spawn_when_readable(s, read_rest, s));
    return NULL;
}

static void *pending_main(void *arg)
{
    struct pending p = {async_listener_bind("127.0.0.1:0"), server_ctx(NULL)};
    async_tls_context *cctx = client_ctx();
    async_group *g = async_group_new();
    async_stream *c;
    char msg[100], b;

    memset(msg, 'x', sizeof(msg));
    async_group_spawn(g, pending_server, &p);
    c = tls_connect(p.l, cctx, "localhost");
    if (c != NULL) {
        CHECK_OK(async_stream_write_all(c, msg, sizeof(msg))); /* one record */
        async_deadline(async_now_ms() + BOUND_MS);
        CHECK_EQ(async_stream_read(c, &b, 1), 0); /* the server closed: all was read */
        async_deadline(-1);
    }
    CHECK_OK(async_group_join(g));
    async_group_free(g);
    async_stream_close(c);
    async_listener_close(p.l);
    async_tls_context_free(p.ctx);
    async_tls_context_free(cctx);
    return NULL;
}

static void tls_bytes_held_by_ssl_are_readable_for_wait_and_spawn_when_readable(void **state)
{
    RUN(1, pending_main, NULL);
}

/* ---- the HTTP engine over TLS ---- */

static char file_path[160];
#define FILE_BYTES (300 * 1000)

static int handler(async_http_request *req, void *ctx)
{
    int fd;
    int rc;

    if (strcmp(async_http_path(req), "/file") != 0)
        return async_http_respond(req, 200, "text/plain", "hello over tls", 14);
    if ((fd = open(file_path, O_RDONLY)) < 0)
        return -1;
    rc = async_http_add_header(req, "Content-Length", "300000") == 0 &&
                 async_http_sendfile(req, fd, 0, FILE_BYTES) == 0
             ? 0
             : -1;
    close(fd);
    return rc;
}

struct http_case {
    async_listener *l;
    async_tls_context *ctx;
    async_http_server *srv;
};

static void *http_accept(void *arg)
{
    struct http_case *h = arg;
    async_stream *s = async_listener_accept(h->l);

    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_tls_server(s, h->ctx));
    /* parks between requests without a fiber: async_spawn_when_readable */
    CHECK_OK(async_http_server_start(h->srv, s, async_worker_id()));
    return NULL;
}

static void get(async_stream *s, const char *target, int want_status, size_t want_len)
{
    async_http_call *c = async_http_call_on(s, "GET", "localhost", target);
    static __thread char body[FILE_BYTES + 1];
    size_t got = 0;
    ssize_t n;

    if (!CHECK(c != NULL))
        return;
    CHECK_OK(async_http_call_send(c));
    CHECK_EQ(async_http_call_status(c), want_status);
    while ((n = async_http_call_read(c, body + got, sizeof(body) - got)) > 0)
        got += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(got, want_len);
    async_http_call_free(c);
}

static void *http_main(void *arg)
{
    struct http_case h = {async_listener_bind("127.0.0.1:0"), server_ctx(NULL),
                          async_http_server_new(handler, NULL)};
    async_tls_context *cctx = client_ctx();
    async_task *acc = async_spawn(http_accept, &h);
    async_stream *s = tls_connect(h.l, cctx, "localhost");
    int i;

    async_deadline(async_now_ms() + BOUND_MS);
    if (s != NULL) {
        for (i = 0; i < 3; i++) {
            get(s, "/hello", 200, 14);
            async_sleep_ms(20); /* idle: the server parks the connection fiberless */
        }
        get(s, "/file", 200, FILE_BYTES);
        get(s, "/hello", 200, 14);
        async_stream_close(s);
    }
    async_join(acc, NULL);
    async_deadline(-1);
    async_http_server_shutdown(h.srv, async_now_ms() + BOUND_MS);
    async_http_server_free(h.srv);
    async_listener_close(h.l);
    async_tls_context_free(h.ctx);
    async_tls_context_free(cctx);
    return NULL;
}

static void tls_http_server_and_client_run_over_tls_with_keepalive_and_sendfile(void **state)
{
    int fd;
    char *data = malloc(FILE_BYTES);

    snprintf(file_path, sizeof(file_path), "%s/file.bin", dir);
    memset(data, 'f', FILE_BYTES);
    fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, FILE_BYTES), FILE_BYTES);
    close(fd);
    free(data);
    RUN(2, http_main, NULL);
}

/* ---- kernel TLS ---- */

/* A file whose every offset holds a different pattern, sent through a
 * context asked for kernel TLS: the file must arrive exact whichever way
 * it went, and the way must be the one the probe predicts — sendfile under
 * the kernel's keys where it has TLS, a copy through OpenSSL where not. */
#define KTLS_BYTES (1200 * 1000 + 7)

static char ktls_path[160];
static async_stream *ktls_stream;  /* the server's side of the one connection */
static _Atomic int ktls_seen;     /* async_tls_ktls_sending on it, in the handler */

static unsigned char ktls_byte(size_t i)
{
    return (unsigned char)(i * 7 + i / 4096);
}

static int ktls_handler(async_http_request *req, void *ctx)
{
    char num[32];
    int fd, rc;

    (void)ctx;
    atomic_store(&ktls_seen, async_tls_ktls_sending(ktls_stream));
    if ((fd = open(ktls_path, O_RDONLY)) < 0)
        return -1;
    snprintf(num, sizeof(num), "%d", KTLS_BYTES);
    rc = async_http_add_header(req, "Content-Length", num) == 0 &&
                 async_http_sendfile(req, fd, 0, KTLS_BYTES) == 0
             ? 0
             : -1;
    close(fd);
    return rc;
}

static void *ktls_accept(void *arg)
{
    struct http_case *h = arg;
    async_stream *s = async_listener_accept(h->l);

    if (!CHECK(s != NULL))
        return NULL;
    CHECK_OK(async_tls_server(s, h->ctx));
    ktls_stream = s;
    CHECK_OK(async_http_serve(s, ktls_handler, NULL));
    return NULL;
}

/* GET /file twice on one connection; each body compared byte for byte. */
static void ktls_get_twice(async_stream *s)
{
    unsigned char *body = malloc(KTLS_BYTES + 1);
    size_t got, i, bad;
    ssize_t n;
    int k;

    for (k = 0; k < 2 && body != NULL; k++) {
        async_http_call *c = async_http_call_on(s, "GET", "localhost", "/file");

        if (!CHECK(c != NULL))
            break;
        CHECK_OK(async_http_call_send(c));
        CHECK_EQ(async_http_call_status(c), 200);
        got = 0;
        while ((n = async_http_call_read(c, body + got, KTLS_BYTES + 1 - got)) > 0)
            got += (size_t)n;
        CHECK_EQ(n, 0);
        CHECK_EQ(got, KTLS_BYTES);
        for (i = 0, bad = 0; i < got; i++)
            bad += body[i] != ktls_byte(i);
        CHECK_EQ(bad, 0);
        async_http_call_free(c);
    }
    free(body);
}

static void *ktls_main(void *arg)
{
    struct async_tls_cert certs[] = {{ec_pem, ec_key}};
    struct async_tls_server_config cfg = {
        .certs = certs, .ncerts = 1, .alpn = "http/1.1", .ktls = true};
    struct http_case h = {async_listener_bind("127.0.0.1:0"),
                          async_tls_server_new(&cfg, NULL, 0), NULL};
    struct async_tls_ktls_stats before, after;
    async_tls_context *cctx = client_ctx();
    bool kernel = arg != NULL;
    async_task *acc;
    async_stream *s;

    if (!CHECK(h.l != NULL && h.ctx != NULL))
        return NULL;
    async_tls_ktls_stats(&before);
    atomic_store(&ktls_seen, -2);
    acc = async_spawn(ktls_accept, &h);
    async_deadline(async_now_ms() + BOUND_MS);
    if ((s = tls_connect(h.l, cctx, "localhost")) != NULL) {
        ktls_get_twice(s);
        async_stream_close(s);
    }
    async_join(acc, NULL);
    async_deadline(-1);
    async_tls_ktls_stats(&after);
    CHECK_EQ(atomic_load(&ktls_seen), kernel ? 1 : 0);
    if (kernel) {
        CHECK_EQ(after.connections - before.connections, 1);
        CHECK_EQ(after.bytes - before.bytes, 2 * (uint64_t)KTLS_BYTES);
    } else {
        CHECK_EQ(after.connections, before.connections);
        CHECK_EQ(after.bytes, before.bytes);
    }
    async_listener_close(h.l);
    async_tls_context_free(h.ctx);
    async_tls_context_free(cctx);
    return NULL;
}

static void ktls_file(void)
{
    unsigned char *data = malloc(KTLS_BYTES);
    size_t i;
    int fd;

    assert_non_null(data);
    for (i = 0; i < KTLS_BYTES; i++)
        data[i] = ktls_byte(i);
    snprintf(ktls_path, sizeof(ktls_path), "%s/ktls.bin", dir);
    fd = open(ktls_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, KTLS_BYTES), KTLS_BYTES);
    close(fd);
    free(data);
}

static void tls_ktls_where_the_kernel_has_it_sends_files_with_sendfile(void **state)
{
    char why[256];

    (void)state;
    if (async_tls_ktls_probe(why, sizeof(why)) != 1)
        SKIP("no kernel TLS here: %s", why);
    ktls_file();
    RUN(2, ktls_main, (void *)1);
}

static void tls_ktls_asked_for_without_kernel_tls_copies_files_through_openssl(void **state)
{
    char why[256] = "";
    int kernel = async_tls_ktls_probe(why, sizeof(why));

    (void)state;
    /* the reason is named either way; without kernel TLS (this machine
     * when CONFIG_TLS is off) the stream must say OpenSSL sends and the
     * counters must not move; with it, the other test's case again */
    assert_true(strlen(why) > 10);
    if (kernel == 0)
        assert_non_null(strstr(why, "TLS"));
    ktls_file();
    RUN(2, ktls_main, kernel == 1 ? (void *)1 : NULL);
}

/* ---- contexts and certificate checks ---- */

static void tls_cert_check_names_what_is_wrong(void **state)
{
    struct async_tls_cert good = {ec_pem, ec_key}, chain = {chain_pem, chain_key};
    struct async_tls_cert mismatch = {rsa_pem, ec_key}, missing = {"/nonexistent.pem", ec_key};
    struct async_tls_cert expired = {expired_pem, ec_key}, bad_order = {badchain_pem, chain_key};
    char why[512];

    assert_int_equal(async_tls_cert_check(&good, why, sizeof(why)), 0);
    assert_int_equal(async_tls_cert_check(&chain, why, sizeof(why)), 0);
    assert_int_equal(async_tls_cert_check(&mismatch, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "does not match"));
    assert_int_equal(async_tls_cert_check(&missing, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "cannot read /nonexistent.pem"));
    assert_int_equal(async_tls_cert_check(&expired, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(async_tls_cert_check(&bad_order, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "out of order"));
}

static void tls_server_context_refuses_a_key_of_another_certificate(void **state)
{
    struct async_tls_cert certs[] = {{ec_pem, other_key}};
    struct async_tls_server_config cfg = {.certs = certs, .ncerts = 1};
    char why[512];

    assert_null(async_tls_server_new(&cfg, why, sizeof(why)));
    assert_int_equal(errno, EINVAL);
    assert_non_null(strstr(why, "does not match"));
    assert_null(async_tls_server_new(NULL, why, sizeof(why)));
    assert_int_equal(errno, EINVAL);
}

/* TLS 1.0 and 1.1 are refused: a client that offers only them fails. */
static void *old_client_run(void *arg)
{
    int *port = arg;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    CHECK(SSL_connect(ssl) != 1);
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
}

static void *old_main(void *arg)
{
    struct fixture f;
    int port;

    if (fixture_start(&f, handshake_and_close, NULL, NULL, 1)) {
        port = async_listener_port(f.e.l);
        CHECK_OK(async_blocking(old_client_run, &port, NULL));
    }
    fixture_stop(&f);
    return NULL;
}

static void tls_server_refuses_tls_1_0_and_1_1(void **state)
{
    RUN(1, old_main, NULL);
}

static void *chain_main(void *arg)
{
    struct fixture f;
    async_stream *s;

    if (fixture_start(&f, echo_accept, server_ctx_with(chain_pem, chain_key, NULL), client_ctx(),
                      1) &&
        (s = tls_connect(f.e.l, f.cctx, "localhost")) != NULL) {
        async_deadline(async_now_ms() + BOUND_MS);
        /* the client trusts the root only: the intermediate must be sent */
        CHECK_OK(async_tls_handshake(s));
        async_stream_close(s);
    }
    fixture_stop(&f);
    return NULL;
}

static void tls_server_sends_the_intermediate_of_its_chain(void **state)
{
    RUN(1, chain_main, NULL);
}

int main(int argc, char **argv)
{
    /* its own CTest (tls_ktls): skipped where the kernel has no TLS,
     * without marking the rest of this file skipped */
    const struct CMUnitTest kernel[] = {
        cmocka_unit_test(tls_ktls_where_the_kernel_has_it_sends_files_with_sendfile),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_echo_of_256k_between_our_client_and_server),
        cmocka_unit_test(tls_40_concurrent_sessions_on_2_workers_share_one_context),
        cmocka_unit_test(tls_client_refuses_a_certificate_for_another_name),
        cmocka_unit_test(tls_client_refuses_a_certificate_from_an_unknown_ca),
        cmocka_unit_test(tls_sni_sets_serve_the_certificate_of_the_name_asked_for),
        cmocka_unit_test(tls_client_checks_an_ip_address_against_the_certificate),
        cmocka_unit_test(tls_stalled_handshake_ends_at_the_deadline),
        cmocka_unit_test(tls_stalled_handshake_ends_on_cancel),
        cmocka_unit_test(tls_client_handshake_with_a_silent_server_ends_at_the_deadline),
        cmocka_unit_test(tls_garbage_handshake_fails_eproto),
        cmocka_unit_test(tls_plain_text_to_a_tls_server_gets_the_plaintext_reply_then_the_end),
        cmocka_unit_test(tls_close_sends_close_notify_that_the_peer_sees),
        cmocka_unit_test(tls_ecdsa_and_rsa_certificates_serve_side_by_side),
        cmocka_unit_test(tls_tickets_resume_and_their_keys_rotate),
        cmocka_unit_test(tls_bytes_held_by_ssl_are_readable_for_wait_and_spawn_when_readable),
        cmocka_unit_test(tls_http_server_and_client_run_over_tls_with_keepalive_and_sendfile),
        cmocka_unit_test(tls_ktls_asked_for_without_kernel_tls_copies_files_through_openssl),
        cmocka_unit_test(tls_cert_check_names_what_is_wrong),
        cmocka_unit_test(tls_server_context_refuses_a_key_of_another_certificate),
        cmocka_unit_test(tls_server_refuses_tls_1_0_and_1_1),
        cmocka_unit_test(tls_server_sends_the_intermediate_of_its_chain),
    };

    if (argc > 1 && strcmp(argv[1], "ktls") == 0)
        return skips_exit(cmocka_run_group_tests(kernel, make_certs, remove_certs));
    return skips_exit(cmocka_run_group_tests(tests, make_certs, remove_certs));
}
