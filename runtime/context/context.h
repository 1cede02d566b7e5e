/* runtime/context — switching between stacks, and nothing else.
 *
 * One implementation per architecture, chosen by CMake:
 * switch_x86_64.S, switch_aarch64.S, or switch_ucontext.c for the rest.
 * The assembly versions save only what the ABI says a callee must preserve
 * (plus the floating-point control words) and make no system call. */
#ifndef ASYNC_CONTEXT_H
#define ASYNC_CONTEXT_H

#include <stddef.h>

/* A suspended context.  For the assembly switches sp is the saved stack
 * pointer; the registers sit on the stack below it.  The ucontext fallback
 * keeps a ucontext_t there instead. */
struct async__ctx {
    void *sp;
};

/* Prepares c so that the first switch to it calls entry(arg) on the stack
 * [lo, lo + size).  entry must never return: it ends by switching away. */
void async__ctx_make(struct async__ctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg);

/* Saves the running context into *from and resumes *to.  Returns when
 * something switches back to *from.  A zeroed struct async__ctx is a valid
 * "from" (the thread's own stack). */
#if defined(__x86_64__) && !defined(ASYNC_CONTEXT_UCONTEXT)
/* x86_64: inline, so the compiler saves only the callee-saved registers
 * the calling function really uses (declared clobbered below) in its own
 * frame, and the switch is neither a call nor a ret.  A call/ret pair
 * whose ret lands on another stack leaves the return-stack predictor one
 * entry off; here the only indirect branch is the jmp to the resume
 * point, which the branch predictor learns like any other.  The suspended
 * stack holds, from the saved sp upwards:
 *   0  resume address (label 1 below, or the new fiber's trampoline)
 *   8  rbp, saved by hand: frame-pointer builds may not clobber it
 * and, above them, the 128-byte red zone of the function that switched,
 * skipped so the two pushes cannot overwrite what it keeps there -- unless
 * the including file is compiled with -mno-red-zone and defines
 * ASYNC_NO_RED_ZONE, as CMake does for worker.c (the runtime's only
 * caller; test_context.c keeps the skip): then there is nothing below the
 * stack pointer to step over, and the switch is two instructions shorter.
 * The define without the flag would corrupt the caller's red zone, and no
 * compiler macro tells the flag is on, so the two go together in
 * CMakeLists.txt only.  Each side of a switch undoes its own skip, so the
 * two kinds may switch to each other.  Floating-point control state stays with
 * the thread (see switch_x86_64.S). */
#ifdef __APX_F__
#error "async_io: the inline x86_64 switch does not declare the APX registers r16-r31"
#endif
/* Never mark this switch shadow-stack compatible: it is a jump between
 * stacks, which a shadow stack would refuse.  switch_x86_64.S carries no
 * .note.gnu.property, so the linked library is never marked either. */
#ifdef ASYNC_NO_RED_ZONE
#define ASYNC__SKIP_RED_ZONE(d) ""
#else
#define ASYNC__SKIP_RED_ZONE(d) "leaq " d "(%%rsp), %%rsp\n\t"
#endif
static inline __attribute__((always_inline)) void async__ctx_switch(struct async__ctx *from,
                                                                   struct async__ctx *to)
{
    struct async__ctx *f = from, *t = to;

    __asm__ __volatile__(ASYNC__SKIP_RED_ZONE("-128")
                         "pushq %%rbp\n\t"
                         "leaq 1f(%%rip), %%rax\n\t"
                         "pushq %%rax\n\t"
                         "movq %%rsp, (%0)\n\t"
                         "movq (%1), %%rsp\n\t"
                         "popq %%rax\n\t"
                         "jmpq *%%rax\n"
                         "1:\n\t"
#if defined(__CET__) && (__CET__ & 1)
                         "endbr64\n\t" /* an indirect-branch target */
#endif
                         "popq %%rbp\n\t"
                         ASYNC__SKIP_RED_ZONE("128")
                         : "+D"(f), "+S"(t)
                         :
                         : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13",
                           "r14", "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
                           "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                           "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)",
                           "st(5)", "st(6)", "st(7)"
#ifdef __AVX512F__
                           , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
                           "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29",
                           "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#endif
    );
}
#else
void async__ctx_switch(struct async__ctx *from, struct async__ctx *to);
#endif

#endif
