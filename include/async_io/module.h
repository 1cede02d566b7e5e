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
 * folder, in check and in run alike.
 *
 * ABI 2 adds, all optional: flags (ASYNC_MODULE_NOTIFY_READY), a validate
 * hook that reports every problem of a config by JSON path, an
 * effective_config hook for `asyncd -T`, a reopen hook for SIGUSR1, and
 * host calls for readiness and for log files the daemon writes on the
 * module's behalf.  asyncd loads ABI 1 modules as before and reads the ABI
 * 2 fields only from modules that declare abi_version 2.
 *
 * Host calls added within ABI 2 (a module that calls one needs an asyncd
 * at least as new; the descriptor is unchanged): async_module_blocked_workers. */
#ifndef ASYNC_IO_MODULE_H
#define ASYNC_IO_MODULE_H

#include "runtime.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNC_MODULE_ABI_VERSION 2

/* flags (ABI 2) */
#define ASYNC_MODULE_NOTIFY_READY 1u    /* run calls async_module_ready once it
                                           serves; without it the module is
                                           ready when run starts */

typedef struct async_module_host async_module_host;
typedef struct async_module_report async_module_report;     /* validate's problems */
typedef struct async_module_logfile async_module_logfile;   /* see below */

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

    /* ---- ABI 2: read only when abi_version >= 2 ---- */
    unsigned flags;         /* ASYNC_MODULE_* flags */
    /* Optional, preferred to check: validates the config and reports every
     * problem with async_module_problem.  Returns 0 when it reported
     * none.  Runs on any thread, never on a fiber's stack. */
    int (*validate)(const json_t *config, async_module_report *report);
    /* Optional: a config that validate accepted, with every default filled
     * in (`asyncd -T`): a new reference, or NULL. */
    json_t *(*effective_config)(const json_t *config);
    /* Optional: SIGUSR1 (logrotate) — reopen files the module writes by
     * itself.  Log files opened with async_module_logfile_open are reopened
     * by the daemon without it.  Called on a daemon fiber while run runs;
     * must not park. */
    void (*reopen)(async_module_host *host);
};

/* The descriptor every module defines.  Declared here so that its
 * definition is visible even in a module built with -fvisibility=hidden
 * (as async_io::module and async_io_module.pc build them), which then
 * exports this one symbol, and so that the compiler checks its type. */
ASYNC_API extern const struct async_module async_module;

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

/* ---- ABI 2 ---- */

/* From validate: one problem at path inside the module's config object
 * ("listen[1]", "routes[2].status"; "" for the object itself).  asyncd
 * prints it as FILE:LINE:COL: modules.NAME.PATH: message. */
ASYNC_API void async_module_problem(async_module_report *report, const char *path,
                                    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* From run, in a module with ASYNC_MODULE_NOTIFY_READY: it serves now
 * (its listeners are bound).  asyncd tells systemd READY=1 once every
 * enabled module is ready or has failed.  Idempotent.  Any thread. */
ASYNC_API void async_module_ready(async_module_host *host);

/* A log file the daemon writes for the module: dest is "stderr" or a path
 * (relative to the config's folder), opened for appending.  Lines reach it
 * from a thread of the daemon, so a full disk or a pipe nobody reads never
 * blocks a fiber; SIGUSR1 reopens the path (logrotate).  NULL and errno
 * when it cannot be opened.  Close it before run returns. */
ASYNC_API async_module_logfile *async_module_logfile_open(async_module_host *host,
                                                          const char *dest);
/* Appends len bytes (whole lines, each ending in '\n').  Never blocks and
 * never parks: when the daemon's queue is full the bytes are dropped and
 * counted.  Any thread. */
ASYNC_API void async_module_logfile_write(async_module_logfile *f, const char *line,
                                          size_t len);
/* Lines dropped so far because the queue was full. */
ASYNC_API uint64_t async_module_logfile_dropped(const async_module_logfile *f);
/* Hands what is queued to the writer and releases f; never blocks. */
ASYNC_API void async_module_logfile_close(async_module_logfile *f);

/* Added within ABI 2.  How many times, since asyncd started, a worker was
 * found held by one fiber (a blocking call, a long computation) for longer
 * than the daemon's blocked_warn_ms: for status pages.  Any thread. */
ASYNC_API uint64_t async_module_blocked_workers(void);

#ifdef __cplusplus
}
#endif
#endif
