/* daemon/tally.h — counts of what the daemon did (tally.c). */
#ifndef ASYNCD_TALLY_H
#define ASYNCD_TALLY_H

#include <stdbool.h>

/* A SIGHUP reload was applied (true) or rejected (false). */
void asyncd_tally_reload(bool applied);
/* A module that failed is being run again. */
void asyncd_tally_restart(void);

#endif
