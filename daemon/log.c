#include "log.h"

#include "logsink.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int threshold = ASYNC_LOG_INFO;
static bool journal; /* set once, before any thread */
static unsigned process; /* a worker process's number (master.h), 0 in any other: set once,
                          * before any thread */

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to
 * stdout/stderr.  It is inherited by whatever the service starts, so it
 * counts only while fd 2 is still that stream (a redirect makes it
 * stale). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int used = 0;

    if (js == NULL || sscanf(js, "%llu:%llu%n", &dev, &ino, &used) != 2 || js[used] != '\0' ||
        js[0] < '0' || js[0] > '9')
        return false;
    return fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void asyncd_log_init(void)
{
    journal = stderr_is_journal();
}

void asyncd_log_set_process(unsigned n)
{
    process = n;
}

bool asyncd_log_to_journal(void)
{
    return journal;
}

void asyncd_log_set_level(int level)
{
    atomic_store(&threshold, level);
}

int asyncd_log_level(void)
{
    return atomic_load(&threshold);
}

static const char *const level_names[] = {"emerg", "alert", "crit", "error",
                                          "warning", "notice", "info", "debug"};

int asyncd_log_parse_level(const char *name)
{
    int i;

    for (i = ASYNC_LOG_ERROR; i <= ASYNC_LOG_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

/* "2026-12-07 07:02:56.123", local time; the calendar part is cached per
 * thread and second (localtime_r takes a process-wide lock). */
static void timestamp(char out[32])
{
    static __thread time_t at = -1;
    static __thread char day[20];
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != at) {
        localtime_r(&ts.tv_sec, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm);
        at = ts.tv_sec;
    }
    snprintf(out, 32, "%.19s.%03d", day, (int)(ts.tv_nsec / 1000000));
}

size_t asyncd_log_format(char *buf, size_t cap, int level, const char *prefix, const char *fmt,
                         va_list ap)
{
    char ts[32], tag[16] = "";
    size_t i, end;
    int n, m;

    /* a module may pass any int: keep the prefix one journald can read */
    level = level < 0 ? 0 : level > ASYNC_LOG_DEBUG ? ASYNC_LOG_DEBUG : level;
    if (process != 0)
        snprintf(tag, sizeof(tag), "/%u", process);
    if (journal) {
        n = snprintf(buf, cap, "<%d>%s%s: ", level, prefix, tag);
    } else {
        timestamp(ts);
        n = snprintf(buf, cap, "%s [%s] %s%s: ", ts, level_names[level], prefix, tag);
    }
    if (n < 0 || (size_t)n >= cap - 1)
        n = 0;
    m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    if (m < 0)
        m = 0;
    end = (size_t)n + (size_t)m;
    if (end >= cap - 1)
        end = cap - 2; /* cut: still one line */
    /* a message's own line breaks would forge a line (and its prefix) */
    for (i = (size_t)n; i < end; i++)
        if (buf[i] == '\n' || buf[i] == '\r')
            buf[i] = ' ';
    buf[end++] = '\n';
    return end;
}

void asyncd_vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    size_t n;

    if (level > atomic_load(&threshold))
        return;
    n = asyncd_log_format(line, sizeof(line), level, prefix, fmt, ap);
    if (!asyncd_logsink_stderr(line, n))
        (void)!write(STDERR_FILENO, line, n);
}

void asyncd_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    asyncd_vlog(level, "asyncd", fmt, ap);
    va_end(ap);
}
