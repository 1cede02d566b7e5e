/* TCP on fibers, over 127.0.0.1 and ::1 only. */
#define _GNU_SOURCE
#include "harness.h" /* fibers record failures with CHECK*, never assert */

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

static char *join_address(char *buf, size_t len, const char *host, int port)
{
    snprintf(buf, len, "%s:%d", host, port);
    return buf;
}

/* ---- one stream, read by one fiber while another writes it ---- */

/* Each way moves DUPLEX_BYTES in pieces of varying size through 4 KiB
 * socket buffers, so both fibers of each end park on the one stream
 * thousands of times, each often woken while the other is about to park
 * on the same watcher.  A lost wake-up (a fiber that took the watcher
 * over while the woken one had not yet run, its record then cleared by
 * the woken one) stalls a direction: the deadline turns it into a
 * failure. */
#define DUPLEX_BYTES (24 * 1024 * 1024)

struct duplex_dir {
    async_stream *s;
    bool writing;
    long done;
};

static unsigned char duplex_byte(long i)
{
    return (unsigned char)(i * 31 + i / 1021);
}

static void *duplex_move(void *arg)
{
    struct duplex_dir *d = arg;
    enum { BUF = 65536 };
    unsigned char *buf = malloc(BUF);
    long i = 0;
    ssize_t n;
    size_t want;
    int k;

    CHECK(buf != NULL);
    if (buf == NULL)
        return NULL;
    async_deadline(async_now_ms() + 30000);
    while (i < DUPLEX_BYTES) {
        want = 1 + (size_t)((i / 7) % (BUF - 1));
        if (want > (size_t)(DUPLEX_BYTES - i))
            want = (size_t)(DUPLEX_BYTES - i);
        if (d->writing) {
            for (k = 0; k < (int)want; k++)
                buf[k] = duplex_byte(i + k);
            if (async_stream_write_all(d->s, buf, want) != 0)
                break;
            n = (ssize_t)want;
        } else {
            if ((n = async_stream_read(d->s, buf, want)) <= 0)
                break;
            for (k = 0; k < n; k++)
                if (buf[k] != duplex_byte(i + k))
                    break;
            if (k < n)
                break;
        }
        i += n;
    }
    async_deadline(-1);
    d->done = i;
    free(buf);
    return NULL;
}

/* A small send buffer parks writers often; the receive buffer keeps its
 * size (a tiny one lets loopback TCP stall on a closed window for
 * seconds, which would look like a lost wake-up). */
static void small_buffers(async_stream *s)
{
    int size = 16384;

    setsockopt(async_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

static void *duplex(void *arg)
{
    char addr[64];
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_stream *c, *s;
    struct duplex_dir d[4];
    async_task *t[4];
    int i;

    (void)arg;
    CHECK(l != NULL);
    if (l == NULL)
        return NULL;
    c = async_tcp_connect(join_address(addr, sizeof(addr), "127.0.0.1", async_listener_port(l)));
    s = async_listener_accept(l);
    CHECK(c != NULL && s != NULL);
    if (c == NULL || s == NULL)
        return NULL;
    small_buffers(c);
    small_buffers(s);
    d[0] = (struct duplex_dir){s, true, 0};
    d[1] = (struct duplex_dir){s, false, 0};
    d[2] = (struct duplex_dir){c, true, 0};
    d[3] = (struct duplex_dir){c, false, 0};
    /* both fibers of one end on one worker, as a stream's fibers must be */
    for (i = 0; i < 4; i++)
        t[i] = async_spawn_on((unsigned)(i / 2) % (unsigned)async_workers(), duplex_move, &d[i]);
    for (i = 0; i < 4; i++) {
        CHECK(t[i] != NULL);
        if (t[i] != NULL)
            async_join(t[i], NULL);
    }
    for (i = 0; i < 4; i++)
        CHECK_EQ(d[i].done, (long)DUPLEX_BYTES);
    async_stream_close(c);
    async_stream_close(s);
    async_listener_close(l);
    return NULL;
}

static void tcp_one_stream_read_and_written_by_two_fibers_at_once(void **state)
{
    int round;

    (void)state;
    /* each round caught the lost wake-up about one time in three */
    for (round = 0; round < 3; round++)
        RUN(2, duplex, NULL);
}

/* ---- echo, many clients, big transfers ---- */

#define CLIENTS 200
#define BYTES (256 * 1024)

static void *echo_conn(void *arg)
{
    async_stream *s = arg;
    char buf[8192];
    ssize_t n;

    while ((n = async_stream_read(s, buf, sizeof(buf))) > 0)
        if (async_stream_write_all(s, buf, (size_t)n) != 0)
            break;
    async_stream_close(s);
    return NULL;
}

static void *echo_accept_loop(void *arg)
{
    async_listener *l = arg;
    async_stream *s;

    while ((s = async_listener_accept(l)) != NULL)
        async_detach(async_spawn(echo_conn, s));
    CHECK(errno == EBADF || errno == ECANCELED);
    return NULL;
}

struct echo_job {
    const char *address;
    unsigned seed;
};

static void *send_half(void *arg)
{
    async_stream *s = ((void **)arg)[0];
    const unsigned char *data = ((void **)arg)[1];

    CHECK(async_stream_write_all(s, data, BYTES) == 0);
    return NULL;
}

static void *echo_client(void *arg)
{
    struct echo_job *j = arg;
    async_stream *s = async_tcp_connect(j->address);
    unsigned char *data = malloc(BYTES), *back = malloc(BYTES);
    size_t got = 0, i;
    void *pair[2];
    async_task *writer;

    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    for (i = 0; i < BYTES; i++)
        data[i] = (unsigned char)(rand_r(&j->seed) >> 7);
    /* Write and read at once, or both sides' buffers fill and stall. */
    pair[0] = s;
    pair[1] = data;
    writer = async_spawn(send_half, pair);
    while (got < BYTES) {
        ssize_t n = async_stream_read(s, back + got, BYTES - got);

        CHECK(n > 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    async_join(writer, NULL);
    CHECK(got == BYTES && memcmp(data, back, BYTES) == 0);
    async_stream_close(s);
out:
    free(data);
    free(back);
    return NULL;
}

static void *many_echo_clients(void *arg)
{
    const char *host = arg;
    async_listener *l;
    async_task *acceptor, *c[CLIENTS];
    struct echo_job jobs[CLIENTS];
    char address[64];
    int i;

    l = async_listener_bind(host[0] == '[' ? "[::1]:0" : "127.0.0.1:0");
    CHECK(l != NULL);
    if (l == NULL)
        return NULL;
    join_address(address, sizeof(address), host, async_listener_port(l));
    acceptor = async_spawn(echo_accept_loop, l);
    for (i = 0; i < CLIENTS; i++) {
        jobs[i].address = address;
        jobs[i].seed = (unsigned)i * 7919u + 1;
        c[i] = async_spawn(echo_client, &jobs[i]);
    }
    for (i = 0; i < CLIENTS; i++)
        async_join(c[i], NULL);
    async_cancel(acceptor); /* its accept fails with ECANCELED */
    async_join(acceptor, NULL);
    async_listener_close(l);
    return NULL;
}

static void tcp_200_echo_clients_with_large_transfers_over_ipv4(void **state)
{
    RUN(2, many_echo_clients, "127.0.0.1");
}

static void tcp_200_echo_clients_with_large_transfers_over_ipv6(void **state)
{
    RUN(2, many_echo_clients, "[::1]");
}

/* ---- half-close ---- */

static void *half_close_server(void *arg)
{
    async_stream *s = async_listener_accept(arg);
    char buf[256];
    size_t total = 0;
    ssize_t n;

    CHECK(s != NULL);
    while ((n = async_stream_read(s, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    CHECK(n == 0); /* EOF after the peer's SHUT_WR */
    snprintf(buf, sizeof(buf), "got %zu", total);
    CHECK(async_stream_write_all(s, buf, strlen(buf)) == 0);
    async_stream_close(s);
    return NULL;
}

static void *half_close(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    char address[64], buf[64];
    async_task *srv = async_spawn(half_close_server, l);
    async_stream *c;
    size_t got = 0;
    ssize_t n;

    c = async_tcp_connect(join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l)));
    CHECK(c != NULL);
    CHECK(async_stream_write_all(c, "hello, world", 12) == 0);
    CHECK(shutdown(async_stream_fd(c), SHUT_WR) == 0);
    while ((n = async_stream_read(c, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    CHECK(n == 0);
    buf[got] = '\0';
    CHECK(strcmp(buf, "got 12") == 0);
    async_stream_close(c);
    async_join(srv, NULL);
    async_listener_close(l);
    return NULL;
}

static void tcp_half_close_delivers_eof_and_the_reply(void **state)
{
    RUN(2, half_close, NULL);
}

/* ---- connect errors, addresses, resolution ---- */

static void *refused(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    char address[64];
    int port = async_listener_port(l);

    async_listener_close(l);
    CHECK(async_tcp_connect(join_address(address, sizeof(address), "127.0.0.1", port)) == NULL);
    CHECK(errno == ECONNREFUSED);
    return NULL;
}

static void tcp_connect_to_a_closed_port_is_refused(void **state)
{
    RUN(1, refused, NULL);
}

static void *bad_addresses(void *arg)
{
    static const char *bad[] = {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:99999", "1.2.3.4:8x",
                                "::1:80", "[::1]80", "[::1", "[]:80", "a b:80", "*:-1",
                                /* what async_address_parse refuses, bind and connect do */
                                "bad_host:80", "300.1.1.1:80", "[foo]:80", "1.2.3.4:65536"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        CHECK(async_listener_bind(bad[i]) == NULL && errno == EINVAL);
        errno = 0;
        CHECK(async_tcp_connect(bad[i]) == NULL && errno == EINVAL);
    }
    CHECK(async_listener_bind(NULL) == NULL && errno == EINVAL);
    CHECK(async_tcp_connect(NULL) == NULL && errno == EINVAL);
    CHECK(async_tcp_connect("*:80") == NULL && errno == EINVAL);
    CHECK(async_tcp_connect("no-such-host.invalid:80") == NULL && errno == ENXIO);
    CHECK(async_listener_port(NULL) == -1 && errno == EINVAL);
    CHECK(async_stream_fd(NULL) == -1 && errno == EINVAL);
    CHECK(async_stream_read(NULL, NULL, 0) == -1 && errno == EINVAL);
    CHECK(async_listener_accept(NULL) == NULL && errno == EINVAL);
    return NULL;
}

static void tcp_malformed_addresses_are_einval_and_unknown_names_enxio(void **state)
{
    RUN(1, bad_addresses, NULL);
}

static void *any_and_localhost(void *arg)
{
    static const char *binds[] = {"*:0", ":0", "[::]:0", "localhost:0", "127.0.0.1:0"};
    static const char *peers[] = {"127.0.0.1", "127.0.0.1", "[::1]", "localhost", "localhost"};
    size_t i;

    for (i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
        async_listener *l = async_listener_bind(binds[i]);
        async_task *srv;
        async_stream *c;
        char address[64], b = 0;

        CHECK(l != NULL && async_listener_port(l) > 0);
        if (l == NULL)
            continue;
        srv = async_spawn(echo_accept_loop, l);
        c = async_tcp_connect(join_address(address, sizeof(address), peers[i], async_listener_port(l)));
        CHECK(c != NULL);
        if (c != NULL) {
            CHECK(async_stream_write_all(c, "x", 1) == 0);
            CHECK(async_stream_read(c, &b, 1) == 1 && b == 'x');
            async_stream_close(c);
        }
        async_cancel(srv);
        async_join(srv, NULL);
        async_listener_close(l);
    }
    return NULL;
}

static void tcp_wildcard_and_localhost_addresses_bind_and_connect(void **state)
{
    RUN(2, any_and_localhost, NULL);
}

/* ---- SO_REUSEPORT listeners, one per worker ---- */

#define RP_CONNS 200

struct rp_acceptor {
    async_listener *l;
    atomic_int accepted;
    atomic_int wrong_worker;
    int worker;
};

static void *rp_accept(void *arg)
{
    struct rp_acceptor *a = arg;
    async_stream *s;

    while ((s = async_listener_accept(a->l)) != NULL) {
        if (async_worker_id() != a->worker)
            atomic_fetch_add(&a->wrong_worker, 1);
        atomic_fetch_add(&a->accepted, 1);
        async_detach(async_spawn_on((unsigned)a->worker, echo_conn, s));
    }
    CHECK(errno == ECANCELED);
    return NULL;
}

static void *reuseport_per_worker(void *arg)
{
    static struct rp_acceptor acc[2];
    async_task *t[2];
    char address[64];
    int i, total;

    (void)arg;
    errno = 0;
    CHECK(async_listener_bind_flags("127.0.0.1:0", 2) == NULL && errno == EINVAL);
    acc[0].l = async_listener_bind_flags("127.0.0.1:0", ASYNC_LISTEN_REUSEPORT);
    CHECK(acc[0].l != NULL);
    if (acc[0].l == NULL)
        return NULL;
    snprintf(address, sizeof(address), "127.0.0.1:%d", async_listener_port(acc[0].l));
    /* Without the flag on both, the port is taken. */
    errno = 0;
    CHECK(async_listener_bind(address) == NULL && errno == EADDRINUSE);
    acc[1].l = async_listener_bind_flags(address, ASYNC_LISTEN_REUSEPORT);
    CHECK(acc[1].l != NULL);
    if (acc[1].l == NULL) {
        async_listener_close(acc[0].l);
        return NULL;
    }
    for (i = 0; i < 2; i++) {
        acc[i].worker = i;
        atomic_store(&acc[i].accepted, 0);
        atomic_store(&acc[i].wrong_worker, 0);
        t[i] = async_spawn_on((unsigned)i, rp_accept, &acc[i]);
        CHECK(t[i] != NULL);
    }
    for (i = 0; i < RP_CONNS; i++) {
        async_stream *c = async_tcp_connect(address);
        char b = 0;

        CHECK(c != NULL);
        if (c == NULL)
            continue;
        CHECK(async_stream_write_all(c, "r", 1) == 0);
        CHECK(async_stream_read(c, &b, 1) == 1 && b == 'r');
        async_stream_close(c);
    }
    for (i = 0; i < 2; i++) {
        async_cancel(t[i]);
        async_join(t[i], NULL);
        async_listener_close(acc[i].l);
    }
    total = atomic_load(&acc[0].accepted) + atomic_load(&acc[1].accepted);
    CHECK(total == RP_CONNS);
    /* The kernel hashes each connection's source port over the two
     * sockets: all 200 on one would be a 2^-199 chance. */
    CHECK(atomic_load(&acc[0].accepted) > 0 && atomic_load(&acc[1].accepted) > 0);
    CHECK(atomic_load(&acc[0].wrong_worker) == 0 && atomic_load(&acc[1].wrong_worker) == 0);
    return NULL;
}

static void tcp_reuseport_listeners_share_a_port_and_its_connections(void **state)
{
    RUN(2, reuseport_per_worker, NULL);
}

/* ---- deadlines and cancellation ---- */

static void *silent_peer(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    char address[64], b;
    async_stream *c, *srv_side;
    int64_t t0;

    c = async_tcp_connect(join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l)));
    srv_side = async_listener_accept(l);
    CHECK(c != NULL && srv_side != NULL);
    t0 = async_now_ms();
    async_deadline(t0 + 50);
    CHECK(async_stream_read(c, &b, 1) == -1 && errno == ETIMEDOUT);
    CHECK(async_now_ms() - t0 >= 50);
    CHECK(async_listener_accept(l) == NULL && errno == ETIMEDOUT);
    async_deadline(-1);
    async_stream_close(c);
    async_stream_close(srv_side);
    async_listener_close(l);
    return NULL;
}

static void tcp_deadline_on_a_silent_peer_is_etimedout(void **state)
{
    RUN(1, silent_peer, NULL);
}

struct parked_call {
    async_listener *l;
    async_stream *s;
    const char *address;
    atomic_int ready;
    int err;
};

static void *park_in_accept(void *arg)
{
    struct parked_call *p = arg;

    atomic_store(&p->ready, 1);
    CHECK(async_listener_accept(p->l) == NULL);
    p->err = errno;
    return NULL;
}

static void *park_in_read(void *arg)
{
    struct parked_call *p = arg;
    char b;

    atomic_store(&p->ready, 1);
    CHECK(async_stream_read(p->s, &b, 1) == -1);
    p->err = errno;
    return NULL;
}

static void *park_in_connect(void *arg)
{
    struct parked_call *p = arg;

    atomic_store(&p->ready, 1);
    CHECK(async_tcp_connect(p->address) == NULL);
    p->err = errno;
    return NULL;
}

/* Spawns fn, waits until it is (about to be) parked, lets it settle, then
 * cancels it or closes what it waits on. */
static int interrupt(async_fn fn, struct parked_call *p, void (*how)(struct parked_call *, async_task *))
{
    async_task *t;
    int i;

    atomic_store(&p->ready, 0);
    p->err = 0;
    t = async_spawn(fn, p);
    while (!atomic_load(&p->ready))
        async_yield();
    for (i = 0; i < 100; i++) /* let it reach the park */
        async_yield();
    how(p, t);
    async_join(t, NULL);
    return p->err;
}

static void by_cancel(struct parked_call *p, async_task *t)
{
    async_cancel(t);
}

static void by_closing_listener(struct parked_call *p, async_task *t)
{
    async_listener_close(p->l);
    p->l = NULL;
}

static void by_closing_stream(struct parked_call *p, async_task *t)
{
    async_stream_close(p->s);
    p->s = NULL;
}

/* A listening socket with a backlog of 0 that never accepts: once its
 * queue is full, further SYNs are dropped and a connect stays pending. */
static int full_backlog(int *port, int *keep, int nkeep)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), i;

    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    listen(fd, 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    for (i = 0; i < nkeep; i++) { /* fill the queue */
        keep[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(keep[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    return fd;
}

static void *cancel_everywhere(void *arg)
{
    struct parked_call p = {0};
    char address[64];
    async_stream *other;
    int port, lfd, keep[4], i;

    /* accept */
    p.l = async_listener_bind("127.0.0.1:0");
    CHECK(interrupt(park_in_accept, &p, by_cancel) == ECANCELED);
    CHECK(interrupt(park_in_accept, &p, by_closing_listener) == EBADF);
    /* read */
    p.l = async_listener_bind("127.0.0.1:0");
    p.s = async_tcp_connect(join_address(address, sizeof(address), "127.0.0.1", async_listener_port(p.l)));
    other = async_listener_accept(p.l);
    CHECK(p.s != NULL && other != NULL);
    CHECK(interrupt(park_in_read, &p, by_cancel) == ECANCELED);
    CHECK(interrupt(park_in_read, &p, by_closing_stream) == EBADF);
    async_stream_close(other);
    async_listener_close(p.l);
    /* connect */
    lfd = full_backlog(&port, keep, 4);
    p.address = join_address(address, sizeof(address), "127.0.0.1", port);
    CHECK(interrupt(park_in_connect, &p, by_cancel) == ECANCELED);
    async_deadline(async_now_ms() + 50);
    CHECK(async_tcp_connect(address) == NULL && errno == ETIMEDOUT);
    async_deadline(-1);
    for (i = 0; i < 4; i++)
        close(keep[i]);
    close(lfd);
    return NULL;
}

static void tcp_accept_read_and_connect_wake_on_cancel_close_and_deadline(void **state)
{
    /* One worker: once the victim has run it is parked when we go on, which
     * closing under it requires (a call that starts after the close would
     * use a freed handle). */
    RUN(1, cancel_everywhere, NULL);
}

/* ---- the peer resets while we write ---- */

static void *resetting_server(void *arg)
{
    async_stream *s = async_listener_accept(arg);
    struct linger lg = {1, 0};
    char buf[4096];

    CHECK(s != NULL);
    CHECK(async_stream_read(s, buf, sizeof(buf)) > 0);
    setsockopt(async_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    async_stream_close(s); /* RST, with unread data in the buffer */
    return NULL;
}

static void *reset_mid_write(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    size_t len = 64u << 20;
    char *big = calloc(1, len), address[64];
    async_task *srv = async_spawn(resetting_server, l);
    async_stream *c;

    c = async_tcp_connect(join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l)));
    CHECK(c != NULL);
    CHECK(async_stream_write_all(c, big, len) == -1);
    CHECK(errno == ECONNRESET || errno == EPIPE);
    /* and the next write fails the same way, still without SIGPIPE */
    CHECK(async_stream_write(c, big, 1) == -1 && (errno == EPIPE || errno == ECONNRESET));
    async_stream_close(c);
    async_join(srv, NULL);
    async_listener_close(l);
    free(big);
    return NULL;
}

static void tcp_peer_reset_during_write_all_is_an_error_not_sigpipe(void **state)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test */
    RUN(1, reset_mid_write, NULL);
}

/* ---- no descriptor or memory leak over many connections ---- */

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

#ifndef CHURN
#define CHURN 20000
#endif
static void *churn(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    char address[64];
    int before, i;

    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l));
    before = fd_count();
    for (i = 0; i < CHURN; i++) {
        async_stream *c = async_tcp_connect(address);
        async_stream *s = async_listener_accept(l);

        CHECK(c != NULL && s != NULL);
        if (c == NULL || s == NULL)
            break;
        async_stream_close(s);
        async_stream_close(c);
    }
    CHECK(fd_count() == before);
    async_listener_close(l);
    return NULL;
}

static void tcp_20000_connections_leave_no_descriptor_behind(void **state)
{
    RUN(2, churn, NULL);
}

/* ---- out of descriptors: accept backs off and recovers ---- */

static int report_fd;

static void *hold_conn(void *arg)
{
    async_stream *s = arg;
    char buf[64];
    ssize_t n;

    while ((n = async_stream_read(s, buf, sizeof(buf))) > 0)
        async_stream_write_all(s, buf, (size_t)n);
    async_stream_close(s);
    return NULL;
}

static void *limited_server(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    int port = async_listener_port(l);
    async_stream *s;

    (void)!write(report_fd, &port, sizeof(port));
    while ((s = async_listener_accept(l)) != NULL)
        async_detach(async_spawn(hold_conn, s));
    return NULL;
}

static int blocking_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends one byte on every fd, then collects echoes until none has come
 * for quiet_ms; answered[i] says who answered. */
static int collect_echoes(int *fds, int n, int *answered, int quiet_ms)
{
    struct pollfd pfd[64];
    int i, got = 0;
    char b;

    for (i = 0; i < n; i++) {
        answered[i] = 0;
        assert_int_equal(send(fds[i], "p", 1, MSG_NOSIGNAL), 1);
    }
    for (;;) {
        int k = 0, r;

        for (i = 0; i < n; i++)
            if (!answered[i]) {
                pfd[k].fd = fds[i];
                pfd[k].events = POLLIN;
                k++;
            }
        if (k == 0)
            return got;
        r = poll(pfd, (nfds_t)k, quiet_ms);
        if (r <= 0)
            return got;
        for (i = 0; i < n; i++) {
            int j;

            for (j = 0; j < k; j++)
                if (pfd[j].fd == fds[i] && (pfd[j].revents & POLLIN)) {
                    assert_int_equal(recv(fds[i], &b, 1, 0), 1);
                    assert_int_equal(b, 'p');
                    answered[i] = 1;
                    got++;
                }
        }
    }
}

static void tcp_accept_survives_descriptor_exhaustion_and_recovers(void **state)
{
    enum { CONNS = 60 };
    int pipefd[2], port = 0, fds[CONNS], answered[CONNS], i, served, later;
    pid_t pid;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = {40, 40};
        struct async_config cfg = {.workers = 1};

        close(pipefd[0]);
        report_fd = pipefd[1];
        setrlimit(RLIMIT_NOFILE, &lim); /* some 30 connections fit */
        async_runtime(&cfg, limited_server, NULL);
        _exit(0);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &port, sizeof(port)), sizeof(port));
    close(pipefd[0]);
    for (i = 0; i < CONNS; i++) /* the kernel completes these into the backlog */
        assert_true((fds[i] = blocking_connect(port)) >= 0);
    /* Those the server could accept answer at once; the rest wait behind
     * EMFILE (a quiet half second says nothing more is coming). */
    served = collect_echoes(fds, CONNS, answered, 500);
    print_message("served while out of descriptors: %d of %d\n", served, CONNS);
    assert_true(served > 0 && served < CONNS);
    /* Free descriptors in the server: every remaining one must be served. */
    for (i = 0; i < CONNS; i++)
        if (answered[i]) {
            close(fds[i]);
            fds[i] = -1;
        }
    for (i = 0, later = 0; i < CONNS; i++)
        if (fds[i] >= 0) {
            char b = 0;
            struct pollfd p = {fds[i], POLLIN, 0};

            /* its first byte is already queued; the echo comes once accepted */
            assert_int_equal(poll(&p, 1, 10000), 1);
            assert_int_equal(recv(fds[i], &b, 1, 0), 1);
            assert_int_equal(b, 'p');
            later++;
        }
    print_message("served after descriptors were freed: %d\n", later);
    assert_int_equal(served + later, CONNS);
    for (i = 0; i < CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- the blocking pool ---- */

static void *slow_add(void *arg)
{
    usleep(2000);
    return (void *)((intptr_t)arg + 1);
}

/* A call that cannot finish before the test lets it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_open = PTHREAD_COND_INITIALIZER;
static int gate_is_open;

static void *wait_for_gate(void *arg)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_is_open)
        pthread_cond_wait(&gate_open, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return arg;
}

static atomic_int abandoned, abandoned_ran;

static void on_abandon(void *arg, void *result, int ran)
{
    atomic_fetch_add(&abandoned, 1);
    atomic_fetch_add(&abandoned_ran, ran);
}

static void *blocking_calls(void *arg)
{
    void *r = NULL;
    pthread_t me = pthread_self();
    int64_t t0;

    CHECK(async_blocking(slow_add, (void *)41, &r) == 0 && (intptr_t)r == 42);
    CHECK(pthread_equal(me, pthread_self())); /* the fiber stayed on its worker */
    CHECK(async_blocking(NULL, NULL, NULL) == -1 && errno == EINVAL);
    if (arg == NULL)
        return NULL;
    /* Fewer gated calls than helpers (16), or they would hold every
     * helper and starve the quick calls queued behind them. */
    t0 = async_now_ms();
    async_deadline(t0 + 20);
    CHECK(async_blocking_ex(wait_for_gate, NULL, &r, on_abandon) == -1 && errno == ETIMEDOUT);
    CHECK(async_now_ms() - t0 < 5000); /* it did not wait for the call */
    async_deadline(-1);
    return NULL;
}

static void *many_blocking(void *arg)
{
    async_task *t[64];
    int i;

    for (i = 0; i < 64; i++)
        t[i] = async_spawn(blocking_calls, i < 8 ? (void *)1 : NULL);
    for (i = 0; i < 64; i++)
        async_join(t[i], NULL);
    return NULL;
}

static void tcp_blocking_calls_run_on_helpers_and_can_be_abandoned(void **state)
{
    int i;

    atomic_store(&abandoned, 0);
    RUN(2, many_blocking, NULL);
    /* Every gated call was abandoned: now let them finish; each one's
     * abandon hook runs, whether it had started (ran) or not. */
    pthread_mutex_lock(&gate_lock);
    gate_is_open = 1;
    pthread_cond_broadcast(&gate_open);
    pthread_mutex_unlock(&gate_lock);
    for (i = 0; i < 1000 && atomic_load(&abandoned) < 8; i++)
        usleep(10000); /* bounded: at most 10 s */
    assert_int_equal(atomic_load(&abandoned), 8);
    print_message("abandoned calls that had started: %d of 8\n", atomic_load(&abandoned_ran));
    assert_int_equal(async_blocking(slow_add, NULL, NULL), -1);
    assert_int_equal(errno, EPERM);
}


/* ---- a quiet connection handed to a fiber that starts on its bytes ---- */

static atomic_int woke_count;

/* Reads one byte, answers it, closes: the fiber that starts on readable. */
static void *answer_one(void *arg)
{
    async_stream *s = arg;
    char c;

    atomic_fetch_add(&woke_count, 1);
    if (async_stream_read(s, &c, 1) == 1)
        CHECK(async_stream_write_all(s, &c, 1) == 0);
    async_stream_close(s);
    return NULL;
}

static void *hand_over_at_once(void *arg)
{
    async_stream *s = arg;

    CHECK(async_spawn_when_readable(s, answer_one, s) == 0);
    return NULL; /* this fiber ends; s lives on */
}

static void *handoff_accept_loop(void *arg)
{
    async_listener *l = arg;
    async_stream *s;

    while ((s = async_listener_accept(l)) != NULL)
        async_detach(async_spawn(hand_over_at_once, s));
    return NULL;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

#define QUIET 3000

static void *many_quiet_connections(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_stream **c = calloc(QUIET, sizeof(*c));
    async_task *acceptor = async_spawn(handoff_accept_loop, l);
    struct async_stats st;
    char address[64], b;
    long before, after;
    int i, ok = 0;

    (void)arg;
    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l));
    atomic_store(&woke_count, 0);
    before = rss_kib();
    for (i = 0; i < QUIET; i++)
        CHECK((c[i] = async_tcp_connect(address)) != NULL);
    /* every server side is handed over once the acceptor and the fibers it
     * spawned have run: they are parked spawns then, not fibers */
    for (i = 0; i < 1000; i++) {
        async_stats(&st, NULL, 0);
        if (st.fibers_live == 2 + QUIET) /* us, the acceptor, the parked spawns */
            break;
        async_sleep_ms(5);
    }
    CHECK(st.fibers_live == 2 + QUIET);
    after = rss_kib();
    CHECK(atomic_load(&woke_count) == 0); /* nobody wrote: nobody started */
    /* a fiber kept with its stack would touch at least a page (4 KiB) */
    fprintf(stderr, "%d quiet connections: RSS %+ld KiB (%ld bytes each, both ends)\n", QUIET,
            after - before, (after - before) * 1024 / QUIET);
#ifndef __SANITIZE_THREAD__ /* TSan's shadow memory grows with every allocation */
    CHECK(after - before < QUIET * 2);
#endif
    for (i = 0; i < QUIET; i++) {
        b = (char)i;
        CHECK(async_stream_write_all(c[i], &b, 1) == 0);
    }
    for (i = 0; i < QUIET; i++) {
        char got = 0;

        ok += async_stream_read(c[i], &got, 1) == 1 && got == (char)i;
        async_stream_close(c[i]);
    }
    CHECK(ok == QUIET);
    CHECK(atomic_load(&woke_count) == QUIET);
    async_listener_close(l);
    async_join(acceptor, NULL);
    free(c);
    return NULL;
}

static void tcp_quiet_connections_hold_no_fiber_until_their_bytes_arrive(void **state)
{
    struct rlimit rl;

    (void)state;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * QUIET + 100 && rl.rlim_max >= 2 * QUIET + 100) {
        rl.rlim_cur = 2 * QUIET + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    RUN(2, many_quiet_connections, NULL);
}

static void *hand_over_then_eof(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    char address[64];
    async_stream *c, *s;

    (void)arg;
    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l));
    atomic_store(&woke_count, 0);
    c = async_tcp_connect(address);
    s = async_listener_accept(l);
    CHECK(c != NULL && s != NULL);
    CHECK(async_spawn_when_readable(s, answer_one, s) == 0);
    async_stream_close(c); /* the end of stream is news too */
    async_listener_close(l);
    return NULL; /* async_runtime returns only once answer_one has run */
}

static void tcp_handed_over_stream_wakes_on_end_of_stream(void **state)
{
    (void)state;
    RUN(2, hand_over_then_eof, NULL);
    assert_int_equal(atomic_load(&woke_count), 1);
}

static atomic_int cancelled_reads;

static void *read_or_cancelled(void *arg)
{
    async_stream *s = arg;
    char c;

    atomic_fetch_add(&woke_count, 1);
    if (async_stream_read(s, &c, 1) < 0 && errno == ECANCELED)
        atomic_fetch_add(&cancelled_reads, 1);
    async_stream_close(s);
    return NULL;
}

struct group_handoff {
    async_stream *s;
};

static void *member_hands_over(void *arg)
{
    struct group_handoff *g = arg;

    CHECK(async_spawn_when_readable(g->s, read_or_cancelled, g->s) == 0);
    return NULL;
}

static void *group_cancel_starts_handed_over(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    async_group *g = async_group_new();
    struct group_handoff h;
    char address[64];
    async_stream *c;

    (void)arg;
    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l));
    atomic_store(&woke_count, 0);
    atomic_store(&cancelled_reads, 0);
    c = async_tcp_connect(address);
    h.s = async_listener_accept(l);
    CHECK(c != NULL && h.s != NULL);
    CHECK(async_group_spawn(g, member_hands_over, &h) == 0);
    /* the member ends, its parked spawn stays in the group: join waits */
    async_sleep_ms(20);
    CHECK(atomic_load(&woke_count) == 0);
    async_group_cancel(g);
    CHECK(async_group_join(g) == 0); /* the cancel started it; it ended */
    CHECK(atomic_load(&woke_count) == 1);
    CHECK(atomic_load(&cancelled_reads) == 1);
    async_group_free(g);
    async_stream_close(c);
    async_listener_close(l);
    return NULL;
}

static void tcp_group_cancel_starts_a_handed_over_stream_fiber(void **state)
{
    (void)state;
    RUN(2, group_cancel_starts_handed_over, NULL);
}

static void *handoff_errors(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0");
    char address[64];
    async_stream *c, *s;

    (void)arg;
    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l));
    c = async_tcp_connect(address);
    s = async_listener_accept(l);
    errno = 0;
    CHECK(async_spawn_when_readable(NULL, answer_one, NULL) == -1 && errno == EINVAL);
    CHECK(async_spawn_when_readable(s, NULL, NULL) == -1 && errno == EINVAL);
    /* async_stream_wait: writable at once, readable once bytes arrive */
    CHECK(async_stream_wait(s, ASYNC_WRITABLE) == 0);
    CHECK(async_stream_wait(s, 0) == -1 && errno == EINVAL);
    CHECK(async_stream_write_all(c, "x", 1) == 0);
    CHECK(async_stream_wait(s, ASYNC_READABLE) == 0);
    async_deadline(async_now_ms() + 30);
    CHECK(async_stream_wait(c, ASYNC_READABLE) == -1 && errno == ETIMEDOUT);
    async_deadline(-1);
    async_stream_close(s);
    async_stream_close(c);
    async_listener_close(l);
    return NULL;
}

static void tcp_stream_wait_and_handoff_check_their_arguments(void **state)
{
    (void)state;
    RUN(1, handoff_errors, NULL);
    errno = 0;
    assert_int_equal(async_spawn_when_readable(NULL, answer_one, NULL), -1);
    assert_int_equal(errno, EPERM);
}

/* ---- borrowed listeners ---- */

static void *borrowed(void *arg)
{
    async_listener *l = async_listener_bind("127.0.0.1:0"), *b1, *b2;
    async_stream *c1, *c2, *c3, *s;
    int fd, pipefd[2], plain;
    char address[64], byte = 0;

    (void)arg;
    CHECK(l != NULL);
    fd = async_listener_fd(l);
    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(l));
    b1 = async_listener_borrow(fd);
    CHECK(b1 != NULL && async_listener_port(b1) == async_listener_port(l));
    c1 = async_tcp_connect(address);
    CHECK((s = async_listener_accept(b1)) != NULL);
    async_stream_close(s);
    async_stream_close(c1);
    /* a connection queued when the borrowed handle closes stays queued,
     * and the socket keeps listening */
    c2 = async_tcp_connect(address);
    CHECK(c2 != NULL && async_stream_write_all(c2, "q", 1) == 0);
    async_listener_close(b1);
    c3 = async_tcp_connect(address);
    CHECK(c3 != NULL);
    b2 = async_listener_borrow(fd);
    CHECK((s = async_listener_accept(b2)) != NULL);
    CHECK(async_stream_read(s, &byte, 1) == 1 && byte == 'q');
    async_stream_close(s);
    CHECK((s = async_listener_accept(b2)) != NULL);
    async_stream_close(s);
    async_listener_close(b2);
    CHECK(fcntl(fd, F_GETFD) >= 0); /* still the lender's */
    async_stream_close(c2);
    async_stream_close(c3);
    /* what cannot be borrowed */
    errno = 0;
    CHECK(async_listener_borrow(-1) == NULL && errno == EINVAL);
    CHECK(pipe(pipefd) == 0);
    CHECK(async_listener_borrow(pipefd[0]) == NULL && errno == ENOTSOCK);
    close(pipefd[0]);
    close(pipefd[1]);
    plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(async_listener_borrow(plain) == NULL && errno == EINVAL); /* not listening */
    close(plain);
    CHECK(async_listener_fd(NULL) == -1 && errno == EINVAL);
    async_listener_close(l);
    return NULL;
}

static void tcp_a_borrowed_listener_leaves_the_socket_and_its_queue_alone(void **state)
{
    (void)state;
    RUN(2, borrowed, NULL);
}

/* ---- a watcher that outlives the fiber that waited on it ---- */

struct outlive {
    async_listener *l;
    async_stream *c, *s; /* client end, server end */
};

static void outlive_open(struct outlive *o)
{
    char address[64];

    o->l = async_listener_bind("127.0.0.1:0");
    CHECK(o->l != NULL);
    join_address(address, sizeof(address), "127.0.0.1", async_listener_port(o->l));
    o->c = async_tcp_connect(address);
    o->s = async_listener_accept(o->l);
    CHECK(o->c != NULL && o->s != NULL);
}

/* Waits on its stream (one byte) and ends, leaving the stream open. */
static void *read_one_and_end(void *arg)
{
    char b;

    CHECK(async_stream_read(arg, &b, 1) == 1);
    return NULL;
}

/* Waits on the stream for its byte, then closes it: the descriptor is
 * gone when the close returns. */
static void *read_one_and_close(void *arg)
{
    int fd = async_stream_fd(arg);
    char b;

    CHECK(async_stream_read(arg, &b, 1) == 1);
    async_stream_close(arg);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
    return NULL;
}

/* Runs fn(o->s) in a fiber that parks reading it before the byte it
 * reads is sent, so that its wait starts the stream's watcher. */
static void run_waiting(struct outlive *o, async_fn fn)
{
    async_task *t = async_spawn(fn, o->s);

    CHECK(t != NULL && wait_parked(t));
    CHECK_OK(async_stream_write_all(o->c, "a", 1));
    CHECK_OK(async_join(t, NULL));
}

static void *outlived_watcher_stops_at_its_event(void *arg)
{
    struct outlive o;
    double c0, burnt;

    (void)arg;
    outlive_open(&o);
    run_waiting(&o, read_one_and_end);
    /* Nobody reads s any more; bytes and then the end of the stream make
     * it ready for good.  A watcher left started for it would wake this
     * worker's loop at every turn while we sleep. */
    CHECK_OK(async_stream_write_all(o.c, "bc", 2));
    async_stream_close(o.c);
    c0 = cpu_seconds();
    CHECK_OK(async_sleep_ms(300));
    burnt = cpu_seconds() - c0;
    fprintf(stderr, "CPU while an outlived stream is ready: %.3f s in 0.3 s\n", burnt);
    CHECK(burnt < 0.1);
    async_stream_close(o.s);
    async_listener_close(o.l);
    return NULL;
}

static void tcp_a_stream_that_outlives_its_fiber_does_not_spin_the_loop(void **state)
{
    (void)state;
    RUN(1, outlived_watcher_stops_at_its_event, NULL);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void *closing_releases_the_descriptor(void *arg)
{
    struct outlive o;
    char b;
    int fd;

    (void)arg;
    /* the fiber that waited on it closes it */
    outlive_open(&o);
    run_waiting(&o, read_one_and_close);
    CHECK(async_stream_read(o.c, &b, 1) == 0); /* a FIN, no reset */
    async_stream_close(o.c);
    async_listener_close(o.l);
    /* another fiber of the worker closes it after the waiter ended */
    outlive_open(&o);
    fd = async_stream_fd(o.s);
    run_waiting(&o, read_one_and_end);
    async_stream_close(o.s);
    CHECK(!fd_open(fd));
    CHECK(async_stream_read(o.c, &b, 1) == 0);
    async_stream_close(o.c);
    async_listener_close(o.l);
    return NULL;
}

static void tcp_closing_a_stream_its_worker_watches_closes_the_descriptor_at_once(void **state)
{
    (void)state;
    RUN(1, closing_releases_the_descriptor, NULL);
}

/* A parked spawn that a cancel starts (not its descriptor) and that
 * leaves the stream open: the watcher it was handed outlives it without
 * pointing at it. */
static void *note_and_leave_open(void *arg)
{
    (void)arg;
    atomic_fetch_add(&woke_count, 1);
    return NULL;
}

static void *member_hands_over_and_leaves(void *arg)
{
    CHECK(async_spawn_when_readable(arg, note_and_leave_open, arg) == 0);
    return NULL;
}

static void *cancelled_spawn_leaves_its_watcher(void *arg)
{
    async_group *g = async_group_new();
    struct outlive o;
    char b;
    int fd;

    (void)arg;
    outlive_open(&o);
    atomic_store(&woke_count, 0);
    fd = async_stream_fd(o.s);
    CHECK(async_group_spawn(g, member_hands_over_and_leaves, o.s) == 0);
    async_group_cancel(g);
    CHECK(async_group_join(g) == 0);
    CHECK(atomic_load(&woke_count) == 1);
    async_group_free(g);
    /* bytes for the watcher of a fiber that is gone: the loop's next turn
     * (our sleep) sees them */
    CHECK_OK(async_stream_write_all(o.c, "a", 1));
    CHECK_OK(async_sleep_ms(1));
    CHECK(async_stream_read(o.s, &b, 1) == 1);
    async_stream_close(o.s);
    CHECK(!fd_open(fd));
    async_stream_close(o.c);
    async_listener_close(o.l);
    return NULL;
}

static void tcp_a_cancelled_parked_spawn_leaves_no_stale_watcher(void **state)
{
    (void)state;
    RUN(1, cancelled_spawn_leaves_its_watcher, NULL);
}

/* The same spawn, shielded, sleeps: bytes for its old watcher must not
 * cut the sleep short (the watcher no longer names it once it started). */
static atomic_int slept_ms;

static void *shielded_nap(void *arg)
{
    int64_t t0;

    (void)arg;
    async_shield(1);
    atomic_fetch_add(&woke_count, 1);
    t0 = async_now_ms();
    CHECK_OK(async_sleep_ms(300));
    atomic_store(&slept_ms, (int)(async_now_ms() - t0));
    async_shield(0);
    return NULL;
}

static void *member_hands_over_to_nap(void *arg)
{
    CHECK(async_spawn_when_readable(arg, shielded_nap, arg) == 0);
    return NULL;
}

static void *cancelled_spawn_is_not_woken_by_its_old_watcher(void *arg)
{
    async_group *g = async_group_new();
    struct outlive o;

    (void)arg;
    outlive_open(&o);
    atomic_store(&woke_count, 0);
    CHECK(async_group_spawn(g, member_hands_over_to_nap, o.s) == 0);
    async_group_cancel(g);
    CHECK(yield_until_at_least(&woke_count, 1));
    CHECK_OK(async_stream_write_all(o.c, "a", 1));
    CHECK(async_group_join(g) == 0);
    CHECK(atomic_load(&slept_ms) >= 290);
    async_group_free(g);
    async_stream_close(o.s);
    async_stream_close(o.c);
    async_listener_close(o.l);
    return NULL;
}

static void tcp_a_started_spawn_is_not_woken_by_its_old_watcher(void **state)
{
    (void)state;
    RUN(1, cancelled_spawn_is_not_woken_by_its_old_watcher, NULL);
}

/* A stream left open when the runtime ends, its watcher still started:
 * the reactor's end drops the watcher's hold (LeakSanitizer in the ASan
 * build sees the stream freed by the close that follows). */
static async_stream *left_open[2];
static async_listener *left_listener;

static void *leave_a_watched_stream(void *arg)
{
    struct outlive o;

    (void)arg;
    outlive_open(&o);
    run_waiting(&o, read_one_and_end);
    left_open[0] = o.c;
    left_open[1] = o.s;
    left_listener = o.l;
    return NULL;
}

static void tcp_a_watched_stream_left_open_at_the_end_is_freed_by_its_close(void **state)
{
    int fd;

    (void)state;
    RUN(1, leave_a_watched_stream, NULL);
    fd = async_stream_fd(left_open[1]);
    async_stream_close(left_open[1]);
    assert_false(fd_open(fd));
    async_stream_close(left_open[0]);
    async_listener_close(left_listener);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_200_echo_clients_with_large_transfers_over_ipv4),
        cmocka_unit_test(tcp_200_echo_clients_with_large_transfers_over_ipv6),
        cmocka_unit_test(tcp_half_close_delivers_eof_and_the_reply),
        cmocka_unit_test(tcp_connect_to_a_closed_port_is_refused),
        cmocka_unit_test(tcp_malformed_addresses_are_einval_and_unknown_names_enxio),
        cmocka_unit_test(tcp_wildcard_and_localhost_addresses_bind_and_connect),
        cmocka_unit_test(tcp_reuseport_listeners_share_a_port_and_its_connections),
        cmocka_unit_test(tcp_deadline_on_a_silent_peer_is_etimedout),
        cmocka_unit_test(tcp_accept_read_and_connect_wake_on_cancel_close_and_deadline),
        cmocka_unit_test(tcp_peer_reset_during_write_all_is_an_error_not_sigpipe),
        cmocka_unit_test(tcp_20000_connections_leave_no_descriptor_behind),
        cmocka_unit_test(tcp_accept_survives_descriptor_exhaustion_and_recovers),
        cmocka_unit_test(tcp_blocking_calls_run_on_helpers_and_can_be_abandoned),
        cmocka_unit_test(tcp_quiet_connections_hold_no_fiber_until_their_bytes_arrive),
        cmocka_unit_test(tcp_handed_over_stream_wakes_on_end_of_stream),
        cmocka_unit_test(tcp_group_cancel_starts_a_handed_over_stream_fiber),
        cmocka_unit_test(tcp_stream_wait_and_handoff_check_their_arguments),
        cmocka_unit_test(tcp_a_borrowed_listener_leaves_the_socket_and_its_queue_alone),
        cmocka_unit_test(tcp_a_stream_that_outlives_its_fiber_does_not_spin_the_loop),
        cmocka_unit_test(tcp_closing_a_stream_its_worker_watches_closes_the_descriptor_at_once),
        cmocka_unit_test(tcp_a_watched_stream_left_open_at_the_end_is_freed_by_its_close),
        cmocka_unit_test(tcp_a_cancelled_parked_spawn_leaves_no_stale_watcher),
        cmocka_unit_test(tcp_a_started_spawn_is_not_woken_by_its_old_watcher),
        cmocka_unit_test(tcp_one_stream_read_and_written_by_two_fibers_at_once),
    };

    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
