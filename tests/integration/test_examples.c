/* The example programs, run as a user would: started as processes and
 * talked to over 127.0.0.1 with plain sockets. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Starts prog with args; returns its pid and the port it printed on
 * stderr ("... listening on port N"), read with a bounded wait. */
static pid_t start_server(const char *prog, const char *arg1, const char *arg2, int *port)
{
    int fds[2];
    pid_t pid;
    char buf[512];
    size_t got = 0;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        execl(prog, prog, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *port = 0;
    while (got < sizeof(buf) - 1) {
        struct pollfd p = {fds[0], POLLIN, 0};
        ssize_t n;
        char *at;

        assert_int_equal(poll(&p, 1, 10000), 1);
        n = read(fds[0], buf + got, sizeof(buf) - 1 - got);
        assert_true(n > 0);
        got += (size_t)n;
        buf[got] = '\0';
        if ((at = strstr(buf, "listening on port ")) != NULL && strchr(at, '\n') != NULL) {
            *port = atoi(at + strlen("listening on port "));
            break;
        }
    }
    close(fds[0]);
    assert_true(*port > 0);
    return pid;
}

static void stop_server(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void examples_hello_server_answers_pipelined_requests(void **state)
{
    int port, fd, i;
    pid_t pid = start_server(HELLO_SERVER, "127.0.0.1:0", "2", &port);
    char req[3 * 40], resp[4096];
    size_t got = 0;
    const char *p;

    fd = connect_to(port);
    req[0] = '\0';
    for (i = 0; i < 3; i++)
        strcat(req, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    for (;;) { /* until three whole responses have arrived */
        ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        int pages = 0;

        assert_true(n > 0);
        got += (size_t)n;
        resp[got] = '\0';
        for (p = resp; (p = strstr(p, "Hello, World!</h1></body></html>")) != NULL; p++)
            pages++;
        if (pages == 3)
            break;
    }
    assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
    close(fd);
    stop_server(pid);
}

/* Reads until the peer closes (bounded by SO_RCVTIMEO). */
static size_t read_to_end(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap - 1 && (n = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

static void examples_http_server_serves_pages_bodies_and_sleeps_on_the_engine(void **state)
{
    static const char ask[] =
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        "GET /sleep?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int port, fd;
    pid_t pid = start_server(HTTP_SERVER, "127.0.0.1:0", "2", &port);
    char resp[8192];

    (void)state;
    fd = connect_to(port);
    assert_int_equal(send(fd, ask, sizeof(ask) - 1, 0), (ssize_t)(sizeof(ask) - 1));
    read_to_end(fd, resp, sizeof(resp));
    close(fd);
    assert_non_null(strstr(resp, "<p>client 1, request 1</p>"));
    assert_non_null(strstr(resp, "Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"));
    assert_non_null(strstr(resp, "\r\n\r\nrested\n"));
    assert_non_null(strstr(resp, "HTTP/1.1 404 Not Found\r\n"));
    /* a second client is counted under the mutex */
    fd = connect_to(port);
    assert_true(send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0) == 18);
    read_to_end(fd, resp, sizeof(resp));
    close(fd);
    assert_non_null(strstr(resp, "<p>client 2, request 2</p>"));
    stop_server(pid);
}

static void examples_echo_server_and_client_round_trip(void **state)
{
    int port, status;
    pid_t pid = start_server(ECHO_SERVER, "127.0.0.1:0", "2", &port), client;
    char address[32];

    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    client = fork();
    if (client == 0) {
        execl(ECHO_CLIENT, ECHO_CLIENT, address, "2000", (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(client, &status, 0), client);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* 2000 of 2000 matched */
    stop_server(pid);
}

static void examples_kitchen_sink_prints_the_tour(void **state)
{
    FILE *f = popen(KITCHEN_SINK, "r");
    char out[1024];
    size_t n = fread(out, 1, sizeof(out) - 1, f);

    out[n] = '\0';
    assert_int_equal(pclose(f), 0);
    assert_non_null(strstr(out, "mutex: total 10000\n"));
    assert_non_null(strstr(out, "channel: received 1\n"));
    assert_non_null(strstr(out, "try_receive took 2 more, then EAGAIN"));
    assert_non_null(strstr(out, "ring: sum 5050, then EPIPE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(examples_hello_server_answers_pipelined_requests),
        cmocka_unit_test(examples_http_server_serves_pages_bodies_and_sleeps_on_the_engine),
        cmocka_unit_test(examples_echo_server_and_client_round_trip),
        cmocka_unit_test(examples_kitchen_sink_prints_the_tour),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
