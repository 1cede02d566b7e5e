/* daemon/logsink.c — queued log lines, and the one thread that writes them.
 *
 * Why.  A worker that write(2)s a log line itself stops serving while the
 * write waits: on a full pipe nobody reads (stderr under a stuck reader),
 * a stalled disk, a slow NFS server — and every worker that logs joins it.
 * Here a worker only copies the line into memory; one writer thread does
 * every write(2), and when the memory set aside for a destination is full
 * the line is dropped and counted, never waited for.
 *
 * Shape.  One sink per destination ("stderr" or a path), shared by all its
 * users.  A sink owns up to SINK_CHUNKS chunks of CHUNK_BYTES: the one
 * being filled (cur), a queue of full ones (full), those the writer took
 * and is writing (writing), and spares.  Appending: lock the sink, memcpy
 * into cur.  When cur fills it joins the queue and the writer is woken (an
 * eventfd: one system call per 64 KiB, none per line).  Otherwise the
 * writer wakes on its own FLUSH_MS after it first saw an unwritten line and
 * takes the partly filled chunks too, so no line waits much more than a
 * second; with nothing to write it sleeps without a timeout.  The daemon's
 * own lines (asyncd_logsink_stderr) are few and journald stamps a line
 * when it arrives, so each of those wakes the writer and is written at
 * once, with whatever is queued before it.  A call's
 * bytes never straddle two chunks, so a line is never split between two
 * write(2)s — nor, across a reopen, between two files.
 *
 * The writer never blocks on a reader: paths are opened O_NONBLOCK (a
 * regular file ignores it, a FIFO honours it), stderr is written with
 * send(MSG_DONTWAIT) when it is a socket (journald) and through a
 * non-blocking descriptor of its own when it is a pipe or a terminal
 * (/proc/self/fd/2 opens a new open file description of the same pipe, so
 * the flag does not leak to whoever shares ours).  A write that would
 * block leaves the chunk where it is and the writer polls that descriptor
 * while it serves the other sinks.  Only a regular file can hold it, for as
 * long as the disk takes.
 *
 * Sizing.  CHUNK_BYTES is 64 KiB: one write(2) per ~750 access-log lines
 * of ~87 bytes (curl's, with a short User-Agent).  SINK_CHUNKS is 8, so a
 * sink queues at most 512 KiB, allocated as it is needed and kept once
 * allocated (the daemon's stderr sink one chunk more, see append): what a
 * stalled destination may cost in memory, and how long a stall is
 * absorbed before lines are dropped.  With its reader stopped, stderr (a
 * 4 KiB pipe and the sink) took 5,770 such lines before it dropped any
 * (test_logging's set-up, 2026-12): about 50 ms of the ~120k requests/s
 * of README's /hello benchmark.
 *
 * Locks, and who touches what:
 *   sinks.lock  the sink list (sinks.head, s->next), s->refs, sinks.started,
 *               sinks.stop, sinks.stop_by, sinks.done, sinks.abandoned.
 *               Taken by open and close (any thread) and by the writer.
 *   s->lock     s->cur, s->cur_reserve, s->full, s->spare, s->in_use,
 *               s->stopped and s->dropped.  Taken by appenders (any thread) and by the
 *               writer when it takes chunks or gives them back.
 *               Order: sinks.lock, then s->lock; nothing is taken inside
 *               s->lock, and no lock is held across a write(2).
 *   the writer  alone touches s->fd, s->writing, s->woff and the reporting
 *               fields once the opener has published the sink (under
 *               sinks.lock), and is alone in removing and freeing sinks:
 *               it may walk the list from a head it read under sinks.lock
 *               without holding the lock (openers only push at the head).
 *   sinks.unarmed (seq_cst): true while the writer has no flush deadline.
 *               The writer stores true, then looks at every cur under its
 *               lock; an appender that put a line into an empty chunk loads
 *               it after unlocking and wakes the writer when it is true.
 *               The sink lock orders the two, so either the writer sees the
 *               line or the appender sees the flag (Dekker's pattern).
 *   sinks.urgent, sinks.reopen (seq_cst): requests to the writer, set
 *               before the eventfd write that wakes it and taken with an
 *               exchange at the top of its loop, so none is lost.
 *   f->dropped  relaxed atomic: added to under s->lock, read anywhere.
 *   the stderr sink is static and never freed, so the daemon's own log
 *   lines may race a stop: they find it stopped and go directly to fd 2. */
#include "logsink.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (64 * 1024)
#define SINK_CHUNKS 8
#define FLUSH_MS 1000           /* the longest a line waits for the writer */
#define REPORT_MS 1000          /* at most one drop report per sink per second */
#define STOP_MARGIN_MS 1000     /* past the stop bound: one slow write(2) to a file */

struct chunk {
    struct chunk *next;
    size_t len;                 /* bytes filled */
    char data[CHUNK_BYTES];
};

struct sink {
    char *dest;                 /* "stderr" or the path as given; set before publication */
    bool is_stderr;
    /* sinks.lock */
    struct sink *next;
    unsigned refs;              /* open handles; 0: written out, then freed */
    /* s->lock */
    pthread_mutex_t lock;
    struct chunk *cur;          /* being filled; NULL until the next line */
    struct chunk *full, **full_tail;
    struct chunk *spare;
    unsigned in_use;            /* chunks out of spare: cur, full and writing */
    bool cur_reserve;           /* cur is the daemon's reserve (see append) */
    bool stopped;               /* the writer is gone: lines are refused */
    uint64_t dropped;           /* lines dropped, all handles */
    /* the writer only */
    int fd;
    bool own_fd;                /* opened here (closed here) */
    bool use_send;              /* a socket: send(MSG_DONTWAIT) */
    bool may_block;             /* stderr kept blocking (no /proc): see say() */
    bool blocked;               /* the last write would have blocked */
    bool reopen_wanted;         /* a reopen waits for a chunk to finish */
    struct chunk *writing, **writing_tail;
    size_t woff;                /* bytes of writing written */
    uint64_t reported;          /* dropped already reported */
    int64_t report_at;          /* no report before */
    uint64_t lost;              /* lines lost to write errors, unreported */
    int lost_errno;
};

struct async_module_logfile {
    struct sink *sink;
    _Atomic uint64_t dropped;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;     /* the writer finished (monotonic clock) */
    struct sink *head;
    bool started, stop, done;
    bool abandoned;             /* a stop gave up on a stuck writer: no restart */
    int64_t stop_by;
    pthread_t thread;
    int efd;                    /* wakes the writer */
    _Atomic bool unarmed;
    _Atomic bool urgent;        /* a daemon line waits: write the partial chunks now */
    _Atomic bool reopen;
} sinks = {.lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

static struct sink err_sink = {.dest = "stderr", .is_stderr = true, .stopped = true,
                               .lock = PTHREAD_MUTEX_INITIALIZER};
static asyncd_logfile daemon_err = {.sink = &err_sink};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(void)
{
    uint64_t one = 1;

    if (sinks.efd >= 0)
        (void)!write(sinks.efd, &one, sizeof(one));
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    const char *nl;

    while (n > 0 && (nl = memchr(p, '\n', n)) != NULL) {
        lines++;
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    return lines + (n > 0); /* an unterminated tail is a line too */
}

/* ---- appending (any thread) ---- */

/* A chunk to fill, or NULL when the sink holds all it may: SINK_CHUNKS,
 * one more for a daemon line.  Under s->lock. */
static struct chunk *take_chunk(struct sink *s, bool reserve)
{
    struct chunk *c = s->spare;

    if (s->in_use >= SINK_CHUNKS + (reserve ? 1u : 0u))
        return NULL;
    if (c != NULL)
        s->spare = c->next;
    else if ((c = malloc(sizeof(*c))) == NULL)
        return NULL;
    s->in_use++;
    c->next = NULL;
    c->len = 0;
    return c;
}

/* Under s->lock. */
static void queue_full(struct sink *s, struct chunk *c)
{
    c->next = NULL;
    *s->full_tail = c;
    s->full_tail = &c->next;
}

/* urgent: the daemon's own line.  It is written at once rather than
 * within FLUSH_MS (they are few, and journald stamps a line when it
 * arrives), and it may take one chunk more than the sink's share: modules
 * may flood stderr with access-log lines, and then the daemon's lines
 * still have room.  Module lines stay out of that reserve chunk: they
 * take a chunk of their own or are dropped. */
static bool append(asyncd_logfile *f, const char *line, size_t len, bool urgent)
{
    struct sink *s;
    struct chunk *c;
    bool add_nl, kick = false, first;
    size_t need;

    if (f == NULL || line == NULL || len == 0)
        return true;
    s = f->sink;
    add_nl = line[len - 1] != '\n';
    need = len + add_nl;
    pthread_mutex_lock(&s->lock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    c = s->cur;
    if (need <= CHUNK_BYTES &&
        (c == NULL || c->len + need > CHUNK_BYTES || (s->cur_reserve && !urgent))) {
        struct chunk *fresh;

        if (c != NULL && c->len + need > CHUNK_BYTES) { /* full: to the writer */
            queue_full(s, c);
            kick = true;
            s->cur = c = NULL;
        }
        if ((fresh = take_chunk(s, urgent)) != NULL) {
            if (c != NULL) /* the reserve, given back for writing */
                queue_full(s, c);
            kick |= c != NULL;
            s->cur = fresh;
            s->cur_reserve = s->in_use > SINK_CHUNKS;
        }
        c = fresh;
    }
    if (need > CHUNK_BYTES || c == NULL) {
        uint64_t lines = count_lines(line, len);

        s->dropped += lines;
        atomic_fetch_add_explicit(&f->dropped, lines, memory_order_relaxed);
        pthread_mutex_unlock(&s->lock);
        if (kick)
            wake();
        return true;
    }
    first = c->len == 0;
    memcpy(c->data + c->len, line, len);
    c->len += len;
    if (add_nl)
        c->data[c->len++] = '\n';
    pthread_mutex_unlock(&s->lock);
    if (urgent)
        atomic_store(&sinks.urgent, true);
    if (kick || urgent || (first && atomic_load(&sinks.unarmed)))
        wake();
    return true;
}

bool asyncd_logsink_write(asyncd_logfile *f, const char *line, size_t len)
{
    return append(f, line, len, false);
}

bool asyncd_logsink_stderr(const char *line, size_t len)
{
    return append(&daemon_err, line, len, true);
}

uint64_t asyncd_logsink_dropped(const asyncd_logfile *f)
{
    return f != NULL ? atomic_load_explicit(&f->dropped, memory_order_relaxed) : 0;
}

void asyncd_logsink_reopen(void)
{
    atomic_store(&sinks.reopen, true);
    wake();
}

/* ---- opening and closing (any thread) ---- */

static void free_chunks(struct chunk *c)
{
    struct chunk *next;

    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
}

/* A path sink's memory and descriptor (the stderr sink is static). */
static void sink_free(struct sink *s)
{
    free_chunks(s->cur);
    free_chunks(s->full);
    free_chunks(s->spare);
    free_chunks(s->writing);
    if (s->own_fd)
        close(s->fd);
    pthread_mutex_destroy(&s->lock);
    free(s->dest);
    free(s);
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
}

/* A new path sink with its file open, not yet published; NULL and errno. */
static struct sink *sink_new(const char *dest)
{
    struct sink *s = calloc(1, sizeof(*s));
    int err;

    if (s == NULL)
        return NULL;
    s->dest = strdup(dest);
    if (s->dest == NULL) {
        free(s);
        return NULL;
    }
    s->fd = open_path(dest);
    if (s->fd < 0) {
        err = errno;
        free(s->dest);
        free(s);
        errno = err;
        return NULL;
    }
    s->own_fd = true;
    pthread_mutex_init(&s->lock, NULL);
    s->full_tail = &s->full;
    s->writing_tail = &s->writing;
    return s;
}

/* Under sinks.lock.  A closing sink (refs 0) is found too, and revived:
 * its queued lines stay ahead of the new ones. */
static struct sink *find(const char *dest)
{
    struct sink *s;

    for (s = sinks.head; s != NULL; s = s->next)
        if (strcmp(s->dest, dest) == 0)
            return s;
    return NULL;
}

asyncd_logfile *asyncd_logsink_open(const char *dest)
{
    asyncd_logfile *f;
    struct sink *s, *made = NULL;
    int err = 0;

    if (dest == NULL || dest[0] == '\0') {
        errno = EINVAL;
        return NULL;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&sinks.lock);
        if (!sinks.started || sinks.stop) {
            pthread_mutex_unlock(&sinks.lock);
            err = EAGAIN;
            break;
        }
        s = find(dest);
        if (s == NULL && made != NULL) {
            made->next = sinks.head;
            sinks.head = s = made;
            made = NULL;
        }
        if (s != NULL) {
            s->refs++;
            pthread_mutex_unlock(&sinks.lock);
            break;
        }
        pthread_mutex_unlock(&sinks.lock);
        /* open(2) outside the lock; another opener may win meanwhile */
        if ((made = sink_new(dest)) == NULL) {
            err = errno;
            break;
        }
    }
    if (made != NULL)
        sink_free(made);
    if (err != 0) {
        free(f);
        errno = err;
        return NULL;
    }
    f->sink = s;
    return f;
}

void asyncd_logsink_close(asyncd_logfile *f)
{
    struct sink *s;
    bool last, orphan;

    if (f == NULL || f == &daemon_err)
        return;
    s = f->sink;
    pthread_mutex_lock(&sinks.lock);
    last = --s->refs == 0;
    orphan = last && !sinks.started && !s->is_stderr; /* outlived the writer */
    pthread_mutex_unlock(&sinks.lock);
    if (orphan)
        sink_free(s);
    else if (last)
        wake(); /* to write what it holds and free it */
    free(f);
}

/* ---- the writer thread ---- */

/* Takes every full chunk into s->writing, and the partly filled ones too
 * when sweep (or when the sink is closing), but only from a sink that has
 * written all it took before: a partly filled chunk could not leave any
 * sooner from behind a FIFO or pipe that blocks, and there it would hold
 * the daemon's reserve chunk (see append) hostage.  all (stopping): every
 * chunk of every sink.  Returns the list's head. */
static struct sink *collect(bool sweep, bool all)
{
    struct sink *s, *head;

    pthread_mutex_lock(&sinks.lock);
    for (s = sinks.head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if ((all || ((sweep || s->refs == 0) && s->writing == NULL)) && s->cur != NULL &&
            s->cur->len > 0) {
            queue_full(s, s->cur);
            s->cur = NULL;
            s->cur_reserve = false;
        }
        if (s->full != NULL) {
            *s->writing_tail = s->full;
            s->writing_tail = s->full_tail;
            s->full = NULL;
            s->full_tail = &s->full;
        }
        pthread_mutex_unlock(&s->lock);
    }
    head = sinks.head;
    pthread_mutex_unlock(&sinks.lock);
    return head;
}

static ssize_t put(const struct sink *s, const void *p, size_t n)
{
    if (s->use_send)
        return send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(s->fd, p, n);
}

/* Writes s->writing until it is empty or the descriptor would block. */
static void write_sink(struct sink *s)
{
    struct chunk *c;

    s->blocked = false;
    while ((c = s->writing) != NULL) {
        ssize_t n = put(s, c->data + s->woff, c->len - s->woff);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s->blocked = true;
            return;
        }
        if (n <= 0) { /* a full disk, a reader gone: these lines are lost */
            s->lost += count_lines(c->data + s->woff, c->len - s->woff);
            s->lost_errno = n < 0 ? errno : EIO;
            n = (ssize_t)(c->len - s->woff);
        }
        s->woff += (size_t)n;
        if (s->woff < c->len)
            continue;
        s->woff = 0;
        if ((s->writing = c->next) == NULL)
            s->writing_tail = &s->writing;
        pthread_mutex_lock(&s->lock);
        c->next = s->spare;
        s->spare = c;
        s->in_use--;
        pthread_mutex_unlock(&s->lock);
    }
}

/* Opens s's path anew and swaps the descriptor: true, or false (logged)
 * with the old descriptor kept.  Only between two chunks. */
static bool reopen_one(struct sink *s)
{
    int fd = open_path(s->dest);

    if (fd < 0) {
        asyncd_log(ASYNC_LOG_ERROR, "log: cannot reopen %s: %s; still writing to the old file",
                   s->dest, strerror(errno));
        return false;
    }
    close(s->fd);
    s->fd = fd;
    return true;
}

/* SIGUSR1: every path sink, once what was queued before is written. */
static void reopen_all(struct sink *head)
{
    unsigned done = 0, waiting = 0;
    struct sink *s;

    for (s = head; s != NULL; s = s->next) {
        if (s->is_stderr)
            continue;
        if (s->writing != NULL) { /* a FIFO whose reader is slow: after this chunk */
            s->reopen_wanted = true;
            waiting++;
        } else {
            done += reopen_one(s);
        }
    }
    if (waiting > 0)
        asyncd_log(ASYNC_LOG_INFO, "log: reopened %u file(s); %u more once their reader catches up",
                   done, waiting);
    else
        asyncd_log(ASYNC_LOG_INFO, "log: reopened %u file(s)", done);
}

/* Drop and loss reports for s, at most one per REPORT_MS; returns when it
 * wants to be called again for a report it held back (-1: no need).  The
 * drops of a file or a FIFO are told while they go on; stderr's once it
 * takes lines again (the report itself would be dropped before). */
static int64_t report(struct sink *s, int64_t now)
{
    uint64_t dropped;
    bool tell;

    pthread_mutex_lock(&s->lock);
    dropped = s->dropped;
    tell = dropped > s->reported && (!s->is_stderr || s->in_use < SINK_CHUNKS);
    pthread_mutex_unlock(&s->lock);
    if (s->lost > 0 && s->is_stderr)
        s->lost = 0; /* nowhere to say it: its report would be lost too */
    if (!tell && s->lost == 0)
        return -1;
    if (now < s->report_at)
        return s->report_at;
    if (tell) {
        asyncd_log(ASYNC_LOG_WARNING, "log: dropped %" PRIu64 " line(s) to %s: queue full",
                   dropped - s->reported, s->dest);
        s->reported = dropped;
    }
    if (s->lost > 0) {
        asyncd_log(ASYNC_LOG_ERROR, "log: writing %s: %s; %" PRIu64 " line(s) lost", s->dest,
                   strerror(s->lost_errno), s->lost);
        s->lost = 0;
    }
    s->report_at = now + REPORT_MS;
    return -1;
}

/* Frees the sinks nobody holds once their lines are written; returns the
 * list's head, which may have been one of them. */
static struct sink *reap(int64_t now)
{
    struct sink *head;
    struct sink **ps, *s;

    pthread_mutex_lock(&sinks.lock);
    for (ps = &sinks.head; (s = *ps) != NULL;) {
        bool empty;

        if (s->refs > 0 || s->is_stderr || s->writing != NULL) {
            ps = &s->next;
            continue;
        }
        pthread_mutex_lock(&s->lock);
        empty = (s->cur == NULL || s->cur->len == 0) && s->full == NULL;
        pthread_mutex_unlock(&s->lock);
        if (!empty) {
            ps = &s->next;
            continue;
        }
        s->report_at = 0; /* its last word, whatever the rate */
        report(s, now);
        *ps = s->next;
        sink_free(s);
    }
    head = sinks.head;
    pthread_mutex_unlock(&sinks.lock);
    return head;
}

/* Lines are waiting in some sink (filled, queued or held): under the locks. */
static bool pending(bool *partial)
{
    struct sink *s;
    bool any = false;

    *partial = false;
    pthread_mutex_lock(&sinks.lock);
    for (s = sinks.head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if ((s->cur != NULL && s->cur->len > 0) || s->full != NULL)
            *partial = true;
        pthread_mutex_unlock(&s->lock);
        any |= s->writing != NULL;
    }
    pthread_mutex_unlock(&sinks.lock);
    return any || *partial;
}

/* Refuses lines from now on, everywhere; true if some came in since the
 * last collect (the writer goes round once more for them). */
static bool refuse_lines(void)
{
    struct sink *s;
    bool late = false;

    pthread_mutex_lock(&sinks.lock);
    for (s = sinks.head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->stopped = true;
        late |= (s->cur != NULL && s->cur->len > 0) || s->full != NULL;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&sinks.lock);
    return late;
}

/* Says so on stderr, in one non-blocking try, once lines are refused
 * (asyncd_log would come back here). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    size_t n;

    if (err_sink.may_block) /* the stop must not hang where the writer did */
        return;
    va_start(ap, fmt);
    n = asyncd_log_format(line, sizeof(line), ASYNC_LOG_ERROR, "asyncd", fmt, ap);
    va_end(ap);
    (void)!put(&err_sink, line, n);
}

/* The stop bound passed: count and name what stays unwritten. */
static void give_up(struct sink *head)
{
    struct sink *s;
    struct chunk *c;

    for (s = head; s != NULL; s = s->next) {
        uint64_t lines = 0;

        for (c = s->writing; c != NULL; c = c->next)
            lines += count_lines(c->data + (c == s->writing ? s->woff : 0),
                                 c->len - (c == s->writing ? s->woff : 0));
        for (c = s->full; c != NULL; c = c->next) /* refused from now on: no lock needed */
            lines += count_lines(c->data, c->len);
        if (s->cur != NULL)
            lines += count_lines(s->cur->data, s->cur->len);
        if (lines > 0)
            say("log: exiting with %" PRIu64 " line(s) to %s unwritten (nobody reads it?)",
                lines, s->dest);
    }
}

/* After the last write: every chunk and descriptor goes; sinks still
 * held by a handle stay (stopped) for asyncd_logsink_close to free. */
static void release_all(void)
{
    struct sink *s, *next;

    pthread_mutex_lock(&sinks.lock);
    for (s = sinks.head; s != NULL; s = next) {
        next = s->next;
        if (s->is_stderr) {
            pthread_mutex_lock(&s->lock);
            free_chunks(s->cur);
            free_chunks(s->full);
            free_chunks(s->spare);
            free_chunks(s->writing);
            s->cur = s->full = s->spare = s->writing = NULL;
            s->in_use = 0;
            s->cur_reserve = false;
            pthread_mutex_unlock(&s->lock);
            if (s->own_fd)
                close(s->fd);
            s->own_fd = false;
            s->fd = STDERR_FILENO;
        } else if (s->refs == 0) {
            sink_free(s);
        } else {
            free_chunks(s->writing);
            s->writing = NULL;
            s->next = NULL;
        }
    }
    sinks.head = NULL;
    pthread_mutex_unlock(&sinks.lock);
}

/* The poll set: the wake-up eventfd, then every blocked sink. */
static struct pollfd *poll_set(struct sink *head, struct pollfd *pfd, size_t *cap, nfds_t *n)
{
    struct sink *s;

    *n = 1;
    for (s = head; s != NULL; s = s->next) {
        if (!s->blocked)
            continue;
        if (*n == *cap) {
            struct pollfd *grown = realloc(pfd, sizeof(*pfd) * *cap * 2);

            if (grown == NULL)
                break; /* the timeout below brings the writer back */
            pfd = grown;
            *cap *= 2;
        }
        pfd[(*n)++] = (struct pollfd){.fd = s->fd, .events = POLLOUT};
    }
    pfd[0] = (struct pollfd){.fd = sinks.efd, .events = POLLIN};
    return pfd;
}

static void *writer_main(void *arg)
{
    size_t cap = 16;
    struct pollfd *pfd = malloc(sizeof(*pfd) * cap);
    int64_t flush_at = -1, stop_by = 0;
    bool refused = false, last_reports = false;
    uint64_t junk;

    (void)arg;
    if (pfd == NULL)
        cap = 0;
    for (;;) {
        int64_t now = now_ms(), at = -1;
        bool reopen = atomic_exchange(&sinks.reopen, false), stopping, partial, blocked = false;
        bool urgent = atomic_exchange(&sinks.urgent, false);
        struct sink *head, *s;
        nfds_t n;

        pthread_mutex_lock(&sinks.lock);
        stopping = sinks.stop;
        stop_by = sinks.stop_by;
        pthread_mutex_unlock(&sinks.lock);
        if (stopping || reopen || urgent || (flush_at >= 0 && now >= flush_at)) {
            head = collect(true, stopping);
            flush_at = -1;
        } else {
            head = collect(false, false);
        }
        for (s = head; s != NULL; s = s->next) {
            write_sink(s);
            if (s->reopen_wanted && s->writing == NULL && !stopping) {
                s->reopen_wanted = false;
                if (reopen_one(s))
                    asyncd_log(ASYNC_LOG_INFO, "log: reopened %s", s->dest);
            }
            blocked |= s->blocked;
        }
        if (reopen && !refused)
            reopen_all(head);
        if (stopping) {
            if (!refused && !last_reports) { /* drops not yet told, whatever the rate */
                for (s = head; s != NULL; s = s->next) {
                    s->report_at = 0;
                    report(s, now);
                }
                last_reports = true;
                continue; /* and written */
            }
            if (!pending(&partial)) {
                if (refused || !refuse_lines())
                    break;
                refused = true;
                continue; /* the lines that came in meanwhile, and no more */
            }
            if (now >= stop_by) {
                refuse_lines();
                give_up(head);
                break;
            }
            at = blocked ? stop_by : now; /* round again at once unless blocked */
        } else {
            for (s = head; s != NULL; s = s->next) {
                int64_t again = report(s, now);

                if (again >= 0 && (at < 0 || again < at))
                    at = again;
            }
            head = reap(now); /* head may be gone: the list as it is now */
            if (flush_at < 0) { /* arm: see the invariants at the top */
                atomic_store(&sinks.unarmed, true);
                pending(&partial);
                if (partial) {
                    flush_at = now_ms() + FLUSH_MS;
                    atomic_store(&sinks.unarmed, false);
                }
            }
            if (flush_at >= 0 && (at < 0 || flush_at < at))
                at = flush_at;
        }
        if (cap == 0) { /* no memory for a poll set: look again every 10 ms */
            poll(NULL, 0, 10);
            continue;
        }
        pfd = poll_set(head, pfd, &cap, &n);
        now = now_ms();
        if (poll(pfd, n, at < 0 ? -1 : at <= now ? 0 : (int)(at - now)) > 0 &&
            (pfd[0].revents & POLLIN))
            (void)!read(sinks.efd, &junk, sizeof(junk));
    }
    free(pfd);
    release_all();
    pthread_mutex_lock(&sinks.lock);
    sinks.done = true;
    pthread_cond_signal(&sinks.done_cv);
    pthread_mutex_unlock(&sinks.lock);
    return NULL;
}

/* ---- start and stop (the main thread) ---- */

/* How the writer reaches stderr without ever blocking on it. */
static void stderr_target(struct sink *s)
{
    struct stat st;
    int fd;

    s->fd = STDERR_FILENO;
    s->own_fd = false;
    s->use_send = false;
    s->may_block = true;
    if (fstat(STDERR_FILENO, &st) != 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        s->use_send = true;
    } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            return; /* fd 2 as it is, blocking (no /proc): the writer may hang on it */
        s->fd = fd;
        s->own_fd = true;
    }
    s->may_block = false; /* a socket, our non-blocking descriptor, or a file */
}

/* The wake-up eventfd and the done condition live as long as the process:
 * a late wake() (a handle closed as the writer stops) must never write to
 * a descriptor number that has been reused. */
static int once_err;
static void make_once(void)
{
    pthread_condattr_t ca;

    sinks.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sinks.efd < 0) {
        once_err = errno;
        return;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sinks.done_cv, &ca);
    pthread_condattr_destroy(&ca);
}

int asyncd_logsink_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct sink *s = &err_sink;
    int err;

    pthread_once(&once, make_once);
    if (sinks.efd < 0) {
        errno = once_err;
        return -1;
    }
    pthread_mutex_lock(&sinks.lock);
    if (sinks.started || sinks.abandoned) {
        pthread_mutex_unlock(&sinks.lock);
        if (!sinks.started) { /* the stuck one would race a new one */
            errno = EBUSY;
            return -1;
        }
        return 0;
    }
    pthread_mutex_unlock(&sinks.lock);
    /* The stderr sink, afresh (a previous writer left it empty, stopped). */
    stderr_target(s);
    s->full_tail = &s->full;
    s->writing_tail = &s->writing;
    s->woff = 0;
    s->blocked = s->reopen_wanted = false;
    s->refs = 1; /* the daemon's own handle */
    s->reported = s->dropped = s->lost = 0;
    s->report_at = 0;
    atomic_store(&daemon_err.dropped, 0);
    atomic_store(&sinks.reopen, false);
    atomic_store(&sinks.unarmed, true);
    pthread_mutex_lock(&sinks.lock);
    s->next = NULL;
    sinks.head = s;
    sinks.stop = sinks.done = false;
    sinks.started = true;
    pthread_mutex_unlock(&sinks.lock);
    err = pthread_create(&sinks.thread, NULL, writer_main, NULL);
    if (err != 0) {
        pthread_mutex_lock(&sinks.lock);
        sinks.started = false;
        sinks.head = NULL;
        pthread_mutex_unlock(&sinks.lock);
        if (s->own_fd)
            close(s->fd);
        s->own_fd = false;
        s->fd = STDERR_FILENO;
        errno = err;
        return -1;
    }
    /* Only now: a line taken before the thread exists could not be
     * written if it failed to start. */
    pthread_mutex_lock(&s->lock);
    s->stopped = false;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void asyncd_logsink_stop(int64_t ms)
{
    struct timespec until;
    bool done;

    pthread_mutex_lock(&sinks.lock);
    if (!sinks.started || sinks.stop) {
        pthread_mutex_unlock(&sinks.lock);
        return;
    }
    sinks.stop = true;
    sinks.stop_by = now_ms() + ms;
    pthread_mutex_unlock(&sinks.lock);
    wake();
    /* The writer keeps the bound itself; the margin covers a write(2) to
     * a regular file that takes long (a stalled disk). */
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (ms + STOP_MARGIN_MS) / 1000;
    until.tv_nsec += ((ms + STOP_MARGIN_MS) % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&sinks.lock);
    while (!sinks.done && pthread_cond_timedwait(&sinks.done_cv, &sinks.lock, &until) == 0)
        ;
    done = sinks.done;
    sinks.started = false;
    sinks.abandoned = !done;
    pthread_mutex_unlock(&sinks.lock);
    if (!done) { /* stuck in a write(2): the process exits without it */
        say("log: the log writer is stuck in a write; exiting without it");
        return;
    }
    pthread_join(sinks.thread, NULL);
}
