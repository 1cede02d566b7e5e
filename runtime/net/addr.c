/* runtime/net/addr — "host:port" parsing and name resolution.
 *
 * One parser serves bind, connect and async_address_parse, so a config
 * checker that calls the last accepts exactly what the first two will. */
#include "net.h"

#include <async_io/blocking.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host of an unbracketed address: "" (any), an IPv4 address, or a
 * name.  NULL if fine, else why not.  A run of digits and dots is read
 * as IPv4 by getaddrinfo (inet_aton's forms, "127.1" included); one that
 * is not would be looked up as a name and fail late, so it fails here. */
static const char *plain_host(const char *h, size_t n)
{
    char buf[256];
    struct in_addr a;
    bool numeric = true;
    size_t i;

    for (i = 0; i < n; i++) {
        char c = h[i];

        if (c == ':')
            return "a bare IPv6 address needs brackets: \"[::1]:80\"";
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return "the host may hold only letters, digits, '-' and '.'";
        numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
    }
    if (n > 253)
        return "the host name is longer than 253 bytes";
    if (numeric && n > 0) {
        memcpy(buf, h, n);
        buf[n] = '\0';
        if (inet_aton(buf, &a) == 0)
            return "not an IPv4 address";
    }
    return NULL;
}

/* The inside of "[...]": an IPv6 literal, optionally "%zone". */
static const char *bracketed_host(const char *h, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    const char *zone = memchr(h, '%', n);
    size_t alen = zone != NULL ? (size_t)(zone - h) : n, i;

    if (n == 0)
        return "empty brackets";
    if (alen >= sizeof(buf))
        return "not an IPv6 address";
    memcpy(buf, h, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET6, buf, &a) != 1)
        return "not an IPv6 address";
    if (zone != NULL) {
        if (zone + 1 == h + n || n - alen > 1 + 15)
            return "the %zone must name an interface";
        for (i = alen + 1; i < n; i++)
            if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
                  (h[i] >= '0' && h[i] <= '9') || h[i] == '-' || h[i] == '.' || h[i] == '_'))
                return "the %zone must name an interface";
    }
    return NULL;
}

/* The decimal port after the ':' into *value: NULL, or why not. */
static const char *parse_port(const char *p, long *value)
{
    size_t plen = strlen(p), i;

    *value = 0;
    if (plen == 0)
        return "no port after ':'";
    for (i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return "the port must be decimal digits";
        if (i < 6)
            *value = *value * 10 + (p[i] - '0');
    }
    if (plen > 5 || *value > 65535)
        return "the port is above 65535";
    return NULL;
}

/* 0 or an errno value, with *why saying what was wrong. */
static int parse_address(const char *address, char *host, size_t hostlen, int *port,
                         const char **why)
{
    const char *h, *p, *end, *reason;
    size_t hlen;
    long value;

    *why = NULL;
    if (address == NULL) {
        *why = "no address";
        return EINVAL;
    }
    if (address[0] == '[') { /* [v6]:port */
        h = address + 1;
        end = strchr(h, ']');
        if (end == NULL) {
            *why = "'[' without ']'";
            return EINVAL;
        }
        if (end[1] != ':') {
            *why = "']' must be followed by \":port\"";
            return EINVAL;
        }
        hlen = (size_t)(end - h);
        p = end + 2;
        reason = bracketed_host(h, hlen);
    } else {
        end = strrchr(address, ':');
        if (end == NULL) {
            *why = "no \":port\" (\"host:port\", \"[::1]:port\" or \"*:port\")";
            return EINVAL;
        }
        h = address;
        hlen = (size_t)(end - address);
        p = end + 1;
        if (hlen == 1 && h[0] == '*')
            hlen = 0;
        reason = plain_host(h, hlen);
    }
    if (reason != NULL) {
        *why = reason;
        return EINVAL;
    }
    if ((*why = parse_port(p, &value)) != NULL)
        return EINVAL;
    if (host != NULL) {
        if (hlen >= hostlen) {
            *why = "the host does not fit";
            return ENAMETOOLONG;
        }
        memcpy(host, h, hlen);
        host[hlen] = '\0';
    }
    if (port != NULL)
        *port = (int)value;
    return 0;
}

int async_address_parse(const char *address, char *host, size_t hostlen, int *port,
                        const char **why)
{
    const char *reason;
    int err = parse_address(address, host, hostlen, port, &reason);

    if (why != NULL)
        *why = reason;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int async__split_address(const char *address, struct async__hostport *out)
{
    const char *why;
    int port, err = parse_address(address, out->host, sizeof(out->host), &port, &why);

    if (err != 0)
        return EINVAL;
    snprintf(out->port, sizeof(out->port), "%d", port);
    return 0;
}

static int gai_errno(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return ENXIO;
    case EAI_AGAIN:
        return EAGAIN;
    case EAI_MEMORY:
        return ENOMEM;
    case EAI_SYSTEM:
        return errno != 0 ? errno : EIO;
    default:
        return EINVAL;
    }
}

/* A getaddrinfo call that may outlive the fiber that asked for it. */
struct lookup {
    struct async__hostport hp;
    struct addrinfo hints;
    struct addrinfo *res;
    int rc;
};

static void *lookup_run(void *arg)
{
    struct lookup *q = arg;

    q->rc = getaddrinfo(q->hp.host[0] != '\0' ? q->hp.host : NULL, q->hp.port, &q->hints, &q->res);
    return q;
}

static void lookup_abandon(void *arg, void *result, int ran)
{
    struct lookup *q = arg;

    (void)result;
    if (ran && q->rc == 0)
        freeaddrinfo(q->res);
    free(q);
}

int async__resolve(const struct async__hostport *hp, bool passive, struct addrinfo **res)
{
    struct addrinfo hints;
    struct lookup *q;
    int rc, err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (hp->host[0] == '\0') {
        /* Any address: the IPv6 wildcard first (dual-stack), then IPv4. */
        hints.ai_flags |= AI_NUMERICHOST;
        return gai_errno(getaddrinfo(NULL, hp->port, &hints, res));
    }
    hints.ai_flags |= AI_NUMERICHOST;
    rc = getaddrinfo(hp->host, hp->port, &hints, res);
    if (rc != EAI_NONAME)
        return gai_errno(rc);
    hints.ai_flags &= ~AI_NUMERICHOST;
    if (async__current() == NULL) /* not a fiber: this thread may block */
        return gai_errno(getaddrinfo(hp->host, hp->port, &hints, res));
    q = malloc(sizeof(*q));
    if (q == NULL)
        return ENOMEM;
    q->hp = *hp;
    q->hints = hints;
    q->res = NULL;
    q->rc = EAI_SYSTEM;
    if (async_blocking_ex(lookup_run, q, NULL, lookup_abandon) != 0)
        return errno; /* the helper frees q */
    err = gai_errno(q->rc);
    *res = q->res;
    free(q);
    return err;
}
