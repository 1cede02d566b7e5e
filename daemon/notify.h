/* daemon/notify — the sd_notify protocol, spoken directly: one datagram
 * to $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).  The
 * protocol is stable and systemd advises against linking libsystemd for it.
 * Without NOTIFY_SOCKET it does nothing.  In a worker process the message
 * goes to the master instead (daemon/worker.h), which speaks for all. */
#ifndef ASYNCD_NOTIFY_H
#define ASYNCD_NOTIFY_H

/* Sends the formatted state ("READY=1", "STATUS=...", "STOPPING=1", ...):
 * 0, or -1 if there is no socket or sending failed. */
int asyncd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "RELOADING=1" with the MONOTONIC_USEC systemd asks for with it. */
int asyncd_notify_reloading(void);

#endif
