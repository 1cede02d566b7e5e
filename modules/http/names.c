/* modules/http/names.c — host names to values, for the sites (the Host of
 * a request, sites.c) and for each HTTPS address's certificates (the
 * server name of a handshake, tls.c).
 *
 * A host is taken without its port and one trailing dot, compared
 * without case.  Exact names first, from an open-addressing table built
 * once and read-only after: one hash of the name and, expected, one
 * probe, whatever the number of names.  Then wildcards ("*.example.org"
 * matches every name under example.org, not example.org itself), longest
 * first: one lookup per label of the host in a second table of suffixes
 * (".example.org"), so 100 wildcards cost what one does.  The hash runs
 * over the name from its last byte to its first, so the one pass that
 * hashes the host also gives the hash of every suffix that starts at a
 * dot: a host with many labels is hashed once, not once per label
 * (measured: with a 24-byte host that no name matches, hashing each
 * suffix afresh cost 1,300 instructions a request,
 * bench/http/sites_instructions.sh).  Each name holds on a set of listen
 * addresses (a mask). */
#include "sites.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct http_name_slot {
    const char *name;           /* NULL: empty */
    uint32_t len, hash;
    uint32_t mask;              /* the listen addresses it holds on */
    void *value;
};

/* Case folded as same_name folds it (below): bit 0x20 set. */
static unsigned fold(char c)
{
    return (unsigned char)c | 0x20u;
}

#define FNV_BASIS 2166136261u
#define FNV_PRIME 16777619u
#define MAX_LABELS 128          /* a 253-byte name has at most 127 */

/* FNV-1a over the lower-cased bytes, last to first (see the top). */
static uint32_t hash(const char *p, size_t n)
{
    uint32_t h = FNV_BASIS;

    while (n-- > 0)
        h = (h ^ fold(p[n])) * FNV_PRIME;
    return h;
}

static int table_init(struct http_name_table *t, size_t names)
{
    size_t size = 16;

    while (size < names * 2)
        size *= 2;
    t->slot = calloc(size, sizeof(*t->slot));
    t->mask = size - 1;
    return t->slot != NULL ? 0 : -1;
}

static void table_put(struct http_name_table *t, const char *name, uint32_t mask, void *value)
{
    uint32_t len = (uint32_t)strlen(name), h = hash(name, len);
    size_t i = h & t->mask;

    while (t->slot[i].name != NULL)
        i = (i + 1) & t->mask;
    t->slot[i] = (struct http_name_slot){name, len, h, mask, value};
}

/* a[0..n) and b[0..n) are the same name in any case.  Setting bit 0x20
 * lower-cases a letter and leaves every other byte a name or a Host may
 * hold as it is or maps it to one neither may hold ('_' to DEL, '[' to
 * '{': the parser's reg-name table and the config check keep those out),
 * so eight bytes are compared at a time (measured: the byte-by-byte
 * tolower loop was 185 instructions of a request for a 17-byte name),
 * and the hash folds the same way (a branch per byte less). */
static bool same_name(const char *a, const char *b, size_t n)
{
    const uint64_t fold = 0x2020202020202020ull;
    uint64_t x, y;

    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if ((x | fold) != (y | fold))
            return false;
    }
    for (; n > 0; a++, b++, n--)
        if ((*a | 0x20) != (*b | 0x20))
            return false;
    return true;
}

/* The value of name p[0..n) (any case, hash h) on listen address bit. */
static void *table_get(const struct http_name_table *t, const char *p, size_t n, uint32_t h,
                       uint32_t bit)
{
    size_t i = h & t->mask;

    for (; t->slot[i].name != NULL; i = (i + 1) & t->mask) {
        const struct http_name_slot *s = &t->slot[i];

        if (s->hash == h && s->len == n && (s->mask & bit) != 0 && same_name(s->name, p, n))
            return s->value;
    }
    return NULL;
}

int http_names_init(struct http_names *t, size_t exact, size_t wild)
{
    memset(t, 0, sizeof(*t));
    if (table_init(&t->exact, exact) != 0 || table_init(&t->wild, wild) != 0) {
        http_names_free(t);
        return -1;
    }
    return 0;
}

void http_names_put(struct http_names *t, const char *name, uint32_t mask, void *value)
{
    t->nnames++;
    if (name[0] == '*') {
        t->nwild++;
        table_put(&t->wild, name + 1, mask, value);
    } else {
        table_put(&t->exact, name, mask, value);
    }
}

void http_names_free(struct http_names *t)
{
    free(t->exact.slot);
    free(t->wild.slot);
    memset(t, 0, sizeof(*t));
}

void *http_names_find(const struct http_names *t, const char *host, uint32_t bit)
{
    uint32_t h = FNV_BASIS, at[MAX_LABELS];
    size_t n = 0, i, dot[MAX_LABELS], nd = 0;
    void *v;

    if (host == NULL || host[0] == '\0' || t->nnames == 0)
        return NULL;
    if (host[0] == '[') { /* an IPv6 literal: up to its ']' */
        while (host[n] != '\0' && host[n++] != ']')
            ;
    } else {
        n = strcspn(host, ":"); /* libc's vector scan: a third of the byte loop's cost */
    }
    if (n > 1 && host[n - 1] == '.')
        n--;
    if (t->nwild == 0) {
        for (i = n; i-- > 0;)
            h = (h ^ fold(host[i])) * FNV_PRIME;
    } else {
        for (i = n; i-- > 0;) {
            h = (h ^ fold(host[i])) * FNV_PRIME;
            if (host[i] == '.' && i > 0 && nd < MAX_LABELS) {
                at[nd] = h; /* the hash of host[i..n) */
                dot[nd++] = i;
            }
        }
    }
    if ((v = table_get(&t->exact, host, n, h, bit)) != NULL)
        return v;
    while (nd-- > 0) /* the leftmost dot first: the longest suffix */
        if ((v = table_get(&t->wild, host + dot[nd], n - dot[nd], at[nd], bit)) != NULL)
            return v;
    return NULL;
}

