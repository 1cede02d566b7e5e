/* async_io/tls.h — TLS streams over OpenSSL (libasync_io_tls).
 *
 * A TLS stream is an async_stream: async_tls_server and async_tls_client
 * put TLS on a connected plain stream (async_io/layer.h) and the same
 * handle then reads and writes plaintext through OpenSSL, parking as a
 * plain stream does (every wait is the stream's own, so cancellation,
 * deadlines and a close from another fiber end it alike).  Code written
 * for streams — async_http_serve, the HTTP server object and client —
 * runs over it unchanged.  The handshake happens on the first read or
 * write (or async_tls_handshake), under the fiber's deadline; close sends
 * close_notify when the socket takes it at once.  Bytes OpenSSL has
 * decrypted but nobody read count as readable for async_stream_wait and
 * async_spawn_when_readable.  Errors of the protocol (a bad handshake, a
 * certificate that fails verification, garbage) are EPROTO, with the
 * reason in async_tls_error.
 *
 * Link with async_io_tls (pkg-config async_io_tls, CMake
 * async_io::async_io_tls): programs that do not use TLS do not link
 * OpenSSL.
 *
 * Threads: a context is read-only once made and shared by every worker
 * (its session-ticket keys rotate under a lock taken once per handshake,
 * never per record).  A stream is used by one fiber at a time, as
 * async_io/layer.h says. */
#ifndef ASYNC_IO_TLS_H
#define ASYNC_IO_TLS_H

#include "layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_tls_context async_tls_context;

/* One certificate: a PEM file holding the certificate followed by its
 * chain (leaf first), and a PEM file holding its private key. */
struct async_tls_cert {
    const char *cert_file;
    const char *key_file;
};

/* Certificates served together (an ECDSA and an RSA one side by side). */
struct async_tls_cert_set {
    const struct async_tls_cert *certs;
    size_t ncerts;
};

struct async_tls_server_config {
    const struct async_tls_cert *certs; /* 1 or more, e.g. an ECDSA and an RSA one side by
                                           side; the client's abilities pick one */
    size_t ncerts;
    const char *alpn;            /* the protocol chosen when the client offers it, e.g.
                                    "http/1.1"; NULL: no ALPN */
    const char *plaintext_reply; /* sent in the clear (then the stream fails EPROTO) to a
                                    peer whose first byte is not TLS, e.g. an HTTP 400;
                                    NULL: none */
    unsigned ticket_lifetime_s;  /* how long a session-ticket key encrypts new tickets
                                    (it decrypts for as long again); 0: 12 hours */
    /* Server Name Indication: more certificates, chosen per handshake by
     * the name in the ClientHello.  sni(name, sni_arg) gets the name
     * (NUL-terminated, as the client sent it, at most 255 bytes) and
     * returns an index into sni_sets, or -1 for certs (also what a
     * handshake without a name gets).  It runs on any worker during a
     * handshake, concurrently: it must not park and should not lock;
     * sni_arg must outlive every stream of the context.  Every set
     * shares the context's policy, ALPN and session-ticket keys (a ticket
     * issued under one set resumes under another).  NULL: certs only. */
    const struct async_tls_cert_set *sni_sets;
    size_t nsni_sets;
    int (*sni)(const char *name, void *sni_arg);
    void *sni_arg;
    /* Kernel TLS for sending (Linux's tls module; OpenSSL built with it):
     * once the handshake is done the kernel holds each connection's
     * sending keys, so async_stream_sendfile sends a file with
     * sendfile(2) — no copy, no encryption in user space.  Where the
     * kernel has no TLS (async_tls_ktls_probe) the context is made
     * without it and its streams are exactly those of a context without
     * ktls; a connection whose cipher the kernel refuses falls back alone.
     * Its writes use write(2), which raises SIGPIPE on a vanished peer:
     * the process must ignore SIGPIPE (asyncd does).  Reading stays in
     * user space. */
    bool ktls;
};

/* A server context: TLS 1.2 and 1.3 only, Mozilla's "intermediate"
 * ciphers (the client's preference), renegotiation refused, no 0-RTT,
 * stateless session tickets whose keys rotate every ticket_lifetime_s.
 * NULL + errno (EINVAL for a bad config or certificate, ENOENT / EACCES
 * for a file, ENOMEM) with a reason in why[0..whylen) when why is not
 * NULL ("key.pem does not match cert.pem").  Free with
 * async_tls_context_free.  Never parks; any thread. */
ASYNC_API async_tls_context *async_tls_server_new(const struct async_tls_server_config *cfg,
                                                  char *why, size_t whylen);

struct async_tls_client_config {
    const char *ca_file;         /* PEM file of trusted CAs; NULL: the system's */
    bool no_verify;              /* true: accept any certificate (tests only) */
    const char *alpn;            /* the protocol offered, e.g. "http/1.1"; NULL: none */
};

/* A client context: TLS 1.2 and 1.3, the peer's certificate verified
 * against ca_file (or the system's CAs) unless no_verify.  As
 * async_tls_server_new otherwise. */
ASYNC_API async_tls_context *async_tls_client_new(const struct async_tls_client_config *cfg,
                                                  char *why, size_t whylen);

/* Drops the caller's reference: streams made with ctx keep it alive as
 * long as they need it.  NULL is ignored. */
ASYNC_API void async_tls_context_free(async_tls_context *ctx);

/* Checks a certificate file against its key file without making a
 * context, for configuration checks: 0 when good, 1 with a warning in why
 * (expired, not yet valid), -1 with the problem in why (a file unreadable
 * or not PEM, a key that does not match the certificate, a chain out of
 * order).  Never parks; any thread. */
ASYNC_API int async_tls_cert_check(const struct async_tls_cert *cert, char *why, size_t whylen);

/* Puts the server side of TLS with ctx on s, a connected plain stream no
 * other fiber uses; the handshake waits for the first read or write.
 * From then on s is a TLS stream (close it as any stream).  0, or -1
 * EINVAL (not a server context), EBUSY (s has a layer already), EBADF,
 * ENOMEM.  Never parks. */
ASYNC_API int async_tls_server(async_stream *s, async_tls_context *ctx);

/* The client side: as async_tls_server, sending server_name (SNI) and
 * checking that the certificate names it (unless the context does not
 * verify).  server_name may be NULL (no SNI, no name check) or an IP
 * address (checked against the certificate's addresses, not sent). */
ASYNC_API int async_tls_client(async_stream *s, async_tls_context *ctx, const char *server_name);

/* Parks until the handshake is done: 0, or -1 EPROTO (see
 * async_tls_error), ECONNRESET, ECANCELED, ETIMEDOUT, EBADF, EINVAL (not a
 * TLS stream).  Reads and writes do it themselves; this is for a client
 * that wants the peer checked before it says anything. */
ASYNC_API int async_tls_handshake(async_stream *s);

/* After the handshake: the protocol ALPN chose ("http/1.1") or "", the
 * version ("TLSv1.3"), whether the session was resumed from a ticket (1)
 * or not (0).  NULL / -1 EINVAL for a stream without TLS. */
ASYNC_API const char *async_tls_alpn(const async_stream *s);
ASYNC_API const char *async_tls_version(const async_stream *s);
ASYNC_API int async_tls_resumed(const async_stream *s);

/* Whether this kernel and OpenSSL can do kernel TLS: 1, or 0 with the
 * reason in why[0..whylen) (1: what was found).  Makes and closes a
 * loopback connection to ask the kernel for TCP_ULP "tls".  Any thread;
 * for start-up and configuration checks, not per connection. */
ASYNC_API int async_tls_ktls_probe(char *why, size_t whylen);

/* Whether the kernel encrypts what s sends (1) or OpenSSL does (0); -1
 * EINVAL for a stream without TLS.  Known after the handshake. */
ASYNC_API int async_tls_ktls_sending(const async_stream *s);

/* Process-wide counts of kernel-TLS sending: connections that sent a file
 * with the kernel's keys, and the file bytes sent so (by this copy of
 * the library). */
struct async_tls_ktls_stats {
    uint64_t connections;
    uint64_t bytes;
};
ASYNC_API void async_tls_ktls_stats(struct async_tls_ktls_stats *st);

/* Why the last call on s failed with EPROTO, in English (OpenSSL's reason
 * or the verification's), or "" — valid until the next call on s. */
ASYNC_API const char *async_tls_error(const async_stream *s);

#ifdef __cplusplus
}
#endif
#endif
