/* tests/unit/test_channel — async_channel: the unbounded MPMC channel.
 *
 * Every test runs its body as the main fiber of a fresh runtime.  Fibers never
 * call cmocka's assertions (a failed one longjmps off the fiber's stack, maybe
 * from another thread): they record failures with CHECK*, and the test
 * asserts that none were recorded once async_runtime has returned.
 *
 * "Parked" is made deterministic on one worker with a gate (a second
 * channel): a fiber signals the gate right before the call that must park,
 * and the main fiber waits on the gate.  With one worker the signalling fiber
 * keeps running until it switches out, which it only does by parking, so when
 * the main fiber resumes the other one is parked.  No test sleeps to
 * synchronise, every loop is bounded, and a watchdog turns a lost wake-up
 * into a failure that names the test instead of a hang. */
#define _GNU_SOURCE
#include "harness.h"

#include <sched.h>

/* ---- gate: "I am about to park" ---- */

struct gate {
    async_channel *ch;
};

static void gate_init(struct gate *g)
{
    g->ch = channel_new_checked(sizeof(int));
}

static void gate_fini(struct gate *g)
{
    async_channel_free(g->ch);
}

static void gate_signal(struct gate *g)
{
    int one = 1;

    CHECK_OK(async_channel_send(g->ch, &one));
}

static void gate_wait(struct gate *g)
{
    int v;

    CHECK_OK(async_channel_receive(g->ch, &v));
}

/* A fiber that makes one receive and records how it ended. */
struct receiver {
    async_channel *ch;
    struct gate *gate;          /* signalled right before receiving, or NULL */
    int64_t deadline;           /* set before receiving when > 0 */
    int value;                  /* what it received */
    int err;                    /* 0 or the receive's errno */
    atomic_int returned;        /* 1 once the receive returned */
};

static void *receiver_fiber(void *arg)
{
    struct receiver *r = arg;
    int rc;

    if (r->deadline > 0)
        async_deadline(r->deadline);
    if (r->gate != NULL)
        gate_signal(r->gate);
    errno = 0;
    rc = async_channel_receive(r->ch, &r->value);
    r->err = rc == 0 ? 0 : errno;
    CHECK(rc == 0 || rc == -1);
    atomic_store(&r->returned, 1);
    return NULL;
}

/* Spawns r and waits until it has reached its receive (parked, on one
 * worker). */
static async_task *spawn_receiver(struct receiver *r, async_channel *ch, struct gate *g)
{
    async_task *t;

    memset(r, 0, sizeof(*r));
    r->ch = ch;
    r->gate = g;
    t = spawn(receiver_fiber, r);
    gate_wait(g);
    return t;
}

/* ---- argument checks ---- */

static void *new_zero_elem_main(void *arg)
{
    errno = 0;
    CHECK(async_channel_new(0) == NULL);
    CHECK_EQ(errno, EINVAL);
    return NULL;
}

static void channel_new_with_elem_size_zero_returns_einval(void **state)
{
    RUN(1, new_zero_elem_main, NULL);
}

static void *null_args_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int v = 7;

    CHECK_FAILS(async_channel_send(NULL, &v), EINVAL);
    CHECK_FAILS(async_channel_send(ch, NULL), EINVAL);
    CHECK_FAILS(async_channel_receive(NULL, &v), EINVAL);
    CHECK_FAILS(async_channel_receive(ch, NULL), EINVAL);
    CHECK_FAILS(async_channel_try_receive(NULL, &v), EINVAL);
    CHECK_FAILS(async_channel_try_receive(ch, NULL), EINVAL);
    async_channel_close(NULL);
    async_channel_free(NULL);
    /* The channel is untouched by all that. */
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    CHECK_OK(async_channel_send(ch, &v));
    v = 0;
    CHECK_OK(async_channel_receive(ch, &v));
    CHECK_EQ(v, 7);
    async_channel_free(ch);
    return NULL;
}

static void channel_null_arguments_return_einval(void **state)
{
    RUN(1, null_args_main, NULL);
}

/* ---- EPERM: receive outside a fiber ---- */

struct thread_call {
    async_channel *ch;
    int value;
    int rc, err;
};

static void *thread_receive(void *arg)
{
    struct thread_call *c = arg;

    errno = 0;
    c->rc = async_channel_receive(c->ch, &c->value);
    c->err = errno;
    return NULL;
}

static void *eperm_thread_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct thread_call c = {.ch = ch, .value = -1};
    pthread_t th;
    int v = 5;

    /* An element is there: EPERM must not consume it. */
    CHECK_OK(async_channel_send(ch, &v));
    if (CHECK_EQ(pthread_create(&th, NULL, thread_receive, &c), 0))
        CHECK_EQ(pthread_join(th, NULL), 0); /* returns at once: it must not park */
    CHECK_EQ(c.rc, -1);
    CHECK_EQ(c.err, EPERM);
    CHECK_EQ(c.value, -1);
    v = 0;
    CHECK_OK(async_channel_try_receive(ch, &v));
    CHECK_EQ(v, 5);
    async_channel_free(ch);
    return NULL;
}

static void channel_receive_outside_fiber_returns_eperm(void **state)
{
    async_channel *ch = async_channel_new(sizeof(int));
    int v = 3;

    assert_non_null(ch);
    /* Outside any runtime: receive parks, so it is refused... */
    errno = 0;
    assert_int_equal(async_channel_receive(ch, &v), -1);
    assert_int_equal(errno, EPERM);
    /* ...while send and try_receive never park and work from any thread. */
    assert_int_equal(async_channel_send(ch, &v), 0);
    v = 0;
    assert_int_equal(async_channel_try_receive(ch, &v), 0);
    assert_int_equal(v, 3);
    async_channel_free(ch);
    /* From a plain thread while a runtime runs. */
    RUN(1, eperm_thread_main, NULL);
}

/* ---- basics on one worker ---- */

static void *fifo_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int i, v;

    for (i = 0; i < 1000; i++)
        CHECK_OK(async_channel_send(ch, &i));
    for (i = 0; i < 1000; i++) {
        v = -1;
        if (!CHECK_OK(async_channel_receive(ch, &v)) || !CHECK_EQ(v, i))
            break;
    }
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    async_channel_free(ch);
    return NULL;
}

static void channel_send_then_receive_returns_values_in_fifo_order(void **state)
{
    RUN(1, fifo_main, NULL);
}

/* Random interleaving of sends and receives, so the circular buffer wraps
 * and then grows while wrapped. */
static void *wrap_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(uint32_t));
    uint32_t next_send = 0, next_recv = 0, v;
    uint64_t rng = 0x1234567;
    int step;

    for (step = 0; step < 50000; step++) {
        uint64_t r = xorshift(&rng);

        if (r % 5 < 3) { /* sends outnumber receives: the buffer grows */
            CHECK_OK(async_channel_send(ch, &next_send));
            next_send++;
        } else if (next_recv < next_send) {
            int rc = r % 2 == 0 ? async_channel_receive(ch, &v)
                                : async_channel_try_receive(ch, &v);

            if (!CHECK_EQ(rc, 0) || !CHECK_EQ(v, next_recv))
                break;
            next_recv++;
        } else {
            CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
        }
    }
    while (next_recv < next_send) {
        if (!CHECK_OK(async_channel_receive(ch, &v)) || !CHECK_EQ(v, next_recv))
            break;
        next_recv++;
    }
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    async_channel_free(ch);
    return NULL;
}

static void channel_fifo_order_survives_buffer_growth_while_wrapped(void **state)
{
    RUN(1, wrap_main, NULL);
}

struct record {
    uint64_t id;
    char name[21];
    double weight;
};

static void *by_value_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(struct record));
    async_channel *big = channel_new_checked(4096);
    struct record in = {.id = 42, .name = "forty-two", .weight = 4.2}, out;
    static unsigned char page[4096], got[4096];
    size_t i;

    CHECK_OK(async_channel_send(ch, &in));
    memset(&in, 0xff, sizeof(in)); /* the channel holds its own copy */
    memset(&out, 0, sizeof(out));
    CHECK_OK(async_channel_receive(ch, &out));
    CHECK_EQ(out.id, 42);
    CHECK(strcmp(out.name, "forty-two") == 0);
    CHECK(out.weight == 4.2);

    for (i = 0; i < sizeof(page); i++)
        page[i] = (unsigned char)(i * 7);
    CHECK_OK(async_channel_send(big, page));
    memset(page, 0, sizeof(page));
    CHECK_OK(async_channel_receive(big, got));
    for (i = 0; i < sizeof(got); i++)
        if (!CHECK_EQ(got[i], (unsigned char)(i * 7)))
            break;
    async_channel_free(ch);
    async_channel_free(big);
    return NULL;
}

static void channel_copies_elements_by_value(void **state)
{
    RUN(1, by_value_main, NULL);
}

static void *try_empty_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int v = 99;

    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    CHECK_EQ(v, 99);
    CHECK_OK(async_channel_send(ch, &v));
    CHECK_OK(async_channel_try_receive(ch, &v));
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN); /* drained, still open */
    async_channel_free(ch);
    return NULL;
}

static void channel_try_receive_on_empty_open_channel_returns_eagain(void **state)
{
    RUN(1, try_empty_main, NULL);
}

static void *try_closed_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int i, v;

    for (i = 0; i < 3; i++)
        CHECK_OK(async_channel_send(ch, &i));
    async_channel_close(ch);
    for (i = 0; i < 3; i++) {
        v = -1;
        CHECK_OK(async_channel_try_receive(ch, &v));
        CHECK_EQ(v, i);
    }
    CHECK_FAILS(async_channel_try_receive(ch, &v), EPIPE);
    CHECK_FAILS(async_channel_try_receive(ch, &v), EPIPE);
    async_channel_free(ch);
    return NULL;
}

static void channel_try_receive_after_close_drains_then_returns_epipe(void **state)
{
    RUN(1, try_closed_main, NULL);
}

static void *receive_closed_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int i, v;

    for (i = 0; i < 3; i++)
        CHECK_OK(async_channel_send(ch, &i));
    async_channel_close(ch);
    for (i = 0; i < 3; i++) {
        v = -1;
        CHECK_OK(async_channel_receive(ch, &v));
        CHECK_EQ(v, i);
    }
    /* Closed and drained: fails at once, every time, without parking. */
    CHECK_FAILS(async_channel_receive(ch, &v), EPIPE);
    CHECK_FAILS(async_channel_receive(ch, &v), EPIPE);
    async_channel_free(ch);
    return NULL;
}

static void channel_receive_after_close_drains_then_returns_epipe(void **state)
{
    RUN(1, receive_closed_main, NULL);
}

static void *send_closed_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int v = 1;

    CHECK_OK(async_channel_send(ch, &v));
    async_channel_close(ch);
    v = 2;
    CHECK_FAILS(async_channel_send(ch, &v), EPIPE);
    /* Only what was sent before the close comes out. */
    CHECK_OK(async_channel_receive(ch, &v));
    CHECK_EQ(v, 1);
    CHECK_FAILS(async_channel_receive(ch, &v), EPIPE);
    async_channel_free(ch);
    return NULL;
}

static void channel_send_after_close_returns_epipe(void **state)
{
    RUN(1, send_closed_main, NULL);
}

static void *free_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(uint64_t));
    uint64_t i;

    async_channel_free(channel_new_checked(8)); /* never used */
    for (i = 0; i < 1000; i++)
        CHECK_OK(async_channel_send(ch, &i));
    async_channel_free(ch); /* ASan's leak check sees what this misses */
    return NULL;
}

static void channel_free_releases_unreceived_elements(void **state)
{
    RUN(1, free_main, NULL);
}

/* ---- parked receivers ---- */

#define NRECV 3

static void *close_wakes_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct receiver r[NRECV];
    async_task *t[NRECV];
    struct gate g;
    int i;

    gate_init(&g);
    for (i = 0; i < NRECV; i++)
        t[i] = spawn_receiver(&r[i], ch, &g);
    for (i = 0; i < NRECV; i++)
        CHECK_EQ(atomic_load(&r[i].returned), 0); /* nothing to receive yet */
    async_channel_close(ch);
    for (i = 0; i < NRECV; i++) {
        join(t[i]);
        CHECK_EQ(r[i].err, EPIPE);
    }
    gate_fini(&g);
    async_channel_free(ch);
    return NULL;
}

static void channel_close_wakes_parked_receivers_with_epipe(void **state)
{
    RUN(1, close_wakes_main, NULL);
}

/* Same outcome whatever the interleaving: receivers on other workers are
 * woken through their worker's mailbox. */
static void channel_close_wakes_parked_receivers_with_epipe_on_four_workers(void **state)
{
    RUN(4, close_wakes_main, NULL);
}

static void *park_order_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct receiver r[NRECV];
    async_task *t[NRECV];
    struct gate g;
    int i, v;

    gate_init(&g);
    for (i = 0; i < NRECV; i++)
        t[i] = spawn_receiver(&r[i], ch, &g); /* parks r[0], then r[1], ... */
    for (i = 0; i < NRECV; i++) {
        v = 100 + i;
        CHECK_OK(async_channel_send(ch, &v));
    }
    for (i = 0; i < NRECV; i++) {
        join(t[i]);
        CHECK_EQ(r[i].err, 0);
        CHECK_EQ(r[i].value, 100 + i);
    }
    /* Each send went straight to a receiver. */
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    gate_fini(&g);
    async_channel_free(ch);
    return NULL;
}

static void channel_parked_receivers_are_served_in_park_order(void **state)
{
    RUN(1, park_order_main, NULL);
}

/* ---- cancellation ---- */

static void *cancel_parked_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct receiver r;
    async_task *t;
    struct gate g;
    int i, v;

    gate_init(&g);
    t = spawn_receiver(&r, ch, &g);
    CHECK_EQ(atomic_load(&r.returned), 0);
    CHECK_OK(async_cancel(t));
    join(t);
    CHECK_EQ(r.err, ECANCELED);
    /* Its queue entry must not swallow anything sent afterwards. */
    for (i = 0; i < 3; i++)
        CHECK_OK(async_channel_send(ch, &i));
    for (i = 0; i < 3; i++) {
        v = -1;
        CHECK_OK(async_channel_receive(ch, &v));
        CHECK_EQ(v, i);
    }
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    gate_fini(&g);
    async_channel_free(ch);
    return NULL;
}

static void channel_cancelled_parked_receiver_gets_ecanceled_and_loses_nothing(void **state)
{
    RUN(1, cancel_parked_main, NULL);
}

/* The cancelled receiver is still queued (it has not run since the cancel)
 * when the send comes: the send must pass it over to the next receiver. */
static void *cancel_first_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct receiver r1, r2;
    async_task *t1, *t2;
    struct gate g;
    int v = 7;

    gate_init(&g);
    t1 = spawn_receiver(&r1, ch, &g);
    t2 = spawn_receiver(&r2, ch, &g);
    CHECK_OK(async_cancel(t1));
    CHECK_OK(async_channel_send(ch, &v));
    join(t1);
    join(t2);
    CHECK_EQ(r1.err, ECANCELED);
    CHECK_EQ(r2.err, 0);
    CHECK_EQ(r2.value, 7);
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    gate_fini(&g);
    async_channel_free(ch);
    return NULL;
}

static void channel_send_skips_cancelled_receiver_still_queued(void **state)
{
    RUN(1, cancel_first_main, NULL);
}

static void *cancelled_early_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct receiver r = {.ch = ch};
    async_task *t;
    int v = 5;

    CHECK_OK(async_channel_send(ch, &v));
    t = spawn(receiver_fiber, &r);
    CHECK_OK(async_cancel(t)); /* before it starts: it still runs */
    join(t);
    CHECK_EQ(atomic_load(&r.returned), 1);
    CHECK_EQ(r.err, ECANCELED);
    /* The element it could have taken is still there. */
    v = 0;
    CHECK_OK(async_channel_try_receive(ch, &v));
    CHECK_EQ(v, 5);
    async_channel_free(ch);
    return NULL;
}

static void channel_receive_in_cancelled_fiber_fails_and_leaves_element(void **state)
{
    RUN(1, cancelled_early_main, NULL);
}

/* Consumers are cancelled at random moments, parked or not, while producers
 * send; whatever the consumers did not take is still in the channel. */
struct cancel_race {
    async_channel *ch;
    unsigned producers, consumers;
    uint32_t per_producer, total;
    atomic_uchar *seen;
    async_task **consumer_tasks;
};

struct race_worker {
    struct cancel_race *race;
    unsigned index;
};

static void *race_producer(void *arg)
{
    struct race_worker *w = arg;
    struct cancel_race *rc = w->race;
    uint32_t i, v;

    for (i = 0; i < rc->per_producer; i++) {
        v = w->index * rc->per_producer + i;
        if (!CHECK_OK(async_channel_send(rc->ch, &v)))
            break;
        if (i % 64 == 63)
            async_yield(); /* let consumers empty the channel and park */
    }
    return NULL;
}

static void *race_consumer(void *arg)
{
    struct race_worker *w = arg;
    struct cancel_race *rc = w->race;
    uint32_t v, n;

    for (n = 0; n <= rc->total; n++) {
        errno = 0;
        if (async_channel_receive(rc->ch, &v) != 0) {
            /* EPIPE too: a receive that had passed its cancellation check
             * when the cancel came may see the close instead (its thread
             * preempted in between while everything else ran on). */
            CHECK(errno == ECANCELED || errno == EPIPE);
            break;
        }
        if (CHECK(v < rc->total))
            atomic_fetch_add(&rc->seen[v], 1);
    }
    return NULL;
}

static void *race_canceller(void *arg)
{
    struct cancel_race *rc = arg;
    uint64_t rng = 0xc0ffee;
    unsigned k, i, n;

    for (k = 0; k < rc->consumers; k++) {
        n = (unsigned)(xorshift(&rng) % 3000);
        for (i = 0; i < n; i++)
            async_yield();
        CHECK_OK(async_cancel(rc->consumer_tasks[k]));
    }
    return NULL;
}

static void *cancel_race_main(void *arg)
{
    struct cancel_race rc = {.producers = 4, .consumers = 6, .per_producer = 10000};
    struct race_worker *workers;
    async_task **producers, *canceller;
    uint32_t v, n;
    unsigned i;

    rc.total = rc.producers * rc.per_producer;
    rc.ch = channel_new_checked(sizeof(uint32_t));
    rc.seen = calloc(rc.total, sizeof(*rc.seen));
    rc.consumer_tasks = calloc(rc.consumers, sizeof(async_task *));
    producers = calloc(rc.producers, sizeof(async_task *));
    workers = calloc(rc.producers + rc.consumers, sizeof(*workers));
    if (rc.seen == NULL || rc.consumer_tasks == NULL || producers == NULL || workers == NULL)
        abort();
    for (i = 0; i < rc.consumers; i++) {
        workers[i] = (struct race_worker){.race = &rc, .index = i};
        rc.consumer_tasks[i] = spawn(race_consumer, &workers[i]);
    }
    for (i = 0; i < rc.producers; i++) {
        workers[rc.consumers + i] = (struct race_worker){.race = &rc, .index = i};
        producers[i] = spawn(race_producer, &workers[rc.consumers + i]);
    }
    canceller = spawn(race_canceller, &rc);
    join(canceller);
    for (i = 0; i < rc.producers; i++)
        join(producers[i]);
    async_channel_close(rc.ch);
    for (i = 0; i < rc.consumers; i++)
        join(rc.consumer_tasks[i]);
    /* Whatever the cancelled consumers left is still in the channel. */
    for (n = 0; n <= rc.total; n++) {
        errno = 0;
        if (async_channel_try_receive(rc.ch, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (CHECK(v < rc.total))
            atomic_fetch_add(&rc.seen[v], 1);
    }
    check_seen_once(rc.seen, rc.total);
    async_channel_free(rc.ch);
    free(rc.seen);
    free(rc.consumer_tasks);
    free(producers);
    free(workers);
    return NULL;
}

static void channel_receivers_cancelled_mid_stream_lose_no_element_on_four_workers(void **state)
{
    RUN(4, cancel_race_main, NULL);
}

static void channel_receivers_cancelled_mid_stream_lose_no_element_on_one_worker(void **state)
{
    RUN(1, cancel_race_main, NULL);
}

/* ---- deadlines ---- */

static void *past_deadline_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    int64_t dl = async_now_ms() - 1;
    int v = 11;

    CHECK_EQ(async_deadline(dl), -1);
    CHECK_FAILS(async_channel_receive(ch, &v), ETIMEDOUT);
    /* Past the deadline even an available element is refused... */
    CHECK_OK(async_channel_send(ch, &v));
    CHECK_FAILS(async_channel_receive(ch, &v), ETIMEDOUT);
    CHECK_EQ(async_deadline(-1), dl);
    /* ...and stays there for later. */
    v = 0;
    CHECK_OK(async_channel_receive(ch, &v));
    CHECK_EQ(v, 11);
    async_channel_free(ch);
    return NULL;
}

static void channel_receive_past_deadline_returns_etimedout(void **state)
{
    RUN(1, past_deadline_main, NULL);
}

static void *near_deadline_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct receiver r = {.ch = ch};
    async_task *t;
    int64_t dl;
    int v;

    /* The main fiber itself parks until its deadline. */
    dl = async_now_ms() + 20;
    async_deadline(dl);
    CHECK_FAILS(async_channel_receive(ch, &v), ETIMEDOUT);
    CHECK(async_now_ms() >= dl); /* not before the deadline */
    CHECK_EQ(async_deadline(-1), dl);

    /* A spawned receiver times out while the worker has nothing else to
     * do; its queue entry must not swallow the next element. */
    r.deadline = async_now_ms() + 20;
    t = spawn(receiver_fiber, &r);
    join(t);
    CHECK_EQ(r.err, ETIMEDOUT);
    v = 12;
    CHECK_OK(async_channel_send(ch, &v));
    v = 0;
    CHECK_OK(async_channel_receive(ch, &v));
    CHECK_EQ(v, 12);
    CHECK_FAILS(async_channel_try_receive(ch, &v), EAGAIN);
    async_channel_free(ch);
    return NULL;
}

static void channel_receive_with_near_deadline_parks_then_returns_etimedout(void **state)
{
    RUN(1, near_deadline_main, NULL);
}

/* ---- sends from plain threads ---- */

static void *thread_send(void *arg)
{
    struct thread_call *c = arg;

    errno = 0;
    c->rc = async_channel_send(c->ch, &c->value);
    c->err = errno;
    return NULL;
}

static void *pthread_wakes_main(void *arg)
{
    async_channel *ch = channel_new_checked(sizeof(int));
    struct thread_call c = {.ch = ch, .value = 42};
    struct receiver r;
    async_task *t;
    struct gate g;
    pthread_t th;

    gate_init(&g);
    t = spawn_receiver(&r, ch, &g);
    CHECK_EQ(atomic_load(&r.returned), 0); /* parked */
    if (!CHECK_EQ(pthread_create(&th, NULL, thread_send, &c), 0))
        async_channel_send(ch, &c.value); /* do not hang */
    join(t); /* the worker idles (and sleeps) until the thread's send wakes r */
    CHECK_EQ(r.err, 0);
    CHECK_EQ(r.value, 42);
    pthread_join(th, NULL);
    CHECK_EQ(c.rc, 0);
    gate_fini(&g);
    async_channel_free(ch);
    return NULL;
}

static void channel_send_from_plain_thread_wakes_parked_fiber(void **state)
{
    RUN(1, pthread_wakes_main, NULL);
}

/* A thread sends one value each time the fiber asks for it, so the fiber
 * parks (and its worker goes idle) before many of the sends and not before
 * others. */
struct ping {
    async_channel *ch;
    atomic_int want;
    int rounds;
};

static void *ping_thread(void *arg)
{
    struct ping *p = arg;
    long spins;
    int i, k;

    for (i = 0; i < p->rounds; i++) {
        for (spins = 0; atomic_load(&p->want) != i; spins++) {
            if (atomic_load(&p->want) == -2)
                return NULL; /* the fiber gave up */
            if (spins > 200000000L) {
                failed(__FILE__, __LINE__, "fiber never asked for value %d", i);
                async_channel_close(p->ch); /* frees the fiber with EPIPE */
                return NULL;
            }
            if (spins % 64 == 63)
                sched_yield();
        }
        for (k = 0; k < (i % 16) * 200; k++) /* vary how late the send comes */
            atomic_signal_fence(memory_order_seq_cst);
        CHECK_OK(async_channel_send(p->ch, &i));
    }
    return NULL;
}

static void *ping_main(void *arg)
{
    struct ping p = {.ch = channel_new_checked(sizeof(int)), .want = -1, .rounds = 2000};
    pthread_t th;
    int i, v;

    if (!CHECK_EQ(pthread_create(&th, NULL, ping_thread, &p), 0))
        return NULL;
    for (i = 0; i < p.rounds; i++) {
        atomic_store(&p.want, i);
        if (!CHECK_OK(async_channel_receive(p.ch, &v)) || !CHECK_EQ(v, i))
            break;
    }
    if (i < p.rounds)
        atomic_store(&p.want, -2); /* the thread gives up */
    pthread_join(th, NULL);
    async_channel_free(p.ch);
    return NULL;
}

static void channel_sends_from_plain_thread_wake_fiber_every_time(void **state)
{
    RUN(1, ping_main, NULL);
}

/* ---- stress: exactly-once delivery, per-producer order ---- */

#define MAX_PRODUCERS 16

struct stress {
    async_channel *ch;
    unsigned producers, consumers;
    uint32_t per_producer, total;
    atomic_uchar *seen;
};

struct stress_worker {
    struct stress *s;
    unsigned index;
};

static void *stress_producer(void *arg)
{
    struct stress_worker *w = arg;
    struct stress *s = w->s;
    uint32_t i, v;

    for (i = 0; i < s->per_producer; i++) {
        v = w->index * s->per_producer + i;
        if (!CHECK_OK(async_channel_send(s->ch, &v)))
            break;
        if (i % 128 == 127)
            async_yield();
    }
    return NULL;
}

/* Returns how many values it received. */
static void *stress_consumer(void *arg)
{
    struct stress_worker *w = arg;
    struct stress *s = w->s;
    uint32_t last[MAX_PRODUCERS], v, p, seq;
    uintptr_t n;

    for (p = 0; p < MAX_PRODUCERS; p++)
        last[p] = UINT32_MAX;
    for (n = 0; n <= s->total; n++) {
        errno = 0;
        if (async_channel_receive(s->ch, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (!CHECK(v < s->total))
            continue;
        atomic_fetch_add(&s->seen[v], 1);
        p = v / s->per_producer;
        seq = v % s->per_producer;
        /* FIFO: one producer's values reach any one consumer in order. */
        if (last[p] != UINT32_MAX && !CHECK(seq > last[p]))
            failed(__FILE__, __LINE__, "producer %u: %u after %u", p, seq, last[p]);
        last[p] = seq;
    }
    return (void *)n;
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    struct stress_worker *w;
    async_task **tasks;
    unsigned i, n = s->producers + s->consumers;
    uintptr_t received = 0;

    s->total = s->producers * s->per_producer;
    s->ch = channel_new_checked(sizeof(uint32_t));
    s->seen = calloc(s->total, sizeof(*s->seen));
    w = calloc(n, sizeof(*w));
    tasks = calloc(n, sizeof(*tasks));
    if (s->seen == NULL || w == NULL || tasks == NULL)
        abort();
    /* Consumers first, so that early sends find parked receivers. */
    for (i = 0; i < n; i++) {
        bool consumer = i < s->consumers;

        w[i] = (struct stress_worker){.s = s, .index = consumer ? i : i - s->consumers};
        tasks[i] = spawn(consumer ? stress_consumer : stress_producer, &w[i]);
    }
    for (i = s->consumers; i < n; i++)
        join(tasks[i]);
    async_channel_close(s->ch);
    for (i = 0; i < s->consumers; i++)
        received += (uintptr_t)join(tasks[i]);
    CHECK_EQ(received, s->total);
    check_seen_once(s->seen, s->total);
    async_channel_free(s->ch);
    free(s->seen);
    free(w);
    free(tasks);
    return NULL;
}

static void channel_stress_two_workers_delivers_every_value_exactly_once(void **state)
{
    struct stress s = {.producers = 3, .consumers = 2, .per_producer = 40000};

    RUN(2, stress_main, &s);
}

static void channel_stress_four_workers_4x4_delivers_every_value_exactly_once(void **state)
{
    struct stress s = {.producers = 4, .consumers = 4, .per_producer = 50000};

    RUN(4, stress_main, &s);
}

static void channel_stress_one_consumer_many_producers_keeps_each_producer_in_order(void **state)
{
    struct stress s = {.producers = 8, .consumers = 1, .per_producer = 10000};

    RUN(4, stress_main, &s);
}

/* ---- races with close and with expiring deadlines ---- */

#define RETRY_LIMIT 10000000L   /* bounds the retry loops; never reached */

struct close_race {
    async_channel *ch;
    unsigned producers, consumers;
    uint32_t per_producer, total;
    atomic_uchar *seen;
};

struct close_race_worker {
    struct close_race *race;
    unsigned index;
};

/* Returns how many of its values were sent before the close. */
static void *close_race_producer(void *arg)
{
    struct close_race_worker *w = arg;
    struct close_race *rc = w->race;
    uint32_t i, v;

    for (i = 0; i < rc->per_producer; i++) {
        v = w->index * rc->per_producer + i;
        errno = 0;
        if (async_channel_send(rc->ch, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (i % 64 == 63)
            async_yield();
    }
    return (void *)(uintptr_t)i;
}

static void *close_race_consumer(void *arg)
{
    struct close_race_worker *w = arg;
    struct close_race *rc = w->race;
    uint32_t v, n;

    for (n = 0; n <= rc->total; n++) {
        errno = 0;
        if (async_channel_receive(rc->ch, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (CHECK(v < rc->total))
            atomic_fetch_add(&rc->seen[v], 1);
    }
    return NULL;
}

static void *close_race_main(void *arg)
{
    struct close_race rc = {.producers = 4, .consumers = 4, .per_producer = 1000000};
    struct close_race_worker w[8];
    async_task *prod[4], *cons[4];
    uint32_t sent[4], p, i, bad = 0;
    uint64_t rng = 0xabcdef;
    unsigned k, n;
    long sends_ok = 0, sends_epipe = 0;

    rc.total = rc.producers * rc.per_producer;
    rc.ch = channel_new_checked(sizeof(uint32_t));
    rc.seen = calloc(rc.total, sizeof(*rc.seen));
    if (rc.seen == NULL)
        abort();
    for (k = 0; k < rc.consumers; k++) {
        w[k] = (struct close_race_worker){.race = &rc, .index = k};
        cons[k] = spawn(close_race_consumer, &w[k]);
    }
    for (k = 0; k < rc.producers; k++) {
        w[rc.consumers + k] = (struct close_race_worker){.race = &rc, .index = k};
        prod[k] = spawn(close_race_producer, &w[rc.consumers + k]);
    }
    n = 500 + (unsigned)(xorshift(&rng) % 3000);
    for (k = 0; k < n; k++)
        async_yield();
    async_channel_close(rc.ch); /* in mid-stream */
    for (k = 0; k < rc.producers; k++)
        sent[k] = (uint32_t)(uintptr_t)join(prod[k]);
    /* a send racing the close returns 0 or EPIPE: both must have happened */
    for (k = 0; k < rc.producers; k++) {
        sends_ok += sent[k];
        sends_epipe += sent[k] < rc.per_producer; /* its last send failed */
    }
    CHECK_BOTH_OUTCOMES(sends_ok, sends_epipe);
    for (k = 0; k < rc.consumers; k++)
        join(cons[k]);
    /* Exactly the sends that returned 0 were delivered, once each. */
    for (p = 0; p < rc.producers; p++) {
        for (i = 0; i < rc.per_producer; i++) {
            unsigned want = i < sent[p] ? 1 : 0;

            if (atomic_load(&rc.seen[p * rc.per_producer + i]) != want && bad++ == 0)
                failed(__FILE__, __LINE__, "producer %u sent %u values, but value %u was received %u times",
                       p, sent[p], i, (unsigned)atomic_load(&rc.seen[p * rc.per_producer + i]));
        }
    }
    CHECK_EQ(bad, 0);
    async_channel_free(rc.ch);
    free(rc.seen);
    return NULL;
}

static void channel_close_racing_sends_delivers_exactly_the_successful_sends_on_four_workers(void **state)
{
    RUN(4, close_race_main, NULL);
}

/* Receivers park with deadlines about to expire, so timer wake-ups race
 * sends from other workers; a timed-out receive takes nothing, so retrying
 * still receives every value exactly once. */
static void *deadline_race_consumer(void *arg)
{
    struct stress_worker *w = arg;
    struct stress *s = w->s;
    uint32_t v;
    long iter;

    for (iter = 0; iter < RETRY_LIMIT; iter++) {
        int rc;

        async_deadline(async_now_ms() + 1);
        errno = 0;
        rc = async_channel_receive(s->ch, &v);
        if (rc != 0 && errno == ETIMEDOUT)
            continue;
        if (rc != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (CHECK(v < s->total))
            atomic_fetch_add(&s->seen[v], 1);
    }
    async_deadline(-1);
    CHECK(iter < RETRY_LIMIT);
    return NULL;
}

static void *deadline_race_producer(void *arg)
{
    struct stress_worker *w = arg;
    struct stress *s = w->s;
    uint32_t i, v;

    for (i = 0; i < s->per_producer; i++) {
        v = w->index * s->per_producer + i;
        if (!CHECK_OK(async_channel_send(s->ch, &v)))
            break;
        if (i % 1000 == 999)
            async_sleep_ms(2); /* pauses long enough for receivers to time out */
        else if (i % 16 == 15)
            async_yield();
    }
    return NULL;
}

static void *deadline_race_main(void *arg)
{
    struct stress s = {.producers = 4, .consumers = 4, .per_producer = 10000};
    struct stress_worker w[8];
    async_task *t[8];
    unsigned i;

    s.total = s.producers * s.per_producer;
    s.ch = channel_new_checked(sizeof(uint32_t));
    s.seen = calloc(s.total, sizeof(*s.seen));
    if (s.seen == NULL)
        abort();
    for (i = 0; i < 8; i++) {
        bool consumer = i < s.consumers;

        w[i] = (struct stress_worker){.s = &s, .index = consumer ? i : i - s.consumers};
        t[i] = spawn(consumer ? deadline_race_consumer : deadline_race_producer, &w[i]);
    }
    for (i = s.consumers; i < 8; i++)
        join(t[i]);
    async_channel_close(s.ch);
    for (i = 0; i < s.consumers; i++)
        join(t[i]);
    check_seen_once(s.seen, s.total);
    async_channel_free(s.ch);
    free(s.seen);
    return NULL;
}

static void channel_receivers_with_expiring_deadlines_lose_no_element_on_four_workers(void **state)
{
    RUN(4, deadline_race_main, NULL);
}

/* ---- known runtime bugs ---- */

/* A cancel's wake must be ordered after everything the fiber did in its
 * previous park.  The receiver below is woken once by a send (and reads its
 * wake reason), then parks again and is cancelled by a fiber that has not
 * synchronised with it since: async_cancel's claim writes the new wake
 * reason, and only the fiber's relaxed "parking again" store separates that
 * write from the fiber's earlier read.  ThreadSanitizer reports the data
 * race whenever the receiver runs on another worker than the canceller; the
 * checks below pass on other builds.  The main fiber spins without yielding
 * (bounded) so that the idle worker steals the receiver. */
struct rewoken {
    async_channel *ch;
    atomic_int phase;           /* relaxed only: 1, 2 = about to receive */
    int err1, err2;
};

static void *rewoken_receiver(void *arg)
{
    struct rewoken *r = arg;
    int v;

    atomic_store_explicit(&r->phase, 1, memory_order_relaxed);
    errno = 0;
    r->err1 = async_channel_receive(r->ch, &v) == 0 ? 0 : errno; /* woken by a send */
    atomic_store_explicit(&r->phase, 2, memory_order_relaxed);
    errno = 0;
    r->err2 = async_channel_receive(r->ch, &v) == 0 ? 0 : errno; /* woken by the cancel */
    return NULL;
}

/* Busy-waits (the worker stays busy) until phase reaches `want`, then a
 * little longer so that the receiver gets to park. */
static void spin_until_phase(struct rewoken *r, int want)
{
    long i;

    for (i = 0; i < 200000000L; i++)
        if (atomic_load_explicit(&r->phase, memory_order_relaxed) >= want)
            break;
    for (i = 0; i < 200000; i++)
        atomic_signal_fence(memory_order_seq_cst);
}

static void *rewoken_main(void *arg)
{
    struct rewoken r;
    async_task *t;
    int round, v = 1;

    for (round = 0; round < 20; round++) {
        memset(&r, 0, sizeof(r));
        r.ch = channel_new_checked(sizeof(int));
        t = spawn(rewoken_receiver, &r);
        spin_until_phase(&r, 1);
        CHECK_OK(async_channel_send(r.ch, &v));
        spin_until_phase(&r, 2);
        CHECK_OK(async_cancel(t));
        join(t);
        CHECK_EQ(r.err1, 0);
        CHECK_EQ(r.err2, ECANCELED);
        async_channel_free(r.ch);
    }
    return NULL;
}

static void channel_cancel_of_receiver_woken_before_is_free_of_data_races(void **state)
{
    RUN(2, rewoken_main, NULL);
}


/* async_yield must let the other runnable fibers of this worker run; a fiber
 * spawned on a one-worker runtime is one.  Here the spawner yields and the
 * receiver should get to run and park. */
struct started {
    async_channel *ch;
    atomic_int started;
    int value;
};

static void *started_receiver(void *arg)
{
    struct started *s = arg;

    atomic_store(&s->started, 1);
    CHECK_OK(async_channel_receive(s->ch, &s->value));
    return NULL;
}

static void *yield_starts_main(void *arg)
{
    struct started s = {.ch = channel_new_checked(sizeof(int))};
    async_task *t = spawn(started_receiver, &s);
    int i, v = 1;

    for (i = 0; i < 10000 && atomic_load(&s.started) == 0; i++)
        async_yield();
    CHECK_EQ(atomic_load(&s.started), 1);
    CHECK_OK(async_channel_send(s.ch, &v));
    join(t); /* parks: the receiver finally runs */
    CHECK_EQ(s.value, 1);
    async_channel_free(s.ch);
    return NULL;
}

static void channel_spawned_receiver_runs_while_spawner_yields_on_one_worker(void **state)
{
    RUN(1, yield_starts_main, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(channel_new_with_elem_size_zero_returns_einval),
        cmocka_unit_test(channel_null_arguments_return_einval),
        cmocka_unit_test(channel_receive_outside_fiber_returns_eperm),
        cmocka_unit_test(channel_send_then_receive_returns_values_in_fifo_order),
        cmocka_unit_test(channel_fifo_order_survives_buffer_growth_while_wrapped),
        cmocka_unit_test(channel_copies_elements_by_value),
        cmocka_unit_test(channel_try_receive_on_empty_open_channel_returns_eagain),
        cmocka_unit_test(channel_try_receive_after_close_drains_then_returns_epipe),
        cmocka_unit_test(channel_receive_after_close_drains_then_returns_epipe),
        cmocka_unit_test(channel_send_after_close_returns_epipe),
        cmocka_unit_test(channel_free_releases_unreceived_elements),
        cmocka_unit_test(channel_close_wakes_parked_receivers_with_epipe),
        cmocka_unit_test(channel_close_wakes_parked_receivers_with_epipe_on_four_workers),
        cmocka_unit_test(channel_parked_receivers_are_served_in_park_order),
        cmocka_unit_test(channel_cancelled_parked_receiver_gets_ecanceled_and_loses_nothing),
        cmocka_unit_test(channel_send_skips_cancelled_receiver_still_queued),
        cmocka_unit_test(channel_receive_in_cancelled_fiber_fails_and_leaves_element),
        cmocka_unit_test(channel_receivers_cancelled_mid_stream_lose_no_element_on_one_worker),
        cmocka_unit_test(channel_receivers_cancelled_mid_stream_lose_no_element_on_four_workers),
        cmocka_unit_test(channel_receive_past_deadline_returns_etimedout),
        cmocka_unit_test(channel_receive_with_near_deadline_parks_then_returns_etimedout),
        cmocka_unit_test(channel_send_from_plain_thread_wakes_parked_fiber),
        cmocka_unit_test(channel_sends_from_plain_thread_wake_fiber_every_time),
        cmocka_unit_test(channel_stress_two_workers_delivers_every_value_exactly_once),
        cmocka_unit_test(channel_stress_four_workers_4x4_delivers_every_value_exactly_once),
        cmocka_unit_test(channel_stress_one_consumer_many_producers_keeps_each_producer_in_order),
        cmocka_unit_test(channel_close_racing_sends_delivers_exactly_the_successful_sends_on_four_workers),
        cmocka_unit_test(channel_receivers_with_expiring_deadlines_lose_no_element_on_four_workers),
        cmocka_unit_test(channel_spawned_receiver_runs_while_spawner_yields_on_one_worker),
        cmocka_unit_test(channel_cancel_of_receiver_woken_before_is_free_of_data_races),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
