/* modules/kv/load.c — opening a kv log: the lock against a second store,
 * the magic, replaying every record, and recovery from a damaged tail
 * (store.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the build defines it for modules; the unit tests may not */
#endif
#include "store_impl.h"

#include <async_io/blocking.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct load_job {
    kv_store *s;
    int fd;
    int err;
    uint64_t records;
};

/* Helper: opens and locks the file.  EWOULDBLOCK: another store holds it. */
static int open_locked(struct load_job *j)
{
    struct stat a, b;

    for (int tries = 0; tries < 100; tries++) {
        j->fd = open(j->s->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (j->fd < 0)
            return errno;
        if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;

            close(j->fd);
            j->fd = -1;
            return e;
        }
        /* A compaction may have renamed a new file over the one we locked. */
        if (fstat(j->fd, &a) == 0 && stat(j->s->path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return 0;
        close(j->fd);
        j->fd = -1;
    }
    return EAGAIN;
}

static int read_all(int fd, char **out, size_t *len)
{
    struct stat st;
    char *p;
    size_t at = 0;

    if (fstat(fd, &st) != 0)
        return errno;
    p = malloc((size_t)st.st_size + 1);
    if (p == NULL)
        return ENOMEM;
    while (at < (size_t)st.st_size) {
        ssize_t n = pread(fd, p + at, (size_t)st.st_size - at, (off_t)at);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* shorter than fstat said: parse what is there */
        at += (size_t)n;
    }
    *out = p;
    *len = at;
    return 0;
}

/* Parses the records of p[KV_MAGIC_LEN, len): the offset where the good ones
 * end; *why says what stopped it there (NULL: the end of the file). */
static size_t replay(kv_store *s, const char *p, size_t len, const char **why, uint64_t *n,
                     int *err)
{
    size_t at = KV_MAGIC_LEN;

    *why = NULL;
    while (at < len) {
        uint32_t body, klen, vlen;
        int type;

        if (len - at < KV_REC_HEAD + KV_REC_FIXED) {
            *why = "a record cut short";
            break;
        }
        body = kv_get32(p + at + 4);
        if (body < KV_REC_FIXED || body > KV_REC_MAX_BODY) {
            *why = "an impossible record length";
            break;
        }
        if (len - at - KV_REC_HEAD < body) {
            *why = "a record cut short";
            break;
        }
        if (kv_crc32c(p + at + 4, 4 + (size_t)body) != kv_get32(p + at)) {
            *why = "a checksum mismatch";
            break;
        }
        type = (unsigned char)p[at + 8];
        klen = kv_get32(p + at + 17);
        vlen = kv_get32(p + at + 21);
        if ((uint64_t)KV_REC_FIXED + klen + vlen != body || type < KV_REC_PUT || type > KV_REC_SEQ ||
            (type != KV_REC_SEQ && (klen == 0 || klen > KV_MAX_KEY))) {
            *why = "a malformed record";
            break;
        }
        if ((*err = kv__apply(s, type, kv_get64(p + at + 9), p + at + 25, klen, p + at + 25 + klen,
                          vlen)) != 0)
            return at;
        (*n)++;
        at += KV_REC_HEAD + body;
    }
    return at;
}

/* Helper: a new file gets its magic, durably (the folder too). */
static int init_file(kv_store *s, int fd)
{
    int e;

    if (ftruncate(fd, 0) != 0)
        return errno;
    if ((e = kv__write_all(fd, KV_MAGIC, KV_MAGIC_LEN)) != 0)
        return e;
    if (fsync(fd) != 0)
        return errno;
    atomic_store(&s->file_size, KV_MAGIC_LEN);
    return kv__fsync_dir(s->path);
}

static void *load_job(void *arg)
{
    struct load_job *j = arg;
    kv_store *s = j->s;
    const char *why;
    char *p = NULL;
    size_t len = 0, good;

    if ((j->err = open_locked(j)) != 0)
        return NULL;
    if ((j->err = read_all(j->fd, &p, &len)) != 0)
        goto fail;
    if (len < KV_MAGIC_LEN && memcmp(p, KV_MAGIC, len) == 0) {
        j->err = init_file(s, j->fd); /* empty, or its magic torn */
        if (j->err != 0)
            goto fail;
        free(p);
        return NULL;
    }
    if (len < KV_MAGIC_LEN || memcmp(p, KV_MAGIC, KV_MAGIC_LEN) != 0) {
        kv__say(s, 3, "%s: not a kv log (no \"asynckv\" magic): refusing to touch it", s->path);
        j->err = EILSEQ;
        goto fail;
    }
    good = replay(s, p, len, &why, &j->records, &j->err);
    if (j->err != 0)
        goto fail;
    if (good < len) {
        /* Appending after the damage would hide every later record behind
         * it at the next open: the file must end where the good part does. */
        kv__say(s, 4, "%s: %s at byte offset %zu; dropping the %zu bytes from there, keeping the "
            "%llu records before it", s->path, why, good, len - good,
            (unsigned long long)j->records);
        if (ftruncate(j->fd, (off_t)good) != 0 || fsync(j->fd) != 0) {
            j->err = errno;
            goto fail;
        }
    }
    atomic_store(&s->file_size, good);
    free(p);
    return NULL;
fail:
    free(p);
    close(j->fd);
    j->fd = -1;
    return NULL;
}

int kv__load(kv_store *s, uint64_t *records)
{
    struct load_job j = {.s = s, .fd = -1};
    int64_t until = async_now_ms() + s->opt.lock_wait_ms;
    bool told = false;
    int err;

    while ((err = kv__on_helper(load_job, &j, &j.err)) == EWOULDBLOCK && async_now_ms() < until) {
        if (!told)
            kv__say(s, 6, "%s: locked by another store (a module stopping?): waiting up to %u ms",
                    s->path, s->opt.lock_wait_ms);
        told = true;
        if (async_sleep_ms(10) != 0)
            return errno;
    }
    if (err == 0) {
        s->fd = j.fd;
        *records = j.records;
    }
    return err;
}

