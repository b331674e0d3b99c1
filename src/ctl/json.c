/*
 * json.c - a small recursive-descent JSON reader (RFC 8259) for what the
 * admin endpoint sends: preforkctl reads /stats with it. Runs in
 * preforkctl only. Pure: no I/O. Convention: NULL with a reason in `why`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define MAX_DEPTH 64

struct parser {
    const char *s, *p;
    char *why;
    size_t wlen;
    int depth;
};

static int perr(struct parser *ps, const char *what)
{
    if (ps->why[0] == '\0')
        snprintf(ps->why, ps->wlen, "%s at byte %td", what, ps->p - ps->s);
    return -1;
}

static void skip_ws(struct parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static int value(struct parser *ps, struct json *v);

static struct json *push(struct json *v)
{
    struct json *items = realloc(v->items, (v->n + 1) * sizeof(*items));

    if (items == NULL)
        return NULL;
    v->items = items;
    memset(&items[v->n], 0, sizeof(*items));
    return &items[v->n++];
}

static int hex4(const char *p, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16)
            return -1;
        *out = *out * 16 + d;
    }
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* \uXXXX (with a surrogate pair) at ps->p (after the 'u'). */
static int unicode_escape(struct parser *ps, char *o, size_t *k)
{
    unsigned cp, lo;

    if (hex4(ps->p, &cp) < 0)
        return perr(ps, "bad \\u escape");
    ps->p += 4;
    if (cp >= 0xD800 && cp < 0xDC00) {
        if (ps->p[0] != '\\' || ps->p[1] != 'u' || hex4(ps->p + 2, &lo) < 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
            return perr(ps, "unpaired surrogate");
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp < 0xE000) {
        return perr(ps, "unpaired surrogate");
    }
    *k += put_utf8(o + *k, cp);
    return 0;
}

/* A string at ps->p (on the opening quote), decoded into *out. */
static int string(struct parser *ps, char **out)
{
    static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
    const char *end = ps->p + 1;
    char *o;
    size_t k = 0;

    while (*end && *end != '"')
        end += *end == '\\' && end[1] ? 2 : 1;
    if ((o = malloc((size_t)(end - ps->p) + 1)) == NULL)
        return perr(ps, "out of memory");
    for (ps->p++; *ps->p != '"';) {
        unsigned char c = (unsigned char)*ps->p;
        const char *e;
        if (c == '\0' || c < 0x20) {
            free(o);
            return perr(ps, c ? "control character in a string" : "unterminated string");
        }
        if (c != '\\') {
            o[k++] = (char)c;
            ps->p++;
            continue;
        }
        c = (unsigned char)*++ps->p;
        ps->p++;
        if (c == 'u') {
            if (unicode_escape(ps, o, &k) < 0) {
                free(o);
                return -1;
            }
        } else if (c != '\0' && (e = strchr(esc_in, c)) != NULL) {
            o[k++] = esc_out[e - esc_in];
        } else {
            free(o);
            ps->p--;
            return perr(ps, "bad escape");
        }
    }
    ps->p++;
    o[k] = '\0';
    *out = o;
    return 0;
}

/* The number grammar of RFC 8259 (strtod alone is more lenient). */
static int number(struct parser *ps, struct json *v)
{
    const char *p = ps->p;

    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return perr(ps, "bad number");
    if (*p == '.') {
        if (*++p < '0' || *p > '9')
            return perr(ps, "bad number");
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p += p[1] == '+' || p[1] == '-' ? 2 : 1;
        if (*p < '0' || *p > '9')
            return perr(ps, "bad number");
        while (*p >= '0' && *p <= '9')
            p++;
    }
    v->type = JSON_NUMBER;
    v->num = strtod(ps->p, NULL);
    ps->p = p;
    return isfinite(v->num) ? 0 : perr(ps, "number out of range");
}

/* Array or object at ps->p (on '[' or '{'). */
static int container(struct parser *ps, struct json *v)
{
    char close = *ps->p == '[' ? ']' : '}';

    v->type = close == ']' ? JSON_ARRAY : JSON_OBJECT;
    if (++ps->depth > MAX_DEPTH)
        return perr(ps, "nested too deep");
    ps->p++;
    skip_ws(ps);
    if (*ps->p == close) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    for (;;) {
        struct json *item = push(v);
        if (item == NULL)
            return perr(ps, "out of memory");
        skip_ws(ps);
        if (close == '}') {
            if (*ps->p != '"')
                return perr(ps, "expected a member name");
            if (string(ps, &item->key) < 0)
                return -1;
            skip_ws(ps);
            if (*ps->p != ':')
                return perr(ps, "expected ':'");
            ps->p++;
        }
        if (value(ps, item) < 0)
            return -1;
        skip_ws(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p != close)
            return perr(ps, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
        ps->p++;
        ps->depth--;
        return 0;
    }
}

static int value(struct parser *ps, struct json *v)
{
    static const struct {
        const char *word;
        enum json_type t;
    } words[] = {
        {"null", JSON_NULL},
        {"true", JSON_TRUE},
        {"false", JSON_FALSE},
    };

    skip_ws(ps);
    switch (*ps->p) {
    case '{':
    case '[': return container(ps, v);
    case '"': v->type = JSON_STRING; return string(ps, &v->str);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': return number(ps, v);
    }
    for (size_t i = 0; i < 3; i++)
        if (strncmp(ps->p, words[i].word, strlen(words[i].word)) == 0) {
            v->type = words[i].t;
            ps->p += strlen(words[i].word);
            return 0;
        }
    return perr(ps, *ps->p ? "unexpected character" : "unexpected end");
}

static void free_items(struct json *v)
{
    for (size_t i = 0; i < v->n; i++)
        free_items(&v->items[i]);
    free(v->items);
    free(v->str);
    free(v->key);
}

void json_free(struct json *v)
{
    if (v == NULL)
        return;
    free_items(v);
    free(v);
}

struct json *json_parse(const char *text, char *why, size_t len)
{
    struct parser ps = {.s = text, .p = text, .why = why, .wlen = len};
    struct json *v = calloc(1, sizeof(*v));

    why[0] = '\0';
    if (v == NULL) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    if (value(&ps, v) == 0) {
        skip_ws(&ps);
        if (*ps.p == '\0')
            return v;
        perr(&ps, "trailing bytes");
    }
    json_free(v);
    return NULL;
}

const struct json *json_get(const struct json *obj, const char *key)
{
    if (obj == NULL || obj->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->items[i].key, key) == 0)
            return &obj->items[i];
    return NULL;
}

double json_number(const struct json *obj, const char *key, double dflt)
{
    const struct json *v = json_get(obj, key);

    return v && v->type == JSON_NUMBER ? v->num : dflt;
}

const char *json_string(const struct json *obj, const char *key, const char *dflt)
{
    const struct json *v = json_get(obj, key);

    return v && v->type == JSON_STRING ? v->str : dflt;
}
