/* daemon/inherit — listening sockets handed to asyncd at start-up in
 * systemd's format (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID): by systemd's
 * socket activation (systemd/asyncd.socket, systemd-socket-activate), or
 * by the asyncd this one upgrades (daemon/upgrade.h). */
#ifndef ASYNCD_INHERIT_H
#define ASYNCD_INHERIT_H

/* When LISTEN_PID is this process: checks each descriptor 3.. of
 * LISTEN_FDS (a listening IPv4 or IPv6 stream socket; anything else is
 * logged by its number and name and closed) and puts the good ones into
 * the listener table under their names.  Unsets LISTEN_* in every case,
 * so that the modules' children do not inherit them.  Before any thread
 * exists (setenv). */
void asyncd_inherit_listeners(void);

#endif
