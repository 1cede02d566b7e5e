/* tests/unit/harness.h — the fiber-safe cmocka harness shared by the unit
 * tests that run fibers or threads (test_sched, test_reactor, test_stack,
 * test_tcp, test_channel, test_ring, test_cancel, test_group, test_mutex).
 *
 * Why fibers do not use cmocka's assertions directly: a failed assert_*()
 * or fail_msg() ends the test by longjmp-ing back to the setjmp that cmocka's
 * runner took on the main thread's own stack.  A test body here runs inside
 * async_runtime, as a fiber on a stack the runtime allocated, and possibly on
 * another worker thread (or on a plain pthread a test starts).  A longjmp
 * from there leaves the fiber's stack behind the runtime's back, or jumps
 * onto another thread's stack: undefined behaviour that shows up as a crash
 * or a hang, never as a clean failure report, and it would also skip the
 * runtime's teardown so that the next test starts on a broken runtime.
 * So fibers and threads only *record* failures, with CHECK* below (which never
 * jump), and run_in_runtime/RUN asserts with cmocka, on the test's own stack,
 * that none were recorded once async_runtime has returned.  The build
 * enforces it: tests/check_fiber_asserts.py fails it when a cmocka assertion
 * sits in a function that is passed around as a value (a fiber body, a
 * thread, a callback) or in anything such a function calls.  A SIGALRM
 * watchdog turns a lost wake-up into an error that names the test instead
 * of a hang.
 *
 * Every helper is static (inline) and each test binary is one .c file, so
 * this header carries definitions.  Include it first, right after
 * `#define _GNU_SOURCE`; it includes what cmocka needs before cmocka.h.
 *
 * White box: parked()/wait_parked() read the task's park token, `woken`
 * (runtime/sched/sched.h): 0 while the fiber is inside a parking call's
 * epoch, 1 otherwise.  Reading it is a relaxed atomic load and never changes
 * what the runtime does. */
#ifndef ASYNC_TESTS_UNIT_HARNESS_H
#define ASYNC_TESTS_UNIT_HARNESS_H

#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before including harness.h"
#endif

/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../skips.h" /* SKIP(why), skips_exit */

#include <async_io.h>

#include "sched/sched.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- failures recorded from any fiber or thread ---- */

#define WATCHDOG_SECONDS 120
#define BOUND_MS 10000 /* generous bound for anything that must happen "soon" */

/* Fiber counts of the scale tests.  Under ThreadSanitizer one fiber costs
 * ~1.7 ms (__tsan_create_fiber + __tsan_destroy_fiber, measured on the CI
 * machine class), so 100,000 fibers would take minutes and trip the
 * watchdog; there a tenth still gives thousands of concurrent fibers for
 * the race detector, and the full counts run in the release and ASan
 * builds. */
#if defined(__SANITIZE_THREAD__)
#define SCALED(n) ((n) / 10)
#else
#define SCALED(n) (n)
#endif

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int failures; /* CHECKs failed in the current test; a loop may stop early once set */
static char first_failure[1024];
static const char *volatile current_test = "?";

static inline const char *errname(int e)
{
    static __thread char other[32];

    switch (e) {
    case 0: return "0";
    case EPIPE: return "EPIPE";
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case EDEADLK: return "EDEADLK";
    case ECANCELED: return "ECANCELED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOMEM: return "ENOMEM";
    default:
        snprintf(other, sizeof(other), "errno %d", e);
        return other;
    }
}

static inline void failed(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void failed(const char *file, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&failure_lock);
    n = atomic_fetch_add(&failures, 1) + 1;
    if (n == 1)
        snprintf(first_failure, sizeof(first_failure), "%s:%d: %s", file, line, msg);
    if (n <= 10)
        fprintf(stderr, "  [%s] %s:%d: %s\n", current_test, file, line, msg);
    pthread_mutex_unlock(&failure_lock);
}

/* Each CHECK* records a failure if its condition does not hold and
 * evaluates to whether it held. */
#define CHECK(cond)                                                                 \
    ({                                                                              \
        bool ok_ = (cond);                                                          \
        int e_ = errno;                                                             \
        if (!ok_)                                                                   \
            failed(__FILE__, __LINE__, "CHECK(%s) (errno: %s)", #cond, errname(e_)); \
        ok_;                                                                        \
    })

#define CHECK_EQ(a, b)                                                              \
    ({                                                                              \
        long long a_ = (long long)(a), b_ = (long long)(b);                         \
        bool ok_ = a_ == b_;                                                        \
        if (!ok_)                                                                   \
            failed(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);   \
        ok_;                                                                        \
    })

/* expr must return 0. */
#define CHECK_OK(expr)                                                              \
    ({                                                                              \
        errno = 0;                                                                  \
        long r_ = (long)(expr);                                                     \
        int e_ = errno;                                                             \
        bool ok_ = r_ == 0;                                                         \
        if (!ok_)                                                                   \
            failed(__FILE__, __LINE__, "%s returned %ld (%s), expected 0", #expr,   \
                   r_, errname(e_));                                                \
        ok_;                                                                        \
    })

/* expr must return -1 with errno == err. */
#define CHECK_FAILS(expr, err)                                                      \
    ({                                                                              \
        errno = 0;                                                                  \
        long r_ = (long)(expr);                                                     \
        int e_ = errno;                                                             \
        bool ok_ = r_ == -1 && e_ == (err);                                         \
        if (!ok_)                                                                   \
            failed(__FILE__, __LINE__, "%s returned %ld (%s), expected -1 (%s)",    \
                   #expr, r_, errname(e_), errname(err));                           \
        ok_;                                                                        \
    })

static inline void watchdog(int sig)
{
    static const char a[] = "\nwatchdog: test '", b[] = "' still running after the "
                            "watchdog period: a wake-up was lost or a fiber never ran\n";
    const char *t = current_test;

    (void)sig;
    (void)!write(2, a, sizeof(a) - 1);
    (void)!write(2, t, strlen(t));
    (void)!write(2, b, sizeof(b) - 1);
    _exit(3);
}

/* Runs fn(arg) as the main fiber of a runtime configured by cfg, then
 * fails the cmocka test if any CHECK failed. */
static inline void run_in_runtime_cfg(const char *name, const struct async_config *cfg,
                                      async_fn fn, void *arg)
{
    int rc, n;

    pthread_mutex_lock(&failure_lock);
    atomic_store(&failures, 0);
    first_failure[0] = '\0';
    pthread_mutex_unlock(&failure_lock);
    current_test = name;
    signal(SIGALRM, watchdog);
    alarm(WATCHDOG_SECONDS);
    rc = async_runtime(cfg, fn, arg);
    alarm(0);
    assert_int_equal(rc, 0);
    n = atomic_load(&failures);
    if (n != 0)
        fail_msg("%d check(s) failed in fibers; first: %s", n, first_failure);
}

/* The same with a runtime of `workers` workers and default settings. */
static inline void run_in_runtime(const char *name, unsigned workers, async_fn fn, void *arg)
{
    struct async_config cfg = {.workers = workers};

    run_in_runtime_cfg(name, &cfg, fn, arg);
}

#define RUN(workers, fn, arg) run_in_runtime(__func__, (workers), (fn), (arg))
#define RUN_CFG(cfg, fn, arg) run_in_runtime_cfg(__func__, (cfg), (fn), (arg))

/* ---- tasks ---- */

/* async_spawn that aborts the binary when the runtime is out of memory. */
static inline async_task *spawn(async_fn fn, void *arg)
{
    async_task *t = async_spawn(fn, arg);

    if (t == NULL) {
        fprintf(stderr, "async_spawn: %s\n", errname(errno));
        abort();
    }
    return t;
}

/* Joins t (which must succeed) and returns its result. */
static inline void *join(async_task *t)
{
    void *result = NULL;

    CHECK_OK(async_join(t, &result));
    return result;
}

/* Joins t and returns its result as a long; -12345 if t is NULL or the join
 * failed (both recorded as failures). */
static inline long join_result(async_task *t)
{
    void *res = (void *)(intptr_t)-12345;

    CHECK(t != NULL);
    if (t == NULL)
        return -12345;
    CHECK_OK(async_join(t, &res));
    return (long)(intptr_t)res;
}

/* Joins t with a generous deadline so that a lost wake-up fails the test
 * with a message instead of hanging it (the runtime could not end anyway
 * while t lives, so it aborts).  Returns join's result as an intptr_t. */
static inline intptr_t join_bounded(async_task *t)
{
    int64_t old = async_deadline(async_now_ms() + BOUND_MS);
    void *res = NULL;
    int rc = async_join(t, &res), e = errno;

    async_deadline(old);
    if (rc != 0) {
        failed(__FILE__, __LINE__, "join of %p: %s", (void *)t, strerror(e));
        if (e == ETIMEDOUT) {
            fprintf(stderr, "lost wake-up: aborting\n");
            abort();
        }
        return -12345;
    }
    return (intptr_t)res;
}

/* Result encoding for fibers that report one call: rc and errno. */
#define RC_ERRNO(rc, e) ((void *)(intptr_t)((rc) == 0 ? 0 : 1000 + (e)))
#define RES_OK 0
#define RES_ERR(e) (1000 + (e))

/* ---- bounded waiting ---- */

/* The process's CPU time (user + system), in seconds. */
static inline double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static inline bool timed_out(int64_t start)
{
    return async_now_ms() - start > BOUND_MS;
}

/* Yields until *v >= want, or fails the check after BOUND_MS. */
static inline bool yield_until_at_least(atomic_int *v, int want)
{
    int64_t start = async_now_ms();

    while (atomic_load(v) < want) {
        if (timed_out(start)) {
            failed(__FILE__, __LINE__, "counter stuck at %d, want %d", atomic_load(v), want);
            return false;
        }
        async_yield();
    }
    return true;
}

/* True while t is inside a parking call (white box, see top). */
static inline bool parked(async_task *t)
{
    return atomic_load_explicit(&t->woken, memory_order_acquire) == 0;
}

/* Yields until t is parked, then a few more times so that it has switched
 * out.  Bounded. */
static inline bool wait_parked(async_task *t)
{
    int64_t start = async_now_ms();
    int i;

    while (!parked(t)) {
        if (timed_out(start)) {
            failed(__FILE__, __LINE__, "task %p never parked", (void *)t);
            return false;
        }
        async_yield();
    }
    for (i = 0; i < 8; i++)
        async_yield();
    return true;
}

/* ---- races with two right answers ---- */

/* A race test that accepts either of two outcomes (a cancel that lands
 * before or after a wake, a join that wins or gives up) tests the race only
 * if both happened: it counts each over its rounds and checks, at the end,
 * that neither count is zero.  Prints the counts, so that a side that is
 * rare can be seen becoming rarer. */
static inline bool both_outcomes(const char *file, int line, const char *a_name, long a,
                                 const char *b_name, long b)
{
    fprintf(stderr, "  [%s] outcomes: %s %ld, %s %ld\n", current_test, a_name, a, b_name, b);
    if (a != 0 && b != 0)
        return true;
    failed(file, line, "the race never went both ways: %s %ld, %s %ld", a_name, a, b_name, b);
    return false;
}

#define CHECK_BOTH_OUTCOMES(a, b) both_outcomes(__FILE__, __LINE__, #a, (a), #b, (b))

/* ---- objects, data ---- */

static inline async_channel *channel_new_checked(size_t elem_size)
{
    async_channel *ch = async_channel_new(elem_size);

    if (ch == NULL) {
        fprintf(stderr, "async_channel_new: %s\n", errname(errno));
        abort();
    }
    return ch;
}

static inline async_ring *ring_new_checked(size_t capacity, size_t elem_size)
{
    async_ring *r = async_ring_new(capacity, elem_size);

    if (r == NULL) {
        fprintf(stderr, "async_ring_new: %s\n", errname(errno));
        abort();
    }
    return r;
}

static inline uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Every value below total was seen exactly once. */
static inline void check_seen_once(const atomic_uchar *seen, uint32_t total)
{
    uint32_t v, bad = 0, first = 0;

    for (v = 0; v < total; v++) {
        if (atomic_load(&seen[v]) != 1 && bad++ == 0)
            first = v;
    }
    if (bad != 0)
        failed(__FILE__, __LINE__, "%u of %u values not delivered exactly once; first %u seen %u times",
               bad, total, first, (unsigned)atomic_load(&seen[first]));
}

#endif /* ASYNC_TESTS_UNIT_HARNESS_H */
