/* runtime/tls/context — the SSL_CTX of a server or a client.
 *
 * Server policy (Mozilla's "intermediate" configuration, v5.7): TLS 1.2
 * and 1.3 only; ECDHE (and DHE with the RFC 7919 groups OpenSSL picks for
 * the key size) with AES-GCM or ChaCha20-Poly1305 on 1.2, OpenSSL's
 * default suites on 1.3; the client's preference order (its hardware
 * knows whether AES is fast) on TLS 1.3 — but on 1.2 for clients that
 * cannot do 1.3, our order (strongest first), since those are old clients
 * whose order deserves less trust (scanners rate "no server order" on 1.2
 * HIGH).  Renegotiation is refused, 0-RTT stays off,
 * resumption is by stateless tickets only (no session cache to lock; keys
 * in tickets.c).  SSL_MODE_RELEASE_BUFFERS gives back the 16 KiB record
 * buffers of every idle connection.
 *
 * One SSL_CTX per configuration, shared read-only by the workers: after
 * it is made nothing changes it but its reference count.  A server with
 * SNI sets has one more SSL_CTX per set, made with it, same policy, same
 * ALPN, same ticket keys; the ClientHello callback asks the caller's sni
 * function for the set of the name and switches the connection's SSL to
 * it (no lock: the sets and the caller's table are read-only). */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTERMEDIATE_CIPHERS                                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define GROUPS "X25519:P-256:P-384"

void async__tls_reason(char *why, size_t whylen, const char *what)
{
    unsigned long e = ERR_peek_error();
    char buf[256];

    if (why == NULL || whylen == 0) {
        ERR_clear_error();
        return;
    }
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        /* "error:0A000086:SSL routines::certificate verify failed": the reason
         * is what follows the last colon */
        const char *r = strrchr(buf, ':');
        snprintf(why, whylen, "%s: %s", what, r != NULL ? r + 1 : buf);
    } else {
        snprintf(why, whylen, "%s", what);
    }
    ERR_clear_error();
}

void async__tls_context_ref(async_tls_context *ctx)
{
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void async_tls_context_free(async_tls_context *ctx)
{
    if (ctx == NULL || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(ctx->ssl);
    for (size_t i = 0; i < ctx->nsni; i++)
        SSL_CTX_free(ctx->sni_ssl[i]);
    free(ctx->sni_ssl);
    async__tls_tickets_free(ctx->tickets);
    free(ctx->plaintext_reply);
    free(ctx);
}

/* "http/1.1" as ALPN's wire format: a length byte, then the name. */
static int alpn_wire(const char *name, unsigned char *out, size_t *outlen)
{
    size_t n = strlen(name);

    if (n == 0 || n > MAX_ALPN)
        return -1;
    out[0] = (unsigned char)n;
    memcpy(out + 1, name, n);
    *outlen = n + 1;
    return 0;
}

/* The server's ALPN choice: its one protocol if the client offers it;
 * otherwise the handshake goes on without ALPN (as nginx does for
 * HTTP/1.1), so a client that only offers h2 still gets an answer. */
static int choose_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    const unsigned char *mine = arg;

    if (SSL_select_next_proto((unsigned char **)out, outlen, mine, 1u + mine[0], in, inlen) ==
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;
}

/* The host_name of a ClientHello's server_name extension (RFC 6066
 * section 3: a 2-byte list length, then entries of a type byte and a
 * 2-byte length) into out, NUL-terminated: its length, or 0 when there is
 * none or it is malformed (a NUL inside, too long). */
static size_t server_name(SSL *ssl, char *out, size_t outlen)
{
    const unsigned char *p;
    size_t len, list, n;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2)
        return 0;
    list = (size_t)p[0] << 8 | p[1];
    if (list != len - 2)
        return 0;
    for (p += 2; list >= 3; p += 3 + n, list -= 3 + n) {
        n = (size_t)p[1] << 8 | p[2];
        if (n > list - 3)
            return 0;
        if (p[0] != TLSEXT_NAMETYPE_host_name)
            continue;
        if (n == 0 || n >= outlen || memchr(p + 3, '\0', n) != NULL)
            return 0;
        memcpy(out, p + 3, n);
        out[n] = '\0';
        return n;
    }
    return 0;
}

/* Per connection, from its ClientHello (every SSL_CTX of a context has it,
 * arg the context: a HelloRetryRequest brings a second ClientHello to the
 * SSL_CTX switched to).  The server's cipher order for a client that
 * cannot speak TLS 1.3 (its supported_versions extension does not name
 * 0x0304), the client's otherwise.  With SNI sets, the set the name picks:
 * SSL_set_SSL_CTX takes its certificates (a copy of its CERT, the one
 * allocation this adds to such a handshake); ALPN and the ticket keys are
 * the same in every SSL_CTX of the context, so nothing else changes. */
static int hello_cb(SSL *ssl, int *alert, void *arg)
{
    async_tls_context *ctx = arg;
    const unsigned char *p;
    char name[256];
    size_t len, i;
    bool tls13 = false;
    int k;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &p, &len) == 1 && len >= 1)
        for (i = 1; i + 1 < len && i < 1u + p[0]; i += 2)
            tls13 |= p[i] == 0x03 && p[i + 1] == 0x04;
    if (tls13)
        SSL_clear_options(ssl, SSL_OP_CIPHER_SERVER_PREFERENCE);
    else
        SSL_set_options(ssl, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (ctx->nsni == 0 || server_name(ssl, name, sizeof(name)) == 0)
        return SSL_CLIENT_HELLO_SUCCESS;
    k = ctx->sni(name, ctx->sni_arg);
    if (k >= 0 && (size_t)k < ctx->nsni && SSL_set_SSL_CTX(ssl, ctx->sni_ssl[k]) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The policy every SSL_CTX of ours has (the top of the file). */
static int policy(SSL_CTX *ssl)
{
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ssl, TLS1_3_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return SSL_CTX_set_cipher_list(ssl, INTERMEDIATE_CIPHERS) == 1 &&
                   SSL_CTX_set1_groups_list(ssl, GROUPS) == 1
               ? 0
               : -1;
}

static async_tls_context *context_new(const SSL_METHOD *method, bool server, char *why,
                                      size_t whylen)
{
    async_tls_context *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        goto fail;
    if ((ctx->ssl = SSL_CTX_new(method)) == NULL) {
        free(ctx);
        goto fail;
    }
    atomic_init(&ctx->refs, 1);
    ctx->server = server;
    if (policy(ctx->ssl) != 0) {
        async__tls_reason(why, whylen, "cipher list");
        async_tls_context_free(ctx);
        errno = EINVAL;
        return NULL;
    }
    return ctx;
fail:
    async__tls_reason(why, whylen, "out of memory");
    errno = ENOMEM;
    return NULL;
}

/* Loads one certificate (with its chain) and its key into the context;
 * OpenSSL keeps one per key type, so an ECDSA and an RSA one live side by
 * side.  0, or -1 + errno with why filled. */
static int add_cert(SSL_CTX *ssl, const struct async_tls_cert *c, char *why, size_t whylen)
{
    char checked[256];

    if (c->cert_file == NULL || c->key_file == NULL) {
        snprintf(why, whylen, "a certificate needs a cert file and a key file");
        errno = EINVAL;
        return -1;
    }
    if (async_tls_cert_check(c, checked, sizeof(checked)) < 0) {
        snprintf(why, whylen, "%s", checked);
        errno = EINVAL;
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(ssl, c->cert_file) != 1) {
        async__tls_reason(why, whylen, c->cert_file);
        errno = EINVAL;
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, c->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ssl) != 1) {
        async__tls_reason(why, whylen, c->key_file);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* A server SSL_CTX of ctx (its default one, or an SNI set's) with certs:
 * 0, or -1 + errno with why filled. */
static int server_ssl(async_tls_context *ctx, SSL_CTX *ssl, const struct async_tls_cert *certs,
                      size_t ncerts, char *why, size_t whylen)
{
    size_t i;

    if (certs == NULL || ncerts == 0) {
        snprintf(why, whylen, "a server needs a certificate");
        errno = EINVAL;
        return -1;
    }
    SSL_CTX_set_dh_auto(ssl, 1);
    SSL_CTX_set_client_hello_cb(ssl, hello_cb, ctx);
    SSL_CTX_set_max_early_data(ssl, 0);
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    for (i = 0; i < ncerts; i++)
        if (add_cert(ssl, &certs[i], why, whylen) != 0)
            return -1;
    if (ctx->alpn[0] != 0)
        SSL_CTX_set_alpn_select_cb(ssl, choose_alpn, ctx->alpn);
    async__tls_tickets_install(ctx, ssl);
    return 0;
}

/* The SSL_CTX of each SNI set. */
static int sni_sets(async_tls_context *ctx, const struct async_tls_server_config *cfg,
                    char *why, size_t whylen)
{
    char sub[512];

    if (cfg->nsni_sets == 0)
        return 0;
    if (cfg->sni == NULL || cfg->sni_sets == NULL) {
        snprintf(why, whylen, "SNI sets need an sni function");
        errno = EINVAL;
        return -1;
    }
    if ((ctx->sni_ssl = calloc(cfg->nsni_sets, sizeof(*ctx->sni_ssl))) == NULL) {
        snprintf(why, whylen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    ctx->sni = cfg->sni;
    ctx->sni_arg = cfg->sni_arg;
    for (; ctx->nsni < cfg->nsni_sets; ctx->nsni++) {
        SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());

        if (ssl == NULL) {
            snprintf(why, whylen, "out of memory");
            errno = ENOMEM;
            return -1;
        }
        ctx->sni_ssl[ctx->nsni] = ssl;
        if (policy(ssl) != 0) {
            async__tls_reason(why, whylen, "cipher list");
            errno = EINVAL;
            goto fail;
        }
        if (server_ssl(ctx, ssl, cfg->sni_sets[ctx->nsni].certs, cfg->sni_sets[ctx->nsni].ncerts,
                       sub, sizeof(sub)) != 0) {
            snprintf(why, whylen, "SNI set %zu: %s", ctx->nsni, sub);
            goto fail;
        }
    }
    return 0;
fail: /* the set being made is not counted in nsni: free it here */
    SSL_CTX_free(ctx->sni_ssl[ctx->nsni]);
    ctx->sni_ssl[ctx->nsni] = NULL;
    return -1;
}

/* Kernel TLS for sending on every SSL_CTX of ctx, if the kernel has it
 * (ktls.c); else ctx stays as if it had not been asked for. */
static void enable_ktls(async_tls_context *ctx)
{
#ifdef SSL_OP_ENABLE_KTLS
    size_t i;

    if (async_tls_ktls_probe(NULL, 0) != 1)
        return;
    ctx->ktls = true;
    SSL_CTX_set_options(ctx->ssl, SSL_OP_ENABLE_KTLS);
    for (i = 0; i < ctx->nsni; i++)
        SSL_CTX_set_options(ctx->sni_ssl[i], SSL_OP_ENABLE_KTLS);
#else
    (void)ctx;
#endif
}

async_tls_context *async_tls_server_new(const struct async_tls_server_config *cfg, char *why,
                                        size_t whylen)
{
    async_tls_context *ctx;
    char dummy[1];
    size_t n;

    if (why == NULL || whylen == 0) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (cfg == NULL || cfg->certs == NULL || cfg->ncerts == 0) {
        snprintf(why, whylen, "a server needs a certificate");
        errno = EINVAL;
        return NULL;
    }
    if ((ctx = context_new(TLS_server_method(), true, why, whylen)) == NULL)
        return NULL;
    if (cfg->alpn != NULL && alpn_wire(cfg->alpn, ctx->alpn, &n) != 0) {
        snprintf(why, whylen, "ALPN protocol \"%s\": 1 to %d bytes", cfg->alpn, MAX_ALPN);
        errno = EINVAL;
        goto fail;
    }
    if (async__tls_tickets_new(ctx, cfg->ticket_lifetime_s) != 0)
        goto fail_nomem;
    if (server_ssl(ctx, ctx->ssl, cfg->certs, cfg->ncerts, why, whylen) != 0 ||
        sni_sets(ctx, cfg, why, whylen) != 0)
        goto fail;
    if (cfg->ktls)
        enable_ktls(ctx);
    if (cfg->plaintext_reply != NULL) {
        ctx->plaintext_len = strlen(cfg->plaintext_reply);
        if ((ctx->plaintext_reply = strdup(cfg->plaintext_reply)) == NULL)
            goto fail_nomem;
    }
    return ctx;
fail_nomem:
    snprintf(why, whylen, "out of memory");
    errno = ENOMEM;
fail:
    async_tls_context_free(ctx);
    return NULL;
}

async_tls_context *async_tls_client_new(const struct async_tls_client_config *cfg, char *why,
                                        size_t whylen)
{
    static const struct async_tls_client_config none = {0};
    async_tls_context *ctx;
    unsigned char wire[MAX_ALPN + 1];
    char dummy[1];
    size_t n;

    if (why == NULL || whylen == 0) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (cfg == NULL)
        cfg = &none;
    if ((ctx = context_new(TLS_client_method(), false, why, whylen)) == NULL)
        return NULL;
    SSL_CTX_set_verify(ctx->ssl, cfg->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (!cfg->no_verify) {
        int ok = cfg->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx->ssl, cfg->ca_file, NULL)
                                      : SSL_CTX_set_default_verify_paths(ctx->ssl);

        if (ok != 1) {
            async__tls_reason(why, whylen, cfg->ca_file != NULL ? cfg->ca_file : "system CAs");
            errno = EINVAL;
            goto fail;
        }
    }
    if (cfg->alpn != NULL) {
        if (alpn_wire(cfg->alpn, wire, &n) != 0 ||
            SSL_CTX_set_alpn_protos(ctx->ssl, wire, (unsigned)n) != 0) {
            snprintf(why, whylen, "ALPN protocol \"%s\": 1 to %d bytes", cfg->alpn, MAX_ALPN);
            errno = EINVAL;
            goto fail;
        }
    }
    return ctx;
fail:
    async_tls_context_free(ctx);
    return NULL;
}
