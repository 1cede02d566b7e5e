/* echo_server — a fiber per connection, each echoing what it reads.
 *
 *   echo_server [ADDRESS] [WORKERS]     default 127.0.0.1:7000, all CPUs */
#include <async_io.h>

#include <stdio.h>
#include <stdlib.h>

static void *echo(void *arg)
{
    async_stream *s = arg;
    char buf[16384];
    ssize_t n;

    while ((n = async_stream_read(s, buf, sizeof(buf))) > 0)
        if (async_stream_write_all(s, buf, (size_t)n) != 0)
            break;
    async_stream_close(s);
    return NULL;
}

static void *serve(void *arg)
{
    async_listener *l = async_listener_bind(arg);
    unsigned next = 0, workers = (unsigned)async_workers();
    async_stream *s;

    if (l == NULL) {
        perror("echo_server: bind");
        return NULL;
    }
    fprintf(stderr, "echo_server: listening on port %d\n", async_listener_port(l));
    while ((s = async_listener_accept(l)) != NULL) {
        /* the workers take connections in turn */
        async_task *t = async_spawn_on(next++ % workers, echo, s);

        if (t != NULL)
            async_detach(t);
        else
            async_stream_close(s);
    }
    perror("echo_server: accept");
    async_listener_close(l);
    return NULL;
}

int main(int argc, char **argv)
{
    struct async_config cfg = {.workers = argc > 2 ? (unsigned)atoi(argv[2]) : 0};
    char *address = argc > 1 ? argv[1] : "127.0.0.1:7000";

    setvbuf(stderr, NULL, _IOLBF, 0);
    return async_runtime(&cfg, serve, address) == 0 ? 0 : 1;
}
