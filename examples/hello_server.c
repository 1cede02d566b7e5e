/* hello_server — a fiber per connection answering every HTTP request with
 * a fixed page, written on nothing but async_runtime, async_spawn and
 * async_fd_wait (the TCP layer will make this shorter).
 *
 *   hello_server [ADDRESS:PORT]     default 127.0.0.1:8080 */
#define _GNU_SOURCE
#include <async_io.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char page[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 46\r\n"
    "\r\n"
    "<html><body><h1>Hello, World!</h1></body></html>";

static async_mutex *clients_lock;
static unsigned long clients;

static ssize_t read_some(int fd, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);

        if (n >= 0 || errno != EAGAIN)
            return n;
        if (async_fd_wait(fd, ASYNC_READABLE) != 0)
            return -1;
    }
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            if (async_fd_wait(fd, ASYNC_WRITABLE) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Answers each request (anything up to a blank line) until the peer goes. */
static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t have = 0;

    if (async_mutex_lock(clients_lock) == 0) {
        clients++;
        async_mutex_unlock(clients_lock);
    }
    for (;;) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        ssize_t n;

        if (end != NULL) {
            size_t used = (size_t)(end + 4 - buf);

            if (write_all(fd, page, sizeof(page) - 1) != 0)
                break;
            memmove(buf, buf + used, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof(buf))
            break; /* request head too large */
        n = read_some(fd, buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    return NULL;
}

static int listen_on(const char *spec)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    const char *colon = strrchr(spec, ':');
    int fd, one = 1;

    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) {
        fprintf(stderr, "hello_server: address must be IPv4:PORT\n");
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "hello_server: bad IPv4 address '%s'\n", host);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
        perror("hello_server: bind/listen");
        close(fd);
        return -1;
    }
    return fd;
}

static void *main_fiber(void *arg)
{
    int lfd = listen_on(arg);

    if (lfd < 0)
        return NULL;
    clients_lock = async_mutex_new();
    fprintf(stderr, "hello_server: listening on http://%s/\n", (const char *)arg);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        async_task *t;
        int one = 1;

        if (fd < 0) {
            if (errno == EAGAIN && async_fd_wait(lfd, ASYNC_READABLE) == 0)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ECONNABORTED) {
                async_sleep_ms(10);
                continue;
            }
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        t = async_spawn(serve, (void *)(intptr_t)fd);
        if (t == NULL)
            close(fd);
        else
            async_detach(t);
    }
    close(lfd);
    return NULL;
}

int main(int argc, char **argv)
{
    static char addr[] = "127.0.0.1:8080";

    return async_runtime(NULL, main_fiber, argc > 1 ? argv[1] : addr) == 0 ? 0 : 1;
}
