/* daemon/crash.c — see crash.h.
 *
 * What a handler may do.  Only async-signal-safe calls: write(2),
 * sigaction, raise, nanosleep, and plain memory reads.  No printf (the
 * line is built by hand), no malloc, no dladdr (it takes the loader's
 * lock, which the faulting thread may hold): the modules' address spans
 * and groups come from modmap.h, a lock-free copy the daemon publishes.
 * async_runtime_self, async_worker_id and async_worker_watch read a
 * thread-local and relaxed atomics only.
 *
 * The fiber stack overflow handler of the runtime (runtime/fiber/
 * overflow.c) is installed by async_runtime, after these: it keeps SIGSEGV
 * and SIGBUS, reports an overflow itself and aborts (the abort then comes
 * here, and its line names the fiber's module), and hands every other
 * fault to the handler that was there before, this one.
 *
 * The access log and every other queued line: the handler asks the log
 * writer thread to write out what is queued (asyncd_logsink_kick, an
 * eventfd write) and waits FLUSH_MS for it, no more; the lines of a sink
 * whose lock the faulting thread holds are lost.  Then the default action
 * is restored and the signal raised again, so the process dies of it. */
#include "crash.h"

#include "log.h"
#include "logsink.h"
#include "modmap.h"

#include <async_io.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_MS 100            /* what the log writer gets before the process dies */

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static const char *const fatal_name[] = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT"};
static _Atomic int dying;       /* the first fault's handler runs; later ones only die */
static bool journal;            /* stderr is the journal: "<2>" says the priority */

/* ---- a line without printf ---- */

struct line {
    char buf[768];
    size_t len;
};

static void put(struct line *l, const char *s)
{
    while (*s != '\0' && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = *s++;
}

static void put_hex(struct line *l, uintptr_t v)
{
    char tmp[2 + 2 * sizeof(v)];
    int n = 0;

    put(l, "0x");
    do
        tmp[n++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    while (n > 0 && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = tmp[--n];
}

static void put_uint(struct line *l, unsigned long v)
{
    char tmp[24];
    int n = 0;

    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = tmp[--n];
}

/* "FILE+0xOFF in module NAME", or the bare address. */
static void put_code(struct line *l, uintptr_t addr)
{
    struct asyncd_modmap_entry e;

    if (!asyncd_modmap_by_addr(addr, &e)) {
        put_hex(l, addr);
        return;
    }
    put(l, e.file);
    put(l, "+");
    put_hex(l, addr - e.base);
    put(l, " in module ");
    put(l, e.name);
}

/* "; worker N was running a fiber of module NAME, entry FILE+0xOFF". */
static void put_fiber(struct line *l)
{
    async_rt *rt = async_runtime_self();
    int id = async_worker_id();
    struct async_worker_watch ww;
    struct asyncd_modmap_entry g, a;
    bool in_group, in_code;

    if (rt == NULL || id < 0 || async_worker_watch(rt, (unsigned)id, &ww) != 0) {
        put(l, "; not on a worker");
        return;
    }
    put(l, "; worker ");
    put_uint(l, (unsigned long)id);
    if (ww.fn == NULL) {
        put(l, " was in its scheduler");
        return;
    }
    in_group = asyncd_modmap_by_group(ww.group, &g);
    in_code = asyncd_modmap_by_addr((uintptr_t)ww.fn, &a);
    put(l, " was running a fiber of ");
    if (in_group || in_code) {
        put(l, "module ");
        put(l, in_group ? g.name : a.name);
    } else {
        put(l, "the daemon");
    }
    put(l, ", entry ");
    if (in_group && !in_code) /* the supervisor that calls run (modules.c) */
        put(l, "its run, "), put_code(l, (uintptr_t)g.run);
    else
        put_code(l, (uintptr_t)ww.fn);
}

static void say(int i, const siginfo_t *si, void *uc)
{
    struct line l = {.len = 0};
    uintptr_t pc = asyncd_crash_pc(uc);

    if (journal)
        put(&l, "<2>");
    put(&l, "asyncd: fatal ");
    put(&l, fatal_name[i]);
    if (si->si_code <= 0 && si->si_pid == getpid()) { /* abort(), raise() */
        put(&l, " (raised by asyncd itself: abort() or an assertion)");
    } else if (si->si_code <= 0) { /* kill(2) */
        put(&l, " (sent by pid ");
        put_uint(&l, (unsigned long)si->si_pid);
        put(&l, ")");
    } else {
        put(&l, " (address ");
        put_hex(&l, (uintptr_t)si->si_addr);
        put(&l, ")");
        if (pc != 0) {
            put(&l, " at ");
            put_code(&l, pc);
        }
    }
    put_fiber(&l);
    put(&l, "\n");
    if (l.buf[l.len - 1] != '\n')
        l.buf[l.len - 1] = '\n';
    (void)!write(STDERR_FILENO, l.buf, l.len);
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    int i, err = errno;

    for (i = 0; fatal[i] != sig; i++)
        ;
    if (atomic_exchange(&dying, 1) == 0) {
        say(i, si, uc);
        if (asyncd_logsink_kick()) {
            struct timespec ts = {0, FLUSH_MS * 1000000L};

            nanosleep(&ts, NULL);
        }
    }
    /* The default action, for the signal raised again at once (it is
     * blocked in here, unless a handler with SA_NODEFER called us: then it
     * ends the process here), or for the fault that repeats when we
     * return. */
    signal(sig, SIG_DFL);
    raise(sig);
    errno = err;
}

void asyncd_crash_install(void)
{
    struct sigaction sa;
    size_t i;

    journal = asyncd_log_to_journal();
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        sigaction(fatal[i], &sa, NULL);
}
