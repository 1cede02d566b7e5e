/* runtime/tls — TLS streams over OpenSSL, a library of its own
 * (libasync_io_tls) on top of libasync_io's public API: it reaches the
 * stream only through async_io/layer.h, so the two libraries share no
 * internal names.  Internal.
 *
 *   context.c  server and client SSL_CTX: versions, ciphers, ALPN, certificates
 *   tickets.c  session-ticket keys, rotated, shared by every worker
 *   check.c    a certificate against its key, its chain and the clock
 *   stream.c   the layer: a non-blocking SSL on the socket, parking on WANT_*
 *   ktls.c     kernel TLS for sending: the probe, OpenSSL's socket BIO, counters */
#ifndef ASYNC_TLS_H
#define ASYNC_TLS_H

#include <async_io/tls.h>

#include <openssl/ssl.h>
#include <stdatomic.h>

struct async__tls_tickets;

#define MAX_ALPN 255

/* Read-only once made, but for refs; shared by all workers. */
struct async_tls_context {
    SSL_CTX *ssl;               /* the default certificates; every SSL starts here */
    SSL_CTX **sni_ssl;          /* server: one per SNI set, switched to from the ClientHello */
    size_t nsni;
    int (*sni)(const char *name, void *arg);
    void *sni_arg;
    _Atomic int refs;            /* the maker's + one per stream */
    bool server;
    bool ktls;                   /* server: SSL_OP_ENABLE_KTLS (asked for, and the probe passed) */
    char *plaintext_reply;       /* NULL: none */
    size_t plaintext_len;
    struct async__tls_tickets *tickets; /* server only */
    unsigned char alpn[MAX_ALPN + 1];   /* server: its protocol in ALPN's wire format */
};

void async__tls_context_ref(async_tls_context *ctx);

/* Ticket keys for a server context: made once, then installed (the key
 * callback) in each of its SSL_CTXs, so every SNI set shares them.
 * 0 or -1 (ENOMEM). */
int async__tls_tickets_new(async_tls_context *ctx, unsigned lifetime_s);
void async__tls_tickets_install(async_tls_context *ctx, SSL_CTX *ssl);
void async__tls_tickets_free(struct async__tls_tickets *t);

/* OpenSSL's socket BIO on fd after TCP_ULP "tls", for the writing side of
 * a kTLS connection; NULL when the kernel refuses (the caller keeps its
 * own BIO). */
BIO *async__tls_ktls_bio(int fd);
/* Counts bytes sent by kernel TLS, and a connection on its first. */
void async__tls_ktls_count(bool first, size_t bytes);

/* Writes OpenSSL's first queued reason (or fallback) into why, clears the
 * queue. */
void async__tls_reason(char *why, size_t whylen, const char *what);

#endif
