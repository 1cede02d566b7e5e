/* daemon/config — asyncd.json: reading, validating, and naming every
 * problem by file, line, column and JSON path. */
#ifndef ASYNCD_CONFIG_H
#define ASYNCD_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASYNCD_MAX_PROCESSES 64 /* "processes": one bit each in the master's listener table */

struct asyncd_problems {
    char **msg;
    size_t n;
};

struct asyncd_config {
    char *file;                 /* as given */
    char *text;                 /* its bytes */
    struct asyncd_where *where; /* where each path sits in text (where.h) */
    unsigned workers;           /* runtime.workers, 0 = online CPUs */
    unsigned processes;         /* "processes": worker processes under a master (1: none) */
    size_t stack_size;          /* runtime.stack_size, 0 = default */
    char *modules_dir;          /* resolved against the file's folder */
    int64_t shutdown_timeout_ms;
    int64_t drain_grace_ms;     /* on a stop signal, serve on this long, every module
                                   told it is stopping, before cancelling them */
    int64_t blocked_warn_ms;    /* a worker held this long by one fiber is logged */
    int log_level;
    bool strict_modules;        /* refuse module files and folders others can write
                                   (default true) */
    json_t *root;
    json_t *modules;            /* root's "modules" object (borrowed from root) */
};

/* 0, or -1 with every problem found appended to p (p may hold earlier ones). */
int  asyncd_config_load(const char *file, struct asyncd_config *c, struct asyncd_problems *p);
void asyncd_config_free(struct asyncd_config *c);

/* Appends "FILE:LINE:COL: PATH: message" (path like "modules.echo.listen"
 * or "modules.http.routes[2].status"; the position is that of the
 * member's key or the element, of the longest prefix present when the
 * path names something absent, or of the file's start; where.h). */
void asyncd_problem(struct asyncd_problems *p, const struct asyncd_config *c, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void asyncd_problems_free(struct asyncd_problems *p);

/* modules.<name>: its object (NULL if absent) and whether it is enabled
 * (absent or without "enabled": yes). */
json_t *asyncd_module_config(const struct asyncd_config *c, const char *name, int *enabled);

/* modules.<name>.optional: a module that fails to start is then logged
 * and skipped instead of stopping asyncd (absent: false). */
bool asyncd_module_optional(const struct asyncd_config *c, const char *name);

/* What a module's hooks and run get: a copy of modules.<name> (an empty
 * object if absent) without the daemon's own keys ("enabled",
 * "optional"); NULL when out of memory. */
json_t *asyncd_module_part(const struct asyncd_config *c, const char *name, int *enabled);

#endif
