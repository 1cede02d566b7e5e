/* runtime/sched/group — a nursery of detached fibers.
 *
 * Members form a doubly-linked list through their tasks, guarded by the
 * group's spinlock.  A member joins the list before it can run (at spawn)
 * and leaves it in the scheduler after its last switch, so a cancel that
 * walks the list under the lock never touches a freed task.  The last member
 * to leave wakes every joiner. */
#include "waitq.h"

#include <async_io/group.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct async_group {
    async__spinlock lock;
    bool cancelled;             /* members spawned now start cancelled */
    size_t count;
    struct async_task *members;
    struct async__waitq joiners;
};

async_group *async_group_new(void)
{
    async_group *g = calloc(1, sizeof(*g));

    if (g == NULL)
        errno = ENOMEM;
    return g;
}

void async__group_enter(struct async_group *g, struct async_task *t)
{
    async__spin_lock(&g->lock);
    t->group = g;
    t->gprev = NULL;
    t->gnext = g->members;
    if (g->members != NULL)
        g->members->gprev = t;
    g->members = t;
    g->count++;
    if (g->cancelled)
        atomic_store_explicit(&t->cancelled, true, memory_order_relaxed);
    async__spin_unlock(&g->lock);
}

void async__group_leave(struct async_task *t)
{
    struct async_group *g = t->group;
    struct async_task *woken = NULL;

    async__spin_lock(&g->lock);
    if (t->gprev != NULL)
        t->gprev->gnext = t->gnext;
    else
        g->members = t->gnext;
    if (t->gnext != NULL)
        t->gnext->gprev = t->gprev;
    if (--g->count == 0)
        woken = async__waitq_claim_all(&g->joiners, ASYNC__WAKE_NORMAL);
    async__spin_unlock(&g->lock);
    t->group = NULL;
    async__waitq_wake_list(woken); /* g may be freed from here on */
}

int async_group_spawn(async_group *g, async_fn fn, void *arg)
{
    async_task *t;

    if (g == NULL) {
        errno = EINVAL;
        return -1;
    }
    t = async__spawn_in(fn, arg, g);
    if (t == NULL)
        return -1;
    async_detach(t);
    return 0;
}

void async_group_cancel(async_group *g)
{
    struct async_task *t;

    if (g == NULL)
        return;
    async__spin_lock(&g->lock);
    g->cancelled = true;
    for (t = g->members; t != NULL; t = t->gnext)
        async_cancel(t);
    async__spin_unlock(&g->lock);
}

int async_group_join(async_group *g)
{
    struct async_task *self = async__parking_self(g);
    int err;

    if (self == NULL)
        return -1;
    async__spin_lock(&g->lock);
    if (g->count != 0) {
        if ((err = async__waitq_wait(&g->joiners, &g->lock, self, NULL, false)) != 0) {
            errno = err;
            return -1;
        }
        async__spin_lock(&g->lock);
    }
    if (g->count == 0)
        g->cancelled = false;
    async__spin_unlock(&g->lock);
    return 0;
}

void async_group_free(async_group *g)
{
    if (g == NULL)
        return;
    if (g->count != 0) {
        fprintf(stderr, "async_io: async_group_free: %zu members still running\n", g->count);
        abort();
    }
    free(g);
}
