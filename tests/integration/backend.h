/* tests/integration/backend.h — application servers for the proxy tests:
 * backend.py (Python's http.server), or a Go program when go_backend is
 * set, started in a child process that prints its port.  Include after
 * daemon.h (dir) with BACKEND_PY defined. */
#ifndef TEST_BACKEND_H
#define TEST_BACKEND_H

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

struct backend {
    pid_t pid;
    int port;
};

static const char *go_backend; /* non-NULL: backend_spawn starts this Go program instead */

/* Starts backend.py NAME [SICK_FILE] and reads its port; over TLS with
 * the test folder's CERT:KEY when tls is not NULL; on port when it is not
 * 0 (a backend brought back where it was). */
/* The "port N" line a backend prints once it listens, read from fd (then
 * closed): N. */
static inline int backend_port_line(int fd)
{
    char line[64] = "";
    size_t got = 0;
    int port = 0;

    while (got < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;

        assert_int_equal(poll(&p, 1, 30000), 1); /* python3 starting on a loaded machine */
        n = read(fd, line + got, sizeof(line) - 1 - got);
        assert_true(n > 0);
        got += (size_t)n;
        line[got] = '\0';
    }
    close(fd);
    assert_int_equal(sscanf(line, "port %d", &port), 1);
    return port;
}

static inline void backend_spawn(struct backend *b, const char *name, const char *sick,
                                 const char *tls, int port)
{
    char port_text[16];
    int fds[2];

    assert_int_equal(pipe(fds), 0);
    b->pid = fork();
    assert_true(b->pid >= 0);
    if (b->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (tls != NULL && (chdir(dir) != 0 || setenv("BACKEND_TLS", tls, 1) != 0))
            _exit(127);
        snprintf(port_text, sizeof(port_text), "%d", port);
        if (port != 0 && setenv("BACKEND_PORT", port_text, 1) != 0)
            _exit(127);
        if (go_backend != NULL)
            execl(go_backend, go_backend, name, (char *)NULL);
        else
            execlp("python3", "python3", BACKEND_PY, name, sick != NULL ? sick : "-", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    b->port = backend_port_line(fds[0]);
}

static inline void backend_start_tls(struct backend *b, const char *name, const char *sick,
                                     const char *tls)
{
    backend_spawn(b, name, sick, tls, 0);
}

static inline void backend_start(struct backend *b, const char *name, const char *sick)
{
    backend_spawn(b, name, sick, NULL, 0);
}

static inline void backend_stop(struct backend *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
}

#endif
