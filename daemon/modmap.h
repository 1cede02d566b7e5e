/* daemon/modmap — which module's code holds an address (for crash and
 * blocked-worker reports: dladdr names a module's private copy,
 * /proc/self/fd/N, not its file). */
#ifndef ASYNCD_MODMAP_H
#define ASYNCD_MODMAP_H

#include <stdbool.h>
#include <stdint.h>

#define ASYNCD_MODMAP_SLOTS 128 /* modules named at once; more load, unnamed */

/* What asyncd_modules_find_by_addr tells about the module whose code
 * holds an address. */
struct asyncd_module_where {
    char name[64];              /* the name it declares */
    char file[256];             /* the real file it was loaded from (not /proc/self/fd/N) */
    uintptr_t base, end;        /* its mapped range [base, end) */
};

/* The module whose mapped object contains addr: true and *out filled in,
 * or false (not a module's code, or a module the full table left out).
 * Every module is dlopened from a private copy (a sealed memfd, through
 * /proc/self/fd/N), so dladdr's dli_fname names "/proc/self/fd/N", not
 * the file: this is the way back to the module and its file.
 * Async-signal-safe and lock-free (atomic loads and byte copies into
 * *out; no lock, no malloc): a fatal-signal handler may call it.  A
 * reader that races an update of the slot it reads retries a few times,
 * then goes on (false if no other slot holds addr). */
bool asyncd_modules_find_by_addr(const void *addr, struct asyncd_module_where *out);

/* Enters the mapped range of the object dl (a dlopen handle) as module
 * name from file (both copied, truncated to the fields' sizes): its slot,
 * or -1 (logged when the table is full).  The daemon's fiber only. */
int asyncd_modmap_add(void *dl, const char *name, const char *file);

/* Empties slot (from asyncd_modmap_add; -1 is ignored), before the object
 * is unloaded.  The daemon's fiber only. */
void asyncd_modmap_remove(int slot);

#endif
