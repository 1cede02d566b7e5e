/* bench/accept_bench — where accepted connections should run: issue 3's
 * choice of listener, measured through the public API.
 *
 *   accept_bench MODE [SECONDS=5] [CLIENT_THREADS=2] [WORKERS=2]
 *
 *   single      one listener, one acceptor; each connection's fiber is
 *               spawned with async_spawn (idle workers steal it before it
 *               starts)
 *   roundrobin  one listener, one acceptor; connections go to the workers
 *               in turn with async_spawn_on
 *   shared      one listener, one acceptor per worker (async_spawn_on);
 *               each serves on its own worker what it accepts
 *   reuseport   one ASYNC_LISTEN_REUSEPORT listener and one acceptor per
 *               worker; each serves on its own worker what it accepts
 *
 * Each accepted connection gets a fiber that answers one byte and closes.
 * Client threads (plain blocking sockets, no async_io) connect, send a byte,
 * wait for the answer and close, as fast as they can.  Prints connections
 * per second and how many connections each worker served:
 *
 *   for m in single roundrobin shared reuseport; do build/bench/accept_bench $m 3; done */
#define _GNU_SOURCE
#include <async_io.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 16

enum mode { SINGLE, ROUNDROBIN, SHARED, REUSEPORT };
static const char *const mode_names[] = {"single", "roundrobin", "shared", "reuseport"};

static enum mode mode;
static int port;
static double seconds = 5;
static int nclients = 2;
static unsigned nworkers = 2;
static atomic_bool stop;
static atomic_long done;
static atomic_long served[MAX_WORKERS];

struct acceptor {
    async_listener *l;
    unsigned worker;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *answer(void *arg)
{
    async_stream *s = arg;
    char b;

    atomic_fetch_add_explicit(&served[async_worker_id()], 1, memory_order_relaxed);
    if (async_stream_read(s, &b, 1) == 1)
        async_stream_write_all(s, &b, 1);
    async_stream_close(s);
    return NULL;
}

static void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    unsigned next = 0;
    async_stream *s;

    while ((s = async_listener_accept(a->l)) != NULL) {
        async_task *t;

        if (mode == SINGLE)
            t = async_spawn(answer, s);
        else if (mode == ROUNDROBIN)
            t = async_spawn_on(next++ % nworkers, answer, s);
        else
            t = async_spawn_on(a->worker, answer, s);
        if (t != NULL)
            async_detach(t);
        else
            async_stream_close(s);
    }
    return NULL; /* cancelled */
}

static void *client(void *arg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char b = 'x';

    (void)arg;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (!atomic_load(&stop)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && write(fd, &b, 1) == 1 &&
            read(fd, &b, 1) == 1)
            atomic_fetch_add(&done, 1);
        close(fd);
    }
    return NULL;
}

static void *join_thread(void *arg)
{
    pthread_join(*(pthread_t *)arg, NULL);
    return NULL;
}

static void *bench_main(void *arg)
{
    struct acceptor acc[MAX_WORKERS];
    async_task *a[MAX_WORKERS];
    unsigned nacc = (mode == SINGLE || mode == ROUNDROBIN) ? 1 : nworkers, i;
    pthread_t c[16];
    double t0, t1;
    long total;
    int k;

    (void)arg;
    for (i = 0; i < nacc; i++) {
        char addr[64];

        snprintf(addr, sizeof(addr), "127.0.0.1:%d", i == 0 ? 0 : port);
        acc[i].worker = i;
        if (mode == SHARED && i > 0)
            acc[i].l = acc[0].l;
        else
            acc[i].l = async_listener_bind_flags(addr, mode == REUSEPORT ? ASYNC_LISTEN_REUSEPORT : 0);
        if (acc[i].l == NULL) {
            perror("accept_bench: bind");
            exit(1);
        }
        if (i == 0)
            port = async_listener_port(acc[0].l);
        a[i] = async_spawn_on(i, accept_loop, &acc[i]);
        if (a[i] == NULL) {
            perror("accept_bench: spawn");
            exit(1);
        }
    }
    for (k = 0; k < nclients; k++)
        pthread_create(&c[k], NULL, client, NULL);
    async_sleep_ms(500); /* warm-up */
    atomic_store(&done, 0);
    for (i = 0; i < nworkers; i++)
        atomic_store(&served[i], 0);
    t0 = now_s();
    async_sleep_ms((uint64_t)(seconds * 1000));
    t1 = now_s();
    total = atomic_load(&done);
    atomic_store(&stop, true);
    for (k = 0; k < nclients; k++) /* never block a worker: its fibers answer them */
        async_blocking(join_thread, &c[k], NULL);
    for (i = 0; i < nacc; i++) {
        async_cancel(a[i]);
        async_join(a[i], NULL);
    }
    for (i = 0; i < nacc; i++)
        if (!(mode == SHARED && i > 0))
            async_listener_close(acc[i].l);
    printf("%-10s %8.0f connections/s  served per worker:", mode_names[mode], total / (t1 - t0));
    for (i = 0; i < nworkers; i++)
        printf(" %ld", atomic_load(&served[i]));
    printf("\n");
    return NULL;
}

int main(int argc, char **argv)
{
    struct async_config cfg;
    int m = -1, i;

    for (i = 0; argc > 1 && i < 4; i++)
        if (strcmp(argv[1], mode_names[i]) == 0)
            m = i;
    if (m < 0) {
        fprintf(stderr, "usage: accept_bench single|roundrobin|shared|reuseport [SECONDS] "
                        "[CLIENT_THREADS] [WORKERS]\n");
        return 2;
    }
    mode = (enum mode)m;
    if (argc > 2)
        seconds = atof(argv[2]);
    if (argc > 3)
        nclients = atoi(argv[3]) > 16 ? 16 : atoi(argv[3]);
    if (argc > 4)
        nworkers = (unsigned)atoi(argv[4]);
    if (nworkers < 1 || nworkers > MAX_WORKERS)
        nworkers = 2;
    cfg = (struct async_config){.workers = nworkers};
    return async_runtime(&cfg, bench_main, NULL) == 0 ? 0 : 1;
}
