/* daemon/listeners.c — the listening sockets asyncd keeps for its modules.
 *
 * Why.  A module that bound its own sockets closed them when it stopped,
 * so a reload (new config, new .so) refused connects until the next
 * generation had bound again, and reset the connections waiting in the
 * accept queue.  Here the daemon binds a socket the first time a module
 * asks for its address and keeps it while any generation of that module
 * holds it; each generation accepts through a borrowed listener
 * (async_listener_borrow), whose close neither closes nor shuts the
 * socket down.  During a hand-over the old generation stops accepting
 * (its acceptors are cancelled) while the new one starts: a connection
 * that arrives meanwhile waits in the queue for the new one.
 *
 * Keys.  An address is the string the module gave ("127.0.0.1:8080").
 * One module owns an address; another module asking for it gets
 * EADDRINUSE (and the log names both) while the owner holds it; the same
 * module asking twice gets the same socket twice.  Port 0 asks for a port
 * of the socket's own, never shared: there the key is the address, the
 * module and which of the run's asks for that address it is (the nth),
 * so each generation gets its predecessor's ephemeral ports back in
 * order.  Two spellings of one address ("localhost:80", "127.0.0.1:80")
 * are two keys: the second bind fails in the kernel with EADDRINUSE.
 *
 * Lifetime.  Each generation (struct asyncd_module) keeps the list of
 * entries it claimed; holders counts the generations holding an entry.
 * A generation lets go when its run will not run again or its group is
 * joined; asyncd_listeners_sweep closes entries nobody holds, and the
 * daemon calls it only once the generations a reload started are running,
 * so a new generation has claimed its predecessor's sockets by then.
 * (Later, the same table can be filled from LISTEN_FDS or handed to a new
 * binary: it is the set of sockets the daemon serves on.)
 *
 * Threads.  Module fibers (any worker) claim; the daemon's fiber sweeps;
 * supervisors release.  lock guards the entry list, every entry's owner
 * and holders, and every generation's claims.  Nothing parks under it:
 * a bind that resolves a name runs outside it, and the race that opens
 * (two generations binding one new address) is settled by looking again. */
#include "listeners.h"

#include "log.h"
#include "modules.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct entry {
    struct entry *next;
    char *address;              /* the key, as the module asked */
    async_listener *l;          /* the daemon's handle: owns the socket, never accepts */
    char owner[64];             /* the module that holds it */
    unsigned holders;           /* generations holding it */
    bool ephemeral;             /* port 0: the owner's alone, the nth it asked for */
    unsigned nth;
};

struct asyncd_claim {
    struct asyncd_claim *next;
    struct entry *e;
    bool used;                  /* asked for by the current run of the generation */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;

static bool ephemeral(const char *address)
{
    int port = -1;

    return async_address_parse(address, NULL, 0, &port, NULL) == 0 && port == 0;
}

/* Which of m's asks for address this is, counting from 0 (port 0 only). */
static unsigned nth_ask(const struct asyncd_module *m, const char *address)
{
    const struct asyncd_claim *cl;
    unsigned n = 0;

    for (cl = m->claims; cl != NULL; cl = cl->next)
        n += cl->used && cl->e->ephemeral && strcmp(cl->e->address, address) == 0;
    return n;
}

/* The entry m's ask for address is answered with, or NULL. */
static struct entry *find(const char *address, const struct asyncd_module *m)
{
    bool eph = ephemeral(address);
    unsigned nth = eph ? nth_ask(m, address) : 0;
    struct entry *e;

    for (e = entries; e != NULL; e = e->next)
        if (strcmp(e->address, address) == 0 &&
            (!eph || (strcmp(e->owner, m->desc->name) == 0 && e->nth == nth)))
            return e;
    return NULL;
}

/* m's claim on e (made if m has none), and a borrowed listener on it; or
 * NULL with EADDRINUSE (another module's: its name in owner), ENOMEM.
 * Under lock. */
static async_listener *take(struct entry *e, struct asyncd_module *m, char *owner, size_t len)
{
    const char *name = m->desc->name;
    struct asyncd_claim *cl;

    if (e->holders > 0 && strcmp(e->owner, name) != 0) {
        snprintf(owner, len, "%s", e->owner);
        errno = EADDRINUSE;
        return NULL;
    }
    for (cl = m->claims; cl != NULL && cl->e != e; cl = cl->next)
        ;
    if (cl == NULL) {
        if ((cl = malloc(sizeof(*cl))) == NULL)
            return NULL;
        cl->e = e;
        cl->next = m->claims;
        m->claims = cl;
        e->holders++;
        snprintf(e->owner, sizeof(e->owner), "%s", name);
    }
    cl->used = true;
    return async_listener_borrow(async_listener_fd(e->l));
}

/* A new entry for m's ask for address over bound (taken), or NULL
 * (ENOMEM). */
static struct entry *add(const char *address, const struct asyncd_module *m,
                         async_listener *bound)
{
    struct entry *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->address = strdup(address)) == NULL) {
        free(e);
        return NULL;
    }
    e->l = bound;
    e->ephemeral = ephemeral(address);
    e->nth = e->ephemeral ? nth_ask(m, address) : 0;
    snprintf(e->owner, sizeof(e->owner), "%s", m->desc->name);
    e->next = entries;
    entries = e;
    return e;
}

/* After a bind failed with EADDRINUSE: the module holding a socket on
 * address's port (another spelling of the address, or one that covers
 * it), into owner; false if none of ours does. */
static bool port_owner(const char *address, char *owner, size_t len)
{
    struct entry *e;
    int port = 0;
    bool found = false;

    if (async_address_parse(address, NULL, 0, &port, NULL) != 0 || port == 0)
        return false;
    pthread_mutex_lock(&lock);
    for (e = entries; e != NULL && !found; e = e->next)
        if (e->holders > 0 && async_listener_port(e->l) == port) {
            snprintf(owner, len, "%s (%s)", e->owner, e->address);
            found = true;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

async_listener *asyncd_host_listen(async_module_host *host, const char *address)
{
    struct asyncd_module *m = host != NULL ? host->module : NULL;
    async_listener *bound = NULL, *l = NULL;
    char owner[400] = "";
    struct entry *e;
    int err = 0;

    if (m == NULL || address == NULL) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    e = find(address, m);
    pthread_mutex_unlock(&lock);
    if (e == NULL && (bound = async_listener_bind(address)) == NULL) {
        err = errno;
        if (err == EADDRINUSE && port_owner(address, owner, sizeof(owner)))
            asyncd_log(ASYNC_LOG_ERROR, "module %s cannot listen on %s: module %s listens "
                       "there", m->desc->name, address, owner);
        errno = err;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    if ((e = find(address, m)) == NULL && (e = add(address, m, bound)) != NULL)
        bound = NULL;
    if (e == NULL || (l = take(e, m, owner, sizeof(owner))) == NULL)
        err = e == NULL ? ENOMEM : errno;
    pthread_mutex_unlock(&lock);
    if (bound != NULL) /* bound meanwhile by another generation, or no memory */
        async_listener_close(bound);
    if (err == EADDRINUSE)
        asyncd_log(ASYNC_LOG_ERROR, "module %s cannot listen on %s: module %s listens there",
                   m->desc->name, address, owner);
    if (l == NULL)
        errno = err;
    return l;
}

void asyncd_listeners_run_begins(struct asyncd_module *m)
{
    struct asyncd_claim *cl;

    pthread_mutex_lock(&lock);
    for (cl = m->claims; cl != NULL; cl = cl->next)
        cl->used = false;
    pthread_mutex_unlock(&lock);
}

void asyncd_listeners_release(struct asyncd_module *m)
{
    struct asyncd_claim *cl, *next;

    pthread_mutex_lock(&lock);
    for (cl = m->claims; cl != NULL; cl = next) {
        next = cl->next;
        cl->e->holders--;
        free(cl);
    }
    m->claims = NULL;
    pthread_mutex_unlock(&lock);
}

/* Closes the entries nobody holds, or all of them. */
static void close_entries(bool all)
{
    struct entry **pe, *e, *gone = NULL;

    pthread_mutex_lock(&lock);
    for (pe = &entries; (e = *pe) != NULL;) {
        if (all || e->holders == 0) {
            *pe = e->next;
            e->next = gone;
            gone = e;
        } else {
            pe = &e->next;
        }
    }
    pthread_mutex_unlock(&lock);
    for (e = gone; e != NULL; e = gone) {
        gone = e->next;
        async_listener_close(e->l);
        if (!all)
            asyncd_log(ASYNC_LOG_INFO, "closed listener %s: module %s listens there no more",
                       e->address, e->owner);
        free(e->address);
        free(e);
    }
}

void asyncd_listeners_sweep(void)
{
    close_entries(false);
}

void asyncd_listeners_shutdown(void)
{
    struct entry *e;

    pthread_mutex_lock(&lock);
    for (e = entries; e != NULL; e = e->next)
        shutdown(async_listener_fd(e->l), SHUT_RD);
    pthread_mutex_unlock(&lock);
}

void asyncd_listeners_close_all(void)
{
    close_entries(true);
}
