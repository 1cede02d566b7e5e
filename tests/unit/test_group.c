/* tests/unit/test_group — async_group: join waits for every member
 * (including fibers members spawn with async_spawn), cancel reaches every
 * member's parking call and every member spawned afterwards, reuse after a
 * successful join, the empty group, argument errors, a thousand members.
 *
 * Every test body runs inside async_runtime.  cmocka's assertions longjmp,
 * which must not happen on a fiber stack (or on another worker thread), so
 * fibers record failures with CHECK* and the test asserts on the tally once
 * async_runtime has returned.
 *
 * White box: to know that a member really sits parked the tests read the
 * task's park token, `woken` (runtime/sched/sched.h): 0 while the fiber is
 * inside a parking call's epoch, 1 otherwise; members are detached, so they
 * publish their own task with async__current().  Reading the token is a
 * relaxed atomic load and never changes what the runtime does. */
#define _GNU_SOURCE
#include "harness.h"

#include <sys/wait.h>

/* A member publishes its own task so that the test can see it park. */
static async_task *self_task(void)
{
    return async__current();
}

/* ------------------------------------------------------------------ */
/* join waits for every member, spawned ones included                  */

#define JW_MEMBERS 8
#define JW_CHILDREN 3

struct jw {
    async_group *g;
    async_channel *release;  /* children wait here */
    atomic_int members_done;
    atomic_int children_started;
    atomic_int children_done;
    atomic_int grandchildren_done;
    atomic_int join_returned;
};

static void *jw_grandchild(void *arg)
{
    struct jw *j = arg;
    int i;

    for (i = 0; i < 50; i++)
        async_yield();
    CHECK_EQ(atomic_load(&j->join_returned), 0);
    atomic_fetch_add(&j->grandchildren_done, 1);
    return NULL;
}

static void *jw_child(void *arg)
{
    struct jw *j = arg;
    int v;

    atomic_fetch_add(&j->children_started, 1);
    /* Outlives its parent: waits for a token sent only after every member
     * has returned. */
    CHECK_OK(async_channel_receive(j->release, &v));
    async_detach(async_spawn(jw_grandchild, j)); /* a member of the group too */
    CHECK_EQ(atomic_load(&j->join_returned), 0);
    atomic_fetch_add(&j->children_done, 1);
    return NULL;
}

static void *jw_member(void *arg)
{
    struct jw *j = arg;
    int i;

    for (i = 0; i < JW_CHILDREN; i++) {
        async_task *c = async_spawn(jw_child, j);

        CHECK(c != NULL);
        async_detach(c);
    }
    CHECK_OK(async_sleep_ms(1));
    atomic_fetch_add(&j->members_done, 1);
    return NULL;
}

/* Not a member: releases the children once every member has ended, while
 * the group join must still be waiting. */
static void *jw_releaser(void *arg)
{
    struct jw *j = arg;
    int i, one = 1;

    yield_until_at_least(&j->members_done, JW_MEMBERS);
    yield_until_at_least(&j->children_started, JW_MEMBERS * JW_CHILDREN);
    CHECK_OK(async_sleep_ms(5));
    CHECK_EQ(atomic_load(&j->join_returned), 0);
    for (i = 0; i < JW_MEMBERS * JW_CHILDREN; i++) {
        CHECK_OK(async_channel_send(j->release, &one));
        async_yield();
    }
    return NULL;
}

static void *join_waits_body(void *arg)
{
    struct jw j = {.g = async_group_new(), .release = async_channel_new(sizeof(int))};
    async_task *rel;
    int i, round;

    (void)arg;
    CHECK(j.g != NULL && j.release != NULL);
    for (round = 0; round < 3; round++) {
        atomic_store(&j.members_done, 0);
        atomic_store(&j.children_started, 0);
        atomic_store(&j.children_done, 0);
        atomic_store(&j.grandchildren_done, 0);
        atomic_store(&j.join_returned, 0);
        rel = async_spawn(jw_releaser, &j);
        for (i = 0; i < JW_MEMBERS; i++)
            CHECK_OK(async_group_spawn(j.g, jw_member, &j));
        CHECK_OK(async_group_join(j.g));
        atomic_store(&j.join_returned, 1);
        CHECK_EQ(atomic_load(&j.members_done), JW_MEMBERS);
        CHECK_EQ(atomic_load(&j.children_done), JW_MEMBERS * JW_CHILDREN);
        CHECK_EQ(atomic_load(&j.grandchildren_done), JW_MEMBERS * JW_CHILDREN);
        CHECK_OK(async_join(rel, NULL));
    }
    async_group_free(j.g);
    async_channel_free(j.release);
    return NULL;
}

static void group_join_waits_for_all_members_and_their_spawned_fibers(void **state)
{
    (void)state;
    RUN(1, join_waits_body, NULL);
    RUN(2, join_waits_body, NULL);
}

/* Several fibers may join one group; all return once it empties. */
struct multi {
    async_group *g;
    async_channel *release;
    atomic_int joined;
};

static void *multi_member(void *arg)
{
    struct multi *m = arg;
    int v;

    CHECK_OK(async_channel_receive(m->release, &v));
    return NULL;
}

static void *multi_joiner(void *arg)
{
    struct multi *m = arg;

    CHECK_OK(async_group_join(m->g));
    atomic_fetch_add(&m->joined, 1);
    return NULL;
}

static void *multi_body(void *arg)
{
    struct multi m = {.g = async_group_new(), .release = async_channel_new(sizeof(int))};
    async_task *j[4];
    int i, one = 1;

    (void)arg;
    for (i = 0; i < 4; i++)
        CHECK_OK(async_group_spawn(m.g, multi_member, &m));
    for (i = 0; i < 4; i++)
        j[i] = async_spawn(multi_joiner, &m);
    for (i = 0; i < 4; i++)
        wait_parked(j[i]);
    CHECK_EQ(atomic_load(&m.joined), 0);
    for (i = 0; i < 4; i++)
        CHECK_OK(async_channel_send(m.release, &one));
    for (i = 0; i < 4; i++)
        CHECK_OK(async_join(j[i], NULL));
    CHECK_EQ(atomic_load(&m.joined), 4);
    CHECK_OK(async_group_join(m.g));
    async_group_free(m.g);
    async_channel_free(m.release);
    return NULL;
}

static void group_join_by_several_fibers_all_return_when_empty(void **state)
{
    (void)state;
    RUN(1, multi_body, NULL);
    RUN(2, multi_body, NULL);
}

/* ------------------------------------------------------------------ */
/* cancel reaches every member's parking call                           */

enum park_kind {
    K_SLEEP,
    K_CHANNEL,
    K_RING_RECV,
    K_RING_SEND,
    K_FD,
    K_MUTEX,
    K_JOIN,
    K_GROUP_JOIN,
    K_CHILD_SLEEP, /* a fiber a member spawned (so a member) sleeping */
    K_COUNT
};

static const char *const kind_name[K_COUNT] = {
    "sleep", "channel receive", "ring recv", "ring send", "fd wait",
    "mutex lock", "join", "group join", "spawned child sleep",
};

#define PER_KIND 3
#define NPARK (K_COUNT * PER_KIND)

struct parkers {
    async_group *g;
    async_channel *never;        /* nobody sends */
    async_ring *empty, *full;
    int pipefd[2];
    async_mutex *held;
    async_task *blocker[PER_KIND]; /* not members: block on blocker_ch */
    async_channel *blocker_ch;
    async_group *inner;          /* not cancelled with g */
    async_channel *inner_ch;
    _Atomic(async_task *) self[NPARK];
    atomic_int result[NPARK];    /* errno of the failed call, or -1 if it returned 0 */
    atomic_int arrived;
};

struct parker_arg {
    struct parkers *p;
    int idx;
};

static struct parker_arg parker_args[NPARK];

static void *inner_member(void *arg)
{
    struct parkers *p = arg;
    int v;

    CHECK_FAILS(async_channel_receive(p->inner_ch, &v), ECANCELED); /* ended by the test */
    return NULL;
}

static void *parker(void *arg);

static void *parker_child(void *arg)
{
    struct parker_arg *a = arg;
    struct parkers *p = a->p;
    int rc, e;

    atomic_store(&p->self[a->idx], self_task());
    atomic_fetch_add(&p->arrived, 1);
    errno = 0;
    rc = async_sleep_ms(100000);
    e = errno;
    atomic_store(&p->result[a->idx], rc == 0 ? -1 : e);
    return NULL;
}

static void *parker(void *arg)
{
    struct parker_arg *a = arg;
    struct parkers *p = a->p;
    enum park_kind k = (enum park_kind)(a->idx / PER_KIND);
    int rc = 0, e, v = 7;

    if (k == K_CHILD_SLEEP) {
        async_task *c = async_spawn(parker_child, a);

        CHECK(c != NULL);
        async_detach(c);
        return NULL;
    }
    atomic_store(&p->self[a->idx], self_task());
    atomic_fetch_add(&p->arrived, 1);
    errno = 0;
    switch (k) {
    case K_SLEEP:
        rc = async_sleep_ms(100000);
        break;
    case K_CHANNEL:
        rc = async_channel_receive(p->never, &v);
        break;
    case K_RING_RECV:
        rc = async_ring_recv(p->empty, &v);
        break;
    case K_RING_SEND:
        rc = async_ring_send(p->full, &v);
        break;
    case K_FD:
        rc = async_fd_wait(p->pipefd[0], ASYNC_READABLE);
        break;
    case K_MUTEX:
        rc = async_mutex_lock(p->held);
        if (rc == 0)
            async_mutex_unlock(p->held);
        break;
    case K_JOIN:
        rc = async_join(p->blocker[a->idx % PER_KIND], NULL); /* one joiner each */
        break;
    case K_GROUP_JOIN:
        rc = async_group_join(p->inner);
        break;
    default:
        break;
    }
    e = errno;
    atomic_store(&p->result[a->idx], rc == 0 ? -1 : e);
    return NULL;
}

static void *blocker_fn(void *arg)
{
    struct parkers *p = arg;
    int v = 0;

    CHECK_OK(async_channel_receive(p->blocker_ch, &v));
    return (void *)(intptr_t)(v + 1);
}

static void *cancel_members_body(void *arg)
{
    struct parkers *p = calloc(1, sizeof(*p));
    int i, v = 1, round;
    void *res;

    (void)arg;
    for (round = 0; round < 3; round++) {
        memset(p, 0, sizeof(*p));
        p->g = async_group_new();
        p->never = async_channel_new(sizeof(int));
        p->empty = async_ring_new(1, sizeof(int));
        p->full = async_ring_new(1, sizeof(int));
        CHECK_OK(async_ring_send(p->full, &v));
        CHECK_EQ(pipe(p->pipefd), 0);
        p->held = async_mutex_new();
        CHECK_OK(async_mutex_lock(p->held));
        p->blocker_ch = async_channel_new(sizeof(int));
        for (i = 0; i < PER_KIND; i++)
            p->blocker[i] = async_spawn(blocker_fn, p);
        p->inner = async_group_new();
        p->inner_ch = async_channel_new(sizeof(int));
        CHECK_OK(async_group_spawn(p->inner, inner_member, p));

        for (i = 0; i < NPARK; i++) {
            parker_args[i].p = p;
            parker_args[i].idx = i;
            CHECK_OK(async_group_spawn(p->g, parker, &parker_args[i]));
        }
        yield_until_at_least(&p->arrived, NPARK);
        for (i = 0; i < NPARK; i++)
            wait_parked(atomic_load(&p->self[i]));
        for (i = 0; i < NPARK; i++)
            CHECK_EQ(atomic_load(&p->result[i]), 0); /* none returned yet */

        int64_t t0 = async_now_ms();

        async_group_cancel(p->g);
        CHECK_OK(async_group_join(p->g));
        CHECK(async_now_ms() - t0 < BOUND_MS);
        for (i = 0; i < NPARK; i++) {
            int r = atomic_load(&p->result[i]);

            if (r != ECANCELED)
                failed(__FILE__, __LINE__,
                             "member %d parked in %s: got %d (%s), want ECANCELED", i,
                             kind_name[i / PER_KIND], r, r > 0 ? strerror(r) : "returned 0");
        }
        /* Everything outside the group is untouched. */
        CHECK_FAILS(async_mutex_trylock(p->held), EBUSY);
        async_mutex_unlock(p->held);
        for (i = 0; i < PER_KIND; i++) /* any blocker may take any token */
            CHECK_OK(async_channel_send(p->blocker_ch, &v));
        for (i = 0; i < PER_KIND; i++) {
            res = NULL;
            CHECK_OK(async_join(p->blocker[i], &res)); /* the failed join left it valid */
            CHECK_EQ((intptr_t)res, 2);
        }
        async_group_cancel(p->inner);
        CHECK_OK(async_group_join(p->inner));

        async_group_free(p->inner);
        async_group_free(p->g);
        async_channel_free(p->inner_ch);
        async_channel_free(p->blocker_ch);
        async_channel_free(p->never);
        async_ring_free(p->empty);
        async_ring_free(p->full);
        async_mutex_free(p->held);
        close(p->pipefd[0]);
        close(p->pipefd[1]);
        if (atomic_load(&failures) != 0)
            break;
    }
    free(p);
    return NULL;
}

static void group_cancel_fails_every_members_parking_call_with_ecanceled(void **state)
{
    (void)state;
    RUN(1, cancel_members_body, NULL);
    RUN(2, cancel_members_body, NULL);
}

/* ------------------------------------------------------------------ */
/* members spawned after cancel start cancelled; reuse after join      */

struct late {
    async_group *g;
    async_channel *ch;
    atomic_int ran;
    atomic_int ok;        /* parking calls that succeeded */
    atomic_int cancelled; /* parking calls that failed ECANCELED */
    atomic_int other;
    atomic_int join_ok, join_cancelled; /* the member's join of its child */
};

static void tally(struct late *l, int rc)
{
    int e = errno;

    if (rc == 0)
        atomic_fetch_add(&l->ok, 1);
    else if (e == ECANCELED)
        atomic_fetch_add(&l->cancelled, 1);
    else
        atomic_fetch_add(&l->other, 1);
}

static void *late_child(void *arg)
{
    struct late *l = arg;

    atomic_fetch_add(&l->ran, 1);
    tally(l, async_sleep_ms(100000));
    return NULL;
}

/* Two parking calls, then a spawned fiber (a member too) with one more,
 * then a join of that fiber. */
static void *late_member(void *arg)
{
    struct late *l = arg;
    int v;

    atomic_fetch_add(&l->ran, 1);
    tally(l, async_channel_receive(l->ch, &v));
    tally(l, async_sleep_ms(1));
    async_task *c = async_spawn(late_child, l);
    if (c == NULL) {
        atomic_fetch_add(&l->other, 1);
        return NULL;
    }
    if (async_join(c, NULL) == 0) {
        atomic_fetch_add(&l->join_ok, 1);
    } else {
        if (errno == ECANCELED)
            atomic_fetch_add(&l->join_cancelled, 1);
        else
            atomic_fetch_add(&l->other, 1);
        async_detach(c);
    }
    return NULL;
}

static void late_reset(struct late *l)
{
    atomic_store(&l->ran, 0);
    atomic_store(&l->ok, 0);
    atomic_store(&l->cancelled, 0);
    atomic_store(&l->other, 0);
    atomic_store(&l->join_ok, 0);
    atomic_store(&l->join_cancelled, 0);
}

static void *late_body(void *arg)
{
    struct late l = {.g = async_group_new(), .ch = async_channel_new(sizeof(int))};
    int i, v = 1;

    (void)arg;
    /* Cancel with a member present (nothing is ever sent, so its first
     * call can only end by cancel), then spawn more: they start cancelled,
     * and so do the fibers they spawn. */
    late_reset(&l);
    CHECK_OK(async_group_spawn(l.g, late_member, &l));
    async_group_cancel(l.g);
    for (i = 0; i < 5; i++)
        CHECK_OK(async_group_spawn(l.g, late_member, &l));
    CHECK_OK(async_group_join(l.g));
    CHECK_EQ(atomic_load(&l.ran), 12);   /* 6 members + 6 spawned by them */
    CHECK_EQ(atomic_load(&l.ok), 0);
    CHECK_EQ(atomic_load(&l.other), 0);
    CHECK_EQ(atomic_load(&l.cancelled), 6 * 2 + 6);
    CHECK_EQ(atomic_load(&l.join_cancelled), 6);

    /* Cancel an empty group: still "cancelled until a join returns 0". */
    async_group_cancel(l.g);
    late_reset(&l);
    CHECK_OK(async_group_spawn(l.g, late_member, &l));
    CHECK_OK(async_group_join(l.g));
    CHECK_EQ(atomic_load(&l.ran), 2);
    CHECK_EQ(atomic_load(&l.cancelled), 3);
    CHECK_EQ(atomic_load(&l.join_cancelled), 1);
    CHECK_EQ(atomic_load(&l.ok), 0);

    /* After a successful join the group is reusable and not cancelled: a
     * new member's (and its child's) parking calls succeed. */
    async_group_cancel(l.g);
    CHECK_OK(async_group_join(l.g)); /* empty: 0, and that clears the cancel */
    late_reset(&l);
    CHECK_OK(async_channel_send(l.ch, &v));
    CHECK_OK(async_group_spawn(l.g, late_member, &l));
    /* The child sleeps 100 s: once both calls of the member succeeded and
     * the child runs, cancel the group to end them. */
    yield_until_at_least(&l.ran, 2);
    yield_until_at_least(&l.ok, 2);
    for (i = 0; i < 20; i++)
        async_yield();
    CHECK_EQ(atomic_load(&l.ok), 2);
    CHECK_EQ(atomic_load(&l.cancelled), 0);
    async_group_cancel(l.g);
    CHECK_OK(async_group_join(l.g));
    CHECK_EQ(atomic_load(&l.ran), 2);
    CHECK_EQ(atomic_load(&l.ok), 2);
    CHECK_EQ(atomic_load(&l.cancelled), 1); /* the child's sleep */
    CHECK_EQ(atomic_load(&l.join_ok) + atomic_load(&l.join_cancelled), 1);
    CHECK_EQ(atomic_load(&l.other), 0);

    async_group_free(l.g);
    async_channel_free(l.ch);
    return NULL;
}

static void group_members_spawned_after_cancel_start_cancelled_until_join(void **state)
{
    (void)state;
    RUN(1, late_body, NULL);
    RUN(2, late_body, NULL);
}

struct reuse {
    atomic_int done;
};

static void *reuse_member(void *arg)
{
    struct reuse *r = arg;

    CHECK_OK(async_sleep_ms(1));
    async_yield();
    atomic_fetch_add(&r->done, 1);
    return NULL;
}

static void *reuse_blocked(void *arg)
{
    (void)arg;
    CHECK_FAILS(async_sleep_ms(100000), ECANCELED);
    return NULL;
}

static void *reuse_body(void *arg)
{
    async_group *g = async_group_new();
    struct reuse r = {0};
    int cycle, i;

    (void)arg;
    for (cycle = 0; cycle < 20; cycle++) {
        /* a normal round: every member's parking calls succeed */
        for (i = 0; i < 10; i++)
            CHECK_OK(async_group_spawn(g, reuse_member, &r));
        CHECK_OK(async_group_join(g));
        CHECK_EQ(atomic_load(&r.done), (cycle + 1) * 10);
        /* a cancelled round */
        for (i = 0; i < 10; i++)
            CHECK_OK(async_group_spawn(g, reuse_blocked, NULL));
        async_group_cancel(g);
        CHECK_OK(async_group_join(g));
    }
    async_group_free(g);
    return NULL;
}

static void group_is_reusable_and_not_cancelled_after_successful_join(void **state)
{
    (void)state;
    RUN(1, reuse_body, NULL);
    RUN(2, reuse_body, NULL);
}

/* Cancel lands while members are spawning children (members too), parking
 * and ending, and while the joiner is already parked: join still returns,
 * every fiber that started has ended, and the group is usable again. */
#define STORM_ROOTS 4
#define STORM_FANOUT 3
#define STORM_DEPTH 3

static atomic_int storm_started, storm_ended;

static void *storm_fiber(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    int i;

    atomic_fetch_add(&storm_started, 1);
    if (depth < STORM_DEPTH)
        for (i = 0; i < STORM_FANOUT; i++) {
            async_task *c = async_spawn(storm_fiber, (void *)(depth + 1));

            CHECK(c != NULL);
            async_detach(c);
            async_yield();
        }
    for (i = 0; i < 3; i++)
        if (async_sleep_ms(1) != 0)
            break;
    atomic_fetch_add(&storm_ended, 1);
    return NULL;
}

struct storm_cancel {
    async_group *g;
    int yields;
    int sleep_ms;  /* 0: cancel while they spawn; 1..4: while they sleep or end */
};

static void *storm_canceller(void *arg)
{
    struct storm_cancel *c = arg;
    int i;

    if (c->sleep_ms != 0)
        CHECK_OK(async_sleep_ms((uint64_t)c->sleep_ms));
    for (i = 0; i < c->yields; i++)
        async_yield();
    async_group_cancel(c->g);
    return NULL;
}

static void *storm_body(void *arg)
{
    async_group *g = async_group_new();
    int r, i;
    long total = 0;

    (void)arg;
    for (r = 0; r < 40; r++) {
        struct storm_cancel c = {.g = g, .yields = (r * 7) % 40, .sleep_ms = r % 5};

        atomic_store(&storm_started, 0);
        atomic_store(&storm_ended, 0);
        for (i = 0; i < STORM_ROOTS; i++)
            CHECK_OK(async_group_spawn(g, storm_fiber, (void *)(intptr_t)0));
        async_task *ct = async_spawn(storm_canceller, &c); /* not a member */
        int64_t old = async_deadline(async_now_ms() + BOUND_MS);
        int rc = async_group_join(g), e = errno;

        async_deadline(old);
        if (rc != 0) {
            failed(__FILE__, __LINE__, "group join: %s", strerror(e));
            abort(); /* members left: the runtime could not end */
        }
        CHECK_EQ(atomic_load(&storm_started), atomic_load(&storm_ended));
        CHECK(atomic_load(&storm_started) >= STORM_ROOTS);
        total += atomic_load(&storm_started);
        join_bounded(ct);
        /* a cancel that came after the join returned leaves it cancelled:
         * clear that with another (empty) join before reusing it */
        CHECK_OK(async_group_join(g));
        if (atomic_load(&failures) != 0)
            break;
    }
    CHECK(total > 40 * STORM_ROOTS); /* members did spawn: the race was real */
    async_group_free(g);
    return NULL;
}

static void group_cancel_racing_spawns_and_exits_join_still_returns(void **state)
{
    (void)state;
    RUN(2, storm_body, NULL);
    RUN(4, storm_body, NULL);
}

/* ------------------------------------------------------------------ */
/* edge cases                                                          */

static void *empty_body(void *arg)
{
    async_group *g = async_group_new();
    int64_t t0 = async_now_ms();

    (void)arg;
    CHECK(g != NULL);
    CHECK_OK(async_group_join(g));
    CHECK_OK(async_group_join(g));
    CHECK(async_now_ms() - t0 < BOUND_MS);
    async_group_free(g);
    async_group_free(NULL);
    return NULL;
}

static void group_join_on_empty_group_returns_zero(void **state)
{
    (void)state;
    RUN(1, empty_body, NULL);
}

static void *noop(void *arg)
{
    return arg;
}

static void *null_body(void *arg)
{
    async_group *g = async_group_new();

    (void)arg;
    CHECK_FAILS(async_group_spawn(NULL, noop, NULL), EINVAL);
    CHECK_FAILS(async_group_spawn(g, NULL, NULL), EINVAL);
    CHECK_FAILS(async_group_join(NULL), EINVAL);
    async_group_cancel(NULL); /* ignored */
    CHECK_OK(async_group_join(g)); /* the failed spawn added nothing */
    async_group_free(g);
    return NULL;
}

static void group_null_fails_einval(void **state)
{
    (void)state;
    RUN(1, null_body, NULL);
}

static void group_outside_fiber_fails_eperm(void **state)
{
    async_group *g = async_group_new();

    (void)state;
    assert_non_null(g);
    errno = 0;
    assert_int_equal(async_group_spawn(g, noop, NULL), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(async_group_join(g), -1);
    assert_int_equal(errno, EPERM);
    async_group_free(g);
}

static void *free_live_body(void *arg)
{
    async_group *g = async_group_new();

    (void)arg;
    async_group_spawn(g, reuse_blocked, NULL);
    async_group_free(g); /* must abort */
    return NULL;
}

static void group_free_with_live_members_aborts(void **state)
{
    pid_t pid;
    int status = 0;

    (void)state;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct async_config cfg = {.workers = 1, .stack_size = 0};

        freopen("/dev/null", "w", stderr);
        async_runtime(&cfg, free_live_body, NULL);
        _exit(0); /* not reached if it aborts */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* ------------------------------------------------------------------ */
/* a thousand members                                                  */

#define MANY 1000

struct many {
    async_group *g;
    async_channel *ch;
    atomic_int done;
    atomic_int cancelled;
    long sum;            /* plain: under mu */
    async_mutex *mu;
};

static void *many_member(void *arg)
{
    struct many *m = arg;
    int v, i;

    CHECK_OK(async_channel_receive(m->ch, &v));
    for (i = 0; i < 3; i++)
        async_yield();
    CHECK_OK(async_mutex_lock(m->mu));
    m->sum += v;
    async_mutex_unlock(m->mu);
    atomic_fetch_add(&m->done, 1);
    return NULL;
}

static void *many_sleeper(void *arg)
{
    struct many *m = arg;

    if (async_sleep_ms(100000) == -1 && errno == ECANCELED)
        atomic_fetch_add(&m->cancelled, 1);
    return NULL;
}

static void *many_body(void *arg)
{
    struct many m = {.g = async_group_new(), .ch = async_channel_new(sizeof(int)),
                     .mu = async_mutex_new()};
    int i;

    (void)arg;
    for (i = 0; i < MANY; i++)
        CHECK_OK(async_group_spawn(m.g, many_member, &m));
    for (i = 1; i <= MANY; i++)
        CHECK_OK(async_channel_send(m.ch, &i));
    CHECK_OK(async_group_join(m.g));
    CHECK_EQ(atomic_load(&m.done), MANY);
    CHECK_EQ(m.sum, (long)MANY * (MANY + 1) / 2);

    /* and a thousand parked members cancelled at once */
    for (i = 0; i < MANY; i++)
        CHECK_OK(async_group_spawn(m.g, many_sleeper, &m));
    for (i = 0; i < 20; i++)
        async_yield();
    int64_t t0 = async_now_ms();
    async_group_cancel(m.g);
    CHECK_OK(async_group_join(m.g));
    CHECK(async_now_ms() - t0 < BOUND_MS);
    CHECK_EQ(atomic_load(&m.cancelled), MANY);

    async_group_free(m.g);
    async_channel_free(m.ch);
    async_mutex_free(m.mu);
    return NULL;
}

static void group_thousand_members_on_two_workers(void **state)
{
    (void)state;
    RUN(2, many_body, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(group_join_waits_for_all_members_and_their_spawned_fibers),
        cmocka_unit_test(group_join_by_several_fibers_all_return_when_empty),
        cmocka_unit_test(group_cancel_fails_every_members_parking_call_with_ecanceled),
        cmocka_unit_test(group_members_spawned_after_cancel_start_cancelled_until_join),
        cmocka_unit_test(group_is_reusable_and_not_cancelled_after_successful_join),
        cmocka_unit_test(group_cancel_racing_spawns_and_exits_join_still_returns),
        cmocka_unit_test(group_join_on_empty_group_returns_zero),
        cmocka_unit_test(group_null_fails_einval),
        cmocka_unit_test(group_outside_fiber_fails_eperm),
        cmocka_unit_test(group_free_with_live_members_aborts),
        cmocka_unit_test(group_thousand_members_on_two_workers),
    };

    /* TEST_FILTER=pattern runs only the matching tests (cmocka glob) */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
