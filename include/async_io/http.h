/* async_io/http.h — an HTTP/1.1 server engine (RFC 9112) for fibers.
 *
 * A handler serves one request on the connection's own fiber and reads
 * like blocking code: it may park (read the body, connect to a backend,
 * lock a mutex, sleep) but must not block its thread (async_blocking).
 *
 *     static int hello(async_http_request *req, void *ctx)
 *     {
 *         return async_http_respond(req, 200, "text/plain", "Hello\n", 6);
 *     }
 *     ...
 *     async_http_serve(stream, hello, NULL);   // one connection, to its end
 *
 * The engine reads and parses requests strictly (no request smuggling:
 * CRLF only, one valid Content-Length, never with Transfer-Encoding,
 * chunked the only coding), answers malformed ones itself (400, 413, 414,
 * 417, 431, 501, 505, 408) and closes those connections lingering, so the
 * answer reaches a client still sending; it keeps connections alive and
 * answers pipelined requests in order.
 *
 * Responses.  The head is sent by the first write (or when the handler
 * returns): the status line, Server and Date (unless the handler set its
 * own), the handler's headers, and the framing.  Without a Content-Length
 * from the handler an HTTP/1.1 body is chunked and an HTTP/1.0 one ends
 * with the connection.  HEAD gets the head only (writes are counted, not
 * sent); 1xx, 204 and 304 get no body.  A handler that set Content-Length
 * and writes more gets EMSGSIZE, fewer: the connection is closed.
 *
 * Buffering.  Writes coalesce in the connection's output buffer, up to
 * ASYNC_HTTP_COALESCE_BYTES, and a write that would pass it sends the
 * buffer (parking until the kernel has taken it); so do async_http_flush,
 * a read of the body that has to wait for the peer, and the end of a
 * response when no further pipelined request is waiting.  Responses to
 * pipelined requests leave together in one send.
 *
 * Request bodies.  async_http_read_body de-chunks, stops at the server's
 * max_body_bytes (EMSGSIZE: answer 413 if nothing was sent yet), and
 * sends "100 Continue" on its first call when the client asked for it.  A
 * body the handler leaves unread is read and dropped before the next
 * request, up to ASYNC_HTTP_DRAIN_MAX_BYTES; past that the connection is
 * closed after the response.
 *
 * Every string a request accessor returns stays valid until the handler
 * returns.  Threads: a request belongs to the fiber that serves it. */
#ifndef ASYNC_IO_HTTP_H
#define ASYNC_IO_HTTP_H

#include "runtime.h"
#include "tcp.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNC_HTTP_COALESCE_BYTES (64 * 1024)
#define ASYNC_HTTP_DRAIN_MAX_BYTES (1024 * 1024)

typedef struct async_http_request async_http_request;  /* one exchange: request in, response out;
                                                          valid until the handler returns */
typedef int (*async_http_handler)(async_http_request *req, void *ctx);
/* return 0: the response is complete (if nothing was sent: the status set,
   default 200, with an empty body; an unfinished chunked body is ended).
   return -1: if the head was not sent, 500; otherwise the connection is
   closed. */

/* ---- the request ---- */

ASYNC_API const char *async_http_method(const async_http_request *req);  /* "GET", as received */
ASYNC_API const char *async_http_target(const async_http_request *req);  /* raw request-target */
/* percent-decoded, "." and ".." resolved, slashes merged; the path of an
 * absolute-form target ("http://host/x" gives "/x") */
ASYNC_API const char *async_http_path(const async_http_request *req);
ASYNC_API const char *async_http_query(const async_http_request *req);   /* after '?', raw; "" if none */
ASYNC_API int async_http_version(const async_http_request *req);         /* 10 or 11 */
/* The first value of the field, name case-insensitive; NULL if absent. */
ASYNC_API const char *async_http_header(const async_http_request *req, const char *name);
/* The i-th field as received: 0, or -1 ENOENT past the end. */
ASYNC_API int async_http_header_at(const async_http_request *req, size_t i, const char **name,
                                   const char **value);
/* "1.2.3.4:5678" or "[::1]:5678"; "-" when the socket cannot say. */
ASYNC_API const char *async_http_peer(const async_http_request *req);
/* The host the request is for, as sent (a port included): the authority of
 * an absolute-form target ("GET http://a.example/ HTTP/1.1") before the
 * Host field (RFC 9112 §3.2.2); "" for an empty Host; NULL when there is
 * neither (HTTP/1.0).  The engine has answered 400 to a Host that is not
 * host[:port], to two Host fields and to HTTP/1.1 without one. */
ASYNC_API const char *async_http_host(const async_http_request *req);

/* Parks; de-chunked body bytes into buf, 0 at the end of the body, -1 with
 * EMSGSIZE (past max_body_bytes), ETIMEDOUT (body_timeout_ms since the
 * body began), ECONNRESET (the peer went or sent a malformed chunk),
 * ECANCELED, EPERM (outside the request's fiber). */
ASYNC_API ssize_t async_http_read_body(async_http_request *req, void *buf, size_t len);

/* ---- the response ---- */

/* 0; -1 EALREADY (head sent), EINVAL (outside 100..999) */
ASYNC_API int async_http_set_status(async_http_request *req, int status);
/* 0; -1 EALREADY, EINVAL (a name that is not a token, CR/LF/NUL in the
 * value, a hop-by-hop field or Transfer-Encoding), ENOMEM.  Content-Length
 * fixes the body's length; Server and Date replace the defaults. */
ASYNC_API int async_http_add_header(async_http_request *req, const char *name, const char *value);
/* Parks; the first call sends the head.  0 or -1 EPIPE / ECONNRESET /
 * ECANCELED / ETIMEDOUT (send_timeout_ms without progress) / EMSGSIZE
 * (past Content-Length). */
ASYNC_API int async_http_write(async_http_request *req, const void *buf, size_t len);
/* Parks; sends len bytes of fd from offset after what was written before
 * (sendfile(2)).  Errors as async_http_write, and EIO when the file ends
 * before len bytes. */
ASYNC_API int async_http_sendfile(async_http_request *req, int fd, off_t offset, size_t len);
/* A whole response with Content-Length (content_type may be NULL). */
ASYNC_API int async_http_respond(async_http_request *req, int status, const char *content_type,
                                 const void *body, size_t len);

/* Beyond the contract. */

/* Parks; sends what writes coalesced.  0 or -1 as async_http_write. */
ASYNC_API int async_http_flush(async_http_request *req);
/* Parks; for a body read by this fiber while another fiber of the same
 * worker writes the response (a proxy that relays an answer that comes
 * before the upload has ended).  A request is otherwise one fiber's: a
 * body read that must wait first sends the response written so far, and
 * would then send bytes the other fiber is sending.  This sends the 100
 * Continue the client may be waiting for and what earlier answers left
 * buffered; from then on body reads never touch the output, which is the
 * writer's alone (so the writer flushes what it wants sent while the body
 * is still read), until the handler returns.  Call it before the writer
 * starts.  0, or -1 EPIPE. */
ASYNC_API int async_http_duplex(async_http_request *req);
/* The status set so far (200 unless set). */
ASYNC_API int async_http_status(const async_http_request *req);
/* Whether the head has been sent (async_http_set_status fails then). */
ASYNC_API int async_http_head_sent(const async_http_request *req);
/* Microseconds since the request's head was complete (for logs: the
 * request time). */
ASYNC_API int64_t async_http_elapsed_us(const async_http_request *req);
/* Once the response is complete (the access-log formatter, the done
 * hook): the microseconds the engine timed it for its duration histogram
 * (from the complete head to the response handed over), with no clock
 * read of its own; -1 when it was not timed (ASYNC_HTTP_TIME_REQUESTS
 * off, or a request the engine could not parse). */
ASYNC_API int64_t async_http_duration_us(const async_http_request *req);
/* Marks the connection to close after this response ("Connection: close"). */
ASYNC_API void async_http_close_after(async_http_request *req);
/* Switches the connection to another protocol (WebSocket, a tunnel):
 * sends "101 Switching Protocols" with "Connection: Upgrade", "Upgrade:
 * protocol" and the handler's headers, and returns the connection's stream
 * for the handler to read and write until it returns; the connection is
 * closed then.  Bytes the client sent after the request head, already
 * read, are in *early (valid until the handler returns), *early_len of
 * them.  Parks.  NULL + EALREADY (the head was sent), EINVAL (protocol not
 * a token), EPIPE / ECONNRESET / ETIMEDOUT / ECANCELED. */
ASYNC_API async_stream *async_http_upgrade(async_http_request *req, const char *protocol,
                                           const void **early, size_t *early_len);
/* The reason phrase of a status ("Not Found"); a generic one for codes
 * without their own. */
ASYNC_API const char *async_http_reason(int status);

/* ---- serving ---- */

/* Serves one connection (keep-alive, pipelining) with the default limits
 * until it ends; closes s.  Parks.  0, or -1 EPERM outside a fiber. */
ASYNC_API int async_http_serve(async_stream *s, async_http_handler fn, void *ctx);

/* A server: limits, many connections, counts, an access log and a
 * graceful shutdown.  Configure it before its first connection; it is
 * then shared, read-only, by every worker. */
typedef struct async_http_server async_http_server;

enum async_http_option {
    ASYNC_HTTP_MAX_HEADER_BYTES = 1, /* request line or field section; 8192 (256..1 MiB) */
    ASYNC_HTTP_MAX_HEADERS,          /* fields per request; 100 (1..256) */
    ASYNC_HTTP_MAX_BODY_BYTES,       /* per request body; 1 MiB */
    ASYNC_HTTP_HEADER_TIMEOUT_MS,    /* a request head, from its first byte (and a new
                                        connection's first byte); 10000 */
    ASYNC_HTTP_BODY_TIMEOUT_MS,      /* a request body, from its start; 10000 */
    ASYNC_HTTP_KEEPALIVE_TIMEOUT_MS, /* idle between requests; 75000; 0: one request
                                        per connection */
    ASYNC_HTTP_SEND_TIMEOUT_MS,      /* a write without progress; 60000 */
    ASYNC_HTTP_LINGERING_TIME_MS,    /* closing while the peer sends: drop its bytes for at
                                        most this long; 30000; 0: close at once */
    ASYNC_HTTP_LINGERING_TIMEOUT_MS, /* ... this long between its bytes; 5000 */
    ASYNC_HTTP_LINGERING_MAX_BYTES,  /* ... and this many in all; 64 MiB */
    ASYNC_HTTP_MAX_CONNECTIONS,      /* async_http_server_start answers 503 past it; none */
    ASYNC_HTTP_TIME_REQUESTS,        /* 1: time every request for the duration histogram
                                        of async_http_server_metrics (two reads of the
                                        vDSO clock per request); 0 */
};

ASYNC_API async_http_server *async_http_server_new(async_http_handler fn, void *ctx);
/* 0, or -1 EINVAL (an unknown option or a value out of its range),
 * EBUSY (the server has served already). */
ASYNC_API int async_http_server_set(async_http_server *srv, enum async_http_option opt,
                                    int64_t value);
/* The Server field of every response ("async_io" by default; NULL: none).
 * Copied.  0, or -1 EINVAL (CR/LF), ENOMEM, EBUSY. */
ASYNC_API int async_http_server_set_name(async_http_server *srv, const char *name);

/* Access logging that tells the truth.  fmt is called once per exchange,
 * on its fiber, when the response is complete — with the request still
 * valid (a request that could not be parsed has method "") — and writes
 * the line into line; the engine keeps it until the response's bytes have
 * left (or failed to) and then calls write with whole lines, the count of
 * body bytes that left put where fmt called async_http_log_body_bytes.
 * write must not park. */
typedef struct async_http_log_line async_http_log_line;
typedef void (*async_http_log_format)(const async_http_request *req, async_http_log_line *line,
                                      void *ctx);
typedef void (*async_http_log_write)(const char *lines, size_t len, void *ctx);
ASYNC_API void async_http_log_add(async_http_log_line *line, const void *p, size_t len);
ASYNC_API void async_http_log_body_bytes(async_http_log_line *line);
ASYNC_API int async_http_server_set_log(async_http_server *srv, async_http_log_format fmt,
                                        async_http_log_write write, void *ctx);

/* Exchanges a handler tagged (async_http_set_tag: the handler's own
 * pointer, NULL at the start of every exchange) get these calls, with the
 * tag, on the connection's fiber; neither may park:
 *   head  just before the response head is built, the status final
 *         (async_http_status): fields may still be added — headers that
 *         depend on the status, or that must reach the engine's own error
 *         answers too;
 *   done  once the exchange is over for its tag: head built, access-log
 *         line formatted (log_fmt reads the tag before done).  A handler
 *         that holds something for its exchange lets go of it here.
 * Set before the first connection: 0, or -1 EINVAL, EBUSY (too late). */
struct async_http_hooks {
    void (*head)(async_http_request *req, void *tag);
    void (*done)(async_http_request *req, void *tag);
};
ASYNC_API int async_http_server_set_hooks(async_http_server *srv,
                                          const struct async_http_hooks *hooks);
ASYNC_API void async_http_set_tag(async_http_request *req, void *tag);
ASYNC_API void *async_http_tag(const async_http_request *req);

/* The engine's own error answers, which no handler writes: a request it
 * refuses before the handler (a head it cannot parse or that breaks the
 * protocol: 400; a target too long: 414; a header block past
 * max_header_bytes: 431; a head too slow: 408; a Content-Length past
 * max_body_bytes: 413) or after it (a body the handler gave up on: 400,
 * 408, 413; a length promised and not written: 500).  fn is called with
 * the status on the connection's fiber just before the engine writes its
 * built-in "NNN Reason" answer, and may write its own instead (an error
 * page): fields and a body through the usual calls (async_http_respond,
 * async_http_add_header, async_http_write, async_http_sendfile), with
 * that status.  It may read async_http_conn_tag, and async_http_host,
 * async_http_method and async_http_target when the head was parsed that
 * far (NULL or "" otherwise: a malformed head, a 431, a 408); it may tag
 * the exchange (async_http_set_tag), which the head and done hooks then
 * see, as for a handler's.  It returns 0 once it has answered, -1 when
 * its answer failed after the head went (the connection closes); with
 * the head not sent, whatever it returns, the engine answers with its
 * built-in body (the fields fn added are dropped).  It is called once
 * per answer and never for its own, so it cannot loop; the connection
 * ends as it would have (a 413 or 431 with a lingering close).  It may
 * park.  Set before the first connection: 0, or -1 EINVAL (a simple
 * server, fn NULL), EBUSY (too late). */
typedef int (*async_http_error_fn)(async_http_request *req, int status, void *ctx);
ASYNC_API int async_http_server_set_error_hook(async_http_server *srv, async_http_error_fn fn,
                                               void *ctx);

/* Serves s on this fiber until the connection ends; closes s.  Parks. */
ASYNC_API int async_http_server_serve(async_http_server *srv, async_stream *s);
/* Serves s on fibers of its own on worker (mod the worker count; -1: this
 * one), and returns at once: a connection waiting for a request holds no
 * fiber, stack or buffer.  The fibers join the caller's group.  0, or -1
 * EBUSY (past max_connections: answered 503 and closed), ENOMEM (closed),
 * ESHUTDOWN (the server is shutting down: closed). */
ASYNC_API int async_http_server_start(async_http_server *srv, async_stream *s, int worker);
/* The same, with a tag every request of the connection reads back with
 * async_http_conn_tag (which listener it came through, say).  The tag is
 * the caller's, and must outlive the connection. */
ASYNC_API int async_http_server_start_tagged(async_http_server *srv, async_stream *s, int worker,
                                             void *tag);
ASYNC_API void *async_http_conn_tag(const async_http_request *req);
/* Parks: stops taking connections and drains the others without failing
 * a request: every response from now on says "Connection: close" and
 * ends its connection; busy connections finish the request in progress;
 * idle keep-alive connections stay open, so that a client sending its
 * next request meanwhile gets it answered (with Connection: close) rather
 * than reset.  It waits for them until deadline_ms (async_now_ms scale;
 * -1: no limit, and an idle connection then lasts at most its keep-alive
 * timeout); then closes the idle ones still silent, cuts the busy ones
 * left and waits for their fibers.  Runs shielded from cancellation.
 * Call it once no async_http_server_start is in progress (stop the fibers
 * that accept first).  A connection whose fiber is cancelled (the
 * caller's group was) also answers with Connection: close.
 * Returns how many busy connections had to be cut. */
ASYNC_API long async_http_server_shutdown(async_http_server *srv, int64_t deadline_ms);
/* Frees a server that served no connection or was shut down. */
ASYNC_API void async_http_server_free(async_http_server *srv);

struct async_http_stats {
    uint64_t connections_open;       /* now, including idle and lingering ones */
    uint64_t connections_total;      /* since the server was made */
    uint64_t connections_refused;    /* past max_connections */
    uint64_t requests;               /* responses begun */
    uint64_t responses[6];           /* [1..5]: by status class */
};
/* Figures so far; any thread. */
ASYNC_API void async_http_server_stats(async_http_server *srv, struct async_http_stats *st);

/* Upper bounds, in microseconds, of the request-duration histogram's
 * buckets (a last one, +Inf, follows): Prometheus's default buckets with
 * finer ones below 5 ms, where static files and small answers fall. */
#define ASYNC_HTTP_DURATION_BOUNDS_US                                                        \
    {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, \
     2500000, 5000000, 10000000}
#define ASYNC_HTTP_DURATION_BUCKETS 16

/* Beyond async_http_stats, for metrics (a struct of its own so that the
 * one above keeps its size). */
struct async_http_metrics {
    uint64_t connections_idle;       /* now: parked between requests, holding no fiber */
    uint64_t connections_lingering;  /* now: parked while closing, dropping the peer's bytes */
    uint64_t bytes_sent;             /* every byte written to clients, heads and bodies */
    /* Requests timed (ASYNC_HTTP_TIME_REQUESTS), from a complete head to
     * the response handed to the kernel: how many, the sum of their
     * microseconds, and per bucket (not cumulative; the last is +Inf). */
    uint64_t duration_count;
    uint64_t duration_sum_us;
    uint64_t duration_buckets[ASYNC_HTTP_DURATION_BUCKETS + 1];
};
/* Figures so far; any thread.  Walks the server's connections under its
 * lock to count the parked ones: for a scrape, not for every request. */
ASYNC_API void async_http_server_metrics(async_http_server *srv, struct async_http_metrics *m);

/* ---- the client ----
 *
 * One exchange with an HTTP/1.1 server, written like blocking code:
 *
 *     async_http_call *c = async_http_call_new(pool, "GET", "127.0.0.1:9001", "/health");
 *     if (c != NULL && async_http_call_send(c) == 0 && async_http_call_status(c) == 200)
 *         while ((n = async_http_call_read(c, buf, sizeof(buf))) > 0)
 *             ...
 *     async_http_call_free(c);     // the connection goes back to the pool
 *
 * Timeouts are the fiber's deadline (async_deadline) and cancellation its
 * own: every parking call here fails with ETIMEDOUT or ECANCELED.
 * Responses are parsed with the server's strictness: a malformed or
 * ambiguous head (two Content-Lengths, Content-Length with
 * Transfer-Encoding, a bare LF, ...) is EPROTO, never half-read. */

/* Idle keep-alive connections for calls to come, per address and per
 * worker (a connection stays on the worker that opened it): at most
 * max_idle per address on each worker, and idle connections to at most
 * ASYNC_HTTP_POOL_ADDRESSES addresses on each worker — past that, the
 * address used least recently gives its connections up (closed), so a
 * pool used with ever new hosts holds bounded memory and descriptors.
 * From a fiber.  NULL + errno. */
#define ASYNC_HTTP_POOL_ADDRESSES 64
typedef struct async_http_pool async_http_pool;
ASYNC_API async_http_pool *async_http_pool_new(unsigned max_idle);
/* Closes the idle connections; no call may be using the pool. */
ASYNC_API void async_http_pool_free(async_http_pool *pool);
/* Idle connections held now, all workers (for status pages). */
ASYNC_API unsigned async_http_pool_idle(const async_http_pool *pool);
/* Addresses the pool keeps an entry for now, all workers (at most
 * ASYNC_HTTP_POOL_ADDRESSES per worker). */
ASYNC_API unsigned async_http_pool_addresses(const async_http_pool *pool);

/* How the pool's calls open a connection to an address: connect(address,
 * arg) returns a connected stream ready for HTTP (a TLS stream whose
 * handshake is done, say: async_io/tls.h), or NULL with errno; it runs on
 * the calling fiber, under its deadline.  Default: async_tcp_connect.  Set
 * it before the pool's first call. */
typedef async_stream *(*async_http_connect_fn)(const char *address, void *arg);
ASYNC_API void async_http_pool_set_connect(async_http_pool *pool, async_http_connect_fn connect,
                                           void *arg);

typedef struct async_http_call async_http_call;
/* A call to address ("host:port", as async_tcp_connect takes it) through
 * pool (NULL: a connection of its own, closed at the end).  Host defaults
 * to address.  NULL + EINVAL (a method that is not a token, a target with
 * spaces or controls) or ENOMEM. */
ASYNC_API async_http_call *async_http_call_new(async_http_pool *pool, const char *method,
                                               const char *address, const char *target);
/* The same over a connected stream the caller keeps (not closed by the
 * call); host is the Host field. */
ASYNC_API async_http_call *async_http_call_on(async_stream *s, const char *method,
                                              const char *host, const char *target);
/* 0; -1 EALREADY (the head was sent), EINVAL as async_http_add_header.
 * Content-Length fixes the body's length; Host replaces the default. */
ASYNC_API int async_http_call_add_header(async_http_call *c, const char *name, const char *value);
/* Parks.  Request body bytes: without a Content-Length the body is sent
 * chunked.  Up to ASYNC_HTTP_COALESCE_BYTES stay in the call's buffer
 * until async_http_call_send (so a stale pooled connection can be replaced
 * without losing them); past it they stream.  0 or -1 (ECONNREFUSED,
 * EPIPE, ECONNRESET, EMSGSIZE past Content-Length, ETIMEDOUT, ECANCELED). */
ASYNC_API int async_http_call_write(async_http_call *c, const void *buf, size_t len);
/* Parks: ends the request and reads the response head (skipping 1xx).  A
 * pooled connection the server had closed is replaced once, for
 * idempotent methods whose bytes all sat in the buffer.  0, or -1 with
 * ECONNREFUSED, ECONNRESET (closed before any response byte), EPROTO (a
 * malformed or ambiguous response), EMSGSIZE (a body shorter than its
 * Content-Length), ETIMEDOUT, ECANCELED. */
ASYNC_API int async_http_call_send(async_http_call *c);
/* For a server that may answer before it has read the whole body (an
 * early 413 or 401), or that echoes the body as it reads it: the body is
 * written by one fiber while another, on the same worker, reads the
 * response.
 *
 *     async_http_call_stream(c);                  // head out, the body streams
 *     // fiber A (this one):                       // fiber B, spawned with async_spawn_on:
 *     async_http_call_response(c);                 while (more) async_http_call_write(c, ...);
 *     ... async_http_call_read(c, ...) ...         async_http_call_finish(c);
 *
 * The response can be read to its end while the body still streams, and
 * after the body failed (a server that answered and closed): its bytes
 * stay readable.  A call whose body did not finish is never pooled.
 *
 * async_http_call_stream parks: connects, sends the head and what body was
 * buffered; 0, or -1 as async_http_call_write.  async_http_call_finish
 * parks: ends the body (the last chunk, or checks the Content-Length); 0,
 * or -1 with EPIPE (a write failed), EMSGSIZE, EINVAL (not streaming),
 * ETIMEDOUT, ECANCELED.  async_http_call_response parks: reads the
 * response head (skipping 1xx); 0, or -1 as async_http_call_send, EINVAL
 * when the call does not stream, EALREADY when the head was read. */
ASYNC_API int async_http_call_stream(async_http_call *c);
ASYNC_API int async_http_call_finish(async_http_call *c);
ASYNC_API int async_http_call_response(async_http_call *c);
/* Shuts the call's connection down both ways: a fiber parked on it wakes
 * with an error (the other fiber of a streamed call that is no longer
 * wanted); the connection is not pooled.  Does not park. */
ASYNC_API void async_http_call_abort(async_http_call *c);
ASYNC_API int async_http_call_status(const async_http_call *c);
ASYNC_API int async_http_call_version(const async_http_call *c);      /* 10 or 11 */
/* A response field, as async_http_header (valid until the call is freed). */
ASYNC_API const char *async_http_call_header(const async_http_call *c, const char *name);
ASYNC_API int async_http_call_header_at(const async_http_call *c, size_t i, const char **name,
                                        const char **value);
/* Parks; de-chunked response body bytes, 0 at its end, -1 with
 * ECONNRESET (the connection ended early), EPROTO (a malformed chunk),
 * ETIMEDOUT, ECANCELED. */
ASYNC_API ssize_t async_http_call_read(async_http_call *c, void *buf, size_t len);
/* 1 if the next async_http_call_read would have to wait for the server
 * (the body goes on and none of it is buffered), else 0.  A relay flushes
 * what it passed on before then, so a trickle (server-sent events, a long
 * poll) reaches its client piece by piece.  Does not park. */
ASYNC_API int async_http_call_would_wait(const async_http_call *c);
/* Asks the server to switch to protocol (sends "Connection: Upgrade" and
 * "Upgrade: protocol" with the request).  0, -1 EALREADY / EINVAL. */
ASYNC_API int async_http_call_upgrade(async_http_call *c, const char *protocol);
/* After a 101 answer: the connection's stream, now the caller's to use
 * and close, and the bytes the server sent after its answer's head
 * (*early, valid until the call is freed).  NULL + EINVAL (no 101). */
ASYNC_API async_stream *async_http_call_take_stream(async_http_call *c, const void **early,
                                                    size_t *early_len);
/* Ends the call: its connection goes back to the pool when the response
 * was read to its end and both sides may keep it, else it is closed. */
ASYNC_API void async_http_call_free(async_http_call *c);

#ifdef __cplusplus
}
#endif
#endif
