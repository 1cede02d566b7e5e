/* tests/unit/test_cancel — cancellation and deadlines at every parking call
 * of the contract (join, sleep, fd wait, channel receive, ring send and
 * receive, mutex lock, group join), tasks cancelled before they start,
 * join after a failed join, EDEADLK, async_runtime re-entry, 100,000
 * fibers, and errno kept per fiber.
 *
 * Every test body runs inside async_runtime.  cmocka's assertions longjmp,
 * which must not happen on a fiber stack (or on another worker thread), so
 * fibers record failures with CHECK* and the test asserts on the tally once
 * async_runtime has returned.
 *
 * Handshake: a victim sends on a channel right before its parking call; the
 * canceller receives that, then waits until the victim is parked.  "Parked"
 * is read white-box from the task's park token, `woken`
 * (runtime/sched/sched.h): 0 while the fiber is inside a parking call's
 * epoch, 1 otherwise (the handshake send never parks, so the next epoch is
 * the call under test).  Reading it is a relaxed atomic load and never
 * changes what the runtime does. */
#define _GNU_SOURCE
#include "harness.h"

/* ------------------------------------------------------------------ */
/* the parking calls under test, with what each needs around it        */

enum call {
    C_JOIN,
    C_SLEEP,
    C_FD_WAIT,
    C_CHANNEL_RECEIVE,
    C_RING_SEND,
    C_RING_RECV,
    C_MUTEX_LOCK,
    C_GROUP_JOIN,
    C_COUNT
};

static const char *const call_name[C_COUNT] = {
    "async_join", "async_sleep_ms", "async_fd_wait", "async_channel_receive",
    "async_ring_send", "async_ring_recv", "async_mutex_lock", "async_group_join",
};

/* Everything the calls park on.  Built and torn down by a fiber that is
 * neither cancelled nor past a deadline. */
struct fixture {
    async_channel *blocker_ch;   /* the join target waits here */
    async_task *blocker;         /* join target: ends only when sent to */
    int pipefd[2];               /* nobody writes */
    async_channel *never;        /* nobody sends */
    async_ring *full;            /* capacity 1, holds 41 */
    async_ring *empty;
    async_mutex *held;           /* locked by the fixture's owner */
    async_group *group;          /* one member that sleeps until cancelled */
};

static void *blocker_fn(void *arg)
{
    struct fixture *f = arg;
    int v = 0;

    CHECK_OK(async_channel_receive(f->blocker_ch, &v));
    return (void *)(intptr_t)(v + 100);
}

static void *group_member_forever(void *arg)
{
    (void)arg;
    CHECK_FAILS(async_sleep_ms(100000), ECANCELED);
    return NULL;
}

static void fixture_setup(struct fixture *f)
{
    int v = 41;

    memset(f, 0, sizeof(*f));
    f->blocker_ch = async_channel_new(sizeof(int));
    f->blocker = async_spawn(blocker_fn, f);
    CHECK(f->blocker_ch != NULL && f->blocker != NULL);
    CHECK_EQ(pipe(f->pipefd), 0);
    f->never = async_channel_new(sizeof(int));
    f->full = async_ring_new(1, sizeof(int));
    f->empty = async_ring_new(1, sizeof(int));
    CHECK(f->never != NULL && f->full != NULL && f->empty != NULL);
    CHECK_OK(async_ring_send(f->full, &v));
    f->held = async_mutex_new();
    CHECK(f->held != NULL);
    CHECK_OK(async_mutex_lock(f->held));
    f->group = async_group_new();
    CHECK(f->group != NULL);
    CHECK_OK(async_group_spawn(f->group, group_member_forever, NULL));
}

/* Also checks that the failed calls changed nothing. */
static void fixture_teardown(struct fixture *f)
{
    void *res = NULL;
    int v = 0;

    /* the join target is still valid and joinable: its result comes back */
    v = 7;
    CHECK_OK(async_channel_send(f->blocker_ch, &v));
    CHECK_OK(async_join(f->blocker, &res));
    CHECK_EQ((intptr_t)res, 107);
    /* the failed receive took nothing and left no waiter behind */
    v = 5;
    CHECK_OK(async_channel_send(f->never, &v));
    v = 0;
    CHECK_OK(async_channel_try_receive(f->never, &v));
    CHECK_EQ(v, 5);
    CHECK_FAILS(async_channel_try_receive(f->never, &v), EAGAIN);
    /* the failed ring send did not enqueue */
    async_ring_close(f->full);
    v = 0;
    CHECK_OK(async_ring_recv(f->full, &v));
    CHECK_EQ(v, 41);
    CHECK_FAILS(async_ring_recv(f->full, &v), EPIPE);
    /* the failed ring recv left no waiter that would steal this element */
    v = 9;
    CHECK_OK(async_ring_send(f->empty, &v));
    v = 0;
    CHECK_OK(async_ring_recv(f->empty, &v));
    CHECK_EQ(v, 9);
    /* the mutex is still ours, then free */
    CHECK_FAILS(async_mutex_trylock(f->held), EBUSY);
    async_mutex_unlock(f->held);
    CHECK_OK(async_mutex_trylock(f->held));
    async_mutex_unlock(f->held);
    /* the group's member is still there until we cancel it */
    async_group_cancel(f->group);
    CHECK_OK(async_group_join(f->group));

    async_group_free(f->group);
    async_mutex_free(f->held);
    async_ring_free(f->empty);
    async_ring_free(f->full);
    async_channel_free(f->never);
    close(f->pipefd[0]);
    close(f->pipefd[1]);
    async_channel_free(f->blocker_ch);
}

/* Makes call c; returns 0 or the errno of its failure. */
static int do_call(struct fixture *f, enum call c)
{
    int rc = 0, v = 1;

    errno = 0;
    switch (c) {
    case C_JOIN:
        rc = async_join(f->blocker, NULL);
        break;
    case C_SLEEP:
        rc = async_sleep_ms(100000);
        break;
    case C_FD_WAIT:
        rc = async_fd_wait(f->pipefd[0], ASYNC_READABLE);
        break;
    case C_CHANNEL_RECEIVE:
        rc = async_channel_receive(f->never, &v);
        break;
    case C_RING_SEND:
        v = 666;
        rc = async_ring_send(f->full, &v);
        break;
    case C_RING_RECV:
        rc = async_ring_recv(f->empty, &v);
        break;
    case C_MUTEX_LOCK:
        rc = async_mutex_lock(f->held);
        if (rc == 0)
            async_mutex_unlock(f->held);
        break;
    case C_GROUP_JOIN:
        rc = async_group_join(f->group);
        break;
    default:
        break;
    }
    if (rc == 0)
        return 0;
    return errno != 0 ? errno : -1;
}

#define CHECK_CALL_FAILS(f, c, want)                                                               \
    do {                                                                                           \
        int got_ = do_call((f), (c));                                                              \
        if (got_ != (want))                                                                        \
            failed(__FILE__, __LINE__, "%s: got %d (%s), want %s", call_name[c], got_,       \
                         got_ > 0 ? strerror(got_) : "returned 0", #want);                         \
    } while (0)

/* ------------------------------------------------------------------ */
/* cancel a fiber parked in each call                                  */

struct victim {
    struct fixture *f;
    enum call call;
    async_channel *ready;
    int result;           /* errno of the call under test, 0 if it succeeded */
    int again;            /* errno of the same call repeated */
    int64_t elapsed_ms;
};

static void *victim_fn(void *arg)
{
    struct victim *v = arg;
    int one = 1;
    int64_t t0;

    CHECK_OK(async_channel_send(v->ready, &one));
    t0 = async_now_ms();
    v->result = do_call(v->f, v->call);
    v->elapsed_ms = async_now_ms() - t0;
    v->again = do_call(v->f, v->call); /* cancellation sticks */
    async_yield();                     /* yield is not a parking call */
    return NULL;
}

static void *canceller_fn(void *arg)
{
    CHECK_OK(async_cancel(arg));
    return NULL;
}

#define CANCEL_ROUNDS 10

static void *cancel_parked_body(void *arg)
{
    enum call c = *(enum call *)arg;
    int round, one;

    for (round = 0; round < CANCEL_ROUNDS; round++) {
        struct fixture f;
        struct victim v = {.f = &f, .call = c, .ready = async_channel_new(sizeof(int))};
        async_task *t;

        fixture_setup(&f);
        t = async_spawn(victim_fn, &v);
        CHECK(t != NULL);
        CHECK_OK(async_channel_receive(v.ready, &one));
        wait_parked(t);
        if (round & 1) {
            CHECK_OK(async_join(async_spawn(canceller_fn, t), NULL));
        } else {
            CHECK_OK(async_cancel(t));
        }
        CHECK_OK(async_join(t, NULL));
        if (v.result != ECANCELED)
            failed(__FILE__, __LINE__, "%s (parked, round %d): got %d (%s), want ECANCELED",
                         call_name[c], round, v.result,
                         v.result > 0 ? strerror(v.result) : "returned 0");
        if (v.again != ECANCELED)
            failed(__FILE__, __LINE__, "%s repeated after cancel: got %d, want ECANCELED",
                         call_name[c], v.again);
        CHECK(v.elapsed_ms < BOUND_MS);
        fixture_teardown(&f);
        async_channel_free(v.ready);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void run_cancel_parked(enum call c)
{
    RUN(1, cancel_parked_body, &c);
    RUN(2, cancel_parked_body, &c);
}

static void cancel_parked_in_join_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_JOIN);
}

static void cancel_parked_in_sleep_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_SLEEP);
}

static void cancel_parked_in_fd_wait_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_FD_WAIT);
}

static void cancel_parked_in_channel_receive_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_CHANNEL_RECEIVE);
}

static void cancel_parked_in_ring_send_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_RING_SEND);
}

static void cancel_parked_in_ring_recv_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_RING_RECV);
}

static void cancel_parked_in_mutex_lock_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_MUTEX_LOCK);
}

static void cancel_parked_in_group_join_fails_ecanceled(void **state)
{
    (void)state;
    run_cancel_parked(C_GROUP_JOIN);
}


/* The canceller never synchronised with the victims after they started:
 * no handshake, no shared lock; they just park in sleep on whichever worker
 * took them.  async_cancel must still be a race-free wake-up (this is what
 * async_group_cancel does to members nobody talks to). */
#define LONE 64

static void *lone_sleeper(void *arg)
{
    int *res = arg;

    *res = async_sleep_ms(100000) == 0 ? 0 : errno;
    return NULL;
}

static void *lone_body(void *arg)
{
    async_task *t[LONE];
    int res[LONE], i;

    (void)arg;
    for (i = 0; i < LONE; i++) {
        res[i] = -1;
        t[i] = async_spawn(lone_sleeper, &res[i]);
    }
    CHECK_OK(async_sleep_ms(20)); /* not a handshake: only lets them park */
    for (i = 0; i < LONE; i++)
        CHECK_OK(async_cancel(t[i]));
    for (i = 0; i < LONE; i++) {
        CHECK_OK(async_join(t[i], NULL));
        CHECK_EQ(res[i], ECANCELED);
    }
    return NULL;
}

static void cancel_parked_fiber_without_prior_handshake_fails_ecanceled(void **state)
{
    (void)state;
    RUN(2, lone_body, NULL);
}

/* ------------------------------------------------------------------ */
/* cancelled before it starts: it still runs, every call fails         */

struct early {
    struct fixture *f;
    atomic_int ran;
    int result[C_COUNT];
};

static void *early_fn(void *arg)
{
    struct early *e = arg;
    int c;

    atomic_store(&e->ran, 1);
    for (c = 0; c < C_COUNT; c++)
        e->result[c] = do_call(e->f, (enum call)c);
    async_yield();
    return (void *)(intptr_t)77;
}

static void *early_body(void *arg)
{
    int round, c;

    (void)arg;
    for (round = 0; round < 20; round++) {
        struct fixture f;
        struct early e = {.f = &f};
        void *res = NULL;
        async_task *t;

        fixture_setup(&f);
        t = async_spawn(early_fn, &e);
        CHECK(t != NULL);
        CHECK_OK(async_cancel(t)); /* one worker: it has surely not started */
        CHECK_OK(async_join(t, &res));
        CHECK_EQ(atomic_load(&e.ran), 1);
        CHECK_EQ((intptr_t)res, 77);
        for (c = 0; c < C_COUNT; c++)
            if (e.result[c] != ECANCELED)
                failed(__FILE__, __LINE__, "%s in a task cancelled before start: got %d (%s)",
                             call_name[c], e.result[c],
                             e.result[c] > 0 ? strerror(e.result[c]) : "returned 0");
        fixture_teardown(&f);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void cancel_before_start_task_runs_and_every_parking_call_fails_ecanceled(void **state)
{
    (void)state;
    RUN(1, early_body, NULL);
    RUN(2, early_body, NULL); /* it may start first there: same outcome */
}

/* ------------------------------------------------------------------ */
/* deadlines                                                           */

struct dl {
    struct fixture *f;
    enum call call;
    int64_t offset_ms;    /* deadline = now + offset */
    int result;
    int again;
    int after_reset;      /* async_sleep_ms(1) once the deadline is lifted */
    int64_t prev;         /* what async_deadline returned when lifting it */
    int64_t set;
    int64_t elapsed_ms;
};

static void *deadline_victim(void *arg)
{
    struct dl *d = arg;
    int64_t t0 = async_now_ms();

    CHECK_EQ(async_deadline(t0 + d->offset_ms), -1); /* none before */
    d->set = t0 + d->offset_ms;
    d->result = do_call(d->f, d->call);
    d->elapsed_ms = async_now_ms() - t0;
    d->again = do_call(d->f, d->call); /* still past it */
    d->prev = async_deadline(-1);
    d->after_reset = async_sleep_ms(1) == 0 ? 0 : errno;
    return NULL;
}

static void *deadline_body(void *arg)
{
    const struct dl *proto = arg;
    int round;

    for (round = 0; round < 5; round++) {
        struct fixture f;
        struct dl d = *proto;
        async_task *t;

        d.f = &f;
        fixture_setup(&f);
        t = async_spawn(deadline_victim, &d);
        CHECK_OK(async_join(t, NULL));
        if (d.result != ETIMEDOUT)
            failed(__FILE__, __LINE__,
                         "%s with deadline now%+lld: got %d (%s), want ETIMEDOUT",
                         call_name[d.call], (long long)d.offset_ms, d.result,
                         d.result > 0 ? strerror(d.result) : "returned 0");
        if (d.again != ETIMEDOUT)
            failed(__FILE__, __LINE__,
                         "%s repeated past the deadline: got %d, want ETIMEDOUT",
                         call_name[d.call], d.again);
        CHECK(d.elapsed_ms < BOUND_MS);
        CHECK_EQ(d.prev, d.set);
        CHECK_EQ(d.after_reset, 0);
        fixture_teardown(&f);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void run_deadline(enum call c)
{
    struct dl d = {.call = c, .offset_ms = 20};

    RUN(1, deadline_body, &d);
    RUN(2, deadline_body, &d);
}

static void deadline_in_join_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_JOIN);
}

static void deadline_in_sleep_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_SLEEP);
}

static void deadline_in_fd_wait_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_FD_WAIT);
}

static void deadline_in_channel_receive_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_CHANNEL_RECEIVE);
}

static void deadline_in_ring_send_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_RING_SEND);
}

static void deadline_in_ring_recv_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_RING_RECV);
}

static void deadline_in_mutex_lock_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_MUTEX_LOCK);
}

static void deadline_in_group_join_fails_etimedout(void **state)
{
    (void)state;
    run_deadline(C_GROUP_JOIN);
}


/* A deadline already past: every call fails at once (no 100 s sleep). */
static void *past_body(void *arg)
{
    int c, k;

    (void)arg;
    for (k = 0; k < 2; k++) {
        struct fixture f;

        fixture_setup(&f);
        for (c = 0; c < C_COUNT; c++) {
            struct dl d = {.call = (enum call)c, .offset_ms = k == 0 ? -1 : -1000, .f = &f};
            async_task *t = async_spawn(deadline_victim, &d);

            CHECK_OK(async_join(t, NULL));
            if (d.result != ETIMEDOUT)
                failed(__FILE__, __LINE__, "%s with a past deadline: got %d (%s)",
                             call_name[c], d.result,
                             d.result > 0 ? strerror(d.result) : "returned 0");
            CHECK_EQ(d.again, ETIMEDOUT);
            CHECK(d.elapsed_ms < BOUND_MS);
            CHECK_EQ(d.after_reset, 0);
        }
        fixture_teardown(&f);
    }
    /* the fiber's own deadline at 0 (the epoch of the clock) is past too */
    CHECK_EQ(async_deadline(0), -1);
    CHECK_FAILS(async_sleep_ms(100000), ETIMEDOUT);
    CHECK_EQ(async_deadline(-5), 0);   /* any negative: none */
    CHECK_EQ(async_deadline(-1), -1);
    CHECK_OK(async_sleep_ms(1));
    return NULL;
}

static void deadline_already_past_fails_every_parking_call_at_once(void **state)
{
    (void)state;
    RUN(1, past_body, NULL);
    RUN(2, past_body, NULL);
}

static void deadline_outside_fiber_does_nothing(void **state)
{
    (void)state;
    assert_int_equal(async_deadline(12345), -1);
    assert_int_equal(async_deadline(-1), -1);
}

/* ------------------------------------------------------------------ */
/* join semantics                                                      */

struct jv {
    async_task *target;
    async_channel *ready;
    int64_t deadline_offset;  /* 0: wait for cancel */
    int result;
    int rejoin;               /* deadline case: join again after lifting it */
    void *rejoin_res;
};

static void *join_victim(void *arg)
{
    struct jv *j = arg;
    int one = 1;

    if (j->deadline_offset != 0)
        async_deadline(async_now_ms() + j->deadline_offset);
    CHECK_OK(async_channel_send(j->ready, &one));
    j->result = async_join(j->target, NULL) == 0 ? 0 : errno;
    if (j->deadline_offset != 0) {
        async_deadline(-1);
        CHECK_OK(async_channel_send(j->ready, &j->result)); /* then joins again */
        j->rejoin = async_join(j->target, &j->rejoin_res) == 0 ? 0 : errno;
    }
    return NULL;
}

static void *target_fn(void *arg)
{
    async_channel *ch = arg;
    int v = 0;

    CHECK_OK(async_channel_receive(ch, &v));
    return (void *)(intptr_t)(v * 3);
}

static void *join_again_body(void *arg)
{
    int round, one;

    (void)arg;
    for (round = 0; round < 30; round++) {
        async_channel *ch = async_channel_new(sizeof(int));
        async_channel *ready = async_channel_new(sizeof(int));
        struct jv j = {.ready = ready};
        void *res = NULL;
        int v = round + 1;
        async_task *victim;

        j.target = async_spawn(target_fn, ch);
        victim = async_spawn(join_victim, &j);
        CHECK_OK(async_channel_receive(ready, &one));
        wait_parked(victim);
        CHECK_OK(async_cancel(victim));
        CHECK_OK(async_join(victim, NULL));
        CHECK_EQ(j.result, ECANCELED);
        /* the target is still valid; either end it now (join parks), or
         * let it end first (join finds it done) */
        CHECK_OK(async_channel_send(ch, &v));
        if (round & 1) {
            int k;

            for (k = 0; k < 50; k++)
                async_yield();
        }
        CHECK_OK(async_join(j.target, &res));
        CHECK_EQ((intptr_t)res, v * 3);

        /* ETIMEDOUT leaves it valid too, and the same fiber may join again */
        struct jv d = {.ready = ready, .deadline_offset = 10};

        d.target = async_spawn(target_fn, ch);
        victim = async_spawn(join_victim, &d);
        CHECK_OK(async_channel_receive(ready, &one));
        wait_parked(victim);
        /* only after its deadline fired (it reports the failed join), and
         * once it parks in its second join, feed the target */
        int first = -1;

        CHECK_OK(async_channel_receive(ready, &first));
        CHECK_EQ(first, ETIMEDOUT);
        wait_parked(victim);
        CHECK_OK(async_channel_send(ch, &v));
        CHECK_OK(async_join(victim, NULL));
        CHECK_EQ(d.rejoin, 0);
        CHECK_EQ((intptr_t)d.rejoin_res, v * 3);

        async_channel_free(ch);
        async_channel_free(ready);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void join_failed_by_cancel_or_deadline_leaves_task_valid_for_a_later_join(void **state)
{
    (void)state;
    RUN(1, join_again_body, NULL);
    RUN(2, join_again_body, NULL);
}

/* The joined task ends at the moment the joiner is cancelled (or hits its
 * deadline).  Either the join succeeds, or it fails and the task stays
 * joinable; and the end of the task must not leave a wake-up behind that
 * lands in the joiner's next parking call (which must fail, not return 0
 * with no element). */
struct jrace {
    async_task *target;
    async_channel *never;
    int deadline_ms;     /* 0: the test cancels the joiner */
    int first;           /* join: 0 or errno */
    int second;          /* the receive after a failed join: 0 or errno */
    intptr_t res;
};

static void *jrace_target(void *arg)
{
    intptr_t n = (intptr_t)arg;

    if (n < 0) {
        CHECK_OK(async_sleep_ms((uint64_t)-n));
    } else {
        while (n-- > 0)
            async_yield();
    }
    return (void *)(intptr_t)42;
}

static void *jrace_joiner(void *arg)
{
    struct jrace *j = arg;
    void *res = NULL;
    int v = 0;

    if (j->deadline_ms != 0)
        async_deadline(async_now_ms() + j->deadline_ms);
    j->first = async_join(j->target, &res) == 0 ? 0 : errno;
    j->res = (intptr_t)res;
    if (j->first != 0) {
        if (j->deadline_ms != 0)
            async_deadline(async_now_ms() + 2);
        j->second = async_channel_receive(j->never, &v) == 0 ? 0 : errno;
    }
    return NULL;
}

static void *join_race_body(void *arg)
{
    async_channel *never = async_channel_new(sizeof(int));
    long joined = 0, cancelled = 0, joined_in_time = 0, timed_out = 0;
    int r, i;

    (void)arg;
    for (r = 0; r < 2000; r++) {
        struct jrace j = {.never = never};

        j.target = async_spawn(jrace_target, (void *)(intptr_t)(r % 4));
        async_task *joiner = async_spawn(jrace_joiner, &j);

        for (i = 0; i < r % 5; i++)
            async_yield();
        CHECK_OK(async_cancel(joiner));
        join_bounded(joiner);
        if (j.first == 0) {
            joined++;
            CHECK_EQ(j.res, 42);
        } else {
            cancelled++;
            CHECK_EQ(j.first, ECANCELED);
            CHECK_EQ(j.second, ECANCELED);
            CHECK_EQ(join_bounded(j.target), 42);
        }
        if (atomic_load(&failures) != 0)
            break;
    }
    for (r = 0; r < 200; r++) {
        struct jrace j = {.never = never, .deadline_ms = 1};

        /* ends at once, after ~1 ms (racing the deadline) or ~2 ms: so that
         * both outcomes happen (counted below) */
        j.target = async_spawn(jrace_target, (void *)(intptr_t)-(r % 3));
        async_task *joiner = async_spawn(jrace_joiner, &j);

        join_bounded(joiner);
        if (j.first == 0) {
            joined_in_time++;
            CHECK_EQ(j.res, 42);
        } else {
            timed_out++;
            CHECK_EQ(j.first, ETIMEDOUT);
            CHECK_EQ(j.second, ETIMEDOUT);
            CHECK_EQ(join_bounded(j.target), 42);
        }
        if (atomic_load(&failures) != 0)
            break;
    }
    CHECK_BOTH_OUTCOMES(joined, cancelled);
    CHECK_BOTH_OUTCOMES(joined_in_time, timed_out);
    CHECK_FAILS(async_channel_try_receive(never, &i), EAGAIN);
    async_channel_free(never);
    return NULL;
}

static void join_racing_cancel_or_deadline_with_target_exit_leaves_no_stray_wakeup(void **state)
{
    (void)state;
    RUN(2, join_race_body, NULL);
    RUN(4, join_race_body, NULL);
}

static void *self_joiner(void *arg)
{
    async_channel *ch = arg;
    async_task *me = NULL;

    CHECK_OK(async_channel_receive(ch, &me));
    CHECK_FAILS(async_join(me, NULL), EDEADLK);
    return (void *)(intptr_t)5;
}

static void *misc_join_body(void *arg)
{
    async_channel *ch = async_channel_new(sizeof(async_task *));
    async_task *t;
    void *res = NULL;

    (void)arg;
    t = async_spawn(self_joiner, ch);
    CHECK_OK(async_channel_send(ch, &t));
    CHECK_OK(async_join(t, &res));
    CHECK_EQ((intptr_t)res, 5);
    CHECK_FAILS(async_join(NULL, NULL), EINVAL);
    CHECK_FAILS(async_cancel(NULL), EINVAL);
    /* cancelling a finished, unjoined task does nothing */
    t = async_spawn(self_joiner, ch);
    CHECK_OK(async_channel_send(ch, &t));
    int k;
    for (k = 0; k < 100; k++)
        async_yield();
    CHECK_OK(async_cancel(t));
    CHECK_OK(async_join(t, &res));
    CHECK_EQ((intptr_t)res, 5);
    async_channel_free(ch);
    return NULL;
}

static void join_of_itself_fails_edeadlk(void **state)
{
    (void)state;
    RUN(1, misc_join_body, NULL);
    RUN(2, misc_join_body, NULL);
}

/* ------------------------------------------------------------------ */
/* async_runtime re-entry                                              */

static void *reentry_child(void *arg)
{
    CHECK_OK(async_sleep_ms(1));
    return arg;
}

static void *reentry_body(void *arg)
{
    int *runs = arg;
    void *res = NULL;
    struct async_config cfg = {.workers = 1};

    CHECK_FAILS(async_runtime(&cfg, reentry_child, NULL), EBUSY); /* nested */
    CHECK_OK(async_join(async_spawn(reentry_child, (void *)(intptr_t)9), &res));
    CHECK_EQ((intptr_t)res, 9);
    async_detach(async_spawn(reentry_child, NULL)); /* runtime waits for it */
    (*runs)++;
    return NULL;
}

static void runtime_may_be_called_again_after_it_returns(void **state)
{
    int runs = 0, i;

    (void)state;
    for (i = 0; i < 3; i++)
        RUN(2, reentry_body, &runs);
    assert_int_equal(runs, 3);
    for (i = 0; i < 3; i++)
        RUN(1, reentry_body, &runs);
    assert_int_equal(runs, 6);
    assert_int_equal(async_runtime(NULL, reentry_body, &runs), 0); /* NULL config */
    assert_int_equal(runs, 7);
    errno = 0;
    assert_int_equal(async_runtime(NULL, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

/* ------------------------------------------------------------------ */
/* 100,000 fibers                                                      */

#define HUNDRED_K SCALED(100000)

static void *square_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;

    if ((i & 1023) == 0)
        async_yield();
    return (void *)(i * 2 + 1);
}

static void *hundred_k_body(void *arg)
{
    async_task **t = malloc(sizeof(*t) * HUNDRED_K);
    long bad = 0, spawned = 0;
    intptr_t i;

    (void)arg;
    CHECK(t != NULL);
    if (t == NULL)
        return NULL;
    for (i = 0; i < HUNDRED_K; i++) {
        t[i] = async_spawn(square_fn, (void *)i);
        spawned += t[i] != NULL;
    }
    CHECK_EQ(spawned, HUNDRED_K);
    for (i = 0; i < HUNDRED_K; i++) {
        void *res = NULL;

        if (t[i] == NULL)
            continue;
        if (async_join(t[i], &res) != 0 || (intptr_t)res != i * 2 + 1)
            bad++;
    }
    CHECK_EQ(bad, 0);
    free(t);
    return NULL;
}

static void hundred_thousand_fibers_spawned_and_joined_on_two_workers(void **state)
{
    (void)state;
    RUN(2, hundred_k_body, NULL);
}

/* ------------------------------------------------------------------ */
/* errno per fiber                                                     */

struct errno_pair {
    atomic_int b_started;
    atomic_int stop;
    atomic_long b_switches;
    long a_bad, b_bad, interleaved;
};

/* A: errno = 1234, then yields many times while B runs in between. */
static void *errno_a(void *arg)
{
    struct errno_pair *p = arg;
    int64_t start = async_now_ms();
    int i;

    while (!atomic_load(&p->b_started) && async_now_ms() - start < BOUND_MS)
        async_yield();
    errno = 1234;
    for (i = 0; i < 5000; i++) {
        long before = atomic_load(&p->b_switches);

        async_yield();
        if (errno != 1234)
            p->a_bad++;
        if (atomic_load(&p->b_switches) != before)
            p->interleaved++;
    }
    atomic_store(&p->stop, 1);
    return NULL;
}

/* B: sets errno to ever new values around its own yields. */
static void *errno_b(void *arg)
{
    struct errno_pair *p = arg;
    int i = 0;

    atomic_store(&p->b_started, 1);
    while (!atomic_load(&p->stop) && i < 1000000) {
        int mine = 5000 + (i++ % 100);

        errno = mine;
        async_yield();
        if (errno != mine)
            p->b_bad++; /* B's own errno must survive too */
        atomic_fetch_add(&p->b_switches, 1);
    }
    return NULL;
}

#define ERRNO_PAIRS 4

static void *errno_body(void *arg)
{
    unsigned workers = *(unsigned *)arg;
    struct errno_pair p[ERRNO_PAIRS];
    async_task *a[ERRNO_PAIRS], *b[ERRNO_PAIRS];
    int i;

    memset(p, 0, sizeof(p));
    for (i = 0; i < ERRNO_PAIRS; i++) {
        a[i] = async_spawn(errno_a, &p[i]);
        b[i] = async_spawn(errno_b, &p[i]);
    }
    /* this fiber's errno survives the others' changes too */
    errno = 77;
    for (i = 0; i < 200; i++) {
        async_yield();
        if (errno != 77)
            failed(__FILE__, __LINE__, "main fiber's errno changed to %d", errno);
    }
    for (i = 0; i < ERRNO_PAIRS; i++) {
        CHECK_OK(async_join(a[i], NULL));
        CHECK_OK(async_join(b[i], NULL));
        CHECK_EQ(p[i].a_bad, 0);
        CHECK_EQ(p[i].b_bad, 0);
        CHECK_EQ(atomic_load(&p[i].b_started), 1);
        if (workers == 1)
            CHECK(p[i].interleaved > 1000); /* one thread: B really ran in between */
    }
    return NULL;
}

static void errno_is_preserved_per_fiber_across_switches(void **state)
{
    unsigned w1 = 1, w2 = 2;

    (void)state;
    RUN(1, errno_body, &w1);
    RUN(2, errno_body, &w2);
}

/* ------------------------------------------------------------------ */
/* shielding (async_shield)                                            */

/* A cancel that reaches a shielded fiber is kept, not delivered: the
 * parking call it sits in goes on (a sleep to its time, a receive to the
 * value sent later), as does the next one while the shield is up; once the
 * shield is lowered the next parking call fails at once. */

enum shield_call { SH_SLEEP, SH_RECEIVE };

#define SHIELD_SLEEP_MS 200

struct shv {
    enum shield_call call;
    async_channel *ready;       /* victim -> test: about to park */
    async_channel *ch;          /* test -> victim: 42 (receive case) */
    async_channel *never;       /* nobody sends */
    atomic_int cancelled;       /* set right after async_cancel returned */
    atomic_int first_returned;  /* the shielded parking call has returned */
};

static void *shield_victim(void *arg)
{
    struct shv *s = arg;
    int one = 1, v = 0;
    int64_t t0;

    CHECK_EQ(async_shield(1), 0);
    CHECK_EQ(async_shield(1), 1); /* raising it again: it was up */
    CHECK_OK(async_channel_send(s->ready, &one));
    t0 = async_now_ms();
    if (s->call == SH_SLEEP) {
        CHECK_OK(async_sleep_ms(SHIELD_SLEEP_MS));
        CHECK(async_now_ms() - t0 >= SHIELD_SLEEP_MS - 5); /* slept its time */
    } else {
        CHECK_OK(async_channel_receive(s->ch, &v));
        CHECK_EQ(v, 42);
    }
    atomic_store(&s->first_returned, 1);
    CHECK_EQ(atomic_load(&s->cancelled), 1); /* the cancel came during the call */
    /* still shielded: another parking call parks and succeeds */
    t0 = async_now_ms();
    CHECK_OK(async_sleep_ms(5));
    CHECK(async_now_ms() - t0 >= 4);
    /* lowered: the kept cancel takes effect at once, and sticks */
    CHECK_EQ(async_shield(0), 1);
    t0 = async_now_ms();
    CHECK_FAILS(async_channel_receive(s->never, &v), ECANCELED);
    CHECK_FAILS(async_sleep_ms(100000), ECANCELED);
    CHECK(async_now_ms() - t0 < 1000);
    CHECK_EQ(async_shield(0), 0);
    /* raised again (cleanup after ECANCELED), it defers the cancel again */
    CHECK_EQ(async_shield(1), 0);
    CHECK_OK(async_sleep_ms(1));
    CHECK_EQ(async_shield(0), 1);
    CHECK_FAILS(async_sleep_ms(1), ECANCELED);
    return NULL;
}

static void *shield_defer_body(void *arg)
{
    int round, one, v;

    (void)arg;
    for (round = 0; round < 8; round++) {
        struct shv s = {
            .call = (round & 2) ? SH_RECEIVE : SH_SLEEP,
            .ready = channel_new_checked(sizeof(int)),
            .ch = channel_new_checked(sizeof(int)),
            .never = channel_new_checked(sizeof(int)),
        };
        async_task *t = spawn(shield_victim, &s);

        CHECK_OK(async_channel_receive(s.ready, &one));
        wait_parked(t);
        if (round & 1)
            CHECK_OK(async_join(spawn(canceller_fn, t), NULL)); /* maybe from another worker */
        else
            CHECK_OK(async_cancel(t));
        atomic_store(&s.cancelled, 1);
        /* the cancel did not wake it */
        CHECK_OK(async_sleep_ms(20));
        CHECK_EQ(atomic_load(&s.first_returned), 0);
        CHECK(parked(t));
        if (s.call == SH_RECEIVE) {
            v = 42;
            CHECK_OK(async_channel_send(s.ch, &v));
        }
        join_bounded(t);
        CHECK_EQ(atomic_load(&s.first_returned), 1);
        CHECK_FAILS(async_channel_try_receive(s.ch, &v), EAGAIN); /* it took the value */
        async_channel_free(s.ready);
        async_channel_free(s.ch);
        async_channel_free(s.never);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void shield_defers_cancel_until_lowered(void **state)
{
    (void)state;
    RUN(1, shield_defer_body, NULL);
    RUN(2, shield_defer_body, NULL);
}

/* A shield is no defence against a deadline, cancelled or not. */
struct shd {
    async_channel *ready;
    async_channel *never;
    bool cancel;
    atomic_int returned;
};

static void *shield_deadline_victim(void *arg)
{
    struct shd *d = arg;
    int one = 1, v = 0;
    int64_t t0, el;

    CHECK_EQ(async_shield(1), 0);
    t0 = async_now_ms();
    CHECK_EQ(async_deadline(t0 + 50), -1);
    CHECK_OK(async_channel_send(d->ready, &one));
    CHECK_FAILS(async_channel_receive(d->never, &v), ETIMEDOUT);
    atomic_store(&d->returned, 1);
    el = async_now_ms() - t0;
    CHECK(el >= 45 && el < BOUND_MS);
    CHECK_FAILS(async_sleep_ms(1), ETIMEDOUT); /* still past it */
    async_deadline(-1);
    CHECK_OK(async_sleep_ms(1)); /* shielded, no deadline: fine even if cancelled */
    CHECK_EQ(async_shield(0), 1);
    if (d->cancel)
        CHECK_FAILS(async_sleep_ms(1), ECANCELED);
    else
        CHECK_OK(async_sleep_ms(1));
    return NULL;
}

static void *shield_deadline_body(void *arg)
{
    int round, one, v;

    (void)arg;
    for (round = 0; round < 6; round++) {
        struct shd d = {
            .ready = channel_new_checked(sizeof(int)),
            .never = channel_new_checked(sizeof(int)),
            .cancel = (round & 1) != 0,
        };
        async_task *t = spawn(shield_deadline_victim, &d);

        CHECK_OK(async_channel_receive(d.ready, &one));
        if (d.cancel) {
            /* cancel it while parked (unless the 50 ms were already up) */
            int64_t t0 = async_now_ms();

            while (!parked(t) && !atomic_load(&d.returned) && !timed_out(t0))
                async_yield();
            CHECK_OK(async_cancel(t));
        }
        join_bounded(t);
        CHECK_FAILS(async_channel_try_receive(d.never, &v), EAGAIN);
        async_channel_free(d.ready);
        async_channel_free(d.never);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void shield_still_honours_deadline(void **state)
{
    (void)state;
    RUN(1, shield_deadline_body, NULL);
    RUN(2, shield_deadline_body, NULL);
}

static void *shield_in_plain_thread(void *arg)
{
    (void)arg;
    CHECK_FAILS(async_shield(1), EPERM);
    CHECK_FAILS(async_shield(0), EPERM);
    return NULL;
}

static void *shield_plain_thread_body(void *arg)
{
    pthread_t th;

    (void)arg;
    /* a thread that is no fiber, while a runtime runs */
    CHECK_EQ(pthread_create(&th, NULL, shield_in_plain_thread, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return NULL;
}

static void shield_outside_fiber_fails_eperm(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(async_shield(1), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(async_shield(0), -1);
    assert_int_equal(errno, EPERM);
    RUN(1, shield_plain_thread_body, NULL);
}

/* A group member that must finish its work raises its shield; the group's
 * cancel waits behind it, and the group's join waits for it. */
struct shg {
    async_channel *ready;       /* member -> test: its handle, about to park */
    async_channel *ch;          /* the sender -> member: 42 */
    async_channel *never;
    async_group *g;
    atomic_int received;
    atomic_int control_done;
};

static void *shield_member(void *arg)
{
    struct shg *s = arg;
    async_task *me = async__current(); /* white box: our own handle */
    int v = 0;

    CHECK_EQ(async_shield(1), 0);
    CHECK_OK(async_channel_send(s->ready, &me));
    CHECK_OK(async_channel_receive(s->ch, &v));
    CHECK_EQ(v, 42);
    atomic_store(&s->received, 1);
    CHECK_EQ(async_shield(0), 1);
    CHECK_FAILS(async_channel_receive(s->never, &v), ECANCELED);
    CHECK_FAILS(async_sleep_ms(100000), ECANCELED);
    return NULL;
}

/* An unshielded member: the group's cancel reaches it at once. */
static void *shield_control_member(void *arg)
{
    struct shg *s = arg;

    CHECK_FAILS(async_sleep_ms(100000), ECANCELED);
    atomic_store(&s->control_done, 1);
    return NULL;
}

static void *group_canceller_fn(void *arg)
{
    async_group_cancel(arg);
    return NULL;
}

static void *shield_sender_fn(void *arg)
{
    struct shg *s = arg;
    int v = 42;

    CHECK_OK(async_channel_send(s->ch, &v));
    return NULL;
}

static void *shield_group_body(void *arg)
{
    int round, v;

    (void)arg;
    for (round = 0; round < 6; round++) {
        struct shg s = {
            .ready = channel_new_checked(sizeof(async_task *)),
            .ch = channel_new_checked(sizeof(int)),
            .never = channel_new_checked(sizeof(int)),
            .g = async_group_new(),
        };
        async_task *member = NULL;
        int64_t old;

        CHECK(s.g != NULL);
        if (s.g == NULL)
            break;
        CHECK_OK(async_group_spawn(s.g, shield_control_member, &s));
        CHECK_OK(async_group_spawn(s.g, shield_member, &s));
        CHECK_OK(async_channel_receive(s.ready, &member));
        wait_parked(member);
        if (round & 1)
            CHECK_OK(async_join(spawn(group_canceller_fn, s.g), NULL));
        else
            async_group_cancel(s.g);
        /* the cancel reached the group (the control member ends) but did
         * not wake the shielded member */
        CHECK(yield_until_at_least(&s.control_done, 1));
        CHECK_OK(async_sleep_ms(20));
        CHECK_EQ(atomic_load(&s.received), 0);
        CHECK(parked(member));
        /* member may end from here on */
        CHECK_OK(async_join(spawn(shield_sender_fn, &s), NULL));
        old = async_deadline(async_now_ms() + BOUND_MS);
        CHECK_OK(async_group_join(s.g));
        async_deadline(old);
        CHECK_EQ(atomic_load(&s.received), 1);
        CHECK_FAILS(async_channel_try_receive(s.ch, &v), EAGAIN);
        async_group_free(s.g);
        async_channel_free(s.ready);
        async_channel_free(s.ch);
        async_channel_free(s.never);
        if (atomic_load(&failures) != 0)
            break;
    }
    return NULL;
}

static void shield_lets_group_member_finish_after_group_cancel(void **state)
{
    (void)state;
    RUN(1, shield_group_body, NULL);
    RUN(2, shield_group_body, NULL);
}

/* Stress: a victim raises its shield while a canceller on another worker
 * cancels it, with no handshake between them, so the cancel races with the
 * async_shield call itself (the window that async_shield closes by waiting
 * for `cancelling` to drain, sched.h).  Whatever the order, the cancel is
 * deferred: the receive that follows returns the value the canceller sends
 * after its cancel, never ECANCELED; once lowered, the cancel applies.
 *
 * The driver (the main fiber) spawns each victim on its own worker and
 * parks in the join, so the victim starts there; the canceller is a fiber
 * that started on the other worker (the driver busy-spins without yielding
 * until it has started) and never parks, so that worker never goes idle to
 * steal a victim.  The canceller waits a spin delay after each post,
 * adapted so that its cancel keeps landing in the victim's start-up, and
 * records how its async_cancel call and the victim's async_shield call
 * overlapped. */
#define SHIELD_RACE_ITERS 20000
#define SHIELD_RACE_MS 30000 /* stop early (not a failure) under slow sanitizers */

struct srace {
    /* per iteration: written by the driver before `posted` */
    long iter;
    async_task *victim;
    async_channel *ch;
    atomic_int vstate;          /* 0 before, 1 inside async_shield(1), 2 after it */
    pthread_t vthread;          /* victim -> driver, ordered by the join */
    atomic_long posted;         /* driver -> canceller: iteration ready */
    atomic_long served;         /* canceller -> driver: cancelled and sent */
    atomic_int stop;
    atomic_int b_started;
    pthread_t bthread;
    /* canceller only, read by the driver after joining it */
    long early, overlapped, late;
    unsigned delay;
};

static void *race_victim(void *arg)
{
    struct srace *r = arg;
    long want = r->iter;
    int v = -1, rc, e, old;

    r->vthread = pthread_self();
    atomic_store(&r->vstate, 1);
    old = async_shield(1);
    atomic_store(&r->vstate, 2);
    CHECK_EQ(old, 0);
    errno = 0;
    rc = async_channel_receive(r->ch, &v);
    e = errno;
    if (rc != 0 || v != want)
        failed(__FILE__, __LINE__,
               "iteration %ld: shielded receive returned %d (%s), value %d, want 0 and %ld", want,
               rc, errname(e), v, want);
    CHECK_EQ(async_shield(0), 1);
    CHECK_FAILS(async_sleep_ms(0), ECANCELED); /* checks before it would yield */
    return NULL;
}

static void spin_for(unsigned n)
{
    volatile unsigned k;

    for (k = 0; k < n; k++)
        ;
}

static void *race_canceller(void *arg)
{
    struct srace *r = arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    long next = 1;

    r->bthread = pthread_self();
    r->delay = 64;
    atomic_store(&r->b_started, 1);
    for (;;) {
        unsigned spins = 0, d;
        int s0, s1, v;

        while (atomic_load(&r->posted) < next && !atomic_load(&r->stop)) {
            if ((++spins & 1023) == 0)
                async_yield(); /* lets anything homed here run; never idles */
            if ((spins & 0xffff) == 0)
                sched_yield(); /* on a crowded machine, let the driver's thread run */
        }
        if (atomic_load(&r->posted) < next)
            break;
        d = r->delay + (unsigned)(xorshift(&rng) % (r->delay / 2 + 16));
        spin_for(d);
        s0 = atomic_load(&r->vstate);
        CHECK_OK(async_cancel(r->victim));
        s1 = atomic_load(&r->vstate);
        if (s1 == 0) {
            r->early++; /* before the victim began async_shield: wait longer */
            r->delay += r->delay / 8 + 1;
        } else if (s0 == 2) {
            r->late++; /* after it returned: wait less */
            r->delay -= r->delay / 8 + (r->delay > 1);
        } else {
            r->overlapped++; /* the two calls overlapped in time */
        }
        if (r->delay > 1u << 20)
            r->delay = 1u << 20;
        v = (int)next;
        CHECK_OK(async_channel_send(r->ch, &v));
        atomic_store(&r->served, next);
        next++;
    }
    return NULL;
}

static void *shield_race_body(void *arg)
{
    static struct srace r; /* big enough to keep off the fiber stack; one at a time */
    int64_t start = async_now_ms(), t0;
    long i, cross = 0, done = 0, slow = 0;
    int64_t it0, it, worst = 0;
    async_task *b;
    int v;

    (void)arg;
    memset(&r, 0, sizeof(r));
    b = spawn(race_canceller, &r);
    /* Hold this worker without yielding, so that the other one takes it. */
    t0 = async_now_ms();
    while (!atomic_load(&r.b_started) && async_now_ms() - t0 < 2000)
        ;
    if (!atomic_load(&r.b_started)) {
        fprintf(stderr, "  [%s] canceller not started by the other worker; yielding\n",
                current_test);
        yield_until_at_least(&r.b_started, 1);
    }
    for (i = 1; i <= SHIELD_RACE_ITERS; i++) {
        it0 = async_now_ms();
        r.iter = i;
        r.ch = channel_new_checked(sizeof(int));
        atomic_store(&r.vstate, 0);
        r.victim = spawn(race_victim, &r);
        atomic_store(&r.posted, i);
        join_bounded(r.victim); /* parks: the victim starts on this worker */
        t0 = async_now_ms();
        while (atomic_load(&r.served) < i) {
            if (timed_out(t0)) {
                failed(__FILE__, __LINE__, "canceller stuck at iteration %ld", i);
                break;
            }
            async_yield();
        }
        if (atomic_load(&r.served) < i)
            break; /* the canceller may still use r.ch */
        if (!pthread_equal(r.vthread, r.bthread))
            cross++;
        CHECK_FAILS(async_channel_try_receive(r.ch, &v), EAGAIN);
        async_channel_free(r.ch);
        done++;
        it = async_now_ms() - it0;
        slow += it >= 2;
        if (it > worst)
            worst = it;
        if (atomic_load(&failures) != 0 || async_now_ms() - start > SHIELD_RACE_MS)
            break;
    }
    atomic_store(&r.stop, 1);
    join_bounded(b);
    fprintf(stderr,
            "  [%s] %ld iterations in %lld ms: %ld cross-worker; cancel vs async_shield: "
            "%ld overlapped, %ld before, %ld after (final delay %u); %ld took >= 2 ms, "
            "slowest %lld ms\n",
            current_test, done, (long long)(async_now_ms() - start), cross, r.overlapped,
            r.early, r.late, r.delay, slow, (long long)worst);
    CHECK(done > 0);
    CHECK(cross > 0); /* the two fibers did run on different workers */
    return NULL;
}

static void shield_races_cancel_from_another_worker(void **state)
{
    (void)state;
    RUN(2, shield_race_body, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cancel_parked_in_join_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_sleep_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_fd_wait_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_channel_receive_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_ring_send_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_ring_recv_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_mutex_lock_fails_ecanceled),
        cmocka_unit_test(cancel_parked_in_group_join_fails_ecanceled),
        cmocka_unit_test(cancel_parked_fiber_without_prior_handshake_fails_ecanceled),
        cmocka_unit_test(cancel_before_start_task_runs_and_every_parking_call_fails_ecanceled),
        cmocka_unit_test(deadline_in_join_fails_etimedout),
        cmocka_unit_test(deadline_in_sleep_fails_etimedout),
        cmocka_unit_test(deadline_in_fd_wait_fails_etimedout),
        cmocka_unit_test(deadline_in_channel_receive_fails_etimedout),
        cmocka_unit_test(deadline_in_ring_send_fails_etimedout),
        cmocka_unit_test(deadline_in_ring_recv_fails_etimedout),
        cmocka_unit_test(deadline_in_mutex_lock_fails_etimedout),
        cmocka_unit_test(deadline_in_group_join_fails_etimedout),
        cmocka_unit_test(deadline_already_past_fails_every_parking_call_at_once),
        cmocka_unit_test(deadline_outside_fiber_does_nothing),
        cmocka_unit_test(join_failed_by_cancel_or_deadline_leaves_task_valid_for_a_later_join),
        cmocka_unit_test(join_racing_cancel_or_deadline_with_target_exit_leaves_no_stray_wakeup),
        cmocka_unit_test(join_of_itself_fails_edeadlk),
        cmocka_unit_test(runtime_may_be_called_again_after_it_returns),
        cmocka_unit_test(hundred_thousand_fibers_spawned_and_joined_on_two_workers),
        cmocka_unit_test(errno_is_preserved_per_fiber_across_switches),
        cmocka_unit_test(shield_defers_cancel_until_lowered),
        cmocka_unit_test(shield_still_honours_deadline),
        cmocka_unit_test(shield_outside_fiber_fails_eperm),
        cmocka_unit_test(shield_lets_group_member_finish_after_group_cancel),
        cmocka_unit_test(shield_races_cancel_from_another_worker),
    };

    /* TEST_FILTER=pattern runs only the matching tests (cmocka glob) */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
