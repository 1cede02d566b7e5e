/* modules/http/local.c — what each worker keeps for itself: its cache of
 * open files (file_cache.c).  (Input buffers and response counters are
 * the engine's, per worker too.)
 *
 * Threads: a struct http_local is used only by its worker thread (a fiber
 * never changes thread), so nothing in it is locked.  It is found through
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

void http_locals_free(struct http_server *srv)
{
    struct http_local *l, *next;

    pthread_mutex_lock(&srv->locals_lock);
    for (l = srv->locals; l != NULL; l = next) {
        next = l->next;
        http_file_cache_clear(&l->files);
        free(l);
    }
    srv->locals = NULL;
    pthread_mutex_unlock(&srv->locals_lock);
}
