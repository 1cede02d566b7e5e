/* tests/unit/test_module_double.c — a module loaded without asyncd: the
 * greeter fixture (tests/fixtures/greeter.c) dlopened by this test, which
 * hands it a host table of its own (async_io/module.h).  The module
 * registers its handler with the double, and the test serves a request
 * with that handler on the library's HTTP engine. */
#define _GNU_SOURCE
#include "harness.h"

#include <async_io/http.h>
#include <async_io/module.h>

#include <dlfcn.h>

struct async_module_host {
    const struct async_module_host_api *api;
    char log[4096];
    size_t log_len;
    async_http_handler fn;
    void *ctx;
    char name[65];
};

static void vlog(async_module_host *h, int level, const char *fmt, va_list ap)
{
    (void)level;
    if (h->log_len < sizeof(h->log) - 1) {
        int n = vsnprintf(h->log + h->log_len, sizeof(h->log) - 1 - h->log_len, fmt, ap);

        if (n > 0)
            h->log_len += (size_t)n < sizeof(h->log) - 1 - h->log_len
                              ? (size_t)n : sizeof(h->log) - 1 - h->log_len;
        h->log[h->log_len++] = '\n';
        h->log[h->log_len] = '\0';
    }
}

static int64_t stop_deadline(const async_module_host *h)
{
    (void)h;
    return -1;
}

static int add_handler(async_module_host *h, const char *name, async_http_handler fn, void *ctx)
{
    if (h->fn != NULL) {
        errno = EEXIST;
        return -1;
    }
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->ctx = ctx;
    atomic_thread_fence(memory_order_release);
    h->fn = fn;
    return 0;
}

/* Only what the greeter calls; a call it should not make crashes. */
static const struct async_module_host_api double_api = {
    .size = sizeof(struct async_module_host_api),
    .vlog = vlog,
    .stop_deadline = stop_deadline,
    .add_http_handler = add_handler,
};

static async_module_host host = {.api = &double_api};
static const struct async_module *desc;
static json_t *config;

static void *run_module(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)desc->run(&host, config);
}

static void *serve(void *arg)
{
    async_stream *s = async_listener_accept(arg);

    CHECK(s != NULL);
    if (s != NULL)
        CHECK_OK(async_http_serve(s, host.fn, host.ctx));
    return NULL;
}

static void *t_double(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_task *run, *server;
    async_stream *c;
    char addr[64], reply[1024];
    size_t got = 0;
    ssize_t n;
    int i;

    (void)arg;
    CHECK(l != NULL);
    run = async_spawn(run_module, NULL);
    for (i = 0; i < BOUND_MS && host.fn == NULL; i++)
        async_sleep_ms(1);
    CHECK(host.fn != NULL);
    CHECK(strcmp(host.name, "greet") == 0);
    server = async_spawn(serve, l);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", async_listener_port(l));
    c = async_tcp_connect(addr);
    CHECK(c != NULL);
    CHECK_OK(async_stream_write_all(c, "GET /x?y HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
                                    50));
    async_deadline(async_now_ms() + BOUND_MS);
    while (got < sizeof(reply) - 1 && (n = async_stream_read(c, reply + got,
                                                              sizeof(reply) - 1 - got)) > 0)
        got += (size_t)n;
    async_deadline(-1);
    reply[got] = '\0';
    CHECK(strstr(reply, "HTTP/1.1 200 OK\r\n") != NULL);
    CHECK(strstr(reply, "\r\n\r\ngreeter 7: /x ?y\n") != NULL);
    async_stream_close(c);
    async_join(server, NULL);
    async_cancel(run);
    CHECK_OK(async_join(run, NULL));
    async_listener_close(l);
    CHECK(strstr(host.log, "serving greet (gen 7)") != NULL);
    return NULL;
}

static void module_double_loads_a_module_and_serves_its_handler(void **state)
{
    void *dl = dlopen(GREETER_SO, RTLD_NOW | RTLD_LOCAL);

    (void)state;
    assert_non_null(dl);
    desc = dlsym(dl, "async_module");
    assert_non_null(desc);
    assert_int_equal(desc->abi_version, ASYNC_MODULE_ABI_VERSION);
    assert_int_equal(desc->size, ASYNC_MODULE_SIZE);
    config = json_pack("{s:s}", "gen", "7");
    RUN(2, t_double, NULL);
    json_decref(config);
    dlclose(dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(module_double_loads_a_module_and_serves_its_handler),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
