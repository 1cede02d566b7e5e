/* runtime/sched/blocking — the helper-thread pool behind async_blocking.
 *
 * One process-wide pool: runtimes come and go, and a helper may still be
 * finishing an abandoned call after its runtime has ended, so helpers
 * belong to no runtime.  Jobs wait in a FIFO under `lock`; helpers sleep on
 * `more`.
 *
 * A job's state word decides who owns it at the end:
 *   QUEUED -> RUNNING (helper picks it) -> WAKING -> DONE (helper: after fn
 *   returns it takes WAKING, tries to wake the fiber, then stores DONE);
 *   QUEUED or RUNNING -> ABANDONED (the fiber gave up: CAS by the fiber).
 * A fiber that gives up and loses the CAS waits for DONE before it leaves,
 * so the helper's wake can never land in a later park of that fiber; then
 * the job completed and its result is returned.  A helper that finds
 * ABANDONED owns the job and frees it. */
#include "sched.h"

#include <async_io/blocking.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

enum { QUEUED, RUNNING, WAKING, DONE, ABANDONED };

struct job {
    struct job *next;
    async_fn fn;
    void *arg;
    void *result;
    async_abandon_fn abandon;
    struct async_task *waiter;
    _Atomic int state;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t more;
    struct job *head, *tail;
    unsigned threads, idle, max;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0};

static void finish(struct job *j, void *result)
{
    int running = RUNNING;
    struct async_task *t = j->waiter;

    j->result = result;
    if (!atomic_compare_exchange_strong_explicit(&j->state, &running, WAKING,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        if (j->abandon != NULL) /* ABANDONED while running */
            j->abandon(j->arg, result, 1);
        free(j);
        return;
    }
    if (async__claim(t, ASYNC__WAKE_NORMAL)) {
        atomic_store_explicit(&j->state, DONE, memory_order_release);
        async__schedule(t, false);
    } else {
        atomic_store_explicit(&j->state, DONE, memory_order_release);
    }
}

static void *helper(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        struct job *j;
        int queued = QUEUED;

        while (pool.head == NULL) {
            pool.idle++;
            pthread_cond_wait(&pool.more, &pool.lock);
            pool.idle--;
        }
        j = pool.head;
        pool.head = j->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.lock);
        if (atomic_compare_exchange_strong_explicit(&j->state, &queued, RUNNING,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            finish(j, j->fn(j->arg));
        } else { /* abandoned before it started */
            if (j->abandon != NULL)
                j->abandon(j->arg, NULL, 0);
            free(j);
        }
        pthread_mutex_lock(&pool.lock);
    }
    return NULL;
}

static unsigned max_helpers(void)
{
    const char *env = getenv("ASYNC_IO_HELPERS");
    long n = env != NULL ? strtol(env, NULL, 10) : 0;

    return n > 0 && n <= 1024 ? (unsigned)n : 16;
}

/* Queues j, starting a helper if none is idle and the pool may grow. */
static int submit(struct job *j)
{
    int err = 0;

    pthread_mutex_lock(&pool.lock);
    if (pool.max == 0)
        pool.max = max_helpers();
    if (pool.idle == 0 && pool.threads < pool.max) {
        pthread_t th;
        pthread_attr_t attr;

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, helper, NULL) == 0)
            pool.threads++;
        else if (pool.threads == 0)
            err = EAGAIN;
        pthread_attr_destroy(&attr);
    }
    if (err == 0) {
        j->next = NULL;
        if (pool.tail != NULL)
            pool.tail->next = j;
        else
            pool.head = j;
        pool.tail = j;
        pthread_cond_signal(&pool.more);
    }
    pthread_mutex_unlock(&pool.lock);
    return err;
}

int async_blocking_ex(async_fn fn, void *arg, void **result, async_abandon_fn abandon)
{
    struct async_task *self = async__current();
    enum async__wake why;
    struct job *j;
    int err, st;

    if (self == NULL) {
        errno = EPERM;
        return -1;
    }
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    if ((err = async__check_interrupt(self)) != 0) {
        errno = err;
        return -1;
    }
    j = malloc(sizeof(*j));
    if (j == NULL) {
        errno = ENOMEM;
        return -1;
    }
    j->fn = fn;
    j->arg = arg;
    j->result = NULL;
    j->abandon = abandon;
    j->waiter = self;
    atomic_init(&j->state, QUEUED);
    async__park_prepare(self);
    if ((err = submit(j)) != 0) {
        async__park_abort(self, ASYNC__WAKE_NORMAL);
        free(j);
        errno = err;
        return -1;
    }
    why = async__park(self, -1);
    if (why != ASYNC__WAKE_NORMAL) {
        st = atomic_load_explicit(&j->state, memory_order_acquire);
        while ((st == QUEUED || st == RUNNING) &&
               !atomic_compare_exchange_weak_explicit(&j->state, &st, ABANDONED,
                                                      memory_order_acq_rel, memory_order_acquire))
            ;
        if (st == QUEUED || st == RUNNING) {
            errno = async__wake_errno(why); /* the helper owns j now */
            return -1;
        }
        while (atomic_load_explicit(&j->state, memory_order_acquire) != DONE)
            sched_yield(); /* the helper is between WAKING and DONE */
    }
    if (result != NULL)
        *result = j->result;
    free(j);
    return 0;
}

int async_blocking(async_fn fn, void *arg, void **result)
{
    return async_blocking_ex(fn, arg, result, NULL);
}
