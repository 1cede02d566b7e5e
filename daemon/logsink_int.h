/* daemon/logsink_int.h — what the two halves of the log sinks share: the
 * appending side (logsink.c, any thread) and the writer thread
 * (logwriter.c).  Nothing else includes it.
 *
 * Sizing.  CHUNK_BYTES is 64 KiB: one write(2) per ~750 access-log lines
 * of ~87 bytes (curl's, with a short User-Agent).  SINK_CHUNKS is 8, so a
 * sink queues at most 512 KiB, allocated as it is needed and kept once
 * allocated (the daemon's stderr sink one chunk more, see append in
 * logsink.c): what a stalled destination may cost in memory, and how long
 * a stall is absorbed before lines are dropped.  With its reader stopped,
 * stderr (a 4 KiB pipe and the sink) took 5,770 such lines before it
 * dropped any (test_logging's set-up, 2026-12): about 50 ms of the ~120k
 * requests/s of README's /hello benchmark.
 *
 * Locks, and who touches what:
 *   asyncd_sinks.lock
 *               the sink list (asyncd_sinks.head, s->next), s->refs, and
 *               asyncd_sinks.started, stop, stop_by, done, abandoned.
 *               Taken by open and close (any thread) and by the writer.
 *   s->lock     s->cur, s->cur_reserve, s->full, s->spare, s->in_use,
 *               s->stopped and s->dropped.  Taken by appenders (any
 *               thread) and by the writer when it takes chunks or gives
 *               them back.
 *               Order: asyncd_sinks.lock, then s->lock; nothing is taken
 *               inside s->lock, and no lock is held across a write(2).
 *   the writer  alone touches s->fd, s->writing, s->woff and the reporting
 *               fields once the opener has published the sink (under
 *               asyncd_sinks.lock), and is alone in removing and freeing
 *               sinks: it may walk the list from a head it read under the
 *               lock without holding it (openers only push at the head).
 *   asyncd_sinks.unarmed (seq_cst): true while the writer has no flush
 *               deadline.  The writer stores true, then looks at every cur
 *               under its lock; an appender that put a line into an empty
 *               chunk loads it after unlocking and wakes the writer when it
 *               is true.  The sink lock orders the two, so either the
 *               writer sees the line or the appender sees the flag
 *               (Dekker's pattern).
 *   asyncd_sinks.urgent, .reopen (seq_cst): requests to the writer, set
 *               before the eventfd write that wakes it and taken with an
 *               exchange at the top of its loop, so none is lost.
 *   f->dropped  relaxed atomic: added to under s->lock, read anywhere.
 *   the daemon's stderr sink (asyncd_err_sink) is static and never freed,
 *   so the daemon's own log lines may race a stop: they find it stopped
 *   and go directly to fd 2. */
#ifndef ASYNCD_LOGSINK_INT_H
#define ASYNCD_LOGSINK_INT_H

#include "logsink.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_BYTES (64 * 1024)
#define SINK_CHUNKS 8
#define FLUSH_MS 1000           /* the longest a line waits for the writer */
#define REPORT_MS 1000          /* at most one drop report per sink per second */

struct asyncd_chunk {
    struct asyncd_chunk *next;
    size_t len;                 /* bytes filled */
    char data[CHUNK_BYTES];
};

struct asyncd_sink {
    char *dest;                 /* "stderr" or the path as given; set before publication */
    bool is_stderr;
    /* asyncd_sinks.lock */
    struct asyncd_sink *next;
    unsigned refs;              /* open handles; 0: written out, then freed */
    /* s->lock */
    pthread_mutex_t lock;
    struct asyncd_chunk *cur;   /* being filled; NULL until the next line */
    struct asyncd_chunk *full, **full_tail;
    struct asyncd_chunk *spare;
    unsigned in_use;            /* chunks out of spare: cur, full and writing */
    bool cur_reserve;           /* cur is the daemon's reserve (see append) */
    bool stopped;               /* the writer is gone: lines are refused */
    uint64_t dropped;           /* lines dropped, all handles */
    /* the writer only */
    int fd;
    bool own_fd;                /* opened here (closed here) */
    bool use_send;              /* a socket: send(MSG_DONTWAIT) */
    bool may_block;             /* stderr kept blocking (no /proc): see say */
    bool blocked;               /* the last write would have blocked */
    bool reopen_wanted;         /* a reopen waits for a chunk to finish */
    struct asyncd_chunk *writing, **writing_tail;
    size_t woff;                /* bytes of writing written */
    uint64_t reported;          /* dropped already reported */
    int64_t report_at;          /* no report before */
    uint64_t lost;              /* lines lost to write errors, unreported */
    int lost_errno;
};

struct async_module_logfile {
    const struct async_module_host_api *api; /* first: set by the daemon (host.c) */
    struct asyncd_sink *sink;
    _Atomic uint64_t dropped;
};

struct asyncd_sinks {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;     /* the writer finished (monotonic clock) */
    struct asyncd_sink *head;
    bool started, stop, done;
    bool abandoned;             /* a stop gave up on a stuck writer: no restart */
    int64_t stop_by;
    pthread_t thread;
    int efd;                    /* wakes the writer */
    _Atomic bool unarmed;
    _Atomic bool urgent;        /* a daemon line waits: write the partial chunks now */
    _Atomic bool reopen;
};

extern struct asyncd_sinks asyncd_sinks;
extern struct asyncd_sink asyncd_err_sink;

/* Frees a sink nobody holds: its chunks, descriptor and name. */
void asyncd_logsink_free_sink(struct asyncd_sink *s);

/* The writer thread (logwriter.c). */
void *asyncd_logwriter_main(void *arg);
/* One line on stderr in one non-blocking try, for when lines are refused
 * or the writer is stuck (asyncd_log would queue it); silent on a stderr
 * that may block. */
void asyncd_logwriter_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline int64_t asyncd_logsink_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Lines in p[0..n): an unterminated tail counts as one. */
static inline uint64_t asyncd_logsink_count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    const char *nl;

    while (n > 0 && (nl = memchr(p, '\n', n)) != NULL) {
        lines++;
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    return lines + (n > 0);
}

/* Appends c to s's queue of chunks to write.  Under s->lock. */
static inline void asyncd_logsink_queue(struct asyncd_sink *s, struct asyncd_chunk *c)
{
    c->next = NULL;
    *s->full_tail = c;
    s->full_tail = &c->next;
}

static inline void asyncd_logsink_free_chunks(struct asyncd_chunk *c)
{
    struct asyncd_chunk *next;

    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
}

/* A path opened for appending, never blocking on a FIFO's reader (a
 * regular file ignores O_NONBLOCK, a FIFO honours it). */
static inline int asyncd_logsink_open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
}

#endif
