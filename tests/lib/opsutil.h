/*
 * opsutil.h - helpers for the operations tests (test_ops.c, test_ctl.c):
 * a client of the admin endpoint's unix socket, a strict JSON validator,
 * reading numbers out of /stats, and running a program (preforkctl) with
 * its output captured. Runs in the test process. Every wait has a deadline.
 */
#ifndef PF_TEST_OPSUTIL_H
#define PF_TEST_OPSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* GET path from the admin endpoint on the unix socket sock: the body
 * (malloc'd) with *status set, or NULL (no complete answer in timeout). */
char *ops_admin_get(const char *sock, const char *path, int *status, double timeout);
/* GET /stats (200) or NULL. */
char *ops_stats(const char *sock);

/* True when text is exactly one JSON value (RFC 8259, strict: no trailing
 * commas, no control bytes in strings, numbers by the grammar). Otherwise
 * false with the reason and offset in why. */
bool ops_json_valid(const char *text, char *why, size_t len);

/* The number after the first "key": in text, or -1. */
double ops_num(const char *text, const char *key);
/* Calls fn for each worker object of a /stats body ({"slot": ...}). */
void ops_each_worker(const char *json, void (*fn)(const char *obj, void *), void *arg);

/* `promtool check metrics` (Debian's prometheus package) on text, a
 * /metrics body written to dir/metrics.txt: fails the test when promtool
 * says anything at all (a lint is a failure too). Without promtool: fails
 * when PREFORKD_REQUIRE_PROMTOOL=1, else says so on one line and returns
 * false. True when promtool accepted the text. */
bool ops_promtool_check(const char *dir, const char *text);

/* Runs argv (argv[0] a path) with stdout and stderr captured into *out
 * (malloc'd, NUL-terminated). Returns the exit code, or -1 when it did not
 * exit within timeout (it is then killed). */
int ops_run(const char *const *argv, char **out, double timeout);

#endif
