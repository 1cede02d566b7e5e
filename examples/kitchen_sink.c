/* kitchen_sink — the original async_io's tour: a mutex shared by fibers,
 * a channel (send, receive, try_receive), and a bounded ring. */
#include <async_io.h>

#include <errno.h>
#include <stdio.h>

static async_mutex *lock;
static long total;

static void *adder(void *arg)
{
    long i;

    for (i = 0; i < 1000; i++) {
        async_mutex_lock(lock);
        total += (long)arg;
        async_yield(); /* held across a switch: still exclusive */
        async_mutex_unlock(lock);
    }
    return NULL;
}

static void *producer(void *arg)
{
    async_ring *r = arg;
    long i;

    for (i = 1; i <= 100; i++)
        async_ring_send(r, &i); /* parks while the ring (capacity 8) is full */
    async_ring_close(r);
    return NULL;
}

static void *tour(void *arg)
{
    async_channel *ch = async_channel_new(sizeof(int));
    async_ring *ring = async_ring_new(8, sizeof(long));
    async_task *t[4], *p;
    long v, sum = 0;
    int x, got = 0, i;

    /* mutex */
    lock = async_mutex_new();
    for (i = 0; i < 4; i++)
        t[i] = async_spawn(adder, (void *)(long)(i + 1));
    for (i = 0; i < 4; i++)
        async_join(t[i], NULL);
    printf("mutex: total %ld\n", total);

    /* channel */
    for (x = 1; x <= 3; x++)
        async_channel_send(ch, &x);
    async_channel_receive(ch, &x);
    printf("channel: received %d\n", x);
    while (async_channel_try_receive(ch, &x) == 0)
        got++;
    printf("channel: try_receive took %d more, then %s\n", got,
           errno == EAGAIN ? "EAGAIN (empty)" : "an error");

    /* ring */
    p = async_spawn(producer, ring);
    while (async_ring_recv(ring, &v) == 0)
        sum += v;
    async_join(p, NULL);
    printf("ring: sum %ld, then %s\n", sum, errno == EPIPE ? "EPIPE (closed)" : "an error");

    async_mutex_free(lock);
    async_channel_free(ch);
    async_ring_free(ring);
    return NULL;
}

int main(void)
{
    return async_runtime(NULL, tour, NULL) == 0 ? 0 : 1;
}
