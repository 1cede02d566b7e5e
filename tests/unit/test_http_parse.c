/* tests/unit/test_http_parse — modules/http/parse.h: the HTTP/1.1 request
 * head parser, the chunked-body decoder and the path normaliser.
 *
 * Pure functions over bytes, so every test feeds a byte string and asserts
 * the exact result documented in parse.h.  Inputs are copied into a heap
 * buffer of exactly their length first (dup), so that a sanitizer build
 * catches any read past the end of what the parser was given. */
#define _GNU_SOURCE

/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* ---- helpers ---- */

#define MAX_HEAD 8192

/* The length of a string literal, embedded NULs included. */
#define LIT(s) (s), (sizeof(s) - 1)

static struct http_request req;

/* The exact-size copy the last parse ran on: req's slices point into it,
 * so it lives until the next parse (or the end of the test). */
static char *held;

/* A heap copy of s[0..n) of exactly n bytes (at least 1 allocated). */
static char *dup(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);

    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static int free_held(void **state)
{
    (void)state;
    free(held);
    held = NULL;
    return 0;
}

/* async__http_parse_request on an exact-size copy of s[0..n); fills req. */
static long parse_n_fields(const char *s, size_t n, size_t max_head, unsigned max_headers)
{
    free_held(NULL);
    held = dup(s, n);
    memset(&req, 0, sizeof req);
    return async__http_parse_request(held, n, max_head, max_headers, &req);
}

static long parse_n_max(const char *s, size_t n, size_t max_head)
{
    return parse_n_fields(s, n, max_head, HTTP_DEFAULT_MAX_HEADERS);
}

static long parse_n(const char *s, size_t n)
{
    return parse_n_max(s, n, MAX_HEAD);
}

static long parse(const char *s)
{
    return parse_n(s, strlen(s));
}

/* Asserts that a slice holds exactly the bytes of str. */
#define assert_slice(sl, str) assert_slice_at(&(sl), (str), __FILE__, __LINE__)

static void assert_slice_at(const struct http_slice *sl, const char *str, const char *file,
                            int line)
{
    size_t n = strlen(str);

    if (sl->n == n && (n == 0 || memcmp(sl->p, str, n) == 0))
        return;
    print_error("%s:%d: slice is \"%.*s\" (%zu bytes), expected \"%s\"\n", file, line,
                sl->p ? (int)sl->n : 0, sl->p ? sl->p : "", sl->n, str);
    _fail(file, line);
}

/* ---- request line and basic fields ---- */

static void parse_simple_get_fills_every_field(void **state)
{
    (void)state;
    static const char in[] =
        "GET /index.html?lang=en HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "User-Agent: test\r\n"
        "\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_int_equal(req.method, HTTP_GET);
    assert_slice(req.method_name, "GET");
    assert_slice(req.target, "/index.html?lang=en");
    assert_slice(req.path, "/index.html");
    assert_slice(req.query, "lang=en");
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.nheaders, 2);
    assert_slice(req.headers[0].name, "Host");
    assert_slice(req.headers[0].value, "example.com");
    assert_slice(req.headers[1].name, "User-Agent");
    assert_slice(req.headers[1].value, "test");
    assert_slice(req.host, "example.com");
    assert_true(req.keep_alive);
    assert_false(req.has_content_length);
    assert_int_equal(req.content_length, 0);
    assert_false(req.chunked);
    assert_false(req.expect_continue);
}

static void parse_slices_point_into_the_callers_buffer(void **state)
{
    (void)state;
    static const char in[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";

    assert_int_equal(async__http_parse_request(in, strlen(in), MAX_HEAD, HTTP_DEFAULT_MAX_HEADERS, &req), (long)strlen(in));
    assert_ptr_equal(req.method_name.p, in);
    assert_ptr_equal(req.target.p, in + 4);
    assert_ptr_equal(req.path.p, in + 4);
    assert_ptr_equal(req.headers[0].name.p, in + 17);
    assert_ptr_equal(req.host.p, in + 23);
}

static void parse_target_without_query_has_empty_query(void **state)
{
    (void)state;
    assert_true(parse("GET /a HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_slice(req.path, "/a");
    assert_int_equal(req.query.n, 0);
}

/* ---- versions and keep-alive ---- */

static void parse_http10_without_connection_is_not_keep_alive(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    assert_int_equal(req.minor, 0);
    assert_false(req.keep_alive);
}

static void parse_http10_with_connection_keep_alive_is_keep_alive(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") > 0);
    assert_int_equal(req.minor, 0);
    assert_true(req.keep_alive);
}

static void parse_http10_without_host_is_fine(void **state)
{
    (void)state;
    static const char in[] = "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_int_equal(req.host.n, 0);
}

static void parse_http11_connection_close_is_not_keep_alive(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") > 0);
    assert_false(req.keep_alive);
}

static void parse_http11_connection_list_with_close_is_not_keep_alive(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n") > 0);
    assert_false(req.keep_alive);
}

static void parse_http12_reads_as_minor_1(void **state)
{
    (void)state;
    static const char in[] = "GET / HTTP/1.2\r\nHost: h\r\n\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_int_equal(req.minor, 1);
    assert_true(req.keep_alive);
}

static void parse_http20_is_505(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), -505);
}

static void parse_http09_is_505(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), -505);
}

static void parse_version_without_minor_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1\r\nHost: h\r\n\r\n"), -400);
}

static void parse_version_with_non_digit_minor_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.x\r\nHost: h\r\n\r\n"), -400);
}

static void parse_lowercase_http_version_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / http/1.1\r\nHost: h\r\n\r\n"), -400);
}

/* ---- incomplete input, leading empty lines, pipelining ---- */

static void parse_every_proper_prefix_is_incomplete(void **state)
{
    (void)state;
    static const char in[] =
        "POST /submit?a=1 HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Content-Length: 3\r\n"
        "X-Empty:\r\n"
        "\r\n";
    size_t n = strlen(in);

    for (size_t i = 0; i < n; i++) {
        long r = parse_n(in, i);

        if (r != 0)
            fail_msg("prefix of %zu bytes: %ld, expected 0", i, r);
    }
    assert_int_equal(parse_n(in, n), (long)n);
}

static void parse_request_split_across_two_reads_completes_on_the_second(void **state)
{
    (void)state;
    static const char in[] = "GET /split HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
    size_t n = strlen(in);
    size_t first = 22; /* "GET /split HTTP/1.1\r\nH" */

    assert_int_equal(parse_n(in, first), 0);
    assert_int_equal(parse_n(in, n), (long)n);
    assert_slice(req.path, "/split");
    assert_slice(req.host, "h");
}

static void parse_four_leading_crlf_are_skipped_and_counted(void **state)
{
    (void)state;
    static const char in[] = "\r\n\r\n\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_int_equal(req.method, HTTP_GET);
    assert_slice(req.target, "/x");
}

static void parse_five_leading_crlf_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("\r\n\r\n\r\n\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
}

static void parse_pipelined_requests_returns_the_first_head_only(void **state)
{
    (void)state;
    static const char first[] = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char in[] =
        "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
        "GET /two HTTP/1.1\r\nHost: h\r\n\r\n";
    long n = parse(in);

    assert_int_equal(n, (long)strlen(first));
    assert_slice(req.target, "/one");
    assert_int_equal(parse(in + n), (long)(strlen(in) - (size_t)n));
    assert_slice(req.target, "/two");
}

/* ---- methods ---- */

static void parse_known_methods_map_to_their_enum(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum http_method m;
    } cases[] = {
        {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},
        {"PUT", HTTP_PUT},         {"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS},
        {"PATCH", HTTP_PATCH},     {"TRACE", HTTP_TRACE}, {"CONNECT", HTTP_CONNECT},
    };
    char buf[128];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = snprintf(buf, sizeof buf, "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].name);

        assert_int_equal(parse(buf), n);
        if (req.method != cases[i].m)
            fail_msg("%s: method %d, expected %d", cases[i].name, req.method, cases[i].m);
        assert_slice(req.method_name, cases[i].name);
    }
}

static void parse_methods_are_case_sensitive(void **state)
{
    (void)state;
    /* "get" is a well-formed token but not the method GET */
    assert_true(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_int_equal(req.method, HTTP_OTHER);
}

static void parse_unknown_method_token_is_other_and_parses(void **state)
{
    (void)state;
    static const char in[] = "BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_int_equal(req.method, HTTP_OTHER);
    assert_slice(req.method_name, "BREW");
}

static void parse_method_with_non_token_char_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(parse("GE:T / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
}

/* ---- line endings and field syntax ---- */

static void parse_bare_lf_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\nHost: h\r\n\r\n"), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\n\r\n"), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\n"), -400);
}

static void parse_bare_cr_inside_a_line_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"), -400);
    assert_int_equal(parse("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
}

static void parse_space_before_colon_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), -400);
}

static void parse_obs_fold_with_space_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n"), -400);
}

static void parse_obs_fold_with_htab_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n"), -400);
}

static void parse_control_char_in_value_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01" "b\r\n\r\n"), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f" "b\r\n\r\n"), -400);
}

static void parse_nul_in_value_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_n(LIT("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n")), -400);
}

static void parse_empty_field_name_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n"), -400);
}

static void parse_field_without_colon_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), -400);
}

static void parse_http11_without_host_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /x HTTP/1.1\r\nAccept: */*\r\n\r\n"), -400);
    /* the request line was read before the error */
    assert_int_equal(req.method, HTTP_GET);
    assert_slice(req.target, "/x");
    assert_int_equal(req.minor, 1);
}

static void parse_two_host_fields_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), -400);
}

/* ---- size limits ---- */

static void parse_long_request_line_without_crlf_is_414(void **state)
{
    (void)state;
    char buf[256];

    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', sizeof buf - 5);
    assert_int_equal(parse_n_max(buf, sizeof buf, 64), -414);
}

static void parse_short_incomplete_request_line_is_incomplete(void **state)
{
    (void)state;
    assert_int_equal(parse_n_max(LIT("GET /aaaaaaaa"), 64), 0);
}

static void parse_fields_longer_than_max_head_is_431(void **state)
{
    (void)state;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nX-Long: %0200d\r\n\r\n", 0);

    assert_int_equal(parse_n_max(buf, (size_t)n, 64), -431);
}

static void parse_head_of_exactly_max_head_bytes_parses(void **state)
{
    (void)state;
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
    size_t n = strlen(in);

    assert_int_equal(parse_n_max(in, n, n), (long)n);
    assert_int_equal(parse_n_max(in, n, n - 1), -431);
}

/* A head of n fields: Host and n - 1 others. */
static int fields_head(char *buf, size_t cap, int n)
{
    int len = snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");

    for (int i = 1; i < n; i++)
        len += snprintf(buf + len, cap - (size_t)len, "X-%d: v\r\n", i);
    len += snprintf(buf + len, cap - (size_t)len, "\r\n");
    return len;
}

static void parse_default_max_headers_fields_parse(void **state)
{
    (void)state;
    char buf[8192];
    int n = fields_head(buf, sizeof buf, HTTP_DEFAULT_MAX_HEADERS);

    assert_int_equal(HTTP_DEFAULT_MAX_HEADERS, 100); /* nginx's practice */
    assert_int_equal(parse_n(buf, (size_t)n), n);
    assert_int_equal(req.nheaders, HTTP_DEFAULT_MAX_HEADERS);
}

static void parse_more_than_max_headers_fields_is_431(void **state)
{
    (void)state;
    char buf[8192];
    int n = fields_head(buf, sizeof buf, HTTP_DEFAULT_MAX_HEADERS + 1);

    assert_int_equal(parse_n(buf, (size_t)n), -431);
}

static void parse_max_headers_is_the_callers_limit(void **state)
{
    (void)state;
    char buf[16384];
    int n = fields_head(buf, sizeof buf, 10);

    assert_int_equal(parse_n_fields(buf, (size_t)n, sizeof buf, 10), n);
    assert_int_equal(parse_n_fields(buf, (size_t)n, sizeof buf, 9), -431);
    /* a limit past the array's size is the array's size */
    n = fields_head(buf, sizeof buf, HTTP_MAX_HEADERS);
    assert_int_equal(parse_n_fields(buf, (size_t)n, sizeof buf, 100000), n);
    n = fields_head(buf, sizeof buf, HTTP_MAX_HEADERS + 1);
    assert_int_equal(parse_n_fields(buf, (size_t)n, sizeof buf, 100000), -431);
}

/* ---- Content-Length ---- */

static void parse_content_length_sets_length(void **state)
{
    (void)state;
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n") > 0);
    assert_true(req.has_content_length);
    assert_int_equal(req.content_length, 42);
    assert_false(req.chunked);
}

static void parse_content_length_zero_is_valid(void **state)
{
    (void)state;
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n") > 0);
    assert_true(req.has_content_length);
    assert_int_equal(req.content_length, 0);
}

static void parse_content_length_non_digit_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n"), -400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n"), -400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"), -400);
}

static void parse_content_length_empty_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"), -400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:   \r\n\r\n"), -400);
}

static void parse_content_length_negative_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n"), -400);
}

static void parse_content_length_with_plus_sign_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"), -400);
}

static void parse_content_length_overflow_is_400(void **state)
{
    (void)state;
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        -400);
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n"),
        -400);
}

static void parse_two_equal_content_lengths_is_400(void **state)
{
    (void)state;
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        -400);
}

static void parse_content_length_list_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"), -400);
}

/* ---- Transfer-Encoding ---- */

static void parse_transfer_encoding_chunked_any_case_sets_chunked(void **state)
{
    (void)state;
    static const char *const values[] = {"chunked", "Chunked", "CHUNKED"};
    char buf[128];

    for (size_t i = 0; i < 3; i++) {
        int n = snprintf(buf, sizeof buf,
                         "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n", values[i]);

        assert_int_equal(parse(buf), n);
        assert_true(req.chunked);
        assert_false(req.has_content_length);
    }
}

static void parse_transfer_encoding_with_content_length_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                           "Content-Length: 5\r\n\r\n"),
                     -400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n"),
                     -400);
}

static void parse_transfer_encoding_gzip_chunked_is_501(void **state)
{
    (void)state;
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -501);
}

static void parse_transfer_encoding_gzip_is_501(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), -501);
}

static void parse_transfer_encoding_chunked_twice_is_rejected(void **state)
{
    (void)state;
    long r = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");

    if (r != -400 && r != -501)
        fail_msg("\"chunked, chunked\": %ld, expected -400 or -501", r);
}

static void parse_transfer_encoding_in_http10_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
}

/* ---- Expect ---- */

static void parse_expect_100_continue_any_case_sets_expect_continue(void **state)
{
    (void)state;
    assert_true(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                      "Expect: 100-continue\r\n\r\n") > 0);
    assert_true(req.expect_continue);
    assert_true(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                      "Expect: 100-Continue\r\n\r\n") > 0);
    assert_true(req.expect_continue);
}

static void parse_other_expectation_is_417(void **state)
{
    (void)state;
    assert_int_equal(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n"), -417);
}

/* ---- field values and lookup ---- */

static void parse_value_leading_and_trailing_blanks_are_trimmed(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: \t h \t\r\nX-A:  \t a \t b\t \r\n\r\n") > 0);
    assert_slice(req.host, "h");
    assert_slice(req.headers[1].value, "a \t b");
}

static void parse_empty_value_is_allowed(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n") > 0);
    assert_int_equal(req.nheaders, 2);
    assert_slice(req.headers[1].name, "X-Empty");
    assert_int_equal(req.headers[1].value.n, 0);
}

static void parse_obs_text_in_value_is_allowed(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9 \x80\xff\r\n\r\n") > 0);
    assert_slice(req.headers[1].value, "caf\xc3\xa9 \x80\xff");
}

/* Asserts that async__http_header_get(&req, name) finds a field whose value is
 * exactly expected. */
#define assert_header(name, expected)                                              \
    do {                                                                           \
        const struct http_slice *v_ = async__http_header_get(&req, (name));               \
        if (v_ == NULL)                                                            \
            fail_msg("async__http_header_get(\"%s\") is NULL, expected \"%s\"", (name),   \
                     (expected));                                                  \
        assert_slice(*v_, (expected));                                             \
    } while (0)

static void header_get_is_case_insensitive(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Custom-Thing: yes\r\n\r\n") > 0);
    assert_header("X-Custom-Thing", "yes");
    assert_header("x-custom-thing", "yes");
    assert_header("X-CUSTOM-THING", "yes");
    assert_header("HOST", "h");
}

static void header_get_returns_the_first_of_repeated_fields(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n\r\n") > 0);
    assert_header("accept", "a");
}

static void header_get_returns_null_for_absent_name(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n") > 0);
    assert_null(async__http_header_get(&req, "X-B"));
    assert_null(async__http_header_get(&req, "X-"));
    assert_null(async__http_header_get(&req, "X-AA"));
}

/* ---- request target ---- */

static void parse_origin_form_splits_path_and_query(void **state)
{
    (void)state;
    assert_true(parse("GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_slice(req.target, "/a/b?x=1&y");
    assert_slice(req.path, "/a/b");
    assert_slice(req.query, "x=1&y");
}

static void parse_absolute_form_parses(void **state)
{
    (void)state;
    static const char in[] = "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_slice(req.target, "http://h/x");
}

static void parse_control_char_in_target_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /a\x01" "b HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(parse_n(LIT("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n")), -400);
}

static void parse_asterisk_form_parses(void **state)
{
    (void)state;
    static const char in[] = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";

    assert_int_equal(parse(in), (long)strlen(in));
    assert_int_equal(req.method, HTTP_OPTIONS);
    assert_slice(req.target, "*");
}

/* ---- chunked decoder ---- */

struct sink {
    char buf[256];
    size_t n;
};

static void sink_data(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;

    assert_true(s->n + n <= sizeof s->buf);
    memcpy(s->buf + s->n, p, n);
    s->n += n;
}

/* Feeds s[0..n) in one call (from an exact-size copy); returns the result. */
static long chunked_all(const char *s, size_t n, struct http_chunked *c, uint64_t *bytes,
                        struct sink *sink)
{
    char *p = dup(s, n);
    long r;

    async__http_chunked_init(c);
    *bytes = 0;
    if (sink)
        sink->n = 0;
    r = async__http_chunked_feed(c, p, n, bytes, sink ? sink_data : NULL, sink);
    free(p);
    return r;
}

static void chunked_body_decodes_in_one_call(void **state)
{
    (void)state;
    static const char in[] = "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
    struct http_chunked c;
    struct sink sink;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT(in), &c, &bytes, &sink), (long)strlen(in));
    assert_int_equal(bytes, 9);
    assert_true(c.done);
    assert_int_equal(sink.n, 9);
    assert_memory_equal(sink.buf, "Wikipedia", 9);
}

static void chunked_body_decodes_one_byte_at_a_time(void **state)
{
    (void)state;
    static const char in[] = "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
    size_t n = strlen(in);
    struct http_chunked c;
    struct sink sink = {.n = 0};
    uint64_t bytes = 0;

    async__http_chunked_init(&c);
    for (size_t i = 0; i < n; i++) {
        char *p = dup(in + i, 1);
        long r = async__http_chunked_feed(&c, p, 1, &bytes, sink_data, &sink);

        free(p);
        if (r != 1)
            fail_msg("byte %zu: %ld, expected 1", i, r);
        if (c.done != (i == n - 1))
            fail_msg("byte %zu: done %d", i, c.done);
    }
    assert_int_equal(bytes, 9);
    assert_int_equal(sink.n, 9);
    assert_memory_equal(sink.buf, "Wikipedia", 9);
}

static void chunked_incomplete_body_is_not_done(void **state)
{
    (void)state;
    static const char in[] = "4\r\nWiki\r\n5\r\npe";
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT(in), &c, &bytes, NULL), (long)strlen(in));
    assert_int_equal(bytes, 6);
    assert_false(c.done);
}

static void chunked_extensions_are_ignored(void **state)
{
    (void)state;
    static const char in[] = "4;a=b\r\nWiki\r\n5;x;y=\"q\"\r\npedia\r\n0;last\r\n\r\n";
    struct http_chunked c;
    struct sink sink;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT(in), &c, &bytes, &sink), (long)strlen(in));
    assert_true(c.done);
    assert_int_equal(bytes, 9);
    assert_memory_equal(sink.buf, "Wikipedia", 9);
}

static void chunked_trailers_are_consumed(void **state)
{
    (void)state;
    static const char in[] = "4\r\nWiki\r\n0\r\nX-Trailer: 1\r\nY: two\r\n\r\n";
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT(in), &c, &bytes, NULL), (long)strlen(in));
    assert_true(c.done);
    assert_int_equal(bytes, 4);
}

static void chunked_bytes_after_the_body_are_not_consumed(void **state)
{
    (void)state;
    static const char body[] = "4\r\nWiki\r\n0\r\n\r\n";
    static const char in[] = "4\r\nWiki\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT(in), &c, &bytes, NULL), (long)strlen(body));
    assert_true(c.done);
    assert_int_equal(bytes, 4);
}

static void chunked_hex_sizes_are_case_insensitive(void **state)
{
    (void)state;
    static const char in[] =
        "a\r\n0123456789\r\n"
        "A\r\nabcdefghij\r\n"
        "1f\r\n0123456789012345678901234567890\r\n"
        "1F\r\n0123456789012345678901234567890\r\n"
        "0\r\n\r\n";
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT(in), &c, &bytes, NULL), (long)strlen(in));
    assert_true(c.done);
    assert_int_equal(bytes, 10 + 10 + 31 + 31);
}

static void chunked_non_hex_size_is_400(void **state)
{
    (void)state;
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT("x\r\nWiki\r\n0\r\n\r\n"), &c, &bytes, NULL), -400);
    assert_int_equal(chunked_all(LIT("4g\r\nWiki\r\n0\r\n\r\n"), &c, &bytes, NULL), -400);
}

static void chunked_size_with_17_hex_digits_is_400(void **state)
{
    (void)state;
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT("11111111111111111\r\nWiki\r\n"), &c, &bytes, NULL), -400);
}

static void chunked_missing_crlf_after_data_is_400(void **state)
{
    (void)state;
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT("4\r\nWikiX"), &c, &bytes, NULL), -400);
}

static void chunked_bare_lf_after_size_is_400(void **state)
{
    (void)state;
    struct http_chunked c;
    uint64_t bytes;

    assert_int_equal(chunked_all(LIT("4\nWiki\r\n0\r\n\r\n"), &c, &bytes, NULL), -400);
}

static void chunked_overlong_extension_is_400(void **state)
{
    (void)state;
    size_t n = 2 + 10000;
    char *in = malloc(n);
    struct http_chunked c;
    uint64_t bytes;

    assert_non_null(in);
    memcpy(in, "4;", 2);
    memset(in + 2, 'a', n - 2);
    assert_int_equal(chunked_all(in, n, &c, &bytes, NULL), -400);
    free(in);
}

/* ---- path normalisation ---- */

/* Normalises s into an exact-size (strlen + 1) buffer; on success checks
 * the NUL terminator and the returned length, and copies the result out. */
static long norm_n(const char *s, size_t n, char *result, size_t cap)
{
    char *in = dup(s, n);
    char *out = malloc(n + 1);
    long r;

    assert_non_null(out);
    memset(out, 'Z', n + 1);
    r = async__http_path_normalize(in, n, out);
    if (r >= 0) {
        assert_true((size_t)r <= n);
        assert_int_equal(out[r], '\0');
        assert_int_equal(strlen(out), (size_t)r);
        assert_true((size_t)r < cap);
        memcpy(result, out, (size_t)r + 1);
    }
    free(in);
    free(out);
    return r;
}

#define assert_norm(in, expected)                                                    \
    do {                                                                             \
        char res_[256];                                                              \
        long r_ = norm_n(LIT(in), res_, sizeof res_);                                \
        if (r_ != (long)strlen(expected) || strcmp(res_, expected) != 0)             \
            fail_msg("normalize(\"%s\"): %ld \"%s\", expected \"%s\"", in, r_,       \
                     r_ >= 0 ? res_ : "", expected);                                 \
    } while (0)

#define assert_norm_fails(in)                                                        \
    do {                                                                             \
        char res_[256];                                                              \
        long r_ = norm_n(LIT(in), res_, sizeof res_);                                \
        if (r_ != -1)                                                                \
            fail_msg("normalize(\"%s\"): %ld \"%s\", expected -1", in, r_,           \
                     r_ >= 0 ? res_ : "");                                           \
    } while (0)

static void normalize_root_stays_root(void **state)
{
    (void)state;
    assert_norm("/", "/");
}

static void normalize_plain_path_is_unchanged(void **state)
{
    (void)state;
    assert_norm("/a/b", "/a/b");
    assert_norm("/index.html", "/index.html");
}

static void normalize_dot_segment_is_removed(void **state)
{
    (void)state;
    assert_norm("/a/./b", "/a/b");
}

static void normalize_dotdot_segment_removes_the_previous(void **state)
{
    (void)state;
    assert_norm("/a/../b", "/b");
    assert_norm("/a/b/../../c", "/c");
}

static void normalize_repeated_slashes_are_merged(void **state)
{
    (void)state;
    assert_norm("/a//b", "/a/b");
    assert_norm("//a///b", "/a/b");
}

static void normalize_percent_escapes_are_decoded(void **state)
{
    (void)state;
    assert_norm("/%41", "/A");
    assert_norm("/%61%62", "/ab");
    assert_norm("/a%20b", "/a b");
}

static void normalize_encoded_slash_decodes(void **state)
{
    (void)state;
    assert_norm("/a%2fb", "/a/b");
    assert_norm("/a%2Fb", "/a/b");
}

static void normalize_dotdot_above_root_fails(void **state)
{
    (void)state;
    assert_norm_fails("/..");
    assert_norm_fails("/../x");
    assert_norm_fails("/a/../..");
}

static void normalize_encoded_dotdot_above_root_fails(void **state)
{
    (void)state;
    assert_norm_fails("/%2e%2e/x");
    assert_norm_fails("/%2E%2E/x");
    assert_norm_fails("/.%2e/x");
}

static void normalize_encoded_nul_fails(void **state)
{
    (void)state;
    assert_norm_fails("/%00");
    assert_norm_fails("/a%00b");
    assert_norm_fails("/a/b%00");
}

static void normalize_bad_escape_fails(void **state)
{
    (void)state;
    assert_norm_fails("/%4");
    assert_norm_fails("/%zz");
    assert_norm_fails("/%");
    assert_norm_fails("/%g1");
}

static void normalize_path_without_leading_slash_fails(void **state)
{
    (void)state;
    assert_norm_fails("a/b");
    assert_norm_fails("");
}

static void normalize_trailing_slash_is_preserved(void **state)
{
    (void)state;
    assert_norm("/dir/", "/dir/");
    assert_norm("/a/b/", "/a/b/");
}

/* ---- Host (RFC 9112 §3.2, RFC 3986 §3.2.2) ---- */

static long with_host(const char *value)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", value);
    return parse(buf);
}

static void parse_host_names_ports_and_ip_literals_are_valid(void **state)
{
    static const char *const ok[] = {
        "example.com", "EXAMPLE.com.", "example.com:8080", "example.com:", "xn--bcher-kva.example",
        "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080", "[2001:db8::1]", "a_b.test",
        "a%41.test", "a~b.test", "",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (with_host(ok[i]) <= 0)
            fail_msg("Host: %s was refused", ok[i]);
}

static void parse_host_with_space_slash_at_or_bad_port_is_400(void **state)
{
    static const char *const bad[] = {
        "exa mple.com", "example.com evil.test", "example.com/x", "a@example.com",
        "example.com:80x", "example.com:80:81", "[::1", "[]", "[::g]", "example.com\"",
        "ex\\ample.com", "a{b}.test", "a#b.test",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (with_host(bad[i]) != -400)
            fail_msg("Host: %s gave %ld, not -400", bad[i], with_host(bad[i]));
}

static void parse_absolute_form_authority_is_checked_too(void **state)
{
    struct http_slice a;

    (void)state;
    assert_true(parse("GET http://Example.COM:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n") > 0);
    a = async__http_target_authority(req.target);
    assert_slice(a, "Example.COM:81");
    assert_true(parse("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    a = async__http_target_authority(req.target);
    assert_slice(a, "h");
    assert_int_equal(parse("GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_int_equal(parse("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    assert_true(parse("GET /x HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_null(async__http_target_authority(req.target).p);
}

static void parse_two_hosts_or_none_in_http11_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n"), -400);
}

#define TEST(f) cmocka_unit_test_teardown(f, free_held)

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* request line and basic fields */
        TEST(parse_simple_get_fills_every_field),
        TEST(parse_slices_point_into_the_callers_buffer),
        TEST(parse_target_without_query_has_empty_query),
        /* versions and keep-alive */
        TEST(parse_http10_without_connection_is_not_keep_alive),
        TEST(parse_http10_with_connection_keep_alive_is_keep_alive),
        TEST(parse_http10_without_host_is_fine),
        TEST(parse_host_names_ports_and_ip_literals_are_valid),
        TEST(parse_host_with_space_slash_at_or_bad_port_is_400),
        TEST(parse_absolute_form_authority_is_checked_too),
        TEST(parse_two_hosts_or_none_in_http11_is_400),
        TEST(parse_http11_connection_close_is_not_keep_alive),
        TEST(parse_http11_connection_list_with_close_is_not_keep_alive),
        TEST(parse_http12_reads_as_minor_1),
        TEST(parse_http20_is_505),
        TEST(parse_http09_is_505),
        TEST(parse_version_without_minor_is_400),
        TEST(parse_version_with_non_digit_minor_is_400),
        TEST(parse_lowercase_http_version_is_400),
        /* incomplete input, leading empty lines, pipelining */
        TEST(parse_every_proper_prefix_is_incomplete),
        TEST(parse_request_split_across_two_reads_completes_on_the_second),
        TEST(parse_four_leading_crlf_are_skipped_and_counted),
        TEST(parse_five_leading_crlf_is_400),
        TEST(parse_pipelined_requests_returns_the_first_head_only),
        /* methods */
        TEST(parse_known_methods_map_to_their_enum),
        TEST(parse_methods_are_case_sensitive),
        TEST(parse_unknown_method_token_is_other_and_parses),
        TEST(parse_method_with_non_token_char_is_400),
        /* line endings and field syntax */
        TEST(parse_bare_lf_is_400),
        TEST(parse_bare_cr_inside_a_line_is_400),
        TEST(parse_space_before_colon_is_400),
        TEST(parse_obs_fold_with_space_is_400),
        TEST(parse_obs_fold_with_htab_is_400),
        TEST(parse_control_char_in_value_is_400),
        TEST(parse_nul_in_value_is_400),
        TEST(parse_empty_field_name_is_400),
        TEST(parse_field_without_colon_is_400),
        TEST(parse_http11_without_host_is_400),
        TEST(parse_two_host_fields_is_400),
        /* size limits */
        TEST(parse_long_request_line_without_crlf_is_414),
        TEST(parse_short_incomplete_request_line_is_incomplete),
        TEST(parse_fields_longer_than_max_head_is_431),
        TEST(parse_head_of_exactly_max_head_bytes_parses),
        TEST(parse_default_max_headers_fields_parse),
        TEST(parse_max_headers_is_the_callers_limit),
        TEST(parse_more_than_max_headers_fields_is_431),
        /* Content-Length */
        TEST(parse_content_length_sets_length),
        TEST(parse_content_length_zero_is_valid),
        TEST(parse_content_length_non_digit_is_400),
        TEST(parse_content_length_empty_is_400),
        TEST(parse_content_length_negative_is_400),
        TEST(parse_content_length_with_plus_sign_is_400),
        TEST(parse_content_length_overflow_is_400),
        TEST(parse_two_equal_content_lengths_is_400),
        TEST(parse_content_length_list_is_400),
        /* Transfer-Encoding */
        TEST(parse_transfer_encoding_chunked_any_case_sets_chunked),
        TEST(parse_transfer_encoding_with_content_length_is_400),
        TEST(parse_transfer_encoding_gzip_chunked_is_501),
        TEST(parse_transfer_encoding_gzip_is_501),
        TEST(parse_transfer_encoding_chunked_twice_is_rejected),
        TEST(parse_transfer_encoding_in_http10_is_400),
        /* Expect */
        TEST(parse_expect_100_continue_any_case_sets_expect_continue),
        TEST(parse_other_expectation_is_417),
        /* field values and lookup */
        TEST(parse_value_leading_and_trailing_blanks_are_trimmed),
        TEST(parse_empty_value_is_allowed),
        TEST(parse_obs_text_in_value_is_allowed),
        TEST(header_get_is_case_insensitive),
        TEST(header_get_returns_the_first_of_repeated_fields),
        TEST(header_get_returns_null_for_absent_name),
        /* request target */
        TEST(parse_origin_form_splits_path_and_query),
        TEST(parse_absolute_form_parses),
        TEST(parse_control_char_in_target_is_400),
        TEST(parse_asterisk_form_parses),
        /* chunked decoder */
        TEST(chunked_body_decodes_in_one_call),
        TEST(chunked_body_decodes_one_byte_at_a_time),
        TEST(chunked_incomplete_body_is_not_done),
        TEST(chunked_extensions_are_ignored),
        TEST(chunked_trailers_are_consumed),
        TEST(chunked_bytes_after_the_body_are_not_consumed),
        TEST(chunked_hex_sizes_are_case_insensitive),
        TEST(chunked_non_hex_size_is_400),
        TEST(chunked_size_with_17_hex_digits_is_400),
        TEST(chunked_missing_crlf_after_data_is_400),
        TEST(chunked_bare_lf_after_size_is_400),
        TEST(chunked_overlong_extension_is_400),
        /* path normalisation */
        TEST(normalize_root_stays_root),
        TEST(normalize_plain_path_is_unchanged),
        TEST(normalize_dot_segment_is_removed),
        TEST(normalize_dotdot_segment_removes_the_previous),
        TEST(normalize_repeated_slashes_are_merged),
        TEST(normalize_percent_escapes_are_decoded),
        TEST(normalize_encoded_slash_decodes),
        TEST(normalize_dotdot_above_root_fails),
        TEST(normalize_encoded_dotdot_above_root_fails),
        TEST(normalize_encoded_nul_fails),
        TEST(normalize_bad_escape_fails),
        TEST(normalize_path_without_leading_slash_fails),
        TEST(normalize_trailing_slash_is_preserved),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
