/* http_coding_choose: which precompressed sibling Accept-Encoding picks
 * (modules/http/encoding.c).  Bytes in, a choice out: no I/O. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "encoding.h"

#define BOTH (HTTP_HAVE(HTTP_CODING_GZIP) | HTTP_HAVE(HTTP_CODING_BR))
#define GZ HTTP_HAVE(HTTP_CODING_GZIP)
#define BR HTTP_HAVE(HTTP_CODING_BR)

enum { ID = HTTP_CODING_IDENTITY, GZIP = HTTP_CODING_GZIP, BROT = HTTP_CODING_BR };

static const struct {
    const char *ae;
    unsigned have;
    int want;
} cases[] = {
    /* no field, an empty one: identity */
    {NULL, BOTH, ID},
    {"", BOTH, ID},
    {"   ", BOTH, ID},
    /* what browsers send: br before gzip at equal q */
    {"gzip, deflate, br", BOTH, BROT},
    {"gzip, deflate, br, zstd", BOTH, BROT},
    {"br", BOTH, BROT},
    {"gzip", BOTH, GZIP},
    {"gzip", BR, ID},
    {"br", GZ, ID},
    {"gzip, br", GZ, GZIP},
    {"deflate", BOTH, ID},
    /* q-values decide */
    {"br;q=0.5, gzip", BOTH, GZIP},
    {"br;q=0.9, gzip;q=0.8", BOTH, BROT},
    {"gzip;q=1.0, br;q=0.999", BOTH, GZIP},
    {"br;q=0, gzip;q=0", BOTH, ID},
    {"gzip;q=0", GZ, ID},
    {"gzip ; q=0.001", GZ, GZIP},
    {"gzip;Q=0.7", GZ, GZIP},
    {"br;level=5;q=0.6, gzip;q=0.5", BOTH, BROT},
    /* identity named: it competes */
    {"gzip;q=0.5, identity", BOTH, ID},
    {"gzip;q=0.5, identity;q=0.4", BOTH, GZIP},
    {"identity", BOTH, ID},
    /* "*" covers what is not listed */
    {"*", BOTH, BROT},
    {"*;q=0.5, br;q=0", BOTH, GZIP},
    {"*;q=0", BOTH, ID},
    {"*, gzip;q=0", GZ, ID},
    /* identity refused, nothing else acceptable: identity still (RFC 9110 §12.5.3) */
    {"identity;q=0", BOTH, ID},
    {"identity;q=0, gzip", BOTH, GZIP},
    {"identity;q=0, *;q=0", 0, ID},
    /* names ignore case; x-gzip is gzip */
    {"GZIP", GZ, GZIP},
    {"Br", BR, BROT},
    {"x-gzip", GZ, GZIP},
    /* malformed elements are skipped */
    {"gzip;q=abc", GZ, ID},
    {"gzip;q=1.5", GZ, ID},
    {"gzip;q=2", GZ, ID},
    {"gzip;q=0.12345", GZ, ID},
    {"gzip;q=", GZ, ID},
    {"br;q=x, gzip", BOTH, GZIP},
    {",,gzip,,", GZ, GZIP},
    {"gzipx, brotli", BOTH, ID},
};

static void encoding_choice_follows_rfc9110(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = (int)http_coding_choose(cases[i].ae, cases[i].have);

        if (got != cases[i].want)
            fail_msg("\"%s\" (have %u): got %d, want %d", cases[i].ae ? cases[i].ae : "(absent)",
                     cases[i].have, got, cases[i].want);
    }
}

static void encoding_without_siblings_is_identity(void **state)
{
    (void)state;
    assert_int_equal(http_coding_choose("br, gzip, *", 0), HTTP_CODING_IDENTITY);
}

static void encoding_names_and_suffixes(void **state)
{
    (void)state;
    assert_string_equal(http_coding_name(HTTP_CODING_GZIP), "gzip");
    assert_string_equal(http_coding_name(HTTP_CODING_BR), "br");
    assert_null(http_coding_name(HTTP_CODING_IDENTITY));
    assert_string_equal(http_coding_suffix(HTTP_CODING_GZIP), ".gz");
    assert_string_equal(http_coding_suffix(HTTP_CODING_BR), ".br");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encoding_choice_follows_rfc9110),
        cmocka_unit_test(encoding_without_siblings_is_identity),
        cmocka_unit_test(encoding_names_and_suffixes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
