/* daemon/handlers.h — HTTP handlers modules register by name
 * (async_module_add_http_handler) and the slots the http module calls
 * them through (async_module_http_call). */
#ifndef ASYNCD_HANDLERS_H
#define ASYNCD_HANDLERS_H

#include "modules.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The longest name of a handler or a metrics writer. */
#define ASYNCD_NAME_MAX 64

/* Whether s may name a handler or a metrics writer: 1 to ASYNCD_NAME_MAX
 * of [A-Za-z0-9_.-]. */
static inline bool asyncd_handler_name_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > ASYNCD_NAME_MAX)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

/* Withdraws every handler m provides: calls that begin from now on find
 * no provider.  Any thread.  (Its metrics writers go too; the busy and
 * wait calls below cover them as well.) */
void asyncd_handlers_withdraw(struct asyncd_module *m);
/* Whether a call into one of m's withdrawn handlers is still running. */
bool asyncd_handlers_busy(struct asyncd_module *m);
/* Parks (shielded) until no call into m's withdrawn handlers runs, or
 * until until_ms (-1: no limit): 0, or -1 when some still run. */
int asyncd_handlers_wait(struct asyncd_module *m, int64_t until_ms);
/* The names m provides, comma-separated, into buf (for the status). */
void asyncd_handlers_names(const struct asyncd_module *m, char *buf, size_t len);
/* Whether a module provides name now (for --check-config). */
bool asyncd_handler_provided(const char *name);
/* Frees every slot and record, at exit, once no module runs. */
void asyncd_handlers_free_all(void);

#endif
