/* daemon/modmap — a copy of what the loaded modules are, for threads that
 * may not touch the module list: the watcher thread (watcher.c) and the
 * crash handler (crash.c), which runs inside a signal and may take no
 * lock and call nothing.
 *
 * For each loaded module: its name, its file, the group its fibers run in
 * while it is started, its run function, and the span of addresses its
 * code and data are mapped at.  The daemon's fiber publishes a new copy
 * whenever modules are loaded, started, stopped or unloaded
 * (asyncd_modmap_publish); readers copy one entry out and never wait. */
#ifndef ASYNCD_MODMAP_H
#define ASYNCD_MODMAP_H

#include "modules.h"

#include <stdbool.h>
#include <stdint.h>

#define ASYNCD_MODMAP_MAX 64    /* modules past this many are not named */

struct asyncd_modmap_entry {
    const void *module;         /* the struct asyncd_module: a key, never used */
    char name[64];
    char file[128];             /* the .so's base name, for FILE+0xOFFSET */
    const void *group;          /* its group while started, else NULL: compare, never use */
    void *run;                  /* its run function */
    uintptr_t base;             /* where it is loaded (offsets are from here) */
    uintptr_t lo, hi;           /* [lo, hi): its mapped segments */
};

/* Publishes the modules of list, of draining (generations a reload
 * retired that still drain) and of stuck (any may be NULL).  One
 * publisher: the daemon's fiber (or main before the runtime starts). */
void asyncd_modmap_publish(const struct asyncd_module *list, const struct asyncd_module *draining,
                           const struct asyncd_module *stuck);

/* m's group changed (started or joined, modules.c): published at once,
 * so that the watcher and a crash name a module whose fiber runs before
 * the daemon publishes the whole list again.  m's entry is made afresh
 * (added if m is new).  The same one publisher. */
void asyncd_modmap_group(const struct asyncd_module *m);

/* The module whose segments hold addr, or whose group is group (when not
 * NULL): copied into *out, true.  Lock-free and call-free, so a signal
 * handler may use them; a publication racing the copy is detected and
 * the copy retried (a few times, then false). */
bool asyncd_modmap_by_addr(uintptr_t addr, struct asyncd_modmap_entry *out);
bool asyncd_modmap_by_group(const void *group, struct asyncd_modmap_entry *out);

#endif
