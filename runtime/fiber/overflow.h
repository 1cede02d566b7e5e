/* runtime/fiber/overflow — naming the fiber whose stack overflowed.
 *
 * A fault in a guard page (or a smashed canary found at a switch) prints
 *   async_io: fiber stack overflow: fiber 0x... (entry NAME), stack LO-HI
 * on stderr and aborts.  The SIGSEGV/SIGBUS handler runs on an alternate
 * signal stack that each worker thread installs; faults that are not stack
 * overflows go to the handler that was there before. */
#ifndef ASYNC_FIBER_OVERFLOW_H
#define ASYNC_FIBER_OVERFLOW_H

#include "stack.h"

/* What the handler learns about the fiber running on this thread. */
struct async__fiber_info {
    const void *id;                 /* the task handle */
    void *entry;                    /* its entry function */
    const struct async__stack *stack;
};

/* The scheduler tells the handler how to find the running fiber. */
typedef int (*async__current_fn)(struct async__fiber_info *out);

/* Process-wide, reference counted: installed by the first runtime,
 * removed by the last. */
void async__overflow_install(async__current_fn current);
void async__overflow_remove(void);

/* Per thread: an alternate signal stack for the handler. */
void *async__overflow_thread_enter(void);
void  async__overflow_thread_leave(void *token);

/* Reports and aborts (also used for a canary found smashed). */
_Noreturn void async__overflow_report(const struct async__fiber_info *f);

#endif
