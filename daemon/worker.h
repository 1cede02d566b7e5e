/* daemon/worker — this asyncd as worker process N of a master
 * (daemon/master.h): the link to the master, and what goes over it.
 *
 * A worker is a whole asyncd (its own runtime, its own modules, its own
 * reloads) with three differences: its listening sockets come from the
 * master, which keeps them across the worker's death; what it would tell
 * systemd goes to the master, which speaks for all of them; and its log
 * lines carry its number ("http/2: ...").
 *
 * The link is a SOCK_SEQPACKET socket, one message per request:
 *
 *   worker -> master
 *     'C'                                  the configuration the master
 *                                          checked last (a memfd of its
 *                                          bytes): a worker never reads
 *                                          the file, so one started after
 *                                          an edit not yet reloaded runs
 *                                          what the others run
 *     'L' address '\0' module '\0' nth     a listening socket for this
 *                                          key (listeners.c's keys: nth
 *                                          counts a port-0 address's asks)
 *     'H' (address '\0' module '\0' nth '\0')*
 *                                          every key the worker holds now,
 *                                          after its sweep: the rest may go
 *     'N' text                             an sd_notify message
 *   master -> worker
 *     'R' errno(int) [owner]               the answer to 'C' or 'L': 0 with
 *                                          the descriptor (SCM_RIGHTS), or
 *                                          an errno (EADDRINUSE: the module
 *                                          owning the address)
 *
 * Only 'C' and 'L' are answered, one at a time: the link's lock
 * (asyncd_worker_lock) is held from the ask to the answer, shielded from
 * cancellation, so each asker reads its own answer.  The lock is also
 * what keeps an 'H' from overtaking an 'L': listeners.c holds it from an
 * ask until the socket is in its table, and asyncd_worker_holds while it
 * reads the table.  'N' is sent from any thread. */
#ifndef ASYNCD_WORKER_H
#define ASYNCD_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#define ASYNCD_LINK_MAX 65536    /* the longest message either side sends */

/* At start-up, before any thread: takes ASYNCD_MASTER_FD and
 * ASYNCD_PROCESS from the environment (unset).  Whether this process is
 * a worker; a malformed pair is logged and the process exits 1 (a
 * worker without its master must not serve on its own). */
bool asyncd_worker_take(void);

/* This worker's number (1..processes), or 0 when not a worker. */
unsigned asyncd_worker_number(void);

/* The link's lock, around an ask and what the answer is put into: 0, or
 * -1 errno (ETIMEDOUT: the fiber's deadline; a cancel does not stop it).
 * Fibers (they park); no-ops before the runtime starts (one thread) and
 * in a process that is not a worker. */
int  asyncd_worker_lock(void);
void asyncd_worker_unlock(void);

/* The master's socket for key (address, module, nth): a descriptor of
 * the caller's own, or -1 with errno (EADDRINUSE: the module that owns
 * the address into owner; EPIPE: the master is gone).  Under the link's
 * lock.  Parks. */
int asyncd_worker_listen(const char *address, const char *module, unsigned nth, char *owner,
                         size_t len);

/* Asks the master for the configuration it checked last and keeps it
 * for the next asyncd_worker_take_config: 0, or -1 errno.  On a fiber
 * (it parks) or before the runtime starts (it polls). */
int asyncd_worker_fetch_config(void);

/* The descriptor fetched (the caller's from now on), or -1 errno
 * (ENOENT: none was fetched).  Any thread. */
int asyncd_worker_take_config(void);

/* text (an sd_notify message) to the master: READY=1 must arrive, so a
 * full link is waited on for a bounded time.  Any thread. */
void asyncd_worker_notify(const char *text, size_t len);

/* Every key the listener table holds, to the master ('H').  A fiber. */
void asyncd_worker_holds(void);

#endif
