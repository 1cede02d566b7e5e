/* http_server — hello_server rewritten on the HTTP engine: a fiber per
 * connection (async_http_serve), a count of clients kept under an async
 * mutex, and handlers written as blocking code.
 *
 *   GET  /            a page with the counts
 *   POST /echo        the request body back (chunked or not)
 *   GET  /sleep?ms=N  answers after N ms (the fiber parks; others run)
 *
 *   http_server [ADDRESS] [WORKERS]     default 127.0.0.1:8080 */
#include <async_io.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static async_mutex *counts_lock;
static unsigned long clients, requests;

static int page(async_http_request *req)
{
    char body[256];
    unsigned long c, r;
    int n;

    if (async_mutex_lock(counts_lock) != 0)
        return -1;
    c = clients;
    r = ++requests;
    async_mutex_unlock(counts_lock);
    n = snprintf(body, sizeof(body),
                 "<html><body><h1>Hello, World!</h1><p>client %lu, request %lu</p>"
                 "</body></html>\n", c, r);
    return async_http_respond(req, 200, "text/html; charset=utf-8", body, (size_t)n);
}

/* Streams the body back as it comes: no Content-Length, so the engine
 * chunks the answer. */
static int echo(async_http_request *req)
{
    char buf[16384];
    ssize_t n;

    async_http_add_header(req, "Content-Type", "application/octet-stream");
    while ((n = async_http_read_body(req, buf, sizeof(buf))) > 0)
        if (async_http_write(req, buf, (size_t)n) != 0)
            return -1;
    if (n < 0 && !async_http_head_sent(req))
        return async_http_respond(req, 413, "text/plain", "too large\n", 10);
    return n < 0 ? -1 : 0;
}

static int nap(async_http_request *req)
{
    const char *q = async_http_query(req);
    unsigned long ms = strncmp(q, "ms=", 3) == 0 ? strtoul(q + 3, NULL, 10) : 100;

    if (ms > 10000)
        ms = 10000;
    if (async_sleep_ms(ms) != 0)
        return -1;
    return async_http_respond(req, 200, "text/plain", "rested\n", 7);
}

static int handle(async_http_request *req, void *ctx)
{
    const char *path = async_http_path(req), *method = async_http_method(req);

    (void)ctx;
    if (strcmp(path, "/") == 0 && strcmp(method, "GET") == 0)
        return page(req);
    if (strcmp(path, "/echo") == 0 && strcmp(method, "POST") == 0)
        return echo(req);
    if (strcmp(path, "/sleep") == 0 && strcmp(method, "GET") == 0)
        return nap(req);
    return async_http_respond(req, 404, "text/plain", "not found\n", 10);
}

static void *connection(void *arg)
{
    if (async_mutex_lock(counts_lock) == 0) {
        clients++;
        async_mutex_unlock(counts_lock);
    }
    async_http_serve(arg, handle, NULL);
    return NULL;
}

static void *main_fiber(void *arg)
{
    async_listener *l = async_listener_bind(arg);
    async_stream *s;

    if (l == NULL) {
        perror("http_server: bind");
        return NULL;
    }
    counts_lock = async_mutex_new();
    fprintf(stderr, "http_server: listening on port %d\n", async_listener_port(l));
    while ((s = async_listener_accept(l)) != NULL) {
        async_task *t = async_spawn(connection, s);

        if (t != NULL)
            async_detach(t);
        else
            async_stream_close(s);
    }
    perror("http_server: accept");
    async_listener_close(l);
    async_mutex_free(counts_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    struct async_config cfg = {.workers = argc > 2 ? (unsigned)atoi(argv[2]) : 0};
    char *address = argc > 1 ? argv[1] : "127.0.0.1:8080";

    setvbuf(stderr, NULL, _IOLBF, 0);
    return async_runtime(&cfg, main_fiber, address) == 0 ? 0 : 1;
}
