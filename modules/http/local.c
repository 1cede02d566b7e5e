/* modules/http/local.c — what each worker keeps for itself, per site: its
 * cache of open files (file_cache.c), which opens with open.c's
 * http_file_opener.  (Input buffers and response
 * counters are the engine's, per worker too.)
 *
 * Threads: a struct http_local is used only by its worker thread (a fiber
 * never changes thread), so nothing in it is locked.  A site has one slot
 * per worker, written only by that worker (made on first use); the slots
 * are freed with the site, once no request holds it (sites.c). */
#include "http.h"

#include <stdlib.h>

int http_locals_init(struct http_server *srv, unsigned workers)
{
    srv->locals = calloc(workers > 0 ? workers : 1, sizeof(*srv->locals));
    srv->nlocals = srv->locals != NULL ? workers : 0;
    return srv->locals != NULL ? 0 : -1;
}

struct http_local *http_local(struct http_server *srv)
{
    int w = async_worker_id();

    if (w < 0 || (unsigned)w >= srv->nlocals)
        return NULL;
    if (srv->locals[w] == NULL && (srv->locals[w] = malloc(sizeof(struct http_local))) != NULL)
        http_file_cache_init(&srv->locals[w]->files, &http_file_opener, srv,
                             srv->cfg.open_file_cache_ms);
    return srv->locals[w];
}

void http_locals_free(struct http_server *srv)
{
    unsigned w;

    for (w = 0; w < srv->nlocals; w++)
        if (srv->locals[w] != NULL) {
            http_file_cache_clear(&srv->locals[w]->files);
            free(srv->locals[w]);
        }
    free(srv->locals);
    srv->locals = NULL;
    srv->nlocals = 0;
}
