/* runtime/http/parse.h — HTTP/1.1 request heads and chunked bodies
 * (RFC 9112), parsed by pure functions over bytes: no I/O, no allocation,
 * no global state.  The results point into the caller's buffer.
 *
 * The parser is strict where laxness lets two parties disagree about where
 * a message ends (request smuggling): lines end in CRLF only (a bare CR or
 * a bare LF is an error), no whitespace between a field name and its colon,
 * no obs-fold, no control characters in field values, exactly one valid
 * Content-Length, never Content-Length together with Transfer-Encoding,
 * and Transfer-Encoding must be exactly "chunked". */
#ifndef ASYNC_HTTP_PARSE_H
#define ASYNC_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 256        /* the most max_headers may allow */
#define HTTP_DEFAULT_MAX_HEADERS 100 /* nginx accepts about as many */

enum http_method {
    HTTP_OTHER = 0,     /* a well-formed token we do not implement (501) */
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
    HTTP_OPTIONS,
    HTTP_PATCH,
    HTTP_TRACE,
    HTTP_CONNECT,
};

/* tchar of RFC 9110 §5.6.2: 1 for the bytes a token (a method, a field
 * name) may hold. */
extern const unsigned char async__http_tchar[256];

struct http_slice {
    const char *p;
    size_t n;
};

struct http_header {
    struct http_slice name;     /* as sent (compare case-insensitively) */
    struct http_slice value;    /* leading and trailing blanks removed */
};

struct http_request {
    enum http_method method;
    struct http_slice method_name;
    struct http_slice target;   /* the request-target as sent */
    struct http_slice path;     /* target up to '?' (still percent-encoded) */
    struct http_slice query;    /* after '?', without it; n = 0 if none */
    int minor;                  /* HTTP/1.minor: 0 or 1 (1.2+ reads as 1) */
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned nheaders;
    struct http_slice host;     /* the Host field, n = 0 if absent */
    /* Framing and connection handling, from the fields above. */
    uint64_t content_length;    /* 0 unless has_content_length */
    bool has_content_length;
    bool chunked;               /* Transfer-Encoding: chunked */
    bool keep_alive;            /* persistent after this request (1.1 unless
                                 * "close"; 1.0 only with "keep-alive") */
    bool expect_continue;       /* Expect: 100-continue */
};

/* The authority of an absolute-form target ("http://host:port/..."):
 * n = 0 and p = NULL for the other forms.  The parser has checked it. */
struct http_slice async__http_target_authority(struct http_slice target);

/* Parses one request head (request line, fields, empty line) at the start
 * of buf[0..len); up to 4 empty lines before the request line are skipped
 * (RFC 9112 §2.2).  max_head bounds the head's length in bytes,
 * max_headers (at most HTTP_MAX_HEADERS) the number of fields.  Returns:
 *   > 0   the head is complete: its length including the empty line (and
 *         any skipped empty lines); *req is filled;
 *   0     incomplete: read more bytes and call again with all of them;
 *   < 0   minus the status to answer with, then close the connection:
 *         -400 malformed or ambiguous framing, -414 request line longer
 *         than max_head, -431 fields longer than max_head or more than
 *         max_headers of them, -417 an Expect other than 100-continue,
 *         -501 a Transfer-Encoding other than "chunked", -505 a major
 *         version other than 1.
 * On a negative return, *req holds whatever was parsed before the error
 * (method, target and minor are set once the request line was read). */
long async__http_parse_request(const char *buf, size_t len, size_t max_head, unsigned max_headers,
                        struct http_request *req);

/* Fields whose slices were NUL-terminated in place (the engine and the
 * client do that once a head is theirs): the first value of name
 * (case-insensitive), or NULL; and the i-th field, 0 or -1 ENOENT. */
const char *async__http_field(const struct http_header *h, unsigned n, const char *name);
int async__http_field_at(const struct http_header *h, unsigned n, size_t i, const char **name,
                         const char **value);

/* The value of the first field named name (case-insensitive), or NULL. */
const struct http_slice *async__http_header_get(const struct http_request *req, const char *name);

/* A response head (the HTTP client's). */
struct http_response {
    int status;
    int minor;
    struct http_slice reason;
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned nheaders;
    uint64_t content_length;    /* 0 unless has_content_length */
    bool has_content_length;
    bool chunked;
    bool keep_alive;
};

/* Parses one response head at the start of buf[0..len), with the request
 * parser's strictness: CRLF only, no obs-fold, valid field names and
 * values, exactly one valid Content-Length, never with Transfer-Encoding,
 * and Transfer-Encoding exactly "chunked" (a response a proxy could read
 * two ways is an error, never forwarded).  Returns the head's length, 0
 * while incomplete, or -1 for a malformed or ambiguous head, or one
 * longer than max_head bytes or with more than max_headers fields. */
long async__http_parse_response(const char *buf, size_t len, size_t max_head, unsigned max_headers,
                                struct http_response *resp);

/* Decoder state for a chunked body; zero it (or async__http_chunked_init) before
 * the first call. */
struct http_chunked {
    int state;              /* internal */
    uint64_t left;          /* data bytes left in the current chunk */
    unsigned digits;        /* hex digits of the size line so far */
    size_t line;            /* bytes of the current extension/trailer line */
    size_t trailers;        /* bytes of trailer section so far */
    bool done;              /* the last chunk and the trailers were read */
};

static inline void async__http_chunked_init(struct http_chunked *c)
{
    *c = (struct http_chunked){0};
}

/* Feeds buf[0..len) of a chunked body to the decoder.  Returns the number
 * of bytes consumed (all of len unless the body ended inside buf, in which
 * case the rest belongs to the next request), or -400 for a malformed body
 * (bad or overlong chunk size, missing CRLF after data, extension or
 * trailer line too long).  For each piece of chunk data it finds, calls
 * on_data(ctx, p, n) when on_data is not NULL (p points into buf) and adds
 * n to *data_bytes.  c->done turns true once the body is complete. */
long async__http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                       uint64_t *data_bytes,
                       void (*on_data)(void *ctx, const char *p, size_t n), void *ctx);

/* Decodes the percent-encoded path in[0..n) into out (room for n + 1
 * bytes), resolving "." and ".." segments and merging repeated slashes,
 * so that the result starts with '/' and never climbs above it.  Returns
 * the decoded length, or -1 for a path that does not start with '/', a
 * bad %-escape, an encoded NUL, or a ".." above the root. The result is
 * NUL-terminated. */
long async__http_path_normalize(const char *in, size_t n, char *out);

#endif
