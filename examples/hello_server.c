/* hello_server — the original async_io's tiny HTTP server: a fiber per
 * connection answering every request with a fixed page, and a count of
 * clients kept under an async mutex.
 *
 *   hello_server [ADDRESS] [WORKERS]     default 127.0.0.1:8080 */
#define _GNU_SOURCE
#include <async_io.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char page[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 48\r\n"
    "\r\n"
    "<html><body><h1>Hello, World!</h1></body></html>";

static async_mutex *clients_lock;
static unsigned long clients;

/* Answers each request (everything up to a blank line) until the peer
 * goes; request bodies are not expected. */
static void *serve(void *arg)
{
    async_stream *s = arg;
    char buf[4096];
    size_t have = 0;

    if (async_mutex_lock(clients_lock) == 0) {
        clients++;
        async_mutex_unlock(clients_lock);
    }
    for (;;) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        ssize_t n;

        if (end != NULL) {
            size_t used = (size_t)(end + 4 - buf);

            if (async_stream_write_all(s, page, sizeof(page) - 1) != 0)
                break;
            memmove(buf, buf + used, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof(buf))
            break; /* a request head this large is not for us */
        n = async_stream_read(s, buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    async_stream_close(s);
    return NULL;
}

static void *main_fiber(void *arg)
{
    async_listener *l = async_listener_bind(arg);
    async_stream *s;

    if (l == NULL) {
        perror("hello_server: bind");
        return NULL;
    }
    clients_lock = async_mutex_new();
    fprintf(stderr, "hello_server: listening on port %d\n", async_listener_port(l));
    while ((s = async_listener_accept(l)) != NULL) {
        async_task *t = async_spawn(serve, s);

        if (t != NULL)
            async_detach(t);
        else
            async_stream_close(s);
    }
    perror("hello_server: accept");
    async_listener_close(l);
    async_mutex_free(clients_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    struct async_config cfg = {.workers = argc > 2 ? (unsigned)atoi(argv[2]) : 0};
    char *address = argc > 1 ? argv[1] : "127.0.0.1:8080";

    setvbuf(stderr, NULL, _IOLBF, 0);
    return async_runtime(&cfg, main_fiber, address) == 0 ? 0 : 1;
}
