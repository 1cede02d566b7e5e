/* runtime/tls/check — what a configuration check says about a
 * certificate before anything serves it: the files readable, the key
 * matching the leaf, the chain in order (leaf first, each next one the
 * issuer of the one before: what clients expect and what
 * SSL_CTX_use_certificate_chain_file sends as it is), and the dates. */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#define MAX_CHAIN 16

static void when(const ASN1_TIME *t, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    int n = 0;

    buf[0] = '\0';
    if (b != NULL && ASN1_TIME_print(b, t) == 1)
        n = BIO_read(b, buf, (int)len - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

/* Reads the PEM certificates of path into chain: their count, or -1 with
 * why filled. */
static int read_chain(const char *path, X509 **chain, char *why, size_t whylen)
{
    BIO *b = BIO_new_file(path, "r");
    int n = 0;

    if (b == NULL) {
        int err = errno;

        ERR_clear_error();
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(err != 0 ? err : EIO));
        return -1;
    }
    while (n < MAX_CHAIN && (chain[n] = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        n++;
    ERR_clear_error(); /* the end of the file reads as an error */
    BIO_free(b);
    if (n == 0)
        snprintf(why, whylen, "%s holds no PEM certificate", path);
    return n > 0 ? n : -1;
}

static EVP_PKEY *read_key(const char *path, char *why, size_t whylen)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k;

    if (b == NULL) {
        int err = errno;

        ERR_clear_error();
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(err != 0 ? err : EIO));
        return NULL;
    }
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (k == NULL)
        async__tls_reason(why, whylen, path);
    return k;
}

/* 0 good, 1 warning, -1 problem (why filled for both). */
static int check_chain(const struct async_tls_cert *c, X509 **chain, int n, EVP_PKEY *key,
                       char *why, size_t whylen)
{
    char at[64];
    int i;

    if (X509_check_private_key(chain[0], key) != 1) {
        ERR_clear_error();
        snprintf(why, whylen, "%s does not match the certificate in %s", c->key_file,
                 c->cert_file);
        return -1;
    }
    for (i = 1; i < n; i++)
        if (X509_check_issued(chain[i], chain[i - 1]) != X509_V_OK) {
            snprintf(why, whylen,
                     "%s: certificate %d did not issue certificate %d: the chain is out of order "
                     "(the server's certificate first, then each one's issuer)",
                     c->cert_file, i + 1, i);
            return -1;
        }
    if (X509_cmp_current_time(X509_get0_notAfter(chain[0])) <= 0) {
        when(X509_get0_notAfter(chain[0]), at, sizeof(at));
        snprintf(why, whylen, "%s expired (not after %s)", c->cert_file, at);
        return 1;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(chain[0])) >= 0) {
        when(X509_get0_notBefore(chain[0]), at, sizeof(at));
        snprintf(why, whylen, "%s is not valid yet (not before %s)", c->cert_file, at);
        return 1;
    }
    return 0;
}

int async_tls_cert_check(const struct async_tls_cert *c, char *why, size_t whylen)
{
    X509 *chain[MAX_CHAIN];
    EVP_PKEY *key;
    char dummy[1];
    int n, i, rc;

    if (why == NULL || whylen == 0) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    why[0] = '\0';
    if (c == NULL || c->cert_file == NULL || c->key_file == NULL) {
        snprintf(why, whylen, "a certificate needs a cert file and a key file");
        errno = EINVAL;
        return -1;
    }
    if ((n = read_chain(c->cert_file, chain, why, whylen)) < 0)
        return -1;
    if ((key = read_key(c->key_file, why, whylen)) == NULL) {
        rc = -1;
    } else {
        rc = check_chain(c, chain, n, key, why, whylen);
        EVP_PKEY_free(key);
    }
    for (i = 0; i < n; i++)
        X509_free(chain[i]);
    return rc;
}
