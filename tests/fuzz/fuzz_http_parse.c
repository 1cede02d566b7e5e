/* tests/fuzz/fuzz_http_parse — libFuzzer target for modules/http/parse.h.
 *
 *   CC=clang cmake -S . -B build-fuzz -DASYNC_BUILD_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_http_parse
 *   ./build-fuzz/tests/fuzz/fuzz_http_parse -max_total_time=60 CORPUS_COPY tests/fuzz/corpus
 *
 * (`make test-fuzz` does this with a copy of the corpus.)
 *
 * The input is parsed as a request head with a few max_head values; a
 * parsed head must satisfy the invariants of the contract (length within
 * the input, every slice inside the input, at most HTTP_MAX_HEADERS fields,
 * never chunked together with Content-Length, the same result on the head
 * alone, an incomplete result on the head minus its last byte).  The bytes
 * after the head (or the whole input when it does not parse) go to the
 * chunked decoder in 1..7-byte pieces chosen by the input.  Finally the
 * input is normalised as a path.  Any violation abort()s. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define CHECK(cond)            \
    do {                       \
        if (!(cond))           \
            abort();           \
    } while (0)

/* ---- request heads ---- */

/* A slice lies inside buf[0..len): an empty one may point anywhere in
 * [buf, buf + len] or be NULL. */
static void check_slice(struct http_slice s, const char *buf, size_t len)
{
    if (s.n == 0) {
        CHECK(s.p == NULL || (s.p >= buf && s.p <= buf + len));
        return;
    }
    CHECK(s.p != NULL);
    CHECK(s.p >= buf && s.p < buf + len);
    CHECK(s.n <= (size_t)(buf + len - s.p));
}

static bool is_error_status(long r)
{
    return r == -400 || r == -414 || r == -431 || r == -417 || r == -501 || r == -505;
}

static void check_request(const struct http_request *req, const char *buf, size_t head)
{
    CHECK(req->nheaders <= HTTP_MAX_HEADERS);
    CHECK(req->method_name.n > 0);
    check_slice(req->method_name, buf, head);
    CHECK(req->target.n > 0);
    check_slice(req->target, buf, head);
    check_slice(req->path, buf, head);
    check_slice(req->query, buf, head);
    /* path and query are parts of the target */
    CHECK(req->path.n <= req->target.n);
    CHECK(req->query.n < req->target.n || req->target.n == 0);
    check_slice(req->host, buf, head);
    for (unsigned i = 0; i < req->nheaders; i++) {
        CHECK(req->headers[i].name.n > 0);
        check_slice(req->headers[i].name, buf, head);
        check_slice(req->headers[i].value, buf, head);
    }
    CHECK(req->minor == 0 || req->minor == 1);
    CHECK(!(req->chunked && req->has_content_length));
    CHECK(req->has_content_length || req->content_length == 0);
    if (req->chunked)
        CHECK(req->minor == 1);
}

/* Parses data[0..size) with max_head; returns the head length (> 0), or 0
 * when the input does not hold a valid head. */
static size_t fuzz_parse(const char *data, size_t size, size_t max_head)
{
    struct http_request req;
    long r;

    memset(&req, 0xa5, sizeof req);
    r = async__http_parse_request(data, size, max_head, HTTP_MAX_HEADERS, &req);
    if (r == 0)
        return 0;
    if (r < 0) {
        CHECK(is_error_status(r));
        return 0;
    }
    CHECK((size_t)r <= size);
    /* the head ends with CRLF CRLF (the request line's CRLF, then the
     * empty line) */
    CHECK(r >= 4 && memcmp(data + r - 2, "\r\n", 2) == 0);
    check_request(&req, data, (size_t)r);

    /* The head alone parses the same (what follows it does not matter),
     * and the head minus its last byte is incomplete.  Both on exact-size
     * copies so that ASan sees reads past the end. */
    {
        char *copy = malloc((size_t)r);
        struct http_request again;

        CHECK(copy != NULL);
        memcpy(copy, data, (size_t)r);
        CHECK(async__http_parse_request(copy, (size_t)r, max_head, HTTP_MAX_HEADERS, &again) == r);
        CHECK(again.nheaders == req.nheaders && again.method == req.method &&
              again.minor == req.minor && again.chunked == req.chunked &&
              again.has_content_length == req.has_content_length &&
              again.content_length == req.content_length &&
              again.keep_alive == req.keep_alive &&
              again.expect_continue == req.expect_continue);
        CHECK(async__http_parse_request(copy, (size_t)r - 1, max_head, HTTP_MAX_HEADERS, &again) == 0);
        free(copy);
    }
    return (size_t)r;
}

/* ---- chunked bodies ---- */

struct sink {
    const char *piece;  /* the buffer being fed */
    size_t piece_len;
    uint64_t total;     /* sum of the n passed to on_data */
};

static void on_data(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;

    if (n == 0)
        return;
    CHECK(p >= s->piece && p + n <= s->piece + s->piece_len);
    s->total += n;
}

/* Feeds body[0..len) to a fresh decoder in 1..7-byte pieces whose sizes
 * come from sel[0..nsel). */
static void fuzz_chunked(const char *body, size_t len, const uint8_t *sel, size_t nsel)
{
    struct http_chunked c;
    struct sink sink = {0};
    uint64_t data_bytes = 0;
    size_t off = 0, fed = 0;

    async__http_chunked_init(&c);
    for (size_t k = 0; off < len; k++) {
        size_t want = 1 + (nsel ? sel[k % nsel] % 7 : k % 7);
        size_t n = len - off < want ? len - off : want;
        char *piece = malloc(n);
        long r;

        CHECK(piece != NULL);
        memcpy(piece, body + off, n);
        sink.piece = piece;
        sink.piece_len = n;
        r = async__http_chunked_feed(&c, piece, n, &data_bytes, on_data, &sink);
        free(piece);
        if (r < 0) {
            CHECK(r == -400);
            return;
        }
        CHECK((size_t)r <= n);
        fed += (size_t)r;
        CHECK(data_bytes == sink.total);
        CHECK(data_bytes <= fed);
        if ((size_t)r < n) {
            /* stopped early: only at the end of the body */
            CHECK(c.done);
            return;
        }
        off += n;
        if (c.done)
            return;
    }
}

/* ---- paths ---- */

static void fuzz_path(const char *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    char *out = malloc(size + 1);
    long r;

    CHECK(in != NULL && out != NULL);
    memcpy(in, data, size);
    r = async__http_path_normalize(in, size, out);
    if (r < 0) {
        CHECK(r == -1);
    } else {
        size_t n = (size_t)r;

        CHECK(n >= 1 && n <= size);
        CHECK(out[0] == '/');
        CHECK(out[n] == '\0');
        CHECK(memchr(out, '\0', n) == NULL);
        for (size_t i = 0; i + 1 < n; i++)
            CHECK(!(out[i] == '/' && out[i + 1] == '/'));
        /* no "." or ".." segment anywhere (mid-path or at the end) */
        for (size_t i = 0; i < n; i++) {
            if (out[i] != '/')
                continue;
            size_t j = i + 1;
            while (j < n && out[j] != '/')
                j++;
            size_t seg = j - i - 1;
            CHECK(!(seg == 1 && out[i + 1] == '.'));
            CHECK(!(seg == 2 && out[i + 1] == '.' && out[i + 2] == '.'));
        }
    }
    free(in);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static const size_t limits[] = {8192, 256, 32};
    size_t head = 0;

    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        size_t h = fuzz_parse(buf, size, limits[i]);

        if (h > 0 && head == 0)
            head = h;
    }
    if (size > 0)
        (void)fuzz_parse(buf, size, size);

    if (head > 0)
        fuzz_chunked(buf + head, size - head, data, size);
    else
        fuzz_chunked(buf, size, data, size);

    fuzz_path(buf, size);
    return 0;
}
