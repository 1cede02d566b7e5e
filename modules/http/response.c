/* modules/http/response.c — building responses: the output buffer, status
 * lines, the cached Date, small complete replies. */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int http_out_reserve(struct http_out *o, size_t more)
{
    size_t cap = o->cap != 0 ? o->cap : 4096;
    char *p;

    if (o->len + more <= o->cap)
        return 0;
    while (cap < o->len + more)
        cap *= 2;
    p = realloc(o->buf, cap);
    if (p == NULL)
        return -1;
    o->buf = p;
    o->cap = cap;
    return 0;
}

void http_out_add(struct http_out *o, const void *p, size_t n)
{
    if (http_out_reserve(o, n) != 0)
        abort(); /* a few KiB of headers: out of memory is fatal here */
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

void http_out_addf(struct http_out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = o->cap - o->len;

        va_start(ap, fmt);
        n = vsnprintf(o->buf != NULL ? o->buf + o->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            o->len += (size_t)n;
            return;
        }
        if (http_out_reserve(o, (size_t)n + 1) != 0)
            abort();
    }
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:
        return status < 200 ? "Informational" : status < 300 ? "Success"
             : status < 400 ? "Redirection" : status < 500 ? "Client Error" : "Server Error";
    }
}

static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void http_date(time_t t, char out[30])
{
    struct tm tm;
    char s[64];

    gmtime_r(&t, &tm);
    snprintf(s, sizeof(s), "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday], tm.tm_mday,
             month[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, s, 29); /* years past 9999 are not HTTP dates anyway */
    out[29] = '\0';
}

const char *http_date_now(void)
{
    /* Per thread, so no worker ever waits for another to format it. */
    static __thread time_t cached_at = -1;
    static __thread char cached[30];
    time_t now = time(NULL);

    if (now != cached_at) {
        http_date(now, cached);
        cached_at = now;
    }
    return cached;
}

time_t http_date_parse(const char *p, size_t n)
{
    char s[30];
    struct tm tm = {0};
    int i;

    /* IMF-fixdate only: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7
     * lets a recipient ignore the obsolete forms in conditionals). */
    if (n != 29)
        return -1;
    memcpy(s, p, n);
    s[n] = '\0';
    if (s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s[19] != ':' || s[22] != ':' || s[25] != ' ' || strcmp(s + 26, "GMT") != 0)
        return -1;
    for (i = 0; i < 12 && memcmp(s + 8, month[i], 3) != 0; i++)
        ;
    if (i == 12)
        return -1;
    tm.tm_mon = i;
    if (sscanf(s + 5, "%2d", &tm.tm_mday) != 1 || sscanf(s + 12, "%4d", &tm.tm_year) != 1 ||
        sscanf(s + 17, "%2d:%2d:%2d", &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 3)
        return -1;
    tm.tm_year -= 1900;
    return timegm(&tm);
}

#define LIT(s) s, sizeof(s) - 1

void http_out_u64(struct http_out *o, uint64_t v)
{
    char d[20];
    size_t n = 0;

    do
        d[sizeof(d) - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    http_out_add(o, d + sizeof(d) - n, n);
}

/* The hot path of every answer: plain copies, no printf. */
void http_out_status(struct http_out *o, int status)
{
    const char *reason = http_reason(status);
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};

    http_out_add(o, LIT("HTTP/1.1 "));
    http_out_add(o, code, 4);
    http_out_add(o, reason, strlen(reason));
    http_out_add(o, LIT("\r\nServer: " HTTP_SERVER_NAME "\r\nDate: "));
    http_out_add(o, http_date_now(), 29);
    http_out_add(o, LIT("\r\n"));
}

/* The status line with the Server and Date the headers of a route do not
 * carry themselves (own: HTTP_OWN_*).  Only routes that replace one pay
 * for the choice; everything else takes http_out_status. */
static void status_owned(struct http_out *o, int status, unsigned own)
{
    const char *reason = http_reason(status);
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};

    http_out_add(o, LIT("HTTP/1.1 "));
    http_out_add(o, code, 4);
    http_out_add(o, reason, strlen(reason));
    http_out_add(o, LIT("\r\n"));
    if (!(own & HTTP_OWN_SERVER))
        http_out_add(o, LIT("Server: " HTTP_SERVER_NAME "\r\n"));
    if (!(own & HTTP_OWN_DATE)) {
        http_out_add(o, LIT("Date: "));
        http_out_add(o, http_date_now(), 29);
        http_out_add(o, LIT("\r\n"));
    }
}

static void reply(struct http_out *o, struct http_reply *r, const struct http_request *req,
                  int status, const char *content_type, const char *body, size_t len,
                  const char *extra_headers, unsigned own)
{
    bool head = req != NULL && req->method == HTTP_HEAD;
    bool bodyless = status == 204 || status == 304 || status < 200;

    r->status = status;
    if (own == 0)
        http_out_status(o, status);
    else
        status_owned(o, status, own);
    if (content_type != NULL && !bodyless) {
        http_out_add(o, LIT("Content-Type: "));
        http_out_add(o, content_type, strlen(content_type));
        http_out_add(o, LIT("\r\n"));
    }
    if (!bodyless) {
        http_out_add(o, LIT("Content-Length: "));
        http_out_u64(o, len);
        http_out_add(o, LIT("\r\n"));
    }
    if (extra_headers != NULL)
        http_out_add(o, extra_headers, strlen(extra_headers));
    if (r->close)
        http_out_add(o, "Connection: close\r\n", 19);
    else if (req != NULL && req->minor == 0)
        http_out_add(o, "Connection: keep-alive\r\n", 24);
    http_out_add(o, "\r\n", 2);
    if (!head && !bodyless && len > 0) {
        http_out_add(o, body, len);
        r->body_bytes = len;
    }
}

void http_reply_simple(struct http_out *o, struct http_reply *r, const struct http_request *req,
                       int status, const char *content_type, const char *body, size_t len,
                       const char *extra_headers)
{
    reply(o, r, req, status, content_type, body, len, extra_headers, 0);
}

void http_reply_route(struct http_out *o, struct http_reply *r, const struct http_request *req,
                      const struct http_route *rt)
{
    reply(o, r, req, rt->status, rt->content_type, rt->body, rt->body_len, rt->headers, rt->own);
}
