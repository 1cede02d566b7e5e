/* modules/http/tls.c — listen entries that serve HTTPS.
 *
 *   "listen": ["127.0.0.1:8080",
 *              {"address": "127.0.0.1:8443",
 *               "tls": {"cert": "fullchain.pem", "key": "key.pem"}}]
 *
 * "tls" may also be an array of such pairs (an ECDSA and an RSA
 * certificate side by side), or true in a server block: TLS with the
 * certificate of the address's default server.  The check reads the
 * files as run will: an unreadable file, a key that does not match its
 * certificate or a chain out of order is a problem, an expired
 * certificate a warning.
 *
 * SNI.  Server blocks on one HTTPS address each bring their certificates
 * for their names (sites_config.c hands them over): set 0 is the default
 * server's, served to a handshake without a server name or with one no
 * block names, or named by a block without a certificate of its own; the
 * others are the runtime's SNI sets.  The server name is looked up in a
 * name table like the sites' (http_names_find: exact names by hash, then
 * wildcards; any case; one trailing dot ignored), built once from the
 * config and read-only after, so a handshake takes no lock to choose.
 *
 * Reload.  One context per listen address (its sets inside), shared by
 * every worker; SIGHUP with the config unchanged calls http_tls_open,
 * which makes a new context from the same files and swaps it in for new
 * handshakes, while established connections keep the context they
 * started with (each holds a reference).  A bad new file leaves the old
 * context serving.  The name table outlives every context: it is the
 * http_tls's, freed with it, after the engine has ended every connection.
 * A config that changes an address's names or files is not the same
 * (http_tls_same): the module restarts rather than swap the table under
 * handshakes that may be reading it.
 *
 * Kernel TLS.  "ktls": true beside "tls" asks for the contexts of the
 * address to hand the kernel each connection's sending keys, so static
 * files leave with sendfile (runtime/tls/ktls.c says how, and why that
 * way); off by default, as in nginx: it trades the copy for the kernel's
 * TLS code and a SIGPIPE-raising write(2), and helps files only.  Where
 * the kernel has no TLS the contexts are made without it (http.c logs why
 * once at start) and files go through OpenSSL in 16 KiB records.
 *
 * Threads: `ctx` is read by every acceptor (any worker) and replaced by
 * the daemon's fiber; `lock` guards it, taken once per accepted
 * connection (around SSL_new, far cheaper than the handshake that
 * follows) and once per reload.  Everything else is written before the
 * first context is made and only read after. */
#include "http.h"
#include "sites.h"

#include <async_io/tls.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
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

/* Certificates served together. */
struct cert_set {
    struct async_tls_cert certs[MAX_CERTS]; /* paths, owned */
    size_t ncerts;              /* 0 only in set 0 of a bad config: nothing to serve */
};

/* A server name of a block on the address and its set. */
struct sni_name {
    char *name;                 /* lower case, no trailing dot */
    size_t set;
};

struct http_tls {
    struct cert_set *set;       /* [0]: the default server's */
    size_t nsets;
    struct sni_name *names;
    size_t nnames;
    struct http_names table;    /* name -> set + 1 (http_tls_index) */
    bool ktls;                  /* "ktls": kernel TLS for sending */
    pthread_mutex_t lock;
    async_tls_context *ctx;     /* under lock; NULL until http_tls_open */
};

static bool same_set(const struct cert_set *a, const struct cert_set *b)
{
    size_t i;

    if (a->ncerts != b->ncerts)
        return false;
    for (i = 0; i < a->ncerts; i++)
        if (strcmp(a->certs[i].cert_file, b->certs[i].cert_file) != 0 ||
            strcmp(a->certs[i].key_file, b->certs[i].key_file) != 0)
            return false;
    return true;
}

bool http_tls_same(const struct http_tls *a, const struct http_tls *b)
{
    size_t i;

    if (a == NULL || b == NULL)
        return a == b;
    if (a->nsets != b->nsets || a->nnames != b->nnames || a->ktls != b->ktls)
        return false;
    for (i = 0; i < a->nsets; i++)
        if (!same_set(&a->set[i], &b->set[i]))
            return false;
    for (i = 0; i < a->nnames; i++)
        if (strcmp(a->names[i].name, b->names[i].name) != 0 || a->names[i].set != b->names[i].set)
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

    if (json_is_true(tls))
        return 0; /* the default server's: sites_config.c checks there is one */
    if (json_is_object(tls))
        return check_pair(tls, path, rep) > 0 ? 1 : 0;
    if (!json_is_array(tls) || json_array_size(tls) == 0 || json_array_size(tls) > MAX_CERTS) {
        async_module_problem(rep, path, "must be {\"cert\": FILE, \"key\": FILE}, an array of 1 "
                             "to %d of them (say, an ECDSA and an RSA certificate), or true (the "
                             "certificate of the address's default server)", MAX_CERTS);
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

static int add_pair(struct cert_set *set, const json_t *p)
{
    struct async_tls_cert *c = &set->certs[set->ncerts];

    c->cert_file = strdup(json_string_value(json_object_get(p, "cert")));
    c->key_file = strdup(json_string_value(json_object_get(p, "key")));
    set->ncerts++;
    return c->cert_file != NULL && c->key_file != NULL ? 0 : -1;
}

/* The certificates of a checked "tls" value into set (true: none). */
static int set_load(struct cert_set *set, const json_t *tls)
{
    const json_t *p;
    size_t i;

    if (json_is_object(tls))
        return add_pair(set, tls);
    json_array_foreach(tls, i, p)
        if (i < MAX_CERTS && add_pair(set, p) != 0)
            return -1;
    return 0;
}

static void set_free(struct cert_set *set)
{
    size_t i;

    for (i = 0; i < set->ncerts; i++) {
        free((char *)set->certs[i].cert_file);
        free((char *)set->certs[i].key_file);
    }
}

struct http_tls *http_tls_load(const json_t *tls)
{
    struct http_tls *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    if ((t->set = calloc(1, sizeof(*t->set))) == NULL)
        goto fail;
    t->nsets = 1;
    if (set_load(&t->set[0], tls) != 0)
        goto fail;
    return t;
fail:
    http_tls_free(t);
    return NULL;
}

int http_tls_add_server(struct http_tls *t, const json_t *tls, char *const *names, size_t n)
{
    struct cert_set set = {0}, *more;
    struct sni_name *nn;
    size_t k = 0, i;

    if (set_load(&set, tls) != 0)
        goto fail;
    if (set.ncerts > 0) { /* its own certificates: a set they are already in, or a new one */
        for (k = 0; k < t->nsets && !same_set(&t->set[k], &set); k++)
            ;
        if (k == t->nsets) {
            if ((more = realloc(t->set, (t->nsets + 1) * sizeof(*more))) == NULL)
                goto fail;
            t->set = more;
            t->set[t->nsets++] = set;
            set.ncerts = 0; /* t's now */
        }
    }
    set_free(&set);
    if ((nn = realloc(t->names, (t->nnames + n) * sizeof(*nn))) == NULL)
        return -1;
    t->names = nn;
    for (i = 0; i < n; i++) {
        if ((nn[t->nnames].name = strdup(names[i])) == NULL)
            return -1;
        nn[t->nnames++].set = k;
    }
    return 0;
fail:
    set_free(&set);
    return -1;
}

int http_tls_index(struct http_tls *t)
{
    size_t i, wild = 0;

    for (i = 0; i < t->nnames; i++)
        wild += t->names[i].name[0] == '*';
    if (http_names_init(&t->table, t->nnames - wild, wild) != 0)
        return -1;
    for (i = 0; i < t->nnames; i++)
        http_names_put(&t->table, t->names[i].name, 1, (void *)(uintptr_t)(t->names[i].set + 1));
    return 0;
}

void http_tls_free(struct http_tls *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->nsets; i++)
        set_free(&t->set[i]);
    free(t->set);
    for (i = 0; i < t->nnames; i++)
        free(t->names[i].name);
    free(t->names);
    http_names_free(&t->table);
    async_tls_context_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void http_tls_set_ktls(struct http_tls *t, bool on)
{
    t->ktls = on;
}

bool http_tls_ktls(const struct http_tls *t)
{
    return t != NULL && t->ktls;
}

/* The runtime's sni function: the set of the block that names the server
 * name, as an index into the SNI sets (set k is SNI set k - 1), or -1 for
 * the default's.  One hash and, expected, one probe; no lock. */
static int pick(const char *name, void *arg)
{
    const struct http_tls *t = arg;
    uintptr_t v = (uintptr_t)http_names_find(&t->table, name, 1);

    return v >= 2 ? (int)(v - 2) : -1;
}

static async_tls_context *make(struct http_tls *t, char *why, size_t whylen)
{
    struct async_tls_server_config cfg = {
        .certs = t->set[0].certs,
        .ncerts = t->set[0].ncerts,
        .alpn = "http/1.1",
        .plaintext_reply = plain_reply,
        .ktls = t->ktls,
    };
    struct async_tls_cert_set *sets = NULL;
    async_tls_context *ctx;
    size_t i;

    if (t->nsets > 1) {
        if ((sets = calloc(t->nsets - 1, sizeof(*sets))) == NULL) {
            snprintf(why, whylen, "out of memory");
            return NULL;
        }
        for (i = 1; i < t->nsets; i++)
            sets[i - 1] = (struct async_tls_cert_set){t->set[i].certs, t->set[i].ncerts};
        cfg.sni_sets = sets;
        cfg.nsni_sets = t->nsets - 1;
        cfg.sni = pick;
        cfg.sni_arg = t;
    }
    ctx = async_tls_server_new(&cfg, why, whylen);
    free(sets);
    return ctx;
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

    size_t k;

    for (k = 0; k < t->nsets; k++)
        for (i = 0; i < t->set[k].ncerts; i++)
            if (async_tls_cert_check(&t->set[k].certs[i], why, sizeof(why)) > 0)
                async_module_log(host, ASYNC_LOG_WARNING, "%s: %s", address, why);
}
