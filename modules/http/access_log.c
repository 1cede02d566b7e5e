/* modules/http/access_log.c — the access log: lines gather in one buffer
 * and reach the file in large writes, when the buffer fills, once a second
 * (the module's flusher fiber) and at stop.
 *
 * Threads: any worker appends; the lock covers the buffer and the write
 * that empties it, so lines never interleave.  Writes go to a regular file
 * or to stderr (journald under systemd), a few per second at most. */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_BUF (64 * 1024)

struct http_log {
    int fd;
    bool own_fd;                /* opened here, closed here */
    pthread_mutex_t lock;
    size_t len;
    char buf[LOG_BUF];
};

struct http_log *http_log_open(const char *dest)
{
    struct http_log *l = malloc(sizeof(*l));

    if (l == NULL)
        return NULL;
    l->own_fd = strcmp(dest, "stderr") != 0;
    l->fd = l->own_fd ? open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
                      : STDERR_FILENO;
    if (l->fd < 0) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    l->len = 0;
    return l;
}

/* Under the lock. */
static void write_out(struct http_log *l)
{
    size_t off = 0;
    ssize_t n;

    while (off < l->len) {
        n = write(l->fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk loses log lines, never requests */
        off += (size_t)n;
    }
    l->len = 0;
}

void http_log_line(struct http_log *l, const char *line, size_t len)
{
    if (len > LOG_BUF)
        len = LOG_BUF;
    pthread_mutex_lock(&l->lock);
    if (l->len + len > LOG_BUF)
        write_out(l);
    memcpy(l->buf + l->len, line, len);
    l->len += len;
    pthread_mutex_unlock(&l->lock);
}

void http_log_flush(struct http_log *l)
{
    pthread_mutex_lock(&l->lock);
    write_out(l);
    pthread_mutex_unlock(&l->lock);
}

void http_log_close(struct http_log *l)
{
    if (l == NULL)
        return;
    http_log_flush(l);
    if (l->own_fd)
        close(l->fd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
