/* modules/http/open.c — what a request path opens beneath the root.
 *
 * Every open resolves beneath root_fd: openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS), so neither "..", nor an absolute symlink, nor a
 * relative one that climbs out can leave the root; the kernel checks the
 * whole walk.  Kernels without openat2 (before 5.6) get a walk of our own,
 * one component at a time with O_NOFOLLOW: symlinks are then refused
 * outright.  Paths reach here decoded and normalised (no "." or "..").
 *
 * A path opens as a struct http_file: the file, or a directory's index
 * file, with its MIME type, ETag and Last-Modified.  http_file_opener is
 * how each worker's cache (file_cache.c, made in local.c) opens what it
 * does not hold; files.c serves what this opened, precompressed.c opens
 * the siblings with http_open_regular. */
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

static int open_path(void *srv, const char *path, struct http_file *f, bool *redirect)
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

const struct http_file_ops http_file_opener = {.open = open_path};
