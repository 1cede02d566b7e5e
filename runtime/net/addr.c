/* runtime/net/addr — "host:port" parsing and name resolution. */
#include "net.h"

#include <async_io/blocking.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int async__split_address(const char *address, struct async__hostport *out)
{
    const char *host, *port, *end;
    size_t hlen, plen, i;

    if (address == NULL)
        return EINVAL;
    if (address[0] == '[') { /* [v6]:port */
        host = address + 1;
        end = strchr(host, ']');
        if (end == NULL || end[1] != ':')
            return EINVAL;
        hlen = (size_t)(end - host);
        port = end + 2;
        if (hlen == 0)
            return EINVAL;
    } else {
        end = strrchr(address, ':');
        if (end == NULL)
            return EINVAL;
        host = address;
        hlen = (size_t)(end - address);
        port = end + 1;
        if (memchr(host, ':', hlen) != NULL)
            return EINVAL; /* a bare IPv6 address needs brackets */
        if (hlen == 1 && host[0] == '*')
            hlen = 0;
    }
    plen = strlen(port);
    if (hlen >= sizeof(out->host) || plen == 0 || plen >= sizeof(out->port))
        return EINVAL;
    for (i = 0; i < plen; i++)
        if (port[i] < '0' || port[i] > '9')
            return EINVAL;
    if (strtol(port, NULL, 10) > 65535)
        return EINVAL;
    for (i = 0; i < hlen; i++)
        if ((unsigned char)host[i] <= ' ' || host[i] == '/' || host[i] == '[' || host[i] == ']')
            return EINVAL;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    memcpy(out->port, port, plen + 1);
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
