/* Stack switch for x86_64 System V.
 *
 * Saved on the suspended stack, from the saved sp upwards:
 *   0  padding (keeps the entry frame 16-byte aligned)
 *   8  r15, r14, r13, r12, rbx, rbp: the callee-saved registers
 *  56  return address
 * Caller-saved registers are dead across the call, so they are not saved.
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

/* void async__ctx_switch(struct async__ctx *from, struct async__ctx *to) */
    .globl async__ctx_switch
    .hidden async__ctx_switch
    .type async__ctx_switch, @function
    .align 16
async__ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size async__ctx_switch, .-async__ctx_switch

/* void async__ctx_make(struct async__ctx *c, void *lo, size_t size,
 *                      void (*entry)(void *), void *arg)
 * Builds a frame that async__ctx_switch pops into the trampoline with
 * r12 = entry and r13 = arg.  After that ret, rsp is 16-byte aligned, so the
 * trampoline's call gives entry the alignment the ABI promises. */
    .globl async__ctx_make
    .hidden async__ctx_make
    .type async__ctx_make, @function
    .align 16
async__ctx_make:
    .cfi_startproc
    leaq (%rsi,%rdx), %rax
    andq $-16, %rax
    subq $80, %rax
    movq $0, (%rax)             /* padding */
    movq $0, 8(%rax)            /* r15 */
    movq $0, 16(%rax)           /* r14 */
    movq %r8, 24(%rax)          /* r13 = arg */
    movq %rcx, 32(%rax)         /* r12 = entry */
    movq $0, 40(%rax)           /* rbx */
    movq $0, 48(%rax)           /* rbp: ends frame-pointer walks */
    leaq async__ctx_trampoline(%rip), %r9
    movq %r9, 56(%rax)          /* return address */
    movq $0, 64(%rax)           /* fake caller of the trampoline */
    movq %rax, (%rdi)
    ret
    .cfi_endproc
    .size async__ctx_make, .-async__ctx_make

    .type async__ctx_trampoline, @function
    .align 16
async__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* outermost frame for unwinders */
    movq %r13, %rdi
    callq *%r12
    ud2                         /* entry never returns */
    .cfi_endproc
    .size async__ctx_trampoline, .-async__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
