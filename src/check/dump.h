/*
 * dump.h - preforkd -T: the configuration in effect, as an INI file that
 * preforkd reads back as the same configuration. Runs only in the process
 * of preforkd -T (main.c), after check.c.
 */
#ifndef PF_DUMP_H
#define PF_DUMP_H

#include <stdio.h>

#include "config.h"

/* Writes every section and key of c to f, defaults filled in: workers =
 * auto as the number it came to, max_rss / max_rss_hard as written ("auto",
 * "80%") with what they come to in a comment (c resolved by check_run),
 * keys without a value and without a default as comments. */
void dump_config(FILE *f, const struct config *c);

#endif
