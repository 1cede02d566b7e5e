/* modules/http/local.c — what each worker keeps for itself: its cache of
 * open files, a few spare input buffers, so that a connection going idle
 * and waking again (conn.c hands idle connections over) costs no trip
 * through malloc for its 12 KiB buffer, and its response counters, so
 * that no two workers write one cache line per request.
 *
 * Threads: a struct http_local is used only by its worker thread (a fiber
 * never changes thread), so nothing in it is locked; the one exception,
 * the counters, are single-writer relaxed atomics that the status
 * endpoint sums under locals_lock (which also keeps the list alive).  It is found through
 * a thread-local pointer tagged with the server's generation: a restarted
 * module never touches its predecessor's (freed) state.  The server lists
 * every worker's state under locals_lock, to free them all once the last
 * connection has gone. */
#include "http.h"

#include <stdlib.h>

static __thread struct http_local *mine;
static __thread unsigned mine_gen; /* whose state `mine` is; 0: nobody's */

struct http_local *http_local(struct http_server *srv)
{
    struct http_local *l;

    if (mine_gen == srv->gen)
        return mine;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->gen = srv->gen;
    pthread_mutex_lock(&srv->locals_lock);
    l->next = srv->locals;
    srv->locals = l;
    pthread_mutex_unlock(&srv->locals_lock);
    mine = l;
    mine_gen = srv->gen;
    return l;
}

char *http_buf_get(struct http_server *srv, size_t size)
{
    struct http_local *l = http_local(srv);

    if (l != NULL && l->nin > 0 && size == srv->in_size)
        return l->in[--l->nin];
    return malloc(size);
}

void http_buf_put(struct http_server *srv, char *buf)
{
    struct http_local *l = http_local(srv);

    if (buf != NULL && l != NULL && l->nin < HTTP_LOCAL_BUFS)
        l->in[l->nin++] = buf;
    else
        free(buf);
}

void http_count_status(struct http_server *srv, int status)
{
    unsigned cls = (unsigned)status / 100;
    struct http_local *l;

    if (cls < 1 || cls > 5)
        return;
    if ((l = http_local(srv)) != NULL)
        atomic_store_explicit(&l->by_class[cls],
                              atomic_load_explicit(&l->by_class[cls], memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&srv->by_class[cls], 1, memory_order_relaxed);
}

uint64_t http_count_sum(struct http_server *srv, unsigned cls)
{
    uint64_t n = atomic_load_explicit(&srv->by_class[cls], memory_order_relaxed);
    struct http_local *l;

    pthread_mutex_lock(&srv->locals_lock);
    for (l = srv->locals; l != NULL; l = l->next)
        n += atomic_load_explicit(&l->by_class[cls], memory_order_relaxed);
    pthread_mutex_unlock(&srv->locals_lock);
    return n;
}

void http_locals_free(struct http_server *srv)
{
    struct http_local *l, *next;

    pthread_mutex_lock(&srv->locals_lock);
    for (l = srv->locals; l != NULL; l = next) {
        next = l->next;
        http_file_cache_clear(&l->files);
        while (l->nin > 0)
            free(l->in[--l->nin]);
        free(l);
    }
    srv->locals = NULL;
    pthread_mutex_unlock(&srv->locals_lock);
}
