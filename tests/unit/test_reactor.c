/* The reactor: fd readiness, sleeping, many timers, the monotonic clock. */
#define _GNU_SOURCE
#include "harness.h" /* fibers record failures with CHECK*, never assert */

#include <fcntl.h>

static int fds[2];

static void *pipe_reader(void *arg)
{
    char c = 0;
    long i;

    for (i = 0; i < 1000; i++) {
        while (read(fds[0], &c, 1) != 1) {
            if (!CHECK_EQ(errno, EAGAIN) || !CHECK_OK(async_fd_wait(fds[0], ASYNC_READABLE)))
                return NULL;
        }
        CHECK_EQ(c, (char)i);
    }
    return NULL;
}

static void *pipe_writer(void *arg)
{
    long i;

    for (i = 0; i < 1000; i++) {
        char c = (char)i;

        if (!CHECK_EQ(write(fds[1], &c, 1), 1))
            return NULL;
        if (i % 7 == 0)
            async_yield(); /* let the reader drain and park again */
    }
    return NULL;
}

static void *pipe_pair(void *arg)
{
    async_task *r, *w;

    if (!CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC)))
        return NULL;
    r = spawn(pipe_reader, NULL);
    w = spawn(pipe_writer, NULL);
    join_bounded(w);
    join_bounded(r);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void reactor_fd_wait_wakes_a_reader_when_data_arrives(void **state)
{
    RUN(1, pipe_pair, NULL);
    RUN(2, pipe_pair, NULL);
}

static void *fill_then_wait_writable(void *arg)
{
    char buf[4096] = {0};

    if (!CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC)))
        return NULL;
    while (write(fds[1], buf, sizeof(buf)) > 0)
        ;
    CHECK_EQ(errno, EAGAIN);
    /* Nobody reads yet: waiting for writability must time out... */
    async_deadline(async_now_ms() + 30);
    CHECK_FAILS(async_fd_wait(fds[1], ASYNC_WRITABLE), ETIMEDOUT);
    async_deadline(-1);
    /* ...and succeed once there is room. */
    CHECK(read(fds[0], buf, sizeof(buf)) > 0);
    while (read(fds[0], buf, sizeof(buf)) > 0) /* writability needs room, not a byte */
        ;
    CHECK_OK(async_fd_wait(fds[1], ASYNC_WRITABLE));
    CHECK_OK(async_fd_wait(fds[1], ASYNC_READABLE | ASYNC_WRITABLE));
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void reactor_fd_wait_writable_and_deadline(void **state)
{
    RUN(1, fill_then_wait_writable, NULL);
}

static void *bad_fd_waits(void *arg)
{
    CHECK_FAILS(async_fd_wait(-1, ASYNC_READABLE), EINVAL);
    CHECK_FAILS(async_fd_wait(0, 0), EINVAL);
    return NULL;
}

static void reactor_fd_wait_rejects_bad_arguments(void **state)
{
    RUN(1, bad_fd_waits, NULL);
}

static void *hang_up(void *arg)
{
    if (!CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC)))
        return NULL;
    close(fds[1]); /* EOF counts as readable */
    CHECK_OK(async_fd_wait(fds[0], ASYNC_READABLE));
    close(fds[0]);
    return NULL;
}

static void reactor_fd_wait_reports_hang_up_as_ready(void **state)
{
    RUN(1, hang_up, NULL);
}

static void *timed_sleep(void *arg)
{
    int64_t t0 = async_now_ms();

    CHECK_OK(async_sleep_ms(50));
    CHECK(async_now_ms() - t0 >= 50);
    CHECK_OK(async_sleep_ms(0));
    return NULL;
}

static void reactor_sleep_lasts_at_least_the_time_asked(void **state)
{
    RUN(2, timed_sleep, NULL);
}

static atomic_long woke;

static void *sleeper(void *arg)
{
    int64_t t0 = async_now_ms();
    uint64_t ms = (uint64_t)(intptr_t)arg;

    CHECK_OK(async_sleep_ms(ms));
    CHECK(async_now_ms() - t0 >= (int64_t)ms);
    atomic_fetch_add(&woke, 1);
    return NULL;
}

#define SLEEPERS SCALED(100000) /* a tenth under TSan: the watchdog bounds the test */

static void *many_sleepers(void *arg)
{
    enum { N = SLEEPERS };
    async_task **t = malloc(sizeof(*t) * N);
    long i;

    if (!CHECK(t != NULL))
        return NULL;
    for (i = 0; i < N; i++)
        CHECK((t[i] = async_spawn(sleeper, (void *)(intptr_t)(10 + i % 90))) != NULL);
    for (i = 0; i < N; i++)
        CHECK_OK(async_join(t[i], NULL));
    free(t);
    return NULL;
}

static void reactor_100k_concurrent_sleepers_all_wake(void **state)
{
    struct async_config cfg = {.workers = 2, .stack_size = 16 * 1024};

    atomic_store(&woke, 0);
    RUN_CFG(&cfg, many_sleepers, NULL);
    assert_int_equal(atomic_load(&woke), SLEEPERS);
}

static void reactor_now_is_monotonic(void **state)
{
    int64_t last = async_now_ms(), now;
    int i;

    for (i = 0; i < 100000; i++) {
        now = async_now_ms();
        assert_true(now >= last);
        last = now;
    }
}

/* A reader parked on a pipe must be served even while other fibers keep
 * the worker busy without ever parking. */
static atomic_int reader_done;

static void *busy_yielder(void *arg)
{
    long spins = 0;

    while (!atomic_load(&reader_done) && spins < 100000000L) {
        async_yield();
        spins++;
    }
    CHECK(atomic_load(&reader_done));
    return NULL;
}

static void *late_reader(void *arg)
{
    char c;

    while (read(fds[0], &c, 1) != 1)
        if (!CHECK_OK(async_fd_wait(fds[0], ASYNC_READABLE)))
            break;
    atomic_store(&reader_done, 1);
    return NULL;
}

static void *starve_test(void *arg)
{
    async_task *r, *b1, *b2;

    atomic_store(&reader_done, 0);
    if (!CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC)))
        return NULL;
    r = async_spawn(late_reader, NULL);
    async_yield();
    b1 = async_spawn(busy_yielder, NULL);
    b2 = async_spawn(busy_yielder, NULL);
    async_yield();
    CHECK_EQ(write(fds[1], "x", 1), 1);
    async_join(r, NULL);
    async_join(b1, NULL);
    async_join(b2, NULL);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void reactor_io_is_not_starved_by_busy_fibers(void **state)
{
    RUN(1, starve_test, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reactor_fd_wait_wakes_a_reader_when_data_arrives),
        cmocka_unit_test(reactor_fd_wait_writable_and_deadline),
        cmocka_unit_test(reactor_fd_wait_rejects_bad_arguments),
        cmocka_unit_test(reactor_fd_wait_reports_hang_up_as_ready),
        cmocka_unit_test(reactor_sleep_lasts_at_least_the_time_asked),
        cmocka_unit_test(reactor_100k_concurrent_sleepers_all_wake),
        cmocka_unit_test(reactor_now_is_monotonic),
        cmocka_unit_test(reactor_io_is_not_starved_by_busy_fibers),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
