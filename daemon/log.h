/* daemon/log — one line per event on stderr, with the <N> syslog priority
 * prefix journald understands, filtered by log_level.  Each line is one
 * write(2), so lines from several threads never interleave. */
#ifndef ASYNCD_LOG_H
#define ASYNCD_LOG_H

#include <async_io/module.h>

#include <stdarg.h>

void asyncd_log_set_level(int level);
int  asyncd_log_level(void);
/* "debug", "info", "notice", "warning", "error" -> level, or -1. */
int  asyncd_log_parse_level(const char *name);
void asyncd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void asyncd_vlog(int level, const char *prefix, const char *fmt, va_list ap);

#endif
