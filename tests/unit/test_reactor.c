/* The reactor: fd readiness, sleeping, many timers, the monotonic clock. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <async_io.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static void run(unsigned workers, async_fn fn, void *arg)
{
    struct async_config cfg = {.workers = workers};

    assert_int_equal(async_runtime(&cfg, fn, arg), 0);
}

static int fds[2];

static void *pipe_reader(void *arg)
{
    char c = 0;
    long i;

    for (i = 0; i < 1000; i++) {
        while (read(fds[0], &c, 1) != 1) {
            assert_int_equal(errno, EAGAIN);
            assert_int_equal(async_fd_wait(fds[0], ASYNC_READABLE), 0);
        }
        assert_int_equal(c, (char)i);
    }
    return NULL;
}

static void *pipe_writer(void *arg)
{
    long i;

    for (i = 0; i < 1000; i++) {
        char c = (char)i;

        assert_int_equal(write(fds[1], &c, 1), 1);
        if (i % 7 == 0)
            async_yield(); /* let the reader drain and park again */
    }
    return NULL;
}

static void *pipe_pair(void *arg)
{
    async_task *r, *w;

    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    r = async_spawn(pipe_reader, NULL);
    w = async_spawn(pipe_writer, NULL);
    async_join(w, NULL);
    async_join(r, NULL);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void reactor_fd_wait_wakes_a_reader_when_data_arrives(void **state)
{
    run(1, pipe_pair, NULL);
    run(2, pipe_pair, NULL);
}

static void *fill_then_wait_writable(void *arg)
{
    char buf[4096] = {0};

    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    while (write(fds[1], buf, sizeof(buf)) > 0)
        ;
    assert_int_equal(errno, EAGAIN);
    /* Nobody reads yet: waiting for writability must time out... */
    async_deadline(async_now_ms() + 30);
    assert_int_equal(async_fd_wait(fds[1], ASYNC_WRITABLE), -1);
    assert_int_equal(errno, ETIMEDOUT);
    async_deadline(-1);
    /* ...and succeed once there is room. */
    assert_true(read(fds[0], buf, sizeof(buf)) > 0);
    while (read(fds[0], buf, sizeof(buf)) > 0) /* writability needs room, not a byte */
        ;
    assert_int_equal(async_fd_wait(fds[1], ASYNC_WRITABLE), 0);
    assert_int_equal(async_fd_wait(fds[1], ASYNC_READABLE | ASYNC_WRITABLE), 0);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void reactor_fd_wait_writable_and_deadline(void **state)
{
    run(1, fill_then_wait_writable, NULL);
}

static void *bad_fd_waits(void *arg)
{
    assert_int_equal(async_fd_wait(-1, ASYNC_READABLE), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(async_fd_wait(0, 0), -1);
    assert_int_equal(errno, EINVAL);
    return NULL;
}

static void reactor_fd_wait_rejects_bad_arguments(void **state)
{
    run(1, bad_fd_waits, NULL);
}

static void *hang_up(void *arg)
{
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    close(fds[1]); /* EOF counts as readable */
    assert_int_equal(async_fd_wait(fds[0], ASYNC_READABLE), 0);
    close(fds[0]);
    return NULL;
}

static void reactor_fd_wait_reports_hang_up_as_ready(void **state)
{
    run(1, hang_up, NULL);
}

static void *timed_sleep(void *arg)
{
    int64_t t0 = async_now_ms();

    assert_int_equal(async_sleep_ms(50), 0);
    assert_true(async_now_ms() - t0 >= 50);
    assert_int_equal(async_sleep_ms(0), 0);
    return NULL;
}

static void reactor_sleep_lasts_at_least_the_time_asked(void **state)
{
    run(2, timed_sleep, NULL);
}

static atomic_long woke;

static void *sleeper(void *arg)
{
    int64_t t0 = async_now_ms();
    uint64_t ms = (uint64_t)(intptr_t)arg;

    assert_int_equal(async_sleep_ms(ms), 0);
    assert_true(async_now_ms() - t0 >= (int64_t)ms);
    atomic_fetch_add(&woke, 1);
    return NULL;
}

static void *many_sleepers(void *arg)
{
    enum { N = 100000 };
    async_task **t = malloc(sizeof(*t) * N);
    long i;

    for (i = 0; i < N; i++)
        assert_non_null(t[i] = async_spawn(sleeper, (void *)(intptr_t)(10 + i % 90)));
    for (i = 0; i < N; i++)
        assert_int_equal(async_join(t[i], NULL), 0);
    free(t);
    return NULL;
}

static void reactor_100k_concurrent_sleepers_all_wake(void **state)
{
    struct async_config cfg = {.workers = 2, .stack_size = 16 * 1024};

    atomic_store(&woke, 0);
    assert_int_equal(async_runtime(&cfg, many_sleepers, NULL), 0);
    assert_int_equal(atomic_load(&woke), 100000);
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
    assert_true(atomic_load(&reader_done));
    return NULL;
}

static void *late_reader(void *arg)
{
    char c;

    while (read(fds[0], &c, 1) != 1)
        assert_int_equal(async_fd_wait(fds[0], ASYNC_READABLE), 0);
    atomic_store(&reader_done, 1);
    return NULL;
}

static void *starve_test(void *arg)
{
    async_task *r, *b1, *b2;

    atomic_store(&reader_done, 0);
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    r = async_spawn(late_reader, NULL);
    async_yield();
    b1 = async_spawn(busy_yielder, NULL);
    b2 = async_spawn(busy_yielder, NULL);
    async_yield();
    assert_int_equal(write(fds[1], "x", 1), 1);
    async_join(r, NULL);
    async_join(b1, NULL);
    async_join(b2, NULL);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void reactor_io_is_not_starved_by_busy_fibers(void **state)
{
    run(1, starve_test, NULL);
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

    return cmocka_run_group_tests(tests, NULL, NULL);
}
