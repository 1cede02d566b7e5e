/* daemon/metrics_writers.h — what modules add to the metrics endpoint
 * (async_module_add_metrics_writer), and the call that gathers it
 * (async_module_metrics_write). */
#ifndef ASYNCD_METRICS_WRITERS_H
#define ASYNCD_METRICS_WRITERS_H

#include "modules.h"

#include <stdbool.h>

/* The host calls (host.c's table). */
int asyncd_metrics_writer_add(async_module_host *host, const char *name,
                              async_module_metrics_writer fn, void *ctx);
void asyncd_metrics_write(async_module_host *host, struct async_module_text *out);
/* Withdraws every writer m registered: scrapes that begin from now on
 * skip them.  Any thread.  (Called with m's handlers: handlers.c.) */
void asyncd_metrics_writers_withdraw(struct asyncd_module *m);
/* Whether a scrape is still inside one of m's withdrawn writers. */
bool asyncd_metrics_writers_busy(struct asyncd_module *m);
/* Frees every record, at exit, once no module runs. */
void asyncd_metrics_writers_free_all(void);

#endif
