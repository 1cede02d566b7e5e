/* daemon/logsink.c — log lines leave the workers: each is copied into the
 * queue of its destination, and one writer thread (logwriter.c) does every
 * write(2).
 *
 * Why.  A worker that write(2)s a log line itself stops serving while the
 * write waits: on a full pipe nobody reads (stderr under a stuck reader),
 * a stalled disk, a slow NFS server — and every worker that logs joins it.
 * Here a worker only copies the line into memory, and when the memory set
 * aside for a destination is full the line is dropped and counted, never
 * waited for.
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
 * once, with whatever is queued before it.  A call's bytes never straddle
 * two chunks, so a line is never split between two write(2)s — nor, across
 * a reopen, between two files.
 *
 * Sizes, locks and memory orders: logsink_int.h. */
#include "logsink_int.h"

#include <errno.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP_MARGIN_MS 1000     /* past the stop bound: one slow write(2) to a file */

struct asyncd_sinks asyncd_sinks = {.lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

/* The daemon's own lines; modules that log to "stderr" share it. */
struct asyncd_sink asyncd_err_sink = {.dest = "stderr", .is_stderr = true, .stopped = true,
                                      .lock = PTHREAD_MUTEX_INITIALIZER};
static asyncd_logfile daemon_err = {.sink = &asyncd_err_sink};

static void wake(void)
{
    uint64_t one = 1;

    if (asyncd_sinks.efd >= 0)
        (void)!write(asyncd_sinks.efd, &one, sizeof(one));
}

bool asyncd_logsink_kick(void)
{
    /* started is read without its lock: a signal handler may take none,
     * and a wrong guess only costs a wasted eventfd write or a flush. */
    if (!asyncd_sinks.started || asyncd_sinks.efd < 0)
        return false;
    atomic_store(&asyncd_sinks.urgent, true);
    wake();
    return true;
}

/* ---- appending (any thread) ---- */

/* A chunk to fill, or NULL when the sink holds all it may: SINK_CHUNKS,
 * one more for a daemon line.  Under s->lock. */
static struct asyncd_chunk *take_chunk(struct asyncd_sink *s, bool reserve)
{
    struct asyncd_chunk *c = s->spare;

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

/* urgent: the daemon's own line.  It is written at once rather than
 * within FLUSH_MS (they are few, and journald stamps a line when it
 * arrives), and it may take one chunk more than the sink's share: modules
 * may flood stderr with access-log lines, and then the daemon's lines
 * still have room.  Module lines stay out of that reserve chunk: they
 * take a chunk of their own or are dropped. */
static bool append(asyncd_logfile *f, const char *line, size_t len, bool urgent)
{
    struct asyncd_sink *s;
    struct asyncd_chunk *c;
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
        struct asyncd_chunk *fresh;

        if (c != NULL && c->len + need > CHUNK_BYTES) { /* full: to the writer */
            asyncd_logsink_queue(s, c);
            kick = true;
            s->cur = c = NULL;
        }
        if ((fresh = take_chunk(s, urgent)) != NULL) {
            if (c != NULL) /* the reserve, given back for writing */
                asyncd_logsink_queue(s, c);
            kick |= c != NULL;
            s->cur = fresh;
            s->cur_reserve = s->in_use > SINK_CHUNKS;
        }
        c = fresh;
    }
    if (need > CHUNK_BYTES || c == NULL) {
        uint64_t lines = asyncd_logsink_count_lines(line, len);

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
        atomic_store(&asyncd_sinks.urgent, true);
    if (kick || urgent || (first && atomic_load(&asyncd_sinks.unarmed)))
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
    atomic_store(&asyncd_sinks.reopen, true);
    wake();
}

/* ---- opening and closing (any thread) ---- */

/* A path sink's memory and descriptor (the stderr sink is static). */
void asyncd_logsink_free_sink(struct asyncd_sink *s)
{
    asyncd_logsink_free_chunks(s->cur);
    asyncd_logsink_free_chunks(s->full);
    asyncd_logsink_free_chunks(s->spare);
    asyncd_logsink_free_chunks(s->writing);
    if (s->own_fd)
        close(s->fd);
    pthread_mutex_destroy(&s->lock);
    free(s->dest);
    free(s);
}

/* A new path sink with its file open, not yet published; NULL and errno. */
static struct asyncd_sink *sink_new(const char *dest)
{
    struct asyncd_sink *s = calloc(1, sizeof(*s));
    int err;

    if (s == NULL)
        return NULL;
    s->dest = strdup(dest);
    if (s->dest == NULL) {
        free(s);
        return NULL;
    }
    s->fd = asyncd_logsink_open_path(dest);
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

/* Under asyncd_sinks.lock.  A closing sink (refs 0) is found too, and revived:
 * its queued lines stay ahead of the new ones. */
static struct asyncd_sink *find(const char *dest)
{
    struct asyncd_sink *s;

    for (s = asyncd_sinks.head; s != NULL; s = s->next)
        if (strcmp(s->dest, dest) == 0)
            return s;
    return NULL;
}

asyncd_logfile *asyncd_logsink_open(const char *dest)
{
    asyncd_logfile *f;
    struct asyncd_sink *s, *made = NULL;
    int err = 0;

    if (dest == NULL || dest[0] == '\0') {
        errno = EINVAL;
        return NULL;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&asyncd_sinks.lock);
        if (!asyncd_sinks.started || asyncd_sinks.stop) {
            pthread_mutex_unlock(&asyncd_sinks.lock);
            err = EAGAIN;
            break;
        }
        s = find(dest);
        if (s == NULL && made != NULL) {
            made->next = asyncd_sinks.head;
            asyncd_sinks.head = s = made;
            made = NULL;
        }
        if (s != NULL) {
            s->refs++;
            pthread_mutex_unlock(&asyncd_sinks.lock);
            break;
        }
        pthread_mutex_unlock(&asyncd_sinks.lock);
        /* open(2) outside the lock; another opener may win meanwhile */
        if ((made = sink_new(dest)) == NULL) {
            err = errno;
            break;
        }
    }
    if (made != NULL)
        asyncd_logsink_free_sink(made);
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
    struct asyncd_sink *s;
    bool last, orphan;

    if (f == NULL || f == &daemon_err)
        return;
    s = f->sink;
    pthread_mutex_lock(&asyncd_sinks.lock);
    last = --s->refs == 0;
    orphan = last && !asyncd_sinks.started && !s->is_stderr; /* outlived the writer */
    pthread_mutex_unlock(&asyncd_sinks.lock);
    if (orphan)
        asyncd_logsink_free_sink(s);
    else if (last)
        wake(); /* to write what it holds and free it */
    free(f);
}

/* ---- start and stop (the main thread) ---- */

/* How the writer reaches stderr without ever blocking on it. */
static void stderr_target(struct asyncd_sink *s)
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

    asyncd_sinks.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (asyncd_sinks.efd < 0) {
        once_err = errno;
        return;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&asyncd_sinks.done_cv, &ca);
    pthread_condattr_destroy(&ca);
}

int asyncd_logsink_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct asyncd_sink *s = &asyncd_err_sink;
    int err;

    pthread_once(&once, make_once);
    if (asyncd_sinks.efd < 0) {
        errno = once_err;
        return -1;
    }
    pthread_mutex_lock(&asyncd_sinks.lock);
    if (asyncd_sinks.started || asyncd_sinks.abandoned) {
        pthread_mutex_unlock(&asyncd_sinks.lock);
        if (!asyncd_sinks.started) { /* the stuck one would race a new one */
            errno = EBUSY;
            return -1;
        }
        return 0;
    }
    pthread_mutex_unlock(&asyncd_sinks.lock);
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
    atomic_store(&asyncd_sinks.reopen, false);
    atomic_store(&asyncd_sinks.unarmed, true);
    pthread_mutex_lock(&asyncd_sinks.lock);
    s->next = NULL;
    asyncd_sinks.head = s;
    asyncd_sinks.stop = asyncd_sinks.done = false;
    asyncd_sinks.started = true;
    pthread_mutex_unlock(&asyncd_sinks.lock);
    err = pthread_create(&asyncd_sinks.thread, NULL, asyncd_logwriter_main, NULL);
    if (err != 0) {
        pthread_mutex_lock(&asyncd_sinks.lock);
        asyncd_sinks.started = false;
        asyncd_sinks.head = NULL;
        pthread_mutex_unlock(&asyncd_sinks.lock);
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

    pthread_mutex_lock(&asyncd_sinks.lock);
    if (!asyncd_sinks.started || asyncd_sinks.stop) {
        pthread_mutex_unlock(&asyncd_sinks.lock);
        return;
    }
    asyncd_sinks.stop = true;
    asyncd_sinks.stop_by = asyncd_logsink_now_ms() + ms;
    pthread_mutex_unlock(&asyncd_sinks.lock);
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
    pthread_mutex_lock(&asyncd_sinks.lock);
    while (!asyncd_sinks.done &&
           pthread_cond_timedwait(&asyncd_sinks.done_cv, &asyncd_sinks.lock, &until) == 0)
        ;
    done = asyncd_sinks.done;
    asyncd_sinks.started = false;
    asyncd_sinks.abandoned = !done;
    pthread_mutex_unlock(&asyncd_sinks.lock);
    if (!done) { /* stuck in a write(2): the process exits without it */
        asyncd_logwriter_say("log: the log writer is stuck in a write; exiting without it");
        return;
    }
    pthread_join(asyncd_sinks.thread, NULL);
}
