/* The stack switch alone: entry, alignment, callee-saved registers, many
 * round trips, and a context that switches into a third one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "context/context.h"

#define STACK (64 * 1024)

static struct async__ctx main_ctx, a_ctx, b_ctx;
static long counter;
static uintptr_t entry_sp;

static void entry_count(void *arg)
{
    long n = (long)(intptr_t)arg, i;

    for (i = 0; i < n; i++) {
        counter++;
        async__ctx_switch(&a_ctx, &main_ctx);
    }
    for (;;)
        async__ctx_switch(&a_ctx, &main_ctx);
}

static void context_switch_round_trips_run_the_entry_with_its_argument(void **state)
{
    void *stack = malloc(STACK);
    long i;

    counter = 0;
    async__ctx_make(&a_ctx, stack, STACK, entry_count, (void *)(intptr_t)100000);
    for (i = 0; i < 100000; i++) {
        async__ctx_switch(&main_ctx, &a_ctx);
        assert_int_equal(counter, i + 1);
    }
    free(stack);
}

static void entry_align(void *arg)
{
    volatile char probe __attribute__((aligned(16)));

    (void)arg;
    probe = 1;
    entry_sp = (uintptr_t)&probe;
    /* A frame the compiler believes 16-byte aligned must really be. */
    entry_sp = (uintptr_t)__builtin_frame_address(0);
    async__ctx_switch(&a_ctx, &main_ctx);
    abort();
}

static void context_entry_frame_is_aligned_for_the_abi(void **state)
{
    void *stack = malloc(STACK + 64);
    size_t off;

    for (off = 0; off < 64; off += 8) {
        entry_sp = 0;
        async__ctx_make(&a_ctx, (char *)stack + off, STACK - off, entry_align, NULL);
        async__ctx_switch(&main_ctx, &a_ctx);
        assert_true(entry_sp != 0);
        assert_true(entry_sp % 16 == 0);
        assert_true(entry_sp > (uintptr_t)stack && entry_sp < (uintptr_t)stack + STACK + 64);
    }
    free(stack);
}

/* Values kept in locals across a switch must survive it even when the
 * other side uses every register. */
static void entry_clobber(void *arg)
{
    for (;;) {
        volatile double d[8];
        int i;

        for (i = 0; i < 8; i++)
            d[i] = i * 3.25;
        counter += (long)d[7];
        async__ctx_switch(&a_ctx, &main_ctx);
    }
}

static long __attribute__((noinline)) busy_sum(long n)
{
    register long r1 = n * 3, r2 = n * 5, r3 = n * 7, r4 = n * 11, r5 = n * 13;
    double f1 = (double)n * 0.5, f2 = (double)n * 0.25;

    async__ctx_switch(&main_ctx, &a_ctx);
    return r1 + r2 + r3 + r4 + r5 + (long)(f1 + f2);
}

static void context_switch_preserves_callee_saved_state(void **state)
{
    void *stack = malloc(STACK);
    long n;

    async__ctx_make(&a_ctx, stack, STACK, entry_clobber, NULL);
    for (n = 1; n < 1000; n++)
        assert_int_equal(busy_sum(n), n * 39 + (long)((double)n * 0.75));
    free(stack);
}

static void entry_b(void *arg)
{
    for (;;) {
        counter += 1000;
        async__ctx_switch(&b_ctx, &a_ctx);
    }
}

static void entry_a(void *arg)
{
    for (;;) {
        counter += 1;
        async__ctx_switch(&a_ctx, &b_ctx); /* fiber to fiber, not via main */
        async__ctx_switch(&a_ctx, &main_ctx);
    }
}

static void context_switches_directly_between_two_contexts(void **state)
{
    void *sa = malloc(STACK), *sb = malloc(STACK);
    int i;

    counter = 0;
    async__ctx_make(&a_ctx, sa, STACK, entry_a, NULL);
    async__ctx_make(&b_ctx, sb, STACK, entry_b, NULL);
    for (i = 0; i < 1000; i++)
        async__ctx_switch(&main_ctx, &a_ctx);
    assert_int_equal(counter, 1001000);
    free(sa);
    free(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(context_switch_round_trips_run_the_entry_with_its_argument),
        cmocka_unit_test(context_entry_frame_is_aligned_for_the_abi),
        cmocka_unit_test(context_switch_preserves_callee_saved_state),
        cmocka_unit_test(context_switches_directly_between_two_contexts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
