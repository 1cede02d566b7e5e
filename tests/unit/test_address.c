/* async_address_parse: the address syntax of bind and connect, checked
 * without the network (runtime/net/addr.c).  Bytes in, verdicts out: no
 * runtime, no fiber. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <async_io.h>

#include <errno.h>
#include <string.h>

static void address_accepts_every_documented_form(void **state)
{
    static const struct {
        const char *address, *host;
        int port;
    } good[] = {
        {"127.0.0.1:80", "127.0.0.1", 80},
        {"0.0.0.0:0", "0.0.0.0", 0},
        {"[::1]:8080", "::1", 8080},
        {"[::]:65535", "::", 65535},
        {"[fe80::1%lo]:80", "fe80::1%lo", 80},
        {"[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1},
        {"*:80", "", 80},
        {":443", "", 443},
        {"localhost:8080", "localhost", 8080},
        {"www.example-1.org:00080", "www.example-1.org", 80}, /* five digits, leading zeros */
        {"127.1:9", "127.1", 9},                              /* inet_aton's short form */
    };
    char host[256];
    const char *why;
    size_t i;
    int port;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        why = "unset";
        port = -1;
        if (async_address_parse(good[i].address, host, sizeof(host), &port, &why) != 0)
            fail_msg("%s rejected: %s", good[i].address, why);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
        assert_null(why);
    }
    assert_int_equal(async_address_parse("[::1]:1", NULL, 0, NULL, NULL), 0);
}

static void address_rejects_hostile_and_malformed_input_with_a_reason(void **state)
{
    static const struct {
        const char *address, *reason; /* a part of the reason */
    } bad[] = {
        {"", "no \":port\""},
        {"127.0.0.1", "no \":port\""},
        {"127.0.0.1:", "no port"},
        {"127.0.0.1:70000", "above 65535"},
        {"127.0.0.1:65536", "above 65535"},
        {"127.0.0.1:000080", "above 65535"}, /* six digits */
        {"127.0.0.1:99999999999999999999", "above 65535"},
        {"127.0.0.1:8x", "decimal digits"},
        {"127.0.0.1:-1", "decimal digits"},
        {"127.0.0.1:+80", "decimal digits"},
        {"127.0.0.1: 80", "decimal digits"},
        {"*:-1", "decimal digits"},
        {"::1:80", "brackets"},
        {"[::1]80", "followed by"},
        {"[::1", "without ']'"},
        {"[]:80", "empty brackets"},
        {"[foo]:80", "not an IPv6"},
        {"[1.2.3.4]:80", "not an IPv6"},
        {"[::1%]:80", "zone"},
        {"[::1%a/b]:80", "zone"},
        {"300.1.1.1:80", "not an IPv4"},
        {"1.2.3.:80", "not an IPv4"},
        {"a b:80", "only letters"},
        {"bad_host:80", "only letters"},
        {"x/y:80", "only letters"},
        {"evil\r\nSet-Cookie: x:80", "only letters"},
        {"h\xc3\xa9:80", "only letters"},
        {"**:80", "only letters"},
    };
    const char *why;
    char host[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        why = NULL;
        if (async_address_parse(bad[i].address, host, sizeof(host), NULL, &why) != -1)
            fail_msg("%s accepted", bad[i].address);
        assert_int_equal(errno, EINVAL);
        assert_non_null(why);
        if (strstr(why, bad[i].reason) == NULL)
            fail_msg("%s: reason \"%s\", expected one mentioning \"%s\"", bad[i].address, why,
                     bad[i].reason);
    }
    errno = 0;
    assert_int_equal(async_address_parse(NULL, NULL, 0, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

static void address_host_names_are_bounded(void **state)
{
    char address[400], host[8];
    const char *why;

    (void)state;
    memset(address, 'a', 254); /* one over the longest DNS name */
    strcpy(address + 254, ":80");
    assert_int_equal(async_address_parse(address, NULL, 0, NULL, &why), -1);
    assert_int_equal(errno, EINVAL);
    address[253] = ':'; /* 253 bytes: fine */
    strcpy(address + 254, "80");
    assert_int_equal(async_address_parse(address, NULL, 0, NULL, NULL), 0);
    /* a host that does not fit the caller's buffer is not truncated */
    assert_int_equal(async_address_parse("localhost:80", host, sizeof(host), NULL, &why), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(async_address_parse("abcdefg:80", host, sizeof(host), NULL, NULL), 0);
    assert_string_equal(host, "abcdefg");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(address_accepts_every_documented_form),
        cmocka_unit_test(address_rejects_hostile_and_malformed_input_with_a_reason),
        cmocka_unit_test(address_host_names_are_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
