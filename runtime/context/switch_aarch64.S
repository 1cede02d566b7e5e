/* Stack switch for AArch64 (AAPCS64).
 *
 * Saved on the suspended stack, 160 bytes from the saved sp upwards:
 *   0  x19..x28        callee-saved general registers
 *  80  x29 (fp), x30 (lr: where the switch returns to)
 *  96  d8..d15         the callee-saved low halves of v8..v15
 * Nothing else is callee-saved, and no system call is made.  FPCR (the
 * floating-point control register) belongs to the worker thread, as on
 * x86_64: see switch_x86_64.S. */

    .text

/* void async__ctx_switch(struct async__ctx *from, struct async__ctx *to) */
    .globl async__ctx_switch
    .hidden async__ctx_switch
    .type async__ctx_switch, %function
    .p2align 4
async__ctx_switch:
    sub sp, sp, #160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .size async__ctx_switch, .-async__ctx_switch

/* void async__ctx_make(struct async__ctx *c, void *lo, size_t size,
 *                      void (*entry)(void *), void *arg)
 * The first switch "returns" into the trampoline with x19 = entry and
 * x20 = arg; fp = 0 ends frame-pointer walks. */
    .globl async__ctx_make
    .hidden async__ctx_make
    .type async__ctx_make, %function
    .p2align 4
async__ctx_make:
    add x9, x1, x2
    and x9, x9, #~15
    sub x9, x9, #160
    stp x3, x4, [x9, #0]
    stp xzr, xzr, [x9, #16]
    stp xzr, xzr, [x9, #32]
    stp xzr, xzr, [x9, #48]
    stp xzr, xzr, [x9, #64]
    adr x10, async__ctx_trampoline
    stp xzr, x10, [x9, #80]
    str x9, [x0]
    ret
    .size async__ctx_make, .-async__ctx_make

    .type async__ctx_trampoline, %function
    .p2align 4
async__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x20
    blr x19
    brk #0
    .cfi_endproc
    .size async__ctx_trampoline, .-async__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
