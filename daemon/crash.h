/* daemon/crash — the last line of a process that faults: on SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL or SIGABRT asyncd writes one line to stderr
 * naming the signal, the faulting address, the code it was in (a module's
 * FILE+0xOFFSET, and that module) and the module whose fiber was running
 * with its entry; then it gives the log writer a moment to write what is
 * queued, and dies of the same signal (core dump and exit status intact).
 *
 *   asyncd: fatal SIGSEGV (address 0) at crasher.so+0x1139 in module
 *   crasher; worker 1 was running a fiber of module crasher, entry
 *   crasher.so+0x1100
 *
 * (one line).  The module names come from modmap.h, which the daemon keeps
 * published. */
#ifndef ASYNCD_CRASH_H
#define ASYNCD_CRASH_H

#include <stdint.h>

/* Installs the handlers (on the alternate signal stack of threads that
 * have one: every worker has).  Call before async_runtime, whose stack
 * overflow handler for SIGSEGV and SIGBUS then passes every other fault
 * on to these. */
void asyncd_crash_install(void);

/* The program counter in a signal's ucontext, or 0 where unknown
 * (crash_pc_<processor>.c). */
uintptr_t asyncd_crash_pc(const void *ucontext);

#endif
