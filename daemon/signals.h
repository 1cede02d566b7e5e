/* daemon/signals — which signals asyncd takes in through its signalfd,
 * and their names for the log. */
#ifndef ASYNCD_SIGNALS_H
#define ASYNCD_SIGNALS_H

#include <async_io.h>

#include <signal.h>
#include <stddef.h>

/* Fills set with every signal asyncd reads (see signals.c) and blocks them
 * in the calling thread.  Call before any other thread exists: threads
 * inherit the mask, and a signal not blocked in every thread is delivered
 * to one of them with its default action instead of reaching the
 * signalfd.  0, or -1 with errno. */
int asyncd_signals_block(sigset_t *set);

/* The same set, not blocked: for a child that must keep it blocked
 * across its exec (a worker process, master.c). */
void asyncd_signals_set(sigset_t *set);

/* What asyncd_signals_pump reads and where it sends. */
struct asyncd_signal_pump {
    int sigfd;                  /* non-blocking signalfd of asyncd_signals_block's set */
    async_channel *events;      /* of ints */
    int broken;                 /* sent once when the signalfd cannot be read */
};

/* A fiber (arg: struct asyncd_signal_pump): sends the number of each
 * signal the daemon acts on (SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT,
 * SIGQUIT) on events, in order; logs any other, naming its sender, and
 * drops it.  Ends when cancelled, or after sending broken. */
void *asyncd_signals_pump(void *arg);

/* "SIGUSR2", "SIGRTMIN+3", "signal 70": into buf, returned. */
const char *asyncd_signal_name(int sig, char *buf, size_t len);

#endif
