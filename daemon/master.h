/* daemon/master — "processes": N > 1.  This asyncd runs no module: it
 * holds the listening sockets and keeps N worker processes alive, each a
 * whole asyncd (its own runtime, modules and reloads; daemon/worker.h),
 * so that a module's crash (SIGSEGV, abort, the OOM killer) ends one
 * process and fails only the requests in flight there.
 *
 *   - Workers are this binary (/proc/self/exe: the master's own version,
 *     whatever is installed meanwhile) run with the absolute config path
 *     and, as descriptor 3, a SOCK_SEQPACKET link to the master.  They
 *     run the configuration bytes the master checked last (never the
 *     file, which may have been edited since), keep the daemon's signals
 *     blocked across their exec (a SIGHUP handed on while one loads
 *     waits for its signalfd), and die with the master
 *     (PR_SET_PDEATHSIG: SIGTERM, a drain).
 *   - A worker asks the master for each listening socket (by the keys
 *     listeners.c uses); the master binds it once and lends every worker
 *     a copy, so all accept from one queue, and a dead worker's queue
 *     survives it (SO_REUSEPORT would reset it).
 *   - A worker that ends is logged with its signal or status and started
 *     again: at once, unless the one before it also died within
 *     STABLE_MS of its start; then after a back-off that doubles from
 *     FIRST_DELAY_MS up to MAX_DELAY_MS with each such death in a row.  One
 *     that exits with a non-zero status before the start-up is over (a
 *     bad config, a module that is not optional failing) stops asyncd
 *     with status 1: starting it again would fail again.
 *   - systemd hears the master only: READY=1 once every worker is ready
 *     (at start-up, and after a reload once every worker has reloaded
 *     with the configuration the reload accepted), RELOADING=1,
 *     STOPPING=1, MAINPID.
 *   - SIGHUP: the master checks the new config as a reload does (a bad
 *     one is rejected once, here, and nothing is told), takes a new
 *     "processes" (more workers started, the extra ones drained), and
 *     hands SIGHUP to every worker.  SIGUSR1: its own log files, then to
 *     every worker.  SIGTERM, SIGINT, SIGQUIT: to every worker (each
 *     drains as a lone asyncd would); a second one is handed on too
 *     (cuts their grace); workers still running drain_grace_ms +
 *     shutdown_timeout_ms + KILL_MARGIN_MS later are killed.  SIGUSR2:
 *     the binary upgrade of upgrade.h, master to master: the new master
 *     inherits the sockets and starts its own workers; once they are all
 *     ready, this master stops its own.
 *
 * Threads.  The master's runtime has one worker: the daemon's fiber, one
 * supervising fiber per worker process and the signal pump share it, so
 * the state below needs no lock; the listener table has its own. */
#ifndef ASYNCD_MASTER_H
#define ASYNCD_MASTER_H

#include "config.h"

#include <stdint.h>

struct asyncd_module;

struct asyncd_master {
    const char *file;               /* the config, absolute */
    struct asyncd_config config;    /* taken over: the master frees it */
    struct asyncd_module *modules;  /* loaded for checks, never run */
    int sigfd;                      /* asyncd_signals_block's set */
    int64_t watchdog_ms;            /* pet systemd's watchdog this often (0: it asked none) */
    int exit_code;                  /* out */
};

/* The runtime's main fiber of a master (arg: struct asyncd_master). */
void *asyncd_master_main(void *arg);

#endif
