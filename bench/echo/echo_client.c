/*
 * echo_client: neutral TCP echo load generator (plain C: pthreads + epoll, no
 * async_io), used to compare echo servers side by side.
 *
 *   echo_client HOST:PORT CONNECTIONS SECONDS [THREADS]
 *
 * Opens CONNECTIONS TCP connections (TCP_NODELAY) to HOST:PORT, where HOST must
 * be 127.0.0.1 (loopback only, by design). Every connection does strict
 * ping-pong: send one 64-byte message, wait until all 64 bytes have come back,
 * check them, send the next. Connections are spread round-robin over THREADS
 * epoll threads (default 1). The first second is warm-up and is not counted;
 * then SECONDS are measured. A round trip counts when its reply completes
 * inside the measured window; its latency (send of the first byte to receipt
 * of the last) goes into a per-thread log-scale histogram (no per-sample
 * allocation; 32 linear sub-buckets per power of two, so under about 3 %
 * relative error).
 *
 * Prints exactly one line on stdout:
 *   echo: <msgs_per_sec> msg/s p50 <us> us p99 <us> us errors <n>
 * Diagnostics go to stderr. Exit status: 0 on success; 1 if any connection
 * failed (connect error, reset, early EOF, I/O error, content mismatch) or
 * no round trip completed in the measured window; 2 on bad usage.
 * Run time is bounded: connects have an overall 10 s deadline, the threads
 * stop at the end of the window by themselves, and an alarm() watchdog kills
 * the process SECONDS + 30 s after start in case anything hangs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define WARMUP_NS 1000000000ull
#define CONNECT_DEADLINE_MS 10000

/* ---- log-scale histogram of nanoseconds ---- */
#define SUB_BITS 5
#define SUB (1u << SUB_BITS)                 /* 32 sub-buckets per octave */
#define LINEAR (2u * SUB)                    /* values < 64 ns stored exactly */
#define NBUCKETS (LINEAR + (64u - (SUB_BITS + 1)) * SUB)

typedef struct {
    uint64_t count[NBUCKETS];
} hist;

static unsigned hist_index(uint64_t v)
{
    if (v < LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);  /* e >= SUB_BITS + 1 */
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
    return LINEAR + (e - (SUB_BITS + 1)) * SUB + sub;
}

/* lower bound and width of bucket i */
static void hist_range(unsigned i, double *lo, double *width)
{
    if (i < LINEAR) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned e = (i - LINEAR) / SUB + SUB_BITS + 1;
    unsigned sub = (i - LINEAR) % SUB;
    *lo = (double)((uint64_t)(SUB + sub) << (e - SUB_BITS));
    *width = (double)(1ull << (e - SUB_BITS));
}

/* value (ns) at quantile q, reported as the middle of its bucket */
static double hist_quantile(const hist *h, uint64_t total, double q)
{
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            double lo, w;
            hist_range(i, &lo, &w);
            return lo + (w - 1) / 2;
        }
    }
    return 0;
}

/* ---- connections and threads ---- */
typedef struct {
    int fd;
    unsigned id;
    int dead;                 /* failed and closed */
    int want_out;             /* EPOLLOUT armed (partial send pending) */
    uint64_t seq;             /* sequence number of the message in flight */
    unsigned sent, got;       /* bytes of the current message sent / received */
    uint64_t t_send;          /* ns, when the current message started */
    uint64_t measured;        /* round trips completed inside the window */
    unsigned char out[MSG];
    unsigned char in[MSG];
} conn;

typedef struct {
    pthread_t tid;
    int ep;
    conn **conns;
    unsigned nconns;
    uint64_t t_measure, t_end;  /* absolute CLOCK_MONOTONIC ns */
    uint64_t msgs;
    uint64_t errors;
    hist h;
} worker;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fill(conn *c)
{
    uint64_t id = c->id, s = c->seq;
    memcpy(c->out, &id, 8);
    memcpy(c->out + 8, &s, 8);
    for (unsigned i = 16; i < MSG; i++)
        c->out[i] = (unsigned char)(i * 7u + id * 13u + s);
}

static void conn_fail(worker *w, conn *c, const char *what, int err)
{
    if (c->dead)
        return;
    if (err)
        fprintf(stderr, "echo_client: connection %u: %s: %s\n", c->id, what, strerror(err));
    else
        fprintf(stderr, "echo_client: connection %u: %s\n", c->id, what);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->dead = 1;
    w->errors++;
}

static void set_out(worker *w, conn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        conn_fail(w, c, "epoll_ctl", errno);
    else
        c->want_out = on;
}

/* push the rest of the current message; returns 0 or -1 (connection failed) */
static int try_send(worker *w, conn *c)
{
    while (c->sent < MSG) {
        ssize_t n = send(c->fd, c->out + c->sent, MSG - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (unsigned)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(w, c, 1);
            return c->dead ? -1 : 0;
        } else {
            conn_fail(w, c, "send", n < 0 ? errno : EPIPE);
            return -1;
        }
    }
    set_out(w, c, 0);
    return c->dead ? -1 : 0;
}

static void start_msg(worker *w, conn *c, uint64_t t)
{
    c->seq++;
    c->sent = c->got = 0;
    fill(c);
    c->t_send = t;
    try_send(w, c);
}

static void on_readable(worker *w, conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->got, MSG - c->got, 0);
        if (n > 0) {
            if (c->sent < MSG) {      /* reply bytes before we finished sending */
                if (c->got + (unsigned)n > c->sent) {
                    conn_fail(w, c, "received more bytes than sent", 0);
                    return;
                }
            }
            c->got += (unsigned)n;
            if (c->got < MSG)
                continue;
            if (memcmp(c->in, c->out, MSG) != 0) {
                conn_fail(w, c, "echoed content mismatch", 0);
                return;
            }
            uint64_t t = now_ns();
            if (t >= w->t_measure && t < w->t_end) {
                w->msgs++;
                c->measured++;
                w->h.count[hist_index(t - c->t_send)]++;
            }
            if (t >= w->t_end)
                return;                 /* window over: stop this connection */
            start_msg(w, c, t);
            return;                     /* strict ping-pong: nothing more to read now */
        }
        if (n == 0) {
            conn_fail(w, c, "closed by server", 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        conn_fail(w, c, "recv", errno);
        return;
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[256];
    uint64_t t = now_ns();

    for (unsigned i = 0; i < w->nconns; i++)
        start_msg(w, w->conns[i], t);

    for (;;) {
        t = now_ns();
        if (t >= w->t_end)
            break;
        uint64_t left_ms = (w->t_end - t) / 1000000ull + 1;
        int timeout = left_ms > 50 ? 50 : (int)left_ms;
        int n = epoll_wait(w->ep, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo_client: epoll_wait");
            w->errors++;
            break;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->dead)
                continue;
            if (evs[i].events & (EPOLLERR)) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                conn_fail(w, c, "socket error", err ? err : EIO);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->sent < MSG)
                if (try_send(w, c) < 0)
                    continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP))
                on_readable(w, c);
        }
    }
    return NULL;
}

/* non-blocking connect with a deadline; returns fd or -1 */
static int dial(const struct sockaddr_in *sa, uint64_t deadline, unsigned id)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "echo_client: connection %u: socket: %s\n", id, strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        fprintf(stderr, "echo_client: connection %u: TCP_NODELAY: %s\n", id, strerror(errno));
        close(fd);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        fprintf(stderr, "echo_client: connection %u: connect: %s\n", id, strerror(errno));
        close(fd);
        return -1;
    }
    for (;;) {
        uint64_t t = now_ns();
        if (t >= deadline) {
            fprintf(stderr, "echo_client: connection %u: connect timed out\n", id);
            close(fd);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, (int)((deadline - t) / 1000000ull + 1));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "echo_client: connection %u: poll: %s\n", id, strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0)
            continue;
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            fprintf(stderr, "echo_client: connection %u: connect: %s\n", id, strerror(err));
            close(fd);
            return -1;
        }
        return fd;
    }
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_client 127.0.0.1:PORT CONNECTIONS SECONDS [THREADS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5)
        usage();

    /* HOST:PORT, loopback only */
    char host[64];
    const char *colon = strrchr(argv[1], ':');
    if (!colon || (size_t)(colon - argv[1]) >= sizeof host)
        usage();
    memcpy(host, argv[1], (size_t)(colon - argv[1]));
    host[colon - argv[1]] = 0;
    unsigned long port, nconn, secs, nthr = 1;
    if (parse_uint(colon + 1, 65535, &port) < 0 || parse_uint(argv[2], 1000000, &nconn) < 0 ||
        parse_uint(argv[3], 86400, &secs) < 0 || (argc == 5 && parse_uint(argv[4], 1024, &nthr) < 0))
        usage();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (strcmp(host, "127.0.0.1") != 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_client: only 127.0.0.1 is allowed as HOST (got '%s')\n", host);
        return 2;
    }
    if (nthr > nconn)
        nthr = nconn;

    /* watchdog: connects (10 s) + warm-up + window + generous slack */
    alarm((unsigned)(secs + 30));

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    conn *conns = calloc(nconn, sizeof *conns);
    worker *ws = calloc(nthr, sizeof *ws);
    conn **slots = calloc(nconn, sizeof *slots);
    if (!conns || !ws || !slots) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }

    uint64_t errors = 0;
    uint64_t deadline = now_ns() + CONNECT_DEADLINE_MS * 1000000ull;
    for (unsigned long i = 0; i < nconn; i++) {
        conns[i].id = (unsigned)i;
        conns[i].fd = dial(&sa, deadline, (unsigned)i);
        if (conns[i].fd < 0) {
            conns[i].dead = 1;
            errors++;
        }
    }

    /* round-robin over threads; each thread's conns are contiguous in slots[] */
    unsigned long pos = 0;
    for (unsigned long t = 0; t < nthr; t++) {
        worker *w = &ws[t];
        w->conns = &slots[pos];
        for (unsigned long i = t; i < nconn; i += nthr)
            if (!conns[i].dead)
                slots[pos++] = &conns[i];
        w->nconns = (unsigned)(&slots[pos] - w->conns);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) {
            perror("echo_client: epoll_create1");
            return 1;
        }
        for (unsigned i = 0; i < w->nconns; i++) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w->conns[i]};
            if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->conns[i]->fd, &ev) < 0) {
                perror("echo_client: epoll_ctl");
                return 1;
            }
        }
    }

    uint64_t t0 = now_ns();
    if (pos == 0)                    /* no live connection: nothing to measure */
        nthr = 0;
    for (unsigned long t = 0; t < nthr; t++) {
        ws[t].t_measure = t0 + WARMUP_NS;
        ws[t].t_end = t0 + WARMUP_NS + secs * 1000000000ull;
        int rc = pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]);
        if (rc) {
            fprintf(stderr, "echo_client: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }

    static hist total_h;
    uint64_t msgs = 0;
    for (unsigned long t = 0; t < nthr; t++) {
        pthread_join(ws[t].tid, NULL);
        msgs += ws[t].msgs;
        errors += ws[t].errors;
        for (unsigned i = 0; i < NBUCKETS; i++)
            total_h.count[i] += ws[t].h.count[i];
        close(ws[t].ep);
    }

    unsigned long stalled = 0;
    for (unsigned long i = 0; i < nconn; i++) {
        if (!conns[i].dead && conns[i].measured == 0)
            stalled++;
        if (conns[i].fd >= 0 && !conns[i].dead)
            close(conns[i].fd);
    }
    if (stalled)
        fprintf(stderr, "echo_client: warning: %lu live connection(s) completed no round trip "
                        "in the measured window\n", stalled);
    if (msgs == 0)
        fprintf(stderr, "echo_client: no round trip completed in the measured window\n");

    printf("echo: %.0f msg/s p50 %.1f us p99 %.1f us errors %llu\n",
           (double)msgs / (double)secs,
           hist_quantile(&total_h, msgs, 0.50) / 1000.0,
           hist_quantile(&total_h, msgs, 0.99) / 1000.0,
           (unsigned long long)errors);
    fflush(stdout);

    free(slots);
    free(ws);
    free(conns);
    return (errors || msgs == 0) ? 1 : 0;
}
