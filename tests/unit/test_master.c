/*
 * test_master.c - unit tests of the master's policy (src/master/master.c,
 * src/master/reload.c) with a fake clock and fake fork and kill: no process is
 * started. Each test sets up the master's state, feeds it events (worker
 * messages, exits, time) and checks what master_step decided.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "log.h"
#include "master_int.h"
#include "worker.h"

static struct master state, *const ms = &state;
static double clock_now;
static pid_t next_pid;
static struct {
    pid_t pid;
    int sig;
} sent[256];
static int nsent;

static ev_tstamp fake_now(struct master *m)
{
    return clock_now;
}

static bool fork_pending;  /* answer PID_PENDING, as a mold does */
static int forked_slot[8]; /* by worker id: the slot of its last fork */

static pid_t fake_fork(struct master *m, int id, int slot, int ctl_fd)
{
    if (id >= 0 && id < 8)
        forked_slot[id] = slot;
    return fork_pending ? PID_PENDING : next_pid++;
}

static int fake_kill(pid_t pid, int sig)
{
    if (nsent < 256)
        sent[nsent++] = (typeof(sent[0])){pid, sig};
    return 0;
}

static bool fake_can_fork(struct master *m)
{
    return true;
}

static int fake_start_mold(struct master *m, struct mold_proc *mold, uint32_t gen,
                           const struct config *cfg, const int *fds, size_t nfds)
{
    *mold = (struct mold_proc){.pid = next_pid++, .fd = -1, .generation = gen};
    return 0;
}

static int heirs_started;

static pid_t fake_start_heir(struct master *m, const char *fds)
{
    heirs_started++;
    return next_pid++;
}

static const struct master_ops fake = {
    .now = fake_now,
    .can_fork = fake_can_fork,
    .fork_worker = fake_fork,
    .kill = fake_kill,
    .start_mold = fake_start_mold,
    .start_heir = fake_start_heir,
};

static void setup(uint32_t workers, uint32_t budget)
{
    struct config *c = calloc(1, sizeof(*c));

    config_defaults(c);
    c->server.workers = workers;
    c->server.max_workers = 8;
    c->server.timeout = 30;
    c->recycle.max_concurrent_recycles = budget;
    memset(ms, 0, sizeof(*ms));
    ms->ops = &fake;
    ms->cfg = c;
    ms->loop = ev_default_loop(0);
    ms->nslots = master_slots_for(c);
    ms->sb = scoreboard_create(ms->nslots);
    ms->w = calloc(ms->nslots, sizeof(*ms->w));
    ms->target = workers;
    ms->generation = 1;
    ev_init(&ms->spawn_timer, NULL);
    clock_now = 1000;
    next_pid = 100;
    nsent = 0;
    heirs_started = 0;
    fork_pending = false;
    memset(forked_slot, -1, sizeof(forked_slot));
    ms->mold.fd = ms->next_mold.fd = ms->old_mold.fd = -1;
    ms->handoff[0] = ms->handoff[1] = -1;
}

static void teardown(void)
{
    config_free(ms->cfg);
    free(ms->cfg);
    free(ms->w);
    scoreboard_destroy(ms->sb);
}

static int live(void)
{
    int n = 0;

    for (uint32_t i = 0; i < ms->nslots; i++)
        n += ms->w[i].pid != 0;
    return n;
}

static struct worker *by_id(int id, enum phase phase)
{
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid && ms->w[i].id == id && ms->w[i].phase == phase)
            return &ms->w[i];
    return NULL;
}

static void serve_all(void)
{
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid && !ms->w[i].served)
            master_message(ms, &ms->w[i], MSG_SERVING, 0);
    master_step(ms);
}

static int sent_to(pid_t pid, int sig)
{
    int n = 0;

    for (int i = 0; i < nsent; i++)
        n += sent[i].pid == pid && sent[i].sig == sig;
    return n;
}

static void reap(struct worker *w, int wstatus)
{
    master_reaped(ms, w, wstatus);
    master_step(ms);
}

/* The mold tells a worker's pid later: meanwhile the worker holds its id,
 * a signal for it waits, and is sent once the pid is known; a fork the mold
 * could not make frees the entry and backs off. */
START_TEST(test_pending_workers)
{
    struct mold_msg m = {.type = MOLD_SPAWNED};
    struct worker *w;

    setup(2, 1);
    fork_pending = true;
    master_step(ms);
    ck_assert_int_eq(live(), 2);
    master_step(ms); /* pending workers hold their ids: nothing more */
    ck_assert_int_eq(live(), 2);
    w = by_id(1, PH_ACTIVE);
    ck_assert_int_eq(w->pid, PID_PENDING);
    /* The slot asked for is the worker's index in the table. */
    ck_assert_int_eq(forked_slot[1], (int)(w - ms->w));
    master_signal(ms, w, SIGTERM);
    master_signal(ms, w, SIGQUIT);
    master_signal(ms, w, SIGTERM); /* the strongest one waits */
    ck_assert_int_eq(nsent, 0);
    /* A slot out of range is ignored. */
    m.pid = 4242;
    m.slot = -1;
    master_mold_message(ms, &ms->mold, &m);
    m.slot = (int)ms->nslots;
    master_mold_message(ms, &ms->mold, &m);
    ck_assert_int_eq(w->pid, PID_PENDING);
    m.slot = (int)(w - ms->w);
    master_mold_message(ms, &ms->mold, &m);
    ck_assert_int_eq(w->pid, 4242);
    ck_assert_int_eq(SB_GET(scoreboard_slot(ms->sb, m.slot)->pid), 4242);
    ck_assert_int_eq(nsent, 0); /* the message records; the step acts */
    master_step(ms);
    ck_assert_int_eq(sent_to(4242, SIGQUIT), 1);
    ck_assert_int_eq(nsent, 1);
    /* A second word for the same slot changes nothing. */
    m.pid = 4343;
    master_mold_message(ms, &ms->mold, &m);
    ck_assert_int_eq(w->pid, 4242);
    /* The other one could not be forked. */
    w = by_id(2, PH_ACTIVE);
    ck_assert_int_eq(forked_slot[2], (int)(w - ms->w));
    m.slot = (int)(w - ms->w);
    m.pid = -1;
    m.err = EAGAIN;
    master_mold_message(ms, &ms->mold, &m);
    ck_assert_int_eq(live(), 1);
    ck_assert(ms->next_spawn > clock_now);
    clock_now += 1;
    master_step(ms);
    ck_assert_int_eq(live(), 2);
    teardown();
}
END_TEST

START_TEST(test_spawns_the_pool)
{
    setup(3, 1);
    master_step(ms);
    ck_assert_int_eq(live(), 3);
    for (int id = 1; id <= 3; id++)
        ck_assert_ptr_nonnull(by_id(id, PH_ACTIVE));
    master_step(ms); /* nothing more to do */
    ck_assert_int_eq(live(), 3);
    teardown();
}
END_TEST

/* A worker that keeps dying at start-up is retried ever more slowly. */
START_TEST(test_crash_loop_backoff)
{
    double want[] = {0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10};

    setup(1, 1);
    master_step(ms);
    ms->ever_served = true; /* it could boot once: back off, do not give up */
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        struct worker *w = by_id(1, PH_ACTIVE);
        ck_assert_ptr_nonnull(w);
        reap(w, W_EXITCODE(1, 0));
        ck_assert_int_eq(live(), 0);
        clock_now += want[k] - 0.01;
        master_step(ms);
        ck_assert_msg(live() == 0, "respawned before %.2fs (failure %zu)", want[k],
                      k + 1);
        clock_now += 0.01;
        master_step(ms);
        ck_assert_msg(live() == 1, "not respawned after %.2fs (failure %zu)", want[k],
                      k + 1);
    }
    /* Serving a while ends the loop: the next crash is retried at once. */
    serve_all();
    clock_now += 2;
    ms->boot_failures = 0;
    reap(by_id(1, PH_ACTIVE), W_EXITCODE(0, SIGSEGV));
    ck_assert_int_eq(live(), 1);
    teardown();
}
END_TEST

/* An app that cannot start at all stops the daemon with its exit code. */
START_TEST(test_app_cannot_boot)
{
    setup(2, 1);
    master_step(ms);
    reap(by_id(1, PH_ACTIVE), W_EXITCODE(70, 0));
    ck_assert_int_eq(ms->exit_code, 70);
    ck_assert_int_eq(ms->mode, STOPPING);
    ck_assert_int_eq(sent_to(by_id(2, PH_RETIRING)->pid, SIGQUIT), 1);
    teardown();
}
END_TEST

/* Spawn before retire, one recycle at a time, oldest request first. */
START_TEST(test_recycle_budget)
{
    struct worker *w1, *w2, *r1;

    setup(3, 1);
    master_step(ms);
    serve_all();
    w2 = by_id(2, PH_ACTIVE);
    master_message(ms, w2, MSG_RECYCLE, RETIRE_MAX_RSS);
    clock_now += 1;
    w1 = by_id(1, PH_ACTIVE);
    master_message(ms, w1, MSG_RECYCLE, RETIRE_MAX_REQUESTS);
    master_step(ms);
    ck_assert_int_eq(live(), 4); /* one replacement, for the first to ask */
    ck_assert_int_eq(w2->phase, PH_REPLACING);
    ck_assert_int_eq(w1->phase, PH_WANTS);
    ck_assert_int_eq(sent_to(w2->pid, SIGTERM), 0); /* not before it is replaced */
    serve_all();
    ck_assert_int_eq(w2->phase, PH_RETIRING);
    ck_assert_int_eq(sent_to(w2->pid, SIGTERM), 1);
    ck_assert_int_eq(w1->phase, PH_WANTS); /* w2 still holds the budget */
    ck_assert_int_eq(live(), 4);
    reap(w2, W_EXITCODE(0, 0));
    ck_assert_int_eq(ms->account.retired[RETIRE_MAX_RSS], 1);
    ck_assert_int_eq(w1->phase, PH_REPLACING);
    r1 = by_id(1, PH_ACTIVE);
    ck_assert_ptr_nonnull(r1);
    ck_assert_int_ne(r1->pid, w1->pid);
    teardown();
}
END_TEST

/* A replacement that never serves: the old worker retires at `timeout`. */
START_TEST(test_replacement_deadline)
{
    struct worker *w;

    setup(1, 1);
    master_step(ms);
    serve_all();
    w = by_id(1, PH_ACTIVE);
    master_message(ms, w, MSG_RECYCLE, RETIRE_LIFETIME);
    master_step(ms);
    ck_assert_int_eq(w->phase, PH_REPLACING);
    clock_now += 29;
    master_step(ms);
    ck_assert_int_eq(w->phase, PH_REPLACING);
    clock_now += 2;
    master_step(ms);
    ck_assert_int_eq(w->phase, PH_RETIRING);
    teardown();
}
END_TEST

/* No heartbeat: QUIT, replaced at once, SIGKILL after the grace. */
START_TEST(test_timeout_kill_grace)
{
    struct worker *w;
    pid_t pid;

    setup(1, 1);
    master_step(ms);
    serve_all();
    w = by_id(1, PH_ACTIVE);
    pid = w->pid;
    SB_SET(scoreboard_slot(ms->sb, (uint32_t)(w - ms->w))->heartbeat_ms,
           scoreboard_mono_ms() - 31000);
    ms->intent.tick = true; /* the 1 s tick: hard limits */
    master_step(ms);
    ck_assert_int_eq(w->phase, PH_KILLING);
    ck_assert_int_eq(sent_to(pid, SIGQUIT), 1);
    ck_assert_ptr_nonnull(by_id(1, PH_ACTIVE)); /* its replacement */
    clock_now += 0.5;
    master_step(ms);
    ck_assert_int_eq(sent_to(pid, SIGKILL), 0);
    clock_now += 0.5;
    master_step(ms);
    ck_assert_int_eq(sent_to(pid, SIGKILL), 1);
    reap(w, W_EXITCODE(0, SIGKILL));
    ck_assert_int_eq(ms->account.retired[RETIRE_TIMEOUT], 1);
    ck_assert_int_eq(ms->account.retired[RETIRE_OOM], 0); /* it was ours */
    teardown();
}
END_TEST

/* A SIGKILL the master did not send: reported as a probable OOM kill. */
START_TEST(test_foreign_sigkill_is_oom)
{
    setup(1, 1);
    master_step(ms);
    serve_all();
    clock_now += 5;
    reap(by_id(1, PH_ACTIVE), W_EXITCODE(0, SIGKILL));
    ck_assert_int_eq(ms->account.retired[RETIRE_OOM], 1);
    ck_assert_int_eq(live(), 1);
    teardown();
}
END_TEST

START_TEST(test_scale_down_and_up)
{
    struct worker *w3;

    setup(3, 1);
    master_step(ms);
    serve_all();
    w3 = by_id(3, PH_ACTIVE);
    ms->target = 2;
    master_step(ms);
    ck_assert_int_eq(w3->phase, PH_RETIRING);
    ck_assert_int_eq(w3->reason, RETIRE_SCALE);
    ck_assert_int_eq(sent_to(w3->pid, SIGTERM), 1);
    ms->target = 4;
    master_step(ms);
    ck_assert_ptr_nonnull(by_id(3, PH_ACTIVE));
    ck_assert_ptr_nonnull(by_id(4, PH_ACTIVE));
    teardown();
}
END_TEST

/* A new generation: the old one serves until all of the new one does. */
START_TEST(test_generation_takes_over)
{
    pid_t old[2];

    setup(2, 1);
    master_step(ms);
    serve_all();
    ms->ready = true;
    old[0] = by_id(1, PH_ACTIVE)->pid;
    old[1] = by_id(2, PH_ACTIVE)->pid;
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid)
            ms->w[i].phase = PH_OLD;
    ms->generation = 2;
    ms->ready = false;
    ms->reload_state = RL_IN_PROGRESS;
    master_step(ms);
    ck_assert_int_eq(live(), 4);
    master_message(ms, by_id(1, PH_ACTIVE), MSG_SERVING, 0);
    master_step(ms);
    ck_assert_int_eq(sent_to(old[0], SIGTERM), 0); /* half the new generation */
    master_message(ms, by_id(2, PH_ACTIVE), MSG_SERVING, 0);
    ck_assert_int_eq(sent_to(old[0], SIGTERM), 0); /* a message only records */
    master_step(ms);
    ck_assert_int_eq(sent_to(old[0], SIGTERM), 1);
    ck_assert_int_eq(sent_to(old[1], SIGTERM), 1);
    ck_assert_int_eq(ms->reload_state, RL_DONE);
    teardown();
}
END_TEST

static int sent_sig(int sig)
{
    int n = 0;

    for (int i = 0; i < nsent; i++)
        n += sent[i].sig == sig;
    return n;
}

/* TERM: every worker is told to finish (TERM), nothing is spawned any more,
 * and what is left at graceful_timeout + 1 s is killed; INT after TERM
 * shortens the wait to a quick stop's. */
START_TEST(test_stop_graceful_then_kill)
{
    setup(2, 1);
    ms->cfg->server.graceful_timeout = 10;
    master_step(ms);
    serve_all();
    ms->intent.stop = true;
    master_step(ms);
    ck_assert_int_eq(ms->mode, STOPPING);
    ck_assert_int_eq(sent_sig(SIGTERM), 2);
    reap(by_id(1, PH_RETIRING), W_EXITCODE(0, 0));
    ck_assert_int_eq(live(), 1); /* no replacement while stopping */
    clock_now += 10.5;
    master_step(ms);
    ck_assert_int_eq(sent_sig(SIGKILL), 0);
    clock_now += 1;
    master_step(ms);
    ck_assert_int_eq(sent_sig(SIGKILL), 1);
    teardown();
}
END_TEST

START_TEST(test_stop_quick)
{
    setup(2, 1);
    ms->cfg->server.graceful_timeout = 60;
    master_step(ms);
    serve_all();
    ms->intent.stop = true;
    master_step(ms);
    ms->intent.quick = true; /* INT after TERM */
    master_step(ms);
    ck_assert_int_eq(sent_sig(SIGQUIT), 2);
    clock_now += 5.5; /* the quick stop's deadline, not 61 s */
    master_step(ms);
    ck_assert_int_eq(sent_sig(SIGKILL), 2);
    teardown();
}
END_TEST

/* TTIN and TTOU as recorded by the signal callback: one worker each, never
 * below 1 or above max_workers; WINCH retires all and spawns none. */
START_TEST(test_scale_signals_and_winch)
{
    setup(2, 1);
    master_step(ms);
    serve_all();
    ms->intent.scale = 2;
    master_step(ms);
    ck_assert_int_eq(ms->target, 4);
    ck_assert_int_eq(live(), 4);
    ms->intent.scale = -10;
    master_step(ms);
    ck_assert_int_eq(ms->target, 1);
    ck_assert_int_eq(sent_sig(SIGTERM), 3);
    ms->intent.scale = 20;
    master_step(ms);
    ck_assert_int_eq(ms->target, ms->cfg->server.max_workers);
    ms->intent.winch = true;
    master_step(ms);
    ck_assert_int_eq(ms->target, 0);
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid)
            ck_assert_int_eq(ms->w[i].phase, PH_RETIRING);
    teardown();
}
END_TEST

/* HUP: the file is read again, a mold started for the next generation;
 * when it is ready the new generation is spawned beside the old, which is
 * told to retire once the new one serves. */
START_TEST(test_reload_generation)
{
    static const char ini[] =
        "[server]\nlisten = 127.0.0.1:0\nworkers = 3\nmax_workers = 8\n"
        "[app]\nmodule = hello\n[recycle]\nmax_concurrent_recycles = 1\n";
    struct mold_msg ready = {.type = MOLD_READY};
    pid_t old[2];

    setup(2, 1);
    ms->cfg->path = strdup("test.ini");
    ms->cfg->text = strdup(ini);
    master_step(ms);
    serve_all();
    old[0] = by_id(1, PH_ACTIVE)->pid;
    old[1] = by_id(2, PH_ACTIVE)->pid;
    ms->intent.reload = true;
    master_step(ms);
    ck_assert_msg(ms->reload_state == RL_IN_PROGRESS, "%s", ms->reload_error);
    ck_assert_int_gt(ms->next_mold.pid, 0);
    ck_assert_int_eq(live(), 2); /* nothing new before the mold has the app */
    master_mold_message(ms, &ms->next_mold, &ready);
    master_step(ms);
    log_set_level(LOG_ERROR); /* the new config's level was applied */
    ck_assert_int_eq(ms->generation, 2);
    ck_assert_int_eq(ms->target, 3);
    ck_assert_int_eq(live(), 5);
    ck_assert_int_eq(sent_to(old[0], SIGTERM), 0);
    serve_all();
    ck_assert_int_eq(sent_to(old[0], SIGTERM), 1);
    ck_assert_int_eq(sent_to(old[1], SIGTERM), 1);
    ck_assert_int_eq(ms->reload_state, RL_DONE);
    for (size_t i = 0; i < ms->nlisten; i++)
        close(ms->lfds[i]);
    free(ms->lfds);
    free(ms->lspec);
    teardown();
}
END_TEST

/* USR2 starts the heir through master_ops, once: a second USR2 while it
 * lives is refused. While it lives this master leaves the socket files to
 * it. An heir that ends gives them back and nothing else changes; one that
 * serves is followed by WINCH (the old workers leave, none replace them)
 * and TERM, and the sockets stay the heir's. */
START_TEST(test_upgrade_heir)
{
    pid_t heir;

    setup(2, 1);
    master_step(ms);
    serve_all();
    ck_assert(master_owns_paths(ms));
    ms->intent.upgrade = true;
    master_step(ms);
    ck_assert_int_eq(heirs_started, 1);
    heir = ms->heir_pid;
    ck_assert_int_gt(heir, 0);
    ck_assert(!master_owns_paths(ms));
    ms->intent.upgrade = true;
    master_step(ms);
    ck_assert_int_eq(heirs_started, 1);
    /* The heir fails: the sockets are this master's again, it goes on. */
    ms->intent.exit_pid = heir;
    ms->intent.exit_status = W_EXITCODE(1, 0);
    master_step(ms);
    ck_assert_int_eq(ms->heir_pid, 0);
    ck_assert(master_owns_paths(ms));
    ck_assert_int_eq(live(), 2);
    ck_assert_int_eq(nsent, 0);
    /* A second try serves: WINCH, then TERM. */
    ms->intent.upgrade = true;
    master_step(ms);
    ck_assert_int_eq(heirs_started, 2);
    ms->intent.winch = true;
    master_step(ms);
    ck_assert_int_eq(sent_sig(SIGTERM), 2);
    ck_assert_int_eq(ms->target, 0);
    reap(by_id(1, PH_RETIRING), W_EXITCODE(0, 0));
    reap(by_id(2, PH_RETIRING), W_EXITCODE(0, 0));
    ck_assert_int_eq(live(), 0);
    ms->intent.stop = true;
    master_step(ms);
    ck_assert_int_eq(ms->mode, STOPPING);
    ck_assert(!master_owns_paths(ms));
    teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("master");
    TCase *tc = tcase_create("policy");

    log_set_level(LOG_ERROR); /* the decisions' log lines are noise here */
    tcase_add_test(tc, test_spawns_the_pool);
    tcase_add_test(tc, test_pending_workers);
    tcase_add_test(tc, test_crash_loop_backoff);
    tcase_add_test(tc, test_app_cannot_boot);
    tcase_add_test(tc, test_recycle_budget);
    tcase_add_test(tc, test_replacement_deadline);
    tcase_add_test(tc, test_timeout_kill_grace);
    tcase_add_test(tc, test_foreign_sigkill_is_oom);
    tcase_add_test(tc, test_scale_down_and_up);
    tcase_add_test(tc, test_generation_takes_over);
    tcase_add_test(tc, test_stop_graceful_then_kill);
    tcase_add_test(tc, test_stop_quick);
    tcase_add_test(tc, test_scale_signals_and_winch);
    tcase_add_test(tc, test_reload_generation);
    tcase_add_test(tc, test_upgrade_heir);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
