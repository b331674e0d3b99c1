/*
 * logcap.h - the error log (log.h) of the code under test, caught in memory
 * for a unit test to read: a memfd that log_open writes to, so that a child
 * the test forks (before or after) logs into it as well. Runs in the test
 * process. Every function asserts (Check) on failure.
 */
#ifndef PF_TEST_LOGCAP_H
#define PF_TEST_LOGCAP_H

/* From now on, the log at level goes to a fresh, empty memory file. */
void logcap_start(int level);
/* Everything logged since logcap_start (by this process or its children),
 * NUL-terminated; malloc'd. */
char *logcap_text(void);
/* Lines logged since logcap_start that contain s. */
int logcap_count(const char *s);
/* Log lines since logcap_start. */
int logcap_lines(void);

#endif
