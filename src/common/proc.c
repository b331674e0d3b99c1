/*
 * proc.c - process mechanism used by the master's policy (master.c) and
 * the mold: fork with signals held, the child's reset of signal state,
 * dropping privileges (mold, worker, -t), and wait-status text. Runs where
 * proc.h says. Policy (when to fork or kill) is not here.
 * Convention: 0 / -1 with errno.
 */
#include <errno.h>
#include <sched.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "log.h"
#include "proc.h"

static sigset_t saved_mask;

pid_t proc_fork(void)
{
    sigset_t all;
    pid_t pid;
    int saved;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved_mask);
    pid = fork();
    if (pid != 0) {
        saved = errno;
        sigprocmask(SIG_SETMASK, &saved_mask, NULL);
        errno = saved;
    }
    return pid;
}

pid_t proc_fork_shared(int (*fn)(void *), void *arg)
{
    /* The child runs on it while the caller is suspended (CLONE_VFORK). */
    static char stack[128 * 1024] __attribute__((aligned(64)));
    sigset_t all;
    pid_t pid;
    int saved;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved_mask);
    pid = clone(fn, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
    saved = errno;
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    errno = saved;
    return pid;
}

void proc_child_reset_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        sa.sa_handler = sig == SIGPIPE ? SIG_IGN : SIG_DFL;
        sigaction(sig, &sa, NULL); /* fails harmlessly for RT signals glibc owns */
    }
}

void proc_child_signals_done(void)
{
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int proc_drop_privileges(const char *user, const char *group)
{
    struct passwd *pw;
    gid_t gid;

    if (user == NULL && group == NULL)
        return 0;
    if (geteuid() != 0 && user != NULL && (pw = getpwnam(user)) != NULL &&
        pw->pw_uid == geteuid())
        return 0; /* dropped already (by the mold that forked this worker) */
    if (geteuid() != 0) {
        log_warnx("user/group set but not running as root: keeping uid %d",
                  (int)geteuid());
        return 0;
    }
    if (user == NULL) {
        log_errx("group = %s needs user = as well", group);
        return -1;
    }
    errno = 0;
    if ((pw = getpwnam(user)) == NULL) {
        log_errx("user %s: %s", user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    gid = pw->pw_gid;
    if (group != NULL) {
        struct group *gr = getgrnam(group);
        if (gr == NULL) {
            log_errx("group %s: no such group", group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        log_err("dropping privileges to %s", user);
        return -1;
    }
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        log_errx("dropping privileges to %s: root could be regained", user);
        return -1;
    }
    return 0;
}

const char *proc_describe(int wstatus, char *buf, size_t len)
{
    if (WIFEXITED(wstatus))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, len, "killed by signal %d (SIG%s)%s", WTERMSIG(wstatus),
                 sigabbrev_np(WTERMSIG(wstatus)) ? sigabbrev_np(WTERMSIG(wstatus)) : "?",
                 WCOREDUMP(wstatus) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended with wait status 0x%x", wstatus);
    return buf;
}
