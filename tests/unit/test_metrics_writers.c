/* daemon/metrics_writers: writers called in the order they were
 * registered, names checked, a withdrawn run's writers skipped; and, with
 * scrapes on four threads while one run after another registers a writer
 * and withdraws it, no scrape inside a writer once asyncd found it no
 * longer busy — the moment run frees what the writer reads (a plain
 * field here, which TSan watches, and freed memory, which ASan does).
 * Labelled concurrency: TSan runs it.  Threads here are plain pthreads;
 * only the main thread calls cmocka. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics_writers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCRAPERS 4
#define RUNS 300
#define WAIT_MS 10000

/* asyncd's log, which the registry writes to: not what is tested here. */
void asyncd_log(int level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A module and the host handle of its run. */
struct fake {
    struct async_module desc;
    struct asyncd_module m;
    struct async_module_host host;
};

static void fake_init(struct fake *f, const char *name)
{
    memset(f, 0, sizeof(*f));
    f->desc.name = name;
    f->m.desc = &f->desc;
    f->host.module = &f->m;
}

static void write_name(struct async_module_text *out, void *ctx)
{
    async_module_textf(out, "%s\n", (const char *)ctx);
}

static char *scrape(void)
{
    struct async_module_text t = {0};

    async_module_textf(&t, "%s", "");
    asyncd_metrics_write(NULL, &t);
    assert_false(t.failed);
    return t.buf;
}

static void writers_run_in_order_and_leave_with_their_run(void **state)
{
    struct fake a, b;
    char *text;

    (void)state;
    fake_init(&a, "a");
    fake_init(&b, "b");
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "one", write_name, "a1"), 0);
    assert_int_equal(asyncd_metrics_writer_add(&b.host, "one", write_name, "b1"), 0);
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "two", write_name, "a2"), 0);
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "one", write_name, "again"), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "no spaces", write_name, "x"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "", write_name, "x"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "f", NULL, "x"), -1);
    assert_int_equal(errno, EINVAL);
    text = scrape();
    assert_string_equal(text, "a1\nb1\na2\n");
    free(text);
    /* a's run ends: its writers go; its next run registers the names again */
    asyncd_metrics_writers_withdraw(&a.m);
    assert_false(asyncd_metrics_writers_busy(&a.m));
    text = scrape();
    assert_string_equal(text, "b1\n");
    free(text);
    assert_int_equal(asyncd_metrics_writer_add(&a.host, "one", write_name, "a1'"), 0);
    text = scrape();
    assert_string_equal(text, "b1\na1'\n");
    free(text);
    asyncd_metrics_writers_free_all();
    text = scrape();
    assert_string_equal(text, "");
    free(text);
}

/* What a run owns and its writer reads. */
struct owned {
    int alive;                  /* plain: run clears it once asyncd says not busy */
    _Atomic long calls;
};

static _Atomic long dead_reads;
static _Atomic bool stop_scraping;

static void write_owned(struct async_module_text *out, void *ctx)
{
    struct owned *o = ctx;
    int i;

    atomic_fetch_add(&o->calls, 1);
    /* lines enough to be caught inside by a withdrawal, then the read
     * that must still find what run owns */
    for (i = 0; i < 200; i++)
        async_module_textf(out, "x{i=\"%d\"} 1\n", i);
    if (!o->alive)
        atomic_fetch_add(&dead_reads, 1);
}

static void *scraper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_scraping)) {
        struct async_module_text t = {0};

        asyncd_metrics_write(NULL, &t);
        free(t.buf);
    }
    return NULL;
}

static void no_scrape_is_inside_a_writer_asyncd_found_settled(void **state)
{
    pthread_t th[SCRAPERS];
    struct fake f;
    int i, run;

    (void)state;
    fake_init(&f, "m");
    atomic_store(&stop_scraping, false);
    for (i = 0; i < SCRAPERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, scraper, NULL), 0);
    for (run = 0; run < RUNS; run++) {
        struct owned *o = calloc(1, sizeof(*o));
        int64_t until = now_ms() + WAIT_MS;

        assert_non_null(o);
        o->alive = 1;
        assert_int_equal(asyncd_metrics_writer_add(&f.host, "w", write_owned, o), 0);
        while (atomic_load(&o->calls) == 0 && now_ms() < until) /* a scrape came in */
            sched_yield();
        assert_true(atomic_load(&o->calls) > 0);
        asyncd_metrics_writers_withdraw(&f.m);
        while (asyncd_metrics_writers_busy(&f.m) && now_ms() < until)
            sched_yield();
        assert_false(asyncd_metrics_writers_busy(&f.m));
        o->alive = 0;
        free(o);
    }
    atomic_store(&stop_scraping, true);
    for (i = 0; i < SCRAPERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&dead_reads), 0);
    asyncd_metrics_writers_free_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writers_run_in_order_and_leave_with_their_run),
        cmocka_unit_test(no_scrape_is_inside_a_writer_asyncd_found_settled),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
