/* tests/unit/test_mutex — async_mutex: trylock, lock/unlock, mutual
 * exclusion across workers with the lock held over yields, wake-up on
 * unlock, cancellation and deadlines of a parked lock, argument errors, and
 * "one unlock wakes at most one fiber".
 *
 * Every test body runs inside async_runtime.  cmocka's assertions longjmp,
 * which must not happen on a fiber stack (or on another worker thread), so
 * fibers record failures with CHECK* and the test asserts on the tally once
 * async_runtime has returned.
 *
 * White box: to know that a fiber really sits parked (and to count how many
 * fibers one unlock woke) the tests read the task's park token, `woken`
 * (runtime/sched/sched.h): 0 while the fiber is inside a parking call's
 * epoch, 1 otherwise.  Reading it is a relaxed atomic load and never
 * changes what the runtime does. */
#define _GNU_SOURCE
#include "harness.h"

/* ------------------------------------------------------------------ */
/* trylock, lock/unlock, argument errors                              */

static void *trylock_other_fiber(void *arg)
{
    async_mutex *m = arg;

    errno = 0;
    int rc = async_mutex_trylock(m);
    return RC_ERRNO(rc, errno);
}

static void *trylock_body(void *arg)
{
    async_mutex *m = async_mutex_new();

    (void)arg;
    CHECK(m != NULL);
    CHECK_OK(async_mutex_trylock(m));
    CHECK_FAILS(async_mutex_trylock(m), EBUSY);           /* not recursive */
    CHECK_EQ(join_result(async_spawn(trylock_other_fiber, m)), RES_ERR(EBUSY));
    async_mutex_unlock(m);
    CHECK_EQ(join_result(async_spawn(trylock_other_fiber, m)), RES_OK); /* it now holds it */
    CHECK_FAILS(async_mutex_trylock(m), EBUSY);           /* ... and never released it */
    async_mutex_unlock(m);                                /* any fiber may unlock */
    CHECK_OK(async_mutex_lock(m));
    CHECK_FAILS(async_mutex_trylock(m), EBUSY);           /* held via lock, too */
    async_mutex_unlock(m);
    CHECK_OK(async_mutex_trylock(m));
    async_mutex_unlock(m);
    async_mutex_free(m);
    return NULL;
}

static void mutex_trylock_fails_ebusy_while_held(void **state)
{
    (void)state;
    RUN(1, trylock_body, NULL);
    RUN(2, trylock_body, NULL);
}

static void *lock_unlock_body(void *arg)
{
    async_mutex *m = async_mutex_new();
    int i;

    (void)arg;
    CHECK(m != NULL);
    for (i = 0; i < 1000; i++) {
        CHECK_OK(async_mutex_lock(m));
        CHECK_FAILS(async_mutex_trylock(m), EBUSY);
        async_mutex_unlock(m);
    }
    /* held across parking calls of other kinds */
    CHECK_OK(async_mutex_lock(m));
    CHECK_OK(async_sleep_ms(1));
    async_yield();
    CHECK_FAILS(async_mutex_trylock(m), EBUSY);
    async_mutex_unlock(m);
    CHECK_OK(async_mutex_trylock(m));
    async_mutex_unlock(m);
    async_mutex_unlock(NULL); /* ignored */
    async_mutex_free(m);
    return NULL;
}

static void mutex_lock_unlock_basic(void **state)
{
    (void)state;
    RUN(1, lock_unlock_body, NULL);
    RUN(2, lock_unlock_body, NULL);
}

static void *null_body(void *arg)
{
    (void)arg;
    CHECK_FAILS(async_mutex_lock(NULL), EINVAL);
    CHECK_FAILS(async_mutex_trylock(NULL), EINVAL);
    async_mutex_unlock(NULL);
    async_mutex_free(NULL);
    return NULL;
}

static void mutex_null_fails_einval(void **state)
{
    (void)state;
    RUN(1, null_body, NULL);
}

static void mutex_lock_outside_fiber_fails_eperm(void **state)
{
    async_mutex *m = async_mutex_new();

    (void)state;
    assert_non_null(m);
    errno = 0;
    assert_int_equal(async_mutex_lock(m), -1);
    assert_int_equal(errno, EPERM);
    /* trylock never parks, so it works from any thread */
    assert_int_equal(async_mutex_trylock(m), 0);
    errno = 0;
    assert_int_equal(async_mutex_lock(m), -1);
    assert_int_equal(errno, EPERM);
    async_mutex_unlock(m);
    async_mutex_free(m);
}

/* ------------------------------------------------------------------ */
/* mutual exclusion under contention                                   */

struct excl {
    async_mutex *m;
    atomic_int inside;   /* fibers inside the critical section right now */
    atomic_int max_inside;
    long counter;        /* plain: only the lock orders it */
    int iterations;
    int yields;          /* yields while holding the lock */
};

static void *excl_worker(void *arg)
{
    struct excl *x = arg;
    int i, j;

    for (i = 0; i < x->iterations; i++) {
        if (async_mutex_lock(x->m) != 0) {
            failed(__FILE__, __LINE__, "lock failed: %s", strerror(errno));
            return NULL;
        }
        int now = atomic_fetch_add(&x->inside, 1) + 1;
        int prev_max = atomic_load(&x->max_inside);

        while (now > prev_max && !atomic_compare_exchange_weak(&x->max_inside, &prev_max, now))
            ;
        long c = x->counter;        /* a lost update shows if exclusion fails */
        for (j = 0; j < x->yields; j++)
            async_yield();
        x->counter = c + 1;
        atomic_fetch_sub(&x->inside, 1);
        async_mutex_unlock(x->m);
        if ((i & 7) == 0)
            async_yield();          /* let others arrive while it is free */
    }
    return NULL;
}

#define EXCL_TASKS 8
#define EXCL_ITERS 1500

static void *excl_body(void *arg)
{
    struct excl *x = arg;
    async_task *t[EXCL_TASKS];
    int i;

    x->m = async_mutex_new();
    CHECK(x->m != NULL);
    for (i = 0; i < EXCL_TASKS; i++) {
        t[i] = async_spawn(excl_worker, x);
        CHECK(t[i] != NULL);
    }
    for (i = 0; i < EXCL_TASKS; i++)
        if (t[i] != NULL)
            CHECK_OK(async_join(t[i], NULL));
    CHECK_EQ(x->counter, (long)EXCL_TASKS * x->iterations);
    CHECK_EQ(atomic_load(&x->max_inside), 1);
    CHECK_EQ(atomic_load(&x->inside), 0);
    CHECK_OK(async_mutex_trylock(x->m)); /* left unlocked */
    async_mutex_unlock(x->m);
    async_mutex_free(x->m);
    return NULL;
}

static void run_excl(unsigned workers)
{
    struct excl x = {.iterations = EXCL_ITERS, .yields = 3};

    RUN(workers, excl_body, &x);
    assert_int_equal(x.counter, (long)EXCL_TASKS * EXCL_ITERS);
    assert_int_equal(atomic_load(&x.max_inside), 1);
}

static void mutex_lock_held_across_yield_excludes_others_2_workers(void **state)
{
    (void)state;
    run_excl(2);
}

static void mutex_lock_held_across_yield_excludes_others_4_workers(void **state)
{
    (void)state;
    run_excl(4);
}

/* ------------------------------------------------------------------ */
/* a parked locker is woken by unlock (no lost wake-up)                */

struct wake {
    async_mutex *m;
    async_channel *ready;
    atomic_int got;
};

static void *wake_waiter(void *arg)
{
    struct wake *w = arg;
    int one = 1;

    CHECK_OK(async_channel_send(w->ready, &one));
    if (async_mutex_lock(w->m) != 0) {
        failed(__FILE__, __LINE__, "lock failed: %s", strerror(errno));
        return NULL;
    }
    atomic_fetch_add(&w->got, 1);
    async_mutex_unlock(w->m);
    return NULL;
}

#define WAKE_ROUNDS 1000

static void *wake_body(void *arg)
{
    struct wake w = {.m = async_mutex_new(), .ready = async_channel_new(sizeof(int))};
    int r, v;

    (void)arg;
    CHECK(w.m != NULL && w.ready != NULL);
    for (r = 0; r < WAKE_ROUNDS; r++) {
        CHECK_OK(async_mutex_lock(w.m));
        async_task *t = async_spawn(wake_waiter, &w);

        CHECK(t != NULL);
        CHECK_OK(async_channel_receive(w.ready, &v));
        /* Alternate: unlock once it surely parked, or right away (racing
         * its arrival, which is where a lost wake-up would hide). */
        if ((r & 1) == 0)
            wait_parked(t);
        async_mutex_unlock(w.m);
        CHECK_OK(async_join(t, NULL));
        CHECK_EQ(atomic_load(&w.got), r + 1);
        if (atomic_load(&failures) != 0)
            break;
    }
    async_channel_free(w.ready);
    async_mutex_free(w.m);
    return NULL;
}

static void mutex_parked_lock_woken_by_unlock_many_rounds(void **state)
{
    (void)state;
    RUN(1, wake_body, NULL);
    RUN(2, wake_body, NULL);
}

/* Two fibers hand the lock back and forth, each unlocking while the other
 * is (about to be) parked in lock: every round must get through. */
struct pingpong {
    async_mutex *m;
    atomic_int turn;
    int rounds;
};

static void *pingpong_player(void *arg)
{
    struct pingpong *p = arg;
    int i;

    for (i = 0; i < p->rounds; i++) {
        CHECK_OK(async_mutex_lock(p->m));
        atomic_fetch_add(&p->turn, 1);
        async_yield();
        async_mutex_unlock(p->m);
    }
    return NULL;
}

static void *pingpong_body(void *arg)
{
    struct pingpong p = {.m = async_mutex_new(), .rounds = 5000};
    async_task *a, *b, *c;

    (void)arg;
    a = async_spawn(pingpong_player, &p);
    b = async_spawn(pingpong_player, &p);
    c = async_spawn(pingpong_player, &p);
    CHECK_OK(async_join(a, NULL));
    CHECK_OK(async_join(b, NULL));
    CHECK_OK(async_join(c, NULL));
    CHECK_EQ(atomic_load(&p.turn), 3 * p.rounds);
    async_mutex_free(p.m);
    return NULL;
}

static void mutex_handoff_between_lockers_never_loses_a_wakeup(void **state)
{
    (void)state;
    RUN(2, pingpong_body, NULL);
    RUN(4, pingpong_body, NULL);
}

/* Any thread may unlock: a plain pthread releases a lock a fiber waits on. */
static void *unlock_thread(void *arg)
{
    async_mutex_unlock(arg);
    return NULL;
}

static void *thread_unlock_body(void *arg)
{
    struct wake w = {.m = async_mutex_new(), .ready = async_channel_new(sizeof(int))};
    int r, v;

    (void)arg;
    for (r = 0; r < 50; r++) {
        pthread_t th;

        CHECK_OK(async_mutex_lock(w.m));
        async_task *t = async_spawn(wake_waiter, &w);

        CHECK_OK(async_channel_receive(w.ready, &v));
        wait_parked(t);
        CHECK_EQ(pthread_create(&th, NULL, unlock_thread, w.m), 0);
        CHECK_EQ(pthread_join(th, NULL), 0); /* blocks this worker briefly: fine */
        CHECK_OK(async_join(t, NULL));
        CHECK_EQ(atomic_load(&w.got), r + 1);
    }
    async_channel_free(w.ready);
    async_mutex_free(w.m);
    return NULL;
}

static void mutex_unlock_from_plain_thread_wakes_parked_fiber(void **state)
{
    (void)state;
    RUN(2, thread_unlock_body, NULL);
}

/* ------------------------------------------------------------------ */
/* cancellation and deadline of a parked lock                          */

static void *lock_victim(void *arg)
{
    struct wake *w = arg;
    int one = 1, rc, e;

    CHECK_OK(async_channel_send(w->ready, &one));
    errno = 0;
    rc = async_mutex_lock(w->m);
    e = errno;
    if (rc == 0) {
        atomic_fetch_add(&w->got, 1);
        async_mutex_unlock(w->m);
    }
    return RC_ERRNO(rc, e);
}

static void *cancel_lock_body(void *arg)
{
    struct wake w = {.m = async_mutex_new(), .ready = async_channel_new(sizeof(int))};
    int r, v;

    (void)arg;
    for (r = 0; r < 200; r++) {
        CHECK_OK(async_mutex_lock(w.m));
        async_task *victim = async_spawn(lock_victim, &w);
        CHECK_OK(async_channel_receive(w.ready, &v));
        async_task *behind = async_spawn(lock_victim, &w); /* queued after the victim */
        CHECK_OK(async_channel_receive(w.ready, &v));
        wait_parked(victim);
        wait_parked(behind);

        CHECK_OK(async_cancel(victim));
        CHECK_EQ(join_result(victim), RES_ERR(ECANCELED));
        /* The cancelled fiber does not own the mutex: we still do. */
        CHECK_FAILS(async_mutex_trylock(w.m), EBUSY);
        CHECK_EQ(atomic_load(&w.got), 0);
        /* The one queued behind it is still woken by our unlock. */
        async_mutex_unlock(w.m);
        CHECK_EQ(join_result(behind), RES_OK);
        CHECK_EQ(atomic_load(&w.got), 1);
        atomic_store(&w.got, 0);
        /* and the mutex is free and works */
        CHECK_OK(async_mutex_trylock(w.m));
        async_mutex_unlock(w.m);
        CHECK_OK(async_mutex_lock(w.m));
        async_mutex_unlock(w.m);
        if (atomic_load(&failures) != 0)
            break;
    }
    async_channel_free(w.ready);
    async_mutex_free(w.m);
    return NULL;
}

static void mutex_lock_cancelled_while_parked_fails_ecanceled_and_mutex_still_works(void **state)
{
    (void)state;
    RUN(1, cancel_lock_body, NULL);
    RUN(2, cancel_lock_body, NULL);
}

static void *deadline_victim(void *arg)
{
    async_mutex *m = arg;
    int64_t start = async_now_ms();
    int rc, e;

    async_deadline(start + 20);
    errno = 0;
    rc = async_mutex_lock(m);
    e = errno;
    CHECK(async_now_ms() - start < BOUND_MS);
    if (rc == 0)
        async_mutex_unlock(m);
    /* a deadline already past fails at once, held or not */
    async_deadline(async_now_ms() - 1);
    CHECK_FAILS(async_mutex_lock(m), ETIMEDOUT);
    async_deadline(-1);
    return RC_ERRNO(rc, e);
}

static void *deadline_body(void *arg)
{
    async_mutex *m = async_mutex_new();
    int r;

    (void)arg;
    for (r = 0; r < 5; r++) {
        CHECK_OK(async_mutex_lock(m));
        CHECK_EQ(join_result(async_spawn(deadline_victim, m)), RES_ERR(ETIMEDOUT));
        CHECK_FAILS(async_mutex_trylock(m), EBUSY); /* still ours */
        async_mutex_unlock(m);
        CHECK_OK(async_mutex_lock(m));              /* still works */
        async_mutex_unlock(m);
    }
    /* past deadline on a free mutex: the call is a parking call and fails */
    async_deadline(async_now_ms() - 1);
    CHECK_FAILS(async_mutex_lock(m), ETIMEDOUT);
    async_deadline(-1);
    CHECK_OK(async_mutex_trylock(m)); /* that failed lock took nothing */
    async_mutex_unlock(m);
    async_mutex_free(m);
    return NULL;
}

static void mutex_lock_past_deadline_fails_etimedout(void **state)
{
    (void)state;
    RUN(1, deadline_body, NULL);
    RUN(2, deadline_body, NULL);
}

/* Cancel and unlock at the same moment, from two fibers: the victim either
 * gets the lock (and releases it) or fails with ECANCELED owning nothing,
 * and the fiber queued behind it always gets through. */
struct cancel_race {
    async_task *victim;
    int yields;
};

static void *race_canceller(void *arg)
{
    struct cancel_race *c = arg;
    int i;

    for (i = 0; i < c->yields; i++)
        async_yield();
    CHECK_OK(async_cancel(c->victim));
    return NULL;
}

static void *cancel_race_body(void *arg)
{
    struct wake w = {.m = async_mutex_new(), .ready = async_channel_new(sizeof(int))};
    long got_it = 0, cancelled = 0;
    int r, v, i;

    (void)arg;
    for (r = 0; r < 500; r++) {
        struct cancel_race c = {.yields = r % 4};

        atomic_store(&w.got, 0);
        CHECK_OK(async_mutex_lock(w.m));
        c.victim = async_spawn(lock_victim, &w);
        CHECK_OK(async_channel_receive(w.ready, &v));
        async_task *behind = async_spawn(lock_victim, &w);
        CHECK_OK(async_channel_receive(w.ready, &v));
        wait_parked(c.victim);
        wait_parked(behind);
        async_task *canceller = async_spawn(race_canceller, &c);
        for (i = 0; i < r % 3; i++)
            async_yield();
        async_mutex_unlock(w.m);

        join_bounded(canceller); /* before the victim's handle is freed */
        intptr_t rv = join_bounded(c.victim);
        intptr_t rb = join_bounded(behind);

        CHECK(rv == RES_OK || rv == RES_ERR(ECANCELED));
        got_it += rv == RES_OK;
        cancelled += rv == RES_ERR(ECANCELED);
        CHECK_EQ(rb, RES_OK);
        CHECK_EQ(atomic_load(&w.got), 1 + (rv == RES_OK));
        CHECK_OK(async_mutex_trylock(w.m)); /* nobody kept it */
        async_mutex_unlock(w.m);
        if (atomic_load(&failures) != 0)
            break;
    }
    CHECK_BOTH_OUTCOMES(got_it, cancelled);
    async_channel_free(w.ready);
    async_mutex_free(w.m);
    return NULL;
}

static void mutex_cancel_racing_unlock_never_loses_the_lock_or_a_wakeup(void **state)
{
    (void)state;
    RUN(1, cancel_race_body, NULL);
    RUN(2, cancel_race_body, NULL);
    RUN(4, cancel_race_body, NULL);
}

/* ------------------------------------------------------------------ */
/* no thundering herd                                                  */

#define HERD 16

struct herd {
    async_mutex *m;
    async_channel *ready;
    async_channel *go;     /* the holder waits here before unlocking */
    atomic_int through;    /* fibers that got the lock */
};

static void *herd_member(void *arg)
{
    struct herd *h = arg;
    int one = 1, v;

    CHECK_OK(async_channel_send(h->ready, &one));
    if (async_mutex_lock(h->m) != 0) {
        failed(__FILE__, __LINE__, "lock failed: %s", strerror(errno));
        return NULL;
    }
    atomic_fetch_add(&h->through, 1);
    CHECK_OK(async_channel_receive(h->go, &v)); /* hold until told */
    async_mutex_unlock(h->m);
    return NULL;
}

static void *herd_body(void *arg)
{
    unsigned workers = *(unsigned *)arg;
    struct herd h = {.m = async_mutex_new(),
                     .ready = async_channel_new(sizeof(int)),
                     .go = async_channel_new(sizeof(int))};
    async_task *t[HERD];
    int i, k, v, one = 1;

    CHECK_OK(async_mutex_lock(h.m));
    for (i = 0; i < HERD; i++) {
        t[i] = async_spawn(herd_member, &h);
        CHECK_OK(async_channel_receive(h.ready, &v));
    }
    for (i = 0; i < HERD; i++)
        wait_parked(t[i]);
    CHECK_EQ(atomic_load(&h.through), 0);

    async_mutex_unlock(h.m);
    if (workers == 1) {
        /* One worker: nobody ran since the unlock, so exactly the fibers it
         * woke are out of their park. */
        int woken = 0;

        for (i = 0; i < HERD; i++)
            woken += !parked(t[i]);
        CHECK_EQ(woken, 1);
    }
    /* Each release lets exactly one more through; the others stay parked. */
    for (k = 1; k <= HERD; k++) {
        if (!yield_until_at_least(&h.through, k))
            break;
        for (i = 0; i < 200; i++)
            async_yield();
        CHECK_EQ(atomic_load(&h.through), k);
        if (workers == 1) {
            int waiting = 0;

            for (i = 0; i < HERD; i++)
                waiting += parked(t[i]);
            /* the HERD - k still queued, plus the holder parked in receive */
            CHECK_EQ(waiting, HERD - k + 1);
        }
        CHECK_OK(async_channel_send(h.go, &one));
    }
    for (i = 0; i < HERD; i++)
        CHECK_OK(async_join(t[i], NULL));
    CHECK_EQ(atomic_load(&h.through), HERD);
    async_channel_free(h.ready);
    async_channel_free(h.go);
    async_mutex_free(h.m);
    return NULL;
}

static void mutex_unlock_lets_exactly_one_parked_fiber_through(void **state)
{
    unsigned w1 = 1, w2 = 2;

    (void)state;
    RUN(1, herd_body, &w1);
    RUN(2, herd_body, &w2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutex_trylock_fails_ebusy_while_held),
        cmocka_unit_test(mutex_lock_unlock_basic),
        cmocka_unit_test(mutex_null_fails_einval),
        cmocka_unit_test(mutex_lock_outside_fiber_fails_eperm),
        cmocka_unit_test(mutex_lock_held_across_yield_excludes_others_2_workers),
        cmocka_unit_test(mutex_lock_held_across_yield_excludes_others_4_workers),
        cmocka_unit_test(mutex_parked_lock_woken_by_unlock_many_rounds),
        cmocka_unit_test(mutex_handoff_between_lockers_never_loses_a_wakeup),
        cmocka_unit_test(mutex_unlock_from_plain_thread_wakes_parked_fiber),
        cmocka_unit_test(mutex_lock_cancelled_while_parked_fails_ecanceled_and_mutex_still_works),
        cmocka_unit_test(mutex_lock_past_deadline_fails_etimedout),
        cmocka_unit_test(mutex_cancel_racing_unlock_never_loses_the_lock_or_a_wakeup),
        cmocka_unit_test(mutex_unlock_lets_exactly_one_parked_fiber_through),
    };

    /* TEST_FILTER=pattern runs only the matching tests (cmocka glob) */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
