/* daemon/signals — which signals asyncd takes in through its signalfd,
 * and their names for the log. */
#ifndef ASYNCD_SIGNALS_H
#define ASYNCD_SIGNALS_H

#include <signal.h>
#include <stddef.h>

/* Fills set with every signal asyncd reads (see signals.c) and blocks them
 * in the calling thread.  Call before any other thread exists: threads
 * inherit the mask, and a signal not blocked in every thread is delivered
 * to one of them with its default action instead of reaching the
 * signalfd.  0, or -1 with errno. */
int asyncd_signals_block(sigset_t *set);

/* "SIGUSR2", "SIGRTMIN+3", "signal 70": into buf, returned. */
const char *asyncd_signal_name(int sig, char *buf, size_t len);

#endif
