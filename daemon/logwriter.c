/* daemon/logwriter.c — the thread that writes every queued log line
 * (logsink.c queues them).
 *
 * It never blocks on a reader: paths are opened O_NONBLOCK (a regular file
 * ignores it, a FIFO honours it), stderr is written with
 * send(MSG_DONTWAIT) when it is a socket (journald) and through a
 * non-blocking descriptor of its own when it is a pipe or a terminal
 * (/proc/self/fd/2 opens a new open file description of the same pipe, so
 * the flag does not leak to whoever shares ours).  A write that would
 * block leaves the chunk where it is and the writer polls that descriptor
 * while it serves the other sinks.  Only a regular file can hold it, for
 * as long as the disk takes.
 *
 * Each round: take the chunks to write (collect), write them, reopen on
 * SIGUSR1, report drops and write errors (at most once a second per
 * sink), free the sinks nobody holds, then poll the wake-up eventfd and
 * the blocked descriptors until the next flush or report is due.  When
 * stopping: write everything, refuse new lines, and give up at the bound.
 *
 * Sizes, locks and memory orders: logsink_int.h. */
#include "logsink_int.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* Takes every full chunk into s->writing, and the partly filled ones too
 * when sweep (or when the sink is closing), but only from a sink that has
 * written all it took before: a partly filled chunk could not leave any
 * sooner from behind a FIFO or pipe that blocks, and there it would hold
 * the daemon's reserve chunk (see append in logsink.c) hostage.  all
 * (stopping): every chunk of every sink.  Returns the list's head. */
static struct asyncd_sink *collect(bool sweep, bool all)
{
    struct asyncd_sink *s, *head;

    pthread_mutex_lock(&asyncd_sinks.lock);
    for (s = asyncd_sinks.head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if ((all || ((sweep || s->refs == 0) && s->writing == NULL)) && s->cur != NULL &&
            s->cur->len > 0) {
            asyncd_logsink_queue(s, s->cur);
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
    head = asyncd_sinks.head;
    pthread_mutex_unlock(&asyncd_sinks.lock);
    return head;
}

static ssize_t put(const struct asyncd_sink *s, const void *p, size_t n)
{
    if (s->use_send)
        return send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(s->fd, p, n);
}

/* Writes s->writing until it is empty or the descriptor would block. */
static void write_sink(struct asyncd_sink *s)
{
    struct asyncd_chunk *c;

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
            s->lost += asyncd_logsink_count_lines(c->data + s->woff, c->len - s->woff);
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
static bool reopen_one(struct asyncd_sink *s)
{
    int fd = asyncd_logsink_open_path(s->dest);

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
static void reopen_all(struct asyncd_sink *head)
{
    unsigned done = 0, waiting = 0;
    struct asyncd_sink *s;

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
static int64_t report(struct asyncd_sink *s, int64_t now)
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
static struct asyncd_sink *reap(int64_t now)
{
    struct asyncd_sink *head;
    struct asyncd_sink **ps, *s;

    pthread_mutex_lock(&asyncd_sinks.lock);
    for (ps = &asyncd_sinks.head; (s = *ps) != NULL;) {
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
        asyncd_logsink_free_sink(s);
    }
    head = asyncd_sinks.head;
    pthread_mutex_unlock(&asyncd_sinks.lock);
    return head;
}

/* Lines are waiting in some sink (filled, queued or held): under the locks. */
static bool pending(bool *partial)
{
    struct asyncd_sink *s;
    bool any = false;

    *partial = false;
    pthread_mutex_lock(&asyncd_sinks.lock);
    for (s = asyncd_sinks.head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if ((s->cur != NULL && s->cur->len > 0) || s->full != NULL)
            *partial = true;
        pthread_mutex_unlock(&s->lock);
        any |= s->writing != NULL;
    }
    pthread_mutex_unlock(&asyncd_sinks.lock);
    return any || *partial;
}

/* Refuses lines from now on, everywhere; true if some came in since the
 * last collect (the writer goes round once more for them). */
static bool refuse_lines(void)
{
    struct asyncd_sink *s;
    bool late = false;

    pthread_mutex_lock(&asyncd_sinks.lock);
    for (s = asyncd_sinks.head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->stopped = true;
        late |= (s->cur != NULL && s->cur->len > 0) || s->full != NULL;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&asyncd_sinks.lock);
    return late;
}

void asyncd_logwriter_say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    size_t n;

    if (asyncd_err_sink.may_block) /* the stop must not hang where the writer did */
        return;
    va_start(ap, fmt);
    n = asyncd_log_format(line, sizeof(line), ASYNC_LOG_ERROR, "asyncd", fmt, ap);
    va_end(ap);
    (void)!put(&asyncd_err_sink, line, n);
}

/* The stop bound passed: count and name what stays unwritten. */
static void give_up(struct asyncd_sink *head)
{
    struct asyncd_sink *s;
    struct asyncd_chunk *c;

    for (s = head; s != NULL; s = s->next) {
        uint64_t lines = 0;

        for (c = s->writing; c != NULL; c = c->next)
            lines += asyncd_logsink_count_lines(c->data + (c == s->writing ? s->woff : 0),
                                 c->len - (c == s->writing ? s->woff : 0));
        for (c = s->full; c != NULL; c = c->next) /* refused from now on: no lock needed */
            lines += asyncd_logsink_count_lines(c->data, c->len);
        if (s->cur != NULL)
            lines += asyncd_logsink_count_lines(s->cur->data, s->cur->len);
        if (lines > 0)
            asyncd_logwriter_say("log: exiting with %" PRIu64
                                 " line(s) to %s unwritten (nobody reads it?)", lines, s->dest);
    }
}

/* After the last write: every chunk and descriptor goes; sinks still
 * held by a handle stay (stopped) for asyncd_logsink_close to free. */
static void release_all(void)
{
    struct asyncd_sink *s, *next;

    pthread_mutex_lock(&asyncd_sinks.lock);
    for (s = asyncd_sinks.head; s != NULL; s = next) {
        next = s->next;
        if (s->is_stderr) {
            pthread_mutex_lock(&s->lock);
            asyncd_logsink_free_chunks(s->cur);
            asyncd_logsink_free_chunks(s->full);
            asyncd_logsink_free_chunks(s->spare);
            asyncd_logsink_free_chunks(s->writing);
            s->cur = s->full = s->spare = s->writing = NULL;
            s->in_use = 0;
            s->cur_reserve = false;
            pthread_mutex_unlock(&s->lock);
            if (s->own_fd)
                close(s->fd);
            s->own_fd = false;
            s->fd = STDERR_FILENO;
        } else if (s->refs == 0) {
            asyncd_logsink_free_sink(s);
        } else {
            asyncd_logsink_free_chunks(s->writing);
            s->writing = NULL;
            s->next = NULL;
        }
    }
    asyncd_sinks.head = NULL;
    pthread_mutex_unlock(&asyncd_sinks.lock);
}

/* The poll set: the wake-up eventfd, then every blocked sink. */
static struct pollfd *poll_set(struct asyncd_sink *head, struct pollfd *pfd, size_t *cap,
                               nfds_t *n)
{
    struct asyncd_sink *s;

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
    pfd[0] = (struct pollfd){.fd = asyncd_sinks.efd, .events = POLLIN};
    return pfd;
}

struct writer {
    struct pollfd *pfd;         /* the poll set, grown as needed */
    size_t cap;                 /* its room; 0: none could be allocated */
    int64_t flush_at;           /* when the partly filled chunks are due; -1: none */
    bool refused;               /* stopping: lines are refused from now on */
    bool told;                  /* stopping: the last drop reports are out */
};

enum { ROUND_AGAIN = -2, ROUND_DONE = -3 };

/* Collects the chunks due and writes them; true if a descriptor would
 * block.  A sink whose reopen waited for its chunk is reopened now. */
static bool write_round(struct asyncd_sink **head, bool sweep, bool stopping)
{
    struct asyncd_sink *s;
    bool blocked = false;

    *head = collect(sweep, stopping);
    for (s = *head; s != NULL; s = s->next) {
        write_sink(s);
        if (s->reopen_wanted && s->writing == NULL && !stopping) {
            s->reopen_wanted = false;
            if (reopen_one(s))
                asyncd_log(ASYNC_LOG_INFO, "log: reopened %s", s->dest);
        }
        blocked |= s->blocked;
    }
    return blocked;
}

/* Stopping: tell the drops, write everything, refuse new lines, write
 * what came in meanwhile; give up at stop_by.  ROUND_DONE, ROUND_AGAIN
 * (at once), or when to look again. */
static int64_t stop_round(struct writer *w, struct asyncd_sink *head, int64_t now,
                          int64_t stop_by, bool blocked)
{
    struct asyncd_sink *s;
    bool partial;

    if (!w->refused && !w->told) { /* drops not yet told, whatever the rate */
        for (s = head; s != NULL; s = s->next) {
            s->report_at = 0;
            report(s, now);
        }
        w->told = true;
        return ROUND_AGAIN; /* and written */
    }
    if (!pending(&partial)) {
        if (w->refused || !refuse_lines())
            return ROUND_DONE;
        w->refused = true;
        return ROUND_AGAIN; /* the lines that came in meanwhile, and no more */
    }
    if (now >= stop_by) {
        refuse_lines();
        give_up(head);
        return ROUND_DONE;
    }
    return blocked ? stop_by : ROUND_AGAIN;
}

/* Running: reports, frees the sinks nobody holds (*head is then the list
 * as it is now), arms the flush.  When to look again, -1: when woken. */
static int64_t run_round(struct writer *w, struct asyncd_sink **head, int64_t now)
{
    struct asyncd_sink *s;
    int64_t at = -1;
    bool partial;

    for (s = *head; s != NULL; s = s->next) {
        int64_t again = report(s, now);

        if (again >= 0 && (at < 0 || again < at))
            at = again;
    }
    *head = reap(now);
    if (w->flush_at < 0) { /* arm: see asyncd_sinks.unarmed in logsink_int.h */
        atomic_store(&asyncd_sinks.unarmed, true);
        pending(&partial);
        if (partial) {
            w->flush_at = asyncd_logsink_now_ms() + FLUSH_MS;
            atomic_store(&asyncd_sinks.unarmed, false);
        }
    }
    if (w->flush_at >= 0 && (at < 0 || w->flush_at < at))
        at = w->flush_at;
    return at;
}

/* Sleeps until woken, a blocked descriptor takes bytes, or at (-1: no
 * time). */
static void wait_round(struct writer *w, struct asyncd_sink *head, int64_t at)
{
    int64_t now;
    uint64_t junk;
    nfds_t n;

    if (w->cap == 0) { /* no memory for a poll set: look again every 10 ms */
        poll(NULL, 0, 10);
        return;
    }
    w->pfd = poll_set(head, w->pfd, &w->cap, &n);
    now = asyncd_logsink_now_ms();
    if (poll(w->pfd, n, at < 0 ? -1 : at <= now ? 0 : (int)(at - now)) > 0 &&
        (w->pfd[0].revents & POLLIN))
        (void)!read(asyncd_sinks.efd, &junk, sizeof(junk));
}

void *asyncd_logwriter_main(void *arg)
{
    struct writer w = {.cap = 16, .flush_at = -1};

    (void)arg;
    if ((w.pfd = malloc(sizeof(*w.pfd) * w.cap)) == NULL)
        w.cap = 0;
    for (;;) {
        int64_t now = asyncd_logsink_now_ms(), stop_by, at;
        bool reopen = atomic_exchange(&asyncd_sinks.reopen, false);
        bool urgent = atomic_exchange(&asyncd_sinks.urgent, false);
        bool stopping, sweep, blocked;
        struct asyncd_sink *head;

        pthread_mutex_lock(&asyncd_sinks.lock);
        stopping = asyncd_sinks.stop;
        stop_by = asyncd_sinks.stop_by;
        pthread_mutex_unlock(&asyncd_sinks.lock);
        sweep = stopping || reopen || urgent || (w.flush_at >= 0 && now >= w.flush_at);
        if (sweep)
            w.flush_at = -1;
        blocked = write_round(&head, sweep, stopping);
        if (reopen && !w.refused)
            reopen_all(head);
        at = stopping ? stop_round(&w, head, now, stop_by, blocked) : run_round(&w, &head, now);
        if (at == ROUND_DONE)
            break;
        if (at != ROUND_AGAIN)
            wait_round(&w, head, at);
    }
    free(w.pfd);
    release_all();
    pthread_mutex_lock(&asyncd_sinks.lock);
    asyncd_sinks.done = true;
    pthread_cond_signal(&asyncd_sinks.done_cv);
    pthread_mutex_unlock(&asyncd_sinks.lock);
    return NULL;
}
