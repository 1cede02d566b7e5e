/* modules/http/access_log.c — the access logs, written by asyncd.
 *
 * Lines go to the daemon's log writer (async_module_logfile_*): a request
 * copies its line into the daemon's queue under one lock, as it used to
 * copy it into our own buffer, and never waits for the disk or a reader.
 * The daemon writes the queue from its own thread within a second, reopens
 * the file on SIGUSR1 (logrotate), and drops and counts lines rather than
 * wait when its queue is full; the status endpoint shows the count.
 *
 * Many sites, one engine.  The engine hands us lines in batches per
 * connection, and one connection may ask two sites (two Hosts); so each
 * line starts with its entry (ENTRY_MARK and two hex digits, put there by
 * http_log_begin) and http_log_write sends each run of lines to its
 * entry's file without the mark.  Lines are printable ASCII (log_line.c
 * escapes the rest), so the mark is never part of a line.  An entry is a
 * destination with a format; entries are never removed while the module
 * runs, so a line formatted before a reload still finds its file after.
 *
 * Threads: entries [0, n) are complete and read-only once n (release)
 * says so; only run and reconfigure (one at a time) add entries. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 255
#define ENTRY_MARK '\x1f'
#define MARK_LEN 3

struct entry {
    char *dest;
    char *format;
    async_module_logfile *file; /* shared by the entries of one dest */
    bool owns;                  /* the entry that opened file closes it */
};

struct http_log {
    async_module_host *host;
    _Atomic unsigned n;
    _Atomic int untagged;
    struct entry e[MAX_ENTRIES];
};

struct http_log *http_log_new(async_module_host *host)
{
    struct http_log *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->host = host;
    atomic_init(&l->untagged, -1);
    return l;
}

int http_log_entry(struct http_log *l, const char *dest, const char *format)
{
    unsigned i, n = atomic_load_explicit(&l->n, memory_order_relaxed);
    async_module_logfile *file = NULL;
    struct entry *e;

    for (i = 0; i < n; i++) {
        if (strcmp(l->e[i].dest, dest) != 0)
            continue;
        if (strcmp(l->e[i].format, format) == 0)
            return (int)i;
        file = l->e[i].file;
    }
    if (n == MAX_ENTRIES) {
        errno = ENOSPC;
        return -1;
    }
    e = &l->e[n];
    e->dest = strdup(dest);
    e->format = strdup(format);
    e->owns = file == NULL;
    if (e->dest == NULL || e->format == NULL ||
        (file == NULL && (file = async_module_logfile_open(l->host, dest)) == NULL)) {
        free(e->dest);
        free(e->format);
        return -1;
    }
    e->file = file;
    atomic_store_explicit(&l->n, n + 1, memory_order_release);
    return (int)n;
}

void http_log_set_untagged(struct http_log *l, int entry)
{
    atomic_store_explicit(&l->untagged, entry, memory_order_relaxed);
}

const char *http_log_begin(struct http_log *l, const struct http_server *site,
                           async_http_log_line *line)
{
    int i = site != NULL ? site->log_entry
                         : atomic_load_explicit(&l->untagged, memory_order_relaxed);
    char mark[MARK_LEN + 1];

    if (i < 0)
        return NULL;
    snprintf(mark, sizeof(mark), "%c%02x", ENTRY_MARK, (unsigned)i & 0xffu);
    async_http_log_add(line, mark, MARK_LEN);
    return l->e[i].format;
}

/* Sends p[0..n) (whole lines of one entry) to the entry's file. */
static void put(struct http_log *l, unsigned i, const char *p, size_t n)
{
    if (n > 0 && i < atomic_load_explicit(&l->n, memory_order_acquire))
        async_module_logfile_write(l->e[i].file, p, n);
}

static unsigned hex(char c)
{
    return c >= '0' && c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10) & 15;
}

void http_log_write(const char *lines, size_t len, void *log)
{
    struct http_log *l = log;
    const char *p = lines, *end = lines + len, *nl;
    char buf[8192];
    size_t used = 0, n;
    unsigned cur = 0, i;

    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (n < MARK_LEN || p[0] != ENTRY_MARK) { /* not ours: cannot happen */
            p += n;
            continue;
        }
        i = hex(p[1]) << 4 | hex(p[2]);
        p += MARK_LEN;
        n -= MARK_LEN;
        if (i != cur || used + n > sizeof(buf)) {
            put(l, cur, buf, used);
            used = 0;
            cur = i;
        }
        if (n > sizeof(buf)) {
            put(l, i, p, n); /* a very long line, whole on its own */
        } else {
            memcpy(buf + used, p, n);
            used += n;
        }
        p += n;
    }
    put(l, cur, buf, used);
}

uint64_t http_log_dropped(const struct http_log *l)
{
    unsigned i, n = atomic_load_explicit(&l->n, memory_order_acquire);
    uint64_t sum = 0;

    for (i = 0; i < n; i++)
        if (l->e[i].owns)
            sum += async_module_logfile_dropped(l->e[i].file);
    return sum;
}

void http_log_close(struct http_log *l)
{
    unsigned i, n;

    if (l == NULL)
        return;
    n = atomic_load(&l->n);
    for (i = 0; i < n; i++) {
        if (l->e[i].owns)
            async_module_logfile_close(l->e[i].file);
        free(l->e[i].dest);
        free(l->e[i].format);
    }
    free(l);
}
