/* Precompressed files: X.gz and X.br beside X, served to the clients that
 * accept them (modules/http/precompressed.c, encoding.c).  The real asyncd
 * and http.so over 127.0.0.1, raw sockets (byte-exact bodies, heads) and
 * curl (a real client that decodes what it gets).  Every wait is bounded. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define IO_MS 10000
#define BR_BYTES "BR:not really brotli, served as it is\n"

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

static char *plain, *gz;        /* www/a.txt and its gzip -9 */
static size_t plain_len, gz_len;

/* A text of n lines, so that gzip has something to do. */
static void make_text(const char *name, int lines)
{
    char path[512], cmd[1200];

    path_of(path, sizeof(path), name);
    snprintf(cmd, sizeof(cmd), "seq 1 %d > '%s'", lines, path);
    assert_int_equal(system(cmd), 0);
}

static void gzip_beside(const char *name)
{
    char path[512], cmd[1200];

    path_of(path, sizeof(path), name);
    snprintf(cmd, sizeof(cmd), "gzip -9 -k -n -f '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* Sets a file's mtime to sec seconds after the epoch. */
static void set_mtime(const char *name, time_t sec)
{
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    char path[512];

    path_of(path, sizeof(path), name);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/http-precomp-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_mkdir("www");
    test_dir_mkdir("www/sub");
    make_text("www/a.txt", 20000);
    gzip_beside("www/a.txt");
    write_file("www/a.txt.br", BR_BYTES);
    /* b.txt: its .gz is older, as after an edit nobody recompressed */
    make_text("www/b.txt", 3000);
    gzip_beside("www/b.txt");
    set_mtime("www/b.txt.gz", 1000000000);
    set_mtime("www/b.txt", 1000000100);
    /* c.txt: no sibling at all */
    write_file("www/c.txt", "plain only\n");
    /* d.txt.gz: a symlink out of the root, never to be followed */
    write_file("www/d.txt", "d\n");
    test_dir_symlink("/etc/passwd", "www/d.txt.gz");
    /* e.txt.gz: a directory, not a file */
    write_file("www/e.txt", "e\n");
    test_dir_mkdir("www/e.txt.gz");
    /* an index file with a sibling */
    write_file("www/sub/index.html", "<p>sub</p>\n");
    gzip_beside("www/sub/index.html");
    plain = read_bytes("www/a.txt", &plain_len);
    gz = read_bytes("www/a.txt.gz", &gz_len);
    assert_non_null(plain);
    assert_non_null(gz);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    close_many();
    free(plain);
    free(gz);
    plain = gz = NULL;
    remove_test_dir();
    return 0;
}

/* One worker: a second request meets the first one's file cache. */
static void start(const char *extra)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"runtime\":{\"workers\":1},\n"
             " \"modules\":{\"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\"%s}}}\n",
             extra);
    write_file("asyncd.json", text);
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
}

static void stop(void)
{
    daemon_stop_clean(&D);
}

/* GET (or HEAD) path with more header lines (each ending in CRLF). */
static void get(const char *method, const char *path, const char *fields, struct resp *r)
{
    char raw[2048];

    snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
             method, path, fields);
    exchange(raw, strcmp(method, "HEAD") == 0, r, NULL);
}

static void assert_no_header(const struct resp *r, const char *name)
{
    if (hdr(r->head, name) != NULL)
        fail_msg("unexpected %s in:\n%s", name, r->head);
}

static void assert_body(const struct resp *r, const char *want, size_t len)
{
    if (r->body_len != len || memcmp(r->body, want, len) != 0)
        fail_msg("body of %zu bytes, want %zu:\n%s", r->body_len, len, r->head);
}

static void precompressed_gzip_and_br_siblings_are_served_to_who_accepts_them(void **state)
{
    struct resp id, g, b;
    char etags[3][128];

    (void)state;
    start("");
    get("GET", "/a.txt", "Accept-Encoding: gzip\r\n", &g);
    assert_status(&g, 200);
    assert_header(&g, "Content-Encoding", "gzip");
    assert_header(&g, "Content-Type", "text/plain; charset=utf-8"); /* X's, not application/gzip */
    assert_header(&g, "Vary", "Accept-Encoding");
    assert_body(&g, gz, gz_len);
    get("GET", "/a.txt", "Accept-Encoding: gzip, deflate, br\r\n", &b);
    assert_status(&b, 200);
    assert_header(&b, "Content-Encoding", "br");
    assert_header(&b, "Content-Type", "text/plain; charset=utf-8");
    assert_body(&b, BR_BYTES, strlen(BR_BYTES));
    get("GET", "/a.txt", "", &id);
    assert_status(&id, 200);
    assert_no_header(&id, "Content-Encoding");
    assert_header(&id, "Vary", "Accept-Encoding"); /* the identity answer varies too */
    assert_body(&id, plain, plain_len);
    snprintf(etags[0], sizeof(etags[0]), "%s", hdr(id.head, "ETag"));
    snprintf(etags[1], sizeof(etags[1]), "%s", hdr(g.head, "ETag"));
    snprintf(etags[2], sizeof(etags[2]), "%s", hdr(b.head, "ETag"));
    if (strcmp(etags[0], etags[1]) == 0 || strcmp(etags[0], etags[2]) == 0 ||
        strcmp(etags[1], etags[2]) == 0)
        fail_msg("one ETag for two encodings: %s %s %s", etags[0], etags[1], etags[2]);
    resp_free(&id);
    resp_free(&g);
    resp_free(&b);
    stop();
}

static void precompressed_curl_decodes_what_it_gets(void **state)
{
    char out[1 << 17], want[64];

    (void)state;
    start("");
    /* --compressed: curl decodes what it gets; asked for gzip only, as
     * a.txt.br holds bytes that are not brotli */
    assert_int_equal(curl(out, sizeof(out), "--compressed -H 'Accept-Encoding: gzip' "
                          "http://127.0.0.1:%d/a.txt", D.port), 0);
    if (strlen(out) != plain_len || memcmp(out, plain, plain_len) != 0)
        fail_msg("curl decoded %zu bytes, want %zu", strlen(out), plain_len);
    assert_int_equal(curl(out, sizeof(out), "-o /dev/null -w '%%{size_download}' "
                          "-H 'Accept-Encoding: gzip' http://127.0.0.1:%d/a.txt", D.port), 0);
    snprintf(want, sizeof(want), "%zu", gz_len); /* what crossed the wire: the .gz */
    assert_string_equal(out, want);
    stop();
}

static void precompressed_older_sibling_is_ignored(void **state)
{
    size_t len = 0;
    char *b = read_bytes("www/b.txt", &len);
    struct resp r;

    (void)state;
    assert_non_null(b);
    start("");
    get("GET", "/b.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_status(&r, 200);
    assert_no_header(&r, "Content-Encoding");
    assert_no_header(&r, "Vary"); /* no sibling that may serve: nothing varies */
    assert_body(&r, b, len);
    resp_free(&r);
    free(b);
    stop();
}

static void precompressed_q_values_decide(void **state)
{
    struct resp r;

    (void)state;
    start("");
    get("GET", "/a.txt", "Accept-Encoding: gzip;q=0\r\n", &r);
    assert_no_header(&r, "Content-Encoding");
    assert_body(&r, plain, plain_len);
    resp_free(&r);
    get("GET", "/a.txt", "Accept-Encoding: br;q=0, gzip\r\n", &r);
    assert_header(&r, "Content-Encoding", "gzip");
    resp_free(&r);
    get("GET", "/a.txt", "Accept-Encoding: br;q=0.4, gzip;q=0.5\r\n", &r);
    assert_header(&r, "Content-Encoding", "gzip");
    resp_free(&r);
    get("GET", "/a.txt", "Accept-Encoding: gzip;q=0.5, identity\r\n", &r);
    assert_no_header(&r, "Content-Encoding");
    resp_free(&r);
    get("GET", "/a.txt", "Accept-Encoding: *\r\n", &r);
    assert_header(&r, "Content-Encoding", "br");
    resp_free(&r);
    stop();
}

/* identity;q=0 with nothing else acceptable: the identity body, not 406
 * (RFC 9110 §12.5.3; encoding.c says why). */
static void precompressed_identity_refused_without_sibling_gets_identity(void **state)
{
    struct resp r;

    (void)state;
    start("");
    get("GET", "/c.txt", "Accept-Encoding: identity;q=0\r\n", &r);
    assert_status(&r, 200);
    assert_no_header(&r, "Content-Encoding");
    assert_body(&r, "plain only\n", 11);
    resp_free(&r);
    get("GET", "/a.txt", "Accept-Encoding: identity;q=0, gzip\r\n", &r);
    assert_header(&r, "Content-Encoding", "gzip");
    resp_free(&r);
    get("GET", "/a.txt", "Accept-Encoding: identity;q=0, *;q=0\r\n", &r);
    assert_status(&r, 200);
    assert_no_header(&r, "Content-Encoding");
    resp_free(&r);
    stop();
}

static void precompressed_range_counts_the_encoded_bytes(void **state)
{
    struct resp r;
    char want[128];

    (void)state;
    start("");
    get("GET", "/a.txt", "Accept-Encoding: gzip\r\nRange: bytes=10-109\r\n", &r);
    assert_status(&r, 206);
    assert_header(&r, "Content-Encoding", "gzip");
    snprintf(want, sizeof(want), "bytes 10-109/%zu", gz_len);
    assert_header(&r, "Content-Range", want);
    assert_header(&r, "Vary", "Accept-Encoding");
    assert_body(&r, gz + 10, 100);
    resp_free(&r);
    /* the last bytes: a suffix range of the .gz */
    get("GET", "/a.txt", "Accept-Encoding: gzip\r\nRange: bytes=-8\r\n", &r);
    assert_status(&r, 206);
    assert_body(&r, gz + gz_len - 8, 8); /* gzip's CRC32 and ISIZE */
    resp_free(&r);
    /* past the .gz's end (but inside X): 416 with the .gz's size */
    snprintf(want, sizeof(want), "Accept-Encoding: gzip\r\nRange: bytes=%zu-\r\n", gz_len + 10);
    get("GET", "/a.txt", want, &r);
    assert_status(&r, 416);
    snprintf(want, sizeof(want), "bytes */%zu", gz_len);
    assert_header(&r, "Content-Range", want);
    resp_free(&r);
    stop();
}

static void precompressed_head_and_304_carry_vary_and_the_encodings_etag(void **state)
{
    struct resp r;
    char etag[128], fields[512], len[32];

    (void)state;
    start("");
    get("HEAD", "/a.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_status(&r, 200);
    assert_header(&r, "Content-Encoding", "gzip");
    snprintf(len, sizeof(len), "%zu", gz_len);
    assert_header(&r, "Content-Length", len);
    assert_header(&r, "Vary", "Accept-Encoding");
    snprintf(etag, sizeof(etag), "%s", hdr(r.head, "ETag"));
    resp_free(&r);
    snprintf(fields, sizeof(fields), "Accept-Encoding: gzip\r\nIf-None-Match: %s\r\n", etag);
    get("GET", "/a.txt", fields, &r);
    assert_status(&r, 304);
    assert_header(&r, "ETag", etag);
    assert_header(&r, "Vary", "Accept-Encoding");
    resp_free(&r);
    /* the gzip tag does not validate the identity answer */
    snprintf(fields, sizeof(fields), "If-None-Match: %s\r\n", etag);
    get("GET", "/a.txt", fields, &r);
    assert_status(&r, 200);
    assert_body(&r, plain, plain_len);
    resp_free(&r);
    stop();
}

static void precompressed_index_file_sibling_is_served(void **state)
{
    size_t len = 0;
    char *want = read_bytes("www/sub/index.html.gz", &len);
    struct resp r;

    (void)state;
    assert_non_null(want);
    start("");
    get("GET", "/sub/", "Accept-Encoding: gzip\r\n", &r);
    assert_status(&r, 200);
    assert_header(&r, "Content-Encoding", "gzip");
    assert_header(&r, "Content-Type", "text/html; charset=utf-8");
    assert_body(&r, want, len);
    resp_free(&r);
    free(want);
    stop();
}

static void precompressed_siblings_that_are_not_files_beneath_the_root_are_ignored(void **state)
{
    struct resp r;

    (void)state;
    start("");
    get("GET", "/d.txt", "Accept-Encoding: gzip\r\n", &r); /* .gz: a symlink to /etc/passwd */
    assert_status(&r, 200);
    assert_no_header(&r, "Content-Encoding");
    assert_body(&r, "d\n", 2);
    resp_free(&r);
    get("GET", "/e.txt", "Accept-Encoding: gzip\r\n", &r); /* .gz: a directory */
    assert_status(&r, 200);
    assert_no_header(&r, "Content-Encoding");
    assert_body(&r, "e\n", 2);
    resp_free(&r);
    stop();
}

/* A .gz rewritten while X sits in the open-file cache: the new bytes. */
static void precompressed_rewritten_sibling_is_seen_at_once(void **state)
{
    static const char fresh[] = "a new gzip body, longer than the old one? no: different\n";
    struct resp r;

    (void)state;
    start(",\"open_file_cache_ms\":60000");
    get("GET", "/a.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_body(&r, gz, gz_len);
    resp_free(&r);
    write_file("www/a.txt.gz", fresh); /* in place: same inode, new size */
    get("GET", "/a.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_header(&r, "Content-Encoding", "gzip");
    assert_body(&r, fresh, strlen(fresh));
    resp_free(&r);
    stop();
}

/* The answer "no sibling" is kept with X's cache entry: a hit costs no
 * lookup, so a .gz made while X is cached shows only when the entry is
 * opened again (open_file_cache_ms 0: at once). */
static void precompressed_absent_sibling_is_remembered_while_x_is_cached(void **state)
{
    struct resp r;

    (void)state;
    start(",\"open_file_cache_ms\":60000");
    get("GET", "/c.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_no_header(&r, "Content-Encoding");
    resp_free(&r);
    gzip_beside("www/c.txt");
    get("GET", "/c.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_no_header(&r, "Content-Encoding"); /* not looked for again */
    assert_body(&r, "plain only\n", 11);
    resp_free(&r);
    stop();
    start(",\"open_file_cache_ms\":0");
    get("GET", "/c.txt", "Accept-Encoding: gzip\r\n", &r);
    assert_header(&r, "Content-Encoding", "gzip");
    resp_free(&r);
    stop();
}

static void precompressed_false_turns_it_off(void **state)
{
    struct resp r;

    (void)state;
    start(",\"precompressed\":false");
    get("GET", "/a.txt", "Accept-Encoding: gzip, br\r\n", &r);
    assert_status(&r, 200);
    assert_no_header(&r, "Content-Encoding");
    assert_no_header(&r, "Vary");
    assert_body(&r, plain, plain_len);
    resp_free(&r);
    stop();
}

static void precompressed_check_config_rejects_a_non_boolean(void **state)
{
    char out[8192], cfg[600];

    (void)state;
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"modules\":{\"http\":{"
                              "\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\","
                              "\"precompressed\":\"yes\"}}}\n");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    assert_int_equal(run_to_end("--check-config", cfg, out, sizeof(out)), 78);
    if (strstr(out, "modules.http.precompressed") == NULL || strstr(out, "true or false") == NULL)
        fail_msg("expected a message naming modules.http.precompressed, got:\n%s", out);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(precompressed_gzip_and_br_siblings_are_served_to_who_accepts_them),
        T(precompressed_curl_decodes_what_it_gets),
        T(precompressed_older_sibling_is_ignored),
        T(precompressed_q_values_decide),
        T(precompressed_identity_refused_without_sibling_gets_identity),
        T(precompressed_range_counts_the_encoded_bytes),
        T(precompressed_head_and_304_carry_vary_and_the_encodings_etag),
        T(precompressed_index_file_sibling_is_served),
        T(precompressed_siblings_that_are_not_files_beneath_the_root_are_ignored),
        T(precompressed_rewritten_sibling_is_seen_at_once),
        T(precompressed_absent_sibling_is_remembered_while_x_is_cached),
        T(precompressed_false_turns_it_off),
        T(precompressed_check_config_rejects_a_non_boolean),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
