/*
 * fuzz_config.c - libFuzzer harness over the INI parser (config.c, and
 * inih and listen_parse under it): each input is written to one memfd made
 * at start, loaded with config_load through /proc/self/fd/N, checked
 * against the contract of config.h, and freed. An accepted access log
 * format is checked as main.c does, and an accepted file written out as
 * preforkd -T writes it (dump.c) must be accepted again, with the same
 * keys and values. In process; the parser logs nothing.
 * Aborts when an invariant breaks; returns 0 for every input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accesslog.h"
#include "config.h"
#include "dump.h"
#include "log.h"
#include "scoreboard.h"

static int memfd = -1;
static char path[64];

static void die(const char *why, const char *detail)
{
    fprintf(stderr, "fuzz_config: invariant broken: %s%s%s\n", why, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static void put_input(const uint8_t *data, size_t size)
{
    if (ftruncate(memfd, 0) < 0)
        die("ftruncate", strerror(errno));
    for (size_t off = 0; off < size;) {
        ssize_t n = pwrite(memfd, data + off, size - off, (off_t)off);
        if (n < 0 && errno != EINTR)
            die("pwrite", strerror(errno));
        off += n > 0 ? (size_t)n : 0;
    }
}

/* Lines as fgets counts them. */
static long count_lines(const uint8_t *data, size_t size)
{
    long n = 1;

    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n;
}

/* One error line: "PATH: text" or "PATH:LINE: text", LINE within the file
 * and never lower than the line before; printable text. */
static void check_error_line(const char *s, size_t len, long lines, long *last)
{
    size_t plen = strlen(path);
    char *end;
    long line = 0;

    if (len <= plen + 1 || memcmp(s, path, plen) != 0 || s[plen] != ':')
        die("an error line does not start with the file's path", NULL);
    if (s[plen + 1] >= '0' && s[plen + 1] <= '9') {
        line = strtol(s + plen + 1, &end, 10);
        if (*end != ':' || line < 1 || line > lines)
            die("an error names a line that is not in the file", NULL);
    }
    if (line < *last)
        die("errors are not sorted by line", NULL);
    *last = line;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            die("an error line holds a control byte", NULL);
}

/* On -1: every line is an error naming the file, and *c is all zeroes. */
static void check_rejected(const struct config *c, const char *errors, long lines)
{
    static const struct config zero;
    long last = 0;

    if (memcmp(c, &zero, sizeof(zero)) != 0)
        die("a rejected config is not left zeroed", NULL);
    if (errors == NULL || *errors == '\0')
        die("a rejected config comes without an error", NULL);
    for (const char *s = errors; *s;) {
        const char *nl = strchr(s, '\n');
        if (nl == NULL)
            die("an error does not end in a newline", NULL);
        check_error_line(s, (size_t)(nl - s), lines, &last);
        s = nl + 1;
    }
}

static void check_addr(const struct listen_addr *a)
{
    if (a->family != AF_INET && a->family != AF_INET6 && a->family != AF_UNIX)
        die("an address of an unknown family", NULL);
    if (memchr(a->text, '\0', sizeof(a->text)) == NULL || a->text[0] == '\0')
        die("an address without its text", NULL);
}

static void check_duration(double d, bool positive)
{
    if (!(d >= 0 && d <= 1e9) || (positive && d <= 0))
        die("a duration out of range was accepted", NULL);
}

static void check_server(const struct config *c)
{
    if (c->server.nlisten < 1)
        die("an accepted config listens nowhere", NULL);
    for (size_t i = 0; i < c->server.nlisten; i++)
        check_addr(&c->server.listen[i]);
    if (c->server.workers < 1 || c->server.workers > c->server.max_workers ||
        c->server.max_workers > 1024)
        die("workers and max_workers out of range", NULL);
    if (c->server.worker_connections < 1 || c->server.backlog < 1)
        die("worker_connections or backlog below 1", NULL);
    if (c->server.max_request_line < 64 || c->server.max_headers < 1 ||
        c->server.max_header_size < 64)
        die("an HTTP limit below its minimum was accepted", NULL);
    check_duration(c->server.timeout, true);
    check_duration(c->server.header_timeout, true);
    check_duration(c->server.body_timeout, true);
    check_duration(c->server.send_timeout, true);
    check_duration(c->server.graceful_timeout, false);
    check_duration(c->server.keepalive_timeout, false);
    check_duration(c->server.request_timeout, false);
}

static void check_rest(const struct config *c, long lines)
{
    if (c->recycle.max_rss && c->recycle.max_rss_hard &&
        c->recycle.max_rss_hard <= c->recycle.max_rss)
        die("max_rss_hard <= max_rss was accepted", NULL);
    if (c->recycle.max_lifetime > 0 && c->recycle.min_lifetime > c->recycle.max_lifetime)
        die("min_lifetime > max_lifetime was accepted", NULL);
    if (c->recycle.max_concurrent_recycles < 1)
        die("max_concurrent_recycles below 1", NULL);
    if (c->app.module == NULL || c->app.module[0] == '\0')
        die("an accepted config has no [app] module", NULL);
    for (size_t i = 0; i < c->app.nkv; i++)
        if (!c->app.kv[i].key || !c->app.kv[i].value || c->app.kv[i].line < 1 ||
            c->app.kv[i].line > lines)
            die("an [app] key without its value or line", NULL);
    if (c->nupstreams > SB_MAX_UPSTREAMS)
        die("more [upstream] sections than the scoreboard holds", NULL);
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (c->upstreams[i].name == NULL || c->upstreams[i].nservers < 1)
            die("an [upstream] without a name or servers", NULL);
        for (size_t j = 0; j < c->upstreams[i].nservers; j++)
            check_addr(&c->upstreams[i].servers[j]);
    }
    if (c->log.level < LOG_ERROR || c->log.level > LOG_DEBUG ||
        c->log.error_log == NULL || c->log.access_log_format == NULL)
        die("[log] settings missing or out of range", NULL);
    if (c->admin.enabled)
        check_addr(&c->admin.listen);
}

/* c as preforkd -T writes it, from the first section on (the header names
 * the file), each line cut at its comment (" ;": no value holds one).
 * malloc'd. */
static char *dumped(const struct config *c)
{
    char *text = NULL, *out, *o;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        die("open_memstream", strerror(errno));
    dump_config(f, c);
    if (fclose(f) != 0 || text == NULL)
        die("writing the dump", NULL);
    if ((out = malloc(len + 1)) == NULL)
        die("malloc", NULL);
    o = out;
    for (const char *l = strstr(text, "\n[") ? strstr(text, "\n[") + 1 : text; *l;) {
        const char *nl = strchr(l, '\n'), *end = nl ? nl : l + strlen(l);
        const char *cut = strstr(l, " ;");
        if (cut != NULL && cut < end)
            end = cut;
        if (*l != ';') {
            memcpy(o, l, (size_t)(end - l));
            o += end - l;
            *o++ = '\n';
        }
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    *o = '\0';
    free(text);
    return out;
}

/* preforkd -T's promise: what it prints is a file preforkd accepts as the
 * same configuration. */
static void check_dump(const struct config *c)
{
    char *text = NULL, *first = dumped(c), *again, *errors = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct config back;

    if (f == NULL)
        die("open_memstream", strerror(errno));
    dump_config(f, c);
    if (fclose(f) != 0 || text == NULL)
        die("writing the dump", NULL);
    if (config_load_text("dumped", text, &back, &errors) != 0)
        die("preforkd -T wrote a file preforkd refuses", errors);
    again = dumped(&back);
    if (strcmp(first, again) != 0)
        die("preforkd -T of its own output differs", again);
    config_free(&back);
    free(again);
    free(first);
    free(text);
}

static void check_accepted(const struct config *c, const char *errors, long lines)
{
    char why[160];

    if (errors != NULL)
        die("an accepted config comes with errors", errors);
    if (c->path == NULL || strcmp(c->path, path) != 0)
        die("an accepted config does not name its file", NULL);
    check_server(c);
    check_rest(c, lines);
    /* What main.c does next; its verdict is not ours to check. */
    accesslog_check_format(c->log.access_log_format, why, sizeof(why));
    check_dump(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    memfd = memfd_create("fuzz-config.ini", MFD_CLOEXEC);
    if (memfd < 0)
        die("memfd_create", strerror(errno));
    snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    char *errors = NULL;
    long lines = count_lines(data, size);

    put_input(data, size);
    if (config_load(path, &c, &errors) == 0)
        check_accepted(&c, errors, lines);
    else
        check_rejected(&c, errors, lines);
    config_free(&c);
    free(errors);
    return 0;
}
