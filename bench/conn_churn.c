/* conn_churn — accept and close N connections in sequence (default
 * 100,000) on one listener, and report the process's RSS and descriptor
 * count before and after: both should come back to where they were.
 * A warm-up of 1,000 connections first fills the stack and task pools.
 *
 *   conn_churn [N] */
#include <async_io.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kib;
}

static int fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    while (d != NULL && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static void *closer(void *arg)
{
    async_stream *s = arg;
    char b;

    async_stream_read(s, &b, 1); /* until the client closes */
    async_stream_close(s);
    return NULL;
}

static void *acceptor(void *arg)
{
    async_listener *l = arg;
    async_stream *s;

    while ((s = async_listener_accept(l)) != NULL)
        async_detach(async_spawn(closer, s));
    return NULL;
}

static int churn(const char *address, long n)
{
    long i;

    for (i = 0; i < n; i++) {
        async_stream *c = async_tcp_connect(address);

        if (c == NULL)
            return -1;
        async_stream_close(c);
    }
    return 0;
}

static void *bench(void *arg)
{
    long n = *(long *)arg, rss0, rss1;
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_task *a = async_spawn(acceptor, l);
    char address[64];
    int fd0, fd1, i;

    snprintf(address, sizeof(address), "127.0.0.1:%d", async_listener_port(l));
    if (churn(address, 1000) != 0) {
        perror("conn_churn: warm-up");
        exit(1);
    }
    for (i = 0; i < 100; i++)
        async_yield(); /* let the last closers finish */
    rss0 = rss_kib();
    fd0 = fds();
    if (churn(address, n) != 0) {
        perror("conn_churn");
        exit(1);
    }
    /* The server side closes when it reads the client's FIN: give the
     * last few closers a bounded moment. */
    for (i = 0; i < 1000 && fds() != fd0; i++)
        async_sleep_ms(1);
    rss1 = rss_kib();
    fd1 = fds();
    printf("conn_churn: %ld connections accepted and closed\n", n);
    printf("conn_churn_rss: %ld KiB before, %ld KiB after (%+ld KiB)\n", rss0, rss1, rss1 - rss0);
    printf("conn_churn_fds: %d before, %d after\n", fd0, fd1);
    async_cancel(a);
    async_join(a, NULL);
    async_listener_close(l);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    struct async_config cfg = {.workers = 2};

    return async_runtime(&cfg, bench, &n) == 0 ? 0 : 1;
}
