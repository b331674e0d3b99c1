/*
 * log.h - the error log, shared by master, mold and workers (each line is one
 * write(2) to an O_APPEND fd, so lines of different processes never mix).
 * Line format:  2026-11-24T07:50:00.123+0000 [info] [1234] master: message
 * Under systemd (stderr is the stream JOURNAL_STREAM names):
 *                <6>[info] [1234] master: message
 * (the syslog priority for journald, no time: the journal stamps lines).
 * log_warn/log_err append ": " strerror(errno); the *x variants do not.
 * fatal/fatalx log at error level and exit(1): start-up failures before
 * the loops, and out of memory on the loops too (buf_reserve, request.c).
 */
#ifndef PF_LOG_H
#define PF_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Parses "error", "warn", "info", "debug" (also "warning"). -1 if unknown. */
int log_level_parse(const char *s);

/* target: "stderr" or a file path (opened O_APPEND|O_CREAT, 0640).
 * 0 / -1 with errno; on error the previous target stays in use. */
int log_open(const char *target, int level);
/* Reopens the current file target (logrotate, SIGUSR1). 0 / -1. */
int log_reopen(void);
void log_set_level(int level);
int log_get_level(void);
/* "master", "worker 3": put before every message. Copied. */
void log_set_role(const char *role);

/* From now on, every error-level message (text and strerror, one per line)
 * is also appended to buf, NUL-terminated, as much as fits in len; NULL
 * stops it.
 * For a process that must pass its errors on (the mold to the master). */
void log_capture(char *buf, size_t len);
/* The same, and those messages are no longer written to the log: for
 * preforkd -t, which prints them in its own format. NULL stops it. */
void log_capture_only(char *buf, size_t len);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(int level, int with_errno, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
