/*
 * config_ini.c - the INI file read line by line through inih: this reader
 * counts lines (Debian's inih hands the handler none), reads section
 * headers itself, and reports what inih skips without a word (overlong
 * lines, "name: value", lines it cannot split). Runs wherever config_load
 * does: the master, preforkd -t and preforkctl. Owns inih's options.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"

/* inih's line buffer. With ini_use_stack = false and no realloc inih reads
 * lines into one heap buffer of ini_initial_alloc bytes (ini_max_line alone
 * changes nothing then), so both are set. Longer lines are errors. */
#define LINE_BYTES 65536

/* See config_int.h. */
void config_bad_line(struct parser *p)
{
    char buf[SHOW_BUF];

    p->nsyntax++;
    config_errorf(p, p->pending_line,
                  "expected \"key = value\" or "
                  "\"[section]\"%s, got \"%s\"",
                  p->pending_indented
                      ? " (an indented line does not continue the one above)"
                      : "",
                  config_show(p->pending, buf));
    p->pending_line = 0;
}

/* The first of chars in s, or of an inline comment (";" or "#" after a
 * blank), or the end of s: where inih stops reading a name. */
static const char *scan_to(const char *s, const char *chars)
{
    bool was_space = false;

    while (*s && !strchr(chars, *s) && !(was_space && strchr(";#", *s))) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* A line starting with '[', read as inih reads it (the name ends at ']' or
 * at an inline comment) without touching the buffer inih parses. */
static void section_line(struct parser *p, const char *s)
{
    char name[SHOW_MAX + UPSTREAM_NAME_MAX], buf[SHOW_BUF];
    const char *end = scan_to(s + 1, "]"), *after;
    size_t len;

    p->sec = SEC_IGNORE;
    if (*end != ']') {
        p->nsyntax++;
        config_errorf(p, p->lineno,
                      "expected \"]\" to close the section "
                      "header, got \"%s\"",
                      config_show(s, buf));
        return;
    }
    for (after = end + 1; isspace((unsigned char)*after); after++)
        ;
    if (*after != '\0' && !strchr(";#", *after))
        config_errorf(p, p->lineno, "unexpected text after \"]\": \"%s\"",
                      config_show(after, buf));
    len = (size_t)(end - s - 1);
    if (len >= sizeof(name))
        len = sizeof(name) - 1;
    memcpy(name, s + 1, len);
    name[len] = '\0';
    config_open_section(p, config_trim(name));
}

/* A key line inih did not hand to config_on_key is one it rejected. */
static void check_pending(struct parser *p)
{
    if (p->pending_line > 0 && p->calls == p->calls_before)
        config_bad_line(p);
    p->pending_line = 0;
}

static void classify_line(struct parser *p, char *line)
{
    char *s = line;
    size_t n;

    if (p->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == ';' || *s == '#')
        return;
    if (*s == '[') {
        section_line(p, s);
        return;
    }
    n = strlen(s);
    if (n > SHOW_MAX)
        n = SHOW_MAX;
    memcpy(p->pending, s, n);
    p->pending[n] = '\0';
    p->pending_line = p->lineno;
    p->pending_colon = *scan_to(s, "=:") == ':';
    p->pending_indented = s > line && isspace((unsigned char)s[-1]);
    p->calls_before = p->calls;
}

/* True when the line just read by fgets ended exactly at the buffer's end;
 * otherwise the rest of the line is read and dropped. */
static bool line_ends_here(FILE *fp)
{
    int ch = getc(fp);

    if (ch == EOF || ch == '\n')
        return true;
    while ((ch = getc(fp)) != EOF && ch != '\n')
        ;
    return false;
}

/* inih's reader (fgets-like): counts lines, follows sections, reports
 * overlong lines (handed to inih as empty ones, so it skips them). */
static char *read_line(char *buf, int size, void *stream)
{
    struct parser *p = stream;
    size_t n;

    check_pending(p);
    if (fgets(buf, size, p->fp) == NULL) {
        if (ferror(p->fp))
            p->read_errno = errno ? errno : EIO;
        return NULL;
    }
    p->lineno++;
    n = strlen(buf);
    if (n > 0 && n == (size_t)size - 1 && buf[n - 1] != '\n' && !line_ends_here(p->fp)) {
        p->nsyntax++;
        config_errorf(p, p->lineno, "line too long (more than %d bytes)", size - 1);
        buf[0] = '\0';
        return buf;
    }
    /* inih strips trailing blanks too: this changes nothing it parses */
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    classify_line(p, buf);
    return buf;
}

static void setup_inih(void)
{
    static char start_comments[] = ";#";
    static char inline_comments[] = ";#";

    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_initial_alloc = LINE_BYTES;
    ini_max_line = LINE_BYTES;
    ini_allow_multiline = false; /* an indented line is a line of its own */
    ini_allow_bom = true;
    ini_start_comment_prefixes = start_comments;
    ini_allow_inline_comments = true;
    ini_inline_comment_prefixes = inline_comments;
    ini_stop_on_first_error = false;
    ini_allow_no_value = false;
}

/* See config_int.h. */
int config_read_ini(struct parser *p)
{
    int rc;

    setup_inih();
    rc = ini_parse_stream(read_line, p, config_on_key, p);
    check_pending(p);
    return rc;
}
