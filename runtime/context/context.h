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
void async__ctx_switch(struct async__ctx *from, struct async__ctx *to);

#endif
