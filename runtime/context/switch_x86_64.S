/* Fiber entry for x86_64 System V.  The switch itself is inline assembly
 * in context.h: it pushes rbp and a resume address (below the red zone,
 * unless the caller is built without one),
 * saves sp, loads the other sp, pops the resume address and jumps there.
 * The callee-saved registers are declared clobbered, so the compiler keeps
 * what it needs of them in the switching function's own frame.
 * No signal mask is touched: that is what makes this ~40x faster than
 * swapcontext.
 *
 * The floating-point control state (MXCSR control bits, x87 control word)
 * is deliberately NOT switched: it belongs to the worker thread, as in
 * libdill, libco and Lwan.  Saving and restoring it (stmxcsr/fnstcw,
 * ldmxcsr/fldcw) measured 4.4 ns of a 6.3 ns switch here.  A fiber that
 * changes the rounding mode or exception masks must restore them before
 * it parks or yields (runtime.h says so). */

    .text

/* void async__ctx_make(struct async__ctx *c, void *lo, size_t size,
 *                      void (*entry)(void *), void *arg)
 * Builds a suspended stack whose resume address is the trampoline:
 *   0  async__ctx_trampoline     popped by the switch, jumped to
 *   8  arg                       popped into rdi by the trampoline
 *  16  entry                     popped into rax by the trampoline
 *  24  0                         then rsp is 16-byte aligned, so the
 *  32  0                         trampoline's call gives entry the
 *                                alignment the ABI promises */
    .globl async__ctx_make
    .hidden async__ctx_make
    .type async__ctx_make, @function
    .align 16
async__ctx_make:
    .cfi_startproc
    leaq (%rsi,%rdx), %rax
    andq $-16, %rax
    subq $48, %rax
    leaq async__ctx_trampoline(%rip), %r9
    movq %r9, (%rax)
    movq %r8, 8(%rax)           /* arg */
    movq %rcx, 16(%rax)         /* entry */
    movq $0, 24(%rax)
    movq $0, 32(%rax)           /* fake caller of the trampoline */
    movq $0, 40(%rax)
    movq %rax, (%rdi)
    ret
    .cfi_endproc
    .size async__ctx_make, .-async__ctx_make

    .type async__ctx_trampoline, @function
    .align 16
async__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* outermost frame for unwinders */
#if defined(__CET__) && (__CET__ & 1)
    endbr64                     /* reached by the switch's indirect jump */
#endif
    popq %rdi
    popq %rax
    addq $8, %rsp
    xorl %ebp, %ebp             /* ends frame-pointer walks */
    callq *%rax
    ud2                         /* entry never returns */
    .cfi_endproc
    .size async__ctx_trampoline, .-async__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
