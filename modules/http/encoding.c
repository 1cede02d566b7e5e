/* modules/http/encoding.c — Accept-Encoding (RFC 9110 §12.5.3) against
 * the precompressed siblings a file has.
 *
 *   - A listed coding has its q (0 to 1, three decimals); "*" gives its q
 *     to every coding not listed; a coding neither listed nor covered by
 *     "*" is not acceptable.  "x-gzip" is gzip (§8.4.1.3).
 *   - Identity is acceptable unless "identity;q=0", or "*;q=0" without an
 *     identity entry, refuses it.  When identity is not listed it yields
 *     to any acceptable coding: a client that names gzip wants gzip, even
 *     at q=0.5 (what nginx's gzip_static does too).
 *   - No field: identity (the client has no preference, so the form every
 *     client reads).  An empty field: identity only.
 *   - An element that does not parse (a bad q) is skipped, as if absent.
 *   - Nothing acceptable, identity refused: identity all the same, not
 *     406.  RFC 9110 §12.5.3 says a server SHOULD then send the response
 *     without a content coding, and the HTTP WG kept it so on purpose
 *     (httpwg/http-core#980: 406 is less interoperable, since encodings
 *     are chosen late and clients list what they accept).  The client can
 *     still refuse what it got; a 406 would leave it with nothing.
 *
 * Nothing here allocates; the value is walked once. */
#include "encoding.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define Q_UNSET (-1)

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A qvalue ("0", "0.5", "1.000") in thousandths, or -1. */
static int qvalue(const char *p, size_t n)
{
    int q, scale = 100;
    size_t i;

    if (n == 0 || (p[0] != '0' && p[0] != '1') || (n > 1 && p[1] != '.') || n > 5)
        return -1;
    q = (p[0] - '0') * 1000;
    for (i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        q += (p[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* The q of one element's parameters p[0..n) (after the coding): 1000
 * without a q, or -1 when one does not parse. */
static int element_q(const char *p, size_t n)
{
    size_t i = 0, start;

    while (i < n) {
        while (i < n && (ows(p[i]) || p[i] == ';'))
            i++;
        start = i;
        while (i < n && p[i] != ';')
            i++;
        if (i - start >= 2 && (p[start] == 'q' || p[start] == 'Q') && p[start + 1] == '=') {
            size_t end = i;

            while (end > start + 2 && ows(p[end - 1]))
                end--;
            return qvalue(p + start + 2, end - start - 2);
        }
    }
    return 1000;
}

static bool named(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

enum http_coding http_coding_choose(const char *ae, unsigned have)
{
    int q[HTTP_CODINGS] = {Q_UNSET, Q_UNSET, Q_UNSET}, star = Q_UNSET, best_q = 0, c;
    enum http_coding best = HTTP_CODING_IDENTITY;
    const char *p = ae, *end, *semi;

    if (ae == NULL)
        return HTTP_CODING_IDENTITY;
    while (*p != '\0') {
        size_t n, name_n;
        int eq;

        while (ows(*p) || *p == ',')
            p++;
        if (*p == '\0')
            break;
        end = strchr(p, ',');
        n = end != NULL ? (size_t)(end - p) : strlen(p);
        semi = memchr(p, ';', n);
        name_n = semi != NULL ? (size_t)(semi - p) : n;
        while (name_n > 0 && ows(p[name_n - 1]))
            name_n--;
        eq = element_q(p + name_n, n - name_n);
        if (eq >= 0) {
            if (named(p, name_n, "*"))
                star = eq;
            else if (named(p, name_n, "identity"))
                q[HTTP_CODING_IDENTITY] = eq;
            else if (named(p, name_n, "gzip") || named(p, name_n, "x-gzip"))
                q[HTTP_CODING_GZIP] = eq;
            else if (named(p, name_n, "br"))
                q[HTTP_CODING_BR] = eq;
        }
        p += n;
    }
    /* br first: at equal q the earlier one stays */
    for (c = HTTP_CODING_BR; c > HTTP_CODING_IDENTITY; c--) {
        int cq = q[c] != Q_UNSET ? q[c] : star != Q_UNSET ? star : 0;

        if ((have & HTTP_HAVE(c)) && cq > best_q) {
            best = (enum http_coding)c;
            best_q = cq;
        }
    }
    /* identity competes only when the client named it */
    if (best != HTTP_CODING_IDENTITY && q[HTTP_CODING_IDENTITY] > best_q)
        best = HTTP_CODING_IDENTITY;
    return best;
}

const char *http_coding_name(enum http_coding c)
{
    return c == HTTP_CODING_GZIP ? "gzip" : c == HTTP_CODING_BR ? "br" : NULL;
}

const char *http_coding_suffix(enum http_coding c)
{
    return c == HTTP_CODING_GZIP ? ".gz" : c == HTTP_CODING_BR ? ".br" : "";
}
