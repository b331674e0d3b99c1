/*
 * sdnotify.h - the systemd notification protocol (sd_notify(3)): datagrams
 * of KEY=VALUE lines to $NOTIFY_SOCKET. Master only. Every call is a no-op
 * when the daemon was not started with NOTIFY_SOCKET.
 */
#ifndef PF_SDNOTIFY_H
#define PF_SDNOTIFY_H

#include <stdbool.h>

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID. 0, or -1 (logged)
 * when NOTIFY_SOCKET is set but unusable. The variables stay in the
 * environment: a new master after a binary upgrade needs them. */
int sdnotify_init(void);
/* Sends one datagram ("READY=1\nSTATUS=..."); best effort, never blocks. */
void sdnotify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), 0 if none. */
double sdnotify_watchdog_interval(void);
/* "MONOTONIC_USEC=..." value for RELOADING=1 (Type=notify-reload). */
unsigned long long sdnotify_monotonic_usec(void);

#endif
