/*
 * deliver.c - the loop's half of a response: turns what the Python half
 * queued in the job (head, body bytes, a file, a failure) into pf_respond
 * and pf_response_* calls, waits for drains, sends wsgi.file_wrapper files,
 * ends the request and frees the job. Runs on the worker's loop thread
 * only, without the GIL.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsgi.h"

#define FILE_PIECE (64 * 1024)

void job_free(struct job *j)
{
    if (j->file_fd >= 0)
        close(j->file_fd);
    free(j->q.p);
    free(j->spare.p);
    free(j->ohdrs);
    free(j);
}

static void on_drain(pf_request *r, void *arg)
{
    struct job *j = arg;

    lock(j->w);
    j->blocked = false;
    pthread_cond_broadcast(&j->w->room); /* a write() may wait for this */
    unlock(j->w);
    threads_kick(j);
}

/* Writes data; false when the client is gone (j is then aborted). */
static bool write_out(struct job *j, const char *p, size_t n)
{
    int rc = pf_response_write(j->r, p, n);

    if (rc == 1) {
        lock(j->w);
        j->blocked = true;
        unlock(j->w);
        pf_response_on_drain(j->r, on_drain, j);
    } else if (rc < 0) {
        lock(j->w);
        j->aborted = true;
        pthread_cond_broadcast(&j->w->room);
        unlock(j->w);
        return false;
    }
    return true;
}

/* Sends file pieces until the client's buffer is full or the file ends;
 * then Python is due to close() the response. */
static void send_file(struct job *j)
{
    char *buf = malloc(FILE_PIECE);

    while (buf != NULL && j->file_left > 0 && !j->blocked && !j->aborted) {
        size_t want = j->file_left < FILE_PIECE ? j->file_left : FILE_PIECE;
        ssize_t n = pread(j->file_fd, buf, want, (off_t)j->file_off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            wsgi_log(j->w, PF_LOG_ERROR,
                     "wsgi: %.*s: reading the file of "
                     "wsgi.file_wrapper: %s: cutting the response",
                     (int)j->target.len, j->target.ptr,
                     n < 0 ? strerror(errno) : "it is shorter than it was");
            j->failed = true;
            break;
        }
        j->file_off += (uint64_t)n;
        j->file_left -= (uint64_t)n;
        if (!write_out(j, buf, (size_t)n))
            break;
    }
    free(buf);
    if (buf == NULL || j->file_left == 0 || j->failed || j->aborted) {
        if (buf == NULL)
            j->failed = true;
        close(j->file_fd);
        j->file_fd = -1;
        lock(j->w);
        j->file_sending = false;
        j->file_done = true;
        unlock(j->w);
    }
}

/* pf_respond / pf_response_start said -1 while the client is still
 * there: the daemon refused the head (the app's headers passed our checks
 * but not its own). The request is still open: end it with a 500. */
static void refused(struct job *j)
{
    wsgi_log(j->w, PF_LOG_ERROR,
             "wsgi: %.*s %.*s: the daemon refused the "
             "app's response head (status %d): answering 500",
             (int)j->method.len, j->method.ptr, (int)j->target.len, j->target.ptr,
             j->status);
    pf_respond(j->r, 500, NULL, 0, "500 Internal Server Error\n", 26);
}

/* The abort callback has run (it runs inside the daemon's call that
 * noticed, so a -1 from a pf_ call is explained by it). */
static bool client_gone(struct job *j)
{
    bool gone;

    lock(j->w);
    gone = j->aborted;
    unlock(j->w);
    return gone;
}

/* Ends the request and frees j. */
static void end(struct job *j, bool failed, bool aborted)
{
    if (j->ended_early) {
        threads_release(j);
        return;
    }
    if (!j->head_sent)
        pf_respond(j->r, 500, NULL, 0, NULL, 0); /* aborted: only frees */
    else if (failed || aborted)
        pf_response_abort(j->r);
    else
        pf_response_end(j->r);
    threads_release(j);
}

/* What the Python half left for the loop, taken at once under the lock. */
struct snap {
    struct obuf q;
    enum py_state py;
    bool head_ready, failed, aborted, file, file_done;
};

static void take(struct job *j, struct snap *s)
{
    struct wsgi *w = j->w;

    lock(w);
    s->q = j->q;
    j->q = (struct obuf){0};
    if (s->q.len >= WSGI_WINDOW)
        pthread_cond_broadcast(&w->room); /* a write() may wait for this */
    s->head_ready = j->head_ready;
    s->py = j->py;
    s->failed = j->failed;
    s->aborted = j->aborted;
    s->file = j->file_sending;
    s->file_done = j->file_done;
    unlock(w);
}

/* The client left (or the head was refused): stop the file, let Python
 * close() the response, end the request once Python is done. */
static void gone(struct job *j, const struct snap *s)
{
    if (s->file) {
        close(j->file_fd);
        j->file_fd = -1;
        lock(j->w);
        j->file_sending = false;
        j->file_done = true;
        unlock(j->w);
    }
    if (s->py == PY_DONE)
        end(j, s->failed, true);
    else if (s->py == PY_IDLE)
        threads_schedule(j);
}

/* The head: with the whole body when everything is there (the common
 * case), else the start of a streamed response. false when j is finished
 * with (ended or waiting for Python to stop). */
static bool send_head(struct job *j, struct snap *s)
{
    if (s->py == PY_DONE && !s->failed && !s->file_done &&
        (!j->has_cl || j->cl == s->q.len)) {
        if (pf_respond(j->r, j->status, j->ohdrs, j->nohdrs, s->q.p, s->q.len) < 0 &&
            !client_gone(j))
            refused(j); /* invalid use: the request is still open */
        threads_release(j);
        return false;
    }
    if (pf_response_start(j->r, j->status, j->ohdrs, j->nohdrs) < 0 && !client_gone(j)) {
        refused(j);
        lock(j->w);
        j->aborted = true; /* Python stops; the request has ended */
        j->ended_early = true;
        pthread_cond_broadcast(&j->w->room);
        unlock(j->w);
        if (s->py == PY_IDLE)
            threads_schedule(j);
        else if (s->py == PY_DONE)
            threads_release(j);
        return false;
    }
    j->head_sent = true; /* or counts as sent: the client is gone */
    return true;
}

/* Hands q's buffer back for reuse: as the queue when Python has not made
 * a new one, else as the spare Python takes next. */
static void give_back(struct job *j, struct obuf *q)
{
    lock(j->w);
    if (j->q.p == NULL) {
        j->q.p = q->p;
        j->q.cap = q->cap;
        q->p = NULL;
    } else if (j->spare.p == NULL) {
        j->spare = *q;
        q->p = NULL;
    }
    unlock(j->w);
    free(q->p);
}

void response_deliver(struct job *j)
{
    struct snap s;

    if (j->ended)
        return;
    take(j, &s);
    if (s.aborted) {
        free(s.q.p);
        gone(j, &s);
        return;
    }
    if (!j->head_sent && s.head_ready && !send_head(j, &s)) {
        free(s.q.p);
        return;
    }
    if (s.q.len > 0 && !write_out(j, s.q.p, s.q.len)) {
        free(s.q.p);
        response_deliver(j); /* the client is gone */
        return;
    }
    give_back(j, &s.q);
    if (s.file && !j->blocked) {
        send_file(j);
        if (j->aborted) {
            response_deliver(j);
            return;
        }
        s.file_done = j->file_done;
    }
    if (s.py == PY_DONE)
        end(j, s.failed, false);
    else if (s.py == PY_IDLE && !j->file_sending && (s.file_done || !j->blocked))
        threads_schedule(j); /* parked: pull more */
}
