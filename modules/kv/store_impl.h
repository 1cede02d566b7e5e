/* modules/kv/store_impl.h — the layout of a kv_store, shared by store.c
 * (the table, group commit, fsync), load.c (open and recovery) and
 * compact.c (snapshot and rename); nothing outside modules/kv/store*.c,
 * load.c and compact.c includes it.
 *
 * Invariants (who guards what):
 *   - shard[i].lock (async_mutex) guards shard[i]'s buckets and entries.
 *     A change appends its record to the log buffer while it holds its
 *     shard's lock, so the log holds a key's changes in the order the
 *     table made them.
 *   - buf_lock (async_mutex) guards `pending` and `appended` (bytes ever
 *     appended, a logical position independent of which file holds them).
 *     Held for a memcpy, never across a parking call but its own lock.
 *   - write_lock (async_mutex) guards `spare` (the batch being written),
 *     `fd` and `file_size`, and is the only writer of `written` (bytes
 *     that reached write(2); atomic, read anywhere) and `broken`.  Group
 *     commit: a change waits until written covers its record; the first
 *     waiter to take write_lock writes every record appended so far in
 *     one write(2), for all of them.
 *   - sync_lock (async_mutex) serialises fsync and compaction: only they
 *     replace fd, and they do it holding both sync_lock and write_lock, so
 *     either lock keeps fd stable.
 *   Lock order: sync_lock, shard locks (by index), write_lock, buf_lock.
 *   - next_seq, live_bytes, count: atomics, relaxed (figures and a counter
 *     whose order is fixed by the shard lock around its use).
 *   - A kv_value is immutable; refs counts the table's reference and each
 *     reader's (acq_rel on the drop that frees it).
 * Disk I/O runs on helper threads (async_blocking) with the calling fiber
 * shielded and without a deadline, so a job never outlives the memory it
 * writes from. */
#ifndef KV_STORE_IMPL_H
#define KV_STORE_IMPL_H

#include "record.h"
#include "store.h"

#include <async_io.h>
#include <async_io/mutex.h>

#include <stdatomic.h>
#include <stdbool.h>

#define NSHARDS 16

struct entry {
    struct entry *next;
    uint64_t hash;
    struct kv_value *val;
    size_t klen;
    char key[];                 /* klen bytes and a NUL */
};

struct shard {
    async_mutex *lock;
    struct entry **buckets;
    size_t nbuckets;            /* a power of two */
    size_t n;
};

struct kv_store {
    struct kv_store_options opt;
    char *path;
    struct shard shard[NSHARDS];

    async_mutex *buf_lock;
    struct kv_buf pending;
    uint64_t appended;

    async_mutex *write_lock;
    struct kv_buf spare;
    int fd;
    _Atomic uint64_t file_size; /* written under write_lock; read racily by the heuristic */
    _Atomic uint64_t written;
    atomic_bool broken;

    async_mutex *sync_lock;
    uint64_t synced;            /* `written` at the last fsync; under sync_lock */

    _Atomic uint64_t next_seq;
    _Atomic uint64_t live_bytes; /* record bytes of the live entries */
    atomic_size_t count;

    async_task *flusher;
    atomic_bool stopping;
};

/* A log line through opt.log (any thread). */
void kv__say(kv_store *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Runs fn(job) on a helper, shielded and without a deadline: *err_of_job
 * as fn left it (err_of_job may be NULL), or async_blocking's errno. */
int kv__on_helper(async_fn fn, void *job, const int *err_of_job);
/* write(2) until done: 0 or the errno. */
int kv__write_all(int fd, const char *p, size_t len);
/* A helper job: close(*(int *)arg). */
void *kv__close_job(void *arg);
/* Under write_lock: writes everything appended so far (store.c). */
int kv__write_pending(kv_store *s);
/* Replays one checked record into a table nobody shares yet (store.c):
 * 0 or ENOMEM. */
int kv__apply(kv_store *s, int type, uint64_t seq, const char *key, size_t klen,
              const char *val, size_t vlen);
/* fsync of the folder that holds path: 0 or the errno (compact.c). */
int kv__fsync_dir(const char *path);
/* Opens s->path into s->fd, waiting for another store's lock, and loads
 * it (load.c): 0 and *records replayed, or the errno. */
int kv__load(kv_store *s, uint64_t *records);

#endif
