/* asyncd — the module host: one runtime, every module of one folder, one
 * JSON file, run by systemd.
 *
 *   asyncd [--config FILE]        run (FILE defaults to ASYNCD_DEFAULT_CONFIG)
 *   asyncd --check-config [FILE]  validate the daemon's part and every
 *                                 module's part; exit 0 or 78 (EX_CONFIG)
 *   asyncd -t [FILE]              the same (nginx's spelling)
 *   asyncd -T [FILE]              the same, then print the effective
 *                                 configuration (every default filled in)
 *   asyncd --version | --help
 *
 * Start-up checks the config as --check-config does, modules' parts and
 * names included, and refuses a bad one (exit 78) before anything
 * listens: the modules are loaded, and checked, before the runtime
 * starts.  (A .so that cannot be loaded is an error for the check but
 * only logged and skipped at start-up: the others still run.)
 *
 * Signals: SIGHUP reloads (see reload()); SIGUSR1 reopens the log files
 * (logrotate); SIGUSR2 starts a new asyncd from the installed binary and
 * hands it the listening sockets, then drains and exits 0 once it is
 * ready, or serves on when it fails (upgrade.h); SIGTERM, SIGINT and
 * SIGQUIT stop every module (after drain_grace_ms, see drain_grace();
 * cancel, then wait up to shutdown_timeout_ms) and exit 0, or 1 naming a
 * module still
 * running at the deadline; the other signals that would end the process
 * without a fault of its own are logged and ignored (signals.c).  They are
 * received through a signalfd read by a fiber, so no handler ever runs on
 * a fiber's stack; that fiber hands them to the daemon's fiber on the same
 * channel as the modules' changes of state, so the daemon waits for both
 * at once.
 *
 * Log lines, the daemon's and the modules' log files, are written by the
 * log writer thread (logsink.c, logwriter.c); at exit what is queued is
 * written within EXIT_FLUSH_MS.
 *
 * A watcher thread (watcher.h) names a worker that a module's fiber keeps
 * from its scheduler, and pets systemd's watchdog only while there is
 * none; a fault writes one line naming the module before the process dies
 * of it (crash.h).  Both learn the modules from modmap.h, which this file
 * publishes whenever the list changes.
 *
 * READY=1 is sent once every started module is ready or has failed
 * (daemon/ready.h).  A module that is not optional and fails to start at
 * start-up makes asyncd stop the others and exit 1. */
#include "check.h"
#include "handlers.h"
#include "metrics_writers.h"
#include "inherit.h"
#include "listeners.h"
#include "config.h"
#include "crash.h"
#include "log.h"
#include "logsink.h"
#include "modmap.h"
#include "modules.h"
#include "monitor.h"
#include "notify.h"
#include "ready.h"
#include "signals.h"
#include "tally.h"
#include "upgrade.h"
#include "master.h"
#include "watcher.h"
#include "worker.h"

#include <async_io.h>

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#ifndef ASYNCD_DEFAULT_CONFIG
#define ASYNCD_DEFAULT_CONFIG "/etc/asyncd/asyncd.json"
#endif
#ifndef ASYNCD_VERSION
#define ASYNCD_VERSION "0.1.0"
#endif
#define EX_CONFIG 78
#define START_NAG_MS 10000      /* at start-up, name the modules not ready yet this often */
#define EVENT_MODULE 0          /* on the events channel: a module's state changed; */
#define EVENT_BROKEN (-1)       /* the signals cannot be read; */
#define EVENT_UPGRADE (-2)      /* the new process of an upgrade is ready or failed; */
                                /* any other: a signal */
#define EXIT_FLUSH_MS 2000      /* the most an exit waits for queued log lines */
#define UPGRADE_MIN_WAIT_MS 1000 /* a new process gets at least this to be ready */

struct daemon {
    const char *file;
    struct asyncd_config config;
    struct asyncd_module *modules;
    struct asyncd_module *draining;     /* generations a reload retired, draining */
    struct asyncd_module *stuck;        /* would not stop on reload: never unloaded */
    int sigfd;
    struct asyncd_signal_pump pump;
    int exit_code;
    async_channel *events;              /* ints: EVENT_*, or a signal number */
    enum asyncd_wait wait;              /* what READY=1 is being waited for */
    int64_t wait_began, wait_until;     /* async_now_ms; wait_until -1: no bound */
    bool reload_pending;                /* a SIGHUP came during the start-up wait */
    bool upgraded;                      /* a new process serves: this one drains */
};

static void print_problems(const struct asyncd_problems *p)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        asyncd_log(ASYNC_LOG_ERROR, "%s", p->msg[i]);
}

/* The modules, for the watcher thread and the crash handler (modmap.h). */
static void publish(const struct daemon *d)
{
    asyncd_modmap_publish(d->modules, d->draining, d->stuck);
}

/* Closes the listening sockets no generation holds; a worker process
 * then tells its master what it still holds. */
static void sweep(void)
{
    asyncd_listeners_sweep();
    asyncd_worker_holds();
}

static void begin_wait(struct daemon *d, enum asyncd_wait wait, int64_t bound_ms)
{
    d->wait = wait;
    d->wait_began = async_now_ms();
    d->wait_until = d->wait_began + bound_ms;
}

/* Starts every enabled module; READY=1 waits until they are ready. */
static void start_all(struct daemon *d)
{
    struct asyncd_module *m;
    unsigned started = 0;

    for (m = d->modules; m != NULL; m = m->next)
        if (m->enabled) {
            asyncd_module_start(m); /* a failure leaves it FAILED, with the reason */
            started++;
        }
    publish(d); /* their groups, for the watcher */
    asyncd_log(ASYNC_LOG_NOTICE, "starting %u module(s)", started);
    begin_wait(d, ASYNCD_WAIT_START, START_NAG_MS);
}

/* Cancels every module and waits for them up to the shutdown timeout.
 * Returns 0, or 1 if one is still running (then nothing is unloaded). */
static int stop_all(struct daemon *d)
{
    struct asyncd_module *m, *next, *late = NULL;
    int64_t deadline = async_now_ms() + d->config.shutdown_timeout_ms;
    int stuck = 0;

    /* not when the new process of an upgrade is systemd's main one now, nor
     * from that new process when it fails to start: the old one serves */
    if (!d->upgraded && !asyncd_upgrade_pending())
        asyncd_notify("STOPPING=1");
    for (m = d->modules; m != NULL; m = m->next)
        if (m->group != NULL)
            asyncd_module_cancel(m, deadline);
    asyncd_listeners_shutdown(); /* no successor will take them (unless one shares them) */
    asyncd_log(ASYNC_LOG_INFO, "draining: every module is cancelled; waiting up to %lld ms",
               (long long)d->config.shutdown_timeout_ms);
    async_deadline(deadline);
    /* generations still draining from reloads: unloaded, or late (logged) */
    if (asyncd_modules_reap(&d->draining, &late, true, d->config.shutdown_timeout_ms))
        publish(d);
    for (m = d->modules; m != NULL; m = m->next) {
        if (asyncd_module_join(m) != 0) {
            asyncd_log(ASYNC_LOG_ERROR, "module %s did not stop within %lld ms", m->desc->name,
                       (long long)d->config.shutdown_timeout_ms);
            stuck = 1;
        }
    }
    for (m = d->stuck; m != NULL; m = m->next) /* cancelled long ago */
        if (asyncd_module_join(m) != 0) {
            asyncd_log(ASYNC_LOG_ERROR, "module %s is still running", m->desc->name);
            stuck = 1;
        }
    while ((m = late) != NULL) {
        late = m->next;
        m->next = d->stuck;
        d->stuck = m;
        stuck = 1;
    }
    async_deadline(-1);
    if (stuck)
        return 1;
    asyncd_modmap_publish(NULL, NULL, NULL); /* before their code goes */
    for (m = d->modules; m != NULL; m = next) {
        next = m->next;
        asyncd_module_free(m);
    }
    d->modules = NULL;
    asyncd_handlers_free_all();
    asyncd_metrics_writers_free_all();
    asyncd_listeners_close_all();
    return 0;
}

/* The watchdog period systemd asked for (WATCHDOG_USEC, with WATCHDOG_PID
 * unset or ours), halved: how often to pet it; 0 when it asked for none.
 * The watcher thread pets it, and only while every worker makes
 * progress (watcher.h). */
static int64_t watchdog_period_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long us = usec != NULL ? strtoll(usec, NULL, 10) : 0;
    int64_t period_ms;

    if (us <= 0 || (pid != NULL && strtol(pid, NULL, 10) != (long)getpid()))
        return 0;
    period_ms = us / 2000 > 0 ? us / 2000 : 1;
    asyncd_log(ASYNC_LOG_INFO, "watchdog: petting every %lld ms while no worker is blocked",
               (long long)period_ms);
    return period_ms;
}

/* SIGHUP: re-read the file (a worker process: the bytes its master
 * checked) and the folder.  A config that fails validation is rejected as
 * a whole and the running one stays.  READY=1 waits, up to
 * shutdown_timeout_ms, for the modules it (re)started, not for the
 * generations it retired to drain. */
static void reload(struct daemon *d)
{
    struct asyncd_config next = {0};
    struct asyncd_problems p = {0};

    asyncd_notify_reloading();
    asyncd_log(ASYNC_LOG_NOTICE, "reloading %s", d->file);
    if (asyncd_worker_number() != 0 && asyncd_worker_fetch_config() != 0)
        asyncd_log(ASYNC_LOG_ERROR, "cannot get the configuration from the master: %s",
                   strerror(errno)); /* the load below fails, and says so */
    if (asyncd_config_load_off_stack(d->file, &next, &p) != 0 ||
        asyncd_modules_check_folder(&next, d->modules, &p) != 0) {
        asyncd_tally_reload(false); /* counted before it is told */
        asyncd_reload_rejected(&p, "the running configuration stays");
        asyncd_problems_free(&p);
        asyncd_config_free(&next);
        return;
    }
    asyncd_log_set_level(next.log_level);
    asyncd_watcher_set_warn_ms(next.blocked_warn_ms);
    d->modules = asyncd_modules_reload(&next, d->modules, &d->draining, &d->stuck);
    publish(d);
    asyncd_config_free(&d->config);
    d->config = next;
    asyncd_tally_reload(true); /* before begin_wait, which may log "reloaded" at once */
    begin_wait(d, ASYNCD_WAIT_RELOAD, d->config.shutdown_timeout_ms);
}

/* The modules a start or reload started are running (ready or failed),
 * or late: READY=1, and the listening sockets no generation claimed again
 * are closed now that their successors had their chance to take them. */
static void wait_over(struct daemon *d)
{
    sweep(); /* a worker process: before its master hears READY=1 */
    asyncd_ready_tell(d->modules, d->wait);
    if (d->wait == ASYNCD_WAIT_START)
        asyncd_upgrade_tell_ready(); /* after MAINPID= went to systemd */
    d->wait = ASYNCD_WAIT_NONE;
}

/* While READY=1 is waited for: looks at the modules, and says READY=1
 * when none is starting.  A reload deferred by the start-up wait runs
 * then, and its own wait is looked at at once: it may restart nothing,
 * and then no module's change would come to wake the daemon.  -1 if
 * asyncd must exit (a failed start). */
static int settle(struct daemon *d)
{
    while (d->wait != ASYNCD_WAIT_NONE) {
        int starting = asyncd_ready_look(d->modules, d->wait);

        if (starting < 0)
            return -1;
        if (starting > 0)
            return 0;
        wait_over(d);
        if (d->reload_pending) {
            d->reload_pending = false;
            reload(d);
        }
    }
    return 0;
}

/* The next event: a signal, a module's change, or ETIMEDOUT at the end
 * of the wait's bound.  0 or -1 (errno). */
static int next_event(struct daemon *d, int *ev)
{
    int64_t old = async_deadline(d->wait != ASYNCD_WAIT_NONE ? d->wait_until : -1);
    int rc = async_channel_receive(d->events, ev);
    int err = errno;

    async_deadline(old);
    errno = err;
    return rc;
}

/* The wait's bound passed: at start-up, say who is late and keep waiting
 * (systemd's TimeoutStartSec is the real bound, and SIGTERM is heard
 * meanwhile); after a reload, say who is late and report it done. */
static void late(struct daemon *d)
{
    asyncd_ready_late(d->modules, d->wait, async_now_ms() - d->wait_began);
    if (d->wait == ASYNCD_WAIT_START) {
        d->wait_until = async_now_ms() + START_NAG_MS;
        return;
    }
    wait_over(d);
}

/* SIGUSR1: the log files the daemon writes (its writer reopens them),
 * then the files modules write by themselves. */
static void reopen_logs(struct daemon *d)
{
    asyncd_log(ASYNC_LOG_NOTICE, "SIGUSR1: reopening log files");
    asyncd_logsink_reopen();
    asyncd_modules_reopen(d->modules);
}

/* SIGUSR2: a new binary takes over (daemon/upgrade.h), once this one is
 * settled: during the start-up or a reload the listener table is still
 * changing hands. */
static void upgrade(struct daemon *d)
{
    if (d->wait != ASYNCD_WAIT_NONE && !asyncd_upgrade_running()) {
        asyncd_log(ASYNC_LOG_WARNING, "SIGUSR2 during the %s: ignored; send it again once "
                   "asyncd is ready", d->wait == ASYNCD_WAIT_START ? "start-up" : "reload");
        return;
    }
    asyncd_upgrade_start(d->config.shutdown_timeout_ms > UPGRADE_MIN_WAIT_MS
                             ? d->config.shutdown_timeout_ms
                             : UPGRADE_MIN_WAIT_MS,
                         d->events, EVENT_UPGRADE);
}

/* drain_grace_ms: before a stop cancels anything, every module is told
 * it is being stopped (async_module_stop_deadline answers) and goes on
 * serving, listeners open, for the grace.  So a load balancer in front
 * (HAProxy) sees the http module's health route answer 503 and takes
 * this instance out while it still accepts: no request it sends meanwhile
 * meets a closed port.  A second stop signal ends the grace at once;
 * SIGHUP waits (a reload now would restart what is about to stop). */
static void drain_grace(struct daemon *d)
{
    int64_t until = async_now_ms() + d->config.drain_grace_ms, old;
    struct asyncd_module *m;
    int ev;

    if (d->config.drain_grace_ms <= 0)
        return;
    if (!asyncd_upgrade_pending()) /* a new process that failed: the old one serves */
        asyncd_notify("STOPPING=1");
    for (m = d->modules; m != NULL; m = m->next)
        if (m->group != NULL)
            asyncd_module_warn_stop(m, until + d->config.shutdown_timeout_ms);
    asyncd_log(ASYNC_LOG_NOTICE, "draining: serving on for drain_grace_ms (%lld ms) before "
               "the modules are stopped; health routes answer 503",
               (long long)d->config.drain_grace_ms);
    old = async_deadline(until);
    while (async_channel_receive(d->events, &ev) == 0) {
        if (ev == SIGTERM || ev == SIGINT || ev == SIGQUIT || ev == EVENT_BROKEN) {
            asyncd_log(ASYNC_LOG_NOTICE, "draining: grace cut short by a second stop");
            break;
        }
        if (ev == SIGUSR1)
            reopen_logs(d);
        else if (ev == SIGHUP || ev == SIGUSR2)
            asyncd_log(ASYNC_LOG_WARNING, "%s while stopping: ignored",
                       ev == SIGHUP ? "SIGHUP" : "SIGUSR2");
    }
    async_deadline(old);
}

/* Until a stop: waits for signals and the modules' readiness.  Returns
 * the exit code the stop should end with. */
static int serve(struct daemon *d)
{
    int ev;

    for (;;) {
        if (settle(d) != 0) {
            asyncd_log(ASYNC_LOG_ERROR, "stopping, to exit 1: a module that is not optional "
                       "failed to start");
            return 1;
        }
        if (next_event(d, &ev) != 0) {
            if (errno == ETIMEDOUT) {
                late(d);
                continue;
            }
            asyncd_log(ASYNC_LOG_ERROR, "waiting for events: %s", strerror(errno));
            return 1;
        }
        if (ev == EVENT_MODULE) {
            /* a retired generation drained: unloaded, and the sockets
             * only it held closed (during a wait, wait_over does that) */
            if (asyncd_modules_reap(&d->draining, &d->stuck, false,
                                    d->config.shutdown_timeout_ms)) {
                publish(d);
                if (d->wait == ASYNCD_WAIT_NONE)
                    sweep();
            }
            continue;
        }
        if (ev == EVENT_BROKEN)
            return 1;
        if (ev == EVENT_UPGRADE) {
            if (asyncd_upgrade_finish()) {
                d->upgraded = true;
                return 0;
            }
            continue;
        }
        if (ev == SIGUSR2 && asyncd_worker_number() != 0) {
            asyncd_log(ASYNC_LOG_WARNING, "SIGUSR2: a worker process does not upgrade; send it "
                       "to the master (pid %d)", (int)getppid());
            continue;
        }
        if (ev == SIGUSR2) {
            upgrade(d);
            continue;
        }
        if (ev == SIGHUP && asyncd_upgrade_running()) {
            asyncd_log(ASYNC_LOG_WARNING, "SIGHUP during an upgrade: ignored; send it to the "
                       "process that serves once the upgrade is over");
            continue;
        }
        if (ev == SIGHUP) {
            if (d->wait == ASYNCD_WAIT_START)
                d->reload_pending = true; /* the start-up rule first */
            else
                reload(d);
            continue;
        }
        if (ev == SIGUSR1) {
            reopen_logs(d);
            continue;
        }
        asyncd_log(ASYNC_LOG_NOTICE, "%s: stopping", strsignal(ev));
        return 0;
    }
}

static void *daemon_main(void *arg)
{
    struct daemon *d = arg;
    async_task *mon, *signals;
    int code;

    d->events = async_channel_new(sizeof(int));
    d->pump = (struct asyncd_signal_pump){d->sigfd, d->events, EVENT_BROKEN};
    signals = d->events != NULL ? async_spawn(asyncd_signals_pump, &d->pump) : NULL;
    if (signals == NULL) {
        asyncd_log(ASYNC_LOG_ERROR, "cannot start: %s", strerror(errno));
        async_channel_free(d->events);
        d->exit_code = 1;
        return NULL;
    }
    asyncd_modules_watch(d->events);
    start_all(d); /* loaded and checked by main */
    if (asyncd_watcher_start(async_runtime_self(), d->config.blocked_warn_ms,
                             watchdog_period_ms()) != 0)
        asyncd_log(ASYNC_LOG_WARNING, "no watcher thread (%s): blocked workers go unnoticed "
                   "and systemd's watchdog is not petted", strerror(errno));
    mon = asyncd_monitor_start();
    code = serve(d);
    /* stopped during an upgrade: the new process goes on, and may be
     * systemd's main one already, so this one says no STOPPING=1 */
    if (asyncd_upgrade_abandon())
        d->upgraded = true;
    if (code == 0 && !d->upgraded) /* a stop signal: not a failed start, not an upgrade */
        drain_grace(d);
    asyncd_watcher_stop();
    asyncd_monitor_stop(mon);
    async_cancel(signals);
    async_join(signals, NULL);
    d->exit_code = stop_all(d);
    if (d->exit_code == 0)
        d->exit_code = code;
    if (d->exit_code != 0 && d->modules != NULL) {
        /* A module ignores cancellation: its code must stay mapped, and the
         * runtime would wait for it forever. */
        asyncd_log(ASYNC_LOG_ERROR, "exiting with modules still running");
        asyncd_logsink_stop(EXIT_FLUSH_MS);
        _exit(1);
    }
    asyncd_modules_watch(NULL);
    async_channel_free(d->events);
    return NULL;
}

static void free_modules(struct asyncd_module *m)
{
    struct asyncd_module *next;

    for (; m != NULL; m = next) {
        next = m->next;
        asyncd_module_free(m);
    }
}

/* asyncd -T: the effective configuration on stdout, as JSON. */
static int print_effective(const struct asyncd_config *c, const struct asyncd_module *list)
{
    const struct async_module **mods;
    const struct asyncd_module *m;
    size_t n = 0;
    json_t *eff = NULL;
    int rc;

    for (m = list; m != NULL; m = m->next)
        n++;
    mods = calloc(n + 1, sizeof(*mods));
    for (n = 0, m = list; mods != NULL && m != NULL; m = m->next)
        mods[n++] = m->desc;
    if (mods != NULL)
        eff = asyncd_effective_config(c, mods, n);
    free(mods);
    rc = eff != NULL && json_dumpf(eff, stdout, JSON_INDENT(2)) == 0 && putchar('\n') != EOF &&
         fflush(stdout) == 0 ? 0 : 1;
    json_decref(eff);
    if (rc != 0)
        fprintf(stderr, "cannot print the effective configuration\n");
    return rc;
}

/* --check-config, -t, and with effective -T.  Problems go to stderr; the
 * verdict of -T too, so that its stdout is JSON and nothing else. */
static int check_config(const char *file, bool effective)
{
    struct asyncd_config c;
    struct asyncd_problems p = {0};
    struct asyncd_module *list = NULL;
    size_t i;
    int rc;

    rc = asyncd_config_load(file, &c, &p);
    if (c.root != NULL && json_is_object(c.root)) {
        list = asyncd_modules_load(&c, &p);
        asyncd_modules_check(&c, list, &p);
    }
    for (i = 0; i < p.n; i++)
        fprintf(stderr, "%s\n", p.msg[i]);
    rc = p.n == 0 && rc == 0 ? 0 : EX_CONFIG;
    if (rc == 0 && effective)
        rc = print_effective(&c, list);
    if (rc == 0)
        fprintf(effective ? stderr : stdout, "%s: configuration OK\n", file);
    free_modules(list);
    asyncd_problems_free(&p);
    asyncd_config_free(&c);
    return rc;
}

/* Relative paths in the file, modules' included, resolve against its
 * folder: make that the working directory, and keep the file's absolute
 * name for reloads.  Returns the name to use from now on (malloc'd, or
 * NULL with file left as it is when it cannot be resolved; loading it then
 * reports why). */
static char *enter_config_dir(const char *file)
{
    char *abs = realpath(file, NULL), *copy;

    if (abs == NULL)
        return NULL;
    copy = strdup(abs);
    if (copy == NULL || chdir(dirname(copy)) != 0) {
        free(copy);
        free(abs);
        return NULL;
    }
    free(copy);
    return abs;
}

/* A server holds a descriptor per connection: take every descriptor the
 * hard limit allows (the soft limit is often 1024, for the sake of old
 * select() users; the runtime uses epoll). */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            asyncd_log(ASYNC_LOG_WARNING, "cannot raise the descriptor limit: %s",
                       strerror(errno));
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: asyncd [--config FILE]             run\n"
               "       asyncd --check-config [FILE]       check FILE, modules included; exit 0 or 78\n"
               "       asyncd -t [FILE]                   the same\n"
               "       asyncd -T [FILE]                   check, then print the effective\n"
               "                                          configuration (defaults filled in)\n"
               "       asyncd --version | --help\n"
               "default FILE: %s\n", ASYNCD_DEFAULT_CONFIG);
}

/* The command line: -1 to go on serving *file, or the exit code of a
 * command that is complete (--check-config, --version, --help, a bad
 * argument). */
static int parse_args(int argc, char **argv, const char **file)
{
    int i, rc;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            *file = argv[++i];
        } else if (strcmp(argv[i], "--check-config") == 0 || strcmp(argv[i], "-t") == 0 ||
                   strcmp(argv[i], "-T") == 0) {
            const char *f = i + 1 < argc ? argv[i + 1] : *file;
            char *abs = enter_config_dir(f);

            rc = check_config(abs != NULL ? abs : f, strcmp(argv[i], "-T") == 0);
            free(abs);
            return rc;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("asyncd %s (module ABI %d)\n", ASYNCD_VERSION, ASYNC_MODULE_ABI_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* The configuration and the modules it names, checked together: 0, or
 * the problems printed and everything given back. */
static int load_config(struct daemon *d)
{
    struct asyncd_problems p = {0};
    int rc = asyncd_config_load(d->file, &d->config, &p);

    if (rc == 0) {
        asyncd_log_set_level(d->config.log_level);
        d->modules = asyncd_modules_load(&d->config, NULL); /* unloadable files: logged, skipped */
        rc = asyncd_modules_check(&d->config, d->modules, &p);
    }
    if (rc != 0) {
        print_problems(&p);
        asyncd_log(ASYNC_LOG_ERROR, "%s: configuration rejected", d->file);
        free_modules(d->modules);
        d->modules = NULL;
        asyncd_config_free(&d->config);
    }
    asyncd_problems_free(&p);
    return rc;
}

/* Signals arrive on a signalfd.  Blocked before any thread exists (the
 * log writer's, the runtime's workers, the blocking-call helpers), so
 * every one inherits the mask and the signals queue there. */
static int take_signals(struct daemon *d)
{
    sigset_t set;

    if (asyncd_signals_block(&set) != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "blocking signals: %s", strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->sigfd < 0) {
        asyncd_log(ASYNC_LOG_ERROR, "signalfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* "processes" > 1: this process becomes their master (master.h); it
 * runs no module, and its runtime one worker thread.  The exit code. */
static int run_master(struct daemon *d)
{
    struct asyncd_master m = {.file = d->file, .config = d->config, .modules = d->modules,
                              .sigfd = d->sigfd, .watchdog_ms = watchdog_period_ms()};
    struct async_config rc = {.workers = 1};

    asyncd_log(ASYNC_LOG_INFO, "asyncd %s starting with %s (pid %d): master of %u worker "
               "processes", ASYNCD_VERSION, d->file, (int)getpid(), d->config.processes);
    if (async_runtime(&rc, asyncd_master_main, &m) != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "cannot start the runtime: %s", strerror(errno));
        m.exit_code = 1;
    }
    free_modules(m.modules);
    asyncd_config_free(&m.config);
    close(d->sigfd);
    asyncd_log(ASYNC_LOG_NOTICE, "stopped");
    asyncd_logsink_stop(EXIT_FLUSH_MS);
    return m.exit_code;
}

int main(int argc, char **argv)
{
    struct daemon d = {.sigfd = -1, .stuck = NULL};
    struct async_config rc;
    const char *file = ASYNCD_DEFAULT_CONFIG;
    static char *abs_file; /* static: stays reachable until exit */
    int done;

    asyncd_log_init();
    asyncd_upgrade_record(argc, argv); /* before the working directory changes */
    if ((done = parse_args(argc, argv, &file)) >= 0)
        return done;
    asyncd_worker_take(); /* a worker process of a master: before any thread */
    asyncd_inherit_listeners(); /* before any thread: it unsets LISTEN_* */
    asyncd_upgrade_take_fd();
    abs_file = enter_config_dir(file);
    d.file = abs_file != NULL ? abs_file : file;
    if (asyncd_worker_number() != 0 && asyncd_worker_fetch_config() != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "cannot get the configuration from the master: %s",
                   strerror(errno));
        return 1;
    }
    if (load_config(&d) != 0)
        return EX_CONFIG;
    raise_nofile();
    if (take_signals(&d) != 0)
        return 1;
    if (asyncd_logsink_start() != 0)
        asyncd_log(ASYNC_LOG_WARNING, "no log writer thread (%s): log lines are written by "
                   "the threads that log them, and modules cannot open log files",
                   strerror(errno));
    if (d.config.processes > 1 && asyncd_worker_number() == 0) {
        asyncd_crash_install();
        return run_master(&d);
    }
    asyncd_modmap_publish(d.modules, NULL, NULL);
    asyncd_crash_install(); /* before the runtime's overflow handler, which chains to it */
    rc.workers = d.config.workers;
    rc.stack_size = d.config.stack_size;
    asyncd_log(ASYNC_LOG_INFO, "asyncd %s starting with %s (pid %d)", ASYNCD_VERSION, d.file,
               (int)getpid());
    if (async_runtime(&rc, daemon_main, &d) != 0) {
        asyncd_log(ASYNC_LOG_ERROR, "cannot start the runtime: %s", strerror(errno));
        asyncd_logsink_stop(EXIT_FLUSH_MS);
        return 1;
    }
    close(d.sigfd);
    asyncd_config_free(&d.config);
    asyncd_log(ASYNC_LOG_NOTICE, "stopped");
    asyncd_logsink_stop(EXIT_FLUSH_MS);
    return d.exit_code;
}
