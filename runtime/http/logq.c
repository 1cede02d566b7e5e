/* runtime/http/logq.c — access-log lines that tell the truth: each line
 * is formatted when its response is complete (the server's log_fmt, with
 * the request still valid), and written when the response has left, with
 * the body bytes that actually left (nginx's $body_bytes_sent).  A
 * download cut after 5 MB of 500 logs 5 MB.
 *
 * Answers to pipelined requests gather in the connection's output buffer
 * and leave in one send (conn.c), so a connection keeps a queue of staged
 * lines: each knows where its last body bytes sit in that buffer (and how
 * many of them are payload rather than chunk framing) and how many of its
 * bytes had left before; when the buffer has been sent — wholly or in
 * part — every staged line gets its count.
 *
 * Threads: a queue belongs to its connection's fiber. */
#include "engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_SPLIT SIZE_MAX

struct staged {
    size_t start, split, end;   /* the line in text; the byte count goes at split */
    size_t body_start;          /* its body's place in the output buffer */
    uint64_t pending;           /* ... that many payload bytes */
    uint64_t known;             /* bytes known to have left before */
};

struct http_logq {
    struct http_out text;       /* the staged lines, without their counts */
    struct staged *e;
    unsigned n, cap;
};

struct async_http_log_line {
    struct http_out *text;
    size_t split;
};

void async_http_log_add(async_http_log_line *line, const void *p, size_t len)
{
    if (len > 0 && async__http_out_reserve(line->text, len) == 0) {
        memcpy(line->text->buf + line->text->len, p, len);
        line->text->len += len;
    }
}

void async_http_log_body_bytes(async_http_log_line *line)
{
    line->split = line->text->len;
}

static struct staged *next_entry(struct http_conn *c)
{
    struct http_logq *q = c->logq;

    if (q == NULL && (q = c->logq = calloc(1, sizeof(*q))) == NULL)
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

void async__http_logq_add(struct http_conn *c, const struct async_http_request *req,
                          size_t body_start, uint64_t pending, uint64_t known)
{
    struct staged *e = next_entry(c);
    struct async_http_log_line line;

    if (e == NULL)
        return; /* no memory: the line is lost, the response is not */
    line.text = &c->logq->text;
    line.split = NO_SPLIT;
    e->start = line.text->len;
    c->srv->log_fmt(req, &line, c->srv->log_ctx);
    e->split = line.split;
    e->end = line.text->len;
    e->body_start = body_start;
    e->pending = pending;
    e->known = known;
    c->logq->n++;
}

/* Appends p[0..n) to the batch, handing it to the writer when full. */
struct batch {
    struct http_conn *c;
    size_t used;
    char buf[8192];
};

static void batch_flush(struct batch *b)
{
    if (b->used > 0)
        b->c->srv->log_write(b->buf, b->used, b->c->srv->log_ctx);
    b->used = 0;
}

/* One whole line in three pieces (before the count, the count, after it):
 * lines stay whole within one write. */
static void batch_line(struct batch *b, const char *a, size_t an, const char *m, size_t mn,
                       const char *z, size_t zn)
{
    size_t n = an + mn + zn;
    char *big;

    if (b->used + n > sizeof(b->buf))
        batch_flush(b);
    if (n > sizeof(b->buf)) { /* a very long line: on its own */
        if ((big = malloc(n)) == NULL)
            return;
        memcpy(big, a, an);
        memcpy(big + an, m, mn);
        memcpy(big + an + mn, z, zn);
        b->c->srv->log_write(big, n, b->c->srv->log_ctx);
        free(big);
        return;
    }
    if (an > 0)
        memcpy(b->buf + b->used, a, an);
    if (mn > 0)
        memcpy(b->buf + b->used + an, m, mn);
    if (zn > 0)
        memcpy(b->buf + b->used + an + mn, z, zn);
    b->used += n;
}

void async__http_logq_settle(struct http_conn *c, size_t out_sent)
{
    struct http_logq *q = c->logq;
    struct batch b;
    unsigned i;

    if (q == NULL || q->n == 0)
        return;
    b.c = c;
    b.used = 0;
    for (i = 0; i < q->n; i++) {
        const struct staged *e = &q->e[i];
        const char *t = q->text.buf;
        uint64_t left = out_sent > e->body_start ? out_sent - e->body_start : 0;
        uint64_t bytes = e->known + (left < e->pending ? left : e->pending);
        char num[24];
        int k;

        if (e->split == NO_SPLIT) {
            batch_line(&b, t + e->start, e->end - e->start, "", 0, "", 0);
            continue;
        }
        k = snprintf(num, sizeof(num), "%" PRIu64, bytes);
        batch_line(&b, t + e->start, e->split - e->start, num, (size_t)k, t + e->split,
                   e->end - e->split);
    }
    batch_flush(&b);
    q->n = 0;
    q->text.len = 0;
}

void async__http_logq_free(struct http_logq *q)
{
    if (q == NULL)
        return;
    free(q->text.buf);
    free(q->e);
    free(q);
}
