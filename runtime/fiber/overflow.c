#include "overflow.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned users;
static async__current_fn current_fiber;
static struct sigaction old_segv, old_bus;

#define ALTSTACK_SIZE (64 * 1024)

struct altstack {
    stack_t old;
    void *mem;
};

_Noreturn void async__overflow_report(const struct async__fiber_info *f)
{
    char line[512];
    const char *name = "?";
    Dl_info info;
    int n;

    /* dladdr is not async-signal-safe in theory; we are about to abort and
     * a name is worth the risk. */
    if (dladdr(f->entry, &info) != 0 && info.dli_sname != NULL)
        name = info.dli_sname;
    n = snprintf(line, sizeof(line),
                 "async_io: fiber stack overflow: fiber %p (entry %s at %p), stack %p-%p\n",
                 f->id, name, f->entry, f->stack->lo,
                 (const void *)((const char *)f->stack->lo + f->stack->size));
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    abort();
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;

    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uc);
        return;
    }
    if (old->sa_handler == SIG_IGN)
        return;
    if (old->sa_handler != SIG_DFL) {
        old->sa_handler(sig);
        return;
    }
    /* Default action: restore it and let the fault happen again. */
    signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct async__fiber_info f;

    if (current_fiber != NULL && current_fiber(&f) == 0) {
        const char *addr = si->si_addr;
        const char *lo = f.stack->lo;

        /* The guard page below the stack, the canary's own bytes, or (on an
         * unguarded stack) anywhere a runaway frame may have reached. */
        if (addr < lo + 64 && addr >= lo - (f.stack->guarded ? async__stack_guard_size() : 1 << 20))
            async__overflow_report(&f);
    }
    chain(sig, si, uc);
}

void async__overflow_install(async__current_fn current)
{
    struct sigaction sa;

    pthread_mutex_lock(&lock);
    if (users++ == 0) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        current_fiber = current;
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    }
    pthread_mutex_unlock(&lock);
}

void async__overflow_remove(void)
{
    pthread_mutex_lock(&lock);
    if (--users == 0) {
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
    }
    pthread_mutex_unlock(&lock);
}

void *async__overflow_thread_enter(void)
{
    struct altstack *a = malloc(sizeof(*a));
    stack_t ss;

    if (a == NULL)
        return NULL;
    a->mem = malloc(ALTSTACK_SIZE);
    if (a->mem == NULL) {
        free(a);
        return NULL;
    }
    ss.ss_sp = a->mem;
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, &a->old) != 0) {
        free(a->mem);
        free(a);
        return NULL;
    }
    return a;
}

void async__overflow_thread_leave(void *token)
{
    struct altstack *a = token;

    if (a == NULL)
        return;
    sigaltstack(&a->old, NULL);
    free(a->mem);
    free(a);
}
