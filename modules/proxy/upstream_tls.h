/* modules/proxy/upstream_tls.h — HTTPS to upstream servers (upstream_tls.c). */
#ifndef PROXY_UPSTREAM_TLS_H
#define PROXY_UPSTREAM_TLS_H

#include <async_io.h>
#include <async_io/module.h>

struct upstream_tls;

/* Checks an upstream's "tls" value (true, or an object of verify, ca,
 * server_name), counting problems in *bad.  A CA file is read. */
void upstream_tls_check(async_module_report *r, const char *name, const json_t *v, int *bad);

/* The client context for a checked "tls" value; NULL when v is absent or
 * false (plain TCP), and NULL (logged) when the context cannot be made —
 * tell them apart by v.  host_field: the upstream's "host", the name
 * checked when "server_name" is not given (NULL: each server's host). */
struct upstream_tls *upstream_tls_new(async_module_host *host, const char *upstream,
                                      const json_t *v, const char *host_field);
void upstream_tls_free(struct upstream_tls *t);

/* An async_http_connect_fn (arg: the upstream_tls): TCP, then the TLS
 * handshake, the certificate verified.  NULL with errno (EPROTO: the
 * handshake or the verification failed, logged with the reason). */
async_stream *upstream_tls_connect(const char *address, void *arg);

#endif
