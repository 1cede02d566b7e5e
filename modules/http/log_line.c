/* modules/http/log_line.c — access-log lines that tell the truth: each
 * line is formatted when its response is built, and written when the
 * response has left, with the body bytes that actually left (nginx's
 * $body_bytes_sent).  A download cut after 5 MB of 500 logs 5 MB.
 *
 * Answers to pipelined requests gather in the connection's output buffer
 * and leave in one send (conn.c), so a connection keeps a queue of staged
 * lines: each knows where its body sits in that buffer, and when the
 * buffer has been sent — wholly or in part — every staged line gets the
 * count of its own body bytes that made it out.  A file body is counted by
 * its sendfile loop instead.
 *
 * Format: combined, with quotes, backslashes, control bytes and bytes
 * >= 0x7f written as \xHH so that a line is always one line and parses.
 *
 * Threads: a queue belongs to its connection's fiber. */
#include "http.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct staged {
    size_t start, split, end;   /* the line in text; the byte count goes at split */
    size_t body_start, body_end; /* its body's place in the output buffer */
    int64_t sent;               /* >= 0: bytes already known to be sent (files) */
};

struct http_logq {
    struct http_out text;       /* the staged lines, without their counts */
    struct staged *e;
    unsigned n, cap;
};

/* Appends s[0..n) to o, escaping what would break the format; at most
 * room bytes of output. */
static void add_escaped(struct http_out *o, const char *s, size_t n, size_t room)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, used = 0;

    if (http_out_reserve(o, n * 4 < room ? n * 4 : room) != 0)
        return;
    for (i = 0; i < n && used + 4 <= room; i++) {
        unsigned char ch = (unsigned char)s[i];
        char *d = o->buf + o->len;

        if (ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\') {
            d[0] = '\\';
            d[1] = 'x';
            d[2] = hex[ch >> 4];
            d[3] = hex[ch & 15];
            o->len += 4;
            used += 4;
        } else {
            d[0] = (char)ch;
            o->len++;
            used++;
        }
    }
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

static struct staged *next_entry(struct http_logq **qp)
{
    struct http_logq *q = *qp;

    if (q == NULL && (q = *qp = calloc(1, sizeof(*q))) == NULL)
        return NULL;
    if (q->n == q->cap) {
        unsigned cap = q->cap != 0 ? q->cap * 2 : 8;
        struct staged *e = realloc(q->e, cap * sizeof(*e));

        if (e == NULL)
            return NULL;
        q->e = e;
        q->cap = cap;
    }
    return &q->e[q->n];
}

void http_logq_add(struct http_logq **qp, const struct http_log_peer *peer,
                   const struct http_request *req, int status, size_t body_start,
                   size_t body_end, int64_t sent)
{
    const struct http_slice *ref = req != NULL ? http_header_get(req, "referer") : NULL;
    const struct http_slice *ua = req != NULL ? http_header_get(req, "user-agent") : NULL;
    char addr[INET6_ADDRSTRLEN] = "-";
    struct staged *e = next_entry(qp);
    struct http_out *t;

    if (e == NULL)
        return; /* no memory: the line is lost, the response is not */
    t = &(*qp)->text;
    e->start = t->len;
    if (peer->family != 0)
        inet_ntop(peer->family, peer->addr, addr, sizeof(addr));
    http_out_addf(t, "%s - - [%s] \"", addr, log_time());
    if (req != NULL && req->method_name.n > 0) {
        add_escaped(t, req->method_name.p, req->method_name.n, 512);
        http_out_add(t, " ", 1);
        add_escaped(t, req->target.p, req->target.n, 1024);
        http_out_addf(t, " HTTP/1.%d", req->minor);
    }
    http_out_addf(t, "\" %d ", status);
    e->split = t->len;
    http_out_add(t, " \"", 2);
    add_escaped(t, ref != NULL ? ref->p : "-", ref != NULL ? ref->n : 1, 200);
    http_out_add(t, "\" \"", 3);
    add_escaped(t, ua != NULL ? ua->p : "-", ua != NULL ? ua->n : 1, 200);
    http_out_add(t, "\"\n", 2);
    e->end = t->len;
    e->body_start = body_start;
    e->body_end = body_end;
    e->sent = sent;
    (*qp)->n++;
}

void http_logq_settle(struct http_logq *q, struct http_log *log, size_t out_sent)
{
    char batch[8192];
    size_t used = 0;
    unsigned i;

    if (q == NULL || q->n == 0)
        return;
    for (i = 0; i < q->n; i++) {
        const struct staged *e = &q->e[i];
        uint64_t bytes = e->sent >= 0 ? (uint64_t)e->sent
                       : out_sent <= e->body_start ? 0
                       : (out_sent < e->body_end ? out_sent : e->body_end) - e->body_start;
        size_t head = e->split - e->start, tail = e->end - e->split;
        char num[24];
        int k = snprintf(num, sizeof(num), "%" PRIu64, bytes);

        if (used + head + (size_t)k + tail > sizeof(batch)) {
            http_log_line(log, batch, used);
            used = 0;
        }
        if (head + (size_t)k + tail > sizeof(batch))
            continue; /* cannot happen: fields are bounded well below */
        memcpy(batch + used, q->text.buf + e->start, head);
        memcpy(batch + used + head, num, (size_t)k);
        memcpy(batch + used + head + (size_t)k, q->text.buf + e->split, tail);
        used += head + (size_t)k + tail;
    }
    if (used > 0)
        http_log_line(log, batch, used);
    q->n = 0;
    q->text.len = 0;
}

void http_logq_free(struct http_logq *q)
{
    if (q == NULL)
        return;
    free(q->text.buf);
    free(q->e);
    free(q);
}
