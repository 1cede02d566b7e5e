#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int threshold = ASYNC_LOG_INFO;

void asyncd_log_set_level(int level)
{
    atomic_store(&threshold, level);
}

int asyncd_log_level(void)
{
    return atomic_load(&threshold);
}

int asyncd_log_parse_level(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"debug", ASYNC_LOG_DEBUG}, {"info", ASYNC_LOG_INFO}, {"notice", ASYNC_LOG_NOTICE},
                  {"warning", ASYNC_LOG_WARNING}, {"error", ASYNC_LOG_ERROR}};
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcmp(name, levels[i].name) == 0)
            return levels[i].level;
    return -1;
}

void asyncd_vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    int n;

    if (level > atomic_load(&threshold))
        return;
    n = snprintf(line, sizeof(line), "<%d>%s: ", level, prefix);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2; /* truncated: still one line */
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

void asyncd_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    asyncd_vlog(level, "asyncd", fmt, ap);
    va_end(ap);
}
