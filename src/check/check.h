/*
 * check.h - preforkd -t: after the file was read (config.c), every other
 * check start-up makes, short of serving: memory shares resolved, [server]
 * user and group, the log files, the pidfile, each listening address and
 * [admin] listen, the app module and its [app] keys. Runs only in the
 * process of preforkd -t / -T (main.c), before any daemon exists.
 */
#ifndef PF_CHECK_H
#define PF_CHECK_H

#include "config.h"

/* Runs every check on c (which it resolves: max_rss shares) and prints on
 * stderr what it found: notes and warnings as they come, then the errors
 * in line order, one per line as "FILE:LINE: [section] key: message", then
 * "preforkd: FILE: configuration invalid" (returns 78, EX_CONFIG) or
 * "preforkd: FILE: configuration ok" (returns 0). Leaves nothing behind:
 * what it creates to try (a log file, a unix socket) it removes, what it
 * binds it closes. Blocks on the file system, /proc and the module's
 * load(). */
int check_run(struct config *c);

#endif
