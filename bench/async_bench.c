/* async_bench — the micro benchmarks of ../shared/peers/micro, same work,
 * same counts, same worker numbers, same output lines, so that
 *   EXTRA_PEERS=async_io=build/bench/async_bench ../shared/peers/micro/run.sh
 * puts async_io in the peers' table.
 *
 *   async_bench BENCH   switch | switch_chan_unbuf | spawn_join | chan_pingpong
 *                       | mutex | ring | parked_memory | parked_million [N [STACK]]
 *
 * parked_million takes an optional count (default 1,000,000) and stack
 * size in bytes (async_config.stack_size, default 0: the runtime's 64 KiB);
 * its Go twin and the script that runs both side by side are in parked/. */
#include <async_io.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SWITCHES 10000000L
#define SPAWNS 1000000L
#define ROUND_TRIPS 1000000L
#define MUTEX_TASKS 1000L
#define MUTEX_ITERS 1000L
#define RING_ITEMS 10000000L
#define RING_CAP 1024
#define PARKED 100000L

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (f == NULL)
        abort();
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    if (kb < 0)
        abort();
    return kb * 1024;
}

/* ASYNC_BENCH_PERF=PHASE: profile one phase of parked_million ("spawn" or
 * "wake") with `perf record -D -1 --control fifo:CTL`, CTL named by
 * ASYNC_BENCH_PERF_CTL: the phase writes enable/disable to it. */
static void perf_phase(const char *phase, int on)
{
    const char *want = getenv("ASYNC_BENCH_PERF"), *ctl = getenv("ASYNC_BENCH_PERF_CTL");
    FILE *f;

    if (want == NULL || ctl == NULL || strcmp(want, phase) != 0 || (f = fopen(ctl, "w")) == NULL)
        return;
    fputs(on ? "enable\n" : "disable\n", f);
    fclose(f);
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "async_bench: %s failed\n", what);
        exit(1);
    }
}

static size_t stack_size; /* async_config.stack_size: 0, or parked_million's STACK */

static void run(unsigned workers, async_fn fn, void *arg)
{
    struct async_config cfg = {.workers = workers, .stack_size = stack_size};

    check(async_runtime(&cfg, fn, arg) == 0, "async_runtime");
}

/* ---- switch: two fibers on one worker alternate with async_yield ---- */

static void *yielder(void *arg)
{
    long i;

    for (i = 0; i < SWITCHES / 2; i++)
        async_yield();
    return arg;
}

static void *bench_switch(void *arg)
{
    async_task *a, *b;
    double t0 = now_ns();

    a = async_spawn(yielder, NULL);
    b = async_spawn(yielder, NULL);
    check(a && b, "spawn");
    async_join(a, NULL);
    async_join(b, NULL);
    printf("switch: %.2f ns/switch\n", (now_ns() - t0) / SWITCHES);
    return arg;
}

/* ---- switch_chan_unbuf: ping-pong over two channels on one worker ---- */

struct pair {
    async_channel *a, *b;
};

static void *echo_chan(void *arg)
{
    struct pair *p = arg;
    long v;

    while (async_channel_receive(p->a, &v) == 0) {
        v++;
        async_channel_send(p->b, &v);
    }
    return NULL;
}

static void *bench_switch_chan(void *arg)
{
    struct pair p = {async_channel_new(sizeof(long)), async_channel_new(sizeof(long))};
    long rounds = SWITCHES / 2, v = 0, i;
    async_task *t = async_spawn(echo_chan, &p);
    double t0 = now_ns(), d;

    for (i = 0; i < rounds; i++) {
        async_channel_send(p.a, &v);
        async_channel_receive(p.b, &v);
    }
    d = now_ns() - t0;
    check(v == rounds, "switch_chan");
    async_channel_close(p.a);
    async_join(t, NULL);
    async_channel_free(p.a);
    async_channel_free(p.b);
    printf("switch_chan_unbuf: %.2f ns/switch\n", d / SWITCHES);
    return arg;
}

/* ---- spawn_join: 1e6 tasks each doing one atomic add, then join all ---- */

static atomic_long counter;

static void *incr(void *arg)
{
    atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return arg;
}

static void *bench_spawn_join(void *arg)
{
    async_task **ts = malloc(sizeof(*ts) * SPAWNS);
    double t0 = now_ns(), d;
    long i;

    check(ts != NULL, "malloc");
    for (i = 0; i < SPAWNS; i++)
        check((ts[i] = async_spawn(incr, NULL)) != NULL, "spawn");
    for (i = 0; i < SPAWNS; i++)
        check(async_join(ts[i], NULL) == 0, "join");
    d = now_ns() - t0;
    check(atomic_load(&counter) == SPAWNS, "spawn_join count");
    printf("spawn_join: %.2f ns/task\n", d / SPAWNS);
    free(ts);
    return arg;
}

/* ---- chan_pingpong: bounce one integer over two unbounded channels ---- */

static void *pinger(void *arg)
{
    struct pair *p = arg;
    long v = 0, i;
    double t0 = now_ns(), *d = malloc(sizeof(double));

    for (i = 0; i < ROUND_TRIPS; i++) {
        async_channel_send(p->a, &v);
        async_channel_receive(p->b, &v);
    }
    *d = now_ns() - t0;
    check(v == ROUND_TRIPS, "pingpong");
    async_channel_close(p->a);
    return d;
}

static void *bench_pingpong(void *arg)
{
    const char *name = arg;
    struct pair p = {async_channel_new(sizeof(long)), async_channel_new(sizeof(long))};
    async_task *echo = async_spawn(echo_chan, &p);
    async_task *ping = async_spawn(pinger, &p);
    void *d;

    async_join(ping, &d);
    async_join(echo, NULL);
    printf("%s: %.2f ns/roundtrip\n", name, *(double *)d / ROUND_TRIPS);
    free(d);
    async_channel_free(p.a);
    async_channel_free(p.b);
    return NULL;
}

/* ---- mutex: 1000 tasks x 1000 lock/increment/unlock ---- */

static async_mutex *mu;
static long mutex_counter;

static void *locker(void *arg)
{
    long j;

    for (j = 0; j < MUTEX_ITERS; j++) {
        async_mutex_lock(mu);
        mutex_counter++;
        async_mutex_unlock(mu);
    }
    return arg;
}

static void *bench_mutex(void *arg)
{
    async_task *ts[MUTEX_TASKS];
    double t0 = now_ns(), d;
    long i;

    mu = async_mutex_new();
    for (i = 0; i < MUTEX_TASKS; i++)
        ts[i] = async_spawn(locker, NULL);
    for (i = 0; i < MUTEX_TASKS; i++)
        async_join(ts[i], NULL);
    d = now_ns() - t0;
    check(mutex_counter == MUTEX_TASKS * MUTEX_ITERS, "mutex count");
    async_mutex_free(mu);
    printf("mutex: %.2f ns/lock\n", d / (MUTEX_TASKS * MUTEX_ITERS));
    return arg;
}

/* ---- ring: producer -> ring(1024) -> consumer, 1e7 items ---- */

static void *producer(void *arg)
{
    async_ring *r = arg;
    long i;

    for (i = 0; i < RING_ITEMS; i++)
        async_ring_send(r, &i);
    async_ring_close(r);
    return NULL;
}

static void *consumer(void *arg)
{
    async_ring *r = arg;
    long v, n = 0, sum = 0;

    while (async_ring_recv(r, &v) == 0) {
        sum += v;
        n++;
    }
    check(n == RING_ITEMS && sum == RING_ITEMS * (RING_ITEMS - 1) / 2, "ring sum");
    return NULL;
}

static void *bench_ring(void *arg)
{
    async_ring *r = async_ring_new(RING_CAP, sizeof(long));
    double t0 = now_ns();
    async_task *p = async_spawn(producer, r), *c = async_spawn(consumer, r);

    async_join(p, NULL);
    async_join(c, NULL);
    printf("ring: %.2f ns/item\n", (now_ns() - t0) / RING_ITEMS);
    async_ring_free(r);
    return arg;
}

/* ---- parked_memory / parked_million: N fibers each parked on its own
 * empty channel; RSS delta / N, then release all and join ---- */

struct parked {
    long n;
    async_channel **chans;
    atomic_long started, sum;
    async_channel *all_started;
};

struct parked_arg {
    struct parked *p;
    long i;
};

static void *parked_fiber(void *arg)
{
    struct parked *p = ((struct parked_arg *)arg)->p;
    long i = ((struct parked_arg *)arg)->i, v;

    if (atomic_fetch_add(&p->started, 1) + 1 == p->n)
        async_channel_send(p->all_started, &i);
    check(async_channel_receive(p->chans[i], &v) == 0, "parked receive");
    atomic_fetch_add(&p->sum, v);
    return NULL;
}

static void *bench_parked(void *arg)
{
    long n = *(long *)arg, i, before, after, dummy;
    struct parked p = {.n = n};
    struct parked_arg *args = malloc(sizeof(*args) * n);
    async_task **ts = malloc(sizeof(*ts) * n);
    double t0, t_spawned, t_end;

    p.chans = malloc(sizeof(*p.chans) * n);
    p.all_started = async_channel_new(sizeof(long));
    check(args && ts && p.chans && p.all_started, "malloc");
    before = rss_bytes();
    perf_phase("spawn", 1);
    t0 = now_ns();
    for (i = 0; i < n; i++) {
        args[i].p = &p;
        args[i].i = i;
        check((p.chans[i] = async_channel_new(sizeof(long))) != NULL, "channel");
        check((ts[i] = async_spawn(parked_fiber, &args[i])) != NULL, "spawn");
    }
    check(async_channel_receive(p.all_started, &dummy) == 0, "all started");
    perf_phase("spawn", 0);
    async_sleep_ms(50);
    t_spawned = now_ns();
    after = rss_bytes();
    perf_phase("wake", 1);
    for (i = 0; i < n; i++)
        async_channel_send(p.chans[i], &i);
    for (i = 0; i < n; i++)
        check(async_join(ts[i], NULL) == 0, "join");
    t_end = now_ns();
    perf_phase("wake", 0);
    check(atomic_load(&p.sum) == n * (n - 1) / 2, "parked sum");
    if (n == PARKED) {
        printf("parked_memory: %.0f bytes/task\n", (double)(after - before) / n);
    } else {
        printf("parked_million: %.0f bytes/fiber\n", (double)(after - before) / n);
        printf("parked_million_spawn: %.2f s\n", (t_spawned - t0) / 1e9 - 0.05);
        printf("parked_million_wake_join: %.2f s\n", (t_end - t_spawned) / 1e9);
    }
    for (i = 0; i < n; i++)
        async_channel_free(p.chans[i]);
    async_channel_free(p.all_started);
    free(p.chans);
    free(ts);
    free(args);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *b = argc > 1 ? argv[1] : "";
    static long parked = PARKED, million = 1000000L;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(b, "switch") == 0)
        run(1, bench_switch, NULL);
    else if (strcmp(b, "switch_chan_unbuf") == 0)
        run(1, bench_switch_chan, NULL);
    else if (strcmp(b, "spawn_join") == 0)
        run(2, bench_spawn_join, NULL);
    else if (strcmp(b, "chan_pingpong") == 0) {
        run(2, bench_pingpong, "chan_pingpong_2w");
        run(1, bench_pingpong, "chan_pingpong_1w");
    } else if (strcmp(b, "chan_pingpong_2w") == 0 || strcmp(b, "chan_pingpong_1w") == 0)
        run(b[14] == '2' ? 2 : 1, bench_pingpong, (void *)b);
    else if (strcmp(b, "mutex") == 0)
        run(2, bench_mutex, NULL);
    else if (strcmp(b, "ring") == 0)
        run(2, bench_ring, NULL);
    else if (strcmp(b, "parked_memory") == 0)
        run(2, bench_parked, &parked);
    else if (strcmp(b, "parked_million") == 0) {
        if (argc > 2 && ((million = strtol(argv[2], NULL, 10)) <= 0 || million == PARKED)) {
            fprintf(stderr, "async_bench: parked_million N: N > 0, not %ld\n", (long)PARKED);
            return 2;
        }
        if (argc > 3 && (long)(stack_size = (size_t)strtol(argv[3], NULL, 10)) <= 0) {
            fprintf(stderr, "async_bench: parked_million N STACK: STACK > 0 bytes\n");
            return 2;
        }
        run(2, bench_parked, &million);
    }
    else {
        fprintf(stderr, "usage: async_bench switch|switch_chan_unbuf|spawn_join|chan_pingpong|"
                        "mutex|ring|parked_memory|parked_million [N [STACK]]\n");
        return 2;
    }
    return 0;
}
