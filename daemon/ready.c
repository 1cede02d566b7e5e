#include "ready.h"

#include "log.h"
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int asyncd_ready_look(struct asyncd_module *list, enum asyncd_wait wait)
{
    struct asyncd_module *m;
    char reason[512];
    int starting = 0;

    for (m = list; m != NULL; m = m->next) {
        int state = asyncd_module_state(m);

        starting += state == ASYNCD_MODULE_STARTING;
        if (state != ASYNCD_MODULE_FAILED || m->reported)
            continue;
        m->reported = true;
        asyncd_module_reason(m, reason, sizeof(reason));
        if (wait == ASYNCD_WAIT_START && !m->optional) {
            asyncd_log(ASYNC_LOG_ERROR, "module %s failed to start: %s", m->desc->name, reason);
            return -1;
        }
        asyncd_log(ASYNC_LOG_ERROR, "module %s failed to start: %s; %s; a reload tries it again",
                   m->desc->name, reason,
                   wait == ASYNCD_WAIT_START ? "it is optional: skipped" : "the others serve");
    }
    return starting;
}

/* Appends ", name" (or "; label: name" for the first) for each module in
 * state; returns how many. */
static unsigned names(char *buf, size_t len, struct asyncd_module *list, int state,
                      const char *label)
{
    unsigned n = 0;
    size_t at;

    for (; list != NULL; list = list->next) {
        if (asyncd_module_state(list) != state)
            continue;
        at = strlen(buf);
        if (at < len)
            snprintf(buf + at, len - at, n == 0 ? "; %s: %s" : ", %s%s", n == 0 ? label : "",
                     list->desc->name);
        n++;
    }
    return n;
}

void asyncd_ready_tell(struct asyncd_module *list, enum asyncd_wait wait)
{
    char status[900];
    struct asyncd_module *m;
    unsigned running = 0;

    for (m = list; m != NULL; m = m->next)
        running += asyncd_module_state(m) == ASYNCD_MODULE_READY;
    snprintf(status, sizeof(status), "%u module(s) running", running);
    names(status, sizeof(status), list, ASYNCD_MODULE_FAILED, "failed to start");
    names(status, sizeof(status), list, ASYNCD_MODULE_STARTING, "still starting");
    if (asyncd_modules_refused()[0] != '\0') {
        size_t at = strlen(status);

        snprintf(status + at, sizeof(status) - at, "; refused: %s", asyncd_modules_refused());
    }
    if (wait == ASYNCD_WAIT_RELOAD)
        asyncd_log(ASYNC_LOG_NOTICE, "reloaded: %s", status);
    else
        asyncd_log(ASYNC_LOG_NOTICE, "ready: %s", status);
    if (wait == ASYNCD_WAIT_START) /* MAINPID: after an upgrade, the main process is this one */
        asyncd_notify("READY=1\nMAINPID=%d\nSTATUS=%s", (int)getpid(), status);
    else
        asyncd_notify("READY=1\nSTATUS=%s", status);
}

void asyncd_ready_late(struct asyncd_module *list, enum asyncd_wait wait, int64_t waited_ms)
{
    char late[900] = "";

    names(late, sizeof(late), list, ASYNCD_MODULE_STARTING, "not ready");
    if (late[0] == '\0')
        return;
    if (wait == ASYNCD_WAIT_RELOAD)
        asyncd_log(ASYNC_LOG_WARNING, "%lld ms after the reload%s; reporting it done anyway",
                   (long long)waited_ms, late);
    else
        asyncd_log(ASYNC_LOG_WARNING, "%lld ms after start-up%s; still waiting",
                   (long long)waited_ms, late);
}
