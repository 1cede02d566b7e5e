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
 * Then size (sizeof(struct async_module) as the module was built) says
 * which fields the module has: a module built against an older ABI 2
 * header, whose descriptor ends earlier, keeps loading when later ones add
 * optional hooks at the end (those it lacks read as absent), and one built
 * against a newer header loads here with the hooks this asyncd does not
 * know ignored.  (A size of 0 is an ABI 2 module from before the field:
 * its descriptor ends at reopen.)
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
 * effective_config hook for `asyncd -T`, a reopen hook for SIGUSR1, host
 * calls for readiness, for log files the daemon writes on the module's
 * behalf, for HTTP handlers, for listening sockets the daemon keeps
 * across reloads (async_module_listen) and for lines of the metrics
 * endpoint (async_module_add_metrics_writer).  ABI 1 modules are refused: rebuild them.
 *
 * Host calls.  A module reaches asyncd only through the handles asyncd
 * gives it (the host, a report, a log file, a handler slot), each of which
 * starts with a pointer to asyncd's table of functions; the async_module_*
 * calls below are inline wrappers that call through it.  So asyncd exports
 * no symbols, a module links against nothing of asyncd's, and a test may
 * load a module with a table of its own.  The table only grows: a call
 * added later is checked with async_module_host_has before use by modules
 * that must run on older daemons. */
#ifndef ASYNC_IO_MODULE_H
#define ASYNC_IO_MODULE_H

#include "http.h"
#include "runtime.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    unsigned size;          /* sizeof(struct async_module): ASYNC_MODULE_SIZE */
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
    /* Optional, added within ABI 2 (a module built before it has a smaller
     * size and simply lacks it): the names of the HTTP handlers run will
     * register for this config, each told with async_module_provide_handler,
     * so that `asyncd --check-config` can warn about a route to a handler
     * no module provides.  Runs where validate runs. */
    void (*http_handlers)(const json_t *config, async_module_report *report);
    /* Optional, added within ABI 2: SIGHUP found the module's config
     * unchanged (so it keeps running): re-read what the config names on
     * disk and may have changed under the same name, such as TLS
     * certificates, keeping what is in use when the new files are bad.
     * The reload's check (validate) ran first and passed.  Called on a
     * daemon fiber while run runs; must not park. */
    void (*reload)(async_module_host *host);
    /* Optional, added within ABI 2: a reload changed the module's config
     * (validate accepted it) while run serves.  Apply it in place and
     * return 0 — what run was given stays borrowed only until then, the
     * new config is borrowed for this call — or return -1 when it cannot
     * be applied so (the daemon then restarts the module, as it does for
     * a module without the hook).  Called on a daemon fiber; must not
     * park. */
    int (*reconfigure)(async_module_host *host, const json_t *config);
    /* Hooks added later go here, at the end. */
};

#define ASYNC_MODULE_SIZE ((unsigned)sizeof(struct async_module))

/* ---- host calls ---- */

typedef struct async_module_http_slot async_module_http_slot;
struct async_module_text;

/* A module's contribution to the metrics endpoint (see "Metrics" below):
 * appends lines to out; must not park. */
typedef void (*async_module_metrics_writer)(struct async_module_text *out, void *ctx);

/* What asyncd has done since it started (async_module_daemon_stats).
 * Members are only ever added at the end. */
struct async_module_daemon_stats {
    uint64_t reloads;           /* SIGHUP reloads applied */
    uint64_t reloads_rejected;  /* ... refused (a bad new config; the old one kept serving) */
    uint64_t module_restarts;   /* runs of any module started again after it failed */
    uint64_t uptime_ms;         /* since asyncd started */
    uint64_t process;           /* which worker process of a master this is ("processes"
                                 * > 1: 1..N), 0 in a lone asyncd */
    uint64_t pid;               /* this process's id */
};

/* asyncd's table of host calls (see the top).  Members are only ever
 * added at the end; size is sizeof the table asyncd filled. */
struct async_module_host_api {
    size_t size;
    void (*vlog)(async_module_host *host, int level, const char *fmt, va_list ap);
    int64_t (*stop_deadline)(const async_module_host *host);
    const char *(*name)(const async_module_host *host);
    void (*vproblem)(async_module_report *report, const char *path, const char *fmt, va_list ap);
    void (*ready)(async_module_host *host);
    async_module_logfile *(*logfile_open)(async_module_host *host, const char *dest);
    void (*logfile_write)(async_module_logfile *f, const char *line, size_t len);
    uint64_t (*logfile_dropped)(const async_module_logfile *f);
    void (*logfile_close)(async_module_logfile *f);
    uint64_t (*blocked_workers)(const async_module_host *host);
    int (*add_http_handler)(async_module_host *host, const char *name, async_http_handler fn,
                            void *ctx);
    async_module_http_slot *(*http_slot_get)(async_module_host *host, const char *name);
    int (*http_call)(async_module_http_slot *slot, async_http_request *req);
    int (*http_provided)(const async_module_http_slot *slot);
    void (*provide_handler)(async_module_report *report, const char *name);
    void (*need_handler)(async_module_report *report, const char *path, const char *name);
    async_listener *(*listen)(async_module_host *host, const char *address);
    void (*daemon_stats)(const async_module_host *host, struct async_module_daemon_stats *st,
                         size_t size);
    void (*vwarning)(async_module_report *report, const char *path, const char *fmt, va_list ap);
    int (*add_metrics_writer)(async_module_host *host, const char *name,
                              async_module_metrics_writer fn, void *ctx);
    void (*metrics_write)(async_module_host *host, struct async_module_text *out);
};

/* How every handle asyncd gives a module begins. */
struct async_module_handle {
    const struct async_module_host_api *api;
};

#define ASYNC_MODULE_API_(h) (((const struct async_module_handle *)(const void *)(h))->api)

/* Whether the host's table has member (for calls added after a module's
 * oldest supported asyncd). */
#define async_module_host_has(host, member)                                               \
    (ASYNC_MODULE_API_(host)->size >=                                                      \
     offsetof(struct async_module_host_api, member) + sizeof(void (*)(void)))

/* The descriptor every module defines.  Declared here so that its
 * definition is visible even in a module built with -fvisibility=hidden
 * (as async_io::module and async_io_module.pc build them), which then
 * exports this one symbol, and so that the compiler checks its type. */
ASYNC_API extern const struct async_module async_module;

/* A log line from the module, prefixed with its name, filtered by the
 * daemon's log_level.  Any thread. */
static inline void async_module_log(async_module_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void async_module_log(async_module_host *host, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ASYNC_MODULE_API_(host)->vlog(host, level, fmt, ap);
    va_end(ap);
}

/* While the daemon stops the module: the time (async_now_ms scale) after
 * which it stops waiting for the module's fibers, so a module that drains
 * (finishes work in progress under async_shield) knows its budget.  -1
 * while the module is not being stopped.  Any thread. */
static inline int64_t async_module_stop_deadline(const async_module_host *host)
{
    return ASYNC_MODULE_API_(host)->stop_deadline(host);
}

/* The module's name. */
static inline const char *async_module_name(const async_module_host *host)
{
    return ASYNC_MODULE_API_(host)->name(host);
}

/* From validate: one problem at path inside the module's config object
 * ("listen[1]", "routes[2].status"; "" for the object itself).  asyncd
 * prints it as FILE:LINE:COL: modules.NAME.PATH: message. */
static inline void async_module_problem(async_module_report *report, const char *path,
                                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void async_module_problem(async_module_report *report, const char *path,
                                        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ASYNC_MODULE_API_(report)->vproblem(report, path, fmt, ap);
    va_end(ap);
}

/* From run, in a module with ASYNC_MODULE_NOTIFY_READY: it serves now
 * (its listeners are bound).  asyncd tells systemd READY=1 once every
 * enabled module is ready or has failed.  Idempotent.  Any thread. */
static inline void async_module_ready(async_module_host *host)
{
    ASYNC_MODULE_API_(host)->ready(host);
}

/* A log file the daemon writes for the module: dest is "stderr" or a path
 * (relative to the config's folder), opened for appending.  Lines reach it
 * from a thread of the daemon, so a full disk or a pipe nobody reads never
 * blocks a fiber; SIGUSR1 reopens the path (logrotate).  NULL and errno
 * when it cannot be opened.  Close it before run returns. */
static inline async_module_logfile *async_module_logfile_open(async_module_host *host,
                                                              const char *dest)
{
    return ASYNC_MODULE_API_(host)->logfile_open(host, dest);
}

/* Appends len bytes (whole lines, each ending in '\n').  Never blocks and
 * never parks: when the daemon's queue is full the bytes are dropped and
 * counted.  Any thread. */
static inline void async_module_logfile_write(async_module_logfile *f, const char *line,
                                              size_t len)
{
    ASYNC_MODULE_API_(f)->logfile_write(f, line, len);
}

/* Lines dropped so far because the queue was full. */
static inline uint64_t async_module_logfile_dropped(const async_module_logfile *f)
{
    return ASYNC_MODULE_API_(f)->logfile_dropped(f);
}

/* Hands what is queued to the writer and releases f; never blocks. */
static inline void async_module_logfile_close(async_module_logfile *f)
{
    if (f != NULL)
        ASYNC_MODULE_API_(f)->logfile_close(f);
}

/* How many times, since asyncd started, a worker was found held by one
 * fiber (a blocking call, a long computation) for longer than the
 * daemon's blocked_warn_ms: for status pages.  Any thread. */
static inline uint64_t async_module_blocked_workers(const async_module_host *host)
{
    return ASYNC_MODULE_API_(host)->blocked_workers(host);
}

/* A listening socket on address (read as async_listener_bind reads it)
 * that belongs to asyncd, not to this run: asyncd binds it the first time
 * a module asks, and keeps it open while the module's generations come
 * and go (a reload with a new config, a new .so), so no connection waiting
 * in its accept queue is reset and no connect is refused across a reload.
 * Each call returns a listener of the caller's own (async_listener_borrow):
 * accept on it, and close it when done (that closes nothing of the
 * socket).  The next generation of the module gets the same socket for
 * the same address string ("127.0.0.1:0" keeps its port); asyncd closes
 * the sockets no generation asked for again once a reload's modules are
 * running.  So that the hand-over is seamless, a module that listens sets
 * ASYNC_MODULE_NOTIFY_READY and calls async_module_ready after its
 * listens, and stops accepting (closes its listeners) as soon as it is
 * cancelled; the old and the new generation may accept side by side for
 * a moment.  NULL + EADDRINUSE when another module listens on address
 * (asyncd logs both names), or async_listener_bind's errors.  Parks only
 * to resolve a host name.  From a fiber of the module.  (On an asyncd
 * without the call, the module binds the socket itself.) */
static inline async_listener *async_module_listen(async_module_host *host, const char *address)
{
    if (!async_module_host_has(host, listen))
        return async_listener_bind(address);
    return ASYNC_MODULE_API_(host)->listen(host, address);
}

/* What the daemon has done since it started (reloads, module restarts),
 * for status pages and metrics: 0, or -1 ENOSYS from an asyncd older than
 * this call (*st zeroed).  Any thread. */
static inline int async_module_daemon_stats(const async_module_host *host,
                                            struct async_module_daemon_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!async_module_host_has(host, daemon_stats)) {
        errno = ENOSYS;
        return -1;
    }
    ASYNC_MODULE_API_(host)->daemon_stats(host, st, sizeof(*st));
    return 0;
}

/* From http_handlers: run will register a handler of this name. */
static inline void async_module_provide_handler(async_module_report *report, const char *name)
{
    if (async_module_host_has(report, provide_handler))
        ASYNC_MODULE_API_(report)->provide_handler(report, name);
}

/* From validate, in a module that routes requests to handlers: the config
 * at path names handler name; the check warns when no module provides it.
 * (A no-op on an asyncd without the call.) */
static inline void async_module_need_handler(async_module_report *report, const char *path,
                                             const char *name)
{
    if (async_module_host_has(report, need_handler))
        ASYNC_MODULE_API_(report)->need_handler(report, path, name);
}

/* From validate: something at path that works but deserves the
 * operator's eye (an expired certificate): logged as a warning with the
 * file's line and column, and the config still passes.  (A no-op on an
 * asyncd without the call.) */
static inline void async_module_warning(async_module_report *report, const char *path,
                                        const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void async_module_warning(async_module_report *report, const char *path,
                                        const char *fmt, ...)
{
    va_list ap;

    if (!async_module_host_has(report, vwarning))
        return;
    va_start(ap, fmt);
    ASYNC_MODULE_API_(report)->vwarning(report, path, fmt, ap);
    va_end(ap);
}

/* ---- HTTP handlers ----
 *
 * A module serves HTTP by registering named handlers; the http module's
 * routes name them ({"prefix": "/kv/", "handler": "kv"}) and calls them on
 * the connection's fiber.  A name is unique across the daemon.  When the
 * module stops or its run returns, asyncd withdraws its handlers and waits
 * (within shutdown_timeout_ms) for the requests inside them before it
 * cancels the module's fibers or unloads its code. */

/* From run (any fiber of the module): 0; -1 EEXIST (the name is taken),
 * EINVAL (empty, longer than 64 bytes, or not letters, digits, '_', '-',
 * '.'), ENOMEM. */
static inline int async_module_add_http_handler(async_module_host *host, const char *name,
                                                async_http_handler fn, void *ctx)
{
    return ASYNC_MODULE_API_(host)->add_http_handler(host, name, fn, ctx);
}

/* For modules that route requests (the http module).  The slot of a
 * handler name: made on first use, whether or not a module provides the
 * name yet, and valid for the daemon's life.  NULL with EINVAL or ENOMEM. */
static inline async_module_http_slot *async_module_http_slot_get(async_module_host *host,
                                                                 const char *name)
{
    return ASYNC_MODULE_API_(host)->http_slot_get(host, name);
}

/* Calls the handler that provides the slot's name, on this fiber: its
 * return value; or -1 ENOENT, having sent nothing, when no module provides
 * the name.  While it runs, the provider's code stays loaded. */
static inline int async_module_http_call(async_module_http_slot *slot, async_http_request *req)
{
    return ASYNC_MODULE_API_(slot)->http_call(slot, req);
}

/* Whether a module provides the slot's name now. */
static inline int async_module_http_provided(const async_module_http_slot *slot)
{
    return ASYNC_MODULE_API_(slot)->http_provided(slot);
}

/* ---- Metrics ----
 *
 * The http module's metrics endpoint (metrics_path) answers with its own
 * figures and then with what every module's metrics writer appends: lines
 * of the Prometheus text exposition format 0.0.4 (each family's # HELP
 * and # TYPE once, then its samples), whole lines only, names of the
 * module's own prefix (asyncd_<module>_) so that no two modules write the
 * same family.  A writer belongs to the run that registered it, as a
 * handler does: asyncd withdraws it when the run ends or the module
 * stops, and waits for a scrape inside it before it cancels the module's
 * fibers, so ctx may point at what run owns. */

/* A growing text: the metrics endpoint's answer, which writers append to.
 * Whoever made it frees buf; failed says memory ran out on the way (the
 * text is then incomplete and is not served). */
struct async_module_text {
    char *buf;
    size_t len, cap;
    int failed;
};

static inline void async_module_text_vaddf(struct async_module_text *t, const char *fmt,
                                           va_list ap)
{
    for (;;) {
        va_list again;
        size_t room = t->cap - t->len;
        char *more;
        int n;

        va_copy(again, ap);
        n = vsnprintf(t->buf != NULL ? t->buf + t->len : NULL, room, fmt, again);
        va_end(again);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        if ((more = (char *)realloc(t->buf, t->cap * 2 + (size_t)n + 1)) == NULL) {
            t->failed = 1;
            return;
        }
        t->buf = more;
        t->cap = t->cap * 2 + (size_t)n + 1;
    }
}

/* Appends printf's output for fmt to t. */
static inline void async_module_textf(struct async_module_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void async_module_textf(struct async_module_text *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    async_module_text_vaddf(t, fmt, ap);
    va_end(ap);
}

/* From run (any fiber of the module): fn(out, ctx) is called for every
 * scrape of the metrics endpoint from now until the run ends, on the
 * scraping fiber (any worker, several at once), so what it reads is read
 * while the module serves: atomics, or data that no longer changes.  0;
 * -1 EEXIST (the module has a writer of that name), EINVAL (name as for
 * a handler, or fn NULL), ENOMEM, ENOSYS (an asyncd without the call: the
 * module's figures are just not exported). */
static inline int async_module_add_metrics_writer(async_module_host *host, const char *name,
                                                  async_module_metrics_writer fn, void *ctx)
{
    if (!async_module_host_has(host, add_metrics_writer) ||
        ASYNC_MODULE_API_(host)->add_metrics_writer == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return ASYNC_MODULE_API_(host)->add_metrics_writer(host, name, fn, ctx);
}

/* For the module that serves the metrics endpoint: calls every
 * registered writer, in the order they were registered, to append to
 * out.  Never parks.  (A no-op on an asyncd without the
 * call.) */
static inline void async_module_metrics_write(async_module_host *host,
                                              struct async_module_text *out)
{
    if (async_module_host_has(host, metrics_write) &&
        ASYNC_MODULE_API_(host)->metrics_write != NULL)
        ASYNC_MODULE_API_(host)->metrics_write(host, out);
}

#ifdef __cplusplus
}
#endif
#endif
