/*
 * logcap.c - the log in a memfd for unit tests (see logcap.h). log_open
 * reopens the memfd through /proc/self/fd, so its fd stays the log's and
 * ours stays for reading (pread: the offset of neither moves).
 */
#include "logcap.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int cap_fd = -1;

void logcap_start(int level)
{
    char path[64];

    if (cap_fd >= 0)
        close(cap_fd);
    cap_fd = memfd_create("pf-test-log", MFD_CLOEXEC);
    ck_assert_int_ge(cap_fd, 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", cap_fd);
    ck_assert_int_eq(log_open(path, level), 0);
}

char *logcap_text(void)
{
    struct stat st;
    char *text;
    size_t got = 0;

    ck_assert_int_ge(cap_fd, 0);
    ck_assert_int_eq(fstat(cap_fd, &st), 0);
    text = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(text);
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(cap_fd, text + got, (size_t)st.st_size - got, (off_t)got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    text[got] = '\0';
    return text;
}

int logcap_count(const char *s)
{
    char *text = logcap_text(), *line = text, *nl;
    int n = 0;

    for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        n += strstr(line, s) != NULL;
    }
    free(text);
    return n;
}

int logcap_lines(void)
{
    return logcap_count("");
}
