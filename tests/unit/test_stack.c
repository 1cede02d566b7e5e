/* Fiber stacks: reuse from the pool, slabs that do not eat mappings, slabs
 * prepared whole (guards, first-touch faults, release in batches), and
 * overflow reports in every guard mode (each in a child process). */
#define _GNU_SOURCE
#include "harness.h" /* fibers record failures with CHECK*, never assert */

#include "fiber/stack.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void stack_put_then_get_reuses_the_same_stack(void **state)
{
    struct async__stack_arena arena;
    struct async__stack_pool pool = {.arena = &arena};
    struct async__stack *a, *b;

    assert_int_equal(async__stack_arena_init(&arena, 64 * 1024), 0);
    a = async__stack_get(&pool);
    assert_non_null(a);
    assert_true(a->size >= 60 * 1024);
    async__stack_put(&pool, a);
    b = async__stack_get(&pool);
    assert_ptr_equal(a, b);
    async__stack_put(&pool, b);
    async__stack_pool_fini(&pool);
    async__stack_arena_fini(&arena);
}

static void stack_many_stacks_are_distinct_and_writable(void **state)
{
    struct async__stack_arena arena;
    struct async__stack_pool pool = {.arena = &arena};
    enum { N = 1000 };
    struct async__stack **s = calloc(N, sizeof(*s));
    int i, j;

    assert_int_equal(async__stack_arena_init(&arena, 16 * 1024), 0);
    for (i = 0; i < N; i++) {
        s[i] = async__stack_get(&pool);
        assert_non_null(s[i]);
        memset(s[i]->lo, i & 0xff, s[i]->size);
    }
    for (i = 0; i < N; i++) {
        const unsigned char *p = s[i]->lo;

        for (j = 0; j < (int)s[i]->size; j += 4096)
            assert_int_equal(p[j], i & 0xff);
    }
    for (i = 0; i < N; i++)
        async__stack_put(&pool, s[i]);
    async__stack_pool_fini(&pool);
    async__stack_arena_fini(&arena);
    free(s);
}

static int map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;

    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static async_channel *gate;
static _Atomic long parked_count;
static int maps_while_parked;

static void *park(void *arg)
{
    long v;

    parked_count++;
    return async_channel_receive(gate, &v) == 0 ? arg : NULL;
}

static void *park_many(void *arg)
{
    long n = (long)(intptr_t)arg, i, last = 0;
    async_task **t = malloc(sizeof(*t) * n);
    int64_t moved;

    if (!CHECK(t != NULL))
        return NULL;
    gate = channel_new_checked(sizeof(long));
    for (i = 0; i < n; i++)
        t[i] = spawn(park, (void *)1);
    /* Bounded by progress, not by time: under ASan 100k spawns take longer
     * than BOUND_MS, but a wait where nothing moves for BOUND_MS is lost. */
    for (moved = async_now_ms(); parked_count < n; async_yield()) {
        if (parked_count != last) {
            last = parked_count;
            moved = async_now_ms();
        } else if (timed_out(moved)) {
            failed(__FILE__, __LINE__, "parked fibers stuck at %ld of %ld", last, n);
            break;
        }
    }
    maps_while_parked = map_count();
    for (i = 0; i < n; i++)
        async_channel_send(gate, &i);
    for (i = 0; i < n; i++) {
        void *r;

        CHECK_OK(async_join(t[i], &r));
        CHECK(r == (void *)1);
    }
    async_channel_free(gate);
    free(t);
    return NULL;
}

/* ---- slabs prepared whole ---- */

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Whether the kernel lets p be read: write(2) from an inaccessible page
 * (a guard) fails with EFAULT instead of killing us. */
static bool readable(const void *p)
{
    int fds[2];
    bool ok;

    assert_int_equal(pipe(fds), 0);
    ok = write(fds[1], p, 1) == 1;
    close(fds[0]);
    close(fds[1]);
    return ok;
}

static bool resident(const void *p)
{
    unsigned char v = 0;

    assert_int_equal(mincore((void *)((uintptr_t)p & ~(page() - 1)), page(), &v), 0);
    return (v & 1) != 0;
}

/* A counter of the page faults this thread takes from now on (the kernel
 * counts the ones user code takes, not the ones a system call populates),
 * or -1 where perf events are not allowed. */
static int fault_counter(void)
{
    struct perf_event_attr a = {
        .type = PERF_TYPE_SOFTWARE,
        .size = sizeof(a),
        .config = PERF_COUNT_SW_PAGE_FAULTS,
        .exclude_kernel = 1,
        .exclude_hv = 1,
    };

    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

/* Every stack of a slab (a pool refills half a pool at a time, so two
 * refills drain the first slab) carries its guard: the batched install
 * must not miss one. */
static void stack_every_stack_of_a_slab_gets_its_guard(void **state)
{
    struct async__stack_arena arena;
    struct async__stack_pool pool = {.arena = &arena};
    struct async__stack *s[ASYNC__SLAB_STACKS];
    int i;

    assert_int_equal(async__stack_arena_init(&arena, 64 * 1024), 0);
    for (i = 0; i < ASYNC__SLAB_STACKS; i++) {
        s[i] = async__stack_get(&pool);
        assert_non_null(s[i]);
    }
    for (i = 0; i < ASYNC__SLAB_STACKS; i++) {
        if (!s[i]->guarded)
            continue; /* canary mode: nothing to probe */
        assert_false(readable((char *)s[i]->lo - 1));
        assert_false(readable((char *)s[i]->lo - page()));
        assert_true(readable(s[i]->lo));
    }
    for (i = 0; i < ASYNC__SLAB_STACKS; i++)
        async__stack_put(&pool, s[i]);
    async__stack_pool_fini(&pool);
    async__stack_arena_fini(&arena);
}

/* A new slab arrives with the top page of each stack already faulted in,
 * so taking its stacks and running fibers on their top pages takes no
 * page fault per stack (see populate_tops in stack.c). */
static void stack_slab_arrives_without_a_fault_per_stack(void **state)
{
    struct async__stack_arena arena;
    struct async__stack_pool pool = {.arena = &arena};
    struct async__stack *s[ASYNC__SLAB_STACKS];
    long long faults = -1;
    int i, fd = fault_counter();

    if (fd < 0)
        SKIP("perf_event_open for page faults: %s", strerror(errno));
    assert_int_equal(async__stack_arena_init(&arena, 64 * 1024), 0);
    ioctl(fd, PERF_EVENT_IOC_RESET, 0);
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    for (i = 0; i < ASYNC__SLAB_STACKS; i++) {
        s[i] = async__stack_get(&pool);
        assert_non_null(s[i]);
        /* what a fiber's first frames do */
        memset((char *)s[i]->lo + s[i]->size - 1024, 0xa5, 1024);
    }
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    assert_int_equal(read(fd, &faults, sizeof(faults)), (ssize_t)sizeof(faults));
    close(fd);
    print_message("page faults for %d stacks: %lld\n", ASYNC__SLAB_STACKS, faults);
    assert_true(faults < ASYNC__SLAB_STACKS / 4);
    for (i = 0; i < ASYNC__SLAB_STACKS; i++)
        async__stack_put(&pool, s[i]);
    async__stack_pool_fini(&pool);
    async__stack_arena_fini(&arena);
}

/* Stacks that leave a pool keep their pages while few (the next pool
 * takes them warm), and give their lower pages back once the arena holds
 * ASYNC__DIRTY_MAX of them or a worker trims it before sleeping; the top
 * page, where the descriptor lives, stays. */
static void check_released(struct async__stack **s, int n, bool released)
{
    int i;

    for (i = 0; i < n; i++) {
        assert_int_equal(resident(s[i]->lo), !released);
        assert_int_equal(resident((char *)s[i]->lo + s[i]->size / 2), !released);
        assert_true(resident(s[i])); /* the descriptor's page */
    }
}

static int count_released(struct async__stack **s, int n)
{
    int i, k = 0;

    for (i = 0; i < n; i++)
        k += !resident(s[i]->lo);
    return k;
}

static void fill_and_drop(struct async__stack_pool *pool, struct async__stack **s, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        s[i] = async__stack_get(pool);
        assert_non_null(s[i]);
        memset(s[i]->lo, 0x5a, s[i]->size);
    }
    for (i = 0; i < n; i++)
        async__stack_put(pool, s[i]);
    async__stack_pool_fini(pool); /* the pool is empty now: all were dropped */
}

static void stack_pool_gives_back_the_lower_pages_of_the_stacks_it_drops(void **state)
{
    struct async__stack_arena arena;
    struct async__stack_pool pool = {.arena = &arena};
    enum { FEW = 3 * ASYNC__POOL_MAX, MANY = ASYNC__DIRTY_MAX + ASYNC__POOL_MAX };
    static struct async__stack *s[MANY];

    assert_int_equal(async__stack_arena_init(&arena, 64 * 1024), 0);
    fill_and_drop(&pool, s, FEW);
    check_released(s, FEW, false);   /* dirty, kept warm */
    async__stack_trim(&arena);
    check_released(s, FEW, true);
    async__stack_trim(&arena);       /* nothing dirty: nothing to do */
    /* Enough at once: the first ASYNC__DIRTY_MAX or so are released
     * without a trim (the drop that crosses the mark releases the whole
     * list), the rest waits for one. */
    fill_and_drop(&pool, s, MANY);
    assert_in_range(count_released(s, MANY), ASYNC__DIRTY_MAX, MANY - ASYNC__POOL_MAX / 2);
    async__stack_trim(&arena);
    check_released(s, MANY, true);
    async__stack_arena_fini(&arena);
}

/* 100,000 parked fibers would need 200,000 mappings with one mprotect guard
 * each, three times vm.max_map_count. */
static void stack_100k_parked_fibers_stay_far_below_the_mapping_limit(void **state)
{
    struct async_config cfg = {.workers = 2, .stack_size = 16 * 1024};

    parked_count = 0;
    RUN_CFG(&cfg, park_many, (void *)(intptr_t)100000);
    print_message("mappings with 100k parked fibers: %d\n", maps_while_parked);
    assert_true(maps_while_parked < 20000);
}

/* ---- overflow ---- */

static long __attribute__((noinline)) recurse(long depth, int yield_each)
{
    volatile char frame[512];

    frame[0] = (char)depth;
    if (yield_each)
        async_yield();
    if (depth == -1) /* never: keeps the compiler from calling the recursion infinite */
        return 0;
    return recurse(depth + 1, yield_each) + frame[0];
}

void *overflowing_fiber(void *arg)
{
    recurse(0, arg != NULL);
    return NULL;
}

static void *spawn_overflow(void *arg)
{
    async_task *t = async_spawn(overflowing_fiber, arg);

    async_join(t, NULL);
    return NULL;
}

/* Runs an overflowing fiber in a child with the given guard mode; returns
 * what the child printed on stderr and how it ended. */
static void overflow_in_child(const char *mode, int yield_each, char *out, size_t outlen,
                              int *status)
{
    int fds[2];
    pid_t pid;
    ssize_t n, got = 0;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct async_config cfg = {.workers = 1};

        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        setenv("ASYNC_IO_STACK_GUARD", mode, 1);
        async_runtime(&cfg, spawn_overflow, yield_each ? (void *)1 : NULL);
        _exit(0); /* not reached when the overflow is caught */
    }
    close(fds[1]);
    while ((size_t)got < outlen - 1 && (n = read(fds[0], out + got, outlen - 1 - got)) > 0)
        got += n;
    out[got] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
}

static void check_report(const char *mode, int yield_each)
{
    char out[4096];
    int status;

    overflow_in_child(mode, yield_each, out, sizeof(out), &status);
    print_message("[%s] %s", mode, out);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "fiber stack overflow"));
    assert_non_null(strstr(out, "overflowing_fiber"));
}

static void stack_overflow_hits_the_guard_page_and_names_the_fiber(void **state)
{
    check_report("madvise", 0);
}

static void stack_overflow_with_mprotect_guard_names_the_fiber(void **state)
{
    check_report("mprotect", 0);
}

static void stack_overflow_without_guard_is_caught_by_the_canary(void **state)
{
    check_report("canary", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stack_put_then_get_reuses_the_same_stack),
        cmocka_unit_test(stack_many_stacks_are_distinct_and_writable),
        cmocka_unit_test(stack_every_stack_of_a_slab_gets_its_guard),
        cmocka_unit_test(stack_slab_arrives_without_a_fault_per_stack),
        cmocka_unit_test(stack_pool_gives_back_the_lower_pages_of_the_stacks_it_drops),
        cmocka_unit_test(stack_100k_parked_fibers_stay_far_below_the_mapping_limit),
        cmocka_unit_test(stack_overflow_hits_the_guard_page_and_names_the_fiber),
        cmocka_unit_test(stack_overflow_with_mprotect_guard_names_the_fiber),
        cmocka_unit_test(stack_overflow_without_guard_is_caught_by_the_canary),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
