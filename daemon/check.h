/* daemon/check — the modules part of asyncd.json against the modules
 * themselves: each module's validate hook (or its ABI 1 check), its
 * problems placed by JSON path; modules.<name> entries that no module
 * declares; and the effective configuration `asyncd -T` prints. */
#ifndef ASYNCD_CHECK_H
#define ASYNCD_CHECK_H

#include "config.h"

#include <async_io/module.h>

#include <jansson.h>
#include <stddef.h>

/* Runs fn(arg) where a large input or a module's code cannot overflow a
 * fiber's stack: from a fiber, on a helper thread (async_blocking) while
 * the fiber waits; elsewhere (main, before the runtime) right here.  0, or
 * -1 with errno when no helper could run it (fn did not run).  The
 * daemon's fiber is never cancelled, so arg on its stack outlives the
 * call. */
int asyncd_off_stack(async_fn fn, void *arg);

/* asyncd_config_load through asyncd_off_stack (a reload: a large or
 * deeply nested file must not overflow the daemon fiber's stack). */
int asyncd_config_load_off_stack(const char *file, struct asyncd_config *out,
                                 struct asyncd_problems *p);

/* A reload refused for p's problems: each logged, then the verdict
 * ("...; " stays), and READY=1 with the first problem as STATUS= (systemd
 * waits for it after RELOADING=1). */
void asyncd_reload_rejected(const struct asyncd_problems *p, const char *stays);

/* Runs desc's validate hook (preferred) or check hook on cfg, the module's
 * object without "enabled": 0, or -1 with each problem appended to p as
 * "FILE:LINE:COL: modules.NAME.PATH: message" (an ABI 1 check's message
 * at modules.NAME), or logged when p is NULL.  From a fiber the hook runs
 * on a helper thread (async_blocking): hooks never run on a fiber's
 * stack. */
int asyncd_module_validate(const struct asyncd_config *c, const struct async_module *desc,
                           const json_t *cfg, struct asyncd_problems *p);

/* The config check of asyncd_modules_check, against the modules mods[0..n)
 * that the folder holds: every enabled one's config through its hooks,
 * and every modules.<name> that none of them declares (with the names
 * there, and a near one as a "did you mean").  0, or -1 with the problems
 * appended to p. */
int asyncd_check_modules(const struct asyncd_config *c, const struct async_module *const *mods,
                         size_t n, struct asyncd_problems *p);

/* The configuration as the daemon will run it, for `asyncd -T`: its own
 * keys with every default filled in, and each module's object (with
 * "enabled") from its effective_config hook, or as written when it has
 * none or is disabled.  A new reference, or NULL (out of memory). */
json_t *asyncd_effective_config(const struct asyncd_config *c,
                                const struct async_module *const *mods, size_t n);

#endif
