/* modules/http/validators.h — what a static file's request headers ask
 * for, decided from their values alone (validators.c, dates.c): byte
 * ranges, ETag lists, conditional requests, HTTP dates.  Pure: strings
 * in, a decision out, no I/O; files.c reads the fields and acts. */
#ifndef HTTP_VALIDATORS_H
#define HTTP_VALIDATORS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* ---- HTTP dates (dates.c) ---- */

/* IMF-fixdate of t into out (30 bytes with the NUL). */
void http_date(time_t t, char out[30]);
/* Parses an IMF-fixdate; -1 when it is not one. */
time_t http_date_parse(const char *p);

/* ---- conditional requests and ranges (validators.c) ---- */

/* Whether an If-None-Match value lists etag (a quoted entity-tag, as the
 * file's ETag field), by the weak comparison (RFC 9110 §8.8.3.2), or is
 * "*". */
bool http_etag_listed(const char *list, const char *etag);

/* Whether a GET or HEAD may be answered 304 Not Modified (RFC 9110
 * §13.1.2, §13.1.3): If-None-Match when the request has it, else
 * If-Modified-Since (a date that does not parse is ignored).  NULL: the
 * field is absent. */
bool http_not_modified(const char *if_none_match, const char *if_modified_since,
                       const char *etag, time_t mtime);

/* Whether a Range applies under If-Range (NULL: absent; RFC 9110
 * §13.1.5): an entity-tag must be the file's etag to the letter (a weak
 * one never is), a date its Last-Modified. */
bool http_if_range_holds(const char *if_range, const char *etag, const char *lastmod);

enum http_range {
    HTTP_RANGE_UNSATISFIABLE = -1, /* 416 */
    HTTP_RANGE_WHOLE = 0,          /* 200 with the whole file: the field is ignored */
    HTTP_RANGE_PART = 1,           /* 206 with *off, *len */
};

/* A Range value against a representation of size bytes.  One range
 * ("bytes=a-b", "bytes=a-", "bytes=-n") is served; several ranges, other
 * units and invalid syntax are ignored (RFC 9110 §14.2 allows both). */
enum http_range http_byte_range(const char *range, uint64_t size, uint64_t *off, uint64_t *len);

#endif
