/* daemon/crash_pc_other.c — see crash.h: a processor whose ucontext we do
 * not read; the crash line then names the running fiber's module only. */
#include "crash.h"

uintptr_t asyncd_crash_pc(const void *ucontext)
{
    (void)ucontext;
    return 0;
}
