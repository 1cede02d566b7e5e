/* runtime/http/out.c — the output buffer, status lines and the cached
 * Date: the pieces every response is made of. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(s) s, sizeof(s) - 1

int async__http_out_reserve(struct http_out *o, size_t more)
{
    size_t cap = o->cap != 0 ? o->cap : HTTP_OUT_SIZE;
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

void async__http_out_grow(struct http_out *o, const void *p, size_t n)
{
    if (async__http_out_reserve(o, n) != 0)
        abort(); /* a few KiB of head: out of memory is fatal here */
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

void async__http_out_u64(struct http_out *o, uint64_t v)
{
    char d[20];
    size_t n = 0;

    do
        d[sizeof(d) - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    async__http_out_add(o, d + sizeof(d) - n, n);
}

void async__http_out_hex(struct http_out *o, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char d[16];
    size_t n = 0;

    do
        d[sizeof(d) - ++n] = hex[v & 15];
    while ((v >>= 4) != 0);
    async__http_out_add(o, d + sizeof(d) - n, n);
}

const char *async__http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
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
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:
        return status < 200 ? "Informational" : status < 300 ? "Success"
             : status < 400 ? "Redirection" : status < 500 ? "Client Error" : "Server Error";
    }
}

void async__http_sink(void *ctx, const char *p, size_t n)
{
    struct http_sink *s = ctx;

    memcpy(s->p + s->got, p, n);
    s->got += n;
}

const char *async_http_reason(int status)
{
    return async__http_reason(status);
}

/* The hot path of every answer: plain copies, no printf. */
void async__http_out_status_line(struct http_out *o, int status)
{
    const char *reason = async__http_reason(status);
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};

    async__http_out_add(o, LIT("HTTP/1.1 "));
    async__http_out_add(o, code, 4);
    async__http_out_add(o, reason, strlen(reason));
    async__http_out_add(o, LIT("\r\n"));
}

static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

const char *async__http_date_now(void)
{
    /* Per thread, so no worker ever waits for another to format it. */
    static __thread time_t cached_at = -1;
    static __thread char cached[64];
    time_t now = time(NULL);
    struct tm tm;

    if (now != cached_at) {
        gmtime_r(&now, &tm);
        snprintf(cached, sizeof(cached), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 wday[tm.tm_wday], tm.tm_mday, month[tm.tm_mon], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_at = now;
    }
    return cached;
}
