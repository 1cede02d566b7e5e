/* echo_client — sends each line of standard input to an echo server and
 * prints what comes back; with a count, a quick self-check instead.
 *
 *   echo_client [ADDRESS]                 default 127.0.0.1:7000
 *   echo_client ADDRESS N                 N round trips, verified; exit 0 if all matched */
#include <async_io.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct args {
    const char *address;
    long rounds;
    int status;
};

static int round_trip(async_stream *s, const char *msg, size_t len, char *back)
{
    size_t got = 0;

    if (async_stream_write_all(s, msg, len) != 0)
        return -1;
    while (got < len) {
        ssize_t n = async_stream_read(s, back + got, len - got);

        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void *client(void *arg)
{
    struct args *a = arg;
    async_stream *s = async_tcp_connect(a->address);
    char line[4096], back[4096];
    long i;

    if (s == NULL) {
        perror("echo_client: connect");
        return NULL;
    }
    if (a->rounds > 0) {
        for (i = 0; i < a->rounds; i++) {
            int len = snprintf(line, sizeof(line), "message %ld\n", i);

            if (round_trip(s, line, (size_t)len, back) != 0 || memcmp(line, back, (size_t)len) != 0)
                break;
        }
        a->status = i == a->rounds ? 0 : 1;
        printf("%ld of %ld round trips matched\n", i, a->rounds);
    } else {
        /* Reading stdin blocks this worker; fine for an interactive tool
         * with nothing else to run. */
        while (fgets(line, sizeof(line), stdin) != NULL) {
            size_t len = strlen(line);

            if (round_trip(s, line, len, back) != 0)
                break;
            fwrite(back, 1, len, stdout);
            fflush(stdout);
        }
        a->status = 0;
    }
    async_stream_close(s);
    return NULL;
}

int main(int argc, char **argv)
{
    struct args a = {argc > 1 ? argv[1] : "127.0.0.1:7000", argc > 2 ? atol(argv[2]) : 0, 1};
    struct async_config cfg = {.workers = 1};

    if (async_runtime(&cfg, client, &a) != 0)
        return 1;
    return a.status;
}
