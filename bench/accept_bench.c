/* bench/accept_bench — one shared listening socket against one
 * SO_REUSEPORT socket per acceptor, for issue 3's choice of listener.
 *
 *   accept_bench shared|reuseport [SECONDS=5] [CLIENT_THREADS=2]
 *
 * The server runs on async_runtime with 2 workers and 2 acceptor fibers;
 * each accepted connection gets a fiber that answers one byte and closes.
 * Client threads (plain blocking sockets, no async_io) connect, send a
 * byte, wait for the answer and close, as fast as they can.  Prints
 * connections per second and how the accepts split between the acceptors
 * and their threads.
 *
 * Limit: the runtime places fibers by stealing and offers no way to start
 * one on a given worker, so the two acceptors often share a worker (the
 * output says so); "one SO_REUSEPORT socket per worker" cannot be set up
 * for sure until such a call exists. */
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

#define ACCEPTORS 2

static int port;
static int reuseport;
static double seconds = 5;
static int nclients = 2;
static atomic_bool stop;
static atomic_long done;
static pid_t tids[ACCEPTORS];
static atomic_long accepted[ACCEPTORS];
static int lfd[ACCEPTORS];

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int listen_on(int p, int reuse)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    socklen_t sl = sizeof(sa);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, SOMAXCONN) != 0) {
        perror("bind/listen");
        exit(1);
    }
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    port = ntohs(sa.sin_port);
    return fd;
}

static void *answer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b;

    while (read(fd, &b, 1) < 0 && errno == EAGAIN)
        if (async_fd_wait(fd, ASYNC_READABLE) != 0)
            break;
    (void)!write(fd, &b, 1);
    close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int i = (int)(intptr_t)arg, fd;

    tids[i] = gettid();
    while (!atomic_load(&stop)) {
        fd = accept4(lfd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN)
                async_deadline(async_now_ms() + 100), async_fd_wait(lfd[i], ASYNC_READABLE);
            continue;
        }
        atomic_fetch_add(&accepted[i], 1);
        async_detach(async_spawn(answer, (void *)(intptr_t)fd));
    }
    return NULL;
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
    async_task *a[ACCEPTORS];
    pthread_t c[16];
    double t0, t1;
    long total = 0;
    int i;

    (void)arg;
    for (i = 0; i < ACCEPTORS; i++)
        a[i] = async_spawn(acceptor, (void *)(intptr_t)i);
    /* Keep this worker busy for a moment: the idle one steals an acceptor,
     * so that each worker runs one (a started fiber never moves). */
    for (t0 = now_s(); now_s() - t0 < 0.05;)
        ;
    async_sleep_ms(100);
    for (i = 0; i < nclients; i++)
        pthread_create(&c[i], NULL, client, NULL);
    async_sleep_ms(500); /* warm-up */
    atomic_store(&done, 0);
    for (i = 0; i < ACCEPTORS; i++)
        atomic_store(&accepted[i], 0);
    t0 = now_s();
    async_sleep_ms((uint64_t)(seconds * 1000));
    t1 = now_s();
    total = atomic_load(&done);
    atomic_store(&stop, true);
    for (i = 0; i < nclients; i++) /* never block a worker: its fibers answer them */
        async_blocking(join_thread, &c[i], NULL);
    for (i = 0; i < ACCEPTORS; i++)
        async_join(a[i], NULL);
    printf("%s: %.0f connections/s", reuseport ? "reuseport" : "shared", total / (t1 - t0));
    for (i = 0; i < ACCEPTORS; i++)
        printf("  acceptor %d (thread %d): %ld", i, (int)tids[i], atomic_load(&accepted[i]));
    printf("%s\n", tids[0] == tids[1] ? "  (both acceptors on one worker)" : "");
    return NULL;
}

int main(int argc, char **argv)
{
    struct async_config cfg = {.workers = 2};
    int i;

    if (argc < 2 || (strcmp(argv[1], "shared") != 0 && strcmp(argv[1], "reuseport") != 0)) {
        fprintf(stderr, "usage: accept_bench shared|reuseport [SECONDS] [CLIENT_THREADS]\n");
        return 2;
    }
    reuseport = strcmp(argv[1], "reuseport") == 0;
    if (argc > 2)
        seconds = atof(argv[2]);
    if (argc > 3)
        nclients = atoi(argv[3]) > 16 ? 16 : atoi(argv[3]);
    lfd[0] = listen_on(0, reuseport);
    for (i = 1; i < ACCEPTORS; i++)
        lfd[i] = reuseport ? listen_on(port, 1) : lfd[0];
    return async_runtime(&cfg, bench_main, NULL) == 0 ? 0 : 1;
}
