/*
 * check.c - preforkd -t: the rest of start-up, tried and undone. The file
 * was read (config.c); here memory shares are resolved, [server] user and
 * group looked up, each log file opened by the process that will write it,
 * the pidfile's place tried, each listening address bound and released, the
 * app module loaded with its [app] keys. Every problem is collected as one
 * line "FILE:LINE: [section] key: message" and printed in line order. Runs
 * only in the process of preforkd -t / -T, never in a daemon.
 * Convention: static checks return nothing and record what they find;
 * check_run returns an exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "accesslog.h"
#include "app.h"
#include "check.h"
#include "holder.h"
#include "listen.h"
#include "log.h"
#include "memlimit.h"
#include "pidfile.h"
#include "proc.h"

#define CAPTURE_BYTES 16384
#define NO_SWITCH 255 /* the access log probe could not become the user */

struct problem {
    int line;
    int seq;
    char *text;
};

static struct {
    const struct config *c;
    struct problem *v;
    size_t n;
    bool oom;
    pid_t instance; /* the running preforkd the pidfile names, or 0 */
} chk;

/* The workers' identity, as proc_drop_privileges will set it. */
struct identity {
    bool drop;
    const char *user;
    uid_t uid;
    gid_t gid;
};

static void add(int line, char *text)
{
    struct problem *grown;

    if (text == NULL || (grown = realloc(chk.v, (chk.n + 1) * sizeof(*grown))) == NULL) {
        free(text);
        chk.oom = true;
        return;
    }
    chk.v = grown;
    chk.v[chk.n] = (struct problem){line, (int)chk.n, text};
    chk.n++;
}

/* "FILE:LINE: [section] key: " + message (no line: "FILE: ..."), malloc'd. */
static char *vformat(int line, const char *section, const char *key, const char *fmt,
                     va_list ap) __attribute__((format(printf, 4, 0)));

static char *vformat(int line, const char *section, const char *key, const char *fmt,
                     va_list ap)
{
    char *msg, *text;
    int n;

    if (vasprintf(&msg, fmt, ap) < 0)
        return NULL;
    if (line > 0)
        n = asprintf(&text, "%s:%d: [%s] %s: %s", chk.c->path, line, section, key, msg);
    else
        n = asprintf(&text, "%s: [%s] %s: %s", chk.c->path, section, key, msg);
    free(msg);
    return n < 0 ? NULL : text;
}

/* An error about [section] key, at the line that set it. */
static void fail(const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(const char *section, const char *key, const char *fmt, ...)
{
    int line = config_line(chk.c, section, key);
    va_list ap;

    va_start(ap, fmt);
    add(line, vformat(line, section, key, fmt, ap));
    va_end(ap);
}

/* A warning or a note about [section] key, printed now. */
static void say(bool warning, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(bool warning, const char *section, const char *key, const char *fmt, ...)
{
    int line = config_line(chk.c, section, key);
    va_list ap;
    char *text;

    va_start(ap, fmt);
    text = vformat(line, section, key, fmt, ap);
    va_end(ap);
    fprintf(stderr, "preforkd: %s%s\n", warning ? "warning: " : "", text ? text : fmt);
    free(text);
}

/* The directory of path, into buf. */
static const char *dir_of(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s", path);
    return dirname(buf);
}

/* ---- user and group ------------------------------------------------------ */

/* [server] key = name found no entry (errno as getpwnam or getgrnam left
 * it): an error as root, else a warning, as start-up then switches nothing.
 * getpwnam(3) lists the errno values that also mean "not found". */
static void no_such(bool root, const char *key, const char *name, const char *what)
{
    const char *why = errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF ||
                              errno == EPERM
                          ? what
                          : strerror(errno);

    if (root)
        fail("server", key, "\"%s\": %s", name, why);
    else
        say(true, "server", key, "\"%s\": %s (an error when preforkd runs as root)", name,
            why);
}

/* As proc_drop_privileges will: as root, user (and group) must exist and
 * a group needs a user; as anyone else nothing is switched, so a missing
 * name is a warning. */
static void check_identity(const struct config *c, struct identity *id)
{
    const char *user = c->server.user, *group = c->server.group;
    bool root = geteuid() == 0;
    struct passwd *pw = NULL;
    struct group *gr = NULL;

    memset(id, 0, sizeof(*id));
    if (user == NULL && group == NULL)
        return;
    errno = 0;
    if (user != NULL && (pw = getpwnam(user)) == NULL)
        no_such(root, "user", user, "no such user");
    else if (pw != NULL)
        *id = (struct identity){.user = user, .uid = pw->pw_uid, .gid = pw->pw_gid};
    errno = 0;
    if (group != NULL && (gr = getgrnam(group)) == NULL)
        no_such(root, "group", group, "no such group");
    else if (gr != NULL)
        id->gid = gr->gr_gid;
    if (!root) {
        if (pw == NULL || id->uid != geteuid())
            say(true, "server", user ? "user" : "group",
                "not running as root: "
                "workers keep uid %d, and files are tried as it",
                (int)geteuid());
        return;
    }
    if (user == NULL)
        fail("server", "group", "needs [server] user as well");
    id->drop = pw != NULL && (group == NULL || gr != NULL);
}

/* ---- log files ----------------------------------------------------------- */

/* Opens path for appending as the log code does, creating it only when it
 * is missing (O_EXCL: what this creates is what it removes). 0 or errno. */
static int try_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == ENXIO) /* a FIFO nobody reads yet: start-up waits for one */
        return 0;
    if (errno != ENOENT)
        return errno;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, 0640);
    if (fd < 0)
        return errno == EEXIST ? 0 : errno; /* created meanwhile: it is there */
    unlink(path);
    close(fd);
    return 0;
}

/* In a child: becomes the workers' identity, as proc_drop_privileges
 * does (when there is one to become). 0 / -1 with errno. */
static int become(const struct identity *id)
{
    if (!id->drop)
        return 0;
    if (initgroups(id->user, id->gid) < 0 || setgid(id->gid) < 0 || setuid(id->uid) < 0)
        return -1;
    return 0;
}

/* Forks a child that stays silent on stdout (-T writes the file there). */
static pid_t fork_child(void)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == 0)
        dup2(2, 1);
    return pid;
}

static int wait_child(pid_t pid, int *st)
{
    while (waitpid(pid, st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/* try_append in a child that has become id, as a worker has when it opens
 * the access log. 0, an errno, or NO_SWITCH. */
static int try_append_as(const char *path, const struct identity *id)
{
    pid_t pid;
    int st, err;

    if (!id->drop)
        return try_append(path);
    if ((pid = fork_child()) < 0)
        return errno;
    if (pid == 0) {
        if (become(id) < 0)
            _exit(NO_SWITCH);
        err = try_append(path);
        _exit(err > 0 && err < NO_SWITCH ? err : err ? EIO : 0);
    }
    if (wait_child(pid, &st) < 0)
        return errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

static void check_logs(const struct config *c, const struct identity *id)
{
    const char *access = c->log.access_log;
    char why[160];
    int err;

    if (strcmp(c->log.error_log, "stderr") != 0 && (err = try_append(c->log.error_log)))
        fail("log", "error_log", "%s: %s", c->log.error_log, strerror(err));
    if (access == NULL)
        return;
    if (accesslog_check_format(c->log.access_log_format, why, sizeof(why)) < 0)
        fail("log", "access_log_format", "%s", why);
    if (strcmp(access, "stderr") == 0 || (err = try_append_as(access, id)) == 0)
        return;
    if (err == NO_SWITCH)
        fail("log", "access_log", "%s: cannot become user %s to try it", access,
             id->user);
    else if (id->drop)
        fail("log", "access_log", "%s: %s (workers open it as user %s)", access,
             strerror(err), id->user);
    else
        fail("log", "access_log", "%s: %s", access, strerror(err));
}

/* ---- the pidfile ---------------------------------------------------------- */

static bool is_master(pid_t pid)
{
    char cmd[PATH_MAX + 64];

    return strncmp(holder_cmdline(pid, cmd, sizeof(cmd)), "preforkd: master",
                   strlen("preforkd: master")) == 0;
}

/* A directory for runtime files (pidfile, unix sockets) that does not
 * exist: the service manager may create it at start (systemd's
 * RuntimeDirectory=), so it is a warning. */
static void no_runtime_dir(const char *section, const char *key, const char *path)
{
    char dir[PATH_MAX];

    say(true, section, key,
        "directory %s does not exist: start-up fails without it, "
        "unless the service manager creates it first (systemd: RuntimeDirectory=)",
        dir_of(path, dir, sizeof(dir)));
}

/* As pidfile_write: a live master named there is the running instance
 * (whose addresses are then its own); any other live pid stops start-up;
 * otherwise path.tmp must be creatable. */
static void check_pidfile(const struct config *c)
{
    const char *path = c->server.pidfile;
    char tmp[PATH_MAX], dir[PATH_MAX];
    long pid;
    int fd;

    if (path == NULL)
        return;
    if ((pid = pidfile_read(path)) < 0) {
        fail("server", "pidfile", "%s: %s", path, strerror(errno));
        return;
    }
    if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
        if (is_master((pid_t)pid)) {
            chk.instance = (pid_t)pid;
            say(false, "server", "pidfile",
                "%s: preforkd runs as pid %ld: the "
                "addresses it holds are this file's",
                path, pid);
        } else {
            fail("server", "pidfile",
                 "%s: names pid %ld, a live process that is not a "
                 "preforkd master: start-up would refuse to start (remove the file if "
                 "it is stale)",
                 path, pid);
        }
        return;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) >= 0) {
        close(fd);
        unlink(tmp);
    } else if (errno == ENOENT) {
        no_runtime_dir("server", "pidfile", path);
    } else if (errno != EEXIST || access(dir_of(path, dir, sizeof(dir)), W_OK) < 0) {
        /* EEXIST: a stale path.tmp, which start-up removes */
        fail("server", "pidfile", "%s: %s", path, strerror(errno));
    }
}

/* ---- listening addresses -------------------------------------------------- */

/* Is pid a preforkd master started with this very file (-c naming it, from
 * its own working directory)? */
static bool master_of_this_file(pid_t pid)
{
    char cmd[PATH_MAX + 64], path[PATH_MAX + 64];
    const char *prefix = "preforkd: master -c ", *file;
    struct stat ours, theirs;

    holder_cmdline(pid, cmd, sizeof(cmd));
    if (strncmp(cmd, prefix, strlen(prefix)) != 0 || stat(chk.c->path, &ours) < 0)
        return false;
    file = cmd + strlen(prefix);
    if (file[0] == '/')
        snprintf(path, sizeof(path), "%s", file);
    else
        snprintf(path, sizeof(path), "/proc/%d/cwd/%s", (int)pid, file);
    return stat(path, &theirs) == 0 && theirs.st_dev == ours.st_dev &&
           theirs.st_ino == ours.st_ino;
}

/* a cannot be bound: by whom? The running preforkd of this file (named by
 * the pidfile, or without one a master started with -c this file) is fine;
 * so is the service manager, which hands its sockets over at start. */
static void in_use(const struct listen_addr *a, const char *section, const char *key)
{
    pid_t pids[HOLDER_MAX];
    size_t n = holder_find(a, pids, HOLDER_MAX);
    char cmd[256];

    for (size_t i = 0; i < n; i++)
        if (pids[i] == chk.instance ||
            (chk.instance == 0 && master_of_this_file(pids[i]))) {
            say(false, section, key, "%s: in use by the running preforkd (pid %d): fine",
                a->text, (int)pids[i]);
            return;
        }
    for (size_t i = 0; i < n; i++)
        /* sd_booted(3)'s test: PID 1 is systemd when this directory exists
         * (its command line may be /sbin/init). */
        if (pids[i] == 1 && access("/run/systemd/system", F_OK) == 0) {
            say(false, section, key,
                "%s: held by systemd (pid 1), which hands it to "
                "preforkd at start (socket activation): fine",
                a->text);
            return;
        }
    if (n > 0)
        fail(section, key, "%s: %s: held by pid %d (%s)", a->text, strerror(EADDRINUSE),
             (int)pids[0], holder_name(pids[0], cmd, sizeof(cmd)));
    else
        fail(section, key, "%s: %s%s", a->text, strerror(EADDRINUSE),
             geteuid() != 0 ? " (by a process of another user, or a socket not listening)"
                            : "");
}

/* A unix socket path: a live socket is in use, a stale one start-up
 * replaces, anything else there it will not; a new one is bound and
 * removed again. */
static void check_unix(struct listen_addr *a, const char *section, const char *key)
{
    const char *path = a->u.un.sun_path;
    char dir[PATH_MAX];
    struct stat st;
    int fd;

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            fail(section, key,
                 "%s: %s exists and is not a socket (start-up does not "
                 "remove it)",
                 a->text, path);
        else if (holder_unix_listening(a))
            in_use(a, section, key);
        else if (access(dir_of(path, dir, sizeof(dir)), W_OK) < 0)
            fail(section, key, "%s: cannot replace the stale socket: %s", a->text,
                 strerror(errno));
        return;
    }
    if (errno == ENOENT && stat(dir_of(path, dir, sizeof(dir)), &st) < 0 &&
        errno == ENOENT) {
        no_runtime_dir(section, key, path);
        return;
    }
    if ((fd = listen_open(a, 1)) < 0) {
        fail(section, key, "%s: %s", a->text, strerror(errno));
        return;
    }
    listen_close(fd, a); /* removes the file it bound */
}

static void check_address(const struct listen_addr *spec, int backlog,
                          const char *section, const char *key)
{
    struct listen_addr a = *spec; /* listen_open writes to it */
    int fd, err;

    if (a.family == AF_UNIX) {
        check_unix(&a, section, key);
        return;
    }
    if ((fd = listen_open(&a, backlog)) >= 0) {
        close(fd);
        return;
    }
    if ((err = errno) == EADDRINUSE)
        in_use(spec, section, key);
    else
        fail(section, key, "%s: %s%s", spec->text, strerror(err),
             err == EACCES && listen_port(&spec->u.sa) < 1024
                 ? " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
                 : "");
}

/* ---- the app ------------------------------------------------------------- */

/* Where the app's messages that name no line go: the [app] key the first
 * of them named ("wsgi: [app] app: cannot import ..."), else module. */
struct app_at {
    int line;
    char key[64];
};

/* "NAME: [app] KEY: text" with KEY an [app] key of c: points *msg at text
 * and moves `at` there. */
static void app_key_named(const struct config *c, const char **msg, struct app_at *at)
{
    const char *s = strstr(*msg, "[app] ");
    const struct config_kv *kv;
    char key[64];
    int n = 0;

    if (s == NULL || s - *msg > 32 || sscanf(s, "[app] %63[^: ]: %n", key, &n) != 1 ||
        n == 0 || (kv = config_app_find(c, key)) == NULL)
        return;
    at->line = kv->line;
    snprintf(at->key, sizeof(at->key), "%s", key);
    *msg = s + n;
}

/* One error line the app code logged. Those of pf_config_error name their
 * file and line already ("config: FILE:LINE: [app] key: ..."); the others
 * (module not found, load failed, a Python traceback) go where `at` says. */
static void app_problem(const struct config *c, const char *msg, struct app_at *at)
{
    size_t plen = strlen(c->path);
    char *text = NULL;
    int line;

    if (strncmp(msg, "config: ", 8) == 0 && strncmp(msg + 8, c->path, plen) == 0) {
        const char *rest = msg + 8 + plen;
        if (sscanf(rest, ":%d:", &line) == 1) {
            add(line, strdup(msg + 8));
            return;
        }
        /* a key the file lacks: at the [app] header */
        line = config_line(c, "app", NULL);
        if (asprintf(&text, "%s:%d%s", c->path, line, rest) < 0)
            text = NULL;
        add(line, text);
        return;
    }
    if (strncmp(msg, "config: ", 8) == 0)
        msg += 8;
    else if (strncmp(msg, "app: ", 5) == 0)
        msg += 5;
    if (strncmp(msg, "module \"", 8) == 0)
        msg += 7;
    app_key_named(c, &msg, at);
    if (asprintf(&text, "%s:%d: [app] %s: %s", c->path, at->line, at->key, msg) < 0)
        text = NULL;
    add(at->line, text);
}

/* The child of check_app: loads the module as the workers' user, as the
 * mold does before it preloads, and writes the error lines logged meanwhile
 * to fd. */
static void load_as(struct config *c, const struct identity *id, int fd)
{
    static char errs[CAPTURE_BYTES];
    struct app app;
    size_t len, off = 0;

    if (become(id) < 0) {
        snprintf(errs, sizeof(errs), "app: cannot become user %s to load it: %s\n",
                 id->user, strerror(errno));
    } else {
        log_capture_only(errs, sizeof(errs));
        if (app_open(&app, c->app.module) == 0)
            app_load(&app, c);
        app_close(&app);
        log_capture_only(NULL, 0);
    }
    for (len = strlen(errs); off < len;) {
        ssize_t n = write(fd, errs + off, len - off);
        if (n < 0 && errno != EINTR)
            break;
        off += n > 0 ? (size_t)n : 0;
    }
    _exit(0);
}

/* Opens the module and runs its load() and unload() on the [app] keys, in
 * a child that has become [server] user (a file only root may read fails
 * as it will at start, and a module that crashes takes only the child),
 * with the error lines they log taken as problems. */
static void check_app(struct config *c, const struct identity *id)
{
    static char errs[CAPTURE_BYTES];
    struct app_at at = {.line = config_line(c, "app", "module"), .key = "module"};
    char how[64];
    size_t got = 0;
    int p[2], st;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork_child()) < 0) {
        fail("app", "module", "cannot start a process to load it: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        close(p[0]);
        load_as(c, id, p[1]);
    }
    close(p[1]);
    for (;;) { /* the child writes less than errs holds */
        ssize_t n = read(p[0], errs + got, sizeof(errs) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || (got += (size_t)n) == sizeof(errs) - 1)
            break;
    }
    errs[got] = '\0';
    close(p[0]);
    if (wait_child(pid, &st) == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fail("app", "module", "%s: the process loading it %s", c->app.module,
             proc_describe(st, how, sizeof(how)));
    for (char *line = errs; *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (*line != '\0')
            app_problem(c, line, &at);
        if (nl == NULL)
            break;
        line = nl + 1;
    }
}

/* ---- all of it ------------------------------------------------------------ */

static int problem_cmp(const void *x, const void *y)
{
    const struct problem *a = x, *b = y;

    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* See check.h. */
int check_run(struct config *c)
{
    struct identity id;
    char err[1024];
    int rc = 0;

    memset(&chk, 0, sizeof(chk));
    chk.c = c;
    if (memlimit_check(c, err, sizeof(err)) < 0)
        add(c->recycle.max_rss_hard_set.line, strdup(err));
    check_identity(c, &id);
    check_logs(c, &id); /* forks: before the module may start threads */
    check_pidfile(c);
    for (size_t i = 0; i < c->server.nlisten; i++)
        check_address(&c->server.listen[i], (int)c->server.backlog, "server", "listen");
    if (c->admin.enabled)
        check_address(&c->admin.listen, 64, "admin", "listen");
    check_app(c, &id);
    if (chk.n > 0)
        qsort(chk.v, chk.n, sizeof(*chk.v), problem_cmp);
    for (size_t i = 0; i < chk.n; i++) {
        fprintf(stderr, "%s\n", chk.v[i].text);
        free(chk.v[i].text);
    }
    if (chk.oom)
        fprintf(stderr, "preforkd: out of memory\n");
    if (chk.n > 0 || chk.oom)
        rc = EXIT_CONFIG;
    fprintf(stderr, "preforkd: %s: configuration %s\n", c->path, rc ? "invalid" : "ok");
    free(chk.v);
    memset(&chk, 0, sizeof(chk));
    return rc;
}
