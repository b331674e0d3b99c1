/*
 * config_errors.c - the INI parser's error list: every problem found in a
 * file, kept with its line and handed back as one text sorted by line.
 * Pure (no logging): runs wherever config_load does, the master (start,
 * SIGHUP), preforkd -t and preforkctl. Owns struct parser's errs.
 * Convention: nothing fails; out of memory sets p->oom (config.c reports it).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* See config_int.h. */
void config_errorf(struct parser *p, int line, const char *fmt, ...)
{
    struct error *grown;
    char *msg, *text;
    va_list ap;
    int n;

    p->nerrors++;
    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->oom = true;
        return;
    }
    if (line > 0)
        n = asprintf(&text, "%s:%d: %s\n", p->path, line, msg);
    else
        n = asprintf(&text, "%s: %s\n", p->path, msg);
    free(msg);
    grown = n < 0 ? NULL : realloc(p->errs, (p->nerrs + 1) * sizeof(*grown));
    if (grown == NULL) {
        if (n >= 0)
            free(text);
        p->oom = true;
        return;
    }
    p->errs = grown;
    p->errs[p->nerrs] = (struct error){line, (int)p->nerrs, text};
    p->nerrs++;
}

static int error_cmp(const void *a, const void *b)
{
    const struct error *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* See config_int.h. */
char *config_errors_text(struct parser *p)
{
    size_t len = 0, off = 0, n = p->nerrs;
    char *text = NULL;

    if (n > 0)
        qsort(p->errs, n, sizeof(*p->errs), error_cmp);
    for (size_t i = 0; i < n; i++)
        len += strlen(p->errs[i].text);
    if (n > 0)
        text = malloc(len + 1);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(p->errs[i].text);
        if (text != NULL)
            memcpy(text + off, p->errs[i].text, l);
        off += l;
        free(p->errs[i].text);
    }
    if (text != NULL)
        text[len] = '\0';
    free(p->errs);
    p->errs = NULL;
    p->nerrs = 0;
    return text;
}

/* See config_int.h. */
const char *config_show(const char *s, char *out)
{
    size_t o = 0;

    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i == SHOW_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\')
            o += (size_t)sprintf(out + o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

/* See config_int.h. */
void config_bad(struct parser *p, const char *key, const char *what, const char *got)
{
    char buf[SHOW_BUF];

    config_errorf(p, p->lineno, "[%s] %s: expected %s, got \"%s\"", p->secname, key, what,
                  config_show(got, buf));
}

/* See config_int.h. */
char *config_xstrdup(struct parser *p, const char *s)
{
    char *d = strdup(s);

    if (d == NULL)
        p->oom = true;
    return d;
}
