/* daemon/log — the daemon's own log lines (and its modules', through
 * async_module_log), one line per event on stderr, filtered by log_level.
 *
 * Under systemd (stderr is the journal's stream: JOURNAL_STREAM names the
 * device and inode of fd 2) a line is "<N>asyncd: message", the syslog
 * priority journald reads and strips.  Anywhere else (a terminal, `make
 * run`, a redirect to a file) it is "2026-12-07 07:02:56.123 [notice]
 * asyncd: message", local time to the millisecond.
 *
 * Lines go through the stderr sink (logsink.h) while its writer runs, so a
 * stderr nobody reads never blocks a worker; before it starts and after it
 * stops, each line is one write(2) to fd 2. */
#ifndef ASYNCD_LOG_H
#define ASYNCD_LOG_H

#include <async_io/module.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Decides, once, whether stderr is the journal.  Call before any line. */
void asyncd_log_init(void);
/* In worker process n of a master (daemon/master.h): every line's
 * prefix says so, "asyncd/2: ", "http/2: ".  Before any thread. */
void asyncd_log_set_process(unsigned n);
/* Whether asyncd_log_init found stderr to be the journal. */
bool asyncd_log_to_journal(void);

void asyncd_log_set_level(int level);
int  asyncd_log_level(void);
/* "debug", "info", "notice", "warning", "error" -> level, or -1. */
int  asyncd_log_parse_level(const char *name);
void asyncd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void asyncd_vlog(int level, const char *prefix, const char *fmt, va_list ap);

/* One whole line, as asyncd_vlog writes it, into buf (cap >= 64): its
 * length, '\n' included (a longer message is cut, still one line).  No
 * level filtering. */
size_t asyncd_log_format(char *buf, size_t cap, int level, const char *prefix, const char *fmt,
                         va_list ap);

#endif
