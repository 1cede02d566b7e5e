/* runtime/http/parse.c — see parse.h.  Everything here reads bytes and
 * writes the caller's structs; nothing else. */
#include "parse.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define MAX_EMPTY_LINES 4
#define MAX_CHUNK_LINE 4096     /* a chunk-size line with its extensions */
#define MAX_TRAILERS 8192

/* Digits and letters, as designated initializers: in both byte tables
 * below (tchar, reg-name). */
#define ALNUM_ONES                                                                          \
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, \
    ['8'] = 1, ['9'] = 1,                                                                   \
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, \
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, \
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, \
    ['Y'] = 1, ['Z'] = 1,                                                                   \
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, \
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, \
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, \
    ['y'] = 1, ['z'] = 1

/* tchar of RFC 9110 §5.6.2 */
const unsigned char async__http_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ALNUM_ONES,
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Whether s is lit[0..n), ignoring case; the length decides most. */
#define SLICE_IS(s, lit) slice_ieq((s), (lit), sizeof(lit) - 1)
static bool slice_ieq(struct http_slice s, const char *lit, size_t n)
{
    size_t i;

    if (s.n != n)
        return false;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

/* A field value byte: VCHAR, SP, HTAB or obs-text. */
static bool value_char(unsigned char c)
{
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

static bool target_char(unsigned char c)
{
    return c > ' ' && c != 0x7f;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The end of the line starting at p (the index of its CR), -1 if the line
 * is not complete within len, -2 for a bare CR or LF. */
static long line_end(const char *buf, size_t p, size_t len)
{
    const char *cr = memchr(buf + p, '\r', len - p);
    const char *lf = memchr(buf + p, '\n', cr != NULL ? (size_t)(cr - buf) - p : len - p);

    if (lf != NULL)
        return -2; /* LF without CR before it */
    if (cr == NULL)
        return -1;
    if ((size_t)(cr - buf) + 1 >= len)
        return -1; /* CR is the last byte so far */
    if (cr[1] != '\n')
        return -2;
    return cr - buf;
}

static const struct {
    const char *name;
    enum http_method m;
} methods[] = {
    {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},       {"POST", HTTP_POST},
    {"PUT", HTTP_PUT},         {"DELETE", HTTP_DELETE},   {"OPTIONS", HTTP_OPTIONS},
    {"PATCH", HTTP_PATCH},     {"TRACE", HTTP_TRACE},     {"CONNECT", HTTP_CONNECT},
};

static enum http_method method_of(struct http_slice s)
{
    size_t i;

    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (s.n == strlen(methods[i].name) && memcmp(s.p, methods[i].name, s.n) == 0)
            return methods[i].m;
    return HTTP_OTHER;
}

/* method SP request-target SP HTTP/1.d, in buf[p..e). 0 or -status. */
static int request_line(const char *buf, size_t p, size_t e, struct http_request *req)
{
    size_t i = p, t;

    while (i < e && async__http_tchar[(unsigned char)buf[i]])
        i++;
    if (i == p || i >= e || buf[i] != ' ')
        return -400;
    req->method_name = (struct http_slice){buf + p, i - p};
    req->method = method_of(req->method_name);
    t = ++i;
    while (i < e && target_char((unsigned char)buf[i]))
        i++;
    if (i == t || i >= e || buf[i] != ' ')
        return -400;
    req->target = (struct http_slice){buf + t, i - t};
    i++;
    if (e - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 || buf[i + 6] != '.' ||
        buf[i + 5] < '0' || buf[i + 5] > '9' || buf[i + 7] < '0' || buf[i + 7] > '9')
        return -400;
    if (buf[i + 5] != '1')
        return -505;
    req->minor = buf[i + 7] == '0' ? 0 : 1;
    return 0;
}

static void split_target(struct http_request *req)
{
    const char *q = memchr(req->target.p, '?', req->target.n);

    req->path = req->target;
    req->query = (struct http_slice){NULL, 0};
    if (q != NULL) {
        req->path.n = (size_t)(q - req->target.p);
        req->query = (struct http_slice){q + 1, req->target.n - req->path.n - 1};
    }
}

/* name ":" OWS value OWS in buf[p..e). 0 or -400. */
static int field_line(const char *buf, size_t p, size_t e, struct http_header *h)
{
    size_t i = p, v;

    while (i < e && async__http_tchar[(unsigned char)buf[i]])
        i++;
    if (i == p || i >= e || buf[i] != ':')
        return -400;
    h->name = (struct http_slice){buf + p, i - p};
    for (v = i + 1; v < e; v++)
        if (!value_char((unsigned char)buf[v]))
            return -400;
    i++;
    while (i < e && is_blank(buf[i]))
        i++;
    while (e > i && is_blank(buf[e - 1]))
        e--;
    h->value = (struct http_slice){buf + i, e - i};
    return 0;
}

/* Calls fn on each element of a comma-separated list, blanks trimmed,
 * empty elements skipped; stops at the first non-zero result. */
static int list_foreach(struct http_slice v, int (*fn)(struct http_slice, void *), void *arg)
{
    size_t i = 0, s, e;
    int rc;

    while (i < v.n) {
        s = i;
        while (i < v.n && v.p[i] != ',')
            i++;
        e = i++;
        while (s < e && is_blank(v.p[s]))
            s++;
        while (e > s && is_blank(v.p[e - 1]))
            e--;
        if (e > s && (rc = fn((struct http_slice){v.p + s, e - s}, arg)) != 0)
            return rc;
    }
    return 0;
}

struct connection_opts {
    bool close, keep_alive;
};

static int connection_token(struct http_slice tok, void *arg)
{
    struct connection_opts *o = arg;

    if (SLICE_IS(tok, "close"))
        o->close = true;
    else if (SLICE_IS(tok, "keep-alive"))
        o->keep_alive = true;
    return 0;
}

/* Transfer-Encoding: exactly one coding, "chunked", over all fields. */
static int te_token(struct http_slice tok, void *arg)
{
    int *seen = arg;

    if (!SLICE_IS(tok, "chunked"))
        return -501;
    if ((*seen)++ > 0)
        return -400; /* chunked twice */
    return 0;
}

static int content_length(struct http_slice v, uint64_t *out)
{
    uint64_t n = 0;
    size_t i;

    if (v.n == 0)
        return -400;
    for (i = 0; i < v.n; i++) {
        unsigned d = (unsigned char)v.p[i] - '0';

        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return -400;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an
 * IP-literal in brackets or a reg-name (unreserved, pct-encoded and
 * sub-delims), then optional digits.  RFC 9112 §3.2 has a server answer
 * 400 to a Host that is not this, so a space or a second authority in it
 * never reaches a handler that picks a site by it.  Empty is valid (a
 * target without an authority). */
static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The bytes of a reg-name (RFC 3986 §3.2.2): unreserved, '%' and
 * sub-delims; a table, since every request's Host goes through it. */
static const unsigned char reg_name[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['%'] = 1,
    ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
    ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
    ALNUM_ONES,
};

static bool host_valid(struct http_slice v)
{
    size_t i = 0;

    if (v.n > 0 && v.p[0] == '[') {
        for (i = 1; i < v.n && v.p[i] != ']'; i++)
            if (!is_hex(v.p[i]) && v.p[i] != ':' && v.p[i] != '.')
                return false;
        if (i == v.n || i == 1)
            return false;
        i++;
    } else {
        while (i < v.n && reg_name[(unsigned char)v.p[i]])
            i++;
    }
    if (i == v.n)
        return true;
    if (v.p[i++] != ':')
        return false;
    for (; i < v.n; i++)
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
    return true;
}

/* The authority of an absolute-form target ("http://host:port/..."), or
 * n = 0 for the other forms. */
struct http_slice async__http_target_authority(struct http_slice t)
{
    size_t skip, e;

    /* origin-form, every request but a proxy's: no strncasecmp calls */
    if (t.n == 0 || t.p[0] == '/' || t.p[0] == '*')
        return (struct http_slice){NULL, 0};
    if (t.n > 7 && strncasecmp(t.p, "http://", 7) == 0)
        skip = 7;
    else if (t.n > 8 && strncasecmp(t.p, "https://", 8) == 0)
        skip = 8;
    else
        return (struct http_slice){NULL, 0};
    for (e = skip; e < t.n && t.p[e] != '/' && t.p[e] != '?'; e++)
        ;
    return (struct http_slice){t.p + skip, e - skip};
}

/* Reads the fields that frame the message and steer the connection. */
static int interpret(struct http_request *req)
{
    struct connection_opts conn = {false, false};
    unsigned i, hosts = 0, lengths = 0;
    struct http_slice auth;
    int te = 0, rc;
    bool has_te = false;

    for (i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];

        if (SLICE_IS(h->name, "host")) {
            req->host = h->value;
            hosts++;
        } else if (SLICE_IS(h->name, "content-length")) {
            if (lengths++ > 0 || content_length(h->value, &req->content_length) != 0)
                return -400;
            req->has_content_length = true;
        } else if (SLICE_IS(h->name, "transfer-encoding")) {
            has_te = true;
            if ((rc = list_foreach(h->value, te_token, &te)) != 0)
                return rc;
        } else if (SLICE_IS(h->name, "connection")) {
            list_foreach(h->value, connection_token, &conn);
        } else if (SLICE_IS(h->name, "expect")) {
            if (!SLICE_IS(h->value, "100-continue"))
                return -417;
            req->expect_continue = true;
        }
    }
    if (hosts > 1 || (hosts == 0 && req->minor == 1) || !host_valid(req->host))
        return -400;
    /* an absolute-form target names the host itself (RFC 9112 §3.2.2); a
     * userinfo in it ("http://a@b/") is refused as RFC 9110 §4.2.4 asks */
    if (req->target.p[0] != '/') { /* not origin-form: no call for most requests */
        auth = async__http_target_authority(req->target);
        if (auth.p != NULL && (auth.n == 0 || !host_valid(auth)))
            return -400;
    }
    if (has_te) {
        /* TE with CL is a smuggling shape; TE in 1.0 is faulty framing
         * (RFC 9112 §6.1); an empty TE field codes nothing. */
        if (req->has_content_length || req->minor == 0 || te == 0)
            return -400;
        req->chunked = true;
    }
    req->keep_alive = req->minor == 1 ? !conn.close : (conn.keep_alive && !conn.close);
    return 0;
}

long async__http_parse_request(const char *buf, size_t len, size_t max_head, unsigned max_headers,
                        struct http_request *req)
{
    size_t p = 0, start;
    unsigned empty = 0;
    long e;
    int rc;

    if (max_headers > HTTP_MAX_HEADERS)
        max_headers = HTTP_MAX_HEADERS;
    memset(req, 0, offsetof(struct http_request, headers));
    req->nheaders = 0;
    req->host = (struct http_slice){NULL, 0};
    req->content_length = 0;
    req->has_content_length = req->chunked = req->keep_alive = req->expect_continue = false;

    /* Empty lines before the request line. */
    while (len - p >= 2 && buf[p] == '\r' && buf[p + 1] == '\n') {
        if (++empty > MAX_EMPTY_LINES)
            return -400;
        p += 2;
    }
    if (p < len && buf[p] == '\n')
        return -400;
    start = p;
    e = line_end(buf, p, len > max_head ? max_head : len);
    if (e == -2)
        return -400;
    if (e == -1)
        return len >= max_head ? -414 : 0;
    if ((rc = request_line(buf, p, (size_t)e, req)) != 0)
        return rc;
    split_target(req);
    p = (size_t)e + 2;

    for (;;) {
        size_t bound = len > max_head + start ? max_head + start : len;

        if (p + 2 <= bound && buf[p] == '\r' && buf[p + 1] == '\n')
            break; /* the empty line */
        if (p < len && is_blank(buf[p]))
            return -400; /* obs-fold, or whitespace before the first field */
        e = line_end(buf, p, bound);
        if (e == -2)
            return -400;
        if (e == -1)
            return len >= max_head + start ? -431 : 0;
        if (req->nheaders == max_headers)
            return -431;
        if ((rc = field_line(buf, p, (size_t)e, &req->headers[req->nheaders])) != 0)
            return rc;
        req->nheaders++;
        p = (size_t)e + 2;
    }
    if ((rc = interpret(req)) != 0)
        return rc;
    return (long)(p + 2);
}

/* HTTP/1.d SP 3DIGIT [SP reason] in buf[p..e) (a missing reason is
 * accepted without its SP too: servers omit both). */
static int status_line(const char *buf, size_t p, size_t e, struct http_response *r)
{
    size_t i;

    if (e - p < 12 || memcmp(buf + p, "HTTP/1.", 7) != 0 || buf[p + 7] < '0' || buf[p + 7] > '9' ||
        buf[p + 8] != ' ')
        return -1;
    for (i = p + 9; i < p + 12; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
    r->minor = buf[p + 7] == '0' ? 0 : 1;
    r->status = (buf[p + 9] - '0') * 100 + (buf[p + 10] - '0') * 10 + (buf[p + 11] - '0');
    if (r->status < 100)
        return -1;
    if (e > p + 12 && buf[p + 12] != ' ')
        return -1;
    for (i = p + 13; i < e; i++)
        if (!value_char((unsigned char)buf[i]))
            return -1;
    r->reason = e > p + 12 ? (struct http_slice){buf + p + 13, e - p - 13} : (struct http_slice){"", 0};
    return 0;
}

static int interpret_response(struct http_response *r)
{
    struct connection_opts conn = {false, false};
    unsigned i, lengths = 0;
    int te = 0;
    bool has_te = false;

    for (i = 0; i < r->nheaders; i++) {
        const struct http_header *h = &r->headers[i];

        if (SLICE_IS(h->name, "content-length")) {
            if (lengths++ > 0 || content_length(h->value, &r->content_length) != 0)
                return -1;
            r->has_content_length = true;
        } else if (SLICE_IS(h->name, "transfer-encoding")) {
            has_te = true;
            if (list_foreach(h->value, te_token, &te) != 0)
                return -1;
        } else if (SLICE_IS(h->name, "connection")) {
            list_foreach(h->value, connection_token, &conn);
        }
    }
    if (has_te) {
        if (r->has_content_length || r->minor == 0 || te == 0)
            return -1; /* two framings, or chunked where 1.0 has none */
        r->chunked = true;
    }
    r->keep_alive = r->minor == 1 ? !conn.close : (conn.keep_alive && !conn.close);
    return 0;
}

long async__http_parse_response(const char *buf, size_t len, size_t max_head, unsigned max_headers,
                                struct http_response *r)
{
    size_t p = 0;
    long e;

    if (max_headers > HTTP_MAX_HEADERS)
        max_headers = HTTP_MAX_HEADERS;
    memset(r, 0, offsetof(struct http_response, headers));
    r->nheaders = 0;
    r->content_length = 0;
    r->has_content_length = r->chunked = r->keep_alive = false;
    if (len > max_head)
        len = max_head;
    e = line_end(buf, 0, len);
    if (e == -2 || (e == -1 && len == max_head))
        return -1;
    if (e == -1)
        return 0;
    if (status_line(buf, 0, (size_t)e, r) != 0)
        return -1;
    p = (size_t)e + 2;
    for (;;) {
        if (p + 2 <= len && buf[p] == '\r' && buf[p + 1] == '\n')
            break;
        if (p < len && is_blank(buf[p]))
            return -1;
        e = line_end(buf, p, len);
        if (e == -2 || (e == -1 && len == max_head))
            return -1;
        if (e == -1)
            return 0;
        if (r->nheaders == max_headers ||
            field_line(buf, p, (size_t)e, &r->headers[r->nheaders]) != 0)
            return -1;
        r->nheaders++;
        p = (size_t)e + 2;
    }
    if (interpret_response(r) != 0)
        return -1;
    return (long)(p + 2);
}

const char *async__http_field(const struct http_header *h, unsigned n, const char *name)
{
    size_t len;
    unsigned i;

    if (name == NULL)
        return NULL;
    len = strlen(name);
    for (i = 0; i < n; i++)
        if (h[i].name.n == len && strncasecmp(h[i].name.p, name, len) == 0)
            return h[i].value.p;
    return NULL;
}

int async__http_field_at(const struct http_header *h, unsigned n, size_t i, const char **name,
                         const char **value)
{
    if (i >= n) {
        errno = ENOENT;
        return -1;
    }
    if (name != NULL)
        *name = h[i].name.p;
    if (value != NULL)
        *value = h[i].value.p;
    return 0;
}

const struct http_slice *async__http_header_get(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    unsigned i;

    for (i = 0; i < req->nheaders; i++)
        if (slice_ieq(req->headers[i].name, name, n))
            return &req->headers[i].value;
    return NULL;
}

/* ---- chunked bodies ---- */

enum {
    CH_SIZE = 0,    /* hex digits of the chunk size */
    CH_EXT,         /* after the size: extensions up to CR */
    CH_SIZE_LF,     /* CR seen, LF expected */
    CH_DATA,
    CH_DATA_CR,     /* after data: CR expected */
    CH_DATA_LF,
    CH_TRAILER,     /* start of a trailer line (or the final empty line) */
    CH_TRAILER_LINE,
    CH_TRAILER_LF,
    CH_END_LF,      /* final empty line: CR seen */
    CH_DONE,        /* the body has ended (c->done) */
};

/* The states that take one given byte and move on: which byte, and the
 * state after it. */
static const struct {
    unsigned char byte, next;
} one_byte[] = {
    [CH_DATA_CR] = {'\r', CH_DATA_LF},
    [CH_DATA_LF] = {'\n', CH_SIZE},
    [CH_TRAILER_LF] = {'\n', CH_TRAILER},
    [CH_END_LF] = {'\n', CH_DONE},
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long async__http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                       uint64_t *data_bytes,
                       void (*on_data)(void *ctx, const char *p, size_t n), void *ctx)
{
    size_t i = 0;

    while (i < len && !c->done) {
        unsigned char ch = (unsigned char)buf[i];
        int h;

        switch (c->state) {
        case CH_SIZE:
            if ((h = hexval(ch)) >= 0) {
                if (++c->digits > 16)
                    return -400;
                c->left = c->left << 4 | (uint64_t)h;
                i++;
                break;
            }
            if (c->digits == 0)
                return -400;
            c->state = CH_EXT;
            c->line = 0;
            break;
        case CH_EXT:
            /* chunk-ext is skipped, bounded; only the line ending matters */
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == '\n' || (ch < ' ' && ch != '\t') || ch == 0x7f ||
                     ++c->line > MAX_CHUNK_LINE)
                return -400;
            else if (c->line == 1 && ch != ';' && !is_blank((char)ch))
                return -400;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -400;
            i++;
            c->state = c->left == 0 ? CH_TRAILER : CH_DATA;
            c->digits = 0;
            c->trailers = 0;
            break;
        case CH_DATA: {
            size_t n = len - i;

            if (n > c->left)
                n = (size_t)c->left;
            if (on_data != NULL)
                on_data(ctx, buf + i, n);
            *data_bytes += n;
            c->left -= n;
            i += n;
            if (c->left == 0)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
        case CH_TRAILER_LF:
        case CH_END_LF:
            if (ch != one_byte[c->state].byte)
                return -400;
            i++;
            c->state = one_byte[c->state].next;
            c->done = c->state == CH_DONE;
            break;
        case CH_TRAILER:
            if (ch == '\r') {
                c->state = CH_END_LF;
                i++;
                break;
            }
            c->state = CH_TRAILER_LINE;
            c->line = 0;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (ch == '\n' || (ch < ' ' && ch != '\t') || ch == 0x7f)
                return -400;
            if (++c->trailers > MAX_TRAILERS)
                return -400;
            i++;
            break;
        default:
            return -400;
        }
    }
    return (long)i;
}

/* ---- paths ---- */

static int unhex(const char *p, size_t left)
{
    int hi, lo;

    if (left < 3 || (hi = hexval((unsigned char)p[1])) < 0 ||
        (lo = hexval((unsigned char)p[2])) < 0)
        return -1;
    return hi << 4 | lo;
}

long async__http_path_normalize(const char *in, size_t n, char *out)
{
    size_t i = 0, o = 0, seg;
    int c;

    if (n == 0 || in[0] != '/')
        return -1;
    while (i < n) {
        /* here in[i] is a (possibly encoded) '/' or we are at a segment start */
        c = (unsigned char)in[i];
        if (c == '%' && (c = unhex(in + i, n - i)) < 0)
            return -1;
        i += in[i] == '%' ? 3 : 1;
        if (c == 0)
            return -1;
        if (c == '/') {
            if (o == 0 || out[o - 1] != '/')
                out[o++] = '/';
            continue;
        }
        out[o++] = (char)c;
        seg = o - 1; /* first byte of this segment */
        while (i < n) {
            c = (unsigned char)in[i];
            if (c == '%' && (c = unhex(in + i, n - i)) < 0)
                return -1;
            if (c == 0)
                return -1;
            if (c == '/')
                break; /* the '/' is read by the outer loop */
            i += in[i] == '%' ? 3 : 1;
            out[o++] = (char)c;
        }
        /* resolve the segment just copied */
        if (o - seg == 1 && out[seg] == '.') {
            o = seg;
        } else if (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (seg == 1)
                return -1; /* above the root */
            o = seg - 1;   /* drop "/.." and the segment before it */
            while (out[o - 1] != '/')
                o--;
        }
        /* a '/' that follows is appended by the outer loop */
    }
    out[o] = '\0';
    return (long)o;
}
