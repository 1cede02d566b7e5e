/* daemon/listeners — the listening sockets asyncd keeps for its modules,
 * by address, across module generations (async_module_listen). */
#ifndef ASYNCD_LISTENERS_H
#define ASYNCD_LISTENERS_H

#include <async_io/module.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct asyncd_module;
struct asyncd_claim;    /* one socket a generation holds (listeners.c) */

/* The host call behind async_module_listen: a borrowed listener on the
 * daemon's socket for address, bound on first use.  NULL + EADDRINUSE
 * when another module holds the address (logged, naming both), or the
 * error of async_listener_bind / async_listener_borrow.  Parks only to
 * resolve a host name.  Any fiber. */
async_listener *asyncd_host_listen(async_module_host *host, const char *address);

/* m's run starts (again): its asks for port 0 count from the first. */
void asyncd_listeners_run_begins(struct asyncd_module *m);

/* m's generation uses its sockets no more (its run will not run again, or
 * its group was joined).  Idempotent.  Any thread. */
void asyncd_listeners_release(struct asyncd_module *m);

/* Closes the sockets no generation holds: once the generations a reload
 * started are running (ready or failed), so that a new generation takes
 * its predecessor's sockets before they could go.  The daemon's fiber. */
void asyncd_listeners_sweep(void);

/* asyncd stops (SIGTERM): every socket stops listening at once, so a
 * connect is refused rather than left waiting for an accept that will
 * not come; what is queued is reset.  The descriptors stay open (a
 * module's acceptor may still be parked on one: its cancel wakes it)
 * until asyncd_listeners_close_all. */
void asyncd_listeners_shutdown(void);

/* A new asyncd holds the sockets too (a binary upgrade), or (false) no
 * more: while it does, asyncd_listeners_shutdown shuts none down, so the
 * accept queues the new process shares stay whole.  Any thread. */
void asyncd_listeners_shared(bool yes);

/* The sockets held now, for a new binary: their descriptors into *fds
 * and their names, ':'-separated in LISTEN_FDNAMES's format, into *names
 * (both malloc'd; the descriptors stay the table's).  The count, or -1
 * ENOMEM. */
int asyncd_listeners_export(int **fds, char **names);

/* Puts fd, an inherited listening stream socket, into the table under
 * name[0..len) (a name asyncd_listeners_export made; any other name only
 * labels it, and the socket goes to the module whose address resolves to
 * its own).  The table owns fd from now on.  0, or -1 ENOMEM.  Before
 * the runtime starts. */
int asyncd_listeners_adopt(int fd, const char *name, size_t len);

/* ---- in a master (daemon/master.h) ----
 *
 * The master's table holds the worker processes' sockets; each worker's
 * own table holds the copies it was lent (as inherited ones: only ever
 * closed).  An entry's holders are the workers holding it; a worker that
 * dies keeps its holds for the one that replaces it, until that one says
 * what it holds; the sweep then closes what no worker holds. */

/* The socket for worker number's ask for key (address, module, nth):
 * found, matched to an inherited one, or bound; now held by number.  Its
 * descriptor (the table's: send a copy), or -1 with errno (EADDRINUSE:
 * another module's, named in owner).  Parks only to resolve a name. */
int asyncd_listeners_lend(unsigned number, const char *address, const char *module,
                          unsigned nth, char *owner, size_t len);

/* Worker number holds exactly the keys of an 'H' message (worker.h) in
 * keys[0..len) now; NULL: none (it is gone for good). */
void asyncd_listeners_slot_holds(unsigned number, const char *keys, size_t len);

/* In a worker: every key held, as an 'H' message's body, into buf[0..cap);
 * its length, or -1 when they do not all fit. */
ssize_t asyncd_listeners_keys(char *buf, size_t cap);

/* Closes every socket (asyncd exits; every module has stopped). */
void asyncd_listeners_close_all(void);

#endif
