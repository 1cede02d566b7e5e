/* runtime/net/sock — the close-while-parked protocol shared by listeners
 * and streams (see struct async__sock in net.h). */
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A started watcher counts as a call in progress. */
static void hold(void *ctx, int delta)
{
    struct async__sock *s = ctx;

    if (delta > 0)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    else
        async__sock_leave(s);
}

void async__sock_init(struct async__sock *s, int fd)
{
    s->fd = fd;
    atomic_init(&s->refs, 1);
    atomic_init(&s->closed, false);
    s->borrowed = false;
    s->dtor = NULL;
    async__fdw_init(&s->watch, fd, hold, s);
}

int async__sock_enter(struct async__sock *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&s->closed, memory_order_seq_cst)) {
        async__sock_leave(s);
        return EBADF;
    }
    return 0;
}

void async__sock_leave(struct async__sock *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        if (s->dtor != NULL)
            s->dtor(s);
        if (!s->borrowed)
            close(s->fd);
        free(s); /* the first member of its listener or stream */
    }
}

void async__sock_close(struct async__sock *s, int how)
{
    atomic_store_explicit(&s->closed, true, memory_order_seq_cst);
    async__fdw_drop(&s->watch); /* our own watcher's hold needs no shutdown */
    if (!s->borrowed && atomic_load_explicit(&s->refs, memory_order_seq_cst) > 1)
        shutdown(s->fd, how); /* wakes parked calls on every worker */
    async__sock_leave(s);
}
