/* tests/unit/test_kv_store — modules/kv/store.c on its own, inside
 * async_runtime: put/get/delete/list, compare-and-set by version, a reopen
 * that recovers everything, a torn or garbage tail dropped at the right
 * byte offset with a warning, compaction that keeps every key and
 * version, a file that is not a kv log, the lock between two stores, and
 * many fibers writing at once across workers with compactions among them.
 *
 * Fibers record failures with CHECK* (harness.h) and the test asserts on
 * the tally once async_runtime has returned. */
#define _GNU_SOURCE
#include "harness.h"

#include "../../modules/kv/store.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

static char dir[256];
static char logpath[300];

/* ---- what the store says ---- */

static pthread_mutex_t said_lock = PTHREAD_MUTEX_INITIALIZER;
static char said[8192];

static void capture(void *ctx, int level, const char *msg)
{
    (void)ctx;
    pthread_mutex_lock(&said_lock);
    snprintf(said + strlen(said), sizeof(said) - strlen(said), "<%d>%s\n", level, msg);
    pthread_mutex_unlock(&said_lock);
}

static bool said_has(const char *text)
{
    bool r;

    pthread_mutex_lock(&said_lock);
    r = strstr(said, text) != NULL;
    pthread_mutex_unlock(&said_lock);
    return r;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_kv_store.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(logpath, sizeof(logpath), "%s/kv.log", dir);
    said[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    char cmd[320];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static kv_store *open_store(void)
{
    struct kv_store_options o = {.path = logpath, .sync_interval_ms = 10, .log = capture};
    kv_store *s = NULL;

    if (!CHECK_OK(kv_store_open(&o, &s)))
        return NULL;
    return s;
}

static off_t file_size(void)
{
    struct stat st;

    return stat(logpath, &st) == 0 ? st.st_size : -1;
}

/* ---- small helpers on the store ---- */

static uint64_t put(kv_store *s, const char *k, const char *v)
{
    uint64_t ver = 0;

    CHECK_EQ(kv_store_put(s, k, strlen(k), v, strlen(v), NULL, &ver), KV_OK);
    return ver;
}

/* The value of k, or NULL; *ver its version. */
static bool has(kv_store *s, const char *k, const char *want, uint64_t *ver)
{
    struct kv_value *v = NULL;
    int rc = kv_store_get(s, k, strlen(k), &v);
    bool ok;

    if (want == NULL)
        return rc == KV_NOT_FOUND;
    ok = rc == KV_OK && v->len == strlen(want) && memcmp(v->data, want, v->len) == 0;
    if (ok && ver != NULL)
        *ver = v->version;
    kv_value_release(v);
    return ok;
}

static struct kv_cond if_version(uint64_t v)
{
    return (struct kv_cond){.kind = KV_IF_VERSION, .n = 1, .versions = {v}};
}

/* ------------------------------------------------------------------ */

static void *basic_body(void *arg)
{
    kv_store *s = open_store();
    struct kv_keys k;
    uint64_t v1, v2, v;

    (void)arg;
    if (s == NULL)
        return NULL;
    CHECK(has(s, "a", NULL, NULL));
    v1 = put(s, "a", "one");
    v2 = put(s, "ab", "two");
    put(s, "b", "three");
    put(s, "x/y z", "");
    CHECK(v2 > v1);
    CHECK(has(s, "a", "one", &v) && v == v1);
    CHECK(has(s, "x/y z", "", NULL));
    CHECK_EQ(kv_store_count(s), 4);
    v = put(s, "a", "uno");
    CHECK(v > v2);
    CHECK(has(s, "a", "uno", NULL));
    CHECK_EQ(kv_store_count(s), 4);

    CHECK_OK(kv_store_list(s, "a", 1, &k));
    CHECK_EQ(k.n, 2);
    if (k.n == 2)
        CHECK(strcmp(k.keys[0], "a") == 0 && strcmp(k.keys[1], "ab") == 0 && k.lens[1] == 2);
    kv_keys_free(&k);
    CHECK_OK(kv_store_list(s, "", 0, &k));
    CHECK_EQ(k.n, 4);
    if (k.n == 4)
        CHECK(strcmp(k.keys[0], "a") == 0 && strcmp(k.keys[2], "b") == 0 &&
              strcmp(k.keys[3], "x/y z") == 0);
    kv_keys_free(&k);
    CHECK_OK(kv_store_list(s, "zz", 2, &k));
    CHECK_EQ(k.n, 0);
    kv_keys_free(&k);

    CHECK_EQ(kv_store_delete(s, "b", 1, NULL), KV_OK);
    CHECK_EQ(kv_store_delete(s, "b", 1, NULL), KV_NOT_FOUND);
    CHECK(has(s, "b", NULL, NULL));
    CHECK_EQ(kv_store_count(s), 3);
    CHECK_FAILS(kv_store_put(s, "", 0, "v", 1, NULL, NULL), EINVAL);
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_puts_gets_deletes_and_lists_by_prefix(void **state)
{
    (void)state;
    RUN(2, basic_body, NULL);
}

static void *cas_body(void *arg)
{
    kv_store *s = open_store();
    struct kv_cond c, exists = {.kind = KV_IF_EXISTS};
    uint64_t v1, v2 = 0;

    (void)arg;
    if (s == NULL)
        return NULL;
    CHECK_EQ(kv_store_put(s, "k", 1, "x", 1, &exists, NULL), KV_PRECONDITION);
    CHECK_EQ(kv_store_delete(s, "k", 1, &exists), KV_PRECONDITION);
    c = if_version(12345);
    CHECK_EQ(kv_store_put(s, "k", 1, "x", 1, &c, NULL), KV_PRECONDITION);
    CHECK(has(s, "k", NULL, NULL));
    v1 = put(s, "k", "first");
    c = if_version(v1);
    CHECK_EQ(kv_store_put(s, "k", 1, "second", 6, &c, &v2), KV_OK);
    CHECK(v2 > v1);
    CHECK_EQ(kv_store_put(s, "k", 1, "third", 5, &c, NULL), KV_PRECONDITION); /* stale */
    CHECK(has(s, "k", "second", NULL));
    CHECK_EQ(kv_store_delete(s, "k", 1, &c), KV_PRECONDITION);
    c = (struct kv_cond){.kind = KV_IF_VERSION, .n = 3, .versions = {1, v2, 7}};
    CHECK_EQ(kv_store_put(s, "k", 1, "third", 5, &exists, &v1), KV_OK);
    CHECK_EQ(kv_store_delete(s, "k", 1, &c), KV_PRECONDITION); /* v2 is stale now */
    c.versions[1] = v1;
    CHECK_EQ(kv_store_delete(s, "k", 1, &c), KV_OK);
    CHECK(has(s, "k", NULL, NULL));
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_compare_and_set_by_version(void **state)
{
    (void)state;
    RUN(2, cas_body, NULL);
}

/* ---- reopen ---- */

#define NKEYS 300

static void fill(kv_store *s, uint64_t *vers)
{
    char k[32], v[64];

    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof(k), "key%04d", i);
        snprintf(v, sizeof(v), "value %d", i);
        vers[i] = put(s, k, v);
    }
    for (int i = 0; i < NKEYS; i += 3) { /* overwrite a third */
        snprintf(k, sizeof(k), "key%04d", i);
        snprintf(v, sizeof(v), "again %d", i);
        vers[i] = put(s, k, v);
    }
    for (int i = 1; i < NKEYS; i += 7) { /* delete some */
        snprintf(k, sizeof(k), "key%04d", i);
        CHECK_EQ(kv_store_delete(s, k, strlen(k), NULL), KV_OK);
        vers[i] = 0;
    }
}

/* Every key as fill left it, below `upto` (the rest absent). */
static void verify(kv_store *s, const uint64_t *vers, int upto)
{
    char k[32], v[64];
    int bad = 0;

    for (int i = 0; i < NKEYS; i++) {
        uint64_t ver = 0;

        snprintf(k, sizeof(k), "key%04d", i);
        snprintf(v, sizeof(v), i % 3 == 0 ? "again %d" : "value %d", i);
        if (vers[i] == 0 || i >= upto)
            bad += !has(s, k, NULL, NULL);
        else
            bad += !(has(s, k, v, &ver) && ver == vers[i]);
    }
    CHECK_EQ(bad, 0);
}

static uint64_t vers[NKEYS];

static void *reopen_body(void *arg)
{
    kv_store *s = open_store();
    uint64_t max = 0, v;

    (void)arg;
    if (s == NULL)
        return NULL;
    fill(s, vers);
    CHECK_OK(kv_store_close(s));
    s = open_store();
    if (s == NULL)
        return NULL;
    verify(s, vers, NKEYS);
    CHECK(said_has("loaded"));
    for (int i = 0; i < NKEYS; i++)
        max = vers[i] > max ? vers[i] : max;
    v = put(s, "new", "x"); /* versions go on growing: an old ETag never matches again */
    CHECK(v > max);
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_recovers_everything_after_reopen(void **state)
{
    (void)state;
    RUN(2, reopen_body, NULL);
}

/* ---- damage ---- */

static off_t last_record_at;

static void *torn_write_body(void *arg)
{
    kv_store *s = open_store();

    (void)arg;
    if (s == NULL)
        return NULL;
    fill(s, vers);
    CHECK_OK(kv_store_sync(s));
    last_record_at = file_size();
    put(s, "key9999", "the last record, cut in the middle below");
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void *torn_check_body(void *arg)
{
    kv_store *s = open_store();
    char want[128];

    (void)arg;
    if (s == NULL)
        return NULL;
    snprintf(want, sizeof(want), "a record cut short at byte offset %lld", (long long)last_record_at);
    CHECK(said_has(want));
    CHECK(said_has("<4>"));
    verify(s, vers, NKEYS);
    CHECK(has(s, "key9999", NULL, NULL));
    CHECK_EQ(file_size(), last_record_at); /* the file ends where the good part does */
    put(s, "after", "recovery"); /* ... so what follows is not hidden behind damage */
    CHECK_OK(kv_store_close(s));
    said[0] = '\0';
    s = open_store();
    if (s == NULL)
        return NULL;
    CHECK(has(s, "after", "recovery", NULL));
    CHECK(!said_has("<4>"));
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void truncate_to(off_t n)
{
    assert_int_equal(truncate(logpath, n), 0);
}

static void append_bytes(const void *p, size_t n)
{
    int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void kv_store_drops_a_torn_tail_at_its_byte_offset(void **state)
{
    off_t full;

    (void)state;
    RUN(2, torn_write_body, NULL);
    full = file_size();
    assert_true(full > last_record_at + 20);
    truncate_to(last_record_at + (full - last_record_at) / 2);
    RUN(2, torn_check_body, NULL);
}

static void *garbage_check_body(void *arg)
{
    kv_store *s = open_store();
    char want[128];

    (void)arg;
    if (s == NULL)
        return NULL;
    snprintf(want, sizeof(want), "at byte offset %lld; dropping the 4000 bytes",
             (long long)last_record_at);
    CHECK(said_has(want));
    verify(s, vers, NKEYS);
    CHECK(has(s, "key9999", "the last record, cut in the middle below", NULL));
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_drops_garbage_after_the_last_good_record(void **state)
{
    char junk[4000];
    uint64_t x = 88172645463325252ull;

    (void)state;
    RUN(2, torn_write_body, NULL);
    last_record_at = file_size(); /* the garbage starts after the last record */
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)xorshift(&x);
    append_bytes(junk, sizeof(junk));
    RUN(2, garbage_check_body, NULL);
    /* a record whose bytes changed: the checksum catches it */
    {
        int fd = open(logpath, O_RDWR);
        char c;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &c, 1, last_record_at - 3), 1);
        c ^= 0x20;
        assert_int_equal(pwrite(fd, &c, 1, last_record_at - 3), 1);
        close(fd);
    }
    said[0] = '\0';
    RUN(2, torn_write_body, NULL); /* opens (dropping the flipped record), writes anew */
    assert_true(strstr(said, "a checksum mismatch at byte offset") != NULL);
}

static void *not_a_log_body(void *arg)
{
    struct kv_store_options o = {.path = logpath, .log = capture};
    kv_store *s = NULL;

    (void)arg;
    CHECK_FAILS(kv_store_open(&o, &s), EILSEQ);
    CHECK(said_has("not a kv log"));
    return NULL;
}

static void kv_store_refuses_a_file_that_is_not_a_kv_log(void **state)
{
    (void)state;
    append_bytes("{\"this\": \"is json\"}\n", 20);
    RUN(2, not_a_log_body, NULL);
    assert_int_equal(file_size(), 20); /* untouched */
}

/* ---- compaction ---- */

static void *compact_body(void *arg)
{
    kv_store *s = open_store();
    off_t before;
    uint64_t max = 0, v, gone;

    (void)arg;
    if (s == NULL)
        return NULL;
    fill(s, vers);
    for (int round = 0; round < 5; round++)
        fill(s, vers);
    gone = put(s, "gone", "x");
    CHECK_EQ(kv_store_delete(s, "gone", 4, NULL), KV_OK); /* the highest seq is a delete */
    before = file_size();
    CHECK_OK(kv_store_compact(s));
    CHECK(file_size() < before / 3);
    CHECK(said_has("compacted"));
    verify(s, vers, NKEYS);
    CHECK_OK(kv_store_close(s));
    s = open_store();
    if (s == NULL)
        return NULL;
    verify(s, vers, NKEYS);
    CHECK(has(s, "gone", NULL, NULL));
    for (int i = 0; i < NKEYS; i++)
        max = vers[i] > max ? vers[i] : max;
    /* no live key holds the highest version given out: the compacted
     * file must still know it */
    v = put(s, "gone", "back");
    CHECK(v > gone + 1 && v > max);
    CHECK_OK(kv_store_compact(s));
    put(s, "post", "compaction"); /* lands in the new file */
    CHECK_OK(kv_store_close(s));
    s = open_store();
    if (s == NULL)
        return NULL;
    verify(s, vers, NKEYS);
    CHECK(has(s, "post", "compaction", NULL));
    CHECK(has(s, "gone", "back", NULL));
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_compaction_keeps_every_key_and_version(void **state)
{
    (void)state;
    RUN(2, compact_body, NULL);
}

/* The flusher compacts by itself once the file outgrows the live data. */
static void *auto_compact_body(void *arg)
{
    struct kv_store_options o = {.path = logpath, .sync_interval_ms = 5,
                                 .compact_min_bytes = 16384, .log = capture};
    kv_store *s = NULL;
    char v[64];
    int64_t until;

    (void)arg;
    if (!CHECK_OK(kv_store_open(&o, &s)))
        return NULL;
    for (int i = 0; i < 2000; i++) { /* one key, overwritten: ~100 KiB of log */
        snprintf(v, sizeof(v), "version %d of the only key", i);
        put(s, "only", v);
    }
    /* Waits (bounded) for the state: a file that is small again.  A
     * compaction may have run while the puts went on; the flusher runs
     * another once they stop, as long as the file is past the bounds.
     * (The rename comes a moment before the log line.) */
    until = async_now_ms() + BOUND_MS;
    while ((file_size() >= 16384 || !said_has("compacted")) && async_now_ms() < until)
        async_sleep_ms(5);
    CHECK(file_size() < 16384);
    CHECK(said_has("compacted"));
    CHECK(has(s, "only", "version 1999 of the only key", NULL));
    CHECK_OK(kv_store_close(s));
    s = open_store();
    if (s == NULL)
        return NULL;
    CHECK(has(s, "only", "version 1999 of the only key", NULL));
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_flusher_compacts_a_log_that_outgrew_its_data(void **state)
{
    (void)state;
    RUN(2, auto_compact_body, NULL);
}

/* A write that fails (here: past RLIMIT_FSIZE, EFBIG) is not
 * acknowledged, and the store refuses every change after it, since what
 * follows in the file can no longer be trusted to be whole. */
static void *failed_write_body(void *arg)
{
    kv_store *s = open_store();
    struct rlimit rl;
    char big[8192];

    (void)arg;
    if (s == NULL)
        return NULL;
    put(s, "before", "ok");
    CHECK_OK(kv_store_sync(s));
    memset(big, 'x', sizeof(big));
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = (rlim_t)file_size() + 100;
    CHECK_OK(setrlimit(RLIMIT_FSIZE, &rl));
    CHECK_FAILS(kv_store_put(s, "big", 3, big, sizeof(big), NULL, NULL), EIO);
    CHECK(said_has("refusing changes"));
    CHECK_FAILS(kv_store_put(s, "small", 5, "x", 1, NULL, NULL), EIO);
    CHECK_FAILS(kv_store_delete(s, "before", 6, NULL), EIO);
    CHECK(has(s, "before", "ok", NULL)); /* reads go on */
    rl.rlim_cur = rl.rlim_max;
    CHECK_OK(setrlimit(RLIMIT_FSIZE, &rl));
    CHECK_FAILS(kv_store_close(s), EIO); /* it says so at the end too */
    s = open_store(); /* the torn record is dropped; what was acknowledged stays */
    if (s == NULL)
        return NULL;
    CHECK(has(s, "before", "ok", NULL));
    CHECK(has(s, "small", NULL, NULL));
    put(s, "after", "writable again");
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_refuses_changes_after_a_failed_write(void **state)
{
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    RUN(2, failed_write_body, NULL);
    signal(SIGXFSZ, SIG_DFL);
}

/* ---- two stores on one file ---- */

static void *lock_body(void *arg)
{
    struct kv_store_options o = {.path = logpath, .lock_wait_ms = 50, .log = capture};
    kv_store *s = open_store(), *t = NULL;

    (void)arg;
    if (s == NULL)
        return NULL;
    CHECK_FAILS(kv_store_open(&o, &t), EWOULDBLOCK);
    CHECK(said_has("locked by another store"));
    CHECK_OK(kv_store_compact(s)); /* a new file, locked too */
    CHECK_FAILS(kv_store_open(&o, &t), EWOULDBLOCK);
    CHECK_OK(kv_store_close(s));
    CHECK_OK(kv_store_open(&o, &t));
    if (t != NULL)
        CHECK_OK(kv_store_close(t));
    return NULL;
}

static void kv_store_second_open_waits_for_the_first_to_close(void **state)
{
    (void)state;
    RUN(2, lock_body, NULL);
}

/* ---- concurrency ---- */

#define WRITERS 48
#define PUTS SCALED(200)

struct writer {
    kv_store *s;
    int id;
};

static void *writer(void *arg)
{
    struct writer *w = arg;
    char k[32], v[32];

    for (int i = 0; i < PUTS; i++) {
        snprintf(k, sizeof(k), "w%02d/%04d", w->id, i);
        snprintf(v, sizeof(v), "%d:%d", w->id, i);
        if (kv_store_put(w->s, k, strlen(k), v, strlen(v), NULL, NULL) != KV_OK) {
            CHECK(!"put");
            break;
        }
        /* one shared counter, incremented by compare-and-set */
        for (;;) {
            struct kv_value *cur = NULL;
            struct kv_cond c = {.kind = KV_ALWAYS};
            long n = 0;
            int rc;

            if (kv_store_get(w->s, "counter", 7, &cur) == KV_OK) {
                n = strtol(cur->data, NULL, 10);
                c = if_version(cur->version);
                kv_value_release(cur);
            } else {
                c.kind = KV_ALWAYS; /* first: nobody else may create it, see below */
            }
            snprintf(v, sizeof(v), "%ld", n + 1);
            rc = kv_store_put(w->s, "counter", 7, v, strlen(v), &c, NULL);
            if (rc == KV_OK)
                break;
            if (!CHECK_EQ(rc, KV_PRECONDITION))
                break;
        }
    }
    return NULL;
}

static void *compactor(void *arg)
{
    kv_store *s = arg;

    for (int i = 0; i < 5; i++) {
        CHECK_OK(kv_store_compact(s));
        async_sleep_ms(5);
    }
    return NULL;
}

static void check_all_writers(kv_store *s)
{
    char k[32], v[32];
    int bad = 0;

    for (int id = 0; id < WRITERS; id++)
        for (int i = 0; i < PUTS; i++) {
            snprintf(k, sizeof(k), "w%02d/%04d", id, i);
            snprintf(v, sizeof(v), "%d:%d", id, i);
            bad += !has(s, k, v, NULL);
        }
    CHECK_EQ(bad, 0);
    snprintf(v, sizeof(v), "%d", WRITERS * PUTS);
    CHECK(has(s, "counter", v, NULL));
}

static void *concurrent_body(void *arg)
{
    kv_store *s = open_store();
    struct writer w[WRITERS];
    async_task *t[WRITERS], *c;

    (void)arg;
    if (s == NULL)
        return NULL;
    put(s, "counter", "0");
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){.s = s, .id = i};
        t[i] = spawn(writer, &w[i]);
    }
    c = spawn(compactor, s);
    for (int i = 0; i < WRITERS; i++)
        join_bounded(t[i]);
    join_bounded(c);
    check_all_writers(s);
    CHECK_EQ(kv_store_count(s), WRITERS * PUTS + 1);
    CHECK_OK(kv_store_close(s));
    s = open_store();
    if (s == NULL)
        return NULL;
    check_all_writers(s);
    CHECK_OK(kv_store_close(s));
    return NULL;
}

static void kv_store_many_fibers_write_at_once(void **state)
{
    (void)state;
    RUN(2, concurrent_body, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(kv_store_puts_gets_deletes_and_lists_by_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_compare_and_set_by_version, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_recovers_everything_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_drops_a_torn_tail_at_its_byte_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_drops_garbage_after_the_last_good_record, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_refuses_a_file_that_is_not_a_kv_log, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_compaction_keeps_every_key_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_flusher_compacts_a_log_that_outgrew_its_data, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_refuses_changes_after_a_failed_write, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_second_open_waits_for_the_first_to_close, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_store_many_fibers_write_at_once, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
