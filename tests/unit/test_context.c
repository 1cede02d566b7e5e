/* The stack switch alone: entry, alignment, callee-saved registers, many
 * round trips, and a context that switches into a third one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <stdio.h>

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

/* ---- callee-saved registers ----
 *
 * Each side of a switch fills every register the ABI says a callee must
 * preserve with its own marks (base + 1, base + 2, ...), switches, and on
 * return reports, one bit per register, which marks were lost.  Both sides
 * are written in assembly so that the marks really sit in the registers at
 * the switch (compiled C may keep a value anywhere), and both reach the
 * switch through switch_for_test(), an ordinary function: whatever the
 * switch fails to preserve leaks through it to the other side's marks.
 *
 *   unsigned marks_survive_switch(struct async__ctx *from,
 *                                 struct async__ctx *to, uintptr_t base);
 *
 * x86_64: rbx, rbp, r12-r15 (no vector register is callee-saved).
 * aarch64: x19-x29, d8-d15 (the low halves of v8-v15).
 * The ucontext build runs the same code: swapcontext must keep them too. */

void switch_for_test(struct async__ctx *from, struct async__ctx *to);
unsigned marks_survive_switch(struct async__ctx *from, struct async__ctx *to, uintptr_t base);

/* Without a frame pointer of its own (even in -O0 or sanitizer builds, whose
 * frame-pointer epilogue would restore rbp/x29 from the stack and hide a
 * switch that forgot them). */
__attribute__((noinline, used, optimize("omit-frame-pointer"))) void
switch_for_test(struct async__ctx *from, struct async__ctx *to)
{
    async__ctx_switch(from, to);
}

#if defined(__x86_64__)
static const char *const saved_names[] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
/* Each register: compare it with base + i; set bit i - 1 if it differs. */
#define LOST(reg, i)                                                                        \
    "leaq " #i "(%rcx), %rdx\n\t"                                                           \
    "cmpq %rdx, %" reg "\n\t"                                                               \
    "je 1f\n\t"                                                                             \
    "orl $(1 << (" #i " - 1)), %eax\n"                                                      \
    "1:\n\t"
__asm__(".text\n\t"
        ".globl marks_survive_switch\n\t"
        ".hidden marks_survive_switch\n\t"
        ".type marks_survive_switch, @function\n"
        "marks_survive_switch:\n\t"
        "pushq %rbx\n\t"
        "pushq %rbp\n\t"
        "pushq %r12\n\t"
        "pushq %r13\n\t"
        "pushq %r14\n\t"
        "pushq %r15\n\t"
        "pushq %rdx\n\t" /* base; seven pushes leave rsp 16-byte aligned */
        "leaq 1(%rdx), %rbx\n\t"
        "leaq 2(%rdx), %rbp\n\t"
        "leaq 3(%rdx), %r12\n\t"
        "leaq 4(%rdx), %r13\n\t"
        "leaq 5(%rdx), %r14\n\t"
        "leaq 6(%rdx), %r15\n\t"
        "call switch_for_test@PLT\n\t"
        "movq (%rsp), %rcx\n\t"
        "xorl %eax, %eax\n\t"
        LOST("rbx", 1) LOST("rbp", 2) LOST("r12", 3) LOST("r13", 4) LOST("r14", 5)
        LOST("r15", 6)
        "addq $8, %rsp\n\t"
        "popq %r15\n\t"
        "popq %r14\n\t"
        "popq %r13\n\t"
        "popq %r12\n\t"
        "popq %rbp\n\t"
        "popq %rbx\n\t"
        "ret\n\t"
        ".size marks_survive_switch, .-marks_survive_switch\n\t");
#elif defined(__aarch64__)
static const char *const saved_names[] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                          "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                          "d11", "d12", "d13", "d14", "d15"};
/* Marks: base + i in x19-x29, and the same bits in d8-d15. */
#define SET_X(reg, i) "add " reg ", x2, #" #i "\n\t"
#define SET_D(reg, i) "add x9, x2, #" #i "\n\tfmov " reg ", x9\n\t"
#define LOST_X(reg, i)                                                                      \
    "add x10, x9, #" #i "\n\t"                                                              \
    "cmp " reg ", x10\n\t"                                                                  \
    "cset w11, ne\n\t"                                                                      \
    "orr w0, w0, w11, lsl #(" #i " - 1)\n\t"
#define LOST_D(reg, i)                                                                      \
    "add x10, x9, #" #i "\n\t"                                                              \
    "fmov x12, " reg "\n\t"                                                                 \
    "cmp x12, x10\n\t"                                                                      \
    "cset w11, ne\n\t"                                                                      \
    "orr w0, w0, w11, lsl #(" #i " - 1)\n\t"
__asm__(".text\n\t"
        ".globl marks_survive_switch\n\t"
        ".hidden marks_survive_switch\n\t"
        ".type marks_survive_switch, %function\n"
        "marks_survive_switch:\n\t"
        "stp x29, x30, [sp, #-176]!\n\t"
        "stp x19, x20, [sp, #16]\n\t"
        "stp x21, x22, [sp, #32]\n\t"
        "stp x23, x24, [sp, #48]\n\t"
        "stp x25, x26, [sp, #64]\n\t"
        "stp x27, x28, [sp, #80]\n\t"
        "stp d8, d9, [sp, #96]\n\t"
        "stp d10, d11, [sp, #112]\n\t"
        "stp d12, d13, [sp, #128]\n\t"
        "stp d14, d15, [sp, #144]\n\t"
        "str x2, [sp, #160]\n\t" /* base */
        SET_X("x19", 1) SET_X("x20", 2) SET_X("x21", 3) SET_X("x22", 4) SET_X("x23", 5)
        SET_X("x24", 6) SET_X("x25", 7) SET_X("x26", 8) SET_X("x27", 9) SET_X("x28", 10)
        SET_X("x29", 11) SET_D("d8", 12) SET_D("d9", 13) SET_D("d10", 14) SET_D("d11", 15)
        SET_D("d12", 16) SET_D("d13", 17) SET_D("d14", 18) SET_D("d15", 19)
        "bl switch_for_test\n\t"
        "ldr x9, [sp, #160]\n\t"
        "mov w0, #0\n\t"
        LOST_X("x19", 1) LOST_X("x20", 2) LOST_X("x21", 3) LOST_X("x22", 4) LOST_X("x23", 5)
        LOST_X("x24", 6) LOST_X("x25", 7) LOST_X("x26", 8) LOST_X("x27", 9) LOST_X("x28", 10)
        LOST_X("x29", 11) LOST_D("d8", 12) LOST_D("d9", 13) LOST_D("d10", 14)
        LOST_D("d11", 15) LOST_D("d12", 16) LOST_D("d13", 17) LOST_D("d14", 18)
        LOST_D("d15", 19)
        "ldp x19, x20, [sp, #16]\n\t"
        "ldp x21, x22, [sp, #32]\n\t"
        "ldp x23, x24, [sp, #48]\n\t"
        "ldp x25, x26, [sp, #64]\n\t"
        "ldp x27, x28, [sp, #80]\n\t"
        "ldp d8, d9, [sp, #96]\n\t"
        "ldp d10, d11, [sp, #112]\n\t"
        "ldp d12, d13, [sp, #128]\n\t"
        "ldp d14, d15, [sp, #144]\n\t"
        "ldp x29, x30, [sp], #176\n\t"
        "ret\n\t"
        ".size marks_survive_switch, .-marks_survive_switch\n\t");
#else
#error "test_context.c: no callee-saved register check for this architecture"
#endif

#define NSAVED (sizeof(saved_names) / sizeof(saved_names[0]))
#define MAIN_MARKS ((uintptr_t)0x5ca1ab1e00000000ull)
#define FIBER_MARKS ((uintptr_t)0x0badf00d00000000ull)

static unsigned fiber_lost;

/* The other side: its own marks in every callee-saved register at each
 * switch back, and a check that its marks survive main's. */
static void entry_clobber(void *arg)
{
    uintptr_t round = 0;

    (void)arg;
    for (;;) {
        fiber_lost |= marks_survive_switch(&a_ctx, &main_ctx, FIBER_MARKS + (round << 8));
        round++;
    }
}

static void describe_lost(unsigned lost, char *out, size_t len)
{
    size_t i, n = 0;

    out[0] = '\0';
    for (i = 0; i < NSAVED && n < len; i++)
        if (lost & (1u << i))
            n += (size_t)snprintf(out + n, len - n, " %s", saved_names[i]);
}

static void context_switch_preserves_callee_saved_state(void **state)
{
    void *stack = malloc(STACK);
    char mine[128], fibers[128];
    uintptr_t n;
    unsigned lost = 0;

    (void)state;
    fiber_lost = 0;
    async__ctx_make(&a_ctx, stack, STACK, entry_clobber, NULL);
    for (n = 0; n < 1000; n++)
        lost |= marks_survive_switch(&main_ctx, &a_ctx, MAIN_MARKS + (n << 8));
    free(stack);
    describe_lost(lost, mine, sizeof(mine));
    describe_lost(fiber_lost, fibers, sizeof(fibers));
    if (lost != 0 || fiber_lost != 0)
        fail_msg("callee-saved registers lost across the switch: on the thread's side:%s; "
                 "on the fiber's side:%s", lost ? mine : " none", fiber_lost ? fibers : " none");
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

/* argv[1], if given, runs only the tests matching it (cmocka's filter). */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(context_switch_round_trips_run_the_entry_with_its_argument),
        cmocka_unit_test(context_entry_frame_is_aligned_for_the_abi),
        cmocka_unit_test(context_switch_preserves_callee_saved_state),
        cmocka_unit_test(context_switches_directly_between_two_contexts),
    };

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
