/* Spawning, joining, detaching, yielding and the worker pool. */
#define _GNU_SOURCE
#include "harness.h" /* fibers record failures with CHECK*, never assert */

#include <sys/resource.h>
#include <sys/wait.h>

static void *square(void *arg)
{
    intptr_t v = (intptr_t)arg;

    return (void *)(v * v);
}

static void *spawn_and_join_some(void *arg)
{
    async_task *t[100];
    intptr_t i;

    for (i = 0; i < 100; i++)
        CHECK((t[i] = async_spawn(square, (void *)i)) != NULL);
    for (i = 0; i < 100; i++) {
        void *r;

        CHECK_OK(async_join(t[i], &r));
        CHECK_EQ((intptr_t)r, i * i);
    }
    return NULL;
}

static void sched_join_returns_each_tasks_result(void **state)
{
    RUN(1, spawn_and_join_some, NULL);
    RUN(2, spawn_and_join_some, NULL);
    RUN(4, spawn_and_join_some, NULL);
}

static atomic_long detached_done;

static void *slow_detached(void *arg)
{
    int i;

    for (i = 0; i < 100; i++)
        async_yield();
    atomic_fetch_add(&detached_done, 1);
    return arg;
}

static void *detach_many(void *arg)
{
    long i;

    for (i = 0; i < 1000; i++)
        async_detach(async_spawn(slow_detached, NULL));
    return NULL; /* returns long before the detached fibers finish */
}

static void sched_runtime_returns_only_after_detached_fibers_finish(void **state)
{
    atomic_store(&detached_done, 0);
    RUN(2, detach_many, NULL);
    assert_int_equal(atomic_load(&detached_done), 1000);
}

static void *nested_runtime(void *arg)
{
    CHECK_FAILS(async_runtime(NULL, square, NULL), EBUSY);
    return NULL;
}

static void sched_runtime_inside_a_runtime_is_ebusy(void **state)
{
    RUN(1, nested_runtime, NULL);
}

static void sched_outside_a_runtime_calls_fail_cleanly(void **state)
{
    errno = 0;
    assert_null(async_spawn(square, NULL));
    assert_int_equal(errno, EPERM);
    assert_int_equal(async_join((async_task *)0x1, NULL), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(async_sleep_ms(1), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(async_fd_wait(0, ASYNC_READABLE), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(async_deadline(5), -1);
    async_yield(); /* no-op */
    assert_int_equal(async_runtime(NULL, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

static void *bad_handles(void *arg)
{
    errno = 0;
    CHECK(async_spawn(NULL, NULL) == NULL && errno == EINVAL);
    CHECK_FAILS(async_join(NULL, NULL), EINVAL);
    CHECK_FAILS(async_cancel(NULL), EINVAL);
    async_detach(NULL);
    return NULL;
}

static void sched_null_handles_are_einval(void **state)
{
    RUN(1, bad_handles, NULL);
}

static void *runtime_once(void *arg)
{
    async_task *t = async_spawn(square, (void *)7);
    void *r;

    CHECK_OK(async_join(t, &r));
    return r;
}

static void sched_runtime_can_run_again_after_returning(void **state)
{
    int i;

    for (i = 0; i < 5; i++)
        RUN((unsigned)(i % 3) + 1, runtime_once, NULL);
}

/* ---- a started fiber never changes thread ---- */

static atomic_long moved, checked;
static async_channel *bounce;

static void *stay_home(void *arg)
{
    pthread_t self = pthread_self();
    int i;
    long v;

    for (i = 0; i < 200; i++) {
        if (i % 3 == 0)
            async_yield();
        else if (i % 3 == 1)
            async_sleep_ms(0);
        else {
            async_channel_send(bounce, &v);
            async_channel_receive(bounce, &v);
        }
        if (!pthread_equal(self, pthread_self()))
            atomic_fetch_add(&moved, 1);
        atomic_fetch_add(&checked, 1);
    }
    return NULL;
}

static void *many_wanderers(void *arg)
{
    async_task *t[64];
    int i;

    bounce = async_channel_new(sizeof(long));
    for (i = 0; i < 64; i++)
        t[i] = async_spawn(stay_home, NULL);
    for (i = 0; i < 64; i++)
        async_join(t[i], NULL);
    async_channel_free(bounce);
    return NULL;
}

static void sched_started_fiber_never_changes_thread(void **state)
{
    atomic_store(&moved, 0);
    atomic_store(&checked, 0);
    RUN(4, many_wanderers, NULL);
    assert_int_equal(atomic_load(&checked), 64 * 200);
    assert_int_equal(atomic_load(&moved), 0);
}

/* ---- idle workers steal unstarted fibers ---- */

static pthread_t threads_seen[8];
static atomic_int nthreads_seen;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void *note_thread(void *arg)
{
    pthread_t self = pthread_self();
    int i, n;
    volatile long spin;

    pthread_mutex_lock(&seen_lock);
    n = atomic_load(&nthreads_seen);
    for (i = 0; i < n; i++)
        if (pthread_equal(threads_seen[i], self))
            break;
    if (i == n && n < 8)
        threads_seen[atomic_fetch_add(&nthreads_seen, 1)] = self;
    pthread_mutex_unlock(&seen_lock);
    for (spin = 0; spin < 200000; spin++) /* CPU work, no parking */
        ;
    return arg;
}

static void *spawn_busy_work(void *arg)
{
    async_task *t[256];
    int i;

    for (i = 0; i < 256; i++)
        t[i] = async_spawn(note_thread, NULL);
    for (i = 0; i < 256; i++)
        async_join(t[i], NULL);
    return NULL;
}

static void sched_idle_workers_steal_unstarted_fibers(void **state)
{
    atomic_store(&nthreads_seen, 0);
    RUN(2, spawn_busy_work, NULL);
    assert_int_equal(atomic_load(&nthreads_seen), 2);
}

/* ---- scale ---- */

static void *add_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

static void *hundred_thousand(void *arg)
{
    enum { N = SCALED(100000) };
    async_task **t = malloc(sizeof(*t) * N);
    intptr_t i;

    for (i = 0; i < N; i++)
        CHECK((t[i] = async_spawn(add_one, (void *)i)) != NULL);
    for (i = 0; i < N; i++) {
        void *r;

        CHECK_OK(async_join(t[i], &r));
        CHECK_EQ((intptr_t)r, i + 1);
    }
    free(t);
    return NULL;
}

static void sched_100k_fibers_spawned_and_joined(void **state)
{
    RUN(2, hundred_thousand, NULL);
}

/* ---- yield is fair on one worker ---- */

static int turn_log[64];
static int turn_n;

static void *taker(void *arg)
{
    int i;

    for (i = 0; i < 8; i++) {
        turn_log[turn_n++] = (int)(intptr_t)arg;
        async_yield();
    }
    return NULL;
}

static void *round_robin(void *arg)
{
    async_task *t[4];
    intptr_t i;

    turn_n = 0;
    for (i = 0; i < 4; i++)
        t[i] = async_spawn(taker, (void *)i);
    for (i = 0; i < 4; i++)
        async_join(t[i], NULL);
    return NULL;
}

static void sched_yield_round_robins_fibers_of_one_worker(void **state)
{
    int i;

    RUN(1, round_robin, NULL);
    assert_int_equal(turn_n, 32);
    /* After the first round every fiber has started; then strict turns. */
    for (i = 4; i < 32; i++)
        assert_int_equal(turn_log[i], turn_log[i - 4]);
}

/* ---- an idle runtime burns no CPU ---- */

static double idle_cpu;

static void *sleep_a_while(void *arg)
{
    double c0;

    async_sleep_ms(20); /* let the other workers reach their sleep */
    c0 = cpu_seconds();
    CHECK_OK(async_sleep_ms(300));
    idle_cpu = cpu_seconds() - c0;
    return NULL;
}

static void sched_idle_runtime_burns_no_cpu(void **state)
{
    RUN(4, sleep_a_while, NULL);
    print_message("CPU while 4 workers idled 300 ms: %.1f ms\n", idle_cpu * 1e3);
    assert_true(idle_cpu < 0.030); /* spinning would cost ~1200 ms */
}

/* ---- idle spinning stops when it finds nothing, and comes back ---- */

/* White box: the spin budget of the calling fiber's worker (sched.h). */
static unsigned my_spin_budget(void)
{
    return async__tls_worker->spin_budget;
}

struct spin_probe {
    async_channel *go;
    atomic_int parking;         /* set just before the probe parks on go */
    unsigned after_timers, after_handoff;
};

/* On the other worker: timer waits, each an idle spell in which there is
 * nothing to steal (the main fiber waits too), until the budget is gone
 * (seven halvings; bounded), then a wait that the main fiber ends. */
static void *spin_probe(void *arg)
{
    struct spin_probe *p = arg;
    int i, v;

    for (i = 0; i < 200 && my_spin_budget() != 0; i++)
        CHECK_OK(async_sleep_ms(1));
    p->after_timers = my_spin_budget();
    atomic_store(&p->parking, 1);
    CHECK_OK(async_channel_receive(p->go, &v));
    p->after_handoff = my_spin_budget();
    return NULL;
}

static void *spin_budget_body(void *arg)
{
    struct spin_probe p = {.go = channel_new_checked(sizeof(int))};
    unsigned other = async_worker_id() == 0 ? 1 : 0; /* main may have been stolen */
    struct async_worker *w1 = &async__tls_worker->rt->workers[other];
    int64_t start = async_now_ms();
    async_task *t;
    int v = 1;

    (void)arg;
    CHECK((t = async_spawn_on(other, spin_probe, &p)) != NULL);
    /* Until the probe is parked on go and its worker has gone to sleep
     * (the probe ran with sleeping 0, so a 1 seen after its flag is a
     * later idle spell).  Bounded. */
    while (!atomic_load(&p.parking) || atomic_load(&w1->sleeping) == 0) {
        if (timed_out(start)) {
            failed(__FILE__, __LINE__, "the probe's worker never went to sleep");
            break;
        }
        CHECK_OK(async_sleep_ms(1));
    }
    CHECK_EQ(p.after_timers, 0);       /* fruitless spells halved it to nothing */
    CHECK_OK(async_channel_send(p.go, &v)); /* through the probe's mailbox */
    CHECK_OK(async_join(t, NULL));
    CHECK(p.after_handoff > 0);        /* that wake was work a spin would catch */
    async_channel_free(p.go);
    return NULL;
}

static void sched_idle_spinning_stops_when_it_finds_nothing_and_comes_back(void **state)
{
    (void)state;
    RUN(2, spin_budget_body, NULL);
}

/* ---- errno belongs to the fiber ---- */

static void *errno_keeper(void *arg)
{
    int mine = (int)(intptr_t)arg, i;

    errno = mine;
    for (i = 0; i < 1000; i++) {
        async_yield();
        CHECK_EQ(errno, mine);
        errno = mine;
    }
    return NULL;
}

static void *errno_pair(void *arg)
{
    async_task *a = async_spawn(errno_keeper, (void *)1234);
    async_task *b = async_spawn(errno_keeper, (void *)4321);

    async_join(a, NULL);
    async_join(b, NULL);
    return NULL;
}

static void sched_errno_is_saved_per_fiber(void **state)
{
    RUN(1, errno_pair, NULL);
}

/* ---- a join given up at the moment its task ends leaves no stray wake ---- */

struct race {
    async_channel *go, *empty;
    async_task *target;
    atomic_long stray;
};

static void *ends_on_go(void *arg)
{
    struct race *r = arg;
    long v;

    async_channel_receive(r->go, &v);
    return NULL;
}

static void *joins_then_parks(void *arg)
{
    struct race *r = arg;
    long v;

    if (async_join(r->target, NULL) == 0)
        return (void *)1; /* joined: nothing left to check */
    /* Gave up: the next parking call must fail, not be woken by the
     * reaper that raced with us. */
    if (async_channel_receive(r->empty, &v) == 0)
        atomic_fetch_add(&r->stray, 1);
    return NULL;
}

static void *join_cancel_race(void *arg)
{
    struct race r = {.go = async_channel_new(sizeof(long)),
                     .empty = async_channel_new(sizeof(long))};
    long round, v = 0, joined_first = 0, gave_up = 0;
    int i;

    for (round = 0; round < SCALED(20000); round++) { /* a tenth under TSan (watchdog) */
        async_task *j;
        void *joined;

        r.target = async_spawn(ends_on_go, &r);
        j = async_spawn(joins_then_parks, &r);
        async_yield();
        async_channel_send(r.go, &v);
        /* 0 to 2 yields between the end and the cancel, so that both
         * orders happen (counted below) */
        for (i = 0; i < round % 3; i++)
            async_yield();
        async_cancel(j);
        CHECK_OK(async_join(j, &joined));
        if (joined == NULL) {
            gave_up++;
            CHECK_OK(async_join(r.target, NULL)); /* still valid */
        } else {
            joined_first++;
        }
    }
    CHECK_EQ(atomic_load(&r.stray), 0);
    CHECK_BOTH_OUTCOMES(joined_first, gave_up);
    async_channel_free(r.go);
    async_channel_free(r.empty);
    return NULL;
}

static void sched_join_given_up_as_the_task_ends_leaves_no_stray_wake(void **state)
{
    RUN(2, join_cancel_race, NULL);
}

/* ---- out of memory while spawning ---- */

static void *nothing(void *arg)
{
    return arg;
}

/* Lowers the soft address-space limit to what is mapped now plus extra
 * bytes; restore with lift_address_space_limit.  For children only. */
static bool limit_address_space(unsigned long extra)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages;
    struct rlimit lim;
    bool ok;

    if (f == NULL)
        return false;
    ok = fscanf(f, "%lu", &pages) == 1;
    fclose(f);
    getrlimit(RLIMIT_AS, &lim);
    lim.rlim_cur = pages * 4096UL + extra;
    return ok && setrlimit(RLIMIT_AS, &lim) == 0;
}

static void lift_address_space_limit(void)
{
    struct rlimit lim;

    getrlimit(RLIMIT_AS, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_AS, &lim);
}

/* Runs fn in a runtime of `workers` in a forked child, so that limits it
 * sets cannot hurt other tests; the child's exit status.  fn may _exit
 * with its own status; a runtime that returns gives 0, one that fails 3,
 * one whose fibers recorded a failed CHECK (on the child's stderr, under
 * the test's name) 4. */
static int in_child(const char *name, unsigned workers, async_fn fn)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct async_config cfg = {.workers = workers};

        atomic_store(&failures, 0);
        current_test = name;
        _exit(async_runtime(&cfg, fn, NULL) != 0 ? 3 : atomic_load(&failures) != 0 ? 4 : 0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void *spawn_until_enomem(void *arg)
{
    enum { MAX = 4000000 };
    async_task **t = malloc(sizeof(*t) * MAX);
    long n = 0, i;
    int err = 0;

    /* Leave ~48 MiB of address space beyond what is mapped now. */
    if (!CHECK(t != NULL) || !CHECK(limit_address_space(48UL * 1024 * 1024)))
        return NULL;
    while (n < MAX) {
        t[n] = async_spawn(nothing, NULL);
        if (t[n] == NULL) {
            err = errno;
            break;
        }
        n++;
    }
    lift_address_space_limit();
    CHECK_EQ(err, ENOMEM);
    CHECK(n > 1000);
    for (i = 0; i < n; i++) /* everything spawned still runs */
        CHECK_OK(async_join(t[i], NULL));
    CHECK((t[0] = async_spawn(nothing, NULL)) != NULL); /* and life goes on */
    CHECK_OK(async_join(t[0], NULL));
    free(t);
    return NULL;
}

static void sched_spawn_out_of_memory_is_enomem_and_the_runtime_carries_on(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    SKIP("sanitizer allocators reserve terabytes and abort on failure");
#endif
    assert_int_equal(in_child(__func__, 2, spawn_until_enomem), 0);
}

/* ---- async_spawn_on, async_workers, async_worker_id ---- */

#define ON_WORKERS 3
#define ON_EACH 300

static atomic_int on_wrong, on_ran;

struct on_arg {
    int want;
    pthread_t thread;          /* of the first fiber that reported for want */
};

static struct on_arg on_args[ON_WORKERS];
static pthread_mutex_t on_lock = PTHREAD_MUTEX_INITIALIZER;

/* Runs where it was sent, stays there across parking calls, and every
 * fiber sent to the same worker sees the same thread. */
static void *report_worker(void *arg)
{
    struct on_arg *a = arg;
    volatile long spin;
    int i;

    for (i = 0; i < 3; i++) {
        if (async_worker_id() != a->want)
            atomic_fetch_add(&on_wrong, 1);
        pthread_mutex_lock(&on_lock);
        if (!pthread_equal(a->thread, pthread_self()))
            atomic_fetch_add(&on_wrong, 1);
        pthread_mutex_unlock(&on_lock);
        for (spin = 0; spin < 2000; spin++) /* keep our worker busy: invites stealing */
            ;
        CHECK_OK(async_sleep_ms(0));
        async_yield();
    }
    atomic_fetch_add(&on_ran, 1);
    return NULL;
}

static void *pin_thread(void *arg)
{
    struct on_arg *a = arg;

    pthread_mutex_lock(&on_lock);
    a->thread = pthread_self();
    pthread_mutex_unlock(&on_lock);
    return NULL;
}

static void *spawn_on_each_worker(void *arg)
{
    async_task **t = malloc(sizeof(*t) * ON_WORKERS * ON_EACH);
    int w, i, n = 0;

    (void)arg;
    CHECK_EQ(async_workers(), ON_WORKERS);
    CHECK(async_worker_id() >= 0 && async_worker_id() < ON_WORKERS);
    for (w = 0; w < ON_WORKERS; w++) { /* learn each worker's thread first */
        async_task *p;

        on_args[w].want = w;
        CHECK((p = async_spawn_on((unsigned)w, pin_thread, &on_args[w])) != NULL);
        CHECK_OK(async_join(p, NULL));
    }
    /* All on one worker first, then spread: the idle ones must not steal. */
    for (w = 0; w < ON_WORKERS; w++)
        for (i = 0; i < ON_EACH; i++)
            CHECK((t[n++] = async_spawn_on((unsigned)w, report_worker, &on_args[w])) != NULL);
    for (i = 0; i < n; i++)
        CHECK_OK(async_join(t[i], NULL));
    errno = 0;
    CHECK(async_spawn_on(ON_WORKERS, square, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(async_spawn_on(0, NULL, NULL) == NULL && errno == EINVAL);
    free(t);
    return NULL;
}

static void sched_spawn_on_runs_the_fiber_on_that_worker_only(void **state)
{
    (void)state;
    atomic_store(&on_wrong, 0);
    atomic_store(&on_ran, 0);
    RUN(ON_WORKERS, spawn_on_each_worker, NULL);
    assert_int_equal(atomic_load(&on_ran), ON_WORKERS * ON_EACH);
    assert_int_equal(atomic_load(&on_wrong), 0);
}

static atomic_int on_children_done;

static void *park_forever(void *arg)
{
    int v;

    CHECK_FAILS(async_channel_receive(arg, &v), ECANCELED); /* the group's cancel */
    atomic_fetch_add(&on_children_done, 1);
    return NULL;
}

static void *async_spawn_on_child(void *arg)
{
    async_task *t = async_spawn_on(1, park_forever, arg);

    CHECK(t != NULL);
    if (t != NULL)
        async_detach(t);
    return NULL;
}

static void *group_of_spawn_on(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    async_group *g = async_group_new();
    int i;

    (void)arg;
    CHECK(g != NULL);
    atomic_store(&on_children_done, 0);
    /* A member's async_spawn_on child is a member too: the group's cancel
     * reaches it on the other worker and its join waits for it. */
    for (i = 0; i < 20; i++)
        CHECK_OK(async_group_spawn(g, async_spawn_on_child, ch));
    async_group_cancel(g);
    CHECK_OK(async_group_join(g));
    CHECK_EQ(atomic_load(&on_children_done), 20);
    async_group_free(g);
    async_channel_free(ch);
    return NULL;
}

static void sched_spawn_on_joins_the_callers_group(void **state)
{
    (void)state;
    RUN(2, group_of_spawn_on, NULL);
}

static void sched_workers_and_worker_id_outside_a_runtime_are_eperm(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(async_workers(), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(async_worker_id(), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_null(async_spawn_on(0, square, NULL));
    assert_int_equal(errno, EPERM);
}

/* ---- task records ---- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

#define WAVE SCALED(20000)
#define WAVES 12

static atomic_long wave_ran;

static void *count_one(void *arg)
{
    atomic_fetch_add_explicit(&wave_ran, 1, memory_order_relaxed);
    return arg;
}

/* Joined waves free records on the spawning worker; detached waves are
 * freed by the reaper of whichever worker ran them, so records travel
 * between workers' caches through the pool. */
static void *waves(void *arg)
{
    async_task **t = malloc(sizeof(*t) * WAVE);
    long *growth = arg, after_first = 0;
    int w, i;

    CHECK(t != NULL);
    if (t == NULL)
        return NULL;
    for (w = 0; w < WAVES; w++) {
        if (w % 2 == 0) {
            for (i = 0; i < WAVE; i++)
                CHECK((t[i] = async_spawn(count_one, NULL)) != NULL);
            for (i = 0; i < WAVE; i++)
                CHECK_OK(async_join(t[i], NULL));
        } else {
            async_group *g = async_group_new();

            CHECK(g != NULL);
            for (i = 0; i < WAVE; i++)
                CHECK_OK(async_group_spawn(g, count_one, NULL));
            CHECK_OK(async_group_join(g));
            async_group_free(g);
        }
        if (w == 1)
            after_first = rss_kib();
    }
    *growth = rss_kib() - after_first;
    free(t);
    return NULL;
}

static void sched_task_records_are_reused_across_waves_and_workers(void **state)
{
    long growth = 0;

    (void)state;
    atomic_store(&wave_ran, 0);
    RUN(2, waves, &growth);
    assert_int_equal(atomic_load(&wave_ran), (long)WAVE * WAVES);
    /* 10 more waves of 20,000 fibers: a record leaked per fiber would be
     * ~27 MiB; reuse keeps the growth to noise. */
    fprintf(stderr, "RSS growth over %d waves after the first two: %ld KiB\n", WAVES - 2,
            growth);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine holds freed memory back on purpose */
    assert_true(growth < 2048);
#endif
}

static async_task *kept_handle;

static void *spawn_and_keep(void *arg)
{
    CHECK((kept_handle = async_spawn(square, (void *)(intptr_t)3)) != NULL);
    return arg;
}

static void *spawn_a_few(void *arg)
{
    async_task *t[64];
    int i;

    for (i = 0; i < 64; i++)
        CHECK((t[i] = async_spawn(square, (void *)(intptr_t)i)) != NULL);
    for (i = 0; i < 64; i++) {
        void *r;

        CHECK_OK(async_join(t[i], &r));
        CHECK_EQ((intptr_t)r, i * i);
    }
    return arg;
}

/* A handle may outlive its runtime (its fiber has ended by then) and be
 * detached from a plain thread; its record stays valid until then. */
static void sched_handle_detached_after_its_runtime_returned(void **state)
{
    (void)state;
    RUN(2, spawn_and_keep, NULL);
    assert_non_null(kept_handle);
    RUN(2, spawn_a_few, NULL); /* a second runtime meanwhile */
    async_detach(kept_handle);
    kept_handle = NULL;
    RUN(2, spawn_a_few, NULL);
}

/* ---- out of memory for stacks: the worker waits, it does not spin ---- */

static atomic_int starved_started;

static void *parks_until_closed(void *arg)
{
    int v;

    atomic_fetch_add(&starved_started, 1);
    async_channel_receive(arg, &v);
    return NULL;
}

/* In a child: spawn parked fibers until one cannot get a stack, watch the
 * CPU the worker spends meanwhile, then give memory back. */
static void *starve_for_stacks(void *arg)
{
    enum { MAX = 200000 };
    async_channel *ch = async_channel_new(sizeof(int));
    async_task **t = malloc(sizeof(*t) * MAX);
    int n = 0, waited, exit_code = 0;
    long before, used;

    (void)arg;
    if (ch == NULL || t == NULL)
        _exit(10);
    if (!limit_address_space(32UL * 1024 * 1024))
        _exit(11);
    for (;;) {
        int had = atomic_load(&starved_started);

        if (n == MAX)
            _exit(12);
        t[n] = async_spawn(parks_until_closed, ch);
        if (t[n] == NULL)
            _exit(13); /* records ran out before stacks: no stack starvation to see */
        n++;
        for (waited = 0; waited < 20 && atomic_load(&starved_started) == had; waited++)
            async_sleep_ms(1);
        if (atomic_load(&starved_started) == had)
            break; /* the last one has no stack and keeps waiting for one */
    }
    before = (long)(cpu_seconds() * 1e3);
    async_sleep_ms(300);
    used = (long)(cpu_seconds() * 1e3) - before;
    if (used > 150) /* spinning would burn the whole 300 ms */
        exit_code = 20;
    lift_address_space_limit();
    for (waited = 0; waited < 5000 && atomic_load(&starved_started) < n; waited++)
        async_sleep_ms(1);
    if (atomic_load(&starved_started) != n)
        exit_code = 21;
    async_channel_close(ch);
    while (n-- > 0)
        async_join(t[n], NULL);
    async_channel_free(ch);
    free(t);
    fprintf(stderr, "starved for stacks: %ld ms of CPU in 300 ms\n", used);
    _exit(exit_code);
}

static void sched_worker_without_stacks_waits_instead_of_spinning(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    SKIP("sanitizer allocators reserve terabytes and abort on failure");
#endif
    assert_int_equal(in_child(__func__, 1, starve_for_stacks), 0);
}

/* ---- async_stats ---- */

/* These use harness.h: fibers record failures with CHECK* (no cmocka
 * assertion may longjmp off a fiber stack). */

#define STATS_PARKED 50
#define STATS_SENTINEL 0x5a5a5a5a5a5aull

static void *stats_parked(void *arg)
{
    int v = 0;

    CHECK_OK(async_channel_receive(arg, &v));
    return NULL;
}

static uint64_t sum_ended(const struct async_worker_stats *per, unsigned n)
{
    uint64_t s = 0;
    unsigned i;

    for (i = 0; i < n; i++)
        s += per[i].fibers_ended;
    return s;
}

static void fill_sentinel(struct async_stats *st, struct async_worker_stats *per, unsigned n)
{
    unsigned i;

    memset(st, 0xa5, sizeof(*st));
    for (i = 0; i < n; i++) {
        per[i].run_queue = (size_t)STATS_SENTINEL;
        per[i].fibers_ended = STATS_SENTINEL;
    }
}

static void *stats_body(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    async_task *t[STATS_PARKED];
    struct async_stats st;
    struct async_worker_stats per[4];
    int64_t start;
    long lagged = 0;
    int i, v;

    (void)arg;
    for (i = 0; i < STATS_PARKED; i++)
        t[i] = spawn(stats_parked, ch);
    for (i = 0; i < STATS_PARKED; i++)
        wait_parked(t[i]);

    /* 50 parked, plus this fiber; nothing else spawns (no runtime-internal
     * fibers), nothing has ended yet */
    fill_sentinel(&st, per, 4);
    CHECK_OK(async_stats(&st, per, 4));
    CHECK_EQ(st.workers, 2);
    CHECK(st.fibers_live >= STATS_PARKED + 1);
    CHECK(st.fibers_spawned >= STATS_PARKED + 1);
    CHECK_EQ(st.fibers_spawned, STATS_PARKED + 1);
    CHECK_EQ(st.fibers_live, STATS_PARKED + 1);
    CHECK(st.global_queue <= STATS_PARKED + 1);
    for (i = 0; i < 2; i++) {
        CHECK(per[i].run_queue <= STATS_PARKED + 1);
        CHECK_EQ(per[i].fibers_ended, 0);
    }
    for (i = 2; i < 4; i++) { /* only as many as there are workers */
        CHECK_EQ(per[i].run_queue, (size_t)STATS_SENTINEL);
        CHECK_EQ(per[i].fibers_ended, STATS_SENTINEL);
    }
    CHECK_EQ(sum_ended(per, 2), st.fibers_spawned - st.fibers_live);

    /* fewer entries than workers: only those */
    fill_sentinel(&st, per, 4);
    CHECK_OK(async_stats(&st, per, 1));
    CHECK_EQ(st.workers, 2);
    CHECK_EQ(per[0].fibers_ended, 0);
    CHECK_EQ(per[1].fibers_ended, STATS_SENTINEL);
    CHECK_EQ(per[1].run_queue, (size_t)STATS_SENTINEL);
    fill_sentinel(&st, per, 4);
    CHECK_OK(async_stats(&st, NULL, 0));
    CHECK_EQ(st.fibers_spawned, STATS_PARKED + 1);

    for (i = 0; i < STATS_PARKED; i++) {
        v = i;
        CHECK_OK(async_channel_send(ch, &v));
    }
    for (i = 0; i < STATS_PARKED; i++)
        join_bounded(t[i]);

    /* A task counts as ended when its worker's reap() bumps `ended`, which
     * it does *after* publishing DONE and scheduling the joiner: a join that
     * returned does not guarantee the count yet (the reaper on the other
     * worker may be a few instructions short of it).  So right after the
     * joins: between 1 and 51 live; then it settles at exactly 1 (us). */
    fill_sentinel(&st, per, 4);
    CHECK_OK(async_stats(&st, per, 4));
    CHECK(st.fibers_live >= 1 && st.fibers_live <= STATS_PARKED + 1);
    CHECK_EQ(st.fibers_spawned, STATS_PARKED + 1);
    CHECK_EQ(sum_ended(per, 2), st.fibers_spawned - st.fibers_live);
    start = async_now_ms();
    while (st.fibers_live != 1) {
        lagged++;
        if (timed_out(start)) {
            failed(__FILE__, __LINE__, "fibers_live stuck at %llu after every join",
                   (unsigned long long)st.fibers_live);
            break;
        }
        async_yield();
        fill_sentinel(&st, per, 4);
        CHECK_OK(async_stats(&st, per, 4));
    }
    if (lagged != 0)
        fprintf(stderr, "  [%s] fibers_live settled at 1 after %ld more sample(s)\n",
                current_test, lagged);
    CHECK_EQ(st.workers, 2);
    CHECK_EQ(st.fibers_live, 1);
    CHECK_EQ(st.fibers_spawned, STATS_PARKED + 1);
    CHECK_EQ(sum_ended(per, 2), st.fibers_spawned - st.fibers_live);
    CHECK_EQ(sum_ended(per, 2), STATS_PARKED);
    for (i = 2; i < 4; i++) {
        CHECK_EQ(per[i].run_queue, (size_t)STATS_SENTINEL);
        CHECK_EQ(per[i].fibers_ended, STATS_SENTINEL);
    }
    async_channel_free(ch);
    return NULL;
}

static void stats_report_workers_and_live_fibers(void **state)
{
    (void)state;
    RUN(2, stats_body, NULL);
}

static void *stats_in_plain_thread(void *arg)
{
    struct async_stats st;
    struct async_worker_stats per[2];

    (void)arg;
    CHECK_FAILS(async_stats(&st, per, 2), EPERM);
    CHECK_FAILS(async_stats(&st, NULL, 0), EPERM);
    return NULL;
}

static void *stats_plain_thread_body(void *arg)
{
    pthread_t th;

    (void)arg;
    /* a thread that is not one of the runtime's, while it runs */
    CHECK_EQ(pthread_create(&th, NULL, stats_in_plain_thread, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return NULL;
}

static void stats_outside_runtime_fail_eperm(void **state)
{
    struct async_stats st;
    struct async_worker_stats per[2];

    (void)state;
    errno = 0;
    assert_int_equal(async_stats(&st, per, 2), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(async_stats(&st, NULL, 0), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(async_stats(NULL, NULL, 0), -1); /* EPERM comes first */
    assert_int_equal(errno, EPERM);
    RUN(1, stats_plain_thread_body, NULL);
}

static void *stats_null_body(void *arg)
{
    struct async_stats st;
    struct async_worker_stats per[2];

    (void)arg;
    CHECK_FAILS(async_stats(NULL, per, 2), EINVAL);
    CHECK_FAILS(async_stats(NULL, NULL, 0), EINVAL);
    CHECK_FAILS(async_stats(&st, NULL, 1), EINVAL); /* per NULL only with n == 0 */
    memset(&st, 0, sizeof(st));
    CHECK_OK(async_stats(&st, NULL, 0));
    CHECK_EQ(st.workers, 1);
    CHECK_EQ(st.fibers_live, 1);
    return NULL;
}

static void stats_null_fails_einval(void **state)
{
    (void)state;
    RUN(1, stats_null_body, NULL);
}

/* ---- watching workers from another thread ---- */

struct watch_case {
    async_rt *rt;
    async_group *group;
    int pipe[2];            /* the blocker reads [0]; the watcher writes [1] */
    atomic_int blocking;    /* the blocker is about to read */
    int seen_blocked;       /* watcher: beat stood still with fn == blocker */
    int seen_moving;        /* watcher: after the release, the worker moved on */
    int idle_fn_null;       /* watcher: the idle worker showed no fiber */
};

/* Blocks its worker's thread in read(2), as a careless module would. */
static void *blocker(void *arg)
{
    struct watch_case *c = arg;
    char b;

    atomic_store(&c->blocking, 1);
    CHECK(read(c->pipe[0], &b, 1) == 1);
    return NULL;
}

/* A member of the group: its spawn joins the group too. */
static void *launch_blocker(void *arg)
{
    async_task *t = async_spawn_on(1, blocker, arg);

    CHECK(t != NULL);
    if (t != NULL)
        CHECK_OK(async_join(t, NULL));
    return NULL;
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};

    nanosleep(&ts, NULL);
}

/* A plain thread: samples worker 1 until its beat stands still with the
 * blocker's fn and group (bounded), releases it, then waits (bounded) for
 * the beat to move on. */
static void *watcher(void *arg)
{
    struct watch_case *c = arg;
    struct async_worker_watch a, b;
    int i;

    for (i = 0; i < BOUND_MS / 5 && !c->seen_blocked; i++) {
        CHECK_OK(async_worker_watch(c->rt, 1, &a));
        pause_ms(5);
        CHECK_OK(async_worker_watch(c->rt, 1, &b));
        c->seen_blocked = atomic_load(&c->blocking) && a.beat == b.beat && b.fn == blocker &&
                          b.group == c->group;
    }
    CHECK(write(c->pipe[1], "x", 1) == 1);
    for (i = 0; i < BOUND_MS / 5 && !c->seen_moving; i++) {
        pause_ms(5);
        CHECK_OK(async_worker_watch(c->rt, 1, &a));
        c->seen_moving = a.beat != b.beat && a.fn != blocker;
    }
    return NULL;
}

static void *watch_body(void *arg)
{
    struct watch_case *c = arg;
    struct async_worker_watch w;
    pthread_t th;
    int i;

    CHECK((c->rt = async_runtime_self()) != NULL);
    CHECK_FAILS(async_worker_watch(c->rt, 2, &w), EINVAL);
    CHECK_FAILS(async_worker_watch(c->rt, 0, NULL), EINVAL);
    CHECK_FAILS(async_worker_watch(NULL, 0, &w), EINVAL);
    /* the other worker (main may run on either) has nothing to run: it
     * waits, with no fiber on it */
    for (i = 0; i < BOUND_MS && !c->idle_fn_null; i++) {
        CHECK_OK(async_worker_watch(c->rt, (unsigned)async_worker_id() ^ 1, &w));
        c->idle_fn_null = w.fn == NULL;
        async_sleep_ms(1);
    }
    CHECK((c->group = async_group_new()) != NULL);
    CHECK_OK(pipe(c->pipe));
    CHECK(pthread_create(&th, NULL, watcher, c) == 0);
    CHECK_OK(async_group_spawn(c->group, launch_blocker, c));
    CHECK_OK(async_group_join(c->group));
    pthread_join(th, NULL);
    async_group_free(c->group);
    close(c->pipe[0]);
    close(c->pipe[1]);
    return NULL;
}

/* A fiber blocking its thread is seen from outside: the beat of its worker
 * stands still with its entry function and group, and moves on once it
 * returns to the scheduler. */
static void sched_a_blocked_worker_is_seen_by_a_watcher_thread(void **state)
{
    struct watch_case c = {0};

    (void)state;
    RUN(2, watch_body, &c);
    assert_true(c.idle_fn_null);
    assert_true(c.seen_blocked);
    assert_true(c.seen_moving);
}

static void sched_runtime_self_outside_a_runtime_is_eperm(void **state)
{
    (void)state;
    errno = 0;
    assert_null(async_runtime_self());
    assert_int_equal(errno, EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sched_join_returns_each_tasks_result),
        cmocka_unit_test(sched_runtime_returns_only_after_detached_fibers_finish),
        cmocka_unit_test(sched_runtime_inside_a_runtime_is_ebusy),
        cmocka_unit_test(sched_outside_a_runtime_calls_fail_cleanly),
        cmocka_unit_test(sched_null_handles_are_einval),
        cmocka_unit_test(sched_runtime_can_run_again_after_returning),
        cmocka_unit_test(sched_started_fiber_never_changes_thread),
        cmocka_unit_test(sched_idle_workers_steal_unstarted_fibers),
        cmocka_unit_test(sched_100k_fibers_spawned_and_joined),
        cmocka_unit_test(sched_yield_round_robins_fibers_of_one_worker),
        cmocka_unit_test(sched_idle_runtime_burns_no_cpu),
        cmocka_unit_test(sched_idle_spinning_stops_when_it_finds_nothing_and_comes_back),
        cmocka_unit_test(sched_errno_is_saved_per_fiber),
        cmocka_unit_test(sched_join_given_up_as_the_task_ends_leaves_no_stray_wake),
        cmocka_unit_test(sched_spawn_out_of_memory_is_enomem_and_the_runtime_carries_on),
        cmocka_unit_test(sched_spawn_on_runs_the_fiber_on_that_worker_only),
        cmocka_unit_test(sched_spawn_on_joins_the_callers_group),
        cmocka_unit_test(sched_workers_and_worker_id_outside_a_runtime_are_eperm),
        cmocka_unit_test(sched_worker_without_stacks_waits_instead_of_spinning),
        cmocka_unit_test(sched_task_records_are_reused_across_waves_and_workers),
        cmocka_unit_test(sched_handle_detached_after_its_runtime_returned),
        cmocka_unit_test(stats_report_workers_and_live_fibers),
        cmocka_unit_test(stats_outside_runtime_fail_eperm),
        cmocka_unit_test(stats_null_fails_einval),
        cmocka_unit_test(sched_a_blocked_worker_is_seen_by_a_watcher_thread),
        cmocka_unit_test(sched_runtime_self_outside_a_runtime_is_eperm),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
