/* runtime/tls/stream — the TLS layer of a stream (async_io/layer.h).
 *
 * OpenSSL runs non-blocking on the socket through a BIO of ours (recv and
 * send with MSG_NOSIGNAL: the process never gets SIGPIPE, which OpenSSL's
 * socket BIO, using write(2), would raise).  Every SSL call is tried
 * first; on SSL_ERROR_WANT_READ / WANT_WRITE the fiber parks on the
 * stream's own socket wait (async_stream_socket_wait) and tries again, so
 * a cancel, a deadline or a close from another fiber ends a handshake, a
 * read or a write as it ends a plain stream's.
 *
 * The handshake is implicit: the first SSL_read or SSL_write does it, so
 * a server puts TLS on an accepted stream without parking, and a stalled
 * handshake is bounded by whatever deadline the first read runs under
 * (the HTTP engine's header_timeout_ms).
 *
 * A server's first byte from the peer is looked at: a TLS handshake
 * record starts with 22 (and an SSLv2 hello with a set high bit); any
 * other is a peer speaking plain text to a TLS port, which gets the
 * context's plaintext_reply in the clear (an HTTP 400, as nginx sends)
 * and the stream fails with EPROTO.
 *
 * Kernel TLS (ktls.c).  A stream of a context with ktls writes through
 * OpenSSL's socket BIO instead, which lets OpenSSL give the kernel the
 * sending keys after the handshake; its reads stay on our BIO.  The
 * layer's sendfile is SSL_sendfile on such a stream, and EOPNOTSUPP on
 * any other (the caller copies the file through SSL_write).
 *
 * Threads: one stream's SSL is used by one fiber at a time (layer.h); the
 * context is shared read-only. */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TLS_RECORD_HANDSHAKE 22

struct tls_conn {
    SSL *ssl;
    async_tls_context *ctx;     /* a reference */
    int fd;
    bool sniffed;               /* the peer's first byte was looked at */
    bool plain;                 /* ... and was not TLS */
    bool failed;                /* a fatal error: no close_notify */
    bool ktls_counted;          /* sent a file with the kernel's keys (async_tls_ktls_stats) */
    char error[160];            /* async_tls_error */
};

/* ---- the BIO ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *buf, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = recv(t->fd, buf, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_read(b);
        return -1;
    }
    if (n > 0 && !t->sniffed) {
        t->sniffed = true;
        if (t->ctx->plaintext_reply != NULL && (unsigned char)buf[0] != TLS_RECORD_HANDSHAKE &&
            !((unsigned char)buf[0] & 0x80)) {
            t->plain = true;
            errno = EPROTO;
            return -1;
        }
    }
    return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_write(b);
        return -1;
    }
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* send has nothing buffered */
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* Made once; freed when the library is unloaded (the http module's
 * dlclose) or the process exits, when no stream is left to use it. */
__attribute__((destructor)) static void free_bio_method(void)
{
    BIO_meth_free(bio_method);
    bio_method = NULL;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "async_io socket");

    if (m == NULL || BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_write(m, bio_write) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* ---- one SSL call, parking on WANT_* ---- */

enum op { OP_READ, OP_WRITE, OP_HANDSHAKE };

/* The peer spoke plain text: the reply in the clear, then our write side
 * shut and what it sent dropped, so the close sends a FIN, not a reset
 * that would destroy the reply. */
static void reply_plain(struct tls_conn *t)
{
    char sink[4096];

    if (send(t->fd, t->ctx->plaintext_reply, t->ctx->plaintext_len, MSG_NOSIGNAL | MSG_DONTWAIT) >
        0) {
        shutdown(t->fd, SHUT_WR);
        while (recv(t->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
            ;
    }
    snprintf(t->error, sizeof(t->error), "the peer does not speak TLS");
}

/* Why the handshake failed, in words: the verification's reason first. */
static void note_error(struct tls_conn *t)
{
    long v = SSL_get_verify_result(t->ssl);

    if (v != X509_V_OK) {
        snprintf(t->error, sizeof(t->error), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        async__tls_reason(t->error, sizeof(t->error), "TLS");
    }
}

/* What the SSL call's failure means: 0 to try again after waiting for
 * *events, or an errno (with -1 returned by the caller); a read's clean
 * end is reported as 0 bytes by the caller (ZERO_RETURN). */
static int failure(struct tls_conn *t, int rc, int *events)
{
    int e = SSL_get_error(t->ssl, rc), err = errno;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        *events = ASYNC_READABLE;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *events = ASYNC_WRITABLE;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -1; /* not an errno: the end */
    case SSL_ERROR_SYSCALL:
        t->failed = true;
        ERR_clear_error();
        if (t->plain) {
            reply_plain(t);
            return EPROTO;
        }
        return err != 0 && err != EAGAIN ? err : ECONNRESET;
    default:
        t->failed = true;
        note_error(t);
        return EPROTO;
    }
}

static ssize_t tls_call(struct tls_conn *t, async_stream *s, enum op op, void *buf, size_t len,
                        bool park)
{
    int n = len > INT_MAX ? INT_MAX : (int)len, rc, err, events;

    if (t->failed) {
        errno = EPROTO;
        return -1;
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        if (op == OP_READ)
            rc = SSL_read(t->ssl, buf, n);
        else if (op == OP_WRITE)
            rc = SSL_write(t->ssl, buf, n);
        else
            rc = SSL_do_handshake(t->ssl);
        if (rc > 0)
            return op == OP_HANDSHAKE ? 0 : rc;
        err = failure(t, rc, &events);
        if (err < 0 && op == OP_READ)
            return 0; /* ZERO_RETURN: the peer's close_notify */
        if (err < 0)
            err = op == OP_WRITE ? EPIPE : ECONNRESET;
        if (err == 0 && !park) {
            errno = EAGAIN;
            return -1;
        }
        if (err == 0 && async_stream_socket_wait(s, events) == 0)
            continue;
        if (err != 0)
            errno = err;
        return -1;
    }
}

/* ---- the layer ---- */

static ssize_t layer_read(void *ctx, async_stream *s, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    return tls_call(ctx, s, OP_READ, buf, len, true);
}

static ssize_t layer_try_read(void *ctx, async_stream *s, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    return tls_call(ctx, s, OP_READ, buf, len, false);
}

static ssize_t layer_write(void *ctx, async_stream *s, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    return tls_call(ctx, s, OP_WRITE, (void *)buf, len, true);
}

static size_t layer_pending(void *ctx)
{
    struct tls_conn *t = ctx;

    return (size_t)SSL_pending(t->ssl);
}

/* close_notify if the socket takes it now; the peer's answer is not
 * awaited (RFC 8446 §6.1 allows it, and so do browsers). */
static void layer_goodbye(void *ctx, async_stream *s)
{
    struct tls_conn *t = ctx;

    (void)s;
    if (t->failed || !SSL_is_init_finished(t->ssl) ||
        (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

static void layer_free(void *ctx)
{
    struct tls_conn *t = ctx;

    SSL_free(t->ssl);
    async_tls_context_free(t->ctx);
    free(t);
}

/* Whether the kernel holds the sending keys (a socket BIO of a kTLS
 * context, after the handshake). */
static bool kernel_sends(struct tls_conn *t)
{
#ifdef SSL_OP_ENABLE_KTLS
    return t->ctx->ktls && SSL_is_init_finished(t->ssl) && BIO_get_ktls_send(SSL_get_wbio(t->ssl));
#else
    (void)t;
    return false;
#endif
}

/* The file from *off by sendfile(2) under the kernel's keys, parking on
 * EAGAIN; EOPNOTSUPP when OpenSSL encrypts on this connection. */
static ssize_t layer_sendfile(void *ctx, async_stream *s, int fd, off_t *off, size_t len)
{
    struct tls_conn *t = ctx;
    ossl_ssize_t n;
    int err;

    if (t->failed || !kernel_sends(t)) {
        errno = t->failed ? EPROTO : EOPNOTSUPP;
        return -1;
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        n = SSL_sendfile(t->ssl, fd, *off, len, 0);
        err = errno;
        ERR_clear_error();
        if (n >= 0) {
            *off += n;
            async__tls_ktls_count(!t->ktls_counted, (size_t)n);
            t->ktls_counted = true;
            return n; /* 0: the file ended */
        }
        if (err == EINTR)
            continue;
        if ((err == EAGAIN || err == EBUSY) && async_stream_socket_wait(s, ASYNC_WRITABLE) == 0)
            continue;
        if (err == EAGAIN || err == EBUSY)
            return -1; /* the wait's errno: ECANCELED, ETIMEDOUT, EBADF */
        t->failed = true; /* the kernel's record stream is broken: no close_notify */
        errno = err != 0 ? err : EPIPE;
        return -1;
    }
}

static const struct async_stream_layer tls_layer = {
    .read = layer_read,
    .write = layer_write,
    .try_read = layer_try_read,
    .pending = layer_pending,
    .goodbye = layer_goodbye,
    .free = layer_free,
    .sendfile = layer_sendfile,
};

/* ---- putting it on a stream ---- */

static int attach(async_stream *s, async_tls_context *ctx, bool server, const char *name)
{
    struct tls_conn *t;
    BIO *bio, *wbio;
    int fd = async_stream_fd(s);

    if (fd < 0 || ctx == NULL || ctx->server != server) {
        errno = EINVAL;
        return -1;
    }
    pthread_once(&bio_once, make_bio_method);
    if (bio_method == NULL || (t = calloc(1, sizeof(*t))) == NULL)
        goto fail;
    t->fd = fd;
    t->ctx = ctx;
    if ((t->ssl = SSL_new(ctx->ssl)) == NULL || (bio = BIO_new(bio_method)) == NULL)
        goto fail_ssl;
    BIO_set_data(bio, t);
    if (ctx->ktls && (wbio = async__tls_ktls_bio(fd)) != NULL) {
        SSL_set_bio(t->ssl, bio, wbio);
    } else {
#ifdef SSL_OP_ENABLE_KTLS
        if (ctx->ktls)
            SSL_clear_options(t->ssl, SSL_OP_ENABLE_KTLS); /* the kernel said no: as before */
#endif
        SSL_set_bio(t->ssl, bio, bio);
    }
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (name != NULL && name[0] != '\0' && !SSL_set1_host(t->ssl, name))
            goto fail_ssl;
        /* SNI carries names only, never an address (RFC 6066 §3) */
        if (name != NULL && strspn(name, "0123456789.") != strlen(name) &&
            strchr(name, ':') == NULL && !SSL_set_tlsext_host_name(t->ssl, name))
            goto fail_ssl;
    }
    async__tls_context_ref(ctx);
    if (async_stream_set_layer(s, &tls_layer, t) != 0) {
        int err = errno;

        async_tls_context_free(ctx);
        SSL_free(t->ssl);
        free(t);
        errno = err;
        return -1;
    }
    return 0;
fail_ssl:
    SSL_free(t->ssl);
    free(t);
fail:
    ERR_clear_error();
    errno = ENOMEM;
    return -1;
}

int async_tls_server(async_stream *s, async_tls_context *ctx)
{
    return attach(s, ctx, true, NULL);
}

int async_tls_client(async_stream *s, async_tls_context *ctx, const char *server_name)
{
    return attach(s, ctx, false, server_name);
}

static struct tls_conn *conn_of(const async_stream *s)
{
    struct tls_conn *t = async_stream_layer_ctx(s, &tls_layer);

    if (t == NULL)
        errno = EINVAL;
    return t;
}

int async_tls_handshake(async_stream *s)
{
    struct tls_conn *t = conn_of(s);

    if (t == NULL)
        return -1;
    if (SSL_is_init_finished(t->ssl))
        return 0;
    return tls_call(t, s, OP_HANDSHAKE, NULL, 0, true) == 0 ? 0 : -1;
}

const char *async_tls_alpn(const async_stream *s)
{
    struct tls_conn *t = conn_of(s);
    static __thread char name[MAX_ALPN + 1];
    const unsigned char *p;
    unsigned n;

    if (t == NULL)
        return NULL;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    memcpy(name, p != NULL ? p : (const unsigned char *)"", n);
    name[n] = '\0';
    return name;
}

const char *async_tls_version(const async_stream *s)
{
    struct tls_conn *t = conn_of(s);

    return t != NULL ? SSL_get_version(t->ssl) : NULL;
}

int async_tls_resumed(const async_stream *s)
{
    struct tls_conn *t = conn_of(s);

    return t != NULL ? SSL_session_reused(t->ssl) : -1;
}

int async_tls_ktls_sending(const async_stream *s)
{
    struct tls_conn *t = conn_of(s);

    return t != NULL ? kernel_sends(t) : -1;
}

const char *async_tls_error(const async_stream *s)
{
    struct tls_conn *t = conn_of(s);

    return t != NULL ? t->error : "";
}
