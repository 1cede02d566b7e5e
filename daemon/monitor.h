/* daemon/monitor — what asyncd watches in its own process once a second
 * and logs when it goes wrong: today, accepts that found no descriptor. */
#ifndef ASYNCD_MONITOR_H
#define ASYNCD_MONITOR_H

#include <async_io.h>

/* Starts the monitor fiber (fiber); NULL if it cannot be started. */
async_task *asyncd_monitor_start(void);
/* Stops and joins it; t may be NULL. */
void asyncd_monitor_stop(async_task *t);

#endif
