/*
 * threads.c - where the app runs, and the hand-over between Python and the
 * loop. threads = N >= 1: N pthreads, each with its own Python thread
 * state, take jobs from a queue, run them with the GIL, and report through
 * an outbox and an ev_async on pf_loop(); the loop thread never holds the
 * GIL. threads = 0: the loop thread runs the app itself, taking the GIL
 * around each turn. Runs in a worker: the loop thread and the pool threads.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wsgi.h"

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the lists ------------------------------------------------------------------- */

void threads_post(struct job *j)
{
    struct wsgi *w = j->w;

    if (w->nthreads == 0)
        return; /* the loop runs Python itself and delivers after */
    lock(w);
    if (!j->in_out) {
        j->in_out = true;
        j->next_out = NULL;
        if (w->out_tail != NULL)
            w->out_tail->next_out = j;
        else
            w->out_head = j;
        w->out_tail = j;
    }
    unlock(w);
    ev_async_send(w->loop, &w->wake);
}

void threads_kick(struct job *j)
{
    struct wsgi *w = j->w;

    if (j->in_ready || j->ended)
        return;
    j->in_ready = true;
    j->next_ready = NULL;
    if (w->ready_tail != NULL)
        w->ready_tail->next_ready = j;
    else
        w->ready_head = j;
    w->ready_tail = j;
    ev_async_send(w->loop, &w->wake);
}

void threads_release(struct job *j)
{
    bool listed;

    lock(j->w);
    j->ended = true;
    listed = j->in_out || j->in_ready;
    unlock(j->w);
    if (!listed)
        job_free(j);
}

void threads_schedule(struct job *j)
{
    struct wsgi *w = j->w;

    lock(w);
    if (j->py != PY_IDLE) {
        unlock(w);
        return;
    }
    j->py = PY_QUEUED;
    if (w->nthreads == 0) {
        unlock(w);
        threads_kick(j); /* the loop runs it on its next turn */
        return;
    }
    j->next_run = NULL;
    if (w->run_tail != NULL)
        w->run_tail->next_run = j;
    else
        w->run_head = j;
    w->run_tail = j;
    pthread_cond_signal(&w->cv);
    unlock(w);
}

void threads_abort(struct job *j)
{
    lock(j->w);
    j->aborted = true;
    pthread_cond_broadcast(&j->w->room); /* a write() may wait */
    unlock(j->w);
    threads_kick(j); /* not from inside the daemon's callback */
}

void threads_run_inline(struct job *j)
{
    struct wsgi *w = j->w;

    PyEval_RestoreThread(w->main_ts);
    j->py = PY_RUNNING;
    response_run(j);
    w->main_ts = PyEval_SaveThread();
}

/* ---- the loop's side ---------------------------------------------------------------- */

static void flush_logs(struct wsgi *w)
{
    struct logline *l;

    lock(w);
    l = w->logs;
    w->logs = NULL;
    w->logs_tail = &w->logs;
    unlock(w);
    while (l != NULL) {
        struct logline *next = l->next;
        pf_log(l->level, "%s", l->text);
        free(l);
        l = next;
    }
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    struct wsgi *w = a->data;
    struct job *j;

    flush_logs(w);
    for (;;) { /* news from the pool */
        bool ended, in_ready;

        lock(w);
        if ((j = w->out_head) != NULL) {
            w->out_head = j->next_out;
            if (w->out_head == NULL)
                w->out_tail = NULL;
            j->in_out = false;
        }
        unlock(w);
        if (j == NULL)
            break;
        ended = j->ended;
        in_ready = j->in_ready;
        if (!ended)
            response_deliver(j);
        else if (!in_ready)
            job_free(j);
    }
    while ((j = w->ready_head) != NULL) { /* the loop's own turns */
        bool in_out;

        w->ready_head = j->next_ready;
        if (w->ready_head == NULL)
            w->ready_tail = NULL;
        j->in_ready = false;
        if (j->ended) {
            lock(w);
            in_out = j->in_out;
            unlock(w);
            if (!in_out)
                job_free(j);
            continue;
        }
        if (w->nthreads == 0 && j->py == PY_QUEUED)
            threads_run_inline(j);
        response_deliver(j);
    }
}

/* A job in Python for longer than stuck_timeout: Python code cannot be
 * interrupted, and this worker's heartbeat goes on (the loop is free), so
 * the master would never replace it. Ask for a replacement instead
 * (pf_worker_recycle, counted "requested"): it starts first, then this
 * worker retires gracefully (in-flight requests finish, up to
 * graceful_timeout; the stuck one is cut then). */
static void on_stuck_check(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct wsgi *w = t->data;
    double now = mono();
    char what[160] = "";
    double age = 0;

    if (w->stuck_reported)
        return;
    lock(w);
    for (int i = 0; i < w->started_threads; i++) {
        struct pythread *p = &w->threads[i];
        if (p->busy && now - p->since > w->stuck_timeout) {
            age = now - p->since;
            memcpy(what, p->what, sizeof(what));
            break;
        }
    }
    unlock(w);
    if (age == 0)
        return;
    w->stuck_reported = true;
    pf_log(PF_LOG_ERROR,
           "wsgi: request %s stuck in the app for %.0fs "
           "(stuck_timeout %gs): asking for this worker's replacement",
           what, age, w->stuck_timeout);
    pf_worker_recycle();
}

static void on_heap_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    wsgi_publish_heap();
}

/* ---- the pool --------------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct pythread *t = arg;
    struct wsgi *w = t->w;

    /* A thread state of this thread's own, known to PyGILState_* (which
     * C extensions call from their callbacks). */
    PyGILState_Ensure();
    t->ts = PyEval_SaveThread();
    for (;;) {
        struct job *j;

        lock(w);
        while (w->run_head == NULL && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping) {
            unlock(w);
            break;
        }
        j = w->run_head;
        w->run_head = j->next_run;
        if (w->run_head == NULL)
            w->run_tail = NULL;
        j->py = PY_RUNNING;
        t->busy = true;
        t->since = mono();
        snprintf(t->what, sizeof(t->what), "%.*s %.*s", (int)j->method.len, j->method.ptr,
                 (int)(j->target.len > 120 ? 120 : j->target.len), j->target.ptr);
        unlock(w);
        PyEval_RestoreThread(t->ts);
        response_run(j); /* j may be gone once this returns */
        PyEval_SaveThread();
        lock(w);
        t->busy = false;
        unlock(w);
    }
    return NULL; /* the thread state stays: the process is exiting */
}

int threads_start(struct wsgi *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->room, NULL);
    w->logs = NULL;
    w->logs_tail = &w->logs;
    ev_async_init(&w->wake, on_wake);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    wsgi_publish_heap();
    ev_timer_init(&w->heap, on_heap_tick, 1., 1.);
    ev_timer_start(w->loop, &w->heap);
    if (w->nthreads == 0)
        return 0;
    if (w->stuck_timeout > 0) {
        ev_timer_init(&w->stuck, on_stuck_check, 1., 1.);
        w->stuck.data = w;
        ev_timer_start(w->loop, &w->stuck);
    }
    w->threads = calloc((size_t)w->nthreads, sizeof(*w->threads));
    if (w->threads == NULL)
        return -1;
    for (int i = 0; i < w->nthreads; i++) {
        struct pythread *t = &w->threads[i];
        char name[16];

        t->w = w;
        t->n = i + 1;
        if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
            pf_log(PF_LOG_ERROR, "wsgi: cannot start Python thread %d", i + 1);
            return -1;
        }
        snprintf(name, sizeof(name), "wsgi-%d", i + 1);
        pthread_setname_np(t->tid, name);
        w->started_threads++;
    }
    return 0;
}

void threads_stop(struct wsgi *w)
{
    if (w->loop == NULL)
        return;
    lock(w);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_cond_broadcast(&w->room);
    unlock(w);
    flush_logs(w);
    ev_async_stop(w->loop, &w->wake);
    ev_timer_stop(w->loop, &w->heap);
    if (w->nthreads > 0 && w->stuck_timeout > 0)
        ev_timer_stop(w->loop, &w->stuck);
    /* Not joined: a thread stuck in the app would hold the exit forever,
     * and the process exits right after this. */
}
