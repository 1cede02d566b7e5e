/* runtime/sync/mutex — a fiber mutex on the futex-mutex protocol
 * (Drepper, "Futexes Are Tricky", mutex 3).
 *
 * state: 0 unlocked, 1 locked, 2 locked and perhaps waited on.  Lock takes
 * 0 -> 1 on the fast path; a contender spins briefly, then swaps in 2 and
 * parks while the state is still 2 (checked under the waiter lock, which is
 * what a futex's compare-and-sleep does).  Unlock swaps in 0 and, if it saw
 * 2, wakes exactly one waiter, which swaps in 2 again and competes.  The
 * unlocker stores 0 before taking the waiter lock, and a waiter checks for 2
 * under that lock before queueing, so a wake is never lost.  A woken waiter
 * that loses the race re-queues at the front, keeping its turn. */
#include "../sched/waitq.h"

#include <async_io/mutex.h>

#include <errno.h>
#include <stdlib.h>

#define SPIN_ROUNDS 10     /* looks at the lock before parking... */
#define SPIN_PAUSE_MAX 64  /* ...backing off (~250 pauses in all), so the holder's worker keeps the line */

struct async_mutex {
    atomic_int state;
    async__spinlock lock;
    struct async__waitq waiters;
};

async_mutex *async_mutex_new(void)
{
    async_mutex *m = calloc(1, sizeof(*m));

    if (m == NULL)
        errno = ENOMEM;
    return m;
}

static bool try_take(async_mutex *m)
{
    int c = 0;

    return atomic_compare_exchange_strong_explicit(&m->state, &c, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static int lock_slow(async_mutex *m, struct async_task *self)
{
    bool woken_before = false;
    int i, err;

    if (async__others_run(self)) {
        unsigned pause = 1, k;

        for (i = 0; i < SPIN_ROUNDS; i++) {
            if (atomic_load_explicit(&m->state, memory_order_relaxed) == 0 && try_take(m))
                return 0;
            if (i + 1 == SPIN_ROUNDS)
                break; /* no pause after the last look */
            for (k = 0; k < pause; k++)
                async__cpu_relax();
            if (pause < SPIN_PAUSE_MAX)
                pause *= 2;
        }
    }
    for (;;) {
        if (atomic_exchange_explicit(&m->state, 2, memory_order_acquire) == 0)
            return 0;
        async__spin_lock(&m->lock);
        if (atomic_load_explicit(&m->state, memory_order_relaxed) != 2) {
            async__spin_unlock(&m->lock);
            continue;
        }
        if ((err = async__waitq_wait(&m->waiters, &m->lock, self, NULL, woken_before)) != 0) {
            errno = err;
            return -1;
        }
        woken_before = true;
    }
}

int async_mutex_lock(async_mutex *m)
{
    struct async_task *self = async__parking_self(m);

    if (self == NULL)
        return -1;
    if (try_take(m))
        return 0;
    return lock_slow(m, self);
}

int async_mutex_trylock(async_mutex *m)
{
    if (m == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (try_take(m))
        return 0;
    errno = EBUSY;
    return -1;
}

void async_mutex_unlock(async_mutex *m)
{
    struct async_task *t;

    if (m == NULL)
        return;
    if (atomic_exchange_explicit(&m->state, 0, memory_order_release) != 2)
        return;
    async__spin_lock(&m->lock);
    t = async__waitq_claim(&m->waiters, ASYNC__WAKE_NORMAL);
    async__spin_unlock(&m->lock);
    if (t != NULL)
        async__schedule(t, false);
}

void async_mutex_free(async_mutex *m)
{
    free(m);
}
