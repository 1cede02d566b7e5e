/* runtime/tls/tickets — session-ticket keys for a server context.
 *
 * OpenSSL's own ticket key is made once per SSL_CTX and never changes,
 * so a stolen key would decrypt every session's resumption secret for as
 * long as the process lives.  Here a key encrypts new tickets for
 * `lifetime` seconds, then still decrypts (and asks for a renewed ticket)
 * for another `lifetime`, then is forgotten: forward secrecy for tickets
 * is bounded by twice the lifetime (12 h by default, so under a day).
 *
 * Threads: every worker's handshakes call back here.  The two keys are
 * guarded by `lock`, taken once per ticket issued or presented (a
 * handshake), never per record; the key material is copied out under it
 * and the crypto set-up happens outside. */
#include "tls.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_LIFETIME_S (12 * 3600)

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    int64_t born;               /* monotonic ms; 0: no key */
};

struct async__tls_tickets {
    pthread_mutex_t lock;
    struct ticket_key cur, prev; /* under lock */
    int64_t lifetime;            /* ms; fixed */
};

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void make_index(void)
{
    ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1; /* never 0 */
}

static int new_key(struct ticket_key *k, int64_t now)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->born = now;
    return 0;
}

/* Under lock: moves the keys on as time passed. */
static void rotate(struct async__tls_tickets *t, int64_t now)
{
    if (now - t->cur.born < t->lifetime)
        return;
    if (now - t->cur.born < 2 * t->lifetime)
        t->prev = t->cur; /* still decrypts for one more lifetime */
    else
        memset(&t->prev, 0, sizeof(t->prev));
    if (new_key(&t->cur, now) != 0)
        t->cur = t->prev; /* no randomness now: keep the old key a while longer */
}

static int set_up(const struct ticket_key *k, const unsigned char *iv, EVP_CIPHER_CTX *cctx,
                  EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };

    if (EVP_MAC_CTX_set_params(hctx, params) != 1 || EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params) != 1)
        return -1;
    if (enc)
        return EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
    return EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: 1 to use the key, 2 (decrypting) to use
 * it and issue a fresh ticket, 0 for a full handshake, -1 on error. */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct async__tls_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index);
    struct ticket_key k;
    int rc = 1;

    pthread_mutex_lock(&t->lock);
    rotate(t, now_ms());
    if (enc) {
        k = t->cur;
    } else if (memcmp(name, t->cur.name, sizeof(t->cur.name)) == 0) {
        k = t->cur;
    } else if (t->prev.born != 0 && memcmp(name, t->prev.name, sizeof(t->prev.name)) == 0) {
        k = t->prev;
        rc = 2;
    } else {
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    if (rc == 0)
        return 0;
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1)
            return -1;
        memcpy(name, k.name, sizeof(k.name));
    }
    rc = set_up(&k, iv, cctx, hctx, enc) == 0 ? rc : -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

int async__tls_tickets_new(async_tls_context *ctx, unsigned lifetime_s)
{
    struct async__tls_tickets *t = calloc(1, sizeof(*t));

    pthread_once(&ex_once, make_index);
    if (t == NULL || ex_index < 0)
        goto fail;
    t->lifetime = (int64_t)(lifetime_s > 0 ? lifetime_s : DEFAULT_LIFETIME_S) * 1000;
    if (new_key(&t->cur, now_ms()) != 0)
        goto fail;
    pthread_mutex_init(&t->lock, NULL);
    ctx->tickets = t;
    return 0;
fail:
    free(t);
    errno = ENOMEM;
    return -1;
}

/* The callback finds the keys through the SSL_CTX the connection has at
 * the time (an SNI set's after the ClientHello): each points at the one
 * context's keys. */
void async__tls_tickets_install(async_tls_context *ctx, SSL_CTX *ssl)
{
    struct async__tls_tickets *t = ctx->tickets;

    SSL_CTX_set_ex_data(ssl, ex_index, t);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ssl, ticket_cb);
    /* a session is worth resuming as long as its ticket can be read */
    SSL_CTX_set_timeout(ssl, (long)(2 * t->lifetime / 1000));
}

void async__tls_tickets_free(struct async__tls_tickets *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}
