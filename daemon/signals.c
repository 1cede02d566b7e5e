/* daemon/signals — every signal an operator (or a stray `kill`) may send
 * that would otherwise end asyncd, taken in through the signalfd instead.
 *
 * Read and acted on (main.c): SIGHUP reloads, SIGUSR1 reopens the log
 * files, SIGUSR2 upgrades the binary (upgrade.h), SIGTERM, SIGINT and
 * SIGQUIT stop gracefully.
 *
 * Read and logged, nothing else: the signals whose default action
 * terminates the process or dumps core but that report no fault of the
 * process's own — SIGALRM, SIGVTALRM, SIGPROF, SIGIO (SIGPOLL),
 * SIGXCPU, SIGXFSZ, SIGPWR, SIGSTKFLT and the realtime signals
 * SIGRTMIN..SIGRTMAX — and SIGWINCH (ignored by default; logged because it
 * costs nothing and tells an operator their signal arrived).  With SIGXFSZ
 * blocked, a write past RLIMIT_FSIZE fails with EFBIG (a log line lost)
 * instead of killing the daemon; SIGXCPU is logged each second until the
 * hard CPU limit's SIGKILL.
 *
 * Left alone:
 *   - the synchronous faults SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT and
 *     SIGSYS: blocking one does not stop the kernel killing the process
 *     when the fault is real, it only hides a `kill -SEGV`; crash reports
 *     are another part's business.
 *   - SIGTRAP: a fault too (a breakpoint instruction, a single-step), and
 *     it belongs to debuggers: under ptrace the tracer sees it whatever
 *     the mask, but a program that traps on purpose (__builtin_debugtrap,
 *     a sanitizer) expects the default action, not a log line.  Nobody
 *     sends it by habit.
 *   - SIGPIPE: ignored (SIG_IGN), so writes to a vanished peer fail with
 *     EPIPE.
 *   - SIGKILL and SIGSTOP (cannot be caught); SIGTSTP, SIGTTIN and SIGTTOU
 *     (job control: Ctrl-Z under `make run` still stops the daemon);
 *     SIGCHLD, SIGCONT and SIGURG (ignored or harmless by default).
 *   - glibc's two internal realtime signals below SIGRTMIN (thread
 *     cancellation, setxid): sigaddset refuses them anyway.
 *
 * The mask is inherited by every thread the daemon starts (the runtime's
 * workers, the blocking-call helpers, the log writer), which is why it is
 * set first.  It would be inherited by a child process across fork and
 * exec too: the one process the daemon starts, the new binary of an
 * upgrade, gets the mask (and SIGPIPE's disposition) restored before its
 * exec (upgrade.c). */
#include "signals.h"

#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static const int taken[] = {
    SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2,                  /* acted on */
    SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGXCPU, SIGXFSZ, SIGPWR, /* logged */
    SIGSTKFLT, SIGWINCH,
};

void asyncd_signals_set(sigset_t *set)
{
    size_t i;
    int sig;

    sigemptyset(set);
    for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        sigaddset(set, taken[i]);
    for (sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
        sigaddset(set, sig);
}

int asyncd_signals_block(sigset_t *set)
{
    asyncd_signals_set(set);
    return sigprocmask(SIG_BLOCK, set, NULL);
}

const char *asyncd_signal_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;

    if (abbrev != NULL)
        snprintf(buf, len, "SIG%s", abbrev);
    else if (sig == SIGRTMIN)
        snprintf(buf, len, "SIGRTMIN");
    else if (sig > SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* A signal the daemon does not act on: logged here, where the sender is
 * known, and ignored.  True for those. */
static bool stray_signal(const struct signalfd_siginfo *si)
{
    int sig = (int)si->ssi_signo;
    char name[32];

    switch (sig) {
    case SIGHUP:
    case SIGUSR1:
    case SIGUSR2:
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        return false;
    default:
        asyncd_log(ASYNC_LOG_WARNING, "%s (%s) from pid %u: ignored",
                   asyncd_signal_name(sig, name, sizeof(name)), strsignal(sig),
                   (unsigned)si->ssi_pid);
        return true;
    }
}

void *asyncd_signals_pump(void *arg)
{
    struct asyncd_signal_pump *p = arg;
    struct signalfd_siginfo si;
    int ev;

    for (;;) {
        ssize_t n = read(p->sigfd, &si, sizeof(si));

        if (n == (ssize_t)sizeof(si)) {
            if (!stray_signal(&si)) {
                ev = (int)si.ssi_signo;
                async_channel_send(p->events, &ev);
            }
        } else if (!(n < 0 && errno == EAGAIN && async_fd_wait(p->sigfd, ASYNC_READABLE) == 0)) {
            break;
        }
    }
    if (errno != ECANCELED) {
        asyncd_log(ASYNC_LOG_ERROR, "reading signals: %s", strerror(errno));
        async_channel_send(p->events, &p->broken);
    }
    return NULL;
}
