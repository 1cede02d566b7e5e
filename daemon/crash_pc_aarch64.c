/* daemon/crash_pc_aarch64.c — see crash.h. */
#include "crash.h"

#include <stddef.h>
#include <ucontext.h>

uintptr_t asyncd_crash_pc(const void *ucontext)
{
    const ucontext_t *uc = ucontext;

    return uc != NULL ? (uintptr_t)uc->uc_mcontext.pc : 0;
}
