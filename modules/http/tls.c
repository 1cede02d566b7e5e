/* modules/http/tls.c — listen entries that serve HTTPS.
 *
 *   "listen": ["127.0.0.1:8080",
 *              {"address": "127.0.0.1:8443",
 *               "tls": {"cert": "fullchain.pem", "key": "key.pem"}}]
 *
 * "tls" may also be an array of such pairs (an ECDSA and an RSA
 * certificate side by side).  The check reads the files as run will: an
 * unreadable file, a key that does not match its certificate or a chain
 * out of order is a problem, an expired certificate a warning.
 *
 * Reload.  One context per listen entry, shared by every worker; SIGHUP
 * with the config unchanged calls http_tls_reload, which makes a new
 * context from the same files and swaps it in for new handshakes, while
 * established connections keep the context they started with (each holds
 * a reference).  A bad new file leaves the old context serving.
 *
 * Threads: `ctx` is read by every acceptor (any worker) and replaced by
 * the daemon's fiber; `lock` guards it, taken once per accepted
 * connection (around SSL_new, far cheaper than the handshake that
 * follows) and once per reload. */
#include "http.h"

#include <async_io/tls.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CERTS 4

/* What a client speaking plain HTTP to the port gets (nginx's words). */
static const char plain_reply[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 47\r\n"
    "Connection: close\r\n\r\n"
    "The plain HTTP request was sent to HTTPS port.\n";

struct http_tls {
    struct async_tls_cert certs[MAX_CERTS]; /* paths, owned */
    size_t ncerts;
    pthread_mutex_t lock;
    async_tls_context *ctx;     /* under lock; NULL until http_tls_open */
};

bool http_tls_same(const struct http_tls *a, const struct http_tls *b)
{
    size_t i;

    if (a == NULL || b == NULL)
        return a == b;
    if (a->ncerts != b->ncerts)
        return false;
    for (i = 0; i < a->ncerts; i++)
        if (strcmp(a->certs[i].cert_file, b->certs[i].cert_file) != 0 ||
            strcmp(a->certs[i].key_file, b->certs[i].key_file) != 0)
            return false;
    return true;
}

/* ---- the check ---- */

static bool nonempty_string(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0 &&
           strlen(json_string_value(v)) == json_string_length(v);
}

/* One {"cert", "key"} pair at path; the files are checked once the shape
 * is right.  Problems reported: their count. */
static unsigned check_pair(const json_t *p, const char *path, async_module_report *rep)
{
    struct async_tls_cert c;
    char sub[160], why[512];
    const char *key;
    const json_t *v;
    unsigned n = 0;
    int rc;

    if (!json_is_object(p)) {
        async_module_problem(rep, path, "must be an object {\"cert\": FILE, \"key\": FILE}");
        return 1;
    }
    json_object_foreach((json_t *)p, key, v)
        if (strcmp(key, "cert") != 0 && strcmp(key, "key") != 0) {
            snprintf(sub, sizeof(sub), "%s.%s", path, key);
            async_module_problem(rep, sub, "unknown key (a certificate has \"cert\" and \"key\")");
            n++;
        }
    c.cert_file = json_string_value(json_object_get(p, "cert"));
    c.key_file = json_string_value(json_object_get(p, "key"));
    if (!nonempty_string(json_object_get(p, "cert")) || !nonempty_string(json_object_get(p, "key"))) {
        async_module_problem(rep, path, "needs \"cert\" (a PEM file: the certificate, then its "
                             "chain) and \"key\" (a PEM file: its private key)");
        return n + 1;
    }
    rc = async_tls_cert_check(&c, why, sizeof(why));
    /* name the key when the key is what is wrong */
    snprintf(sub, sizeof(sub), "%s.%s", path,
             strstr(why, "does not match") != NULL || strncmp(why, c.key_file, strlen(c.key_file)) == 0 ||
                     (strncmp(why, "cannot read ", 12) == 0 &&
                      strncmp(why + 12, c.key_file, strlen(c.key_file)) == 0)
                 ? "key"
                 : "cert");
    if (rc < 0) {
        async_module_problem(rep, sub, "%s", why);
        n++;
    } else if (rc > 0) {
        async_module_warning(rep, sub, "%s", why);
    }
    return n;
}

unsigned http_tls_check(const json_t *tls, const char *path, async_module_report *rep)
{
    struct async_tls_cert certs[MAX_CERTS];
    struct async_tls_server_config cfg = {.certs = certs};
    async_tls_context *ctx;
    char sub[160], why[512];
    const json_t *p;
    unsigned n = 0;
    size_t i;

    if (json_is_object(tls))
        return check_pair(tls, path, rep) > 0 ? 1 : 0;
    if (!json_is_array(tls) || json_array_size(tls) == 0 || json_array_size(tls) > MAX_CERTS) {
        async_module_problem(rep, path, "must be {\"cert\": FILE, \"key\": FILE} or an array of 1 "
                             "to %d of them (say, an ECDSA and an RSA certificate)", MAX_CERTS);
        return 1;
    }
    json_array_foreach(tls, i, p) {
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        n += check_pair(p, sub, rep);
    }
    if (n > 0)
        return n;
    /* each pair is fine: together too? */
    json_array_foreach(tls, i, p) {
        certs[i].cert_file = json_string_value(json_object_get(p, "cert"));
        certs[i].key_file = json_string_value(json_object_get(p, "key"));
    }
    cfg.ncerts = json_array_size(tls);
    if ((ctx = async_tls_server_new(&cfg, why, sizeof(why))) == NULL) {
        async_module_problem(rep, path, "%s", why);
        return 1;
    }
    async_tls_context_free(ctx);
    return 0;
}

/* ---- from the config to contexts ---- */

static int add_pair(struct http_tls *t, const json_t *p)
{
    struct async_tls_cert *c = &t->certs[t->ncerts];

    c->cert_file = strdup(json_string_value(json_object_get(p, "cert")));
    c->key_file = strdup(json_string_value(json_object_get(p, "key")));
    t->ncerts++;
    return c->cert_file != NULL && c->key_file != NULL ? 0 : -1;
}

struct http_tls *http_tls_load(const json_t *tls)
{
    struct http_tls *t = calloc(1, sizeof(*t));
    const json_t *p;
    size_t i;

    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    if (json_is_object(tls)) {
        if (add_pair(t, tls) != 0)
            goto fail;
    } else {
        json_array_foreach(tls, i, p)
            if (i < MAX_CERTS && add_pair(t, p) != 0)
                goto fail;
    }
    return t;
fail:
    http_tls_free(t);
    return NULL;
}

void http_tls_free(struct http_tls *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->ncerts; i++) {
        free((char *)t->certs[i].cert_file);
        free((char *)t->certs[i].key_file);
    }
    async_tls_context_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static async_tls_context *make(struct http_tls *t, char *why, size_t whylen)
{
    struct async_tls_server_config cfg = {
        .certs = t->certs,
        .ncerts = t->ncerts,
        .alpn = "http/1.1",
        .plaintext_reply = plain_reply,
    };

    return async_tls_server_new(&cfg, why, whylen);
}

int http_tls_open(struct http_tls *t, char *why, size_t whylen)
{
    async_tls_context *ctx = make(t, why, whylen);

    if (ctx == NULL)
        return -1;
    pthread_mutex_lock(&t->lock);
    async_tls_context_free(t->ctx);
    t->ctx = ctx;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

int http_tls_start(struct http_tls *t, async_stream *s)
{
    int rc;

    pthread_mutex_lock(&t->lock);
    rc = async_tls_server(s, t->ctx);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* Warnings about certificates that are served anyway (expired). */
void http_tls_warn(struct http_tls *t, async_module_host *host, const char *address)
{
    char why[512];
    size_t i;

    for (i = 0; i < t->ncerts; i++)
        if (async_tls_cert_check(&t->certs[i], why, sizeof(why)) > 0)
            async_module_log(host, ASYNC_LOG_WARNING, "%s: %s", address, why);
}
