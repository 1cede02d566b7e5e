#include "reactor.h"

#include "../sched/sched.h"

#include <async_io/tcp.h>

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <time.h>

struct async__reactor {
    struct ev_loop *loop;
    ev_async wake;              /* the cross-thread door; keeps the loop "active" */
    unsigned armed;             /* our io and timer watchers now started */
    int64_t last_poll_ns;       /* CLOCK_MONOTONIC of the last poll */
    struct fdw_impl *orphans;   /* started watchers whose fiber ended (fdw below) */
};

static void orphans_stop(struct async__reactor *r);

/* A busy worker polls at most this often (an idle one always does). */
#define ASYNC__POLL_EVERY_NS 200000

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Start/stop wrappers that keep `armed` true to what libev holds. */
static void io_start(struct async__reactor *r, ev_io *w)
{
    ev_io_start(r->loop, w);
    r->armed++;
}

static void io_stop(struct async__reactor *r, ev_io *w)
{
    if (ev_is_active(w)) {
        ev_io_stop(r->loop, w);
        r->armed--;
    }
}

static void timer_start(struct async__reactor *r, ev_timer *w)
{
    ev_timer_start(r->loop, w);
    r->armed++;
}

static void timer_stop(struct async__reactor *r, ev_timer *w)
{
    if (ev_is_active(w)) {
        ev_timer_stop(r->loop, w);
        r->armed--;
    }
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* returning from ev_run is the whole point */
}

int async__reactor_init(struct async_worker *w)
{
    struct async__reactor *r = malloc(sizeof(*r));

    if (r == NULL)
        return ENOMEM;
    /* NOSIGMASK: libev must not touch the signal mask on our hot path. */
    r->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (r->loop == NULL) {
        free(r);
        return EMFILE;
    }
    ev_async_init(&r->wake, on_wake);
    ev_async_start(r->loop, &r->wake);
    r->armed = 0;
    r->last_poll_ns = 0;
    r->orphans = NULL;
    ev_set_userdata(r->loop, r);
    w->reactor = r;
    return 0;
}

void async__reactor_fini(struct async_worker *w)
{
    struct async__reactor *r = w->reactor;

    if (r == NULL)
        return;
    orphans_stop(r);
    ev_async_stop(r->loop, &r->wake);
    ev_loop_destroy(r->loop);
    free(r);
    w->reactor = NULL;
}

void async__reactor_poll(struct async_worker *w, bool block)
{
    ev_run(w->reactor->loop, block ? EVRUN_ONCE : EVRUN_NOWAIT);
    w->reactor->last_poll_ns = now_ns();
}

static void on_nap(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents; /* returning from ev_run is the whole point */
}

void async__reactor_nap(struct async_worker *w, double seconds)
{
    ev_timer nap;

    ev_timer_init(&nap, on_nap, seconds, 0.);
    ev_timer_start(w->reactor->loop, &nap);
    ev_run(w->reactor->loop, EVRUN_ONCE);
    ev_timer_stop(w->reactor->loop, &nap);
    w->reactor->last_poll_ns = now_ns();
}

bool async__reactor_due(struct async_worker *w)
{
    return now_ns() - w->reactor->last_poll_ns >= ASYNC__POLL_EVERY_NS;
}

bool async__reactor_armed(struct async_worker *w)
{
    return w->reactor->armed != 0;
}

void async__reactor_notify(struct async_worker *w)
{
    ev_async_send(w->reactor->loop, &w->reactor->wake);
}

int64_t async_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one-shot timers ---- */

struct timer_impl {
    ev_timer timer;             /* first: libev hands it back to on_timer */
    struct async__reactor *r;
    void (*fire)(struct async__timer *t);
};

_Static_assert(sizeof(struct timer_impl) <= sizeof(struct async__timer), "async__timer too small");

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct timer_impl *tm = (struct timer_impl *)w;

    (void)loop;
    (void)revents;
    tm->r->armed--; /* libev has already stopped this one-shot timer */
    tm->fire((struct async__timer *)tm);
}

void async__timer_start(struct async__timer *t, struct async_worker *w, int64_t after_ms,
                        void (*fire)(struct async__timer *t))
{
    struct timer_impl *tm = (struct timer_impl *)t;

    tm->r = w->reactor;
    tm->fire = fire;
    ev_now_update(tm->r->loop);
    ev_timer_init(&tm->timer, on_timer, (double)after_ms / 1e3, 0.);
    timer_start(tm->r, &tm->timer);
}

void async__timer_stop(struct async__timer *t)
{
    struct timer_impl *tm = (struct timer_impl *)t;

    timer_stop(tm->r, &tm->timer);
}

/* ---- waiting for a descriptor ---- */

struct fd_waiter {
    ev_io io;
    struct async_task *task;
};

static void on_fd(struct ev_loop *loop, ev_io *w, int revents)
{
    struct async_task *t = ((struct fd_waiter *)w)->task;

    (void)revents;
    io_stop(ev_userdata(loop), w);
    if (async__claim(t, ASYNC__WAKE_NORMAL))
        async__schedule(t, false);
}

static int ev_events(int events)
{
    return ((events & ASYNC_READABLE) ? EV_READ : 0) | ((events & ASYNC_WRITABLE) ? EV_WRITE : 0);
}

/* Parks t on an initialised, stopped watcher of its own worker. */
static int wait_on(struct async_task *t, struct fd_waiter *fw)
{
    enum async__wake why;

    async__park_prepare(t);
    fw->task = t;
    io_start(t->home->reactor, &fw->io);
    why = async__park(t, -1);
    io_stop(t->home->reactor, &fw->io);
    return why == ASYNC__WAKE_NORMAL ? 0 : async__wake_errno(why);
}

static int wait_once(struct async_task *t, int fd, int events)
{
    struct fd_waiter fw;

    ev_io_init(&fw.io, on_fd, fd, ev_events(events));
    return wait_on(t, &fw);
}

int async_fd_wait(int fd, int events)
{
    struct async_task *t = async__current();
    int err;

    if (t == NULL) {
        errno = EPERM;
        return -1;
    }
    if (fd < 0 || (events & (ASYNC_READABLE | ASYNC_WRITABLE)) == 0) {
        errno = EINVAL;
        return -1;
    }
    if ((err = async__check_interrupt(t)) != 0 || (err = wait_once(t, fd, events)) != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

/* States (all but `home` read and written on the home worker's thread only):
 *   stopped   !active, owner NULL, no hold;
 *   lingering active, owner = a fiber of home that is in owner->linger;
 *   orphaned  active, owner NULL, in the reactor's orphan list: its fiber
 *             ended while it was started for reading (fiber_entry ->
 *             async__fdw_release).  It stays in epoll, so the next fiber
 *             to wait on the descriptor (the next request on a pooled
 *             connection) re-adds nothing; its first event, or a close by
 *             a fiber of home (async__fdw_drop), or the reactor's end,
 *             stops it.
 * Every active state holds the descriptor (hold +1). */
struct fdw_impl {
    struct fd_waiter fw;            /* fw.task: the fiber parked on it, or NULL */
    _Atomic(struct async_worker *) home; /* set by the first wait, then fixed */
    struct async_task *owner;       /* lingering fiber (home only) */
    void (*hold)(void *ctx, int delta);
    void *ctx;
    struct fdw_impl *prev, *next;   /* in the orphan list while orphaned */
    int fd;
    int events;                     /* ev events it is started with */
    bool ready_unread;              /* fired while its running owner was away */
    bool no_orphan;                 /* stops with its fiber (async__fdw_no_orphan) */
};

_Static_assert(sizeof(struct fdw_impl) <= sizeof(struct async__fdw), "async__fdw too small");

static void stop_lingering(struct fdw_impl *w);

/* A fiber's lingering watchers (t->linger, latest first): forget w. */
static void linger_remove(struct async_task *t, struct fdw_impl *w)
{
    int i;

    for (i = 0; i < ASYNC__LINGER && t->linger[i] != w; i++)
        ;
    for (; i + 1 < ASYNC__LINGER; i++)
        t->linger[i] = t->linger[i + 1];
    t->linger[ASYNC__LINGER - 1] = NULL;
}

/* Puts w first among t's lingering watchers; the one that falls off the
 * end (if the list was full) is stopped. */
static void linger_add(struct async_task *t, struct fdw_impl *w)
{
    struct fdw_impl *last = t->linger[ASYNC__LINGER - 1];
    int i;

    if (last != NULL && last != w)
        stop_lingering(last);
    linger_remove(t, w);
    for (i = ASYNC__LINGER - 1; i > 0; i--)
        t->linger[i] = t->linger[i - 1];
    t->linger[0] = w;
    w->owner = t;
}

/* Stops w and lets its owner forget it.  May free w (its hold). */
static void stop_lingering(struct fdw_impl *w)
{
    struct async_task *t = w->owner;

    linger_remove(t, w);
    w->owner = NULL;
    io_stop(t->home->reactor, &w->fw.io);
    w->hold(w->ctx, -1);
}

static void orphan_add(struct async__reactor *r, struct fdw_impl *w)
{
    w->prev = NULL;
    w->next = r->orphans;
    if (r->orphans != NULL)
        r->orphans->prev = w;
    r->orphans = w;
}

static void orphan_remove(struct async__reactor *r, struct fdw_impl *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        r->orphans = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* Stops an orphaned watcher.  May free w (its hold). */
static void stop_orphan(struct async__reactor *r, struct fdw_impl *w)
{
    orphan_remove(r, w);
    io_stop(r, &w->fw.io);
    w->hold(w->ctx, -1);
}

/* The reactor's end (its worker has stopped): no loop will ever see the
 * orphans' events again. */
static void orphans_stop(struct async__reactor *r)
{
    while (r->orphans != NULL)
        stop_orphan(r, r->orphans);
}

/* Wakes the fiber parked on the watcher.  With nobody parked on it, its
 * owner is busy (about to read: the watcher stays started for its next
 * wait) or parked on something else, when the descriptor's events would
 * wake this loop at every turn until it runs: then it stops. */
static void on_fdw(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fdw_impl *w = (struct fdw_impl *)io;
    struct async_task *t = w->fw.task;

    (void)loop;
    (void)revents;
    if (t == NULL) {
        if (w->owner == NULL)
            stop_orphan(atomic_load_explicit(&w->home, memory_order_relaxed)->reactor, w);
        else if (w->owner->parked)
            stop_lingering(w);
        else
            w->ready_unread = true;
        return;
    }
    w->fw.task = NULL;
    if (async__claim(t, ASYNC__WAKE_NORMAL))
        async__schedule(t, false);
}

void async__fdw_init(struct async__fdw *f, int fd, void (*hold)(void *ctx, int delta), void *ctx)
{
    struct fdw_impl *w = (struct fdw_impl *)f;

    ev_io_init(&w->fw.io, on_fdw, fd, 0);
    w->fw.task = NULL;
    atomic_init(&w->home, NULL);
    w->owner = NULL;
    w->hold = hold;
    w->ctx = ctx;
    w->prev = w->next = NULL;
    w->fd = fd;
    w->events = 0;
    w->ready_unread = false;
    w->no_orphan = false;
}

void async__fdw_no_orphan(struct async__fdw *f)
{
    ((struct fdw_impl *)f)->no_orphan = true;
}

void async__fdw_release(struct async_task *t)
{
    struct fdw_impl *w;

    while ((w = t->linger[0]) != NULL) {
        if (w->events != EV_READ || w->ready_unread || w->no_orphan) {
            stop_lingering(w); /* writable, or readable now: it would fire at once */
            continue;
        }
        linger_remove(t, w);
        w->owner = NULL; /* fw.task is NULL: async__fdw_spawn_starts saw to a parked spawn */
        orphan_add(t->home->reactor, w);
    }
}

void async__fdw_spawn_starts(struct async_task *t)
{
    struct fdw_impl *w = t->linger[0];

    if (w != NULL && w->fw.task == t)
        w->fw.task = NULL; /* started by a cancel, not by the watcher */
}

void async__fdw_drop(struct async__fdw *f)
{
    struct fdw_impl *w = (struct fdw_impl *)f;
    struct async_task *self = async__current();

    if (self == NULL || atomic_load_explicit(&w->home, memory_order_relaxed) != self->home ||
        !ev_is_active(&w->fw.io) || w->fw.task != NULL)
        return;
    if (w->owner == NULL)
        stop_orphan(self->home->reactor, w);
    else if (w->owner == self)
        stop_lingering(w);
}

bool async__fdw_quiet(struct async__fdw *f)
{
    struct fdw_impl *w = (struct fdw_impl *)f;
    struct async_task *self = async__current();

    return self != NULL && atomic_load_explicit(&w->home, memory_order_relaxed) == self->home &&
           ev_is_active(&w->fw.io) && w->events == EV_READ && !w->ready_unread &&
           w->fw.task == NULL;
}

/* Whether t may take w over: nobody else lingers on it, or the fiber that
 * does is not parked on it (then it simply loses it). */
static bool can_take(struct fdw_impl *w, struct async_task *t)
{
    return w->owner == NULL || w->owner == t || w->fw.task == NULL;
}

int async__fdw_can_handoff(struct async__fdw *f)
{
    struct fdw_impl *w = (struct fdw_impl *)f;
    struct async_task *self = async__current();
    struct async_worker *home = NULL;

    if (!atomic_compare_exchange_strong_explicit(&w->home, &home, self->home, memory_order_relaxed,
                                                 memory_order_relaxed) &&
        home != self->home)
        return EXDEV;
    return can_take(w, self) ? 0 : EBUSY;
}

/* Starts w for `want` events, or changes what it is started for: the only
 * places an epoll_ctl may follow. */
static void start_for(struct async__reactor *r, struct fdw_impl *w, int want)
{
    w->ready_unread = false;
    if (w->owner == NULL && !ev_is_active(&w->fw.io)) {
        w->hold(w->ctx, +1);
    } else {
        if (w->owner == NULL)
            orphan_remove(r, w); /* adopted as it stands: hold and all */
        if (w->events == want)
            return;
        io_stop(r, &w->fw.io);
    }
    w->events = want;
    ev_io_modify(&w->fw.io, want); /* no "new fd" flag: libev adds the fd only if new */
    io_start(r, &w->fw.io);
}

void async__fdw_handoff(struct async__fdw *f, struct async_task *to)
{
    struct fdw_impl *w = (struct fdw_impl *)f;

    start_for(async__current()->home->reactor, w, EV_READ);
    if (w->owner != NULL)
        linger_remove(w->owner, w); /* its hold passes to `to` */
    w->owner = to;
    to->linger[0] = w;              /* `to` has not run: it lingers on nothing else */
    w->fw.task = to;
}

void async__fdw_kick(struct async__fdw *f)
{
    on_fdw(NULL, &((struct fdw_impl *)f)->fw.io, EV_READ);
}

int async__fdw_wait(struct async__fdw *f, int events)
{
    struct fdw_impl *w = (struct fdw_impl *)f;
    struct async_task *t = async__current();
    struct async_worker *home = NULL;
    enum async__wake why;

    /* The first waiter's worker adopts the watcher; fibers elsewhere, or a
     * second fiber of the same worker while another is parked on it, use
     * a one-off watcher. */
    if ((!atomic_compare_exchange_strong_explicit(&w->home, &home, t->home, memory_order_relaxed,
                                                  memory_order_relaxed) &&
         home != t->home) ||
        !can_take(w, t))
        return wait_once(t, w->fd, events);
    start_for(t->home->reactor, w, ev_events(events));
    if (w->owner != NULL && w->owner != t)
        linger_remove(w->owner, w); /* taken over, started, hold and all */
    linger_add(t, w);
    async__park_prepare(t);
    w->fw.task = t;
    why = async__park(t, -1);
    /* Woken by the watcher, which cleared fw.task, another fiber of this
     * worker may have taken it over and parked on it before we ran: its
     * record is not ours to clear (that lost its wake-up, and with it a
     * proxy's upload, once in ~40 16 MiB echoes). */
    if (w->fw.task == t)
        w->fw.task = NULL;
    return why == ASYNC__WAKE_NORMAL ? 0 : async__wake_errno(why);
}
