/* modules/http/allow.h — who may read the status and metrics endpoints:
 * lists of addresses and CIDR prefixes (allow.c).  Pure: no I/O, no
 * allocation but the list's own array, so the unit tests need nothing
 * else. */
#ifndef HTTP_ALLOW_H
#define HTTP_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One prefix.  IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d, bits +
 * 96), so a peer an IPv6 socket saw as ::ffff:127.0.0.1 matches
 * "127.0.0.0/8" like one an IPv4 socket saw as 127.0.0.1. */
struct http_cidr {
    uint8_t addr[16];           /* with the bits past the prefix cleared */
    unsigned bits;              /* 0..128 */
};

struct http_allow {
    struct http_cidr *cidr;
    size_t n;
};

/* "10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8" (no zone, no port): 0 and
 * *out, or -1 with *why saying what is wrong.  Host bits set past the
 * prefix ("10.0.0.1/8") are refused: such an entry means something other
 * than what it matches. */
int http_cidr_parse(const char *s, struct http_cidr *out, const char **why);

/* An address as 16 bytes (IPv4 mapped), from the engine's peer form
 * "1.2.3.4:5678" or "[::1]:5678": 0, or -1 when it is neither. */
int http_peer_address(const char *peer, uint8_t out[16]);

/* Whether addr falls in one of a's prefixes. */
bool http_allow_match(const struct http_allow *a, const uint8_t addr[16]);

/* The default: loopback only (127.0.0.0/8 and ::1).  0, or -1 ENOMEM. */
int http_allow_loopback(struct http_allow *a);
void http_allow_free(struct http_allow *a);

#endif
