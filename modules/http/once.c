/* modules/http/once.c — at most once a second: for the warnings that
 * many workers would repeat in a flood (connections refused for
 * max_connections in http.c, no descriptor for a file in files.c). */
#include "http.h"

bool http_once_a_second(_Atomic int64_t *at)
{
    int64_t now = async_now_ms(), last = atomic_load_explicit(at, memory_order_relaxed);

    /* one winner among the workers that see the second has passed */
    return now - last >= 1000 &&
           atomic_compare_exchange_strong_explicit(at, &last, now, memory_order_relaxed,
                                                   memory_order_relaxed);
}
