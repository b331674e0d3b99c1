/*
 * httpfile.c - the .http corpus notation decoder (see httpfile.h).
 * Runs in the test process. Returns NULL / -1 with errno on I/O errors.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "httpfile.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *httpfile_load(const char *path, size_t *len)
{
    size_t n, o = 0;
    char *text = harness_read_file(path, &n), *out;

    if (text == NULL)
        return NULL;
    out = malloc(n + 1);
    if (out == NULL) {
        free(text);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '\n' || c == '\r')
            continue; /* layout only: bytes are written as escapes */
        if (c == '\\' && i + 1 < n) {
            char e = text[++i];
            if (e == 'r')
                c = '\r';
            else if (e == 'n')
                c = '\n';
            else if (e == 't')
                c = '\t';
            else if (e == '0')
                c = '\0';
            else if (e == 'x' && i + 2 < n && hexval(text[i + 1]) >= 0 &&
                     hexval(text[i + 2]) >= 0) {
                c = (char)(hexval(text[i + 1]) * 16 + hexval(text[i + 2]));
                i += 2;
            } else
                c = e;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    free(text);
    if (len)
        *len = o;
    return out;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int httpfile_each(const char *dir, void (*fn)(const char *path, void *arg), void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".http") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            if (names == NULL)
                abort();
        }
        if (asprintf(&names[n++], "%s/%s", dir, e->d_name) < 0)
            abort();
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        fn(names[i], arg);
        free(names[i]);
    }
    free(names);
    return (int)n;
}
