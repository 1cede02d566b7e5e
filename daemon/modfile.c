/* daemon/modfile.c — a module file as the loader takes it: vetted
 * (strict_modules, its name) and read into a private, sealed copy.
 *
 * A module is never mapped from its file: load_one reads
 * the file into a memfd, seals it (no write, shrink or grow, ever), and
 * dlopens /proc/self/fd/N.  cp or truncation of the file then cannot touch
 * the pages the daemon runs (mapping the file itself, a truncation drops
 * them: SIGBUS or SIGSEGV).  The memfd stays open while the module is
 * loaded: a reload compares the file's bytes with it (content decides a
 * change, not inode or mtime), and while it is open its fd number cannot
 * be reused, so no other module's /proc/self/fd/N can match this one's
 * link map by name (glibc's dlopen matches loaded objects by name before
 * inode).  Each memfd is its own inode, so two generations of a module
 * coexist while one replaces the other. */
#include "modfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

/* sshd's StrictModes for a module file or its folder: what another user
 * can write, asyncd would run as its own code. */
static bool unsafe(const struct stat *st, const char *what, char *why, size_t len)
{
    uid_t me = geteuid();

    if (st->st_uid != 0 && st->st_uid != me) {
        snprintf(why, len, "%s is owned by uid %u, neither root nor asyncd's uid %u "
                 "(strict_modules)", what, (unsigned)st->st_uid, (unsigned)me);
        return true;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, len, "%s is writable by %s (mode %04o; strict_modules)", what,
                 (st->st_mode & S_IWOTH) ? "others" : "its group",
                 (unsigned)(st->st_mode & 07777));
        return true;
    }
    return false;
}

bool asyncd_modfile_refused(const struct asyncd_config *c, const struct stat *st, char *why,
                            size_t len)
{
    struct stat ds;
    char what[600];

    if (!c->strict_modules)
        return false;
    if (stat(c->modules_dir, &ds) != 0) {
        snprintf(why, len, "cannot stat the modules directory %s: %s", c->modules_dir,
                 strerror(errno));
        return true;
    }
    snprintf(what, sizeof(what), "the modules directory %s", c->modules_dir);
    return unsafe(&ds, what, why, len) || unsafe(st, "the file", why, len);
}

bool asyncd_modfile_named(const char *file, const char *name)
{
    const char *base = strrchr(file, '/');
    size_t n = strlen(name);

    base = base != NULL ? base + 1 : file;
    return strncmp(base, name, n) == 0 && strcmp(base + n, ".so") == 0;
}

int asyncd_modfile_copy(const struct asyncd_config *c, const char *file, struct stat *st,
                        off_t *size, bool *refusal, char *why, size_t len)
{
    const char *base = strrchr(file, '/');
    struct stat cs;
    int fd, copy;
    ssize_t n;

    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, len, "cannot open it: %s", strerror(errno));
        return -1;
    }
    *refusal = false;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(why, len, "not a regular file");
        goto fail_fd;
    }
    if (asyncd_modfile_refused(c, st, why, len)) {
        *refusal = true;
        goto fail_fd;
    }
    base = base != NULL ? base + 1 : file;
#ifdef MFD_EXEC
    /* Kernels with vm.memfd_noexec want the intent said; older ones
     * refuse the flag they do not know. */
    copy = memfd_create(base, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (copy < 0 && errno == EINVAL)
#endif
        copy = memfd_create(base, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (copy < 0) {
        snprintf(why, len, "cannot make a private copy: memfd_create: %s", strerror(errno));
        goto fail_fd;
    }
    while ((n = sendfile(copy, fd, NULL, 1 << 20)) > 0)
        ;
    if (n < 0) {
        snprintf(why, len, "cannot copy it: %s", strerror(errno));
        goto fail_copy;
    }
    if (fcntl(copy, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0 ||
        fstat(copy, &cs) != 0) {
        snprintf(why, len, "cannot seal its private copy: %s", strerror(errno));
        goto fail_copy;
    }
    *size = cs.st_size;
    close(fd);
    return copy;
fail_copy:
    close(copy);
fail_fd:
    close(fd);
    return -1;
}

/* Read by chunks, never mapped: a file truncated meanwhile would fault a
 * mapping. */
bool asyncd_modfile_same(int copy, off_t size, const char *file, struct stat *st)
{
    enum { CHUNK = 1 << 16 };
    char *a = NULL, *b = NULL;
    bool same = false;
    off_t at = 0;
    int fd;

    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (fstat(fd, st) != 0 || st->st_size != size)
        goto out;
    a = malloc(CHUNK); /* not on the stack: reloads run on a fiber's */
    b = malloc(CHUNK);
    if (a == NULL || b == NULL)
        goto out;
    for (;;) {
        ssize_t n = read(fd, a, CHUNK), k;

        if (n < 0)
            goto out;
        if (n == 0) {
            same = at == size;
            goto out;
        }
        k = pread(copy, b, (size_t)n, at);
        if (k != n || memcmp(a, b, (size_t)n) != 0)
            goto out;
        at += n;
    }
out:
    free(a);
    free(b);
    close(fd);
    return same;
}
