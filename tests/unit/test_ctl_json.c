/*
 * test_ctl_json.c - unit tests for preforkctl's JSON reader (src/ctl/json.c,
 * compiled into this test: preforkctl is a program of its own, not part of
 * the daemon's objects): values of every type, escapes and UTF-8, lookups,
 * and the errors (with offsets) for what RFC 8259 does not allow.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ctl/json.c"

static struct json *ok(const char *text)
{
    char why[128];
    struct json *j = json_parse(text, why, sizeof(why));

    ck_assert_msg(j != NULL, "%s: %s", text, why);
    return j;
}

START_TEST(test_stats_shape)
{
    struct json *j = ok(
        "{\n  \"master\": {\"pid\": 42, \"ready\": true, \"mode\": \"running\","
        " \"uptime\": 1.5e2, \"reload_error\": \"\"},\n"
        "  \"workers\": [\n    {\"slot\": 1, \"pid\": -7}, {\"slot\": 2}\n  ],"
        " \"x\": null, \"f\": false, \"e\": [], \"o\": {}}\n");
    const struct json *m = json_get(j, "master"), *w = json_get(j, "workers");

    ck_assert_double_eq(json_number(m, "pid", 0), 42);
    ck_assert_double_eq(json_number(m, "uptime", 0), 150);
    ck_assert_int_eq(json_get(m, "ready")->type, JSON_TRUE);
    ck_assert_str_eq(json_string(m, "mode", "?"), "running");
    ck_assert_str_eq(json_string(m, "reload_error", "?"), "");
    ck_assert_str_eq(json_string(m, "pid", "dflt"), "dflt"); /* wrong type */
    ck_assert_double_eq(json_number(m, "absent", -1), -1);
    ck_assert_int_eq(w->type, JSON_ARRAY);
    ck_assert_uint_eq(w->n, 2);
    ck_assert_double_eq(json_number(&w->items[0], "pid", 0), -7);
    ck_assert_int_eq(json_get(j, "x")->type, JSON_NULL);
    ck_assert_int_eq(json_get(j, "f")->type, JSON_FALSE);
    ck_assert_uint_eq(json_get(j, "e")->n, 0);
    ck_assert_int_eq(json_get(j, "o")->type, JSON_OBJECT);
    ck_assert_ptr_null(json_get(w, "slot")); /* not an object */
    ck_assert_ptr_null(json_get(NULL, "slot"));
    json_free(j);
}
END_TEST

START_TEST(test_string_escapes)
{
    struct json *j = ok(
        "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\\ud83d\\ude00\", "
        "\"caf\xc3\xa9\"]");

    ck_assert_str_eq(j->items[0].str, "a\"b\\c/d\b\f\n\r\t");
    ck_assert_str_eq(j->items[1].str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ck_assert_str_eq(j->items[2].str, "caf\xc3\xa9");
    json_free(j);
}
END_TEST

static const struct {
    const char *text, *why;
} bad[] = {
    {"", "unexpected end at byte 0"},
    {"{", "expected a member name at byte 1"},
    {"{\"a\" 1}", "expected ':' at byte 5"},
    {"{\"a\": 1,}", "expected a member name at byte 8"},
    {"[1, 2", "expected ',' or ']' at byte 5"},
    {"[1 2]", "expected ',' or ']' at byte 3"},
    {"01", "trailing bytes at byte 1"},
    {"1.", "bad number"},
    {"-", "bad number"},
    {"1e", "bad number"},
    {"\"abc", "unterminated string"},
    {"\"a\tb\"", "control character in a string"},
    {"\"\\x\"", "bad escape"},
    {"\"\\u12\"", "bad \\u escape"},
    {"\"\\ud800\"", "unpaired surrogate"},
    {"\"\\udc00\"", "unpaired surrogate"},
    {"tru", "unexpected character at byte 0"},
    {"{} {}", "trailing bytes at byte 3"},
    {"1e999", "number out of range"},
};

START_TEST(test_errors)
{
    char why[128];

    ck_assert_ptr_null(json_parse(bad[_i].text, why, sizeof(why)));
    ck_assert_msg(strstr(why, bad[_i].why) != NULL, "%s: got \"%s\", want \"%s\"",
                  bad[_i].text, why, bad[_i].why);
}
END_TEST

START_TEST(test_depth)
{
    char deep[200], why[128];
    struct json *j;

    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    j = ok(deep);
    json_free(j);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    ck_assert_ptr_null(json_parse(deep, why, sizeof(why)));
    ck_assert_msg(strstr(why, "nested too deep") != NULL, "%s", why);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctl_json");
    TCase *tc = tcase_create("json");

    tcase_add_test(tc, test_stats_shape);
    tcase_add_test(tc, test_string_escapes);
    tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, test_depth);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
