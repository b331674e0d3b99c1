/*
 * buf.h - a growable byte buffer (read and write buffers of connections,
 * response heads). Any process. Allocation failure aborts: a worker that
 * cannot allocate a few KiB cannot serve, and the master replaces it.
 */
#ifndef PF_BUF_H
#define PF_BUF_H

#include <stddef.h>
#include <string.h>

struct buf {
    char *p;
    size_t len; /* bytes in use, from p */
    size_t cap;
};

/* Makes room for `more` bytes after len; returns p + len. */
char *buf_reserve(struct buf *b, size_t more);
/* Frees the memory; b is left empty and reusable. */
void buf_free(struct buf *b);
/* Drops the first n bytes (memmove). */
void buf_consume(struct buf *b, size_t n);
/* Shrinks the allocation to `keep` bytes when it is larger and len fits. */
void buf_shrink(struct buf *b, size_t keep);

/* Appends printf's output. */
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void buf_append(struct buf *b, const void *data, size_t n)
{
    if (b->cap - b->len < n)
        buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

#endif
