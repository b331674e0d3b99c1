/*
 * httpfile.h - reads the request corpus notation of tests/conformance
 * (Gunicorn's .http files): real newlines are ignored, and \r \n \t \0 and
 * \xHH stand for those bytes. Used by test_httpmsg (parser level) and
 * test_conformance (against the daemon). Runs in the test process.
 */
#ifndef PF_TEST_HTTPFILE_H
#define PF_TEST_HTTPFILE_H

#include <stddef.h>

/* The decoded bytes of the file at path (malloc'd, NUL-terminated, *len
 * excludes the NUL), or NULL with errno set. */
char *httpfile_load(const char *path, size_t *len);

/* Calls fn(path, arg) for each "*.http" file in dir, in name order.
 * Returns how many, or -1 if dir cannot be read. */
int httpfile_each(const char *dir, void (*fn)(const char *path, void *arg), void *arg);

#endif
