/* modules/http/files.c — static files beneath the document root.
 *
 * Every open resolves beneath root_fd: openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS), so neither "..", nor an absolute symlink, nor a
 * relative one that climbs out can leave the root; the kernel checks the
 * whole walk.  Kernels without openat2 (before 5.6) get a walk of our own,
 * one component at a time with O_NOFOLLOW: symlinks are then refused
 * outright.  Paths reach here decoded and normalised (no "." or "..").
 *
 * The body goes out with sendfile(2) after the head (async_http_sendfile);
 * file_cache.c keeps the file open for the next requests,
 * open_file_cache_ms long.  With "precompressed" (the default) an X.br or
 * X.gz beside X may answer instead (precompressed.c, encoding.c). */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int have_openat2 = 1;

void http_files_init(void)
{
    /* ASYNCD_HTTP_NO_OPENAT2=1 takes the older kernels' path (for tests) */
    const char *v = getenv("ASYNCD_HTTP_NO_OPENAT2");

    atomic_store(&have_openat2, v == NULL || strcmp(v, "1") != 0);
}

static int open_walk(int root_fd, const char *rel, int flags)
{
    char comp[256];
    const char *p = rel, *slash;
    int dir = root_fd, fd;

    for (;;) {
        size_t n;

        slash = strchr(p, '/');
        n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (n >= sizeof(comp)) {
            fd = -1;
            errno = ENAMETOOLONG;
            break;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        if (slash == NULL || slash[1] == '\0') {
            fd = openat(dir, comp, flags | O_NOFOLLOW);
            break;
        }
        fd = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir != root_fd)
            close(dir);
        if (fd < 0)
            return -1;
        dir = fd;
        p = slash + 1;
    }
    if (dir != root_fd) {
        int e = errno;

        close(dir);
        errno = e;
    }
    return fd;
}

/* Opens rel ("" or "a/b", no leading slash) beneath root_fd. */
static int open_beneath(int root_fd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)flags,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    int fd;

    if (rel[0] == '\0')
        rel = ".";
    if (atomic_load_explicit(&have_openat2, memory_order_relaxed)) {
        fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
            return fd;
        if (errno == ENOSYS)
            atomic_store_explicit(&have_openat2, 0, memory_order_relaxed);
        else
            return -1;
    }
    if (strcmp(rel, ".") == 0)
        return openat(root_fd, ".", flags);
    return open_walk(root_fd, rel, flags);
}

static const struct {
    const char *ext;
    const char *type;
} mime[] = {
    {"html", "text/html; charset=utf-8"},  {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},          {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},            {"svg", "image/svg+xml"},
    {"png", "image/png"},                  {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},                {"gif", "image/gif"},
    {"webp", "image/webp"},                {"avif", "image/avif"},
    {"ico", "image/x-icon"},               {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},          {"woff", "font/woff"},
    {"woff2", "font/woff2"},               {"ttf", "font/ttf"},
    {"mp4", "video/mp4"},                  {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},                 {"ogg", "audio/ogg"},
    {"zip", "application/zip"},            {"gz", "application/gzip"},
    {"tar", "application/x-tar"},          {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
};

static const char *mime_type(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    size_t i;

    if (dot != NULL && (slash == NULL || dot > slash))
        for (i = 0; i < sizeof(mime) / sizeof(mime[0]); i++)
            if (strcasecmp(dot + 1, mime[i].ext) == 0)
                return mime[i].type;
    return "application/octet-stream";
}

/* Whether an If-None-Match list names etag (weak comparison) or is "*". */
static bool etag_listed(const char *v, const char *etag)
{
    size_t i = 0, n = strlen(etag), vn = strlen(v);

    while (i < vn) {
        while (i < vn && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < vn && v[i] == '*')
            return true;
        if (i + 2 <= vn && v[i] == 'W' && v[i + 1] == '/')
            i += 2;
        if (i + n <= vn && memcmp(v + i, etag, n) == 0)
            return true;
        while (i < vn && v[i] != ',')
            i++;
    }
    return false;
}

static bool not_modified(const async_http_request *req, const char *etag, time_t mtime)
{
    const char *inm = async_http_header(req, "if-none-match");
    const char *ims;
    time_t since;

    if (inm != NULL)
        return etag_listed(inm, etag);
    ims = async_http_header(req, "if-modified-since");
    return ims != NULL && (since = http_date_parse(ims)) != -1 && mtime <= since;
}

/* One "bytes=first-last" range against size.  1 and the range, 0 to serve
 * the whole file (no range, several ranges, or a form we ignore), -1 for
 * an unsatisfiable one. */
static int byte_range(const char *v, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a = 0, b = 0;
    size_t i = 6, n = strlen(v);
    bool has_a = false, has_b = false;

    if (n < 7 || strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ',') != NULL)
        return 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, has_a = true)
        if ((a = a * 10 + (uint64_t)(v[i] - '0')) > (UINT64_MAX >> 4))
            return 0;
    if (i >= n || v[i++] != '-')
        return 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, has_b = true)
        if ((b = b * 10 + (uint64_t)(v[i] - '0')) > (UINT64_MAX >> 4))
            return 0;
    if (i != n || (!has_a && !has_b) || (has_a && has_b && b < a))
        return 0; /* syntactically invalid: ignore the field (RFC 9110 §14.2) */
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0)
            return -1;
        *off = b >= size ? 0 : size - b;
        *len = size - *off;
        return 1;
    }
    if (a >= size)
        return -1;
    *off = a;
    *len = (has_b && b < size ? b + 1 : size) - a;
    return 1;
}

/* If-Range: the range applies only to the representation it names. */
static bool if_range_holds(const async_http_request *req, const char *etag, const char *lastmod)
{
    const char *v = async_http_header(req, "if-range");

    if (v == NULL)
        return true;
    if (v[0] == '"')
        return strcmp(v, etag) == 0;
    return strcmp(v, lastmod) == 0;
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
    uint64_t n = atomic_fetch_add_explicit(&srv->fd_refused, 1, memory_order_relaxed) + 1;

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

/* Opens the file path names, or its index file for a directory: fd and st
 * of a regular file and in *name the file name that decides its type, or
 * -1 with errno; *redirect for a directory named without its trailing
 * slash. */
static int open_file(struct http_server *srv, const char *path, struct stat *st, bool *redirect,
                     const char **name)
{
    char rel[4096 + 256];
    size_t i, n = strlen(path);
    int fd;

    *redirect = false;
    *name = path;
    fd = open_beneath(srv->root_fd, path + 1, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0)
        goto fail;
    if (S_ISREG(st->st_mode))
        return fd;
    close(fd);
    if (!S_ISDIR(st->st_mode)) {
        errno = ENOENT; /* devices, fifos, sockets are not served */
        return -1;
    }
    if (path[n - 1] != '/') {
        *redirect = true;
        return -1;
    }
    for (i = 0; i < srv->cfg.nindex; i++) {
        if ((size_t)snprintf(rel, sizeof(rel), "%s%s", path + 1, srv->cfg.index[i]) >= sizeof(rel))
            break;
        fd = open_beneath(srv->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
            continue;
        if (fstat(fd, st) == 0 && S_ISREG(st->st_mode)) {
            *name = srv->cfg.index[i];
            return fd;
        }
        close(fd);
    }
    errno = ENOENT;
    return -1;
fail:
    i = (size_t)errno;
    close(fd);
    errno = (int)i;
    return -1;
}

void http_file_etag(const struct stat *st, const char *tag, char out[64])
{
    /* inode, size and mtime to the nanosecond: a rewrite within the same
     * second, even to the same size, gets a new tag */
    snprintf(out, 64, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "%s\"", (uint64_t)st->st_ino,
             (uint64_t)st->st_size,
             (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec, tag);
}

int http_open_regular(struct http_server *srv, const char *rel, struct stat *st)
{
    int fd = open_beneath(srv->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

    if (fd < 0)
        return -1;
    if (fstat(fd, st) == 0 && S_ISREG(st->st_mode))
        return fd;
    close(fd);
    errno = ENOENT;
    return -1;
}

int http_file_open(struct http_server *srv, const char *path, struct http_file *f,
                   bool *redirect)
{
    const char *name;

    f->fd = open_file(srv, path, &f->st, redirect, &name);
    if (f->fd < 0)
        return -1;
    f->type = mime_type(name);
    f->index = name != path ? name : NULL;
    http_file_etag(&f->st, "", f->etag);
    http_date(f->st.st_mtime, f->lastmod);
    return 0;
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
    if (not_modified(req, f->etag, f->st.st_mtime)) {
        rc = head_fields(req, f, vary) == 0 ? async_http_respond(req, 304, NULL, NULL, 0) : -1;
        goto done;
    }
    /* a range counts bytes of the representation sent: the encoded ones */
    range = strcmp(async_http_method(req), "GET") == 0 ? async_http_header(req, "range") : NULL;
    if (range != NULL && if_range_holds(req, f->etag, f->lastmod))
        rc = byte_range(range, size, &off, &len);
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
