/* daemon/upgrade — SIGUSR2: a new asyncd from the installed binary takes
 * over the listening sockets, then the old one drains and exits.
 *
 * The old process (asyncd_upgrade_start) forks; the child points
 * LISTEN_PID at itself and execs the path asyncd was started from, with
 * the same arguments and working directory, the listener table's sockets
 * as descriptors 3.. (LISTEN_FDS, LISTEN_FDNAMES: asyncd_listeners_export)
 * and one more, the write end of a pipe, named by ASYNCD_UPGRADE_FD.  The
 * new process takes the sockets (daemon/inherit.c), starts its modules,
 * says READY=1 and MAINPID= to systemd, and writes one byte on that pipe
 * (asyncd_upgrade_tell_ready).  Any end of the new process before that
 * closes the pipe without the byte.  The old process waits for the byte
 * within a bound; the outcome comes to the daemon's fiber as an event. */
#ifndef ASYNCD_UPGRADE_H
#define ASYNCD_UPGRADE_H

#include <async_io.h>

#include <stdbool.h>
#include <stdint.h>

/* At start-up, before the working directory changes: the absolute path
 * of the binary (argv[0], made absolute against the working directory or
 * looked up in PATH; not /proc/self/exe, which names the old file once
 * the installed one was replaced), the arguments and the directory. */
void asyncd_upgrade_record(int argc, char **argv);

/* SIGUSR2 (the daemon's fiber): starts the new process and a fiber that
 * waits up to bound_ms for its byte, then sends event on events.  0, or
 * -1 when it could not start (logged, with why; nothing changed). */
int asyncd_upgrade_start(int64_t bound_ms, async_channel *events, int event);

/* An upgrade is under way (started, its event not handled yet). */
bool asyncd_upgrade_running(void);

/* The event came: true when the new process is ready (the old one must
 * stop accepting and drain); false when it failed: logged with why, the
 * new process reaped (killed first if it was still starting), and this
 * one serves on.  The daemon's fiber. */
bool asyncd_upgrade_finish(void);

/* asyncd stops while an upgrade is under way: stop waiting; the new
 * process goes on by itself (ready, it serves).  Whether one was. */
bool asyncd_upgrade_abandon(void);

/* In the new process: takes ASYNCD_UPGRADE_FD from the environment
 * (unset; before any thread exists). */
void asyncd_upgrade_take_fd(void);

/* In the new process, once ready: the byte to the old one.  No-op in a
 * process not started by an upgrade, and after the first call. */
void asyncd_upgrade_tell_ready(void);

/* This process is the new one of an upgrade and not ready yet: the old
 * one is still systemd's main process, and what this one tells systemd
 * (STOPPING=1 when it fails to start) would be taken for the service's
 * state. */
bool asyncd_upgrade_pending(void);

#endif
