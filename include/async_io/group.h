/* async_io/group.h — structured concurrency: a nursery of fibers.
 *
 * A group owns detached fibers: async_group_spawn starts one in it, and every
 * fiber a member spawns with async_spawn becomes a member too.  Cancelling the
 * group cancels every member, present and future (until the next successful
 * join).  Joining parks until every member has ended. */
#ifndef ASYNC_IO_GROUP_H
#define ASYNC_IO_GROUP_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_group async_group;

/* A new empty group, or NULL + ENOMEM.  Free with async_group_free. */
ASYNC_API async_group *async_group_new(void);

/* Spawns fn(arg) as a detached member of g: 0, or -1 EINVAL / EPERM / ENOMEM
 * as async_spawn. */
ASYNC_API int async_group_spawn(async_group *g, async_fn fn, void *arg);

/* Cancels every member (see async_cancel); members spawned later start
 * cancelled, until a join returns 0.  NULL is ignored. */
ASYNC_API void async_group_cancel(async_group *g);

/* Parks until all members have ended: 0, after which the group is empty, no
 * longer cancelled, and may be reused.  -1 with ECANCELED / ETIMEDOUT /
 * EPERM / EINVAL (NULL).  Several fibers may join one group. */
ASYNC_API int async_group_join(async_group *g);

/* Frees an empty group (after a successful join, or when nothing was ever
 * spawned in it).  Freeing a group with live members is a bug: it aborts. */
ASYNC_API void async_group_free(async_group *g);

#ifdef __cplusplus
}
#endif
#endif
