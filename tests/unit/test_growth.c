/*
 * test_growth.c - unit tests of src/master/growth.c: least-squares growth slopes of
 * a worker's memory and the projection to a limit.
 */
#include <check.h>

#include "harness.h"
#include "growth.h"

START_TEST(test_linear_leak)
{
    /* 100 KiB per request, 50 requests a second: exact slopes. */
    struct growth_sample s[8];
    struct growth g;

    for (int i = 0; i < 8; i++)
        s[i] = (struct growth_sample){.age = i,
                                      .requests = 50.0 * i,
                                      .mem = 10e6 + 102400.0 * 50 * i};
    g = growth_fit(s, 8, 0);
    ck_assert_double_eq_tol(g.per_1k_requests, 102400.0 * 1000, 1);
    ck_assert_double_eq_tol(g.per_hour, 102400.0 * 50 * 3600, 10);
    ck_assert_double_eq(g.eta, -1);
    ck_assert_int_eq(g.nsamples, 8);
}
END_TEST

START_TEST(test_eta)
{
    /* 1 MB a second, sampled every 10 s; the last (t = 30 s) holds 40 MB:
     * 60 s to 100 MB. */
    struct growth_sample s[4];
    struct growth g;

    for (int i = 0; i < 4; i++)
        s[i] = (struct growth_sample){.age = 10.0 * i,
                                      .requests = 100.0 * i,
                                      .mem = 10e6 + 1e7 * i};
    g = growth_fit(s, 4, 100000000);
    ck_assert(g.by_time_ok && g.by_requests_ok);
    ck_assert_double_eq_tol(g.eta, 60, 1e-6);
    /* Already past the limit: 0. */
    g = growth_fit(s, 4, 11000000);
    ck_assert_double_eq(g.eta, 0);
}
END_TEST

/* A worker that lived 2 s and served 5 requests has no slope worth a
 * number: its first page faults are not a leak. */
START_TEST(test_short_span_is_unknown)
{
    struct growth_sample s[2] = {{0, 0, 1.7e6}, {2, 5, 1.9e6}};
    struct growth g = growth_fit(s, 2, 1 << 30);

    ck_assert(!g.by_requests_ok);
    ck_assert(!g.by_time_ok);
    ck_assert_double_eq(g.eta, -1);
}
END_TEST

START_TEST(test_flat_and_noisy)
{
    /* Noise around a flat line fits a slope near 0 and no eta. */
    struct growth_sample s[6] = {
        {0, 0, 5e6},    {1, 10, 5.1e6}, {2, 20, 4.9e6},
        {3, 30, 5.1e6}, {4, 40, 4.9e6}, {5, 50, 5e6},
    };
    struct growth g = growth_fit(s, 6, 1 << 30);

    ck_assert(g.per_hour > -1e5 * 3600 && g.per_hour < 1e5 * 3600);
    ck_assert(g.per_hour <= 0 || g.eta > 3600);
}
END_TEST

START_TEST(test_degenerate)
{
    /* One sample, or no variation in x: no slope, no division by zero. */
    struct growth_sample one[1] = {{1, 1, 1e6}};
    struct growth_sample same[3] = {{2, 5, 1e6}, {2, 5, 2e6}, {2, 5, 3e6}};
    struct growth g = growth_fit(one, 1, 1 << 20);

    ck_assert_double_eq(g.per_1k_requests, 0);
    ck_assert_double_eq(g.eta, -1);
    g = growth_fit(same, 3, 1 << 30);
    ck_assert_double_eq(g.per_1k_requests, 0);
    ck_assert_double_eq(g.per_hour, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("growth");
    TCase *tc = tcase_create("fit");

    tcase_add_test(tc, test_linear_leak);
    tcase_add_test(tc, test_eta);
    tcase_add_test(tc, test_short_span_is_unknown);
    tcase_add_test(tc, test_flat_and_noisy);
    tcase_add_test(tc, test_degenerate);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
