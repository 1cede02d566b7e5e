/* asyncd's logs and signals as an operator meets them: a stderr or an
 * access log nobody reads (serving goes on, lines are dropped and
 * counted), SIGUSR1 after a rename (logrotate: no line lost or written
 * twice), a reopen that fails, stray signals, SIGQUIT, the logrotate file,
 * access-log lines that stay one readable line whatever the client sent,
 * and the daemon's own lines with or without a timestamp.  The real
 * asyncd with http.so, echo.so and a fixture, over 127.0.0.1; every wait
 * is bounded. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_LINE "http: listening on 127.0.0.1:0 (port "
#define ECHO_LINE "echo: listening on 127.0.0.1:0 (port "
#define HELLO "Hello, World!"
#define IO_MS 10000

#include "daemon.h"

static struct daemon D;

#include "http_client.h"

static int setup(void **state)
{
    (void)state;
    test_dir_make("/tmp/logging-test-XXXXXX");
    test_dir_link_module(HTTP_SO, "http");
    test_dir_link_module(ECHO_SO, "echo");
    test_dir_mkdir("www");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close_leftover_clients();
    if (D.err >= 0)
        close(D.err);
    D.err = -1;
    remove_test_dir();
    return 0;
}

/* asyncd.json: http (with access_log, "" for none, and more keys, "" or
 * starting with ',') and, when echo, the echo module. */
static void write_config(const char *access_log, bool echo, const char *extra)
{
    char text[4096], log_key[600] = "";

    if (access_log[0] != '\0')
        snprintf(log_key, sizeof(log_key), ",\"access_log\":\"%s\"", access_log);
    snprintf(text, sizeof(text),
             "{\"modules_dir\":\"modules\",\"shutdown_timeout_ms\":5000,\"log_level\":\"info\",\n"
             " \"runtime\":{\"workers\":2},\n"
             " \"modules\":{%s\"http\":{\"listen\":[\"127.0.0.1:0\"],\"root\":\"www\",\n"
             "  \"routes\":[{\"path\":\"/hello\",\"status\":200,\"content_type\":\"text/plain\","
             "\"body\":\"" HELLO "\"}],\n"
             "  \"status_path\":\"/status\"%s%s}}}\n",
             echo ? "\"echo\":{\"listen\":[\"127.0.0.1:0\"]}," : "\"echo\":{\"enabled\":false},",
             log_key, extra);
    write_file("asyncd.json", text);
}

static void start(const char *access_log, bool echo)
{
    write_config(access_log, echo, "");
    daemon_start_port(&D, "asyncd.json", PORT_LINE);
}

static void stop_with(int sig)
{
    int rc = daemon_stop(&D, sig);

    if (rc != 0)
        fail_msg("asyncd exited %d; log:\n%s", rc, D.log);
}

/* ---- requests by the thousand ---- */

/* n requests for /hello?n=ID (ID from first on) over one connection, in
 * pipelined batches; the responses counted by their bodies.  The number
 * answered, all of them unless ms passed or the connection failed.  Plain
 * sockets and no cmocka call: a forked child uses it too. */
static long hello_burst(int port, long first, long n, int ms)
{
    enum { BATCH = 50 };
    const size_t hl = strlen(HELLO);
    char req[BATCH * 64], buf[65536];
    int64_t until = now_ms() + ms;
    long done = 0;
    size_t keep = 0;
    int fd = try_connect(port);

    if (fd < 0)
        return 0;
    while (done < n) {
        long want = n - done < BATCH ? n - done : BATCH, got = 0, i;
        size_t len = 0;

        for (i = 0; i < want; i++)
            len += (size_t)snprintf(req + len, sizeof(req) - len,
                                    "GET /hello?n=%ld HTTP/1.1\r\nHost: x\r\n\r\n",
                                    first + done + i);
        if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
            break;
        while (got < want) {
            struct pollfd p = {fd, POLLIN, 0};
            ssize_t k;
            char *at;

            if (poll(&p, 1, left_ms(until)) <= 0)
                goto out;
            k = recv(fd, buf + keep, sizeof(buf) - 1 - keep, 0);
            if (k <= 0)
                goto out;
            keep += (size_t)k;
            buf[keep] = '\0';
            for (at = buf; (at = strstr(at, HELLO)) != NULL; at += hl)
                got++;
            /* keep a tail that may hold the start of a body */
            if (keep >= hl) {
                memmove(buf, buf + keep - (hl - 1), hl - 1);
                keep = hl - 1;
            }
        }
        done += want;
    }
out:
    close(fd);
    return done;
}

static void must_burst(long first, long n)
{
    long got = hello_burst(D.port, first, n, 30000);

    if (got != n)
        fail_msg("%ld of %ld pipelined requests answered", got, n);
}

/* The status endpoint's access_log.dropped. */
static long status_dropped(void)
{
    struct resp r;
    long n;

    exchange("GET /status HTTP/1.1\r\nHost: x\r\n\r\n", false, &r, NULL);
    assert_status(&r, 200);
    if (strstr(r.body, "\"access_log\":{\"dropped\":") == NULL)
        fail_msg("no access_log.dropped in %s", r.body);
    n = json_count(r.body, "\"dropped\"");
    resp_free(&r);
    return n;
}

static bool echoes(int port)
{
    struct timeval tv = {5, 0};
    int fd = try_connect(port), ok;
    char buf[6] = {0};

    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ok = send(fd, "hello", 5, 0) == 5 && recv(fd, buf, 5, MSG_WAITALL) == 5 &&
         strcmp(buf, "hello") == 0;
    close(fd);
    return ok;
}

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s != '\0'; s++)
        n += *s == c;
    return n;
}

/* ================= 7. logging never stops serving ================= */

/* access_log "stderr", and a stderr pipe that nobody reads once the ports
 * are known: requests and echo are still answered, the daemon's own lines
 * (a reload's) do not block its signal fiber, the status endpoint counts
 * the dropped lines, and when the pipe is read again the count is logged.
 * Before the log writer, every worker blocked in write(2). */
static void logging_stderr_nobody_reads_never_stops_serving(void **state)
{
    long dropped;
    int echo_port;

    (void)state;
    start("stderr", true);
    echo_port = atoi(wait_log(&D, ECHO_LINE) + strlen(ECHO_LINE));
    wait_log(&D, "ready: 2 module(s) running");
    /* the smallest pipe there is: it fills with the first lines */
    fcntl(D.err, F_SETPIPE_SZ, 4096);
    /* from here on, nobody reads it: 512 KiB of queue is ~6,500 lines */
    must_burst(0, 20000);
    dropped = status_dropped();
    print_message("      dropped %ld access-log line(s)\n", dropped);
    assert_true(dropped > 0);
    assert_int_equal(kill(D.pid, SIGHUP), 0); /* a reload logs several lines */
    assert_true(echoes(echo_port));
    must_burst(20000, 2000);
    assert_true(status_dropped() > dropped);
    /* read again: the writer catches up and says what it dropped */
    wait_log(&D, "reloaded");
    wait_log(&D, "line(s) to stderr: queue full");
    stop_with(SIGTERM);
}

/* The same with the access log on a FIFO whose reader never reads (a path
 * sink: opened non-blocking, polled), while stderr is read: drops are
 * counted in the status and logged at most once a second. */
static void logging_access_log_fifo_nobody_reads_drops_and_counts(void **state)
{
    char path[512];
    int64_t t0, elapsed;
    long dropped;
    int reader, reports;
    const char *at;

    (void)state;
    path_of(path, sizeof(path), "access.fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* there, never reading */
    assert_true(reader >= 0);
    t0 = now_ms();
    start("access.fifo", false);
    must_burst(0, 20000);
    dropped = status_dropped();
    assert_true(dropped > 0);
    wait_log(&D, "line(s) to access.fifo: queue full");
    elapsed = now_ms() - t0;
    for (reports = 0, at = D.log; (at = strstr(at, "log: dropped ")) != NULL; at++)
        reports++;
    print_message("      dropped %ld line(s), %d report(s) in %lld ms\n", dropped, reports,
                  (long long)elapsed);
    assert_true(reports <= 1 + elapsed / 1000); /* rate-limited */
    stop_with(SIGTERM); /* within its bound, though the FIFO is still full */
    close(reader);
}

/* ================= 9. SIGUSR1, and the other signals ================= */

static off_t size_of(const char *name)
{
    char path[512];
    struct stat st;

    path_of(path, sizeof(path), name);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Waits (5 s bound) until name holds at least one byte. */
static void wait_nonempty(const char *name)
{
    int64_t until = now_ms() + 5000;

    while (size_of(name) <= 0 && now_ms() < until)
        pump(&D, 20);
    if (size_of(name) <= 0)
        fail_msg("%s stayed empty; log:\n%s", name, D.log);
}

static void rename_in_dir(const char *from, const char *to)
{
    char a[512], b[512];

    path_of(a, sizeof(a), from);
    path_of(b, sizeof(b), to);
    assert_int_equal(rename(a, b), 0);
}

/* Marks in seen[] the ids of text's "GET /hello?n=ID " lines; the number
 * of lines, or -1 (failed) on a line that is not one, or an id seen twice
 * or out of range. */
static long tally_ids(const char *name, const char *text, unsigned char *seen, long max)
{
    long lines = 0;
    const char *p = text, *nl;

    for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1, lines++) {
        const char *at = strstr(p, "\"GET /hello?n=");
        long id;

        if (at == NULL || at > nl)
            fail_msg("%s: a line that is not a request's: %.*s", name, (int)(nl - p), p);
        id = strtol(at + strlen("\"GET /hello?n="), NULL, 10);
        if (id < 0 || id >= max)
            fail_msg("%s: id %ld, but only %ld requests were answered", name, id, max);
        if (seen[id]++)
            fail_msg("%s: the line of request %ld written twice", name, id);
    }
    if (*p != '\0')
        fail_msg("%s ends in half a line: %s", name, p);
    return lines;
}

/* logrotate's way, three times while a client keeps requesting: rename
 * the file, SIGUSR1.  Every answered request has its line in exactly one
 * of the four files; each file got some. */
static void logging_usr1_after_rename_loses_and_duplicates_no_line(void **state)
{
    static const char *const files[] = {"access.log.1", "access.log.2", "access.log.3",
                                        "access.log"};
    int stop_pipe[2], count_pipe[2], status, r;
    long answered = -1, total = 0;
    unsigned char *seen;
    pid_t child;
    size_t len;

    (void)state;
    start("access.log", false);
    assert_int_equal(pipe(stop_pipe), 0);
    assert_int_equal(pipe(count_pipe), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) { /* the client: batches of requests until told to stop */
        struct pollfd p = {stop_pipe[0], POLLIN, 0};
        long done = 0, got;

        close(stop_pipe[1]);
        close(count_pipe[0]);
        while (poll(&p, 1, 0) == 0) {
            got = hello_burst(D.port, done, 200, 10000);
            done += got;
            if (got != 200)
                _exit(2);
        }
        _exit(write(count_pipe[1], &done, sizeof(done)) == sizeof(done) ? 0 : 3);
    }
    close(stop_pipe[0]);
    close(count_pipe[1]);
    for (r = 0; r < 3; r++) {
        wait_nonempty("access.log");
        rename_in_dir("access.log", files[r]);
        assert_int_equal(kill(D.pid, SIGUSR1), 0);
        wait_next(&D, "log: reopened 1 file(s)");
    }
    wait_nonempty("access.log"); /* the new file is written */
    close(stop_pipe[1]);
    assert_int_equal(read(count_pipe[0], &answered, sizeof(answered)), sizeof(answered));
    close(count_pipe[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    stop_with(SIGTERM); /* the last lines are written */
    seen = calloc((size_t)answered, 1);
    assert_non_null(seen);
    for (r = 0; r < 4; r++) {
        char *text = read_bytes(files[r], &len);
        long n;

        assert_non_null(text);
        n = tally_ids(files[r], text, seen, answered);
        print_message("      %s: %ld line(s)\n", files[r], n);
        assert_true(n > 0);
        total += n;
        free(text);
    }
    if (total != answered)
        fail_msg("%ld requests answered, %ld lines in the four files", answered, total);
    free(seen);
}

/* The access log's folder is gone (renamed): the reopen fails, says so,
 * and lines keep going to the file already open. */
static void logging_usr1_reopen_failure_keeps_the_old_file(void **state)
{
    char *text;
    size_t len;

    (void)state;
    test_dir_mkdir("logs");
    start("logs/access.log", false);
    must_burst(0, 1);
    rename_in_dir("logs", "gone");
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    wait_log(&D, "log: cannot reopen logs/access.log: No such file or directory; "
                 "still writing to the old file");
    must_burst(1, 1);
    stop_with(SIGTERM);
    text = read_bytes("gone/access.log", &len);
    assert_non_null(text);
    if (strstr(text, "\"GET /hello?n=0 ") == NULL || strstr(text, "\"GET /hello?n=1 ") == NULL)
        fail_msg("gone/access.log should hold both lines:\n%s", text);
    free(text);
    assert_true(size_of("logs") < 0); /* and nothing was made anew */
}

/* SIGUSR1 calls the reopen hook of a module that has one, and leaves a
 * module built against a smaller descriptor (no such field) alone. */
static void logging_usr1_calls_module_reopen_hooks(void **state)
{
    (void)state;
    test_dir_link_module(REOPEN_SO, "reopen");
    test_dir_link_module(SMALL_DESC_SO, "small_desc");
    write_file("asyncd.json", "{\"modules_dir\":\"modules\",\"log_level\":\"info\",\n"
                              " \"modules\":{\"reopen\":{},\"small_desc\":{},\"http\":{\"enabled\":false},"
                              "\"echo\":{\"enabled\":false}}}\n");
    daemon_start(&D, "asyncd.json", NULL);
    wait_log(&D, "reopen fixture running");
    wait_log(&D, "small descriptor module running");
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    wait_next(&D, "reopen hook called (1)");
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    wait_next(&D, "reopen hook called (2)");
    stop_with(SIGTERM);
}

/* Signals whose default action would end the daemon are logged and
 * ignored; it keeps serving.  SIGPIPE stays ignored without a word. */
static void logging_stray_signals_are_logged_never_fatal(void **state)
{
    static const struct {
        int sig;
        const char *name;
    } sigs[] = {
        {SIGWINCH, "SIGWINCH ("}, {SIGALRM, "SIGALRM ("},
        {SIGVTALRM, "SIGVTALRM ("}, {SIGPROF, "SIGPROF ("},   {SIGIO, "SIGPOLL ("},
        {SIGXFSZ, "SIGXFSZ ("},    {SIGXCPU, "SIGXCPU ("},   {SIGPWR, "SIGPWR ("},
    };
    char want[64];
    size_t i;

    (void)state;
    start("", false);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        assert_int_equal(kill(D.pid, sigs[i].sig), 0);
        wait_next(&D, sigs[i].name);
        snprintf(want, sizeof(want), "from pid %d: ignored", (int)getpid());
        wait_next(&D, want);
    }
    assert_int_equal(kill(D.pid, SIGRTMIN + 2), 0);
    wait_next(&D, "SIGRTMIN+2 (");
    assert_int_equal(kill(D.pid, SIGPIPE), 0);
    must_burst(0, 10); /* still serving */
    stop_with(SIGTERM);
    assert_null(strstr(D.log, "SIGPIPE"));
}

/* SIGQUIT stops like SIGTERM (nginx's habit): exit 0, last lines written. */
static void logging_sigquit_stops_gracefully(void **state)
{
    char *text;
    size_t len;

    (void)state;
    start("access.log", false);
    must_burst(0, 3);
    stop_with(SIGQUIT);
    assert_non_null(strstr(D.log, "Quit: stopping"));
    assert_non_null(strstr(D.log, "asyncd: stopped"));
    text = read_bytes("access.log", &len);
    assert_non_null(text);
    assert_int_equal(count_char(text, '\n'), 3);
    free(text);
}

/* The logrotate file shipped for /etc/logrotate.d parses, and rotates
 * with SIGUSR1. */
static void logging_logrotate_file_parses(void **state)
{
    char cmd[1024], out[8192] = "", state_file[512];
    size_t got = 0, n;
    FILE *p;
    int status;

    (void)state;
    if (system("command -v logrotate > /dev/null 2>&1") != 0) {
        SKIP("logrotate is not installed (make deps installs it)");
    }
    path_of(state_file, sizeof(state_file), "logrotate.state");
    snprintf(cmd, sizeof(cmd), "logrotate -d -s %s %s 2>&1", state_file, LOGROTATE_FILE);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (got < sizeof(out) - 1 && (n = fread(out + got, 1, sizeof(out) - 1 - got, p)) > 0)
        got += n;
    out[got] = '\0';
    status = pclose(p);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strstr(out, "error") != NULL)
        fail_msg("logrotate -d %s:\n%s", LOGROTATE_FILE, out);
    assert_non_null(strstr(out, "/var/log/asyncd/*.log"));
    p = fopen(LOGROTATE_FILE, "r");
    assert_non_null(p);
    got = fread(out, 1, sizeof(out) - 1, p);
    out[got] = '\0';
    fclose(p);
    assert_non_null(strstr(out, "USR1"));
}

/* access_log_format "json": one object per line, valid JSON whatever a
 * client sent (Python's json module reads every line), with the body
 * bytes that left and a request time. */
static void logging_access_log_json_lines_parse_and_carry_the_fields(void **state)
{
    char cmd[1024], path[600], out[4096] = "";
    struct resp r;
    char *text;
    size_t len;
    FILE *f;

    (void)state;
    write_config("access.log", false, ",\"access_log_format\":\"json\"");
    daemon_start(&D, "asyncd.json", NULL);
    D.port = number_after(&D, PORT_LINE);
    exchange("GET /hello?a=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: a\"b\\c\t\xff\r\n\r\n",
             false, &r, NULL);
    assert_status(&r, 200);
    resp_free(&r);
    exchange("GET /missing HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\n\r\n", false, &r,
             NULL);
    assert_status(&r, 404);
    resp_free(&r);
    stop_with(SIGTERM);
    text = read_bytes("access.log", &len);
    assert_non_null(text);
    print_message("      %s", text);
    assert_non_null(strstr(text, "\"method\":\"GET\",\"target\":\"/hello?a=1\","
                                 "\"version\":\"HTTP/1.1\",\"status\":200,\"bytes\":13,"));
    assert_non_null(strstr(text, "\"user_agent\":\"a\\\"b\\\\c\\u0009\\u00ff\""));
    assert_non_null(strstr(text, "\"status\":404,\"bytes\":10,"));
    assert_non_null(strstr(text, "\"referer\":\"http://r/\"}"));
    assert_non_null(strstr(text, "\"peer\":\"127.0.0.1\""));
    free(text);
    path_of(path, sizeof(path), "access.log");
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys\n"
             "for l in open(sys.argv[1]):\n"
             "    o = json.loads(l)\n"
             "    assert o[\"time\"].endswith(\"Z\") and o[\"request_time_us\"] >= 0\n"
             "print(\"ok\")' %s 2>&1", path);
    f = popen(cmd, "r");
    assert_non_null(f);
    len = fread(out, 1, sizeof(out) - 1, f);
    out[len] = '\0';
    if (pclose(f) != 0 || strcmp(out, "ok\n") != 0)
        fail_msg("python3 cannot read the lines as JSON:\n%s", out);
}

/* access_log_format as a template of nginx's variables; an unknown one
 * is refused by the check with its place. */
static void logging_access_log_template_fills_nginx_variables(void **state)
{
    char out[8192], cfg[600];
    struct resp r;
    char *text;
    size_t len;

    (void)state;
    write_config("access.log", false,
                 ",\"access_log_format\":\"$remote_addr [$status] $request_method $request_uri "
                 "$body_bytes_sent $http_user_agent $http_x_missing $host $$ $request_time\"");
    daemon_start(&D, "asyncd.json", NULL);
    D.port = number_after(&D, PORT_LINE);
    exchange("GET /hello?q=1 HTTP/1.1\r\nHost: site.test\r\nUser-Agent: t/1\r\n\r\n", false,
             &r, NULL);
    assert_status(&r, 200);
    resp_free(&r);
    stop_with(SIGTERM);
    text = read_bytes("access.log", &len);
    assert_non_null(text);
    print_message("      %s", text);
    assert_non_null(strstr(text, "127.0.0.1 [200] GET /hello?q=1 13 t/1 - site.test $$ 0."));
    free(text);
    write_config("access.log", false, ",\"access_log_format\":\"$status $bogus\"");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    assert_int_equal(run_to_end("-t", cfg, out, sizeof(out)), 78);
    assert_non_null(strstr(out, "modules.http.access_log_format: no variable $bogus"));
}

/* ================= 12. logs people can read ================= */

/* Every byte a client controls reaches the access log escaped: quotes,
 * backslashes, control bytes and bytes >= 0x80 as \xHH, so a line is one
 * line of printable ASCII whatever was sent. */
static void logging_access_log_escapes_quotes_controls_and_high_bytes(void **state)
{
    struct client *c;
    struct resp r;
    char *text = NULL;
    const unsigned char *u;
    size_t len;

    (void)state;
    start("access.log", false);
    exchange("GET /q\"x\\y\xc3\xa9 HTTP/1.1\r\nHost: x\r\n"
             "User-Agent: a\"b\tc\xff\\\r\nReferer: \x80r\"\r\n\r\n",
             false, &r, NULL);
    assert_status(&r, 404);
    resp_free(&r);
    /* a control byte in the target: refused (400), still one line */
    c = client_open(D.port);
    assert_true(client_send(c, "GET /a\x01\" 200 0 \"-\" \"forged HTTP/1.1\r\nHost: x\r\n\r\n"));
    if (client_response_ms(c, false, &r, IO_MS) == 0)
        resp_free(&r);
    client_close(c);
    stop_with(SIGTERM);
    text = read_bytes("access.log", &len);
    assert_non_null(text);
    print_message("      %s", text);
    if (strstr(text, "\"GET /q\\x22x\\x5Cy\\xC3\\xA9 HTTP/1.1\" 404 10 \"\\x80r\\x22\" "
                     "\"a\\x22b\\x09c\\xFF\\x5C\"\n") == NULL)
        fail_msg("the escaped line is not in the log:\n%s", text);
    assert_int_equal(count_char(text, '\n'), 2);
    for (u = (const unsigned char *)text; *u != '\0'; u++)
        if (*u != '\n' && (*u < ' ' || *u >= 0x7f))
            fail_msg("byte 0x%02x in the access log:\n%s", *u, text);
    assert_null(strstr(text, "\" 200 0 \"-\" \"forged"));
    free(text);
}

/* Like daemon_start, with JOURNAL_STREAM set to what js() makes of the
 * pipe that becomes the daemon's stderr (NULL: unset). */
static void start_with_journal_stream(const char *(*js)(const struct stat *pipe_st))
{
    const char *value;
    struct stat st;
    int fds[2];
    char cfg[600];

    write_config("", false, "");
    path_of(cfg, sizeof(cfg), "asyncd.json");
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    assert_int_equal(fstat(fds[1], &st), 0);
    value = js != NULL ? js(&st) : NULL;
    D.len = D.mark = 0;
    D.log[0] = '\0';
    D.pid = fork();
    assert_true(D.pid >= 0);
    if (D.pid == 0) {
        dup2(fds[1], 2);
        unsetenv("NOTIFY_SOCKET");
        if (value != NULL)
            setenv("JOURNAL_STREAM", value, 1);
        else
            unsetenv("JOURNAL_STREAM");
        execl(ASYNCD, ASYNCD, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    live = D.pid;
    close(fds[1]);
    D.err = fds[0];
    D.port = number_after(&D, PORT_LINE);
}

static const char *js_matching(const struct stat *st)
{
    static char s[64];

    snprintf(s, sizeof(s), "%llu:%llu", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino);
    return s;
}

static const char *js_stale(const struct stat *st)
{
    static char s[64];

    snprintf(s, sizeof(s), "%llu:%llu", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino + 1);
    return s;
}

/* Each line: "YYYY-MM-DD HH:MM:SS.mmm [level] " then the rest. */
static void assert_timestamped(const char *log)
{
    const char *p = log, *nl;
    struct tm tm;

    for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        const char *end = strptime(p, "%Y-%m-%d %H:%M:%S", &tm);

        if (end == NULL || end[0] != '.' || strspn(end + 1, "0123456789") != 3 ||
            strncmp(end + 4, " [", 2) != 0 || p[0] == '<')
            fail_msg("a line without a timestamp: %.*s\nlog:\n%s", (int)(nl - p), p, log);
    }
}

/* Not under systemd (JOURNAL_STREAM unset, or naming another stream than
 * fd 2, as after a redirect): each line starts with the local time and
 * the level; under it, with the <N> priority journald reads. */
static void logging_daemon_lines_carry_a_timestamp_unless_stderr_is_the_journal(void **state)
{
    (void)state;
    start_with_journal_stream(NULL);
    stop_with(SIGTERM);
    assert_non_null(strstr(D.log, " [info] asyncd: asyncd "));
    assert_non_null(strstr(D.log, " [notice] http: listening on"));
    assert_timestamped(D.log);

    start_with_journal_stream(js_stale);
    stop_with(SIGTERM);
    assert_timestamped(D.log);

    start_with_journal_stream(js_matching);
    stop_with(SIGTERM);
    if (D.log[0] != '<' || strstr(D.log, "<6>asyncd: asyncd ") == NULL ||
        strstr(D.log, "\n<5>http: listening on") == NULL || strstr(D.log, " [info] ") != NULL)
        fail_msg("expected journald's <N> prefixes and no timestamps:\n%s", D.log);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(logging_stderr_nobody_reads_never_stops_serving),
        T(logging_access_log_fifo_nobody_reads_drops_and_counts),
        T(logging_usr1_after_rename_loses_and_duplicates_no_line),
        T(logging_usr1_reopen_failure_keeps_the_old_file),
        T(logging_usr1_calls_module_reopen_hooks),
        T(logging_stray_signals_are_logged_never_fatal),
        T(logging_sigquit_stops_gracefully),
        T(logging_logrotate_file_parses),
        T(logging_access_log_escapes_quotes_controls_and_high_bytes),
        T(logging_access_log_json_lines_parse_and_carry_the_fields),
        T(logging_access_log_template_fills_nginx_variables),
        T(logging_daemon_lines_carry_a_timestamp_unless_stderr_is_the_journal),
    };

    signal(SIGPIPE, SIG_IGN);
    D.err = -1;
    return skips_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
