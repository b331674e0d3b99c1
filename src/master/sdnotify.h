/*
 * sdnotify.h - the systemd notification protocol (sd_notify(3)): datagrams
 * of KEY=VALUE lines to $NOTIFY_SOCKET. Master only. Every call is a no-op
 * when the daemon was not started with NOTIFY_SOCKET.
 */
#ifndef PF_SDNOTIFY_H
#define PF_SDNOTIFY_H

#include <stdbool.h>
#include <sys/types.h>

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID. 0, or -1 (logged)
 * when NOTIFY_SOCKET is set but unusable. The variables stay in the
 * environment: a new master after a binary upgrade needs them. heir_of: the
 * old master when this one is its binary upgrade (it takes over the
 * watchdog that systemd set for that pid), else 0. */
int sdnotify_init(pid_t heir_of);
/* Sends one datagram ("READY=1\nSTATUS=..."); best effort, never blocks. */
void sdnotify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A binary upgrade's new master runs (on) or is gone (off): while on, this
 * master is no longer the service's main process and sends nothing but
 * WATCHDOG=1, so that its STOPPING=1 or STATUS= cannot be taken for the
 * service's (NotifyAccess=all). */
void sdnotify_heir(bool on);
/* Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), 0 if none. */
double sdnotify_watchdog_interval(void);
/* "MONOTONIC_USEC=..." value for RELOADING=1 (Type=notify-reload). */
unsigned long long sdnotify_monotonic_usec(void);

#endif
