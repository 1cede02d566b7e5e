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
 *     'L' address '\0' module '\0' nth     a listening socket for this
 *                                          key (listeners.c's keys: nth
 *                                          counts a port-0 address's asks)
 *     'H' (address '\0' module '\0' nth '\0')*
 *                                          every key the worker holds now,
 *                                          after its sweep: the rest may go
 *     'N' text                             an sd_notify message
 *   master -> worker
 *     'R' errno(int) [owner]               the answer to 'L': 0 with the
 *                                          socket (SCM_RIGHTS), or an errno
 *                                          (EADDRINUSE: the module owning it)
 *
 * Only 'L' is answered, and only one 'L' is outstanding (a mutex), so the
 * worker reads exactly its own answer; 'H' and 'N' are sent from any
 * thread and never wait (a full link drops an 'N', never blocks). */
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

/* The master's socket for key (address, module, nth): a descriptor of
 * the caller's own, or -1 with errno (EADDRINUSE: the module that owns
 * the address into owner; EPIPE: the master is gone).  Parks.  A fiber. */
int asyncd_worker_listen(const char *address, const char *module, unsigned nth, char *owner,
                         size_t len);

/* text (an sd_notify message) to the master.  Any thread. */
void asyncd_worker_notify(const char *text, size_t len);

/* Every key the listener table holds, to the master ('H').  Any thread. */
void asyncd_worker_holds(void);

#endif
