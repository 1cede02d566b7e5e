/* modules/http/precompressed.c — X.br and X.gz beside X.
 *
 * A sibling serves for X when it is a regular file beneath the root
 * (opened as X is, so it cannot lead out of the root) and no older than
 * X: an X edited after its .gz was made must not be shadowed by the old
 * bytes.  The siblings are looked for once per struct http_file, the
 * first time a request for X is served, and kept with it — the answer
 * "none" too — for as long as file_cache.c keeps X (open_file_cache_ms):
 * a file without siblings costs two failed opens per cache lifetime, not
 * per request.  A sibling that is sent is checked as X is on each hit
 * (one fstat) and looked for again if it changed.
 *
 * Threads: a struct http_file belongs to one worker (file_cache.c), and
 * so do its siblings. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool not_older(const struct stat *sib, const struct stat *x)
{
    return sib->st_mtim.tv_sec > x->st_mtim.tv_sec ||
           (sib->st_mtim.tv_sec == x->st_mtim.tv_sec && sib->st_mtim.tv_nsec >= x->st_mtim.tv_nsec);
}

/* X's sibling for coding, freshly opened, or NULL when there is none
 * that may serve. */
static struct http_file *find(struct http_server *srv, const char *path, const struct http_file *x,
                              enum http_coding coding)
{
    char rel[HTTP_PATH_MAX + 256 + 8];
    struct http_file *s;
    struct stat st;
    int fd, n;

    n = snprintf(rel, sizeof(rel), "%s%s%s", path + 1, x->index != NULL ? x->index : "",
                 http_coding_suffix(coding));
    if (n < 0 || (size_t)n >= sizeof(rel) || (fd = http_open_regular(srv, rel, &st)) < 0)
        return NULL;
    if (!not_older(&st, &x->st) || (s = calloc(1, sizeof(*s))) == NULL) {
        close(fd);
        return NULL;
    }
    s->fd = fd;
    s->st = st;
    s->type = x->type;
    s->probed = true; /* a sibling has no siblings */
    http_file_etag(&st, coding == HTTP_CODING_GZIP ? "-gz" : "-br", s->etag);
    http_date(st.st_mtime, s->lastmod);
    s->refs = 1; /* x's */
    return s;
}

unsigned http_siblings(struct http_server *srv, const char *path, struct http_file *f)
{
    unsigned have = 0;
    int c;

    if (!f->probed) {
        f->probed = true;
        for (c = HTTP_CODING_GZIP; c < HTTP_CODINGS; c++)
            f->sib[c] = find(srv, path, f, (enum http_coding)c);
    }
    for (c = HTTP_CODING_GZIP; c < HTTP_CODINGS; c++)
        if (f->sib[c] != NULL)
            have |= HTTP_HAVE(c);
    return have;
}

/* Whether the open sibling is still what was found (as file_cache.c
 * checks X). */
static bool unchanged(const struct http_file *s)
{
    struct stat st;

    return fstat(s->fd, &st) == 0 && st.st_nlink > 0 && st.st_size == s->st.st_size &&
           st.st_mtim.tv_sec == s->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec;
}

struct http_file *http_sibling_get(struct http_server *srv, const char *path,
                                   struct http_file *f, enum http_coding coding)
{
    struct http_file *s = f->sib[coding];

    if (s != NULL && !unchanged(s)) {
        http_file_put(s);
        s = f->sib[coding] = find(srv, path, f, coding);
    }
    if (s != NULL)
        s->refs++; /* the response's */
    return s;
}
