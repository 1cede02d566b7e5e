/* Load for integration tests: clients that send GET /hello over and over
 * on 127.0.0.1 from a thread of their own, counting what was answered
 * and what failed (with the first failure's reason), as the tests of
 * reloads, upgrades and worker processes run them.  Include after
 * daemon.h (now_ms, left_ms) with IO_MS defined (the bound of one
 * exchange). */
#ifndef ASYNC_TEST_LOAD_H
#define ASYNC_TEST_LOAD_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int connect_to(int port)
{
    return connect_ip("127.0.0.1", port);
}

/* Sends one GET /hello on fd and reads its response (bounded): 0 for a
 * whole 200 whose body is want (*close set when it said Connection:
 * close), -1 with why. */
static inline int get_hello(int fd, const char *want, bool *close_after, char *why, size_t whylen)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096];
    size_t len = 0, body_at = 0, clen = 0;
    int64_t until = now_ms() + IO_MS;
    const char *end, *cl;

    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        snprintf(why, whylen, "send: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;

        buf[len] = '\0';
        if (body_at == 0 && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            body_at = (size_t)(end - buf) + 4;
            cl = strcasestr(buf, "\r\nContent-Length:");
            clen = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        }
        if (body_at != 0 && len >= body_at + clen)
            break;
        if (len + 1 >= sizeof(buf) || poll(&p, 1, left_ms(until)) <= 0) {
            snprintf(why, whylen, "no whole response in %d ms: %.80s", IO_MS, buf);
            return -1;
        }
        n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0) {
            snprintf(why, whylen, "%s after %zu bytes: %.80s", n < 0 ? strerror(errno) : "EOF",
                     len, buf);
            return -1;
        }
        len += (size_t)n;
    }
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 || clen != strlen(want) ||
        strncmp(buf + body_at, want, clen) != 0) {
        snprintf(why, whylen, "not a 200 '%s': %.120s", want, buf);
        return -1;
    }
    *close_after = strcasestr(buf, "\r\nConnection: close\r\n") != NULL;
    return 0;
}

struct load {
    int port;
    bool keepalive;             /* one connection while it lasts, else one per request */
    atomic_bool stop;
    long ok, failed, closes;
    char first[256];
};

static inline void *load_loop(void *arg)
{
    struct load *l = arg;
    char why[256];
    bool close_after = false;
    int fd = -1;

    while (!atomic_load(&l->stop)) {
        if (fd < 0 && (fd = connect_to(l->port)) < 0) {
            snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        } else if (get_hello(fd, "hi", &close_after, why, sizeof(why)) == 0) {
            l->ok++;
            if (close_after || !l->keepalive) {
                l->closes += close_after;
                close(fd);
                fd = -1;
            }
            continue;
        } else {
            close(fd);
            fd = -1;
        }
        if (l->failed++ == 0)
            snprintf(l->first, sizeof(l->first), "%s", why);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

#endif
