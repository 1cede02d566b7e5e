/* modules/http/log_line.c — access-log lines, combined or JSON, for
 * the engine, which holds each line until its response has left and then
 * puts in the body bytes that actually left (nginx's $body_bytes_sent;
 * see async_http_server_set_log).
 *
 * Combined: quotes, backslashes, control bytes and bytes >= 0x7f are
 * written as \xHH so that a line is always one line and parses.  JSON:
 * one object per line; in strings, quotes and backslashes are escaped,
 * control bytes and bytes >= 0x7f written as \u00XX, so every line is
 * valid JSON (and ASCII) whatever a client sent. */
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

/* s as a JSON string (with its quotes), at most room bytes of s. */
static void add_json(async_http_log_line *line, const char *s, size_t room)
{
    static const char hex[] = "0123456789abcdef";
    char buf[256];
    size_t k = 0, used = 0;

    if (s == NULL) { /* a field the request did not have */
        async_http_log_add(line, "null", 4);
        return;
    }
    buf[k++] = '"';
    for (; *s != '\0' && used < room; s++, used++) {
        unsigned char ch = (unsigned char)*s;

        if (k + 7 > sizeof(buf)) {
            async_http_log_add(line, buf, k);
            k = 0;
        }
        if (ch == '"' || ch == '\\') {
            buf[k++] = '\\';
            buf[k++] = (char)ch;
        } else if (ch < ' ' || ch >= 0x7f) {
            memcpy(buf + k, "\\u00", 4);
            buf[k + 4] = hex[ch >> 4];
            buf[k + 5] = hex[ch & 15];
            k += 6;
        } else {
            buf[k++] = (char)ch;
        }
    }
    buf[k++] = '"';
    async_http_log_add(line, buf, k);
}

/* RFC 3339 UTC with milliseconds: "2026-12-07T15:30:00.123Z". */
static void add_time(async_http_log_line *line)
{
    struct timespec ts;
    struct tm tm;
    char buf[48];
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = (int)strftime(buf, sizeof(buf), "\"%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03ldZ\"", ts.tv_nsec / 1000000);
    async_http_log_add(line, buf, (size_t)n);
}

static void format_json(const async_http_request *req, async_http_log_line *line)
{
    const struct http_server *site = async_http_tag(req); /* the server that answered */
    const char *peer = async_http_peer(req), *colon = strrchr(peer, ':');
    char addr[64], buf[96];
    size_t n;
    int k;

    /* the peer without its port, and without the brackets of IPv6 */
    n = colon != NULL ? (size_t)(colon - peer) : strlen(peer);
    if (n > 0 && peer[0] == '[') {
        peer++;
        n = n >= 2 ? n - 2 : 0;
    }
    snprintf(addr, sizeof(addr), "%.*s", (int)n, peer);
    async_http_log_add(line, "{\"time\":", 8);
    add_time(line);
    async_http_log_add(line, ",\"server_name\":", 15);
    add_json(line, site != NULL && site->site.nnames > 0 ? site->site.names[0] : NULL, 256);
    async_http_log_add(line, ",\"peer\":", 8);
    add_json(line, addr, 64);
    async_http_log_add(line, ",\"method\":", 10);
    add_json(line, async_http_method(req), 512);
    async_http_log_add(line, ",\"target\":", 10);
    add_json(line, async_http_target(req), 1024);
    k = snprintf(buf, sizeof(buf), ",\"version\":\"HTTP/1.%d\",\"status\":%d,\"bytes\":",
                 async_http_version(req) == 10 ? 0 : 1, async_http_status(req));
    async_http_log_add(line, buf, (size_t)k);
    async_http_log_body_bytes(line);
    k = snprintf(buf, sizeof(buf), ",\"request_time_us\":%lld,\"user_agent\":",
                 (long long)async_http_elapsed_us(req));
    async_http_log_add(line, buf, (size_t)k);
    add_json(line, async_http_header(req, "user-agent"), 200);
    async_http_log_add(line, ",\"referer\":", 11);
    add_json(line, async_http_header(req, "referer"), 200);
    async_http_log_add(line, "}\n", 2);
}

/* ---- templates: nginx's variables ---- */

static const char *const variables[] = {
    "remote_addr", "request", "request_method", "request_uri", "status", "body_bytes_sent",
    "request_time", "host", "server_name", "time_iso8601", "time_local",
};

static size_t var_len(const char *p)
{
    size_t n = 0;

    while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
           (p[n] >= '0' && p[n] <= '9') || p[n] == '_')
        n++;
    return n;
}

/* Which variable p[0..n) is: its index, VAR_HTTP for $http_NAME, -1. */
#define VAR_HTTP ((int)(sizeof(variables) / sizeof(variables[0])))

static int var_index(const char *p, size_t n)
{
    size_t i;

    if (n > 5 && strncmp(p, "http_", 5) == 0)
        return VAR_HTTP;
    for (i = 0; i < sizeof(variables) / sizeof(variables[0]); i++)
        if (strlen(variables[i]) == n && strncmp(p, variables[i], n) == 0)
            return (int)i;
    return -1;
}

const char *http_log_unknown_variable(const char *tmpl, size_t *len)
{
    const char *p;

    for (p = strchr(tmpl, '$'); p != NULL; p = strchr(p + 1, '$')) {
        size_t n = var_len(p + 1);

        if (n > 0 && var_index(p + 1, n) < 0) { /* a lone $ is itself */
            *len = n;
            return p + 1;
        }
    }
    return NULL;
}

/* The value of a $http_NAME: NAME with '_' for '-'. */
static const char *http_var(const async_http_request *req, const char *p, size_t n)
{
    char name[128];
    size_t i;

    if (n - 5 >= sizeof(name))
        return NULL;
    for (i = 0; i < n - 5; i++)
        name[i] = p[5 + i] == '_' ? '-' : p[5 + i];
    name[i] = '\0';
    return async_http_header(req, name);
}

static void add_var(const async_http_request *req, async_http_log_line *line, const char *p,
                    size_t n)
{
    const char *peer = async_http_peer(req), *v;
    char buf[96];
    int k = 0;

    switch (var_index(p, n)) {
    case 0: /* remote_addr */
        add_address(line, peer);
        return;
    case 1: /* request */
        if (async_http_method(req)[0] == '\0') {
            async_http_log_add(line, "-", 1);
            return;
        }
        add_escaped(line, async_http_method(req), 512);
        async_http_log_add(line, " ", 1);
        add_escaped(line, async_http_target(req), 1024);
        k = snprintf(buf, sizeof(buf), " HTTP/1.%d", async_http_version(req) == 10 ? 0 : 1);
        break;
    case 2: /* request_method */
        add_escaped(line, async_http_method(req), 512);
        return;
    case 3: /* request_uri */
        add_escaped(line, async_http_target(req), 1024);
        return;
    case 4: /* status */
        k = snprintf(buf, sizeof(buf), "%d", async_http_status(req));
        break;
    case 5: /* body_bytes_sent */
        async_http_log_body_bytes(line);
        return;
    case 6: /* request_time: seconds with milliseconds, as nginx */
        k = snprintf(buf, sizeof(buf), "%.3f", (double)async_http_elapsed_us(req) / 1e6);
        break;
    case 7: /* host */
        v = async_http_header(req, "host");
        add_escaped(line, v != NULL ? v : "-", 256);
        return;
    case 8: { /* server_name: the first name of the site that answered */
        const struct http_server *site = async_http_tag(req);

        add_escaped(line, site != NULL && site->site.nnames > 0 ? site->site.names[0] : "-", 256);
        return;
    }
    case 9: { /* time_iso8601 */
        time_t now = time(NULL);
        struct tm tm;

        localtime_r(&now, &tm);
        k = (int)strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z", &tm);
        break;
    }
    case 10: /* time_local */
        k = snprintf(buf, sizeof(buf), "%s", log_time());
        break;
    case VAR_HTTP:
        v = http_var(req, p, n);
        add_escaped(line, v != NULL ? v : "-", 512);
        return;
    default: /* validate refused it; the text stays as written */
        async_http_log_add(line, p - 1, n + 1);
        return;
    }
    async_http_log_add(line, buf, (size_t)k);
}

static void format_template(const async_http_request *req, async_http_log_line *line,
                            const char *tmpl)
{
    const char *p = tmpl, *d;
    size_t n;

    while ((d = strchr(p, '$')) != NULL) {
        async_http_log_add(line, p, (size_t)(d - p));
        n = var_len(d + 1);
        if (n == 0)
            async_http_log_add(line, "$", 1);
        else
            add_var(req, line, d + 1, n);
        p = d + 1 + n;
    }
    async_http_log_add(line, p, strlen(p));
    async_http_log_add(line, "\n", 1);
}

void http_log_format(const async_http_request *req, async_http_log_line *line, void *ctx)
{
    /* the site's log, which the tag names until the engine's done hook */
    const char *style = http_log_begin(ctx, async_http_tag(req), line);

    if (style == NULL)
        return;

    if (strcmp(style, "json") == 0) {
        format_json(req, line);
        return;
    }
    if (strcmp(style, "combined") != 0) {
        format_template(req, line, style);
        return;
    }
    const char *method = async_http_method(req);
    const char *ref = async_http_header(req, "referer");
    const char *ua = async_http_header(req, "user-agent");
    char buf[96];
    int n;

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
