/* status_allow / metrics_allow entries and peers (modules/http/allow.c):
 * CIDR parsing and matching.  Bytes in, verdicts out: no I/O. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "allow.h"

#include <string.h>

static void allow_parses_addresses_and_prefixes(void **state)
{
    static const struct {
        const char *s;
        unsigned bits;
    } good[] = {
        {"127.0.0.1", 128}, {"10.0.0.0/8", 104}, {"0.0.0.0/0", 96}, {"192.168.1.0/24", 120},
        {"::1", 128},       {"fd00::/8", 8},     {"::/0", 0},       {"2001:db8::/32", 32},
        {"::ffff:10.0.0.0/104", 104},            {"10.1.2.3/32", 128},
    };
    struct http_cidr c;
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (http_cidr_parse(good[i].s, &c, &why) != 0)
            fail_msg("%s refused: %s", good[i].s, why);
        assert_int_equal(c.bits, good[i].bits);
    }
}

static void allow_refuses_what_is_not_an_address_or_prefix(void **state)
{
    static const char *const bad[] = {
        "", "localhost", "10.0.0", "256.0.0.1", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x",
        "10.0.0.0/8/8", "10.0.0.1/8", "fd00::1/8", "10.0.0.0/-1", "10.0.0.0/08", "/8",
        "[::1]", "127.0.0.1:80", " 127.0.0.1", "fe80::1%lo",
    };
    struct http_cidr c;
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (http_cidr_parse(bad[i], &c, &why) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(why);
    }
}

static bool allowed(const char *const *entries, size_t n, const char *peer)
{
    struct http_cidr c[8];
    struct http_allow a = {c, n};
    uint8_t addr[16];
    const char *why;
    size_t i;

    for (i = 0; i < n; i++)
        assert_int_equal(http_cidr_parse(entries[i], &c[i], &why), 0);
    assert_int_equal(http_peer_address(peer, addr), 0);
    return http_allow_match(&a, addr);
}

static void allow_matches_peers_by_prefix(void **state)
{
    static const char *const list[] = {"10.0.0.0/8", "192.168.1.7", "fd00::/8"};

    (void)state;
    assert_true(allowed(list, 3, "10.200.3.4:5555"));
    assert_false(allowed(list, 3, "11.0.0.1:5555"));
    assert_true(allowed(list, 3, "192.168.1.7:1"));
    assert_false(allowed(list, 3, "192.168.1.8:1"));
    assert_true(allowed(list, 3, "[fd12::1]:80"));
    assert_false(allowed(list, 3, "[fe80::1]:80"));
    /* an IPv4 peer seen through an IPv6 socket matches IPv4 entries */
    assert_true(allowed(list, 3, "[::ffff:10.1.1.1]:80"));
    assert_false(allowed(list, 0, "10.0.0.1:80"));
}

static void allow_prefix_lengths_that_do_not_end_on_a_byte(void **state)
{
    static const char *const v4[] = {"172.16.0.0/12"};
    static const char *const v6[] = {"2001:db8:8000::/33"};

    (void)state;
    assert_true(allowed(v4, 1, "172.31.255.255:1"));
    assert_false(allowed(v4, 1, "172.32.0.0:1"));
    assert_false(allowed(v4, 1, "172.15.255.255:1"));
    assert_true(allowed(v6, 1, "[2001:db8:ffff::1]:1"));
    assert_false(allowed(v6, 1, "[2001:db8:7fff::1]:1"));
}

static void allow_default_is_loopback_only(void **state)
{
    struct http_allow a;
    uint8_t addr[16];

    (void)state;
    assert_int_equal(http_allow_loopback(&a), 0);
    assert_int_equal(http_peer_address("127.0.0.1:9", addr), 0);
    assert_true(http_allow_match(&a, addr));
    assert_int_equal(http_peer_address("127.0.0.2:9", addr), 0);
    assert_true(http_allow_match(&a, addr));
    assert_int_equal(http_peer_address("[::1]:9", addr), 0);
    assert_true(http_allow_match(&a, addr));
    assert_int_equal(http_peer_address("10.0.0.1:9", addr), 0);
    assert_false(http_allow_match(&a, addr));
    assert_int_equal(http_peer_address("[::2]:9", addr), 0);
    assert_false(http_allow_match(&a, addr));
    http_allow_free(&a);
}

static void allow_peer_forms_that_do_not_parse(void **state)
{
    uint8_t addr[16];

    (void)state;
    assert_int_equal(http_peer_address("-", addr), -1);
    assert_int_equal(http_peer_address("", addr), -1);
    assert_int_equal(http_peer_address("[::1", addr), -1);
    assert_int_equal(http_peer_address("host:80", addr), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allow_parses_addresses_and_prefixes),
        cmocka_unit_test(allow_refuses_what_is_not_an_address_or_prefix),
        cmocka_unit_test(allow_matches_peers_by_prefix),
        cmocka_unit_test(allow_prefix_lengths_that_do_not_end_on_a_byte),
        cmocka_unit_test(allow_default_is_loopback_only),
        cmocka_unit_test(allow_peer_forms_that_do_not_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
