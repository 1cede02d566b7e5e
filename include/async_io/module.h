/* async_io/module.h — what a module for asyncd looks like.
 *
 * A module is a shared object that defines one symbol, `async_module`:
 *
 *     const struct async_module async_module = {
 *         .abi_version = ASYNC_MODULE_ABI_VERSION,
 *         .name = "echo",
 *         .version = "1.0",
 *         .check = echo_check,   // optional
 *         .run = echo_run,
 *     };
 *
 * asyncd reads abi_version first and refuses the module unless it equals
 * its own ASYNC_MODULE_ABI_VERSION; no other field is read before that.
 * run is the module's entry task: a fiber in the module's own group, so
 * every fiber it spawns (async_spawn) belongs to the module too.  To stop a
 * module the daemon cancels the group: every parking call of its fibers
 * fails with ECANCELED, run should then release what it holds and return
 * 0; the daemon joins the group before it unloads the code.  A cancelled
 * fiber cannot join anything (join fails with ECANCELED at once): detach
 * the tasks it would have joined; as group members they were cancelled
 * too, and the daemon waits for them.  A run that
 * returns non-zero while the module is meant to be running is restarted
 * with a back-off of 1 s doubling to 60 s.
 *
 * asyncd works in the folder of its config file, so a relative path in a
 * module's config (a document root, a log file) resolves against that
 * folder, in check and in run alike. */
#ifndef ASYNC_IO_MODULE_H
#define ASYNC_IO_MODULE_H

#include "runtime.h"

#include <jansson.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNC_MODULE_ABI_VERSION 1

typedef struct async_module_host async_module_host;

/* syslog priorities, as journald reads them from the <N> prefix */
enum async_log_level {
    ASYNC_LOG_ERROR = 3,
    ASYNC_LOG_WARNING = 4,
    ASYNC_LOG_NOTICE = 5,
    ASYNC_LOG_INFO = 6,
    ASYNC_LOG_DEBUG = 7,
};

struct async_module {
    unsigned abi_version;   /* ASYNC_MODULE_ABI_VERSION */
    const char *name;       /* unique among the loaded modules */
    const char *version;
    /* Optional: validates the module's config object (modules.<name>,
     * without "enabled").  0 if fine; otherwise -1 with a message in err
     * (naming the JSON path inside the object is a kindness). */
    int (*check)(const json_t *config, char *err, size_t errlen);
    /* The entry task (see above).  config is borrowed for the call. */
    int (*run)(async_module_host *host, const json_t *config);
};

/* A log line from the module, prefixed with its name, filtered by the
 * daemon's log_level.  Any thread. */
ASYNC_API void async_module_log(async_module_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* While the daemon stops the module: the time (async_now_ms scale) after
 * which it stops waiting for the module's fibers, so a module that drains
 * (finishes work in progress under async_shield) knows its budget.  -1
 * while the module is not being stopped.  Any thread. */
ASYNC_API int64_t async_module_stop_deadline(const async_module_host *host);

/* The module's name. */
ASYNC_API const char *async_module_name(const async_module_host *host);

#ifdef __cplusplus
}
#endif
#endif
