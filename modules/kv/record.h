/* modules/kv/record.h — the kv log's bytes: the file's magic, one
 * record's layout (store.h describes it), its CRC32C, and the growable
 * buffer records are built in.  Pure functions over bytes: no I/O. */
#ifndef KV_RECORD_H
#define KV_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define KV_MAGIC "asynckv\1"
#define KV_MAGIC_LEN 8
#define KV_REC_HEAD 8              /* crc, body length */
#define KV_REC_FIXED 17            /* type, seq, key length, value length */
#define KV_REC_MAX_BODY (1u << 31) /* a longer length is damage, not a record */

enum { KV_REC_PUT = 1, KV_REC_DEL = 2, KV_REC_SEQ = 3 };

struct kv_buf {
    char *p;
    size_t len, cap;
};

uint32_t kv_crc32c(const void *p, size_t n);
uint32_t kv_get32(const char *p);
uint64_t kv_get64(const char *p);
/* The bytes of a record with a key and a value of these lengths. */
size_t kv_rec_size(size_t klen, size_t vlen);
/* Encodes a record at p (kv_rec_size bytes). */
void kv_rec_encode(char *p, int type, uint64_t seq, const char *key, size_t klen,
                   const void *val, size_t vlen);
/* Room for more bytes after b->len: 0, or -1 (out of memory). */
int kv_buf_reserve(struct kv_buf *b, size_t more);

#endif
