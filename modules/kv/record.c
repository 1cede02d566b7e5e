/* modules/kv/record.c — the kv log's record format (record.h). */
#include "record.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

uint32_t kv_crc32c(const void *p, size_t n)
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

uint32_t kv_get32(const char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

uint64_t kv_get64(const char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

size_t kv_rec_size(size_t klen, size_t vlen)
{
    return KV_REC_HEAD + KV_REC_FIXED + klen + vlen;
}

void kv_rec_encode(char *p, int type, uint64_t seq, const char *key, size_t klen,
                   const void *val, size_t vlen)
{
    size_t body = KV_REC_FIXED + klen + vlen;

    put32(p + 4, (uint32_t)body);
    p[8] = (char)type;
    put64(p + 9, seq);
    put32(p + 17, (uint32_t)klen);
    put32(p + 21, (uint32_t)vlen);
    if (klen > 0)
        memcpy(p + 25, key, klen);
    if (vlen > 0)
        memcpy(p + 25 + klen, val, vlen);
    put32(p, kv_crc32c(p + 4, 4 + body));
}

int kv_buf_reserve(struct kv_buf *b, size_t more)
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
