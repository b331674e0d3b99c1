/*
 * proctitle.h - what `ps` shows for each preforkd process
 * ("preforkd: master -c /etc/preforkd.ini", "preforkd: worker 3 [gen 1]")
 * and the matching 15-byte thread name ("preforkd-master", "preforkd-w3").
 * Used by the master (at start), the mold and workers (after fork).
 */
#ifndef PF_PROCTITLE_H
#define PF_PROCTITLE_H

/* Call once, first thing in main, before anything reads environ or keeps
 * pointers into argv strings. Moves the argv and environ strings to the
 * heap (argv[i], environ[i] and program_invocation_name are repointed to the
 * copies, so getopt, getenv, setenv and a later execv(argv[0], argv) keep
 * working) and takes over the original contiguous area for the title.
 * On allocation failure the title is left alone (proctitle_set then only
 * sets the thread name). Not thread-safe; never blocks. */
void proctitle_init(int argc, char **argv);

/* Sets the title to "preforkd: " + the formatted text (text that already
 * starts with "preforkd" is used as is), truncated to the space argv and
 * environ occupied, and pads the rest with NULs. Also sets the thread name
 * (prctl PR_SET_NAME): "preforkd-" + the first word, with "worker N"
 * shortened to "wN": "preforkd-master", "preforkd-w3". Never blocks. */
void proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
