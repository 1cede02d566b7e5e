/* daemon/where.c — see where.h.
 *
 * One pass over the text records, for every member and array element, a
 * 64-bit FNV-1a hash of its path and the offset where it starts; sorted
 * by hash, they answer a lookup with a binary search.  Before, every
 * problem walked the whole text: a config with 20,000 bad routes (690 KB)
 * took 59 s to check; the walk is now done once.
 *
 * A path is the keys joined by '.' and the indexes as "[N]", the way the
 * checks build them.  A key may hold '.' or '[' itself (a header named
 * "X.Y", a key "a.b"): its path is then the same string another reading
 * of the text gives, and the first in the text wins, as a reader would
 * look.  Keys are hashed decoded (escapes resolved), as jansson hands them
 * to the checks.  Two different paths share a hash with odds of 2^-64 per
 * pair; the worst outcome is a wrong line number. */
#include "where.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull    /* the hash of "" */
#define FNV_PRIME 0x100000001b3ull

struct spot {
    uint64_t hash;      /* of the path */
    size_t at;          /* offset of the member's key or the element */
};

struct asyncd_where {
    struct spot *spots; /* sorted by hash, then offset; one per hash */
    size_t n, cap;
    size_t *lines;      /* offset where each line starts: lines[0] = 0 */
    size_t nlines;
};

struct cursor {
    const char *text, *p, *end;
};

static uint64_t fnv_byte(uint64_t h, unsigned char b)
{
    return (h ^ b) * FNV_PRIME;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        h = fnv_byte(h, (unsigned char)s[i]);
    return h;
}

/* ---- keys, decoded ---- */

/* The value of the 4 hex digits at p, or -1. */
static long hex4(const char *p, const char *end)
{
    long v = 0;
    int i;

    if (end - p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char c = p[i];

        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (c - 'A' + 10);
        else
            return -1;
    }
    return v;
}

static uint64_t fnv_utf8(uint64_t h, unsigned long cp)
{
    if (cp < 0x80)
        return fnv_byte(h, (unsigned char)cp);
    if (cp < 0x800)
        return fnv_byte(fnv_byte(h, (unsigned char)(0xC0 | cp >> 6)),
                        (unsigned char)(0x80 | (cp & 0x3F)));
    if (cp < 0x10000)
        return fnv_byte(fnv_byte(fnv_byte(h, (unsigned char)(0xE0 | cp >> 12)),
                                 (unsigned char)(0x80 | (cp >> 6 & 0x3F))),
                        (unsigned char)(0x80 | (cp & 0x3F)));
    h = fnv_byte(h, (unsigned char)(0xF0 | cp >> 18));
    h = fnv_byte(h, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
    h = fnv_byte(h, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
    return fnv_byte(h, (unsigned char)(0x80 | (cp & 0x3F)));
}

/* h extended by the key whose raw text (escapes kept) is p[0..end). */
static uint64_t fnv_key(uint64_t h, const char *p, const char *end)
{
    static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
    long cp, lo;

    while (p < end) {
        if (*p != '\\' || end - p < 2) {
            h = fnv_byte(h, (unsigned char)*p++);
            continue;
        }
        p += 2;
        if (p[-1] != 'u') {
            const char *e = strchr(from, p[-1]);

            h = fnv_byte(h, (unsigned char)(e != NULL && *e ? to[e - from] : p[-1]));
            continue;
        }
        if ((cp = hex4(p, end)) < 0)
            continue; /* jansson refused such text already */
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            (lo = hex4(p + 2, end)) >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        h = fnv_utf8(h, (unsigned long)cp);
    }
    return h;
}

/* ---- the pass ---- */

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Skips the string at c->p; its raw contents are [*s, c->p - 1). */
static void skip_string(struct cursor *c, const char **s)
{
    *s = ++c->p;
    while (c->p < c->end && *c->p != '"')
        c->p += *c->p == '\\' && c->end - c->p > 1 ? 2 : 1;
    if (c->p < c->end)
        c->p++;
}

static int record(struct asyncd_where *w, uint64_t hash, size_t at)
{
    if (w->n == w->cap) {
        size_t cap = w->cap * 2 + 64;
        struct spot *grown = realloc(w->spots, cap * sizeof(*grown));

        if (grown == NULL)
            return -1;
        w->spots = grown;
        w->cap = cap;
    }
    w->spots[w->n++] = (struct spot){hash, at};
    return 0;
}

/* Records the members and elements below the value at c->p, whose path
 * hashes to h (top: it is the document, whose members' paths take no
 * '.').  The text is valid JSON (jansson parsed it), so the scanner can be
 * trusting; depth stops it anyway past ASYNCD_MAX_DEPTH. */
static int index_value(struct asyncd_where *w, struct cursor *c, uint64_t h, bool top, int depth)
{
    const char *key;
    uint64_t sub;
    size_t i;

    skip_ws(c);
    if (c->p >= c->end)
        return 0;
    if ((*c->p == '{' || *c->p == '[') && depth >= ASYNCD_MAX_DEPTH)
        return -1;
    if (*c->p == '"') {
        skip_string(c, &key);
    } else if (*c->p == '{' || *c->p == '[') {
        char close = *c->p == '{' ? '}' : ']', idx[32];

        c->p++;
        for (i = 0;; i++) {
            skip_ws(c);
            if (c->p >= c->end || *c->p == close) {
                c->p++;
                return 0;
            }
            if (close == '}') {
                size_t at = (size_t)(c->p - c->text);

                skip_string(c, &key);
                sub = fnv_key(top ? h : fnv_byte(h, '.'), key, c->p - 1);
                if (record(w, sub, at) != 0)
                    return -1;
                skip_ws(c);
                c->p++; /* ':' */
            } else {
                sub = fnv(h, idx, (size_t)snprintf(idx, sizeof(idx), "[%zu]", i));
                if (record(w, sub, (size_t)(c->p - c->text)) != 0)
                    return -1;
            }
            if (index_value(w, c, sub, false, depth + 1) != 0)
                return -1;
            skip_ws(c);
            if (c->p < c->end && *c->p == ',')
                c->p++;
        }
    } else {
        while (c->p < c->end && strchr(",]} \t\r\n", *c->p) == NULL)
            c->p++;
    }
    return 0;
}

static int by_hash(const void *a, const void *b)
{
    const struct spot *x = a, *y = b;

    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

static int index_lines(struct asyncd_where *w, const char *text)
{
    const char *p;
    size_t n = 1;

    for (p = text; (p = strchr(p, '\n')) != NULL; p++)
        n++;
    if ((w->lines = malloc(n * sizeof(*w->lines))) == NULL)
        return -1;
    w->lines[0] = 0;
    for (w->nlines = 1, p = text; (p = strchr(p, '\n')) != NULL; p++)
        w->lines[w->nlines++] = (size_t)(p + 1 - text);
    return 0;
}

struct asyncd_where *asyncd_where_new(const char *text)
{
    struct asyncd_where *w = calloc(1, sizeof(*w));
    struct cursor c = {text, text, text + strlen(text)};
    size_t i, o;

    if (w == NULL)
        return NULL;
    if (index_value(w, &c, FNV_OFFSET, true, 0) != 0 || index_lines(w, text) != 0)
        goto fail;
    qsort(w->spots, w->n, sizeof(*w->spots), by_hash);
    for (i = 0, o = 0; i < w->n; i++) /* the first in the text of each path */
        if (o == 0 || w->spots[o - 1].hash != w->spots[i].hash)
            w->spots[o++] = w->spots[i];
    w->n = o;
    return w;
fail:
    asyncd_where_free(w);
    return NULL;
}

void asyncd_where_free(struct asyncd_where *w)
{
    if (w == NULL)
        return;
    free(w->spots);
    free(w->lines);
    free(w);
}

static const struct spot *find(const struct asyncd_where *w, uint64_t hash)
{
    size_t lo = 0, hi = w->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (w->spots[mid].hash == hash)
            return &w->spots[mid];
        if (w->spots[mid].hash < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void asyncd_where_find(const struct asyncd_where *w, const char *path, int *line, int *col)
{
    const struct spot *s = NULL;
    size_t j = strlen(path), lo = 0, hi;

    *line = 1;
    *col = 1;
    if (w == NULL)
        return;
    /* the whole path, then shorter ones cut before a '.' or a '[' */
    while (j > 0 && (s = find(w, fnv(FNV_OFFSET, path, j))) == NULL)
        while (j > 0 && path[--j] != '.' && path[j] != '[')
            ;
    if (s == NULL)
        return;
    for (hi = w->nlines; hi - lo > 1;) { /* the last line starting at or before s->at */
        size_t mid = lo + (hi - lo) / 2;

        if (w->lines[mid] <= s->at)
            lo = mid;
        else
            hi = mid;
    }
    *line = (int)(lo + 1);
    *col = (int)(s->at - w->lines[lo] + 1);
}

void asyncd_where_offset(const char *text, size_t at, int *line, int *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < at && text[i] != '\0'; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

size_t asyncd_json_too_deep(const char *text, int max_depth)
{
    const char *p;
    int depth = 0;

    for (p = text; *p != '\0'; p++) {
        if (*p == '"') {
            for (p++; *p != '\0' && *p != '"'; p++)
                if (*p == '\\' && p[1] != '\0')
                    p++;
            if (*p == '\0')
                break;
        } else if (*p == '{' || *p == '[') {
            if (++depth > max_depth)
                return (size_t)(p - text);
        } else if ((*p == '}' || *p == ']') && depth > 0) {
            depth--;
        }
    }
    return (size_t)-1;
}
