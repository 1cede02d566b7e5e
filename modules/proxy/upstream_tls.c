/* modules/proxy/upstream_tls.c — HTTPS to upstream servers:
 *
 *   "app": { "servers": ["10.0.0.5:443"],
 *            "tls": { "verify": true, "ca": "internal-ca.pem", "server_name": "app.internal" } }
 *
 * ("tls": true is all defaults.)  The server's certificate is verified
 * against `ca` (else the system's CAs) unless "verify": false, and must
 * name `server_name` — by default the upstream's "host", else the host
 * part of each server's address (an IP address is checked against the
 * certificate's addresses and not sent as SNI).  One client context per
 * upstream, shared by every worker; the pool keeps TLS connections alive
 * like plain ones (async_http_pool_set_connect), so a handshake is paid
 * per connection, not per request. */
#include "upstream_tls.h"

#include <async_io/tls.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct upstream_tls {
    async_tls_context *ctx;
    char *server_name;          /* NULL: each server's host */
    async_module_host *host;
    const char *upstream;       /* for log lines */
};

static const char *const tls_keys[] = {"verify", "ca", "server_name"};

void upstream_tls_check(async_module_report *r, const char *name, const json_t *v, int *bad)
{
    char path[512], why[256] = "";
    const json_t *ca, *sn, *verify;
    const char *key;
    const json_t *x;
    size_t i;

    snprintf(path, sizeof(path), "upstreams.%s.tls", name);
    if (json_is_true(v))
        return;
    if (!json_is_object(v)) {
        async_module_problem(r, path, "must be true or an object (verify, ca, server_name)");
        (*bad)++;
        return;
    }
    json_object_foreach((json_t *)v, key, x) {
        for (i = 0; i < sizeof(tls_keys) / sizeof(tls_keys[0]) && strcmp(key, tls_keys[i]); i++)
            ;
        if (i == sizeof(tls_keys) / sizeof(tls_keys[0])) {
            snprintf(path, sizeof(path), "upstreams.%s.tls.%s", name, key);
            async_module_problem(r, path, "unknown key");
            (*bad)++;
        }
    }
    verify = json_object_get(v, "verify");
    if (verify != NULL && !json_is_boolean(verify)) {
        snprintf(path, sizeof(path), "upstreams.%s.tls.verify", name);
        async_module_problem(r, path, "must be true or false");
        (*bad)++;
    }
    sn = json_object_get(v, "server_name");
    if (sn != NULL && (!json_is_string(sn) || json_string_length(sn) == 0 ||
                       strpbrk(json_string_value(sn), " \t\r\n/") != NULL)) {
        snprintf(path, sizeof(path), "upstreams.%s.tls.server_name", name);
        async_module_problem(r, path, "must be a host name");
        (*bad)++;
    }
    ca = json_object_get(v, "ca");
    if (ca != NULL && !json_is_string(ca)) {
        snprintf(path, sizeof(path), "upstreams.%s.tls.ca", name);
        async_module_problem(r, path, "must be the name of a PEM file of trusted CAs");
        (*bad)++;
    } else if (ca != NULL) {
        /* the file is read as the daemon will read it: a context made and
         * thrown away */
        struct async_tls_client_config cfg = {.ca_file = json_string_value(ca)};
        async_tls_context *ctx = async_tls_client_new(&cfg, why, sizeof(why));

        if (ctx == NULL) {
            snprintf(path, sizeof(path), "upstreams.%s.tls.ca", name);
            async_module_problem(r, path, "%s", why[0] != '\0' ? why : strerror(errno));
            (*bad)++;
        }
        async_tls_context_free(ctx);
    }
}

struct upstream_tls *upstream_tls_new(async_module_host *host, const char *upstream,
                                      const json_t *v, const char *host_field)
{
    struct async_tls_client_config cfg = {.alpn = "http/1.1"};
    struct upstream_tls *t;
    const json_t *sn;
    char why[256] = "", bare[256];
    const char *perr;
    int port;

    if (v == NULL || json_is_false(v))
        return NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->host = host;
    t->upstream = upstream;
    if (json_is_object(v)) {
        cfg.ca_file = json_string_value(json_object_get(v, "ca"));
        cfg.no_verify = json_is_false(json_object_get(v, "verify"));
        if ((sn = json_object_get(v, "server_name")) != NULL)
            host_field = json_string_value(sn);
    }
    /* "host" may carry a port (it is a Host field): the name is before it */
    if (host_field != NULL &&
        async_address_parse(host_field, bare, sizeof(bare), &port, &perr) == 0 && bare[0] != '\0')
        host_field = bare;
    if ((host_field != NULL && (t->server_name = strdup(host_field)) == NULL) ||
        (t->ctx = async_tls_client_new(&cfg, why, sizeof(why))) == NULL) {
        async_module_log(host, ASYNC_LOG_ERROR, "upstream %s: TLS: %s", upstream,
                         why[0] != '\0' ? why : strerror(errno));
        upstream_tls_free(t);
        return NULL;
    }
    return t;
}

void upstream_tls_free(struct upstream_tls *t)
{
    if (t == NULL)
        return;
    async_tls_context_free(t->ctx);
    free(t->server_name);
    free(t);
}

/* The host part of "host:port" or "[v6]:port" into out. */
static const char *host_of(const char *address, char *out, size_t len)
{
    const char *why;
    int port;

    if (async_address_parse(address, out, len, &port, &why) != 0)
        return NULL;
    return out;
}

async_stream *upstream_tls_connect(const char *address, void *arg)
{
    struct upstream_tls *t = arg;
    const char *name = t->server_name;
    char host[256];
    async_stream *s;
    int err;

    if (name == NULL && (name = host_of(address, host, sizeof(host))) == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((s = async_tcp_connect(address)) == NULL)
        return NULL;
    if (async_tls_client(s, t->ctx, name) == 0 && async_tls_handshake(s) == 0)
        return s;
    err = errno;
    if (err == EPROTO)
        async_module_log(t->host, ASYNC_LOG_WARNING, "upstream %s: TLS to %s (%s): %s",
                         t->upstream, address, name, async_tls_error(s));
    async_stream_close(s);
    errno = err;
    return NULL;
}
