/* daemon/logsink: log lines from many threads, one writer thread.  Lines
 * arrive whole and once, in each thread's order; a FIFO nobody reads
 * costs drops, never a wait; a reopen between two writes splits the lines
 * between two files without losing or repeating one; handles come and go
 * while others write; a stop bounds its wait on a stderr nobody reads.
 * Labelled concurrency: TSan runs it (make test-tsan).  Threads here are
 * plain pthreads; only the main thread calls cmocka. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "logsink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define SLOW 10 /* TSan: a tenth of the lines */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLOW 10
#endif
#endif
#ifndef SLOW
#define SLOW 1
#endif

#define THREADS 4
#define LINES (40000 / SLOW)    /* per thread */

static char dir[256];

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static char *slurp(const char *name, size_t *len)
{
    char path[512], *buf;
    struct stat st;
    int fd;

    path_of(path, sizeof(path), name);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    buf[st.st_size] = '\0';
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/logsink-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(asyncd_logsink_start(), 0);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    asyncd_logsink_stop(5000);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- writers ---- */

struct writer {
    pthread_t thread;
    asyncd_logfile *f;
    int id;
    long lines;
    atomic_bool *stop;          /* optional: write until set (then lines is how many) */
};

static void *write_lines(void *arg)
{
    struct writer *w = arg;
    char line[128];
    long i;

    for (i = 0; w->stop != NULL ? !atomic_load(w->stop) : i < w->lines; i++) {
        int n = snprintf(line, sizeof(line), "t%d n%ld %s\n", w->id, i,
                         "padding so that a line is of access-log length, about 90 bytes");

        asyncd_logsink_write(w->f, line, (size_t)n);
    }
    w->lines = i;
    return NULL;
}

static void start_writers(struct writer *w, int n, asyncd_logfile *f, long lines, atomic_bool *stop)
{
    int i;

    for (i = 0; i < n; i++) {
        w[i] = (struct writer){.f = f, .id = i, .lines = lines, .stop = stop};
        assert_int_equal(pthread_create(&w[i].thread, NULL, write_lines, &w[i]), 0);
    }
}

/* Bounded: a writer stuck in a write would be the bug under test. */
static void join_writers(struct writer *w, int n)
{
    struct timespec until;
    int i;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    for (i = 0; i < n; i++)
        if (pthread_timedjoin_np(w[i].thread, NULL, &until) != 0)
            fail_msg("writer %d still writing after 60 s", i);
}

/* Checks text's lines: well-formed, each thread's numbers rising, none
 * twice (seen[t][n]); returns how many. */
static long check_lines(const char *name, const char *text, unsigned char **seen, const long *max,
                        long *last)
{
    const char *p = text, *nl;
    long count = 0;

    for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1, count++) {
        int t;
        long n;

        char *end;

        /* "tT nN padding": by hand, since sscanf measures the whole rest */
        t = p[0] == 't' ? (int)strtol(p + 1, &end, 10) : -1;
        n = t >= 0 && end[0] == ' ' && end[1] == 'n' ? strtol(end + 2, &end, 10) : -1;
        if (n < 0 || strncmp(end, " padding", 8) != 0 || t >= THREADS || n >= max[t])
            fail_msg("%s: a broken line: %.*s", name, (int)(nl - p), p);
        if (seen[t][n]++)
            fail_msg("%s: t%d n%ld written twice", name, t, n);
        if (n <= last[t])
            fail_msg("%s: t%d n%ld after n%ld", name, t, n, last[t]);
        last[t] = n;
    }
    if (*p != '\0')
        fail_msg("%s ends in half a line: %s", name, p);
    return count;
}

/* ---- tests ---- */

/* Every line reaches the file whole, once and in its thread's order; the
 * lines written plus those dropped are the lines sent. */
static void logsink_lines_from_many_threads_reach_the_file_whole(void **state)
{
    struct writer w[THREADS];
    unsigned char *seen[THREADS];
    long max[THREADS], last[THREADS], got;
    asyncd_logfile *f;
    char path[512], *text;
    uint64_t dropped;
    size_t len;
    int i;

    (void)state;
    path_of(path, sizeof(path), "a.log");
    f = asyncd_logsink_open(path);
    assert_non_null(f);
    start_writers(w, THREADS, f, LINES, NULL);
    join_writers(w, THREADS);
    dropped = asyncd_logsink_dropped(f);
    asyncd_logsink_close(f);
    asyncd_logsink_stop(5000); /* everything written */
    text = slurp("a.log", &len);
    assert_non_null(text);
    for (i = 0; i < THREADS; i++) {
        seen[i] = calloc(LINES, 1);
        max[i] = LINES;
        last[i] = -1;
    }
    got = check_lines("a.log", text, seen, max, last);
    print_message("      %ld line(s) written, %llu dropped\n", got, (unsigned long long)dropped);
    assert_int_equal(got + (long)dropped, THREADS * LINES);
    for (i = 0; i < THREADS; i++)
        free(seen[i]);
    free(text);
}

/* Waits (5 s bound) until name holds lines lines. */
static void wait_lines(const char *name, long lines)
{
    int64_t until = now_ms() + 5000;
    long n = -1;

    while (now_ms() < until) {
        size_t len;
        char *text = slurp(name, &len);
        const char *p;

        for (n = 0, p = text; p != NULL && (p = strchr(p, '\n')) != NULL; p++)
            n++;
        free(text);
        if (n >= lines)
            return;
        poll(NULL, 0, 5);
    }
    fail_msg("%s has %ld line(s) of %ld after 5 s", name, n, lines);
}

/* A FIFO whose reader does not read: writers never wait, lines are
 * dropped and counted, and the writer thread still serves the other
 * destinations; once read, the queued lines come out. */
static void logsink_fifo_nobody_reads_drops_and_never_blocks(void **state)
{
    struct writer w[2];
    asyncd_logfile *f;
    char path[512], buf[65536];
    uint64_t dropped;
    int64_t until;
    long total = 0;
    int reader;
    ssize_t n;

    (void)state;
    path_of(path, sizeof(path), "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(reader >= 0);
    f = asyncd_logsink_open(path);
    assert_non_null(f);
    start_writers(w, 2, f, 4 * LINES, NULL); /* 2 x 160,000 lines: far beyond the queue */
    join_writers(w, 2); /* returns: nobody waited for the reader */
    dropped = asyncd_logsink_dropped(f);
    print_message("      dropped %llu of %d line(s)\n", (unsigned long long)dropped, 8 * LINES);
    assert_true(dropped > 0);
    {   /* a file beside it is still written */
        asyncd_logfile *other;
        char opath[512];
        int i;

        path_of(opath, sizeof(opath), "other.log");
        other = asyncd_logsink_open(opath);
        assert_non_null(other);
        for (i = 0; i < 100; i++)
            asyncd_logsink_write(other, "beside a stuck FIFO\n", 20);
        wait_lines("other.log", 100);
        asyncd_logsink_close(other);
    }
    asyncd_logsink_close(f);
    /* now read: whatever was queued comes out, in whole lines */
    until = now_ms() + 10000;
    while (total + (long)dropped < 8L * LINES && now_ms() < until) {
        struct pollfd p = {reader, POLLIN, 0};

        if (poll(&p, 1, 100) <= 0)
            continue;
        n = read(reader, buf, sizeof(buf));
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            total += buf[i] == '\n';
    }
    assert_int_equal(total + (long)dropped, 8L * LINES);
    close(reader);
}

/* rename + reopen, five times, while four threads write: every line in
 * exactly one of the six files, each file's lines in order. */
static void logsink_reopen_while_writing_loses_and_repeats_no_line(void **state)
{
    struct writer w[THREADS];
    unsigned char *seen[THREADS];
    long max[THREADS], last[THREADS], total = 0;
    atomic_bool stop = false;
    asyncd_logfile *f;
    char path[512], old[512], name[32], *text;
    uint64_t dropped;
    size_t len;
    int r, i;

    (void)state;
    path_of(path, sizeof(path), "r.log");
    f = asyncd_logsink_open(path);
    assert_non_null(f);
    start_writers(w, THREADS, f, 0, &stop);
    for (r = 1; r <= 5; r++) {
        struct stat st;
        int64_t until = now_ms() + 5000;

        while ((stat(path, &st) != 0 || st.st_size == 0) && now_ms() < until)
            poll(NULL, 0, 1); /* lines reach the file within a second */
        assert_true(st.st_size > 0);
        snprintf(name, sizeof(name), "r.log.%d", r);
        path_of(old, sizeof(old), name);
        assert_int_equal(rename(path, old), 0);
        asyncd_logsink_reopen();
        until = now_ms() + 5000; /* the reopen made the file anew */
        while (stat(path, &st) != 0 && now_ms() < until)
            poll(NULL, 0, 1);
        assert_int_equal(stat(path, &st), 0);
    }
    atomic_store(&stop, true);
    join_writers(w, THREADS);
    dropped = asyncd_logsink_dropped(f);
    asyncd_logsink_close(f);
    asyncd_logsink_stop(5000);
    for (i = 0; i < THREADS; i++) {
        seen[i] = calloc((size_t)w[i].lines + 1, 1);
        max[i] = w[i].lines;
    }
    for (r = 1; r <= 6; r++) {
        long n;

        if (r <= 5)
            snprintf(name, sizeof(name), "r.log.%d", r);
        else
            snprintf(name, sizeof(name), "r.log");
        text = slurp(name, &len);
        assert_non_null(text);
        for (i = 0; i < THREADS; i++)
            last[i] = -1;
        n = check_lines(name, text, seen, max, last);
        total += n;
        free(text);
    }
    for (i = 0; i < THREADS; i++)
        free(seen[i]);
    {
        long sent = 0;

        for (i = 0; i < THREADS; i++)
            sent += w[i].lines;
        print_message("      %ld line(s) sent, %ld written, %llu dropped\n", sent, total,
                      (unsigned long long)dropped);
        assert_int_equal(total + (long)dropped, sent);
    }
}

/* Handles opened and closed again and again on a few paths while other
 * threads write: the lines of every handle arrive, and nothing leaks
 * (ASan) or races (TSan). */
struct churner {
    pthread_t thread;
    int id;
    long lines;
};

static void *churn(void *arg)
{
    struct churner *c = arg;
    char path[512], name[32], line[64];
    int i, k;

    for (i = 0; i < 200 / SLOW + 20; i++) {
        asyncd_logfile *f;

        snprintf(name, sizeof(name), "c%d.log", i % 3);
        path_of(path, sizeof(path), name);
        if ((f = asyncd_logsink_open(path)) == NULL)
            continue;
        for (k = 0; k < 50; k++) {
            int n = snprintf(line, sizeof(line), "c%d i%d k%d\n", c->id, i, k);

            asyncd_logsink_write(f, line, (size_t)n);
            c->lines++;
        }
        c->lines -= (long)asyncd_logsink_dropped(f);
        asyncd_logsink_close(f);
    }
    return NULL;
}

static void logsink_handles_come_and_go_while_others_write(void **state)
{
    struct churner c[THREADS];
    long sent = 0, written = 0;
    char name[32], *text;
    size_t len;
    int i;

    (void)state;
    for (i = 0; i < THREADS; i++) {
        c[i] = (struct churner){.id = i};
        assert_int_equal(pthread_create(&c[i].thread, NULL, churn, &c[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(c[i].thread, NULL), 0);
        sent += c[i].lines;
    }
    asyncd_logsink_stop(5000);
    for (i = 0; i < 3; i++) {
        const char *p;

        snprintf(name, sizeof(name), "c%d.log", i);
        text = slurp(name, &len);
        assert_non_null(text);
        for (p = text; (p = strchr(p, '\n')) != NULL; p++)
            written++;
        free(text);
    }
    assert_int_equal(written, sent);
}

/* With fd 2 a pipe nobody reads, the daemon's own lines are dropped
 * rather than waited for, and a stop gives up within its bound. */
static void logsink_stderr_nobody_reads_stop_keeps_its_bound(void **state)
{
    int fds[2], saved;
    int64_t t0;
    long i;

    (void)state;
    asyncd_logsink_stop(5000); /* set up's writer has the old fd 2 */
    saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fcntl(fds[0], F_SETPIPE_SZ, 4096);
    assert_int_equal(dup2(fds[1], 2), 2);
    assert_int_equal(asyncd_logsink_start(), 0);
    t0 = now_ms();
    for (i = 0; i < 20000; i++)
        asyncd_log(ASYNC_LOG_NOTICE, "line %ld of a stderr nobody reads", i);
    i = (long)(now_ms() - t0);
    asyncd_logsink_stop(300);
    t0 = now_ms() - t0;
    dup2(saved, 2);
    close(saved);
    close(fds[0]);
    close(fds[1]);
    print_message("      20,000 lines in %ld ms; stopped after %lld ms\n", i, (long long)t0);
    assert_true(t0 < 300 + 800); /* the bound, and slack below its margin for a stuck write(2) */
    assert_int_equal(asyncd_logsink_start(), 0); /* for teardown */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(logsink_lines_from_many_threads_reach_the_file_whole),
        T(logsink_fifo_nobody_reads_drops_and_never_blocks),
        T(logsink_reopen_while_writing_loses_and_repeats_no_line),
        T(logsink_handles_come_and_go_while_others_write),
        T(logsink_stderr_nobody_reads_stop_keeps_its_bound),
    };

    signal(SIGPIPE, SIG_IGN); /* as asyncd does: a write to a closed pipe fails */
    asyncd_log_init();
    asyncd_log_set_level(ASYNC_LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
