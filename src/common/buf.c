/*
 * buf.c - growable byte buffers. Any process; no I/O.
 * Capacity doubles (from 1 KiB) so appends are amortised O(1).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "log.h"

char *buf_reserve(struct buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return b->p + b->len;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        fatal("buf: cannot grow a buffer to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return b->p + b->len;
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void buf_shrink(struct buf *b, size_t keep)
{
    if (b->cap <= keep || b->len > keep)
        return;
    char *p = realloc(b->p, keep);
    if (p != NULL) {
        b->p = p;
        b->cap = keep;
    }
}

/* See buf.h. */
void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf_reserve(b, 256), 256, fmt, ap);
    va_end(ap);
    if (n >= 256) {
        va_start(ap, fmt);
        vsnprintf(buf_reserve(b, (size_t)n + 1), (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (n > 0)
        b->len += (size_t)n;
}
