/* daemon/host.h — asyncd's table of host calls (async_io/module.h): every
 * handle a module gets (host, report, log file, handler slot) starts with
 * a pointer to it.  The functions behind it live with what they touch. */
#ifndef ASYNCD_HOST_H
#define ASYNCD_HOST_H

#include <async_io/module.h>

#include <stdarg.h>

extern const struct async_module_host_api asyncd_host_api;

/* modules.c */
void asyncd_host_vlog(async_module_host *host, int level, const char *fmt, va_list ap);
void asyncd_host_ready(async_module_host *host);
const char *asyncd_host_name(const async_module_host *host);
int64_t asyncd_host_stop_deadline(const async_module_host *host);
/* check.c */
void asyncd_host_vproblem(async_module_report *report, const char *path, const char *fmt,
                          va_list ap);
void asyncd_host_provide_handler(async_module_report *report, const char *name);
void asyncd_host_need_handler(async_module_report *report, const char *path, const char *name);
void asyncd_host_vwarning(async_module_report *report, const char *path, const char *fmt,
                          va_list ap);
/* handlers.c */
int asyncd_handler_add(async_module_host *host, const char *name, async_http_handler fn,
                       void *ctx);
async_module_http_slot *asyncd_handler_slot(async_module_host *host, const char *name);
int asyncd_handler_call(async_module_http_slot *slot, async_http_request *req);
int asyncd_handler_slot_provided(const async_module_http_slot *slot);
/* tally.c */
void asyncd_host_daemon_stats(const async_module_host *host, struct async_module_daemon_stats *st,
                              size_t size);

#endif
