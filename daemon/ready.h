/* daemon/ready — when asyncd tells systemd READY=1, and what it says.
 *
 * READY=1 means serving.  After start-up, and after each reload, the
 * daemon waits until every module it started is ready (its listeners are
 * bound: async_module_ready, or its run began if it did not ask to say so)
 * or has failed to start.  At start-up a failed module stops asyncd
 * unless its config says "optional": true; after a reload it is only
 * logged.  These functions are the policy; daemon/main.c waits. */
#ifndef ASYNCD_READY_H
#define ASYNCD_READY_H

#include "modules.h"

#include <stdint.h>

enum asyncd_wait {
    ASYNCD_WAIT_NONE,
    ASYNCD_WAIT_START,          /* for READY=1 after start-up */
    ASYNCD_WAIT_RELOAD,         /* for READY=1 after a reload */
};

/* Looks at every module after a change: logs, once each, the starts that
 * failed, naming the module and its reason.  Returns the number of
 * modules still starting, or -1 when wait is ASYNCD_WAIT_START and a
 * module that is not optional failed: asyncd must exit 1. */
int asyncd_ready_look(struct asyncd_module *list, enum asyncd_wait wait);

/* Sends READY=1 with a STATUS= counting the modules running and naming
 * those that failed to start or are still starting; logs the same after
 * a reload ("reloaded: ...").  The wait is over. */
void asyncd_ready_tell(struct asyncd_module *list, enum asyncd_wait wait);

/* Names the modules still starting waited_ms into the wait. */
void asyncd_ready_late(struct asyncd_module *list, enum asyncd_wait wait, int64_t waited_ms);

#endif
