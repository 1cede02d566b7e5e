/* modules/http/validators.c — the header logic of static files, from the
 * field values alone (validators.h): which requests get 304, 206 or 416.
 * No I/O: files.c reads the fields and the file's ETag, Last-Modified and
 * size, asks here, and answers; tests/unit/test_http_validators.c holds
 * the cases (RFC 9110 §13, §14).
 *
 * What is served, and what is ignored on purpose:
 *   - If-None-Match uses the weak comparison (§13.1.2): "W/" before a
 *     listed tag is passed over; "*" matches any file.  When it is
 *     present If-Modified-Since is not looked at (§13.2.2, step 3).
 *   - If-Modified-Since: an IMF-fixdate (dates.c) no older than the
 *     file's mtime; a value that does not parse as one is ignored.
 *   - If-Range: the strong comparison — an entity-tag must equal the
 *     file's ETag (a weak tag never does), a date its Last-Modified to
 *     the letter; else the whole file is sent (§13.1.5).
 *   - Range: one range of bytes.  Several ranges, another unit, or a
 *     value that does not parse: the field is ignored and the whole file
 *     sent, as §14.2 allows (no multipart/byteranges).  A first byte past
 *     the end, or a suffix of zero bytes: unsatisfiable, 416. */
#include "validators.h"

#include <string.h>
#include <strings.h>

bool http_etag_listed(const char *v, const char *etag)
{
    size_t i = 0, n = strlen(etag), vn = strlen(v);

    while (i < vn) {
        while (i < vn && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < vn && v[i] == '*')
            return true;
        if (i + 2 <= vn && v[i] == 'W' && v[i + 1] == '/')
            i += 2;
        if (i + n <= vn && memcmp(v + i, etag, n) == 0)
            return true;
        while (i < vn && v[i] != ',')
            i++;
    }
    return false;
}

bool http_not_modified(const char *inm, const char *ims, const char *etag, time_t mtime)
{
    time_t since;

    if (inm != NULL)
        return http_etag_listed(inm, etag);
    return ims != NULL && (since = http_date_parse(ims)) != -1 && mtime <= since;
}

bool http_if_range_holds(const char *v, const char *etag, const char *lastmod)
{
    if (v == NULL)
        return true;
    if (v[0] == '"')
        return strcmp(v, etag) == 0;
    /* a date: the same instant as Last-Modified, in any of the three forms */
    return strcmp(v, lastmod) == 0 ||
           (http_date_parse(v) != -1 && http_date_parse(v) == http_date_parse(lastmod));
}

/* One "bytes=first-last" range against size. */
enum http_range http_byte_range(const char *v, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a = 0, b = 0;
    size_t i = 6, n = strlen(v);
    bool has_a = false, has_b = false;

    if (n < 7 || strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ',') != NULL)
        return HTTP_RANGE_WHOLE;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, has_a = true)
        if ((a = a * 10 + (uint64_t)(v[i] - '0')) > (UINT64_MAX >> 4))
            return HTTP_RANGE_WHOLE;
    if (i >= n || v[i++] != '-')
        return HTTP_RANGE_WHOLE;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, has_b = true)
        if ((b = b * 10 + (uint64_t)(v[i] - '0')) > (UINT64_MAX >> 4))
            return HTTP_RANGE_WHOLE;
    if (i != n || (!has_a && !has_b) || (has_a && has_b && b < a))
        return HTTP_RANGE_WHOLE; /* syntactically invalid: ignore the field (RFC 9110 §14.2) */
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0)
            return HTTP_RANGE_UNSATISFIABLE;
        if (size == 0) /* satisfiable (§14.1.1) but no part to name: the whole, 200, as nginx */
            return HTTP_RANGE_WHOLE;
        *off = b >= size ? 0 : size - b;
        *len = size - *off;
        return HTTP_RANGE_PART;
    }
    if (a >= size)
        return HTTP_RANGE_UNSATISFIABLE;
    *off = a;
    *len = (has_b && b < size ? b + 1 : size) - a;
    return HTTP_RANGE_PART;
}
