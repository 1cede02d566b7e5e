/* echo — the smallest asyncd module: a TCP echo server.
 *
 *   "echo": { "listen": ["127.0.0.1:7000"] }
 *
 * One fiber per listener accepts; one fiber per connection echoes.  They
 * all live in the module's group, so a stop cancels them all.  Its config
 * check is the single-message `check` hook (validate is the richer one,
 * see the http module): it stays an example of that simpler form. */
#include <async_io.h>
#include <async_io/module.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_LISTEN 16
#ifndef ECHO_NAME
#define ECHO_NAME "echo" /* the tests build a second copy under another name */
#endif

static int echo_check(const json_t *config, char *err, size_t errlen)
{
    const char *key;
    json_t *v, *listen = json_object_get(config, "listen");
    size_t i;

    json_object_foreach((json_t *)config, key, v) {
        if (strcmp(key, "listen") != 0) {
            snprintf(err, errlen, "%s: unknown key", key);
            return -1;
        }
    }
    if (!json_is_array(listen) || json_array_size(listen) == 0 ||
        json_array_size(listen) > MAX_LISTEN) {
        snprintf(err, errlen, "listen: must be an array of 1 to %d \"host:port\" strings",
                 MAX_LISTEN);
        return -1;
    }
    json_array_foreach(listen, i, v) {
        const char *why;

        if (!json_is_string(v)) {
            snprintf(err, errlen, "listen[%zu]: must be a \"host:port\" string", i);
            return -1;
        }
        if (async_address_parse(json_string_value(v), NULL, 0, NULL, &why) != 0) {
            snprintf(err, errlen, "listen[%zu]: \"%s\": %s", i, json_string_value(v), why);
            return -1;
        }
    }
    return 0;
}

static void *echo_conn(void *arg)
{
    async_stream *s = arg;
    char buf[16384];
    ssize_t n;

    while ((n = async_stream_read(s, buf, sizeof(buf))) > 0)
        if (async_stream_write_all(s, buf, (size_t)n) != 0)
            break;
    async_stream_close(s);
    return NULL;
}

struct acceptor {
    async_module_host *host;
    async_listener *listener;
};

static void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    async_stream *s;

    while ((s = async_listener_accept(a->listener)) != NULL) {
        async_task *t = async_spawn(echo_conn, s);

        if (t != NULL)
            async_detach(t);
        else
            async_stream_close(s);
    }
    if (errno != ECANCELED)
        async_module_log(a->host, ASYNC_LOG_ERROR, "accept: %s", strerror(errno));
    return NULL;
}

static int echo_run(async_module_host *host, const json_t *config)
{
    json_t *listen = json_object_get(config, "listen"), *v;
    struct acceptor a[MAX_LISTEN];
    async_task *t[MAX_LISTEN];
    size_t n = 0, i;
    int rc = 0;

    json_array_foreach(listen, i, v) {
        const char *address = json_string_value(v);

        a[n].host = host;
        a[n].listener = async_module_listen(host, address);
        if (a[n].listener == NULL) {
            async_module_log(host, ASYNC_LOG_ERROR, "cannot listen on %s: %s", address,
                             strerror(errno));
            rc = 1;
            break;
        }
        async_module_log(host, ASYNC_LOG_NOTICE, "listening on %s (port %d)", address,
                         async_listener_port(a[n].listener));
        n++;
    }
    for (i = 0; rc == 0 && i < n; i++)
        t[i] = async_spawn(accept_loop, &a[i]);
    if (rc == 0)
        async_module_ready(host); /* every listener is bound: READY=1 may go */
    /* Until the module is stopped.  A cancelled fiber cannot join (the join
     * fails at once with ECANCELED), so it detaches instead: the acceptors
     * were cancelled too, end soon, and the daemon waits for them. */
    for (i = 0; rc == 0 && i < n; i++)
        if (async_join(t[i], NULL) != 0)
            async_detach(t[i]);
    for (i = 0; i < n; i++)
        async_listener_close(a[i].listener);
    return rc;
}

const struct async_module async_module = {
    .abi_version = ASYNC_MODULE_ABI_VERSION,
    .size = ASYNC_MODULE_SIZE,
    .name = ECHO_NAME,
    .version = "1.0",
    .check = echo_check,
    .run = echo_run,
    .flags = ASYNC_MODULE_NOTIFY_READY,
};
