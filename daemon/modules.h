/* daemon/modules — finding, loading, vetting and supervising modules. */
#ifndef ASYNCD_MODULES_H
#define ASYNCD_MODULES_H

#include "config.h"

#include <async_io.h>
#include <async_io/module.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <stdbool.h>

struct async_module_host {
    const struct async_module_host_api *api; /* first: see async_io/module.h */
    struct asyncd_module *module;
};

/* Where a started module stands (asyncd_module_start to asyncd_module_join). */
enum asyncd_module_state {
    ASYNCD_MODULE_IDLE,         /* not started, or stopped and joined */
    ASYNCD_MODULE_STARTING,     /* run began; a module with ASYNC_MODULE_NOTIFY_READY
                                   has not called async_module_ready yet */
    ASYNCD_MODULE_READY,        /* serving, or was and is being restarted */
    ASYNCD_MODULE_FAILED,       /* run ended before it was ready: not restarted */
};

struct asyncd_module {
    struct asyncd_module *next;
    char *file;                         /* the .so it came from */
    struct stat st;                     /* the file's identity when loaded (dev, inode,
                                           mtime): only to say it was rewritten */
    int copy_fd;                        /* the sealed memfd holding its bytes: what
                                           was dlopened, through /proc/self/fd */
    off_t size;                         /* of the copy */
    void *dl;                           /* dlopen handle */
    const struct async_module *desc;    /* &d */
    struct async_module d;              /* the module's descriptor, ABI 2 fields
                                           zero for an ABI 1 module */
    struct async_module_host host;
    json_t *config;                     /* what run gets: modules.<name> minus the
                                           daemon's keys ("enabled", "optional") */
    bool enabled;
    bool optional;                      /* a failed start is skipped, not fatal */
    bool reported;                      /* its failed start has been logged */
    async_group *group;                 /* while started */
    _Atomic bool stopping;              /* the daemon is stopping it: no restart */
    _Atomic bool running;               /* inside run (not between restarts) */
    _Atomic int64_t stop_by;            /* while stopping: when the daemon gives up */
    _Atomic int state;                  /* enum asyncd_module_state */
    struct asyncd_module *predecessor;  /* during a reload: the generation it replaces */
    async_task *drain_wait;             /* retired by a reload: waits for its group to empty */
    _Atomic bool drained;               /* drain_wait is done: drain_rc says how */
    int drain_rc;                       /* 0: its group emptied; -1: not by stop_by */
    struct asyncd_claim *claims;        /* the daemon's sockets this generation holds
                                           (listeners.c, under its lock) */
    pthread_mutex_t reason_lock;        /* guards reason */
    char reason[512];                   /* its last error line since it was started */
};

/* From now on every change of a module's state (ready, failed before
 * ready) sends one int, 0, to ch: the daemon's fiber wakes and looks.
 * Call once, before any module starts. */
void asyncd_modules_watch(async_channel *ch);

/* m's state (enum asyncd_module_state).  Any thread. */
int asyncd_module_state(const struct asyncd_module *m);

/* Why m failed: the last error line it logged since it was started, or
 * what its run returned.  Any thread. */
void asyncd_module_reason(struct asyncd_module *m, char *buf, size_t len);

/* Loads every *.so of c->modules_dir in name order, each from a private
 * copy.  A file that is not a loadable object, lacks `async_module`,
 * speaks another ABI, is incomplete or repeats a loaded name is skipped:
 * logged (and added to p when p is not NULL) with the file and the reason.
 * So is one c->strict_modules refuses: the file (after symlinks) or the
 * folder writable by group or others, or owned by a user other than root
 * or asyncd's euid.  A file not named after the module it declares
 * (http-old.so declaring http) is skipped with a warning, not a problem.  Configs are not checked here
 * (asyncd_modules_check).  Returns the loaded modules, disabled ones
 * included. */
struct asyncd_module *asyncd_modules_load(const struct asyncd_config *c, struct asyncd_problems *p);

/* The files the last asyncd_modules_load or asyncd_modules_reload refused
 * (strict_modules, or a file not named after the module it declares),
 * "a.so (why), b.so (why)", or "": for STATUS=.  The daemon's fiber. */
const char *asyncd_modules_refused(void);

/* Starts m's run in a new group, supervised: once it has been ready, it is
 * restarted with back-off (1 s doubling to 60 s) when it fails while not
 * being stopped; if it ends before it was ready it is left FAILED.  -1
 * (errno) if it cannot be started, and then it is FAILED too.  Fiber. */
int asyncd_module_start(struct asyncd_module *m);

/* Tells m it is being stopped (async_module_stop_deadline answers
 * stop_by) while it still runs: drain_grace_ms, before the cancel, lets a
 * health endpoint answer 503 while everything else is served. */
void asyncd_module_warn_stop(struct asyncd_module *m, int64_t stop_by);

/* Cancels m's group (its fibers' parking calls fail with ECANCELED),
 * telling it that the daemon waits until stop_by (async_now_ms scale). */
void asyncd_module_cancel(struct asyncd_module *m, int64_t stop_by);

/* Parks until m's group is empty or the fiber's deadline passes: 0 or -1. */
int asyncd_module_join(struct asyncd_module *m);

/* Unloads a stopped (or never started) module and frees it. */
void asyncd_module_free(struct asyncd_module *m);

/* Cancels m and waits up to timeout_ms: 0 once its group is empty, or -1
 * (logged, naming it) if it is still running.  Fiber. */
int asyncd_module_stop(struct asyncd_module *m, int64_t timeout_ms);

/* Checks the modules part of c against the loaded modules: every enabled
 * module's config through its validate (or check) hook, every problem as
 * "FILE:LINE:COL: modules.NAME.PATH: message", and every modules.<name>
 * that no loaded module declares.  0, or -1 with the problems appended to
 * p.  From a fiber the hooks run on a helper thread. */
int asyncd_modules_check(const struct asyncd_config *c, const struct asyncd_module *loaded,
                         struct asyncd_problems *p);

/* asyncd_modules_check for a reload: against what the folder holds now,
 * the loaded modules whose file is still there and the modules of new
 * files (opened to read their name and hooks, then closed again). */
int asyncd_modules_check_folder(const struct asyncd_config *c, const struct asyncd_module *loaded,
                                struct asyncd_problems *p);

/* A reload against the new config c: modules whose file is gone, or that
 * are now disabled, are stopped and unloaded; a module whose file holds
 * other bytes than its private copy (content, not inode or mtime, decides)
 * is replaced by the new file once that has loaded and declares the same
 * name (else the running one stays, logged); modules whose config changed
 * while they run are replaced by a new generation loaded from the same
 * bytes (when that cannot be loaded, or the module failed to start, it is
 * restarted in place); new ones are loaded and started; the others are
 * left running untouched.  A replacement is a hand-over: the old
 * generation is cancelled (it stops accepting; its listening sockets are
 * the daemon's, listeners.h) and the new one starts at once on the same
 * sockets while the old drains: the old generation is put on *draining,
 * where a fiber of its own waits, within the shutdown timeout, for its
 * group to empty, and the reload does not wait for that drain
 * (asyncd_modules_reap finishes it).  A module stopped for good (its file
 * gone, its config rejected), disabled, or restarted in place (it failed
 * to start, or no new generation could be loaded) is stopped before the
 * reload goes on, as its sockets may be wanted by what the reload starts.
 * Returns the new list (old, as it was, if the folder cannot be read).  A
 * module that does not stop in time cannot be unloaded: it is moved to
 * *stuck.  Fiber. */
struct asyncd_module *asyncd_modules_reload(const struct asyncd_config *c,
                                            struct asyncd_module *old,
                                            struct asyncd_module **draining,
                                            struct asyncd_module **stuck);

/* The retired generations of *draining whose wait is over: joined and
 * unloaded, or moved to *stuck (logged, naming the module) when they did
 * not stop by the reload's deadline.  With stopping (asyncd stops: the
 * modules have been cancelled again, the caller's deadline set), every
 * one is waited for now.  timeout_ms names the bound in the log.
 * Whether any left *draining.  The daemon's fiber: each wait's end sends
 * a token on the watch channel. */
bool asyncd_modules_reap(struct asyncd_module **draining, struct asyncd_module **stuck,
                         bool stopping, int64_t timeout_ms);

/* SIGUSR1: calls the reopen hook of every module of list whose run is
 * running and that has one (ABI 2).  The hooks must not park.  Fiber (the
 * daemon's signal fiber, which also does reloads: no module is unloaded
 * while its hook runs). */
void asyncd_modules_reopen(struct asyncd_module *list);

#endif
