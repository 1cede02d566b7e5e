/* modules/kv/store.c — the kv table, group commit of its log, fsync and
 * the flusher, open and close (store.h says what "acknowledged" means;
 * store_impl.h who guards what).  Loading is in load.c, compaction in
 * compact.c, the record format in record.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the build defines it for modules; the unit tests may not */
#endif
#include "store_impl.h"

#include <async_io/blocking.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- log lines ---- */

void kv__say(kv_store *s, int level, const char *fmt, ...)
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
        atomic_fetch_sub_explicit(&s->live_bytes, kv_rec_size(klen, e->val->len),
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
    atomic_fetch_add_explicit(&s->live_bytes, kv_rec_size(klen, v->len), memory_order_relaxed);
    return 0;
}

static void table_remove(kv_store *s, struct shard *sh, struct entry **at)
{
    struct entry *e = *at;

    *at = e->next;
    sh->n--;
    atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->live_bytes, kv_rec_size(e->klen, e->val->len),
                              memory_order_relaxed);
    kv_value_release(e->val);
    free(e);
}
/* (store_impl.h) No locks: the table is not shared yet. */
int kv__apply(kv_store *s, int type, uint64_t seq, const char *key, size_t klen,
                 const char *val, size_t vlen)
{
    uint64_t h = hash_key(key, klen);
    struct shard *sh = shard_of(s, h);
    struct entry **at;
    struct kv_value *v;

    if (seq >= atomic_load(&s->next_seq))
        atomic_store(&s->next_seq, type == KV_REC_SEQ ? seq : seq + 1);
    if (type == KV_REC_PUT) {
        v = value_new(val, vlen, seq);
        if (v == NULL || table_set(s, sh, h, key, klen, v) != 0) {
            kv_value_release(v);
            return ENOMEM;
        }
    } else if (type == KV_REC_DEL && *(at = find(sh, h, key, klen)) != NULL) {
        table_remove(s, sh, at);
    }
    return 0;
}

/* ---- helper-thread jobs ---- */

struct io_job {
    int fd;
    const char *p;
    size_t len;
    int err;
};

int kv__write_all(int fd, const char *p, size_t len)
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

    j->err = kv__write_all(j->fd, j->p, j->len);
    return NULL;
}

static void *fsync_job(void *arg)
{
    struct io_job *j = arg;

    j->err = fdatasync(j->fd) == 0 ? 0 : errno;
    return NULL;
}

int kv__on_helper(async_fn fn, void *job, const int *err_of_job)
{
    int old = async_shield(1);
    int64_t dl = async_deadline(-1);
    int rc = async_blocking(fn, job, NULL);
    int err = rc != 0 ? errno : err_of_job != NULL ? *err_of_job : 0;

    async_deadline(dl);
    async_shield(old);
    return err;
}

void *kv__close_job(void *arg)
{
    close(*(int *)arg);
    return NULL;
}

/* ---- group commit ---- */

/* Under the caller's shard lock: appends a record; *end is its logical
 * end.  0, or -1 ENOMEM / ECANCELED. */
static int log_append(kv_store *s, int type, uint64_t seq, const char *key, size_t klen,
                      const void *val, size_t vlen, uint64_t *end)
{
    size_t n = kv_rec_size(klen, vlen);

    if (async_mutex_lock(s->buf_lock) != 0)
        return -1;
    if (kv_buf_reserve(&s->pending, n) != 0) {
        async_mutex_unlock(s->buf_lock);
        errno = ENOMEM;
        return -1;
    }
    kv_rec_encode(s->pending.p + s->pending.len, type, seq, key, klen, val, vlen);
    s->pending.len += n;
    s->appended += n;
    *end = s->appended;
    async_mutex_unlock(s->buf_lock);
    return 0;
}

/* Under write_lock: writes everything appended so far.  0, or -1 EIO (and
 * the store is broken from then on). */
int kv__write_pending(kv_store *s)
{
    struct kv_buf t;
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
    err = kv__on_helper(write_job, &job, &job.err);
    if (err != 0) {
        /* A partial write leaves a torn record at the end of the file; open
         * drops it.  Nothing after it may be written or acknowledged. */
        atomic_store(&s->broken, true);
        kv__say(s, 3, "%s: write: %s; refusing changes from now on", s->path, strerror(err));
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
        rc = kv__write_pending(s);
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
    if (log_append(s, KV_REC_PUT, seq, key, klen, val, vlen, &end) != 0 ||
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
    if (log_append(s, KV_REC_DEL, seq, key, klen, NULL, 0, &end) != 0) {
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
    rc = kv__write_pending(s);
    async_mutex_unlock(s->write_lock);
    async_shield(old);
    w = atomic_load_explicit(&s->written, memory_order_acquire);
    if (w == s->synced)
        return rc;
    job = (struct io_job){.fd = s->fd};
    err = kv__on_helper(fsync_job, &job, &job.err);
    if (err != 0) {
        kv__say(s, 3, "%s: fdatasync: %s", s->path, strerror(err));
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

    return size > s->opt.compact_min_bytes && size > 2 * live + KV_MAGIC_LEN;
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
            int err = kv__on_helper(fsync_job, &job, &job.err);

            if (err == 0)
                s->synced = w;
            else
                kv__say(s, 3, "%s: fdatasync: %s", s->path, strerror(err));
        }
        async_mutex_unlock(s->sync_lock);
        if (wants_compaction(s) && kv_store_compact(s) != 0 && errno != ECANCELED)
            kv__say(s, 4, "%s: compaction failed: %s", s->path, strerror(errno));
    }
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
    uint64_t records = 0;
    kv_store *s;
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
    if ((err = kv__load(s, &records)) != 0)
        goto fail;
    s->flusher = async_spawn(flusher, s);
    if (s->flusher == NULL) {
        err = errno;
        goto fail_fd;
    }
    kv__say(s, 6, "%s: loaded %zu keys from %llu records (%llu bytes)", s->path,
            kv_store_count(s), (unsigned long long)records,
            (unsigned long long)atomic_load(&s->file_size));
    *out = s;
    return 0;
fail_fd:
    kv__on_helper(kv__close_job, &s->fd, NULL);
fail:
    if (err != EILSEQ)
        kv__say(s, 3, "%s: cannot open: %s", s->path, strerror(err));
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
        kv__say(s, 3, "%s: closing with changes that may not be on disk", s->path);
        rc = -1;
        errno = EIO;
    }
    kv__on_helper(kv__close_job, &s->fd, NULL);
    store_free(s);
    async_shield(old);
    return rc;
}
