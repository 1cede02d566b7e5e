/* The scheduler's queues on their own, hammered by real threads: the
 * stealable fresh ring (one owner, several thieves) and the MPSC mailbox
 * (several producers, one consumer).  Every element must come out exactly
 * once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "sched/queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Fake tasks: the queues only move pointers; the fresh ring never looks at
 * them and the mailbox uses a node at offset 0. */
struct item {
    struct async__node node;
    long id;
};

static void fresh_pop_is_fifo_and_push_stops_at_capacity(void **state)
{
    struct async__fresh *q = calloc(1, sizeof(*q));
    struct item items[ASYNC__FRESH_CAP + 1];
    unsigned i;

    async__fresh_init(q);
    for (i = 0; i < ASYNC__FRESH_CAP; i++)
        assert_true(async__fresh_push(q, (struct async_task *)&items[i]));
    assert_false(async__fresh_push(q, (struct async_task *)&items[ASYNC__FRESH_CAP]));
    assert_int_equal(async__fresh_len(q), ASYNC__FRESH_CAP);
    for (i = 0; i < ASYNC__FRESH_CAP; i++)
        assert_ptr_equal(async__fresh_pop(q), &items[i]);
    assert_null(async__fresh_pop(q));
    free(q);
}

static void fresh_steal_takes_half_and_respects_the_minimum(void **state)
{
    struct async__fresh *victim = calloc(1, sizeof(*victim)), *into = calloc(1, sizeof(*into));
    struct item items[10];
    struct async_task *t;
    unsigned i;

    async__fresh_init(victim);
    async__fresh_init(into);
    for (i = 0; i < 3; i++)
        async__fresh_push(victim, (struct async_task *)&items[i]);
    assert_null(async__fresh_steal(victim, into, 4));
    for (; i < 10; i++)
        async__fresh_push(victim, (struct async_task *)&items[i]);
    t = async__fresh_steal(victim, into, 4);
    assert_ptr_equal(t, &items[4]); /* the oldest five; the last is returned */
    assert_int_equal(async__fresh_len(into), 4);
    assert_int_equal(async__fresh_len(victim), 5);
    for (i = 0; i < 4; i++)
        assert_ptr_equal(async__fresh_pop(into), &items[i]);
    for (i = 5; i < 10; i++)
        assert_ptr_equal(async__fresh_pop(victim), &items[i]);
    free(victim);
    free(into);
}

#define STRESS_ITEMS 2000000L
#define THIEVES 3

static struct async__fresh *owner_q;
static struct item *stress_items;
static _Atomic unsigned char *seen;
static atomic_long taken, stolen, taken_twice;
static atomic_int owner_done;

/* Runs on the thieves' threads too: counts, never asserts (a cmocka
 * assertion would longjmp to the main thread's stack). */
static void mark(struct async_task *t)
{
    long id = ((struct item *)t)->id;

    if (atomic_fetch_add(&seen[id], 1) != 0)
        atomic_fetch_add(&taken_twice, 1);
    atomic_fetch_add(&taken, 1);
}

static void *thief(void *arg)
{
    struct async__fresh *mine = calloc(1, sizeof(*mine));
    struct async_task *t;

    async__fresh_init(mine);
    while (!atomic_load(&owner_done) || async__fresh_len(owner_q) != 0) {
        t = async__fresh_steal(owner_q, mine, 1);
        if (t == NULL)
            continue;
        mark(t);
        atomic_fetch_add(&stolen, 1);
        while ((t = async__fresh_pop(mine)) != NULL) {
            mark(t);
            atomic_fetch_add(&stolen, 1);
        }
    }
    free(mine);
    return arg;
}

static void fresh_owner_and_thieves_take_every_item_exactly_once(void **state)
{
    pthread_t th[THIEVES];
    long next = 0;
    int i;

    owner_q = calloc(1, sizeof(*owner_q));
    stress_items = calloc(STRESS_ITEMS, sizeof(*stress_items));
    seen = calloc(STRESS_ITEMS, 1);
    async__fresh_init(owner_q);
    for (i = 0; i < THIEVES; i++)
        pthread_create(&th[i], NULL, thief, NULL);
    while (next < STRESS_ITEMS) {
        struct async_task *t;

        /* Push a burst, then pop a little, as a spawning fiber would. */
        while (next < STRESS_ITEMS) {
            stress_items[next].id = next;
            if (!async__fresh_push(owner_q, (struct async_task *)&stress_items[next]))
                break;
            next++;
        }
        if ((t = async__fresh_pop(owner_q)) != NULL)
            mark(t);
    }
    atomic_store(&owner_done, 1);
    {
        struct async_task *t;

        while ((t = async__fresh_pop(owner_q)) != NULL)
            mark(t);
    }
    for (i = 0; i < THIEVES; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&taken_twice), 0);
    assert_int_equal(atomic_load(&taken), STRESS_ITEMS);
    print_message("stolen by thieves: %ld of %ld\n", atomic_load(&stolen), STRESS_ITEMS);
    free(owner_q);
    free(stress_items);
    free((void *)seen);
}

#define PRODUCERS 4
#define PER_PRODUCER 500000L

static struct async__mpsc mailbox;
static struct item *mpsc_items;

static void *producer(void *arg)
{
    long p = (long)(intptr_t)arg, i;

    for (i = 0; i < PER_PRODUCER; i++) {
        struct item *it = &mpsc_items[p * PER_PRODUCER + i];

        it->id = p * PER_PRODUCER + i;
        async__mpsc_push(&mailbox, &it->node);
    }
    return NULL;
}

static void mpsc_many_producers_one_consumer_exactly_once_in_producer_order(void **state)
{
    pthread_t th[PRODUCERS];
    long last[PRODUCERS], got = 0;
    long p;

    mpsc_items = calloc(PRODUCERS * PER_PRODUCER, sizeof(*mpsc_items));
    async__mpsc_init(&mailbox);
    assert_true(async__mpsc_empty(&mailbox));
    for (p = 0; p < PRODUCERS; p++) {
        last[p] = -1;
        pthread_create(&th[p], NULL, producer, (void *)(intptr_t)p);
    }
    while (got < PRODUCERS * PER_PRODUCER) {
        struct item *it = (struct item *)async__mpsc_pop(&mailbox);
        long prod, seq;

        if (it == NULL)
            continue;
        prod = it->id / PER_PRODUCER;
        seq = it->id % PER_PRODUCER;
        assert_int_equal(seq, last[prod] + 1); /* per-producer FIFO, no loss */
        last[prod] = seq;
        got++;
    }
    for (p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    assert_null(async__mpsc_pop(&mailbox));
    assert_true(async__mpsc_empty(&mailbox));
    free(mpsc_items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fresh_pop_is_fifo_and_push_stops_at_capacity),
        cmocka_unit_test(fresh_steal_takes_half_and_respects_the_minimum),
        cmocka_unit_test(fresh_owner_and_thieves_take_every_item_exactly_once),
        cmocka_unit_test(mpsc_many_producers_one_consumer_exactly_once_in_producer_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
