/* modules/kv/compact.c — compaction: the live table is written to
 * PATH.compact with what was logged meanwhile, fsynced and renamed over
 * the log, and the folder fsynced (store.h; locking in store_impl.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the build defines it for modules; the unit tests may not */
#endif
#include "store_impl.h"

#include <async_io/blocking.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct snap_item {
    char *key;      /* a copy: the entry may go once the locks are released */
    size_t klen;
    struct kv_value *val;
};

struct compact_job {
    const char *path;   /* the log */
    char *tmp;          /* path.compact */
    int fd;             /* tmp's descriptor */
    struct snap_item *items;
    size_t n;
    uint64_t seq;       /* next_seq at the snapshot */
    int old_fd;
    uint64_t from, to;  /* the old file's bytes to append after the snapshot */
    uint64_t size;      /* the new file's size */
    int err;
};

/* Helper: writes the snapshot into tmp. */
static void *snapshot_job(void *arg)
{
    struct compact_job *j = arg;
    struct kv_buf b = {0};
    char *rec;
    size_t i;

    /* as open_locked opens the log: it becomes the log */
    j->fd = open(j->tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0)
        goto fail;
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        goto fail;
    if (kv_buf_reserve(&b, KV_MAGIC_LEN + kv_rec_size(0, 0)) != 0)
        goto fail_enomem;
    memcpy(b.p, KV_MAGIC, KV_MAGIC_LEN);
    kv_rec_encode(b.p + KV_MAGIC_LEN, KV_REC_SEQ, j->seq, NULL, 0, NULL, 0);
    b.len = KV_MAGIC_LEN + kv_rec_size(0, 0);
    for (i = 0; i < j->n; i++) {
        size_t n = kv_rec_size(j->items[i].klen, j->items[i].val->len);

        if (b.len + n > (1u << 20) && b.len > 0) {
            if ((errno = kv__write_all(j->fd, b.p, b.len)) != 0)
                goto fail;
            j->size += b.len;
            b.len = 0;
        }
        if (kv_buf_reserve(&b, n) != 0)
            goto fail_enomem;
        rec = b.p + b.len;
        kv_rec_encode(rec, KV_REC_PUT, j->items[i].val->version, j->items[i].key, j->items[i].klen,
                   j->items[i].val->data, j->items[i].val->len);
        b.len += n;
    }
    if ((errno = kv__write_all(j->fd, b.p, b.len)) != 0)
        goto fail;
    j->size += b.len;
    free(b.p);
    j->err = 0;
    return NULL;
fail_enomem:
    errno = ENOMEM;
fail:
    j->err = errno ? errno : EIO;
    free(b.p);
    return NULL;
}

int kv__fsync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd, rc;

    if (copy == NULL)
        return ENOMEM;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return errno;
    rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* Helper: appends the old file's [from, to) to tmp, fsyncs, renames. */
static void *install_job(void *arg)
{
    struct compact_job *j = arg;
    char b[65536];
    uint64_t at = j->from;

    while (at < j->to) {
        size_t want = j->to - at < sizeof(b) ? (size_t)(j->to - at) : sizeof(b);
        ssize_t n = pread(j->old_fd, b, want, (off_t)at);

        if (n <= 0 || (errno = kv__write_all(j->fd, b, (size_t)n)) != 0) {
            j->err = n < 0 ? errno : n == 0 ? EIO : errno;
            return NULL;
        }
        at += (uint64_t)n;
        j->size += (uint64_t)n;
    }
    if (fdatasync(j->fd) != 0 || rename(j->tmp, j->path) != 0) {
        j->err = errno;
        return NULL;
    }
    j->err = kv__fsync_dir(j->path);
    return NULL;
}

static void *unlink_job(void *arg)
{
    struct compact_job *j = arg;

    if (j->fd >= 0)
        close(j->fd);
    unlink(j->tmp);
    return NULL;
}

/* Under sync_lock: every shard and write_lock held, the snapshot taken. */
static int snapshot(kv_store *s, struct compact_job *j)
{
    size_t cap = kv_store_count(s) + 1, i;

    j->items = malloc(cap * sizeof(*j->items));
    if (j->items == NULL)
        return ENOMEM;
    for (i = 0; i < NSHARDS; i++)
        for (size_t b = 0; b < s->shard[i].nbuckets; b++)
            for (struct entry *e = s->shard[i].buckets[b]; e != NULL; e = e->next) {
                if (j->n == cap)
                    return EAGAIN; /* cannot happen: count is exact under the locks */
                /* the entry may be freed once the locks go: keep the key
                 * in a copy, the value by reference */
                j->items[j->n].key = malloc(e->klen ? e->klen : 1);
                if (j->items[j->n].key == NULL)
                    return ENOMEM;
                memcpy(j->items[j->n].key, e->key, e->klen);
                j->items[j->n].klen = e->klen;
                j->items[j->n].val = e->val;
                atomic_fetch_add_explicit(&e->val->refs, 1, memory_order_relaxed);
                j->n++;
            }
    j->seq = atomic_load(&s->next_seq);
    return 0;
}

static void compact_job_free(struct compact_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->items[i].key);
        kv_value_release(j->items[i].val);
    }
    free(j->items);
    free(j->tmp);
}

/* Under sync_lock: (1) with every lock held, write out what is pending
 * and take the snapshot: the live table is then exactly the old file's
 * first `from` bytes; (2) unlocked, write the snapshot to path.compact;
 * (3) under write_lock, write out what is pending again, append the old
 * file's bytes past `from`, fsync, rename over, switch fd. */
static int compact_locked(kv_store *s)
{
    struct compact_job j = {.path = s->path, .fd = -1};
    int err = 0, i, old;

    if (asprintf(&j.tmp, "%s.compact", s->path) < 0)
        return ENOMEM;
    old = async_shield(1); /* the locks below must all be taken together */
    for (i = 0; i < NSHARDS; i++)
        async_mutex_lock(s->shard[i].lock);
    async_mutex_lock(s->write_lock);
    if (kv__write_pending(s) != 0)
        err = EIO;
    else
        err = snapshot(s, &j);
    j.from = s->file_size;
    async_mutex_unlock(s->write_lock);
    for (i = NSHARDS - 1; i >= 0; i--)
        async_mutex_unlock(s->shard[i].lock);
    if (err == 0)
        err = kv__on_helper(snapshot_job, &j, &j.err);
    if (err == 0) {
        async_mutex_lock(s->write_lock);
        if (kv__write_pending(s) != 0)
            err = EIO;
        j.old_fd = s->fd;
        j.to = s->file_size;
        if (err == 0)
            err = kv__on_helper(install_job, &j, &j.err);
        if (err == 0) {
            kv__on_helper(kv__close_job, &s->fd, NULL);
            kv__say(s, 6, "%s: compacted %llu bytes to %llu (%zu keys)", s->path,
                (unsigned long long)s->file_size, (unsigned long long)j.size, j.n);
            s->fd = j.fd;
            j.fd = -1;
            s->file_size = j.size;
            s->synced = atomic_load(&s->written); /* the new file was fsynced whole */
        }
        async_mutex_unlock(s->write_lock);
    }
    if (err != 0) {
        kv__on_helper(unlink_job, &j, NULL);
    }
    async_shield(old);
    compact_job_free(&j);
    return err;
}

int kv_store_compact(kv_store *s)
{
    int err;

    if (async_mutex_lock(s->sync_lock) != 0)
        return -1;
    err = compact_locked(s);
    async_mutex_unlock(s->sync_lock);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}
