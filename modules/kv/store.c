/* modules/kv/store.c — the kv table and its log (see store.h for the file
 * format and what "acknowledged" means).
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
#define _GNU_SOURCE
#include "store.h"

#include <async_io.h>
#include <async_io/blocking.h>
#include <async_io/mutex.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define NSHARDS 16
#define MAGIC "asynckv\1"
#define MAGIC_LEN 8
#define REC_HEAD 8              /* crc, body length */
#define REC_FIXED 17            /* type, seq, key length, value length */
#define REC_MAX_BODY (1u << 31) /* a longer length is damage, not a record */

enum { REC_PUT = 1, REC_DEL = 2, REC_SEQ = 3 };

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

struct buf {
    char *p;
    size_t len, cap;
};

struct kv_store {
    struct kv_store_options opt;
    char *path;
    struct shard shard[NSHARDS];

    async_mutex *buf_lock;
    struct buf pending;
    uint64_t appended;

    async_mutex *write_lock;
    struct buf spare;
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

/* ---- log lines ---- */

static void say(kv_store *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(kv_store *s, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (s->opt.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->opt.log(s->opt.log_ctx, level, msg);
}

/* ---- CRC32C (Castagnoli), bytewise table: the log is not the hot path
 * the table is, and this needs no CPU feature ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c(const void *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const unsigned char *b = p;
    uint32_t c = 0xFFFFFFFFu;

    pthread_once(&once, crc_init);
    while (n-- > 0)
        c = crc_table[(c ^ *b++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- little-endian fields ---- */

static void put32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

static void put64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

static uint32_t get32(const char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static uint64_t get64(const char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static size_t rec_size(size_t klen, size_t vlen)
{
    return REC_HEAD + REC_FIXED + klen + vlen;
}

/* Encodes a record at p (rec_size bytes). */
static void rec_encode(char *p, int type, uint64_t seq, const char *key, size_t klen,
                       const void *val, size_t vlen)
{
    size_t body = REC_FIXED + klen + vlen;

    put32(p + 4, (uint32_t)body);
    p[8] = (char)type;
    put64(p + 9, seq);
    put32(p + 17, (uint32_t)klen);
    put32(p + 21, (uint32_t)vlen);
    if (klen > 0)
        memcpy(p + 25, key, klen);
    if (vlen > 0)
        memcpy(p + 25 + klen, val, vlen);
    put32(p, crc32c(p + 4, 4 + body));
}

static int buf_reserve(struct buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *p;

    if (b->len + more <= b->cap)
        return 0;
    while (cap < b->len + more)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---- values and the table ---- */

static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    while (n-- > 0)
        h = (h ^ (unsigned char)*k++) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static struct kv_value *value_new(const void *p, size_t len, uint64_t version)
{
    struct kv_value *v = malloc(sizeof(*v) + len + 1);

    if (v == NULL)
        return NULL;
    atomic_init(&v->refs, 1);
    v->version = version;
    v->len = len;
    if (len > 0)
        memcpy(v->data, p, len);
    v->data[len] = '\0';
    return v;
}

void kv_value_release(struct kv_value *v)
{
    if (v != NULL && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        free(v);
}

static struct shard *shard_of(kv_store *s, uint64_t h)
{
    return &s->shard[h >> 60]; /* top bits: the bucket index uses the low ones */
}

static struct entry **find(struct shard *sh, uint64_t h, const char *key, size_t klen)
{
    struct entry **e = &sh->buckets[h & (sh->nbuckets - 1)];

    for (; *e != NULL; e = &(*e)->next)
        if ((*e)->hash == h && (*e)->klen == klen && memcmp((*e)->key, key, klen) == 0)
            return e;
    return e;
}

static int grow(struct shard *sh)
{
    size_t n = sh->nbuckets * 2, i;
    struct entry **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return -1;
    for (i = 0; i < sh->nbuckets; i++) {
        struct entry *e = sh->buckets[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = n;
    return 0;
}

/* Sets key to v (taking v's reference) in the table: 0, or -1 ENOMEM. */
static int table_set(kv_store *s, struct shard *sh, uint64_t h, const char *key, size_t klen,
                     struct kv_value *v)
{
    struct entry **at = find(sh, h, key, klen), *e = *at;

    if (e != NULL) {
        atomic_fetch_sub_explicit(&s->live_bytes, rec_size(klen, e->val->len),
                                  memory_order_relaxed);
        kv_value_release(e->val);
        e->val = v;
    } else {
        if (sh->n >= sh->nbuckets && grow(sh) == 0)
            at = find(sh, h, key, klen);
        e = malloc(sizeof(*e) + klen + 1);
        if (e == NULL)
            return -1;
        e->next = NULL;
        e->hash = h;
        e->klen = klen;
        memcpy(e->key, key, klen);
        e->key[klen] = '\0';
        e->val = v;
        *at = e;
        sh->n++;
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&s->live_bytes, rec_size(klen, v->len), memory_order_relaxed);
    return 0;
}

static void table_remove(kv_store *s, struct shard *sh, struct entry **at)
{
    struct entry *e = *at;

    *at = e->next;
    sh->n--;
    atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->live_bytes, rec_size(e->klen, e->val->len),
                              memory_order_relaxed);
    kv_value_release(e->val);
    free(e);
}

/* ---- helper-thread jobs ---- */

struct io_job {
    int fd;
    const char *p;
    size_t len;
    int err;
};

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *write_job(void *arg)
{
    struct io_job *j = arg;

    j->err = write_all(j->fd, j->p, j->len);
    return NULL;
}

static void *fsync_job(void *arg)
{
    struct io_job *j = arg;

    j->err = fdatasync(j->fd) == 0 ? 0 : errno;
    return NULL;
}

/* Runs fn(job) on a helper, shielded and without a deadline (see top):
 * *err as fn left it, or the errno of async_blocking itself. */
static int on_helper(async_fn fn, void *job, const int *err_of_job)
{
    int old = async_shield(1);
    int64_t dl = async_deadline(-1);
    int rc = async_blocking(fn, job, NULL);
    int err = rc != 0 ? errno : err_of_job != NULL ? *err_of_job : 0;

    async_deadline(dl);
    async_shield(old);
    return err;
}

/* ---- group commit ---- */

/* Under the caller's shard lock: appends a record; *end is its logical
 * end.  0, or -1 ENOMEM / ECANCELED. */
static int log_append(kv_store *s, int type, uint64_t seq, const char *key, size_t klen,
                      const void *val, size_t vlen, uint64_t *end)
{
    size_t n = rec_size(klen, vlen);

    if (async_mutex_lock(s->buf_lock) != 0)
        return -1;
    if (buf_reserve(&s->pending, n) != 0) {
        async_mutex_unlock(s->buf_lock);
        errno = ENOMEM;
        return -1;
    }
    rec_encode(s->pending.p + s->pending.len, type, seq, key, klen, val, vlen);
    s->pending.len += n;
    s->appended += n;
    *end = s->appended;
    async_mutex_unlock(s->buf_lock);
    return 0;
}

/* Under write_lock: writes everything appended so far.  0, or -1 EIO (and
 * the store is broken from then on). */
static int write_pending(kv_store *s)
{
    struct buf t;
    uint64_t upto;
    struct io_job job;
    int err, old;

    if (atomic_load(&s->broken)) {
        errno = EIO;
        return -1;
    }
    old = async_shield(1); /* buf_lock parks at most briefly; the swap must happen */
    async_mutex_lock(s->buf_lock);
    t = s->pending;
    s->pending = s->spare;
    s->spare = t;
    upto = s->appended;
    async_mutex_unlock(s->buf_lock);
    async_shield(old);
    if (s->spare.len == 0)
        return 0;
    job = (struct io_job){.fd = s->fd, .p = s->spare.p, .len = s->spare.len};
    err = on_helper(write_job, &job, &job.err);
    if (err != 0) {
        /* A partial write leaves a torn record at the end of the file; open
         * drops it.  Nothing after it may be written or acknowledged. */
        atomic_store(&s->broken, true);
        say(s, 3, "%s: write: %s; refusing changes from now on", s->path, strerror(err));
        errno = EIO;
        return -1;
    }
    s->file_size += s->spare.len;
    s->spare.len = 0;
    atomic_store_explicit(&s->written, upto, memory_order_release);
    return 0;
}

/* Parks until the log bytes up to end reached write(2): 0, or -1 EIO.
 * Shielded and without a deadline: the change is in the table already,
 * so its caller must learn whether it was acknowledged, not give up. */
static int log_wait(kv_store *s, uint64_t end)
{
    int rc = 0, old;
    int64_t dl;

    if (atomic_load_explicit(&s->written, memory_order_acquire) >= end)
        return 0;
    old = async_shield(1);
    dl = async_deadline(-1);
    async_mutex_lock(s->write_lock);
    if (atomic_load_explicit(&s->written, memory_order_acquire) < end)
        rc = write_pending(s);
    async_mutex_unlock(s->write_lock);
    async_deadline(dl);
    async_shield(old);
    return rc;
}

/* ---- the operations ---- */

int kv_store_get(kv_store *s, const char *key, size_t klen, struct kv_value **out)
{
    uint64_t h = hash_key(key, klen);
    struct shard *sh = shard_of(s, h);
    struct entry *e;
    struct kv_value *v = NULL;

    if (async_mutex_lock(sh->lock) != 0)
        return -1;
    e = *find(sh, h, key, klen);
    if (e != NULL) {
        v = e->val; /* read under the lock: a put replaces it */
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    }
    async_mutex_unlock(sh->lock);
    *out = v;
    return v != NULL ? KV_OK : KV_NOT_FOUND;
}

static bool cond_holds(const struct kv_cond *c, const struct entry *e)
{
    if (c == NULL || c->kind == KV_ALWAYS)
        return true;
    if (e == NULL)
        return false;
    if (c->kind == KV_IF_EXISTS)
        return true;
    for (size_t i = 0; i < c->n && i < KV_MAX_IF_MATCH; i++)
        if (c->versions[i] == e->val->version)
            return true;
    return false;
}

static int check_key(kv_store *s, size_t klen)
{
    if (klen == 0 || klen > KV_MAX_KEY) {
        errno = EINVAL;
        return -1;
    }
    if (atomic_load(&s->broken)) {
        errno = EIO;
        return -1;
    }
    return 0;
}

int kv_store_put(kv_store *s, const char *key, size_t klen, const void *val, size_t vlen,
                 const struct kv_cond *cond, uint64_t *version)
{
    uint64_t h = hash_key(key, klen), seq, end;
    struct shard *sh = shard_of(s, h);
    struct kv_value *v;
    int rc;

    if (check_key(s, klen) != 0)
        return -1;
    if (async_mutex_lock(sh->lock) != 0)
        return -1;
    if (!cond_holds(cond, *find(sh, h, key, klen))) {
        async_mutex_unlock(sh->lock);
        return KV_PRECONDITION;
    }
    seq = atomic_fetch_add_explicit(&s->next_seq, 1, memory_order_relaxed);
    v = value_new(val, vlen, seq);
    if (v == NULL) {
        async_mutex_unlock(sh->lock);
        errno = ENOMEM;
        return -1;
    }
    /* The table changes only once its record is in the buffer, so what a
     * reader sees is always on its way to the log. */
    if (log_append(s, REC_PUT, seq, key, klen, val, vlen, &end) != 0 ||
        table_set(s, sh, h, key, klen, v) != 0) {
        /* A record appended but not set (ENOMEM) is replayed on the next
         * open: the change then happens, late but whole. */
        async_mutex_unlock(sh->lock);
        kv_value_release(v);
        return -1;
    }
    async_mutex_unlock(sh->lock);
    rc = log_wait(s, end);
    if (rc == 0 && version != NULL)
        *version = seq;
    return rc == 0 ? KV_OK : -1;
}

int kv_store_delete(kv_store *s, const char *key, size_t klen, const struct kv_cond *cond)
{
    uint64_t h = hash_key(key, klen), seq, end;
    struct shard *sh = shard_of(s, h);
    struct entry **at;

    if (check_key(s, klen) != 0)
        return -1;
    if (async_mutex_lock(sh->lock) != 0)
        return -1;
    at = find(sh, h, key, klen);
    if (!cond_holds(cond, *at) || *at == NULL) {
        async_mutex_unlock(sh->lock);
        return *at == NULL && (cond == NULL || cond->kind == KV_ALWAYS) ? KV_NOT_FOUND
                                                                        : KV_PRECONDITION;
    }
    seq = atomic_fetch_add_explicit(&s->next_seq, 1, memory_order_relaxed);
    if (log_append(s, REC_DEL, seq, key, klen, NULL, 0, &end) != 0) {
        async_mutex_unlock(sh->lock);
        return -1;
    }
    table_remove(s, sh, at);
    async_mutex_unlock(sh->lock);
    return log_wait(s, end) == 0 ? KV_OK : -1;
}

size_t kv_store_count(kv_store *s)
{
    return atomic_load_explicit(&s->count, memory_order_relaxed);
}

void kv_keys_free(struct kv_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    free(k->lens);
    *k = (struct kv_keys){0};
}

struct key_ref {
    char *k;
    size_t len;
};

static int key_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->len < y->len ? x->len : y->len);

    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Under sh's lock: copies the matching keys into *v. */
static int list_shard(struct shard *sh, const char *prefix, size_t plen, struct key_ref **v,
                      size_t *n, size_t *cap)
{
    for (size_t b = 0; b < sh->nbuckets; b++)
        for (struct entry *e = sh->buckets[b]; e != NULL; e = e->next) {
            if (e->klen < plen || (plen > 0 && memcmp(e->key, prefix, plen) != 0))
                continue;
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                struct key_ref *nv = realloc(*v, nc * sizeof(*nv));

                if (nv == NULL)
                    return -1;
                *v = nv;
                *cap = nc;
            }
            (*v)[*n].k = malloc(e->klen + 1);
            if ((*v)[*n].k == NULL)
                return -1;
            memcpy((*v)[*n].k, e->key, e->klen + 1);
            (*v)[*n].len = e->klen;
            (*n)++;
        }
    return 0;
}

int kv_store_list(kv_store *s, const char *prefix, size_t plen, struct kv_keys *out)
{
    struct key_ref *v = NULL;
    size_t n = 0, cap = 0, i;
    int err = 0;

    *out = (struct kv_keys){0};
    for (i = 0; i < NSHARDS && err == 0; i++) {
        if (async_mutex_lock(s->shard[i].lock) != 0) {
            err = errno;
            break;
        }
        if (list_shard(&s->shard[i], prefix, plen, &v, &n, &cap) != 0)
            err = ENOMEM;
        async_mutex_unlock(s->shard[i].lock);
    }
    if (err == 0) {
        out->keys = malloc((n ? n : 1) * sizeof(*out->keys));
        out->lens = malloc((n ? n : 1) * sizeof(*out->lens));
        if (out->keys == NULL || out->lens == NULL)
            err = ENOMEM;
    }
    if (err != 0) {
        for (i = 0; i < n; i++)
            free(v[i].k);
        free(v);
        free(out->keys);
        free(out->lens);
        *out = (struct kv_keys){0};
        errno = err;
        return -1;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), key_cmp);
    for (i = 0; i < n; i++) {
        out->keys[i] = v[i].k;
        out->lens[i] = v[i].len;
    }
    out->n = n;
    free(v);
    return 0;
}

/* ---- fsync and the flusher ---- */

/* Under sync_lock. */
static int sync_now(kv_store *s)
{
    struct io_job job;
    uint64_t w;
    int err, rc = 0, old;

    old = async_shield(1);
    async_mutex_lock(s->write_lock);
    rc = write_pending(s);
    async_mutex_unlock(s->write_lock);
    async_shield(old);
    w = atomic_load_explicit(&s->written, memory_order_acquire);
    if (w == s->synced)
        return rc;
    job = (struct io_job){.fd = s->fd};
    err = on_helper(fsync_job, &job, &job.err);
    if (err != 0) {
        say(s, 3, "%s: fdatasync: %s", s->path, strerror(err));
        errno = EIO;
        return -1;
    }
    s->synced = w;
    return rc;
}

int kv_store_sync(kv_store *s)
{
    int rc;

    if (async_mutex_lock(s->sync_lock) != 0)
        return -1;
    rc = sync_now(s);
    async_mutex_unlock(s->sync_lock);
    return rc;
}

static bool wants_compaction(kv_store *s)
{
    uint64_t live = atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
    uint64_t size = s->file_size; /* a racy read for a heuristic: fine */

    return size > s->opt.compact_min_bytes && size > 2 * live + MAGIC_LEN;
}

static void *flusher(void *arg)
{
    kv_store *s = arg;

    while (!atomic_load(&s->stopping)) {
        if (async_sleep_ms(s->opt.sync_interval_ms) != 0)
            break; /* cancelled: close syncs */
        if (async_mutex_lock(s->sync_lock) != 0)
            break;
        /* Only acknowledged bytes need the fsync, and those reached
         * write(2) already: sync what was written, not what is pending. */
        if (atomic_load_explicit(&s->written, memory_order_acquire) != s->synced) {
            struct io_job job = {.fd = s->fd};
            uint64_t w = atomic_load_explicit(&s->written, memory_order_acquire);
            int err = on_helper(fsync_job, &job, &job.err);

            if (err == 0)
                s->synced = w;
            else
                say(s, 3, "%s: fdatasync: %s", s->path, strerror(err));
        }
        async_mutex_unlock(s->sync_lock);
        if (wants_compaction(s) && kv_store_compact(s) != 0 && errno != ECANCELED)
            say(s, 4, "%s: compaction failed: %s", s->path, strerror(errno));
    }
    return NULL;
}

/* ---- compaction ---- */

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
    struct buf b = {0};
    char *rec;
    size_t i;

    /* as open_locked opens the log: it becomes the log */
    j->fd = open(j->tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0)
        goto fail;
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        goto fail;
    if (buf_reserve(&b, MAGIC_LEN + rec_size(0, 0)) != 0)
        goto fail_enomem;
    memcpy(b.p, MAGIC, MAGIC_LEN);
    rec_encode(b.p + MAGIC_LEN, REC_SEQ, j->seq, NULL, 0, NULL, 0);
    b.len = MAGIC_LEN + rec_size(0, 0);
    for (i = 0; i < j->n; i++) {
        size_t n = rec_size(j->items[i].klen, j->items[i].val->len);

        if (b.len + n > (1u << 20) && b.len > 0) {
            if ((errno = write_all(j->fd, b.p, b.len)) != 0)
                goto fail;
            j->size += b.len;
            b.len = 0;
        }
        if (buf_reserve(&b, n) != 0)
            goto fail_enomem;
        rec = b.p + b.len;
        rec_encode(rec, REC_PUT, j->items[i].val->version, j->items[i].key, j->items[i].klen,
                   j->items[i].val->data, j->items[i].val->len);
        b.len += n;
    }
    if ((errno = write_all(j->fd, b.p, b.len)) != 0)
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

static int fsync_dir(const char *path)
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

        if (n <= 0 || (errno = write_all(j->fd, b, (size_t)n)) != 0) {
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
    j->err = fsync_dir(j->path);
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

static void *close_job(void *arg)
{
    close(*(int *)arg);
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
    if (write_pending(s) != 0)
        err = EIO;
    else
        err = snapshot(s, &j);
    j.from = s->file_size;
    async_mutex_unlock(s->write_lock);
    for (i = NSHARDS - 1; i >= 0; i--)
        async_mutex_unlock(s->shard[i].lock);
    if (err == 0)
        err = on_helper(snapshot_job, &j, &j.err);
    if (err == 0) {
        async_mutex_lock(s->write_lock);
        if (write_pending(s) != 0)
            err = EIO;
        j.old_fd = s->fd;
        j.to = s->file_size;
        if (err == 0)
            err = on_helper(install_job, &j, &j.err);
        if (err == 0) {
            on_helper(close_job, &s->fd, NULL);
            say(s, 6, "%s: compacted %llu bytes to %llu (%zu keys)", s->path,
                (unsigned long long)s->file_size, (unsigned long long)j.size, j.n);
            s->fd = j.fd;
            j.fd = -1;
            s->file_size = j.size;
            s->synced = atomic_load(&s->written); /* the new file was fsynced whole */
        }
        async_mutex_unlock(s->write_lock);
    }
    if (err != 0) {
        on_helper(unlink_job, &j, NULL);
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

/* ---- open: lock, load, recover ---- */

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

/* Applies one checked record to the table (no locks: not shared yet). */
static int apply(kv_store *s, int type, uint64_t seq, const char *key, size_t klen,
                 const char *val, size_t vlen)
{
    uint64_t h = hash_key(key, klen);
    struct shard *sh = shard_of(s, h);
    struct entry **at;
    struct kv_value *v;

    if (seq >= atomic_load(&s->next_seq))
        atomic_store(&s->next_seq, type == REC_SEQ ? seq : seq + 1);
    if (type == REC_PUT) {
        v = value_new(val, vlen, seq);
        if (v == NULL || table_set(s, sh, h, key, klen, v) != 0) {
            kv_value_release(v);
            return ENOMEM;
        }
    } else if (type == REC_DEL && *(at = find(sh, h, key, klen)) != NULL) {
        table_remove(s, sh, at);
    }
    return 0;
}

/* Parses the records of p[MAGIC_LEN, len): the offset where the good ones
 * end; *why says what stopped it there (NULL: the end of the file). */
static size_t replay(kv_store *s, const char *p, size_t len, const char **why, uint64_t *n,
                     int *err)
{
    size_t at = MAGIC_LEN;

    *why = NULL;
    while (at < len) {
        uint32_t body, klen, vlen;
        int type;

        if (len - at < REC_HEAD + REC_FIXED) {
            *why = "a record cut short";
            break;
        }
        body = get32(p + at + 4);
        if (body < REC_FIXED || body > REC_MAX_BODY) {
            *why = "an impossible record length";
            break;
        }
        if (len - at - REC_HEAD < body) {
            *why = "a record cut short";
            break;
        }
        if (crc32c(p + at + 4, 4 + (size_t)body) != get32(p + at)) {
            *why = "a checksum mismatch";
            break;
        }
        type = (unsigned char)p[at + 8];
        klen = get32(p + at + 17);
        vlen = get32(p + at + 21);
        if ((uint64_t)REC_FIXED + klen + vlen != body || type < REC_PUT || type > REC_SEQ ||
            (type != REC_SEQ && (klen == 0 || klen > KV_MAX_KEY))) {
            *why = "a malformed record";
            break;
        }
        if ((*err = apply(s, type, get64(p + at + 9), p + at + 25, klen, p + at + 25 + klen,
                          vlen)) != 0)
            return at;
        (*n)++;
        at += REC_HEAD + body;
    }
    return at;
}

/* Helper: a new file gets its magic, durably (the folder too). */
static int init_file(kv_store *s, int fd)
{
    int e;

    if (ftruncate(fd, 0) != 0)
        return errno;
    if ((e = write_all(fd, MAGIC, MAGIC_LEN)) != 0)
        return e;
    if (fsync(fd) != 0)
        return errno;
    atomic_store(&s->file_size, MAGIC_LEN);
    return fsync_dir(s->path);
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
    if (len < MAGIC_LEN && memcmp(p, MAGIC, len) == 0) {
        j->err = init_file(s, j->fd); /* empty, or its magic torn */
        if (j->err != 0)
            goto fail;
        free(p);
        return NULL;
    }
    if (len < MAGIC_LEN || memcmp(p, MAGIC, MAGIC_LEN) != 0) {
        say(s, 3, "%s: not a kv log (no \"asynckv\" magic): refusing to touch it", s->path);
        j->err = EILSEQ;
        goto fail;
    }
    good = replay(s, p, len, &why, &j->records, &j->err);
    if (j->err != 0)
        goto fail;
    if (good < len) {
        /* Appending after the damage would hide every later record behind
         * it at the next open: the file must end where the good part does. */
        say(s, 4, "%s: %s at byte offset %zu; dropping the %zu bytes from there, keeping the "
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

static void store_free(kv_store *s)
{
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &s->shard[i];

        for (size_t b = 0; sh->buckets != NULL && b < sh->nbuckets; b++)
            while (sh->buckets[b] != NULL)
                table_remove(s, sh, &sh->buckets[b]);
        free(sh->buckets);
        if (sh->lock != NULL)
            async_mutex_free(sh->lock);
    }
    if (s->buf_lock != NULL)
        async_mutex_free(s->buf_lock);
    if (s->write_lock != NULL)
        async_mutex_free(s->write_lock);
    if (s->sync_lock != NULL)
        async_mutex_free(s->sync_lock);
    free(s->pending.p);
    free(s->spare.p);
    free(s->path);
    free(s);
}

static kv_store *store_new(const struct kv_store_options *opt)
{
    kv_store *s = calloc(1, sizeof(*s));
    bool ok;

    if (s == NULL)
        return NULL;
    s->opt = *opt;
    if (s->opt.sync_interval_ms == 0)
        s->opt.sync_interval_ms = 100;
    if (s->opt.lock_wait_ms == 0)
        s->opt.lock_wait_ms = 10000;
    if (s->opt.compact_min_bytes == 0)
        s->opt.compact_min_bytes = 4 << 20;
    s->fd = -1;
    atomic_init(&s->next_seq, 1);
    s->path = strdup(opt->path);
    s->buf_lock = async_mutex_new();
    s->write_lock = async_mutex_new();
    s->sync_lock = async_mutex_new();
    ok = s->path != NULL && s->buf_lock != NULL && s->write_lock != NULL && s->sync_lock != NULL;
    for (int i = 0; i < NSHARDS && ok; i++) {
        s->shard[i].nbuckets = 64;
        s->shard[i].buckets = calloc(64, sizeof(struct entry *));
        s->shard[i].lock = async_mutex_new();
        ok = s->shard[i].buckets != NULL && s->shard[i].lock != NULL;
    }
    if (!ok) {
        store_free(s);
        return NULL;
    }
    return s;
}

int kv_store_open(const struct kv_store_options *opt, kv_store **out)
{
    struct load_job j = {.fd = -1};
    kv_store *s;
    int64_t until;
    bool told = false;
    int err;

    if (opt == NULL || opt->path == NULL || opt->path[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    s = store_new(opt);
    if (s == NULL) {
        errno = ENOMEM;
        return -1;
    }
    j.s = s;
    until = async_now_ms() + s->opt.lock_wait_ms;
    while ((err = on_helper(load_job, &j, &j.err)) == EWOULDBLOCK && async_now_ms() < until) {
        if (!told)
            say(s, 6, "%s: locked by another store (a module stopping?): waiting up to %u ms",
                s->path, s->opt.lock_wait_ms);
        told = true;
        if (async_sleep_ms(10) != 0) {
            err = errno;
            break;
        }
    }
    if (err != 0)
        goto fail;
    s->fd = j.fd;
    s->flusher = async_spawn(flusher, s);
    if (s->flusher == NULL) {
        err = errno;
        goto fail_fd;
    }
    say(s, 6, "%s: loaded %zu keys from %llu records (%llu bytes)", s->path, kv_store_count(s),
        (unsigned long long)j.records, (unsigned long long)atomic_load(&s->file_size));
    *out = s;
    return 0;
fail_fd:
    on_helper(close_job, &s->fd, NULL);
fail:
    if (err != EILSEQ)
        say(s, 3, "%s: cannot open: %s", s->path, strerror(err));
    store_free(s);
    errno = err;
    return -1;
}

int kv_store_close(kv_store *s)
{
    int old = async_shield(1), rc;

    atomic_store(&s->stopping, true);
    async_cancel(s->flusher);
    async_join(s->flusher, NULL);
    async_mutex_lock(s->sync_lock);
    rc = sync_now(s);
    async_mutex_unlock(s->sync_lock);
    if (rc != 0 || atomic_load(&s->broken)) {
        say(s, 3, "%s: closing with changes that may not be on disk", s->path);
        rc = -1;
        errno = EIO;
    }
    on_helper(close_job, &s->fd, NULL);
    store_free(s);
    async_shield(old);
    return rc;
}
