/*
 * test_handoff.c - unit tests of src/common/handoff.c: a descriptor sent on one
 * end of the pair arrives, working, at the other; an empty queue says
 * EAGAIN; drain closes what waits. Runs in the test process only.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "handoff.h"
#include "harness.h"

/* Pipes' write ends travel, one message of three; what is written on each
 * received copy comes out of its pipe, so it is the same open file. */
START_TEST(test_send_recv)
{
    int pair[2], p[3][2], w[3], fds[HANDOFF_BATCH];
    char c = 0;

    ck_assert_int_eq(handoff_pair(pair), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pipe(p[i]), 0);
        w[i] = p[i][1];
    }
    ck_assert_int_eq(handoff_send(pair[0], w, 3), 0);
    for (int i = 0; i < 3; i++)
        close(w[i]); /* the sender's copies: those in flight keep them open */
    ck_assert_int_eq(handoff_recv(pair[1], fds), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(write(fds[i], "0123" + i, 1), 1);
        ck_assert_int_eq(read(p[i][0], &c, 1), 1);
        ck_assert_int_eq(c, '0' + i);
        close(fds[i]);
        close(p[i][0]);
    }
    ck_assert_int_eq(handoff_recv(pair[1], fds), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(handoff_send(pair[0], w, HANDOFF_BATCH + 1), -1);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

/* What nobody took is closed by drain: the pipe's reader sees EOF. */
START_TEST(test_drain)
{
    int pair[2], p[2];
    char c;

    ck_assert_int_eq(handoff_pair(pair), 0);
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(handoff_send(pair[0], &p[1], 1), 0);
    ck_assert_int_eq(handoff_send(pair[0], (int[]){p[1], p[1]}, 2), 0);
    close(p[1]);
    ck_assert_int_eq(handoff_drain(pair[1]), 3);
    ck_assert_int_eq(read(p[0], &c, 1), 0); /* every write end is gone */
    ck_assert_int_eq(handoff_drain(pair[1]), 0);
    close(p[0]);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handoff");
    TCase *tc = tcase_create("handoff");

    tcase_add_test(tc, test_send_recv);
    tcase_add_test(tc, test_drain);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
