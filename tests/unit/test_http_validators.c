/* The header logic of static files (modules/http/validators.c, dates.c):
 * byte ranges, ETag lists, conditional requests, HTTP dates.  Field
 * values in, a decision out: no I/O.  The cases follow RFC 9110 §13
 * (conditional requests) and §14 (range requests). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "validators.h"

#include <inttypes.h>
#include <string.h>

/* ---- Range (§14.1.2, §14.2) ---- */

enum { WHOLE = HTTP_RANGE_WHOLE, PART = HTTP_RANGE_PART, NONE = HTTP_RANGE_UNSATISFIABLE };

static const struct {
    const char *range;
    uint64_t size;
    int want;
    uint64_t off, len;
} ranges[] = {
    /* §14.1.2's examples, on a 10000-byte representation */
    {"bytes=0-499", 10000, PART, 0, 500},
    {"bytes=500-999", 10000, PART, 500, 500},
    {"bytes=-500", 10000, PART, 9500, 500},
    {"bytes=9500-", 10000, PART, 9500, 500},
    {"bytes=0-0", 10000, PART, 0, 1},
    {"bytes=-1", 10000, PART, 9999, 1},
    {"bytes=9999-9999", 10000, PART, 9999, 1},
    /* a last byte past the end, a suffix longer than the file: clipped */
    {"bytes=0-999999", 10000, PART, 0, 10000},
    {"bytes=9000-10000", 10000, PART, 9000, 1000},
    {"bytes=-20000", 10000, PART, 0, 10000},
    {"bytes=0-", 10000, PART, 0, 10000},
    /* the unit is case-insensitive (§14.1) */
    {"BYTES=1-2", 10000, PART, 1, 2},
    {"Bytes=-3", 10000, PART, 9997, 3},
    /* several ranges, overlapping or not: the field is ignored, the
     * whole file sent (§14.2 lets a server ignore Range) */
    {"bytes=0-0,-1", 10000, WHOLE, 0, 0},
    {"bytes=500-600,601-999", 10000, WHOLE, 0, 0},
    {"bytes=500-700,601-999", 10000, WHOLE, 0, 0},
    {"bytes=0-499, 0-499", 10000, WHOLE, 0, 0},
    {"bytes=0-1,", 10000, WHOLE, 0, 0},
    /* invalid syntax: ignored (§14.2) */
    {"bytes=", 10000, WHOLE, 0, 0},
    {"bytes=-", 10000, WHOLE, 0, 0},
    {"bytes=a-b", 10000, WHOLE, 0, 0},
    {"bytes=5-1", 10000, WHOLE, 0, 0}, /* last before first */
    {"bytes=1-2x", 10000, WHOLE, 0, 0},
    {"bytes=1", 10000, WHOLE, 0, 0},
    {"bytes=--1", 10000, WHOLE, 0, 0},
    {"bytes=+1-2", 10000, WHOLE, 0, 0},
    {"bytes= 0-1", 10000, WHOLE, 0, 0},
    {"bytes=0-1 ", 10000, WHOLE, 0, 0},
    {"bytes 0-1", 10000, WHOLE, 0, 0},
    {"items=0-1", 10000, WHOLE, 0, 0}, /* another unit */
    {"", 10000, WHOLE, 0, 0},
    {"bytes=99999999999999999999-", 10000, WHOLE, 0, 0}, /* does not fit */
    {"bytes=0-99999999999999999999", 10000, WHOLE, 0, 0},
    /* unsatisfiable: 416 (§14.1.1, §15.5.17) */
    {"bytes=10000-", 10000, NONE, 0, 0},
    {"bytes=10000-10001", 10000, NONE, 0, 0},
    {"bytes=20000-30000", 10000, NONE, 0, 0},
    {"bytes=-0", 10000, NONE, 0, 0},
    {"bytes=0-", 0, NONE, 0, 0},
    {"bytes=0-0", 0, NONE, 0, 0},
    /* an empty representation: a suffix is satisfiable (§14.1.1) but has
     * no part to name (a Content-Range's last byte would wrap): the whole */
    {"bytes=-5", 0, WHOLE, 0, 0},
    {"bytes=-1", 0, WHOLE, 0, 0},
};

static void range_cases_follow_rfc9110(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint64_t off = 0, len = 0;
        int got = (int)http_byte_range(ranges[i].range, ranges[i].size, &off, &len);

        if (got != ranges[i].want)
            fail_msg("\"%s\" of %" PRIu64 ": got %d, want %d", ranges[i].range, ranges[i].size,
                     got, ranges[i].want);
        if (got == PART && (off != ranges[i].off || len != ranges[i].len))
            fail_msg("\"%s\" of %" PRIu64 ": got %" PRIu64 "+%" PRIu64 ", want %" PRIu64
                     "+%" PRIu64, ranges[i].range, ranges[i].size, off, len, ranges[i].off,
                     ranges[i].len);
    }
}

/* A range the field ignores leaves the caller's offsets as they were. */
static void range_ignored_touches_nothing(void **state)
{
    uint64_t off = 7, len = 9;

    (void)state;
    assert_int_equal(http_byte_range("bytes=0-1,2-3", 100, &off, &len), HTTP_RANGE_WHOLE);
    assert_int_equal(off, 7);
    assert_int_equal(len, 9);
    assert_int_equal(http_byte_range("bytes=200-", 100, &off, &len), HTTP_RANGE_UNSATISFIABLE);
    assert_int_equal(off, 7);
    assert_int_equal(len, 9);
}

/* ---- If-None-Match: ETag lists, weak comparison (§8.8.3.2, §13.1.2) ---- */

#define TAG "\"1f-1000-17\""

static const struct {
    const char *list;
    bool want;
} lists[] = {
    {TAG, true},
    {"W/" TAG, true}, /* weak comparison: W/ is passed over */
    {"*", true},
    {"\"other\", " TAG, true},
    {"\"other\"," TAG, true},
    {"\"a\" ,\t W/" TAG ", \"b\"", true},
    {" , , " TAG, true},
    {"\"other\", *", true},
    {"\"other\"", false},
    {"\"other\", W/\"other2\"", false},
    {"\"1f-1000-1\"", false}, /* a prefix of the tag */
    {"\"1f-1000-17-gz\"", false}, /* the gzip sibling's tag */
    {"1f-1000-17", false},     /* unquoted */
    {"w/" TAG, false},         /* W is case-sensitive */
    {"", false},
    {",", false},
};

static void etag_lists_use_weak_comparison(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        if (http_etag_listed(lists[i].list, TAG) != lists[i].want)
            fail_msg("If-None-Match: %s against %s: want %s", lists[i].list, TAG,
                     lists[i].want ? "listed" : "not listed");
}

/* ---- 304: If-None-Match, then If-Modified-Since (§13.1.3, §13.2.2) ---- */

#define IMF "Sun, 06 Nov 1994 08:49:37 GMT"
#define IMF_T ((time_t)784111777)

static void not_modified_by_etag_or_date(void **state)
{
    (void)state;
    /* neither field: a full answer */
    assert_false(http_not_modified(NULL, NULL, TAG, IMF_T));
    /* If-None-Match decides when present, and If-Modified-Since is not
     * looked at (§13.2.2 step 3) */
    assert_true(http_not_modified(TAG, NULL, TAG, IMF_T));
    assert_true(http_not_modified("*", NULL, TAG, IMF_T));
    assert_false(http_not_modified("\"other\"", IMF, TAG, IMF_T));
    assert_true(http_not_modified(TAG, "Sun, 06 Nov 1994 08:49:36 GMT", TAG, IMF_T));
    /* If-Modified-Since: not modified when the file is no newer */
    assert_true(http_not_modified(NULL, IMF, TAG, IMF_T));
    assert_true(http_not_modified(NULL, IMF, TAG, IMF_T - 1));
    assert_false(http_not_modified(NULL, IMF, TAG, IMF_T + 1));
    assert_true(http_not_modified(NULL, "Mon, 07 Nov 1994 00:00:00 GMT", TAG, IMF_T));
    /* a field that is not an HTTP-date is ignored (§13.1.3); the two
     * obsolete forms are HTTP-dates (§5.6.7) */
    assert_false(http_not_modified(NULL, "yesterday", TAG, IMF_T));
    assert_false(http_not_modified(NULL, "", TAG, IMF_T));
    assert_true(http_not_modified(NULL, "Sunday, 06-Nov-94 08:49:37 GMT", TAG, IMF_T));
    assert_true(http_not_modified(NULL, "Sun Nov  6 08:49:37 1994", TAG, IMF_T));
    assert_false(http_not_modified(NULL, "Sun Nov  6 08:49:37 1994", TAG, IMF_T + 1));
}

/* ---- If-Range: strong comparison (§13.1.5) ---- */

static void if_range_names_this_representation(void **state)
{
    (void)state;
    assert_true(http_if_range_holds(NULL, TAG, IMF));
    assert_true(http_if_range_holds(TAG, TAG, IMF));
    assert_false(http_if_range_holds("\"other\"", TAG, IMF));
    assert_false(http_if_range_holds("W/" TAG, TAG, IMF)); /* weak: never */
    assert_false(http_if_range_holds(TAG ", \"other\"", TAG, IMF)); /* one tag, not a list */
    /* a date must be the Last-Modified sent, to the second, in any of
     * the three HTTP-date forms (§5.6.7) */
    assert_true(http_if_range_holds(IMF, TAG, IMF));
    assert_false(http_if_range_holds("Sun, 06 Nov 1994 08:49:38 GMT", TAG, IMF));
    assert_true(http_if_range_holds("Sunday, 06-Nov-94 08:49:37 GMT", TAG, IMF));
    assert_true(http_if_range_holds("Sun Nov  6 08:49:37 1994", TAG, IMF));
    assert_false(http_if_range_holds("Sun Nov  6 08:49:38 1994", TAG, IMF));
    assert_false(http_if_range_holds("", TAG, IMF));
    assert_false(http_if_range_holds("yesterday", TAG, "yesterday ")); /* no date: no match */
}

/* ---- HTTP dates (§5.6.7) ---- */

static void dates_format_imf_fixdate(void **state)
{
    char out[30];

    (void)state;
    http_date(IMF_T, out);
    assert_string_equal(out, IMF);
    http_date(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    http_date((time_t)951782400, out); /* a leap day */
    assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_int_equal(http_date_parse(out), 951782400);
}

/* The three forms of §5.6.7: IMF-fixdate is read; the obsolete RFC 850
 * and asctime forms are not (a conditional on them is ignored). */
static void dates_parse_all_three_forms(void **state)
{
    (void)state;
    assert_int_equal(http_date_parse(IMF), IMF_T);
    assert_int_equal(http_date_parse("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    /* the obsolete forms a recipient MUST accept too (§5.6.7) */
    assert_int_equal(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT"), IMF_T);
    assert_int_equal(http_date_parse("Sun Nov  6 08:49:37 1994"), IMF_T);
    assert_int_equal(http_date_parse("Wednesday, 06-Nov-24 08:49:37 GMT"), 1730882977);
    /* ... and nothing else */
    assert_int_equal(http_date_parse("Sunday, 06-Nov-94 08:49:37 UTC"), -1);
    assert_int_equal(http_date_parse("Sunday, 06-Nov-1994 08:49:37 GMT"), -1);
    assert_int_equal(http_date_parse("Sun Nov 6 08:49:37 1994"), -1);
    assert_int_equal(http_date_parse("Sun Foo  6 08:49:37 1994"), -1);
    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 UTC"), -1);
    assert_int_equal(http_date_parse("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT "), -1);
    assert_int_equal(http_date_parse("Sun 06 Nov 1994 08:49:37 GMT"), -1);
    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08-49-37 GMT"), -1);
    assert_int_equal(http_date_parse("Sun, 36 Nov 1994 08:49:37 GMT"), -1);
    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 25:49:37 GMT"), -1);
    assert_int_equal(http_date_parse(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(range_cases_follow_rfc9110),
        cmocka_unit_test(range_ignored_touches_nothing),
        cmocka_unit_test(etag_lists_use_weak_comparison),
        cmocka_unit_test(not_modified_by_etag_or_date),
        cmocka_unit_test(if_range_names_this_representation),
        cmocka_unit_test(dates_format_imf_fixdate),
        cmocka_unit_test(dates_parse_all_three_forms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
