/* modules/http/log_line.c — access-log lines in the combined format, for
 * the engine, which holds each line until its response has left and then
 * puts in the body bytes that actually left (nginx's $body_bytes_sent;
 * see async_http_server_set_log).
 *
 * Quotes, backslashes, control bytes and bytes >= 0x7f are written as
 * \xHH so that a line is always one line and parses. */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Appends s, escaping what would break the format; at most room bytes of
 * output. */
static void add_escaped(async_http_log_line *line, const char *s, size_t room)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[256];
    size_t used = 0, k = 0;

    for (; *s != '\0' && used + 4 <= room; s++) {
        unsigned char ch = (unsigned char)*s;

        if (k + 4 > sizeof(buf)) {
            async_http_log_add(line, buf, k);
            k = 0;
        }
        if (ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\') {
            buf[k++] = '\\';
            buf[k++] = 'x';
            buf[k++] = hex[ch >> 4];
            buf[k++] = hex[ch & 15];
            used += 4;
        } else {
            buf[k++] = (char)ch;
            used++;
        }
    }
    async_http_log_add(line, buf, k);
}

static const char *log_time(void)
{
    static __thread time_t at = -1;
    static __thread char text[32];
    time_t now = time(NULL);
    struct tm tm;

    if (now != at) {
        localtime_r(&now, &tm);
        strftime(text, sizeof(text), "%d/%b/%Y:%H:%M:%S %z", &tm);
        at = now;
    }
    return text;
}

/* The peer's address without its port ("1.2.3.4", "::1"). */
static void add_address(async_http_log_line *line, const char *peer)
{
    const char *colon = strrchr(peer, ':');

    if (peer[0] == '[' && colon != NULL && colon > peer + 1 && colon[-1] == ']')
        async_http_log_add(line, peer + 1, (size_t)(colon - 1 - (peer + 1)));
    else if (colon != NULL && strchr(peer, ':') == colon)
        async_http_log_add(line, peer, (size_t)(colon - peer));
    else
        async_http_log_add(line, peer, strlen(peer));
}

void http_log_format(const async_http_request *req, async_http_log_line *line, void *ctx)
{
    const char *method = async_http_method(req);
    const char *ref = async_http_header(req, "referer");
    const char *ua = async_http_header(req, "user-agent");
    char buf[96];
    int n;

    (void)ctx;
    add_address(line, async_http_peer(req));
    n = snprintf(buf, sizeof(buf), " - - [%s] \"", log_time());
    async_http_log_add(line, buf, (size_t)n);
    if (method[0] != '\0') {
        add_escaped(line, method, 512);
        async_http_log_add(line, " ", 1);
        add_escaped(line, async_http_target(req), 1024);
        n = snprintf(buf, sizeof(buf), " HTTP/1.%d", async_http_version(req) == 10 ? 0 : 1);
        async_http_log_add(line, buf, (size_t)n);
    }
    n = snprintf(buf, sizeof(buf), "\" %d ", async_http_status(req));
    async_http_log_add(line, buf, (size_t)n);
    async_http_log_body_bytes(line);
    async_http_log_add(line, " \"", 2);
    add_escaped(line, ref != NULL ? ref : "-", 200);
    async_http_log_add(line, "\" \"", 3);
    add_escaped(line, ua != NULL ? ua : "-", 200);
    async_http_log_add(line, "\"\n", 2);
}
