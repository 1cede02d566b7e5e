/* modules/http/file_cache.c — open files kept for the next requests.
 *
 * Serving a small file costs an openat2, an fstat and a close around the
 * sendfile; a busy file is asked for thousands of times a second.  Each
 * worker keeps the files it opened for open_file_cache_ms (default 1 s,
 * like nginx's open_file_cache); 0 turns the cache off.  Every hit still
 * checks its descriptor with fstat, so a file rewritten in place (new
 * size or mtime) or unlinked is opened again at once — the head never
 * promises a length or an ETag the body does not match.  Only a new file
 * renamed over a path that stays linked elsewhere waits for the expiry.
 *
 * The cache knows no more of files than struct http_file: what a key
 * opens is its maker's opener (struct http_file_ops, given at
 * http_file_cache_init, as nginx's open-file cache is told how to open),
 * so it calls into nothing of the module.  local.c makes one per worker
 * and site with open.c's opener; files.c and site_reply.c ask it through
 * http_file_get (http.h).
 *
 * Threads: a cache belongs to one worker thread (a fiber never changes
 * thread, so the responses that hold a file run on the thread that owns
 * it): no locks on the way.  It lives in the worker's struct http_local
 * (local.c).
 *
 * Entries also expire while nobody asks for them: a fiber per worker
 * (http.c) prunes that worker's cache every open_file_cache_ms / 2, so an
 * idle server holds no descriptor past its time and a deleted file's
 * blocks come back.
 *
 * An entry also holds its precompressed siblings (precompressed.c), found
 * once, the absence of any included, so that a file without them costs
 * no lookup on a hit.
 *
 * Lifetime of an entry: refs counts the responses sending it plus one
 * while it sits in the table; the descriptor is closed when refs drops to
 * zero, so an entry evicted while a slow download still reads it stays
 * open until that download ends. */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ENTRIES 1024        /* per worker */

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static void release(struct http_file *f)
{
    int c;

    if (--f->refs == 0) {
        for (c = 0; c < HTTP_CODINGS; c++)
            if (f->sib[c] != NULL)
                release(f->sib[c]); /* a sibling in use stays open until its response ends */
        close(f->fd);
        free(f->key);
        free(f);
    }
}

void http_file_put(struct http_file *f)
{
    release(f);
}

/* Unlinks the entries of chain *pp that expired by now. */
static void prune(struct http_file_cache *c, struct http_file **pp, int64_t now)
{
    struct http_file *f;

    while ((f = *pp) != NULL) {
        if (f->expires <= now) {
            *pp = f->next;
            c->n--;
            release(f);
        } else {
            pp = &f->next;
        }
    }
}

/* Whether the open file is still what its entry says (size, mtime, the
 * same inode still linked). */
static bool still_same(const struct http_file *f)
{
    struct stat st;

    return fstat(f->fd, &st) == 0 && st.st_nlink > 0 && st.st_size == f->st.st_size &&
           st.st_mtim.tv_sec == f->st.st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec;
}

void http_file_cache_init(struct http_file_cache *c, const struct http_file_ops *ops, void *ctx,
                          int64_t ttl_ms)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->ctx = ctx;
    c->ttl_ms = ttl_ms;
}

struct http_file *http_file_open_uncached(const struct http_file_ops *ops, void *ctx,
                                          const char *key, bool *redirect)
{
    struct http_file *f = calloc(1, sizeof(*f));

    *redirect = false;
    if (f == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (ops->open(ctx, key, f, redirect) != 0) {
        int e = errno;

        free(f);
        errno = e;
        return NULL;
    }
    f->refs = 1;
    return f;
}

struct http_file *http_file_cache_get(struct http_file_cache *c, const char *key, bool *redirect)
{
    struct http_file *f, **chain;
    uint32_t h;
    int64_t now;

    *redirect = false;
    h = hash(key);
    chain = &c->bucket[h % HTTP_FILE_BUCKETS];
    now = async_now_ms();
    prune(c, chain, now);
    /* and one other chain per lookup, so expired files everywhere close */
    prune(c, &c->bucket[c->sweep++ % HTTP_FILE_BUCKETS], now);
    for (f = *chain; f != NULL; f = f->next)
        if (f->hash == h && strcmp(f->key, key) == 0) {
            if (still_same(f)) {
                f->refs++;
                return f;
            }
            f->expires = now; /* changed under us: drop it, open afresh */
            prune(c, chain, now);
            break;
        }
    if ((f = http_file_open_uncached(c->ops, c->ctx, key, redirect)) == NULL ||
        c->n >= MAX_ENTRIES)
        return f; /* full: serve it uncached */
    if ((f->key = strdup(key)) == NULL)
        return f;
    f->hash = h;
    f->expires = now + c->ttl_ms;
    f->refs++; /* the table's */
    f->next = *chain;
    *chain = f;
    c->n++;
    return f;
}

void http_file_cache_expire(struct http_file_cache *c, int64_t now)
{
    unsigned i;

    for (i = 0; i < HTTP_FILE_BUCKETS && c->n > 0; i++)
        prune(c, &c->bucket[i], now);
}

void http_file_cache_clear(struct http_file_cache *c)
{
    struct http_file *f, *next;
    unsigned i;

    for (i = 0; i < HTTP_FILE_BUCKETS; i++) {
        for (f = c->bucket[i]; f != NULL; f = next) {
            next = f->next;
            release(f);
        }
        c->bucket[i] = NULL;
    }
    c->n = 0;
}
