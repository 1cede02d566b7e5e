/* modules/http/access_log.c — the access log, written by asyncd.
 *
 * Lines go to the daemon's log writer (async_module_logfile_*): a request
 * copies its line into the daemon's queue under one lock, as it used to
 * copy it into our own buffer, and never waits for the disk or a reader.
 * The daemon writes the queue from its own thread within a second, reopens
 * the file on SIGUSR1 (logrotate), and drops and counts lines rather than
 * wait when its queue is full; the status endpoint shows the count. */
#include "http.h"

#include <stdlib.h>

struct http_log {
    async_module_logfile *file;
    const char *format;         /* the config's (it outlives the log) */
};

const char *http_log_style(const struct http_log *l)
{
    return l->format;
}

struct http_log *http_log_open(async_module_host *host, const char *dest, const char *format)
{
    struct http_log *l = malloc(sizeof(*l));

    if (l == NULL)
        return NULL;
    l->format = format != NULL ? format : "combined";
    l->file = async_module_logfile_open(host, dest);
    if (l->file == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void http_log_write(const char *lines, size_t len, void *log)
{
    struct http_log *l = log;

    async_module_logfile_write(l->file, lines, len);
}

uint64_t http_log_dropped(const struct http_log *l)
{
    return async_module_logfile_dropped(l->file);
}

void http_log_close(struct http_log *l)
{
    if (l == NULL)
        return;
    async_module_logfile_close(l->file);
    free(l);
}
