/* Stack switch through ucontext, for processors without a hand-written
 * switch.  swapcontext saves the signal mask with a system call, so this is
 * an order of magnitude slower than the assembly versions; it is correct.
 *
 * A fiber's ucontext_t and its entry point live at the top of its own stack;
 * a thread's own context (a zeroed "from") lives in thread-local storage. */
#include "context.h"

#include <stdint.h>
#include <ucontext.h>

struct uc_frame {
    ucontext_t uc;
    void (*entry)(void *);
    void *arg;
};

static _Thread_local ucontext_t thread_uc;
static _Thread_local struct uc_frame *starting;

static void trampoline(void)
{
    struct uc_frame *f = starting;

    f->entry(f->arg);
    __builtin_trap(); /* entry never returns */
}

void async__ctx_make(struct async__ctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size - sizeof(struct uc_frame)) & ~(uintptr_t)63;
    struct uc_frame *f = (struct uc_frame *)top;

    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = lo;
    f->uc.uc_stack.ss_size = top - (uintptr_t)lo;
    f->uc.uc_link = NULL;
    f->entry = entry;
    f->arg = arg;
    makecontext(&f->uc, trampoline, 0);
    c->sp = f;
}

void async__ctx_switch(struct async__ctx *from, struct async__ctx *to)
{
    if (from->sp == NULL)
        from->sp = &thread_uc;
    starting = to->sp;
    swapcontext(from->sp, to->sp);
}
