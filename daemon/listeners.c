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
 *
 * Inherited sockets.  The table is also filled from outside (daemon/
 * inherit.c: systemd's LISTEN_FDS, or the asyncd this one upgrades) and
 * handed to a new binary (daemon/upgrade.c, asyncd_listeners_export).
 * Such a socket is named by its key, encoded for LISTEN_FDNAMES (':' and
 * '%' and '#' as %3A %25 %23; a port-0 key adds "#module#nth"), and until
 * a module claims it, a module's address that resolves to the socket's
 * own (same family, address and port; or both the wildcard address of
 * either family and one port) takes it even when spelled otherwise.  One
 * nobody claimed by the end of the start-up is closed by the sweep.  An
 * inherited socket may be held by another process too (systemd keeps
 * activated sockets; the old asyncd keeps its copies while it drains), so
 * it is only ever closed, never shut down: a shutdown would reset the
 * accept queue for every holder.  For the same reason, once a new binary
 * holds the table (asyncd_listeners_shared) nothing is shut down at all.
 *
 * Threads.  Module fibers (any worker) claim; the daemon's fiber sweeps;
 * supervisors release; main adopts inherited sockets before the runtime
 * starts.  lock guards the entry list, every entry's owner, holders and
 * key (an inherited one is renamed when a module claims it), every
 * generation's claims, unclaimed_inherited and, in a master, every
 * entry's slots (the worker processes holding it).  Nothing parks under it:
 * a bind or a match that resolves a name runs outside it, and the race
 * that opens (two generations binding one new address) is settled by
 * looking again.  shared is atomic: set by the daemon's fiber, read by
 * whichever thread stops. */
#include "listeners.h"

#include "check.h"
#include "log.h"
#include "modules.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct entry {
    struct entry *next;
    char *address;              /* the key, as the module asked (or as inherited) */
    async_listener *l;          /* the daemon's handle: owns the socket, never accepts;
                                 * NULL for an inherited socket (fd is then the daemon's) */
    int fd;                     /* the socket */
    struct sockaddr_storage sa; /* its local address (getsockname) */
    char owner[64];             /* the module that holds it */
    unsigned holders;           /* generations holding it */
    bool ephemeral;             /* port 0: the owner's alone, the nth it asked for */
    bool inherited;             /* from LISTEN_FDS, or lent by the master: never shut down */
    unsigned nth;
    uint64_t slots;             /* in a master: the worker processes holding it (bit n-1
                                 * for number n); holders is their count */
};

struct asyncd_claim {
    struct asyncd_claim *next;
    struct entry *e;
    bool used;                  /* asked for by the current run of the generation */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static atomic_bool shared;      /* a new binary holds the sockets too: shut none down */
static unsigned unclaimed_inherited; /* inherited entries no module claimed yet: lock */

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

/* The entry of key (address; for port 0 also the owner and which of its
 * asks), or NULL.  Under lock. */
static struct entry *find_key(const char *address, const char *owner, unsigned nth)
{
    bool eph = ephemeral(address);
    struct entry *e;

    for (e = entries; e != NULL; e = e->next)
        if (strcmp(e->address, address) == 0 &&
            (!eph || (strcmp(e->owner, owner) == 0 && e->nth == nth)))
            return e;
    return NULL;
}

/* The entry m's ask for address is answered with, or NULL. */
static struct entry *find(const char *address, const struct asyncd_module *m)
{
    return find_key(address, m->desc->name, ephemeral(address) ? nth_ask(m, address) : 0);
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
        if (e->inherited && e->holders == 0 && e->owner[0] == '\0')
            unclaimed_inherited--;
        e->holders++;
        snprintf(e->owner, sizeof(e->owner), "%s", name);
    }
    cl->used = true;
    return async_listener_borrow(e->fd);
}

static int sa_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

static bool sa_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

/* Whether a resolved address a names the socket whose address is b. */
static bool sa_same(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    int port = a->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)a)->sin_port)
             : a->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)a)->sin6_port)
             : -2;

    if (port != sa_port(b))
        return false;
    if (sa_wildcard(a) && sa_wildcard((const struct sockaddr *)b))
        return true; /* "*:8080" and systemd's ListenStream=8080 ([::], both families) */
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

struct resolve_job {
    const char *host, *port;
    struct addrinfo *res;
    int rc;
};

static void *resolve_job(void *arg)
{
    struct resolve_job *j = arg;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};

    j->rc = getaddrinfo(j->host, j->port, &hints, &j->res);
    return NULL;
}

/* An inherited socket nobody claimed whose address is what address
 * resolves to, now keyed by address; or NULL.  Resolves a name off the
 * fiber's stack, on a helper thread. */
static struct entry *match_inherited(const char *address)
{
    char host[256], portbuf[8];
    struct resolve_job j = {NULL, portbuf, NULL, -1};
    struct entry *e = NULL;
    struct addrinfo *ai;
    bool any;
    char *key;
    int port;

    pthread_mutex_lock(&lock);
    any = unclaimed_inherited > 0;
    pthread_mutex_unlock(&lock);
    if (!any || async_address_parse(address, host, sizeof(host), &port, NULL) != 0 ||
        port == 0) /* port 0: never another's socket (inherited ones come back by key) */
        return NULL;
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    j.host = host[0] != '\0' ? host : NULL;
    if (asyncd_off_stack(resolve_job, &j) != 0 || j.rc != 0)
        return NULL; /* the bind that follows reports it */
    if ((key = strdup(address)) == NULL) {
        freeaddrinfo(j.res);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    for (ai = j.res; ai != NULL && e == NULL; ai = ai->ai_next)
        for (e = entries; e != NULL; e = e->next)
            if (e->inherited && e->holders == 0 && e->owner[0] == '\0' &&
                sa_same(ai->ai_addr, &e->sa))
                break;
    if (e != NULL) {
        asyncd_log(ASYNC_LOG_INFO, "listener %s: the inherited socket %d (%s)", address, e->fd,
                   e->address);
        free(e->address);
        e->address = key;
        key = NULL;
    }
    pthread_mutex_unlock(&lock);
    free(key);
    freeaddrinfo(j.res);
    return e;
}

/* A new entry for key (address, owner, nth) over fd, owned by l when l
 * is not NULL; or NULL (ENOMEM).  An inherited entry (a socket others
 * hold too) is only ever closed.  Under lock. */
static struct entry *add(const char *address, const char *owner, unsigned nth,
                         async_listener *l, int fd, bool inherited)
{
    struct entry *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->address = strdup(address)) == NULL) {
        free(e);
        return NULL;
    }
    e->l = l;
    e->fd = fd;
    e->inherited = inherited;
    getsockname(e->fd, (struct sockaddr *)&e->sa, &(socklen_t){sizeof(e->sa)});
    e->ephemeral = ephemeral(address);
    e->nth = e->ephemeral ? nth : 0;
    snprintf(e->owner, sizeof(e->owner), "%s", owner);
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
        if (e->holders > 0 && sa_port(&e->sa) == port) {
            snprintf(owner, len, "%s (%s)", e->owner, e->address);
            found = true;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

/* A socket for m's ask for address that the table does not have: bound
 * here, or in a worker process lent by the master (then held like an
 * inherited one: the master and the other workers hold it too).  0, or
 * -1 with errno and, for EADDRINUSE, the owning module in owner. */
static int obtain(const char *address, const struct asyncd_module *m, async_listener **l,
                  int *fd, char *owner, size_t len)
{
    unsigned nth;

    if (asyncd_worker_number() == 0) {
        if ((*l = async_listener_bind(address)) == NULL)
            return -1;
        *fd = async_listener_fd(*l);
        return 0;
    }
    /* the caller holds the link's lock: nth is counted with no other ask
     * of this process under way */
    pthread_mutex_lock(&lock);
    nth = ephemeral(address) ? nth_ask(m, address) : 0;
    pthread_mutex_unlock(&lock);
    *l = NULL;
    *fd = asyncd_worker_listen(address, m->desc->name, nth, owner, len);
    return *fd >= 0 ? 0 : -1;
}

static async_listener *host_listen(struct asyncd_module *m, const char *address)
{
    async_listener *bound = NULL, *l = NULL;
    char owner[400] = "";
    struct entry *e;
    int err = 0, fd = -1;

    pthread_mutex_lock(&lock);
    e = find(address, m);
    pthread_mutex_unlock(&lock);
    if (e == NULL)
        e = match_inherited(address);
    if (e == NULL && obtain(address, m, &bound, &fd, owner, sizeof(owner)) != 0) {
        err = errno;
        if (err == EADDRINUSE && (owner[0] != '\0' || port_owner(address, owner, sizeof(owner))))
            asyncd_log(ASYNC_LOG_ERROR, "module %s cannot listen on %s: module %s listens "
                       "there", m->desc->name, address, owner);
        errno = err;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    if ((e = find(address, m)) == NULL && fd >= 0 &&
        (e = add(address, m->desc->name, nth_ask(m, address), bound, fd, bound == NULL)) != NULL) {
        bound = NULL;
        fd = -1;
    }
    if (e == NULL || (l = take(e, m, owner, sizeof(owner))) == NULL)
        err = e == NULL ? ENOMEM : errno;
    pthread_mutex_unlock(&lock);
    if (bound != NULL) /* bound meanwhile by another generation, or no memory */
        async_listener_close(bound);
    else if (fd >= 0)
        close(fd);
    if (err == EADDRINUSE)
        asyncd_log(ASYNC_LOG_ERROR, "module %s cannot listen on %s: module %s listens there",
                   m->desc->name, address, owner);
    if (l == NULL)
        errno = err;
    return l;
}

async_listener *asyncd_host_listen(async_module_host *host, const char *address)
{
    struct asyncd_module *m = host != NULL ? host->module : NULL;
    async_listener *l;
    int err;

    if (m == NULL || address == NULL) {
        errno = EINVAL;
        return NULL;
    }
    /* a worker process: from its ask to the master until the socket is in
     * the table, no 'H' may report the table (worker.h) */
    if (asyncd_worker_lock() != 0)
        return NULL;
    l = host_listen(m, address);
    err = errno;
    asyncd_worker_unlock();
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
            if (e->inherited && e->holders == 0 && e->owner[0] == '\0')
                unclaimed_inherited--; /* never claimed: it no longer waits for one */
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
        if (e->l != NULL)
            async_listener_close(e->l);
        else
            close(e->fd);
        if (!all && e->inherited)
            asyncd_log(ASYNC_LOG_WARNING, "closed the inherited socket %d (%s): no module "
                       "listens there", e->fd, e->address);
        else if (!all)
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

    if (atomic_load(&shared))
        return;
    pthread_mutex_lock(&lock);
    for (e = entries; e != NULL; e = e->next)
        if (!e->inherited)
            shutdown(e->fd, SHUT_RD);
    pthread_mutex_unlock(&lock);
}

void asyncd_listeners_shared(bool yes)
{
    atomic_store(&shared, yes);
}

/* ---- names for LISTEN_FDNAMES ---- */

/* Appends s to out[*at..cap) with ':' '%' '#' escaped; false if it does
 * not fit. */
static bool put_escaped(char *out, size_t cap, size_t *at, const char *s)
{
    for (; *s != '\0'; s++) {
        const char *rep = *s == ':' ? "%3A" : *s == '%' ? "%25" : *s == '#' ? "%23" : NULL;
        size_t n = rep != NULL ? 3 : 1;

        if (*at + n >= cap)
            return false;
        memcpy(out + *at, rep != NULL ? rep : s, n);
        *at += n;
    }
    out[*at] = '\0';
    return true;
}

/* Undoes put_escaped on s[0..len) into out (cap >= len + 1). */
static void unescape(char *out, const char *s, size_t len)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len &&
            (strncmp(s + i, "%3A", 3) == 0 || strncmp(s + i, "%25", 3) == 0 ||
             strncmp(s + i, "%23", 3) == 0)) {
            out[o++] = s[i + 2] == 'A' ? ':' : s[i + 2] == '5' ? '%' : '#';
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

int asyncd_listeners_export(int **fds, char **names)
{
    struct entry *e;
    size_t n = 0, cap = 1, at = 0;
    char *buf;
    int *f;

    pthread_mutex_lock(&lock);
    for (e = entries; e != NULL; e = e->next)
        if (e->holders > 0) {
            n++;
            cap += 3 * (strlen(e->address) + strlen(e->owner)) + 32;
        }
    f = malloc((n > 0 ? n : 1) * sizeof(*f));
    buf = malloc(cap);
    if (f == NULL || buf == NULL) {
        pthread_mutex_unlock(&lock);
        free(f);
        free(buf);
        errno = ENOMEM;
        return -1;
    }
    buf[0] = '\0';
    n = 0;
    for (e = entries; e != NULL; e = e->next) {
        if (e->holders == 0)
            continue;
        if (n > 0)
            buf[at++] = ':';
        put_escaped(buf, cap, &at, e->address);
        if (e->ephemeral) {
            buf[at++] = '#';
            put_escaped(buf, cap, &at, e->owner);
            at += (size_t)snprintf(buf + at, cap - at, "#%u", e->nth);
        }
        f[n++] = e->fd;
    }
    pthread_mutex_unlock(&lock);
    *fds = f;
    *names = buf;
    return (int)n;
}

int asyncd_listeners_adopt(int fd, const char *name, size_t len)
{
    struct entry *e = calloc(1, sizeof(*e));
    const char *h1 = memchr(name, '#', len), *h2 = NULL;
    socklen_t salen = sizeof(struct sockaddr_storage);

    if (e == NULL || (e->address = malloc(len + 1)) == NULL) {
        free(e);
        errno = ENOMEM;
        return -1;
    }
    if (h1 != NULL)
        h2 = memchr(h1 + 1, '#', len - (size_t)(h1 + 1 - name));
    unescape(e->address, name, h1 != NULL ? (size_t)(h1 - name) : len);
    if (h2 != NULL && ephemeral(e->address) && (size_t)(h2 - h1 - 1) < sizeof(e->owner)) {
        /* a port-0 key: its module's nth ask gets it back, by key */
        unescape(e->owner, h1 + 1, (size_t)(h2 - h1 - 1));
        e->nth = (unsigned)strtoul(h2 + 1, NULL, 10);
        e->ephemeral = true;
    }
    e->fd = fd;
    e->inherited = true;
    getsockname(fd, (struct sockaddr *)&e->sa, &salen);
    pthread_mutex_lock(&lock);
    e->next = entries;
    entries = e;
    if (e->owner[0] == '\0')
        unclaimed_inherited++;
    pthread_mutex_unlock(&lock);
    return 0;
}

void asyncd_listeners_close_all(void)
{
    close_entries(true);
}

/* ---- a master's table: the worker processes' sockets (master.h) ---- */

static unsigned popcount(uint64_t v)
{
    return (unsigned)__builtin_popcountll(v);
}

int asyncd_listeners_lend(unsigned number, const char *address, const char *module,
                          unsigned nth, char *owner, size_t len)
{
    uint64_t bit = 1ull << (number - 1);
    async_listener *bound = NULL;
    struct entry *e;
    int fd = -1, err = 0;

    pthread_mutex_lock(&lock);
    e = find_key(address, module, nth);
    pthread_mutex_unlock(&lock);
    if (e == NULL)
        e = match_inherited(address);
    if (e == NULL && (bound = async_listener_bind(address)) == NULL)
        return -1;
    pthread_mutex_lock(&lock);
    if ((e = find_key(address, module, nth)) == NULL && bound != NULL &&
        (e = add(address, module, nth, bound, async_listener_fd(bound), false)) != NULL)
        bound = NULL;
    if (e == NULL) {
        err = ENOMEM;
    } else if (e->holders > 0 && strcmp(e->owner, module) != 0) {
        snprintf(owner, len, "%s", e->owner);
        err = EADDRINUSE;
    } else {
        if (e->inherited && e->holders == 0 && e->owner[0] == '\0')
            unclaimed_inherited--;
        e->slots |= bit;
        e->holders = popcount(e->slots);
        snprintf(e->owner, sizeof(e->owner), "%s", module);
        fd = e->fd;
    }
    pthread_mutex_unlock(&lock);
    if (bound != NULL)
        async_listener_close(bound);
    errno = err;
    return fd;
}

/* The next key of a 'H' message in msg[*at..len), or false. */
static bool next_key(const char *msg, size_t len, size_t *at, const char **address,
                     const char **module, unsigned *nth)
{
    const char *p = msg + *at, *end = msg + len, *z1, *z2, *z3;

    if (p >= end || (z1 = memchr(p, '\0', (size_t)(end - p))) == NULL ||
        (z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1))) == NULL ||
        (z3 = memchr(z2 + 1, '\0', (size_t)(end - z2 - 1))) == NULL)
        return false;
    *address = p;
    *module = z1 + 1;
    *nth = (unsigned)strtoul(z2 + 1, NULL, 10);
    *at = (size_t)(z3 + 1 - msg);
    return true;
}

void asyncd_listeners_slot_holds(unsigned number, const char *keys, size_t len)
{
    uint64_t bit = number > 0 ? 1ull << (number - 1) : 0;
    const char *address, *module;
    struct entry *e;
    size_t at = 0;
    unsigned nth;

    pthread_mutex_lock(&lock);
    for (e = entries; e != NULL; e = e->next)
        e->slots &= ~bit;
    while (keys != NULL && next_key(keys, len, &at, &address, &module, &nth))
        if ((e = find_key(address, module, nth)) != NULL)
            e->slots |= bit;
    for (e = entries; e != NULL; e = e->next)
        e->holders = popcount(e->slots);
    pthread_mutex_unlock(&lock);
}

ssize_t asyncd_listeners_keys(char *buf, size_t cap)
{
    struct entry *e;
    size_t at = 0;
    int n;

    pthread_mutex_lock(&lock);
    for (e = entries; e != NULL; e = e->next) {
        if (e->holders == 0)
            continue;
        n = snprintf(buf + at, cap - at, "%s%c%s%c%u", e->address, '\0', e->owner, '\0',
                     e->nth);
        if (n < 0 || (size_t)n + 1 >= cap - at) {
            pthread_mutex_unlock(&lock);
            return -1; /* a partial list would release the rest */
        }
        at += (size_t)n + 1; /* the '\0' snprintf wrote ends the key */
    }
    pthread_mutex_unlock(&lock);
    return (ssize_t)at;
}
