/* tests/unit/test_ring — async_ring: the bounded MPMC ring buffer.
 *
 * Every test runs its body as the main fiber of a fresh runtime.  Fibers never
 * call cmocka's assertions (a failed one longjmps off the fiber's stack, maybe
 * from another thread): they record failures with CHECK*, and the test
 * asserts that none were recorded once async_runtime has returned.
 *
 * "Parked" is made deterministic on one worker with a gate (a second ring):
 * a fiber signals the gate right before the call that must park, and the
 * main fiber waits on the gate.  With one worker the signalling fiber keeps
 * running until it switches out, which it only does by parking, so when the
 * main fiber resumes the other one is parked.  The same tests on several
 * workers check the outcomes that hold whatever the interleaving.  No test
 * sleeps to synchronise, every loop is bounded, and a watchdog turns a lost
 * wake-up into a failure that names the test instead of a hang. */
#define _GNU_SOURCE
#include "harness.h"

/* ---- gate: "I am about to park" ---- */

struct gate {
    async_ring *r;
};

static void gate_init(struct gate *g)
{
    g->r = ring_new_checked(64, sizeof(int));
}

static void gate_fini(struct gate *g)
{
    async_ring_free(g->r);
}

static void gate_signal(struct gate *g)
{
    int one = 1;

    CHECK_OK(async_ring_send(g->r, &one));
}

static void gate_wait(struct gate *g)
{
    int v;

    CHECK_OK(async_ring_recv(g->r, &v));
}

/* A fiber that makes one send or one receive and records how it ended. */
struct op {
    async_ring *r;
    struct gate *gate;          /* signalled right before the call, or NULL */
    int64_t deadline;           /* set before the call when > 0 */
    int value;                  /* to send, or received */
    int err;                    /* 0 or the call's errno */
    atomic_int returned;        /* 1 once the call returned */
};

static void *op_send(void *arg)
{
    struct op *o = arg;
    int rc;

    if (o->deadline > 0)
        async_deadline(o->deadline);
    if (o->gate != NULL)
        gate_signal(o->gate);
    errno = 0;
    rc = async_ring_send(o->r, &o->value);
    o->err = rc == 0 ? 0 : errno;
    CHECK(rc == 0 || rc == -1);
    atomic_store(&o->returned, 1);
    return NULL;
}

static void *op_recv(void *arg)
{
    struct op *o = arg;
    int rc;

    if (o->deadline > 0)
        async_deadline(o->deadline);
    if (o->gate != NULL)
        gate_signal(o->gate);
    errno = 0;
    rc = async_ring_recv(o->r, &o->value);
    o->err = rc == 0 ? 0 : errno;
    CHECK(rc == 0 || rc == -1);
    atomic_store(&o->returned, 1);
    return NULL;
}

/* Spawns fn (op_send or op_recv) on o and waits until it has reached its
 * call (parked, on one worker). */
static async_task *spawn_op(struct op *o, async_fn fn, async_ring *r, struct gate *g, int value)
{
    async_task *t;

    memset(o, 0, sizeof(*o));
    o->r = r;
    o->gate = g;
    o->value = value;
    t = spawn(fn, o);
    gate_wait(g);
    return t;
}

static void fill(async_ring *r, int n)
{
    int i;

    for (i = 0; i < n; i++)
        CHECK_OK(async_ring_send(r, &i));
}

/* Receives exactly want[0..n-1], then EPIPE (the ring must be closed). */
static void expect_drain(async_ring *r, const int *want, int n)
{
    int i, v;

    for (i = 0; i < n; i++) {
        v = -1;
        if (!CHECK_OK(async_ring_recv(r, &v)) || !CHECK_EQ(v, want[i]))
            return;
    }
    CHECK_FAILS(async_ring_recv(r, &v), EPIPE);
}

/* ---- argument checks ---- */

static void *new_invalid_main(void *arg)
{
    async_ring *r;

    errno = 0;
    CHECK(async_ring_new(0, sizeof(int)) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(async_ring_new(4, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(async_ring_new(0, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    /* capacity * elem_size overflows: refused, not a tiny buffer. */
    errno = 0;
    CHECK(async_ring_new(SIZE_MAX / 2 + 1, 4) == NULL);
    CHECK(errno == EINVAL || errno == ENOMEM);
    r = async_ring_new(1, 1);
    CHECK(r != NULL);
    async_ring_free(r);
    return NULL;
}

static void ring_new_with_zero_capacity_or_elem_size_returns_einval(void **state)
{
    RUN(1, new_invalid_main, NULL);
}

static void *null_args_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    int v = 7;

    CHECK_FAILS(async_ring_send(NULL, &v), EINVAL);
    CHECK_FAILS(async_ring_send(r, NULL), EINVAL);
    CHECK_FAILS(async_ring_recv(NULL, &v), EINVAL);
    CHECK_FAILS(async_ring_recv(r, NULL), EINVAL);
    async_ring_close(NULL);
    async_ring_free(NULL);
    /* The ring is untouched by all that. */
    CHECK_OK(async_ring_send(r, &v));
    v = 0;
    CHECK_OK(async_ring_recv(r, &v));
    CHECK_EQ(v, 7);
    async_ring_free(r);
    return NULL;
}

static void ring_null_arguments_return_einval(void **state)
{
    RUN(1, null_args_main, NULL);
}

/* ---- EPERM: send and recv outside a fiber ---- */

struct thread_call {
    async_ring *r;
    int value;
    int send_rc, send_err, recv_rc, recv_err;
};

static void *thread_send_recv(void *arg)
{
    struct thread_call *c = arg;

    errno = 0;
    c->send_rc = async_ring_send(c->r, &c->value);
    c->send_err = errno;
    c->value = -1;
    errno = 0;
    c->recv_rc = async_ring_recv(c->r, &c->value);
    c->recv_err = errno;
    return NULL;
}

static void *eperm_thread_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    struct thread_call c = {.r = r, .value = 9};
    const int want[] = {5};
    pthread_t th;
    int v = 5;

    /* An element is there: EPERM must not consume it. */
    CHECK_OK(async_ring_send(r, &v));
    if (CHECK_EQ(pthread_create(&th, NULL, thread_send_recv, &c), 0))
        CHECK_EQ(pthread_join(th, NULL), 0); /* returns at once: nothing parks */
    CHECK_EQ(c.send_rc, -1);
    CHECK_EQ(c.send_err, EPERM);
    CHECK_EQ(c.recv_rc, -1);
    CHECK_EQ(c.recv_err, EPERM);
    CHECK_EQ(c.value, -1);
    async_ring_close(r);
    expect_drain(r, want, 1); /* the thread's send did not enqueue */
    async_ring_free(r);
    return NULL;
}

static void ring_send_and_recv_outside_fiber_return_eperm(void **state)
{
    async_ring *r = async_ring_new(2, sizeof(int));
    int v = 3;

    assert_non_null(r);
    /* Outside any runtime. */
    errno = 0;
    assert_int_equal(async_ring_send(r, &v), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(async_ring_recv(r, &v), -1);
    assert_int_equal(errno, EPERM);
    async_ring_free(r);
    /* From a plain thread while a runtime runs. */
    RUN(1, eperm_thread_main, NULL);
}

/* ---- FIFO ---- */

/* One fiber sends and receives at random, so the ring wraps many times. */
static void *wrap_main(void *arg)
{
    const int cap = 7;
    async_ring *r = ring_new_checked(cap, sizeof(uint32_t));
    uint32_t next_send = 0, next_recv = 0, v;
    uint64_t rng = 0xfeed;
    int step;

    for (step = 0; step < 50000; step++) {
        bool send = xorshift(&rng) % 2 == 0;

        if (send && next_send - next_recv < (uint32_t)cap) {
            CHECK_OK(async_ring_send(r, &next_send));
            next_send++;
        } else if (next_recv < next_send) {
            if (!CHECK_OK(async_ring_recv(r, &v)) || !CHECK_EQ(v, next_recv))
                break;
            next_recv++;
        }
    }
    async_ring_close(r);
    while (next_recv < next_send) {
        if (!CHECK_OK(async_ring_recv(r, &v)) || !CHECK_EQ(v, next_recv))
            break;
        next_recv++;
    }
    CHECK_FAILS(async_ring_recv(r, &v), EPIPE);
    async_ring_free(r);
    return NULL;
}

static void ring_fifo_order_survives_wraparound_on_one_worker(void **state)
{
    RUN(1, wrap_main, NULL);
}

/* A producer fiber and a consumer fiber through a small ring: both park
 * over and over. */
struct pipe {
    async_ring *r;
    uint32_t count;
};

static void *pipe_producer(void *arg)
{
    struct pipe *p = arg;
    uint32_t i;

    for (i = 0; i < p->count; i++)
        if (!CHECK_OK(async_ring_send(p->r, &i)))
            break;
    async_ring_close(p->r);
    return NULL;
}

static void *pipe_consumer(void *arg)
{
    struct pipe *p = arg;
    uint32_t i, v;

    for (i = 0; i <= p->count; i++) {
        errno = 0;
        if (async_ring_recv(p->r, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (!CHECK_EQ(v, i))
            break;
    }
    CHECK_EQ(i, p->count);
    return NULL;
}

static void *pipe_main(void *arg)
{
    struct pipe p = {.r = ring_new_checked(3, sizeof(uint32_t)), .count = 100000};
    async_task *c = spawn(pipe_consumer, &p), *pr = spawn(pipe_producer, &p);

    join(pr);
    join(c);
    async_ring_free(p.r);
    return NULL;
}

static void ring_producer_and_consumer_fibers_keep_fifo_order_on_one_worker(void **state)
{
    RUN(1, pipe_main, NULL);
}

static void ring_producer_and_consumer_fibers_keep_fifo_order_on_two_workers(void **state)
{
    RUN(2, pipe_main, NULL);
}

struct record {
    uint64_t id;
    char name[21];
    double weight;
};

static void *by_value_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(struct record));
    struct record in = {.id = 42, .name = "forty-two", .weight = 4.2}, out;

    CHECK_OK(async_ring_send(r, &in));
    memset(&in, 0xff, sizeof(in)); /* the ring holds its own copy */
    memset(&out, 0, sizeof(out));
    CHECK_OK(async_ring_recv(r, &out));
    CHECK_EQ(out.id, 42);
    CHECK(strcmp(out.name, "forty-two") == 0);
    CHECK(out.weight == 4.2);
    async_ring_free(r);
    return NULL;
}

static void ring_copies_elements_by_value(void **state)
{
    RUN(1, by_value_main, NULL);
}

/* ---- capacity ---- */

/* Sends 0, 1, ... publishing how many sends completed; signals the gate
 * when it starts and before every send that should find the ring full. */
struct counting_sender {
    async_ring *r;
    struct gate *gate;
    int capacity;
    atomic_int sent;
    int err;                    /* errno of the send that failed */
};

static void *counting_sender_fiber(void *arg)
{
    struct counting_sender *s = arg;
    int i;

    gate_signal(s->gate);
    for (i = 0; i < s->capacity + 2; i++) {
        if (i >= s->capacity)
            gate_signal(s->gate);
        errno = 0;
        if (async_ring_send(s->r, &i) != 0) {
            s->err = errno;
            break;
        }
        atomic_store(&s->sent, i + 1);
    }
    return NULL;
}

static void *capacity_main(void *arg)
{
    int cap = (int)(intptr_t)arg, i, want[64];
    struct counting_sender s = {.r = ring_new_checked((size_t)cap, sizeof(int)), .capacity = cap};
    struct gate g;
    async_task *t;
    int v;

    gate_init(&g);
    s.gate = &g;
    t = spawn(counting_sender_fiber, &s);
    gate_wait(&g); /* it started */
    gate_wait(&g); /* it made `cap` sends and is at the next one */
    CHECK_EQ(atomic_load(&s.sent), cap);
    /* Parked: however often we yield, it makes no progress. */
    for (i = 0; i < 1000; i++)
        async_yield();
    CHECK_EQ(atomic_load(&s.sent), cap);
    /* One slot frees: exactly one more send completes. */
    v = -1;
    CHECK_OK(async_ring_recv(s.r, &v));
    CHECK_EQ(v, 0);
    gate_wait(&g);
    CHECK_EQ(atomic_load(&s.sent), cap + 1);
    for (i = 0; i < 1000; i++)
        async_yield();
    CHECK_EQ(atomic_load(&s.sent), cap + 1);
    /* Closing fails its pending send; what it did send is still there. */
    async_ring_close(s.r);
    join(t);
    CHECK_EQ(s.err, EPIPE);
    CHECK_EQ(atomic_load(&s.sent), cap + 1);
    for (i = 0; i < cap; i++)
        want[i] = i + 1;
    expect_drain(s.r, want, cap);
    gate_fini(&g);
    async_ring_free(s.r);
    return NULL;
}

static void ring_sender_parks_after_exactly_capacity_sends_on_one_worker(void **state)
{
    RUN(1, capacity_main, (void *)(intptr_t)4);
    RUN(1, capacity_main, (void *)(intptr_t)1);
}

static void ring_sender_parks_after_exactly_capacity_sends_on_two_workers(void **state)
{
    RUN(2, capacity_main, (void *)(intptr_t)4);
    RUN(2, capacity_main, (void *)(intptr_t)1);
}

static void *recv_parks_main(void *arg)
{
    async_ring *r = ring_new_checked(4, sizeof(int));
    struct op o;
    struct gate g;
    async_task *t;
    int i, v = 77;

    gate_init(&g);
    t = spawn_op(&o, op_recv, r, &g, -1);
    for (i = 0; i < 1000; i++)
        async_yield();
    CHECK_EQ(atomic_load(&o.returned), 0); /* still parked: the ring is empty */
    CHECK_OK(async_ring_send(r, &v));
    for (i = 0; i < 1000 && atomic_load(&o.returned) == 0; i++)
        async_yield();
    CHECK_EQ(atomic_load(&o.returned), 1);
    join(t);
    CHECK_EQ(o.err, 0);
    CHECK_EQ(o.value, 77);
    async_ring_close(r);
    expect_drain(r, NULL, 0); /* handed over, not left in the ring */
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_recv_parks_while_empty(void **state)
{
    RUN(1, recv_parks_main, NULL);
}

/* ---- close ---- */

#define NOPS 3

static void *close_senders_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {0, 1};
    struct op o[NOPS];
    async_task *t[NOPS];
    struct gate g;
    int i;

    gate_init(&g);
    fill(r, 2);
    for (i = 0; i < NOPS; i++)
        t[i] = spawn_op(&o[i], op_send, r, &g, 100 + i);
    async_ring_close(r);
    for (i = 0; i < NOPS; i++) {
        join(t[i]);
        CHECK_EQ(o[i].err, EPIPE);
    }
    expect_drain(r, want, 2); /* none of the failed sends enqueued */
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_close_wakes_parked_senders_with_epipe(void **state)
{
    RUN(1, close_senders_main, NULL);
}

static void ring_close_wakes_parked_senders_with_epipe_on_four_workers(void **state)
{
    RUN(4, close_senders_main, NULL);
}

static void *close_receivers_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    struct op o[NOPS];
    async_task *t[NOPS];
    struct gate g;
    int i;

    gate_init(&g);
    for (i = 0; i < NOPS; i++)
        t[i] = spawn_op(&o[i], op_recv, r, &g, -1);
    async_ring_close(r);
    for (i = 0; i < NOPS; i++) {
        join(t[i]);
        CHECK_EQ(o[i].err, EPIPE);
    }
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_close_wakes_parked_receivers_with_epipe(void **state)
{
    RUN(1, close_receivers_main, NULL);
}

static void ring_close_wakes_parked_receivers_with_epipe_on_four_workers(void **state)
{
    RUN(4, close_receivers_main, NULL);
}

static void *drain_main(void *arg)
{
    async_ring *r = ring_new_checked(4, sizeof(int));
    const int want[] = {0, 1, 2};
    int v = 3;

    fill(r, 3);
    async_ring_close(r);
    CHECK_FAILS(async_ring_send(r, &v), EPIPE);
    expect_drain(r, want, 3);
    CHECK_FAILS(async_ring_recv(r, &v), EPIPE); /* and again, without parking */
    async_ring_free(r);
    return NULL;
}

static void ring_recv_after_close_drains_remaining_elements_then_returns_epipe(void **state)
{
    RUN(1, drain_main, NULL);
}

static void *send_closed_main(void *arg)
{
    async_ring *empty = ring_new_checked(2, sizeof(int));
    async_ring *full = ring_new_checked(2, sizeof(int));
    const int want[] = {0, 1};
    int v = 5;

    async_ring_close(empty);
    CHECK_FAILS(async_ring_send(empty, &v), EPIPE);
    CHECK_FAILS(async_ring_recv(empty, &v), EPIPE);
    /* A full closed ring fails the send at once instead of parking. */
    fill(full, 2);
    async_ring_close(full);
    CHECK_FAILS(async_ring_send(full, &v), EPIPE);
    expect_drain(full, want, 2);
    async_ring_free(empty);
    async_ring_free(full);
    return NULL;
}

static void ring_send_after_close_returns_epipe(void **state)
{
    RUN(1, send_closed_main, NULL);
}

/* ---- order among parked fibers ---- */

static void *sender_order_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {0, 1, 100, 101, 102};
    struct op o[NOPS];
    async_task *t[NOPS];
    struct gate g;
    int i;

    gate_init(&g);
    fill(r, 2);
    for (i = 0; i < NOPS; i++)
        t[i] = spawn_op(&o[i], op_send, r, &g, 100 + i); /* parks o[0], o[1], ... */
    for (i = 0; i < 2; i++) { /* each receive lets the oldest parked send in */
        int v = -1;

        CHECK_OK(async_ring_recv(r, &v));
        CHECK_EQ(v, want[i]);
    }
    for (i = 0; i < 2; i++) {
        join(t[i]);
        CHECK_EQ(o[i].err, 0);
    }
    CHECK_EQ(atomic_load(&o[2].returned), 0); /* the ring is full again */
    async_ring_close(r);
    join(t[2]);
    CHECK_EQ(o[2].err, EPIPE);
    expect_drain(r, want + 2, 2);
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_parked_senders_are_served_in_park_order(void **state)
{
    RUN(1, sender_order_main, NULL);
}

static void *receiver_order_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    struct op o[NOPS];
    async_task *t[NOPS];
    struct gate g;
    int i, v;

    gate_init(&g);
    for (i = 0; i < NOPS; i++)
        t[i] = spawn_op(&o[i], op_recv, r, &g, -1);
    for (i = 0; i < NOPS; i++) {
        v = 200 + i;
        CHECK_OK(async_ring_send(r, &v));
    }
    for (i = 0; i < NOPS; i++) {
        join(t[i]);
        CHECK_EQ(o[i].err, 0);
        CHECK_EQ(o[i].value, 200 + i);
    }
    async_ring_close(r);
    expect_drain(r, NULL, 0); /* each send went straight to a receiver */
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_parked_receivers_are_served_in_park_order(void **state)
{
    RUN(1, receiver_order_main, NULL);
}

/* ---- cancellation ---- */

static void *cancel_sender_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {0, 1};
    struct op o;
    struct gate g;
    async_task *t;

    gate_init(&g);
    fill(r, 2);
    t = spawn_op(&o, op_send, r, &g, 99);
    CHECK_EQ(atomic_load(&o.returned), 0);
    CHECK_OK(async_cancel(t));
    join(t);
    CHECK_EQ(o.err, ECANCELED);
    async_ring_close(r);
    expect_drain(r, want, 2); /* 99 was not enqueued */
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_cancelled_parked_sender_gets_ecanceled_and_did_not_enqueue(void **state)
{
    RUN(1, cancel_sender_main, NULL);
}

/* The cancelled sender is still queued (it has not run since the cancel)
 * when a slot frees: the receive must take the next sender's element. */
static void *cancel_sender_queued_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {1, 100};
    struct op o1, o2;
    struct gate g;
    async_task *t1, *t2;
    int v = -1;

    gate_init(&g);
    fill(r, 2);
    t1 = spawn_op(&o1, op_send, r, &g, 99);
    t2 = spawn_op(&o2, op_send, r, &g, 100);
    CHECK_OK(async_cancel(t1));
    CHECK_OK(async_ring_recv(r, &v));
    CHECK_EQ(v, 0);
    join(t1);
    join(t2);
    CHECK_EQ(o1.err, ECANCELED);
    CHECK_EQ(o2.err, 0);
    async_ring_close(r);
    expect_drain(r, want, 2);
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_recv_skips_cancelled_sender_still_queued(void **state)
{
    RUN(1, cancel_sender_queued_main, NULL);
}

static void *cancel_receiver_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    struct op o1, o2;
    struct gate g;
    async_task *t1, *t2;
    int v = 5;

    gate_init(&g);
    t1 = spawn_op(&o1, op_recv, r, &g, -1);
    t2 = spawn_op(&o2, op_recv, r, &g, -1);
    CHECK_OK(async_cancel(t1)); /* still queued when the send comes */
    CHECK_OK(async_ring_send(r, &v));
    join(t1);
    join(t2);
    CHECK_EQ(o1.err, ECANCELED);
    CHECK_EQ(o2.err, 0);
    CHECK_EQ(o2.value, 5);
    /* Nothing was lost to the cancelled one, and nothing is left behind. */
    v = 6;
    CHECK_OK(async_ring_send(r, &v));
    v = 0;
    CHECK_OK(async_ring_recv(r, &v));
    CHECK_EQ(v, 6);
    async_ring_close(r);
    expect_drain(r, NULL, 0);
    gate_fini(&g);
    async_ring_free(r);
    return NULL;
}

static void ring_cancelled_parked_receiver_gets_ecanceled_and_loses_nothing(void **state)
{
    RUN(1, cancel_receiver_main, NULL);
}

static void *cancelled_early_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {5};
    struct op s = {.r = r, .value = 99}, rx = {.r = r, .value = -1};
    async_task *t;
    int v = 5;

    /* Room to send, but the fiber was cancelled before it started. */
    t = spawn(op_send, &s);
    CHECK_OK(async_cancel(t));
    join(t);
    CHECK_EQ(atomic_load(&s.returned), 1);
    CHECK_EQ(s.err, ECANCELED);
    /* An element to take, but the fiber was cancelled before it started. */
    CHECK_OK(async_ring_send(r, &v));
    t = spawn(op_recv, &rx);
    CHECK_OK(async_cancel(t));
    join(t);
    CHECK_EQ(rx.err, ECANCELED);
    CHECK_EQ(rx.value, -1);
    async_ring_close(r);
    expect_drain(r, want, 1);
    async_ring_free(r);
    return NULL;
}

static void ring_calls_in_cancelled_fiber_fail_without_side_effects(void **state)
{
    RUN(1, cancelled_early_main, NULL);
}

/* Races: fibers cancelled at random moments, parked or not. */
struct race {
    async_ring *r;
    unsigned producers, consumers;
    uint32_t per_producer, total;
    atomic_uchar *seen;
    async_task **victims;       /* the fibers the canceller cancels */
    unsigned nvictims;
    _Atomic int64_t producers_pause_until, consumers_pause_until; /* async_now_ms */
};

struct race_worker {
    struct race *race;
    unsigned index;
};

/* Returns how many of its values it sent. */
static void *race_producer(void *arg)
{
    struct race_worker *w = arg;
    struct race *rc = w->race;
    uint32_t i, v;

    for (i = 0; i < rc->per_producer; i++) {
        v = w->index * rc->per_producer + i;
        errno = 0;
        if (async_ring_send(rc->r, &v) != 0) {
            CHECK_EQ(errno, ECANCELED);
            break;
        }
    }
    return (void *)(uintptr_t)i;
}

/* Returns how many values it received. */
static void *race_consumer(void *arg)
{
    struct race_worker *w = arg;
    struct race *rc = w->race;
    uint32_t v;
    uintptr_t n;

    for (n = 0; n <= rc->total; n++) {
        errno = 0;
        if (async_ring_recv(rc->r, &v) != 0) {
            CHECK(errno == ECANCELED || errno == EPIPE);
            break;
        }
        if (CHECK(v < rc->total))
            atomic_fetch_add(&rc->seen[v], 1);
    }
    return (void *)n;
}

static void *race_canceller(void *arg)
{
    struct race *rc = arg;
    uint64_t rng = 0xc0ffee;
    unsigned k, i, n;

    for (k = 0; k < rc->nvictims; k++) {
        n = (unsigned)(xorshift(&rng) % 3000);
        for (i = 0; i < n; i++)
            async_yield();
        CHECK_OK(async_cancel(rc->victims[k]));
    }
    return NULL;
}

static void race_init(struct race *rc)
{
    rc->total = rc->producers * rc->per_producer;
    rc->r = ring_new_checked(8, sizeof(uint32_t));
    rc->seen = calloc(rc->total, sizeof(*rc->seen));
    if (rc->seen == NULL)
        abort();
}

static void race_fini(struct race *rc)
{
    async_ring_free(rc->r);
    free(rc->seen);
}

/* Producers are cancelled: exactly the sends that returned 0 come out. */
static void *cancel_senders_race_main(void *arg)
{
    struct race rc = {.producers = 4, .consumers = 3, .per_producer = 20000};
    struct race_worker w[7];
    async_task *prod[4], *cons[3], *canceller;
    uint32_t sent[4], p, i, bad = 0;
    unsigned k;

    race_init(&rc);
    for (k = 0; k < rc.consumers; k++) {
        w[k] = (struct race_worker){.race = &rc, .index = k};
        cons[k] = spawn(race_consumer, &w[k]);
    }
    for (k = 0; k < rc.producers; k++) {
        w[rc.consumers + k] = (struct race_worker){.race = &rc, .index = k};
        prod[k] = spawn(race_producer, &w[rc.consumers + k]);
    }
    rc.victims = prod;
    rc.nvictims = rc.producers;
    canceller = spawn(race_canceller, &rc);
    join(canceller);
    for (k = 0; k < rc.producers; k++)
        sent[k] = (uint32_t)(uintptr_t)join(prod[k]);
    async_ring_close(rc.r);
    for (k = 0; k < rc.consumers; k++)
        join(cons[k]);
    for (p = 0; p < rc.producers; p++) {
        for (i = 0; i < rc.per_producer; i++) {
            unsigned want = i < sent[p] ? 1 : 0;

            if (atomic_load(&rc.seen[p * rc.per_producer + i]) != want && bad++ == 0)
                failed(__FILE__, __LINE__, "producer %u sent %u values, but value %u was received %u times",
                       p, sent[p], i, (unsigned)atomic_load(&rc.seen[p * rc.per_producer + i]));
        }
    }
    CHECK_EQ(bad, 0);
    race_fini(&rc);
    return NULL;
}

static void ring_senders_cancelled_mid_stream_enqueue_only_successful_sends_on_four_workers(void **state)
{
    RUN(4, cancel_senders_race_main, NULL);
}

static void ring_senders_cancelled_mid_stream_enqueue_only_successful_sends_on_one_worker(void **state)
{
    RUN(1, cancel_senders_race_main, NULL);
}

/* Consumers are cancelled: what they did not take is still to be had. */
static void *cancel_receivers_race_main(void *arg)
{
    struct race rc = {.producers = 4, .consumers = 6, .per_producer = 10000};
    struct race_worker w[10];
    async_task *prod[4], *cons[6], *canceller;
    uintptr_t received = 0;
    uint32_t v;
    unsigned k;

    race_init(&rc);
    for (k = 0; k < rc.consumers; k++) {
        w[k] = (struct race_worker){.race = &rc, .index = k};
        cons[k] = spawn(race_consumer, &w[k]);
    }
    for (k = 0; k < rc.producers; k++) {
        w[rc.consumers + k] = (struct race_worker){.race = &rc, .index = k};
        prod[k] = spawn(race_producer, &w[rc.consumers + k]);
    }
    rc.victims = cons;
    rc.nvictims = rc.consumers;
    canceller = spawn(race_canceller, &rc);
    join(canceller);
    for (k = 0; k < rc.consumers; k++)
        received += (uintptr_t)join(cons[k]);
    /* Every consumer is gone; take the rest here (producers may be parked
     * on the full ring). */
    for (; received < rc.total; received++) {
        if (!CHECK_OK(async_ring_recv(rc.r, &v)))
            break;
        if (CHECK(v < rc.total))
            atomic_fetch_add(&rc.seen[v], 1);
    }
    for (k = 0; k < rc.producers; k++)
        CHECK_EQ((uintptr_t)join(prod[k]), rc.per_producer);
    async_ring_close(rc.r);
    CHECK_FAILS(async_ring_recv(rc.r, &v), EPIPE); /* nothing extra */
    check_seen_once(rc.seen, rc.total);
    race_fini(&rc);
    return NULL;
}

static void ring_receivers_cancelled_mid_stream_lose_no_element_on_four_workers(void **state)
{
    RUN(4, cancel_receivers_race_main, NULL);
}

static void ring_receivers_cancelled_mid_stream_lose_no_element_on_one_worker(void **state)
{
    RUN(1, cancel_receivers_race_main, NULL);
}

/* ---- deadlines ---- */

static void *past_deadline_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {8};
    int64_t dl = async_now_ms() - 1;
    int v = 8;

    CHECK_EQ(async_deadline(dl), -1);
    CHECK_FAILS(async_ring_recv(r, &v), ETIMEDOUT);
    /* Past the deadline even a send with room fails, and does not enqueue. */
    CHECK_FAILS(async_ring_send(r, &v), ETIMEDOUT);
    CHECK_EQ(async_deadline(-1), dl);
    CHECK_OK(async_ring_send(r, &v));
    async_deadline(dl);
    CHECK_FAILS(async_ring_recv(r, &v), ETIMEDOUT); /* even with an element */
    async_deadline(-1);
    async_ring_close(r);
    expect_drain(r, want, 1);
    async_ring_free(r);
    return NULL;
}

static void ring_calls_past_deadline_return_etimedout(void **state)
{
    RUN(1, past_deadline_main, NULL);
}

static void *near_deadline_main(void *arg)
{
    async_ring *r = ring_new_checked(2, sizeof(int));
    const int want[] = {0, 1};
    struct op o = {.r = r, .value = -1};
    async_task *t;
    int64_t dl;
    int v = 99;

    /* The main fiber parks in recv until its deadline. */
    dl = async_now_ms() + 20;
    async_deadline(dl);
    CHECK_FAILS(async_ring_recv(r, &v), ETIMEDOUT);
    CHECK(async_now_ms() >= dl); /* not before the deadline */
    CHECK_EQ(async_deadline(-1), dl);

    /* A spawned receiver times out while the worker has nothing else to
     * do; its queue entry must not swallow the next element. */
    o.deadline = async_now_ms() + 20;
    t = spawn(op_recv, &o);
    join(t);
    CHECK_EQ(o.err, ETIMEDOUT);
    fill(r, 2);

    /* A send into the full ring parks until the deadline and enqueues
     * nothing. */
    dl = async_now_ms() + 20;
    async_deadline(dl);
    v = 99;
    CHECK_FAILS(async_ring_send(r, &v), ETIMEDOUT);
    CHECK(async_now_ms() >= dl);
    async_deadline(-1);
    async_ring_close(r);
    expect_drain(r, want, 2);
    async_ring_free(r);
    return NULL;
}

static void ring_calls_with_near_deadline_park_then_return_etimedout(void **state)
{
    RUN(1, near_deadline_main, NULL);
}

/* ---- races with close and with expiring deadlines ---- */

#define RETRY_LIMIT 10000000L   /* bounds the retry loops; never reached */

/* Returns how many of its values were sent before the close. */
static void *close_race_producer(void *arg)
{
    struct race_worker *w = arg;
    struct race *rc = w->race;
    uint32_t i, v;

    for (i = 0; i < rc->per_producer; i++) {
        v = w->index * rc->per_producer + i;
        errno = 0;
        if (async_ring_send(rc->r, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
    }
    return (void *)(uintptr_t)i;
}

/* Closed in mid-stream, with senders parked on the full ring: exactly the
 * sends that returned 0 come out, once each. */
static void *close_race_main(void *arg)
{
    struct race rc = {.producers = 4, .consumers = 4, .per_producer = 1000000};
    struct race_worker w[8];
    async_task *prod[4], *cons[4];
    uint32_t sent[4], p, i, bad = 0;
    uint64_t rng = 0xabcdef;
    unsigned k, n;
    long sends_ok = 0, sends_epipe = 0;

    race_init(&rc);
    for (k = 0; k < rc.consumers; k++) {
        w[k] = (struct race_worker){.race = &rc, .index = k};
        cons[k] = spawn(race_consumer, &w[k]);
    }
    for (k = 0; k < rc.producers; k++) {
        w[rc.consumers + k] = (struct race_worker){.race = &rc, .index = k};
        prod[k] = spawn(close_race_producer, &w[rc.consumers + k]);
    }
    n = 500 + (unsigned)(xorshift(&rng) % 3000);
    for (k = 0; k < n; k++)
        async_yield();
    async_ring_close(rc.r);
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
    for (p = 0; p < rc.producers; p++) {
        for (i = 0; i < rc.per_producer; i++) {
            unsigned want = i < sent[p] ? 1 : 0;

            if (atomic_load(&rc.seen[p * rc.per_producer + i]) != want && bad++ == 0)
                failed(__FILE__, __LINE__, "producer %u sent %u values, but value %u was received %u times",
                       p, sent[p], i, (unsigned)atomic_load(&rc.seen[p * rc.per_producer + i]));
        }
    }
    CHECK_EQ(bad, 0);
    race_fini(&rc);
    return NULL;
}

static void ring_close_racing_sends_delivers_exactly_the_successful_sends_on_four_workers(void **state)
{
    RUN(4, close_race_main, NULL);
}

/* Senders and receivers park with deadlines about to expire, so timer
 * wake-ups race hand-offs from other workers.  A timed-out send enqueued
 * nothing and a timed-out receive took nothing, so retrying until success
 * delivers every value exactly once (a timed-out send that did enqueue
 * shows up twice). */
/* Every side pauses together now and then, long enough for the other
 * side's deadlines to expire. */
static void pause_side(_Atomic int64_t *until, bool leader, uint32_t done)
{
    int64_t now = async_now_ms(), u;

    if (leader && done % 1000 == 999)
        atomic_store(until, now + 3);
    u = atomic_load(until);
    if (now < u) {
        async_deadline(-1);
        async_sleep_ms((uint64_t)(u - now));
    }
}

static void *deadline_race_producer(void *arg)
{
    struct race_worker *w = arg;
    struct race *rc = w->race;
    uint32_t i, v;
    long iter = 0;

    for (i = 0; i < rc->per_producer && iter < RETRY_LIMIT; i++) {
        v = w->index * rc->per_producer + i;
        for (; iter < RETRY_LIMIT; iter++) {
            int r;

            async_deadline(async_now_ms() + 1);
            errno = 0;
            r = async_ring_send(rc->r, &v);
            if (r == 0)
                break;
            if (!CHECK_EQ(errno, ETIMEDOUT))
                iter = RETRY_LIMIT;
        }
        pause_side(&rc->producers_pause_until, w->index == 0, i);
    }
    async_deadline(-1);
    CHECK(iter < RETRY_LIMIT);
    return NULL;
}

static void *deadline_race_consumer(void *arg)
{
    struct race_worker *w = arg;
    struct race *rc = w->race;
    uint32_t v, got = 0;
    long iter;

    for (iter = 0; iter < RETRY_LIMIT; iter++) {
        int r;

        async_deadline(async_now_ms() + 1);
        errno = 0;
        r = async_ring_recv(rc->r, &v);
        if (r != 0 && errno == ETIMEDOUT)
            continue;
        if (r != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (CHECK(v < rc->total))
            atomic_fetch_add(&rc->seen[v], 1);
        pause_side(&rc->consumers_pause_until, w->index == 0, got++);
    }
    async_deadline(-1);
    CHECK(iter < RETRY_LIMIT);
    return NULL;
}

static void *deadline_race_main(void *arg)
{
    struct race rc = {.producers = 4, .consumers = 4, .per_producer = 10000};
    struct race_worker w[8];
    async_task *t[8];
    unsigned i;

    race_init(&rc);
    for (i = 0; i < 8; i++) {
        bool consumer = i < rc.consumers;

        w[i] = (struct race_worker){.race = &rc, .index = consumer ? i : i - rc.consumers};
        t[i] = spawn(consumer ? deadline_race_consumer : deadline_race_producer, &w[i]);
    }
    for (i = rc.consumers; i < 8; i++)
        join(t[i]);
    async_ring_close(rc.r);
    for (i = 0; i < rc.consumers; i++)
        join(t[i]);
    check_seen_once(rc.seen, rc.total);
    race_fini(&rc);
    return NULL;
}

static void ring_senders_and_receivers_with_expiring_deadlines_lose_nothing_on_four_workers(void **state)
{
    RUN(4, deadline_race_main, NULL);
}

/* ---- stress: exactly once, per-producer order ---- */

#define MAX_PRODUCERS 16

struct stress {
    async_ring *r;
    size_t capacity;
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
        if (!CHECK_OK(async_ring_send(s->r, &v)))
            break;
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
        if (async_ring_recv(s->r, &v) != 0) {
            CHECK_EQ(errno, EPIPE);
            break;
        }
        if (!CHECK(v < s->total))
            continue;
        atomic_fetch_add(&s->seen[v], 1);
        p = v / s->per_producer;
        seq = v % s->per_producer;
        /* One producer's values reach any one consumer in order. */
        if (last[p] != UINT32_MAX && seq <= last[p])
            failed(__FILE__, __LINE__, "consumer %u got producer %u's value %u after %u",
                   w->index, p, seq, last[p]);
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
    s->r = ring_new_checked(s->capacity, sizeof(uint32_t));
    s->seen = calloc(s->total, sizeof(*s->seen));
    w = calloc(n, sizeof(*w));
    tasks = calloc(n, sizeof(*tasks));
    if (s->seen == NULL || w == NULL || tasks == NULL)
        abort();
    for (i = 0; i < n; i++) {
        bool consumer = i < s->consumers;

        w[i] = (struct stress_worker){.s = s, .index = consumer ? i : i - s->consumers};
        tasks[i] = spawn(consumer ? stress_consumer : stress_producer, &w[i]);
    }
    for (i = s->consumers; i < n; i++)
        join(tasks[i]);
    async_ring_close(s->r);
    for (i = 0; i < s->consumers; i++)
        received += (uintptr_t)join(tasks[i]);
    CHECK_EQ(received, s->total);
    check_seen_once(s->seen, s->total);
    async_ring_free(s->r);
    free(s->seen);
    free(w);
    free(tasks);
    return NULL;
}

static void ring_stress_two_workers_delivers_every_value_once_in_producer_order(void **state)
{
    struct stress s = {.capacity = 16, .producers = 3, .consumers = 2, .per_producer = 40000};

    RUN(2, stress_main, &s);
}

static void ring_stress_four_workers_4x4_delivers_every_value_once_in_producer_order(void **state)
{
    struct stress s = {.capacity = 16, .producers = 4, .consumers = 4, .per_producer = 50000};

    RUN(4, stress_main, &s);
}

static void ring_stress_capacity_one_delivers_every_value_once_in_producer_order(void **state)
{
    struct stress s = {.capacity = 1, .producers = 4, .consumers = 4, .per_producer = 10000};

    RUN(4, stress_main, &s);
}

/* ---- known runtime bugs ---- */

/* async_yield must let the other runnable fibers of this worker run; a fiber
 * spawned on a one-worker runtime is one.  The spawner yields while the
 * sender should fill the ring. */
struct filler {
    async_ring *r;
    int capacity;
    atomic_int sent;
};

static void *filler_fiber(void *arg)
{
    struct filler *f = arg;
    int i;

    for (i = 0; i <= f->capacity; i++) {
        if (!CHECK_OK(async_ring_send(f->r, &i)))
            break;
        atomic_store(&f->sent, i + 1);
    }
    return NULL;
}

static void *yield_fills_main(void *arg)
{
    struct filler f = {.r = ring_new_checked(4, sizeof(int)), .capacity = 4};
    async_task *t = spawn(filler_fiber, &f);
    int i, v;

    for (i = 0; i < 10000 && atomic_load(&f.sent) < f.capacity; i++)
        async_yield();
    CHECK_EQ(atomic_load(&f.sent), f.capacity);
    for (i = 0; i <= f.capacity; i++) { /* parks: the sender finally runs */
        if (!CHECK_OK(async_ring_recv(f.r, &v)) || !CHECK_EQ(v, i))
            break;
    }
    join(t);
    async_ring_free(f.r);
    return NULL;
}

static void ring_spawned_sender_fills_capacity_while_spawner_yields_on_one_worker(void **state)
{
    RUN(1, yield_fills_main, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_new_with_zero_capacity_or_elem_size_returns_einval),
        cmocka_unit_test(ring_null_arguments_return_einval),
        cmocka_unit_test(ring_send_and_recv_outside_fiber_return_eperm),
        cmocka_unit_test(ring_fifo_order_survives_wraparound_on_one_worker),
        cmocka_unit_test(ring_producer_and_consumer_fibers_keep_fifo_order_on_one_worker),
        cmocka_unit_test(ring_producer_and_consumer_fibers_keep_fifo_order_on_two_workers),
        cmocka_unit_test(ring_copies_elements_by_value),
        cmocka_unit_test(ring_sender_parks_after_exactly_capacity_sends_on_one_worker),
        cmocka_unit_test(ring_sender_parks_after_exactly_capacity_sends_on_two_workers),
        cmocka_unit_test(ring_recv_parks_while_empty),
        cmocka_unit_test(ring_close_wakes_parked_senders_with_epipe),
        cmocka_unit_test(ring_close_wakes_parked_senders_with_epipe_on_four_workers),
        cmocka_unit_test(ring_close_wakes_parked_receivers_with_epipe),
        cmocka_unit_test(ring_close_wakes_parked_receivers_with_epipe_on_four_workers),
        cmocka_unit_test(ring_recv_after_close_drains_remaining_elements_then_returns_epipe),
        cmocka_unit_test(ring_send_after_close_returns_epipe),
        cmocka_unit_test(ring_parked_senders_are_served_in_park_order),
        cmocka_unit_test(ring_parked_receivers_are_served_in_park_order),
        cmocka_unit_test(ring_cancelled_parked_sender_gets_ecanceled_and_did_not_enqueue),
        cmocka_unit_test(ring_recv_skips_cancelled_sender_still_queued),
        cmocka_unit_test(ring_cancelled_parked_receiver_gets_ecanceled_and_loses_nothing),
        cmocka_unit_test(ring_calls_in_cancelled_fiber_fail_without_side_effects),
        cmocka_unit_test(ring_senders_cancelled_mid_stream_enqueue_only_successful_sends_on_one_worker),
        cmocka_unit_test(ring_senders_cancelled_mid_stream_enqueue_only_successful_sends_on_four_workers),
        cmocka_unit_test(ring_receivers_cancelled_mid_stream_lose_no_element_on_one_worker),
        cmocka_unit_test(ring_receivers_cancelled_mid_stream_lose_no_element_on_four_workers),
        cmocka_unit_test(ring_calls_past_deadline_return_etimedout),
        cmocka_unit_test(ring_calls_with_near_deadline_park_then_return_etimedout),
        cmocka_unit_test(ring_close_racing_sends_delivers_exactly_the_successful_sends_on_four_workers),
        cmocka_unit_test(ring_senders_and_receivers_with_expiring_deadlines_lose_nothing_on_four_workers),
        cmocka_unit_test(ring_stress_two_workers_delivers_every_value_once_in_producer_order),
        cmocka_unit_test(ring_stress_four_workers_4x4_delivers_every_value_once_in_producer_order),
        cmocka_unit_test(ring_stress_capacity_one_delivers_every_value_once_in_producer_order),
        cmocka_unit_test(ring_spawned_sender_fills_capacity_while_spawner_yields_on_one_worker),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
