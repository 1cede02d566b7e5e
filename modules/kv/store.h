/* modules/kv/store.h — the kv module's store: an in-memory table backed by
 * an append-only log file.  No HTTP here; kv.c serves it.
 *
 * Durability, in plain words.  A change (put, delete) is *acknowledged*
 * when kv_store_put / kv_store_delete returns KV_OK: by then its record
 * has been handed to write(2) on the log file (the write is done on a
 * helper thread, async_blocking, so no worker ever waits for the disk).
 * A flusher fiber fdatasync()s the log at least every sync_interval_ms.
 * So:
 *   - the process killed (SIGKILL, a crash): nothing acknowledged is lost,
 *     the bytes are in the kernel's page cache;
 *   - the machine or the OS going down: at most the last sync_interval_ms
 *     of acknowledged changes may be lost;
 *   - kv_store_close (SIGTERM, a reload) writes and fsyncs everything.
 * A record cut short or damaged (a torn write at power loss, garbage
 * appended) is detected on open by its length and CRC32C; it and all
 * after it are dropped with a warning naming the byte offset, and every
 * record before it is recovered.
 *
 * The file.  An 8-byte magic "asynckv\1", then records:
 *     u32 crc32c of the bytes after it | u32 body length |
 *     u8 type | u64 seq | u32 key length | u32 value length | key | value
 * (little-endian).  Types: put, delete, and "next seq" (first in a
 * compacted file, so versions never go back).  A put's seq is the value's
 * version (the ETag); versions grow across the store's whole life.
 * Compaction writes the live table to a new file, appends what was logged
 * meanwhile, fsyncs it, renames it over the log and fsyncs the folder:
 * at every instant the path names a complete log.  An exclusive flock on
 * the file keeps a second store (a reloaded module) from writing it at
 * the same time: open waits for it.
 *
 * Threads: every call below except kv_value_release parks and must run on
 * a fiber; any number of fibers on any workers may use one store at once,
 * until kv_store_close. */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define KV_MAX_KEY 4096 /* bytes */
#define KV_MAX_IF_MATCH 8 /* versions one condition may list */

typedef struct kv_store kv_store;

/* level: syslog priorities as async_module_log takes them (3 error,
 * 4 warning, 6 info). */
typedef void (*kv_log_fn)(void *ctx, int level, const char *msg);

struct kv_store_options {
    const char *path;           /* the log file; created if missing */
    unsigned sync_interval_ms;  /* 0: 100 */
    unsigned lock_wait_ms;      /* how long open waits for another store's
                                   flock on the file; 0: 10000 */
    uint64_t compact_min_bytes; /* compact once the file is past this and
                                   twice the live data; 0: 4 MiB */
    kv_log_fn log;              /* may be NULL */
    void *log_ctx;
};

/* A value, shared by the table and its readers: immutable, freed when the
 * last reference goes. */
struct kv_value {
    atomic_uint refs;
    uint64_t version;
    size_t len;
    char data[];
};

enum kv_result {
    KV_OK = 0,
    KV_NOT_FOUND = 1,       /* no such key (get, unconditional delete) */
    KV_PRECONDITION = 2,    /* the condition did not hold */
};

/* A compare-and-set condition (If-Match). */
struct kv_cond {
    enum { KV_ALWAYS, KV_IF_EXISTS, KV_IF_VERSION } kind;
    size_t n;                       /* KV_IF_VERSION: one of these must match */
    uint64_t versions[KV_MAX_IF_MATCH];
};

/* A sorted list of keys (kv_store_list). */
struct kv_keys {
    size_t n;
    char **keys;        /* each NUL-terminated as well */
    size_t *lens;
};

/* Parks.  Opens (or creates) the log, waits for another store's lock on it
 * (up to lock_wait_ms), loads it (recovering from a bad tail, see top) and
 * starts the flusher fiber, which joins the caller's group.  0 and *out,
 * or -1: EINVAL (no path), EWOULDBLOCK (still locked by another store
 * after lock_wait_ms), EILSEQ (the file is not a kv log), ENOMEM, or the
 * errno of open/read/ftruncate; a message went to log. */
int kv_store_open(const struct kv_store_options *opt, kv_store **out);

/* Parks (briefly, on the table's lock).  KV_OK with a reference in *out
 * (kv_value_release it), or KV_NOT_FOUND; -1 ECANCELED / ETIMEDOUT. */
int kv_store_get(kv_store *s, const char *key, size_t klen, struct kv_value **out);

/* Any thread. */
void kv_value_release(struct kv_value *v);

/* Parks.  Sets key to the value (copied) if cond holds: KV_OK with the new
 * version in *version (may be NULL) once the record reached write(2);
 * KV_PRECONDITION.  -1: EINVAL (empty key or past KV_MAX_KEY), ENOMEM,
 * ECANCELED / ETIMEDOUT (before anything changed), EIO (the log could not
 * be written: the change is in the table but not acknowledged, and the
 * store refuses changes from then on).  Once the change is made the call
 * waits for its write, shielded: a cancel cannot leave it unknown. */
int kv_store_put(kv_store *s, const char *key, size_t klen, const void *val, size_t vlen,
                 const struct kv_cond *cond, uint64_t *version);

/* Parks.  Removes key if cond holds: KV_OK once the record reached
 * write(2); KV_NOT_FOUND (no such key, cond KV_ALWAYS); KV_PRECONDITION.
 * -1 as kv_store_put. */
int kv_store_delete(kv_store *s, const char *key, size_t klen, const struct kv_cond *cond);

/* Parks.  The keys that start with prefix (plen may be 0), sorted
 * bytewise, into *out (kv_keys_free it): 0, or -1 ENOMEM, ECANCELED,
 * ETIMEDOUT.  Each part of the table is read at its own instant. */
int kv_store_list(kv_store *s, const char *prefix, size_t plen, struct kv_keys *out);
void kv_keys_free(struct kv_keys *k);

/* How many keys are live now. */
size_t kv_store_count(kv_store *s);

/* Parks.  Writes what is pending and fsyncs: 0 or -1 EIO. */
int kv_store_sync(kv_store *s);

/* Parks.  Compacts now (see top): 0 or -1 with errno (the old log stays). */
int kv_store_compact(kv_store *s);

/* Parks, shielded from cancellation: stops the flusher, writes and fsyncs
 * everything, closes and frees.  No call may be running on s or come
 * after.  0, or -1 EIO if something acknowledged may not be on disk. */
int kv_store_close(kv_store *s);

#endif
