/* daemon/modfile — a module file as the loader takes it: vetted
 * (strict_modules, its name) and read into a private, sealed copy. */
#ifndef ASYNCD_MODFILE_H
#define ASYNCD_MODFILE_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* A sealed memfd (close-on-exec; no write, shrink or grow, ever) holding
 * file's bytes, to dlopen as /proc/self/fd/N; the file's stat in *st and
 * the copy's size in *size.  -1 with the reason in why, *refusal true
 * when strict_modules refused it (asyncd_modfile_refused): the checks and
 * the copy are of the same open file. */
int asyncd_modfile_copy(const struct asyncd_config *c, const char *file, struct stat *st,
                        off_t *size, bool *refusal, char *why, size_t len);

/* Whether file holds, byte for byte, the size bytes of the copy; *st gets
 * the file's stat. */
bool asyncd_modfile_same(int copy, off_t size, const char *file, struct stat *st);

/* Whether c->strict_modules refuses a module file (st: of the opened
 * file, after symlinks) or c->modules_dir: writable by group or others,
 * or owned by a user other than root or asyncd's euid (sshd's
 * StrictModes); why says which and why. */
bool asyncd_modfile_refused(const struct asyncd_config *c, const struct stat *st, char *why,
                            size_t len);

/* Whether file is named after the module name it declares: http.so for
 * http (a backup http-old.so must not stand in for it). */
bool asyncd_modfile_named(const char *file, const char *name);

#endif
