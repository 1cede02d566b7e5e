/* modules/http/files.c — static files beneath the document root: the
 * answer for a path (200, 206, 304, 416, a redirect for a directory, the
 * error for what cannot be opened).
 *
 * open.c opens what the path names, beneath the root; each worker's
 * cache (file_cache.c) keeps it open for the next requests,
 * open_file_cache_ms long.  The body goes out with sendfile(2) after the
 * head (async_http_sendfile).  With "precompressed" (the default) an X.br
 * or X.gz beside X may answer instead (precompressed.c, encoding.c). */
#include "http.h"
#include "sites.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 304 Not Modified: the fields read here, the decision validators.c's
 * (If-Modified-Since is not read when If-None-Match decides). */
static bool not_modified(const async_http_request *req, const struct http_file *f)
{
    const char *inm = async_http_header(req, "if-none-match");
    const char *ims = inm == NULL ? async_http_header(req, "if-modified-since") : NULL;

    return (inm != NULL || ims != NULL) && http_not_modified(inm, ims, f->etag, f->st.st_mtime);
}

/* Whether byte c may stand for itself in the path of a Location: '/',
 * unreserved and sub-delims, ':' and '@' (RFC 3986 §3.3).  The rest is
 * percent-encoded, '%' first of all: the path here is decoded, so a name
 * holding "%41" must not be decoded a second time by the client, a '?' or
 * '#' must not start a query or fragment, and CR, LF or any control must
 * not end the header line (response splitting). */
static bool path_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("/-._~!$&'()*+,;=:@", c) != NULL);
}

/* path percent-encoded into a new string, or NULL. */
static char *encode_path(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path), o = 0, i;
    char *out = malloc(3 * n + 1);

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];

        if (path_safe(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* The query goes back as received: it was never decoded, and the parser
 * admits no byte at or below ' ' (nor DEL) in a request-target, so it
 * cannot carry CR or LF. */
static int redirect_slash(async_http_request *req, const char *path)
{
    const char *query = async_http_query(req);
    char *loc = NULL, *enc = encode_path(path);
    int rc;

    if (enc == NULL || asprintf(&loc, "%s/%s%s", enc, query[0] != '\0' ? "?" : "", query) < 0) {
        free(enc);
        return -1;
    }
    rc = async_http_add_header(req, "Location", loc) == 0
             ? async_http_respond(req, 301, "text/plain; charset=utf-8", "Moved Permanently\n", 18)
             : -1;
    free(loc);
    free(enc);
    return rc;
}

/* Whether a decoded, normalised path names something hidden: a segment
 * that starts with '.' (".git", ".env", ".htpasswd"), outside the
 * top-level /.well-known/ (RFC 8615), which is public by definition.  A
 * hidden segment below /.well-known/ stays hidden.  A scan of the path
 * for "/.", nothing more. */
static bool hidden(const char *path)
{
    const char *p = path;

    while ((p = strstr(p, "/.")) != NULL) {
        if (p == path && strncmp(p, "/.well-known", 12) == 0 && (p[12] == '/' || p[12] == '\0')) {
            p += 12;
            continue;
        }
        return true;
    }
    return false;
}

/* Out of descriptors the request cannot be served, but the operator must
 * hear of it: a 503 alone looks like a healthy server refusing. */
static void note_no_descriptor(struct http_server *srv, int err)
{
    uint64_t n = http_site_stats_refused(srv->stats);

    if (http_once_a_second(&srv->fd_logged_at))
        async_module_log(srv->host, ASYNC_LOG_WARNING,
                         "cannot open a file to serve: %s; %" PRIu64 " request(s) answered "
                         "503 for it so far", strerror(err), n);
}

static int error_reply(struct http_server *srv, async_http_request *req, int err)
{
    if (err == EACCES || err == EPERM)
        return http_text(req, 403, "Forbidden\n");
    if (err == EMFILE || err == ENFILE || err == ENOMEM) {
        if (err != ENOMEM)
            note_no_descriptor(srv, err);
        async_http_add_header(req, "Retry-After", "1");
        return http_text(req, 503, "Service Unavailable\n");
    }
    return http_text(req, 404, "Not Found\n"); /* ENOENT, ENOTDIR, EXDEV, ELOOP, ... */
}

/* v in decimal into buf (21 bytes). */
static const char *decimal(uint64_t v, char buf[21])
{
    char *p = buf + 20;

    *p = '\0';
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return p;
}

/* The fields every answer for the file carries, 304 included. */
static int head_fields(async_http_request *req, const struct http_file *f, bool vary)
{
    return async_http_add_header(req, "ETag", f->etag) != 0 ||
           async_http_add_header(req, "Last-Modified", f->lastmod) != 0 ||
           (vary && async_http_add_header(req, "Vary", "Accept-Encoding") != 0) ? -1 : 0;
}

/* Which bytes answer for f: f itself, or a precompressed sibling the
 * request accepts (*coding; *vary when f has any, so that caches key
 * every answer for it, identity ones too, on Accept-Encoding).  A
 * reference to put. */
static struct http_file *representation(struct http_server *srv, async_http_request *req,
                                        const char *path, struct http_file *f,
                                        enum http_coding *coding, bool *vary)
{
    struct http_file *sib;
    unsigned have;

    *coding = HTTP_CODING_IDENTITY;
    *vary = false;
    if (!srv->cfg.precompressed || (have = http_siblings(srv, path, f)) == 0)
        return f;
    *vary = true;
    *coding = http_coding_choose(async_http_header(req, "accept-encoding"), have);
    if (*coding == HTTP_CODING_IDENTITY ||
        (sib = http_sibling_get(srv, path, f, *coding)) == NULL) {
        *coding = HTTP_CODING_IDENTITY;
        return f;
    }
    http_file_put(f);
    return sib;
}

int http_files_serve(struct http_server *srv, async_http_request *req, const char *path)
{
    const char *range, *type;
    struct http_file *f;
    enum http_coding coding;
    uint64_t off = 0, len, size;
    char num[96];
    bool redirect, vary;
    int rc = 0;

    if (!srv->cfg.serve_hidden && hidden(path))
        return error_reply(srv, req, ENOENT); /* the 404 of a missing file: nothing to tell apart */
    if ((f = http_file_get(srv, path, &redirect)) == NULL)
        return redirect ? redirect_slash(req, path) : error_reply(srv, req, errno);
    type = f->type; /* X's type, whichever bytes go out */
    f = representation(srv, req, path, f, &coding, &vary);
    size = len = (uint64_t)f->st.st_size;
    if (not_modified(req, f)) {
        rc = head_fields(req, f, vary) == 0 ? async_http_respond(req, 304, NULL, NULL, 0) : -1;
        goto done;
    }
    /* a range counts bytes of the representation sent: the encoded ones */
    range = strcmp(async_http_method(req), "GET") == 0 ? async_http_header(req, "range") : NULL;
    if (range != NULL &&
        http_if_range_holds(async_http_header(req, "if-range"), f->etag, f->lastmod))
        rc = http_byte_range(range, size, &off, &len);
    if (rc < 0) {
        snprintf(num, sizeof(num), "bytes */%" PRIu64, size);
        rc = async_http_add_header(req, "Content-Range", num) == 0 &&
             (!vary || async_http_add_header(req, "Vary", "Accept-Encoding") == 0)
                 ? async_http_respond(req, 416, NULL, NULL, 0) : -1;
        goto done;
    }
    if (rc > 0) {
        snprintf(num, sizeof(num), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off, off + len - 1,
                 size);
        if (async_http_add_header(req, "Content-Range", num) != 0)
            goto fail;
    }
    async_http_set_status(req, rc > 0 ? 206 : 200);
    if (async_http_add_header(req, "Content-Type", type) != 0 ||
        (coding != HTTP_CODING_IDENTITY &&
         async_http_add_header(req, "Content-Encoding", http_coding_name(coding)) != 0) ||
        async_http_add_header(req, "Content-Length", decimal(len, num)) != 0 ||
        head_fields(req, f, vary) != 0 ||
        async_http_add_header(req, "Accept-Ranges", "bytes") != 0)
        goto fail;
    rc = len > 0 ? async_http_sendfile(req, f->fd, (off_t)off, len) : 0;
done:
    http_file_put(f);
    return rc;
fail:
    http_file_put(f);
    return -1;
}
