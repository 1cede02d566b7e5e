/* modules/http/allow.c — address lists for the status and metrics
 * endpoints (allow.h): parsing entries, matching a peer.
 *
 * A peer is matched once per status or metrics request, against a list
 * of a few entries: a scan, no tree. */
#include "allow.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static void map_v4(const struct in_addr *a, uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a->s_addr, 4);
}

/* An address without a prefix length: 0 and whether it was IPv4, or -1. */
static int parse_address(const char *s, uint8_t out[16], bool *v4)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, s, &a4) == 1) {
        map_v4(&a4, out);
        *v4 = true;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a6) == 1) {
        memcpy(out, a6.s6_addr, 16);
        *v4 = false;
        return 0;
    }
    return -1;
}

/* Whether addr has any bit set past the first bits. */
static bool host_bits(const uint8_t addr[16], unsigned bits)
{
    unsigned i;

    for (i = bits; i < 128; i++)
        if (addr[i / 8] & (0x80u >> (i % 8)))
            return true;
    return false;
}

int http_cidr_parse(const char *s, struct http_cidr *out, const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    unsigned long bits;
    char *end;
    bool v4;

    if (n == 0 || n >= sizeof(host)) {
        *why = "not an IPv4 or IPv6 address";
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    if (parse_address(host, out->addr, &v4) != 0) {
        *why = "not an IPv4 or IPv6 address (a host name is not allowed: it would be "
               "resolved once, and could change)";
        return -1;
    }
    if (slash == NULL) {
        out->bits = 128;
        return 0;
    }
    if (slash[1] < '0' || slash[1] > '9' || (bits = strtoul(slash + 1, &end, 10), *end != '\0') ||
        bits > (v4 ? 32u : 128u) || (slash[1] == '0' && slash[2] != '\0')) {
        *why = v4 ? "the prefix length must be a number from 0 to 32"
                  : "the prefix length must be a number from 0 to 128";
        return -1;
    }
    out->bits = (unsigned)bits + (v4 ? 96u : 0u);
    if (host_bits(out->addr, out->bits)) {
        *why = "has bits set past its prefix length (write the network, e.g. 10.0.0.0/8)";
        return -1;
    }
    return 0;
}

int http_peer_address(const char *peer, uint8_t out[16])
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *end;
    size_t n;
    bool v4;

    if (peer[0] == '[') {
        end = strchr(peer, ']');
        peer++;
    } else {
        end = strrchr(peer, ':');
    }
    if (end == NULL || (n = (size_t)(end - peer)) == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, peer, n);
    host[n] = '\0';
    return parse_address(host, out, &v4);
}

static bool in_prefix(const struct http_cidr *c, const uint8_t addr[16])
{
    unsigned whole = c->bits / 8, rest = c->bits % 8;

    if (memcmp(c->addr, addr, whole) != 0)
        return false;
    return rest == 0 || ((c->addr[whole] ^ addr[whole]) & (uint8_t)(0xff00u >> rest)) == 0;
}

bool http_allow_match(const struct http_allow *a, const uint8_t addr[16])
{
    size_t i;

    for (i = 0; i < a->n; i++)
        if (in_prefix(&a->cidr[i], addr))
            return true;
    return false;
}

int http_allow_loopback(struct http_allow *a)
{
    const char *why;

    a->n = 0;
    if ((a->cidr = calloc(2, sizeof(*a->cidr))) == NULL)
        return -1;
    http_cidr_parse("127.0.0.0/8", &a->cidr[a->n++], &why);
    http_cidr_parse("::1", &a->cidr[a->n++], &why);
    return 0;
}

void http_allow_free(struct http_allow *a)
{
    free(a->cidr);
    a->cidr = NULL;
    a->n = 0;
}
