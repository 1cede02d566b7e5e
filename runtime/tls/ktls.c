/* runtime/tls/ktls — kernel TLS for the sending direction: the kernel
 * encrypts what this side sends, so a file leaves with sendfile(2) and
 * never passes through user space.
 *
 * How.  OpenSSL 3 (when built with kTLS, as Debian's libssl3 is: its
 * headers do not define OPENSSL_NO_KTLS) hands a direction's record keys
 * to the kernel itself — setsockopt(SOL_TLS, TLS_TX) on the descriptor,
 * when the keys change after the handshake — if the SSL has
 * SSL_OP_ENABLE_KTLS and the BIO it writes to is its own socket BIO.
 * From then on BIO_get_ktls_send says so, SSL_write gives the socket
 * plaintext (alerts and post-handshake messages go as control messages)
 * and SSL_sendfile is sendfile(2).  Two other ways were weighed and left:
 *   - setting TLS_TX ourselves from the negotiated secrets (the keylog
 *     callback, HKDF on 1.3, the key block on 1.2) needs the record
 *     sequence number, which OpenSSL does not expose — and a server has
 *     already sent its session tickets under the application keys;
 *   - answering OpenSSL's kTLS controls from our own BIO needs its
 *     internal key structure and control numbers (bio.h lists them as
 *     internal), which may change under us with any OpenSSL update.
 * So a kTLS connection writes through OpenSSL's socket BIO and still reads
 * through ours (stream.c): the first byte is still sniffed for plain
 * HTTP, and records are still decrypted in user space (OpenSSL 3.0 offers
 * kernel receive for TLS 1.2 only; requests are small).
 *
 * The price is paid only by connections of a context made with ktls on a
 * kernel the probe found able: one setsockopt(TCP_ULP) per connection,
 * and writes by write(2) rather than send(MSG_NOSIGNAL), so a peer that
 * vanished raises SIGPIPE — as sendfile(2) on any socket does — and the
 * process must ignore SIGPIPE (asyncd does).  A context without ktls, or
 * with it where the kernel has no TLS, makes its connections exactly as
 * before (our BIO both ways, no new call or branch per record); the HTTP
 * engine asks such a connection once whether it sends files itself
 * (EOPNOTSUPP, remembered) and copies them in 16 KiB records as before.
 * Not tested: a TLS 1.3 KeyUpdate asked of us under kernel keys (whether
 * OpenSSL 3.0 hands the kernel new keys then was not checked).
 *
 * Threads: the counters are relaxed atomics shared by every worker, added
 * to once per kTLS connection's first file and once per sendfile call —
 * never on a connection without kernel TLS. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static _Atomic uint64_t ktls_connections, ktls_bytes;

/* Whether the kernel takes the TLS upper-layer protocol on a connected
 * TCP socket fd: 0, or the errno of setsockopt. */
static int ulp_tls(int fd)
{
    return setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ? 0 : errno;
}

int async_tls_ktls_probe(char *why, size_t whylen)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int l = -1, c = -1, err = 0;
    char dummy[1];

    if (why == NULL || whylen == 0) {
        why = dummy;
        whylen = sizeof(dummy);
    }
#ifdef OPENSSL_NO_KTLS
    snprintf(why, whylen, "OpenSSL was built without kernel TLS (OPENSSL_NO_KTLS)");
    return 0;
#else
    /* TCP_ULP wants an established connection: a loopback pair */
    if ((l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0 ||
        (c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(c, (struct sockaddr *)&a, sizeof(a)) != 0) {
        snprintf(why, whylen, "the probe's loopback connection failed: %s", strerror(errno));
        err = -1;
    } else if ((err = ulp_tls(c)) != 0) {
        if (err == ENOENT)
            snprintf(why, whylen, "the kernel has no TLS (setsockopt TCP_ULP \"tls\": %s; it "
                     "needs CONFIG_TLS, `modprobe tls`)", strerror(err));
        else
            snprintf(why, whylen, "the kernel refused TLS (setsockopt TCP_ULP \"tls\": %s)",
                     strerror(err));
    } else {
        snprintf(why, whylen, "the kernel takes TLS keys (TCP_ULP \"tls\") and OpenSSL %s "
                 "hands them over", OpenSSL_version(OPENSSL_VERSION_STRING));
    }
    if (c >= 0)
        close(c);
    if (l >= 0)
        close(l);
    return err == 0 ? 1 : 0;
#endif
}

BIO *async__tls_ktls_bio(int fd)
{
    BIO *b;

    if (ulp_tls(fd) != 0)
        return NULL;
    /* OpenSSL's own socket BIO: the one it hands the sending keys to */
    if ((b = BIO_new_socket(fd, BIO_NOCLOSE)) == NULL)
        ERR_clear_error();
    return b;
}

void async__tls_ktls_count(bool first, size_t bytes)
{
    if (first)
        atomic_fetch_add_explicit(&ktls_connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ktls_bytes, bytes, memory_order_relaxed);
}

void async_tls_ktls_stats(struct async_tls_ktls_stats *st)
{
    st->connections = atomic_load_explicit(&ktls_connections, memory_order_relaxed);
    st->bytes = atomic_load_explicit(&ktls_bytes, memory_order_relaxed);
}
