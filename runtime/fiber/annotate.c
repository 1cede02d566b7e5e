#include "annotate.h"

#include <pthread.h>

void async__annot_thread(struct async__annot *a)
{
#ifdef ASYNC_ASAN
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;

    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    a->bottom = lo;
    a->size = size;
    a->fake = NULL;
#endif
#ifdef ASYNC_TSAN
    a->tsan = __tsan_get_current_fiber();
#endif
    (void)a;
}
