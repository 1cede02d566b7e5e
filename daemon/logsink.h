/* daemon/logsink — log lines leave the workers: they are queued in memory
 * per destination and written by one thread of the daemon, so a disk that
 * stalls or a pipe nobody reads never blocks a fiber (see logsink.c).
 *
 * A destination is "stderr" or a path, relative to the working directory
 * (asyncd works in its config file's folder).  Every user of one
 * destination shares one sink, so their lines never interleave mid-line. */
#ifndef ASYNCD_LOGSINK_H
#define ASYNCD_LOGSINK_H

#include <async_io/module.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A handle on a sink, as modules see it (async_module_logfile). */
typedef struct async_module_logfile asyncd_logfile;

/* Starts the writer thread and the stderr sink: from then on the daemon's
 * own log lines go through it.  Call with every signal the daemon reads
 * already blocked (the thread inherits the mask).  0, or -1 with errno
 * (EBUSY: a stop gave up on the previous writer, stuck in a write); then
 * log lines keep being written directly. */
int asyncd_logsink_start(void);

/* Writes what is queued, everywhere, for up to ms (a writer stuck on a
 * pipe nobody reads gives up then, and says so if stderr takes it), and
 * stops the writer.  Lines appended afterwards are refused: daemon lines
 * go directly to stderr again, module lines are dropped. */
void asyncd_logsink_stop(int64_t ms);

/* Asks the writer to reopen every path sink (SIGUSR1): what was queued
 * before goes to the old file, then the path is opened anew, the
 * descriptor swapped between two chunk writes and the old one closed; a
 * path that cannot be opened is logged and keeps its old descriptor.
 * Returns at once; the writer logs "log: reopened N file(s)". */
void asyncd_logsink_reopen(void);

/* A handle on dest's sink (made on first use, shared after): NULL with
 * EINVAL (NULL or empty dest), EAGAIN (the writer is not running), ENOMEM
 * or open(2)'s errno.  Any thread; opens the file on first use. */
asyncd_logfile *asyncd_logsink_open(const char *dest);

/* Queues len bytes (whole lines; a missing final '\n' is added).  Never
 * blocks: with the sink's queue full, or len above 64 KiB, the lines are
 * dropped and counted.  Any thread.  false when the writer has stopped
 * (nothing queued). */
bool asyncd_logsink_write(asyncd_logfile *f, const char *line, size_t len);

/* Lines f had dropped so far. */
uint64_t asyncd_logsink_dropped(const asyncd_logfile *f);

/* Releases f; what it queued is still written.  Never blocks. */
void asyncd_logsink_close(asyncd_logfile *f);

/* For a process about to die of a fault (crash.c): asks the writer to
 * write everything queued now, as a daemon line would.  Only an atomic
 * store and a write(2) to the writer's eventfd, so a signal handler may
 * call it; it does not wait.  false when no writer runs. */
bool asyncd_logsink_kick(void);

/* One of the daemon's own lines, through the stderr sink: false when the
 * writer is not running (the caller then writes it itself). */
bool asyncd_logsink_stderr(const char *line, size_t len);

#endif
