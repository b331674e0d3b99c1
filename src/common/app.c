/*
 * app.c - application modules: resolve a module name to a file, dlopen it,
 * check its ABI, run its life-cycle calls, and serve pf_config_* to load().
 * Runs in the mold (load with preload, the fork hooks), in workers (load
 * when preload = false, worker_init, commands, worker_exit) and in
 * preforkd -t; never in the master. Owns the dlopen handle and the module's
 * state pointer. Convention: 0 / -1; every failure is logged here.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "log.h"
#include "paths.h"

/* What load() sees as `const pf_app_config *`: the parsed file, so errors can
 * name its path and each key's line, and pf_config_get can mark keys used. */
struct pf_app_config {
    struct config *c;
};

static const char *cfg_file(const struct config *c)
{
    return c->path != NULL ? c->path : "(config)";
}

/* The directory of the running executable, into buf; -1 if unknown. */
static int exe_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    char *slash;

    if (n <= 0 || (size_t)n >= size - 1)
        return -1;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    return 0;
}

static int is_builtin_name(const char *module)
{
    size_t len = strlen(module);

    return strchr(module, '/') == NULL &&
           !(len >= 3 && strcmp(module + len - 3, ".so") == 0);
}

static int valid_builtin_name(const char *name)
{
    if (*name == '\0')
        return 0;
    for (; *name != '\0'; name++) {
        char ch = *name;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-'))
            return 0;
    }
    return 1;
}

/* A built-in name: <dir of the executable>/apps/NAME.so (a build tree),
 * then PF_APPDIR/NAME.so (an installation). Returns a malloc'd path. */
static char *resolve_builtin(const char *name)
{
    char dir[PATH_MAX], tried[2][PATH_MAX + 64];
    int ntried = 0, i;

    if (!valid_builtin_name(name)) {
        log_errx("app: module \"%s\": a built-in name is [a-z0-9_-]+ "
                 "(or give a path to a .so)",
                 name);
        return NULL;
    }
    if (exe_dir(dir, sizeof dir) == 0)
        snprintf(tried[ntried++], sizeof tried[0], "%s/apps/%s.so", dir, name);
    snprintf(tried[ntried++], sizeof tried[0], "%s/%s.so", PF_APPDIR, name);
    for (i = 0; i < ntried; i++)
        if (access(tried[i], F_OK) == 0)
            return strdup(tried[i]);
    if (ntried == 2)
        log_errx("app: module \"%s\": not found (tried %s, %s)", name, tried[0],
                 tried[1]);
    else
        log_errx("app: module \"%s\": not found (tried %s)", name, tried[0]);
    return NULL;
}

/* A path. One without '/' ("x.so") gets "./" so that dlopen reads that
 * file instead of searching the library path. Returns a malloc'd path. */
static char *resolve_path(const char *module)
{
    char *path;

    if (strchr(module, '/') != NULL)
        return strdup(module);
    if (asprintf(&path, "./%s", module) < 0)
        return NULL;
    return path;
}

static int check_entry(const char *path, const struct pf_app *api)
{
    if (api->abi_version != PF_ABI_VERSION) {
        log_errx("app: %s: ABI version %u, this preforkd speaks %d: rebuild "
                 "the module against this preforkd's preforkd.h",
                 path, (unsigned)api->abi_version, PF_ABI_VERSION);
        return -1;
    }
    if (api->size < PF_APP_SIZE_V1) {
        log_errx("app: %s: struct pf_app of %u bytes, expected at least %zu: "
                 "rebuild the module against this preforkd's preforkd.h",
                 path, (unsigned)api->size, (size_t)PF_APP_SIZE_V1);
        return -1;
    }
    if (api->handle == NULL) {
        log_errx("app: %s: pf_app_entry has no handle function", path);
        return -1;
    }
    return 0;
}

/* Copies all of in to out (plain read/write: copy_file_range refuses to
 * cross file system types, and a memfd lives on tmpfs). 0 / -1. */
static int copy_fd(int in, int out)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR)
                return -1;
            off += w > 0 ? w : 0;
        }
    }
    return 0;
}

/* dlopen of a path this process has loaded already returns that handle,
 * and an object marked NODELETE is never unloaded: after a SIGHUP the old
 * code would run on. A path already loaded is therefore opened from a copy
 * in a memfd, a new file to the loader, so the new code is what runs. A
 * first load opens the path itself, so debuggers and symbolizers find it. */
static void *open_fresh(const char *path)
{
    char fdpath[64];
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    int in = -1, mem = -1;

    if (dl == NULL) {
        if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
            log_errx("app: %s", dlerror());
        return dl;
    }
    dlclose(dl); /* the reference NOLOAD took */
    dl = NULL;
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        log_err("app: %s", path);
        goto done;
    }
    if ((mem = memfd_create("preforkd-app", MFD_CLOEXEC)) < 0) {
        log_err("app: memfd_create for a fresh copy of %s", path);
        goto done;
    }
    if (copy_fd(in, mem) < 0) {
        log_err("app: copying %s", path);
        goto done;
    }
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", mem);
    if ((dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL)) == NULL)
        log_errx("app: %s (a fresh copy of %s)", dlerror(), path);
done:
    if (in >= 0)
        close(in);
    if (mem >= 0)
        close(mem); /* the loader keeps its mapping */
    return dl;
}

/* See app.h. Logs on failure; may block on the file system (dlopen), so it
 * runs before the loops start or at reload, never per request. */
int app_open(struct app *a, const char *module)
{
    const struct pf_app *api;
    char *path = NULL;
    void *dl = NULL;

    memset(a, 0, sizeof *a);
    if (module == NULL || *module == '\0') {
        log_errx("app: no module given ([app] module)");
        return -1;
    }
    path = is_builtin_name(module) ? resolve_builtin(module) : resolve_path(module);
    if (path == NULL)
        goto fail;
    dl = open_fresh(path);
    if (dl == NULL)
        goto fail;
    api = dlsym(dl, PF_APP_SYMBOL);
    if (api == NULL) {
        log_errx("app: %s: no symbol %s: not a preforkd module", path, PF_APP_SYMBOL);
        goto fail;
    }
    if (check_entry(path, api) != 0)
        goto fail;
    a->dl = dl;
    a->api = api;
    a->path = path;
    return 0;

fail:
    if (dl != NULL)
        dlclose(dl);
    free(path);
    return -1;
}

/* See app.h. Clears every key's `used` mark first, so the check is right
 * each time load runs (the master at start, then a worker, or a reload). */
int app_load(struct app *a, struct config *c)
{
    struct pf_app_config cfg = {.c = c};
    const char *name;
    void *state = NULL;
    size_t i;
    int unknown = 0;

    if (a->api == NULL)
        return -1;
    name = c->app.module != NULL ? c->app.module : a->path;
    for (i = 0; i < c->app.nkv; i++)
        c->app.kv[i].used = false;
    if (a->api->load != NULL && a->api->load(&cfg, &state) != 0) {
        log_errx("app: %s: load failed", a->path);
        return -1;
    }
    for (i = 0; i < c->app.nkv; i++) {
        const struct config_kv *kv = &c->app.kv[i];
        if (kv->used)
            continue;
        log_errx("config: %s:%d: [app] %s: unknown key (module %s does not "
                 "use it)",
                 cfg_file(c), kv->line, kv->key, name);
        unknown++;
    }
    if (unknown > 0) {
        if (a->api->unload != NULL)
            a->api->unload(state);
        return -1;
    }
    a->state = state;
    a->loaded = true;
    return 0;
}

/* See app.h. Runs in a worker after fork, before it accepts. */
int app_worker_init(struct app *a)
{
    if (a->api == NULL)
        return -1;
    if (a->api->worker_init != NULL && a->api->worker_init(a->state) != 0) {
        log_errx("app: %s: worker_init failed", a->path);
        return -1;
    }
    return 0;
}

/* See app.h. Runs in a worker as it exits normally. */
void app_worker_exit(struct app *a)
{
    if (a->api != NULL && a->api->worker_exit != NULL)
        a->api->worker_exit(a->state);
}

/* A hook the module's struct has room for (fields appended within ABI
 * version 1 are absent from modules built before), or NULL. */
#define HOOK(a, field) \
    ((a)->api != NULL && \
             (a)->api->size >= offsetof(struct pf_app, field) + sizeof((a)->api->field) \
         ? (a)->api->field \
         : NULL)

/* See app.h. Runs in the mold, just before it forks a worker. */
void app_fork_prepare(struct app *a)
{
    void (*f)(void *) = HOOK(a, fork_prepare);

    if (f != NULL)
        f(a->state);
}

/* See app.h. Runs in the mold, just after it forked a worker. */
void app_fork_parent(struct app *a)
{
    void (*f)(void *) = HOOK(a, fork_parent);

    if (f != NULL)
        f(a->state);
}

/* See app.h. Runs in a worker, on its loop. */
int app_command(struct app *a, const char *cmd, const char *args, char *out,
                size_t outlen)
{
    int (*f)(void *, const char *, const char *, char *, size_t) = HOOK(a, command);

    if (f == NULL) {
        snprintf(out, outlen, "app %s has no command \"%s\"%s\n",
                 a->api && a->api->name ? a->api->name : "?", cmd,
                 strcmp(cmd, "trace") == 0 ? ": trace is for Python workers "
                                             "(module wsgi)"
                                           : "");
        return 404;
    }
    out[0] = '\0';
    return f(a->state, cmd, args, out, outlen);
}

/* See app.h. Runs where app_open ran. */
void app_close(struct app *a)
{
    if (a->loaded && a->api->unload != NULL)
        a->api->unload(a->state);
    if (a->dl != NULL)
        dlclose(a->dl);
    free(a->path);
    memset(a, 0, sizeof *a);
}

/* ---- pf_config_*: the [app] section, for the module's load() ---------- */

/* See preforkd.h. Marks key used, so it is not reported as unknown. */
const char *pf_config_get(const pf_app_config *cfg, const char *key)
{
    struct config_kv *kv;

    if (cfg == NULL || key == NULL)
        return NULL;
    kv = config_app_find(cfg->c, key);
    if (kv == NULL)
        return NULL;
    kv->used = true;
    return kv->value;
}

/* See preforkd.h. */
int pf_config_get_size(const pf_app_config *cfg, const char *key, uint64_t dflt,
                       uint64_t *out)
{
    const char *v = pf_config_get(cfg, key);

    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    if (config_parse_size(v, out) != 0)
        return pf_config_error(cfg, key,
                               "expected a size (bytes, or with K, M, G), "
                               "got \"%s\"",
                               v);
    return 0;
}

/* See preforkd.h. */
int pf_config_get_duration(const pf_app_config *cfg, const char *key, double dflt,
                           double *out)
{
    const char *v = pf_config_get(cfg, key);

    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    if (config_parse_duration(v, out) != 0)
        return pf_config_error(cfg, key,
                               "expected a duration (seconds, or with ms, s, "
                               "m, h), got \"%s\"",
                               v);
    return 0;
}

/* See preforkd.h. */
int pf_config_has_upstream(const pf_app_config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return 0;
    for (size_t i = 0; i < cfg->c->nupstreams; i++)
        if (strcmp(cfg->c->upstreams[i].name, name) == 0)
            return 1;
    return 0;
}

/* See preforkd.h. A key absent from the file is named without a line. */
int pf_config_error(const pf_app_config *cfg, const char *key, const char *fmt, ...)
{
    const struct config_kv *kv;
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key == NULL)
        key = "?";
    if (cfg == NULL) {
        log_errx("config: [app] %s: %s", key, msg);
        return -1;
    }
    kv = config_app_find(cfg->c, key);
    if (kv != NULL)
        log_errx("config: %s:%d: [app] %s: %s", cfg_file(cfg->c), kv->line, key, msg);
    else
        log_errx("config: %s: [app] %s: %s", cfg_file(cfg->c), key, msg);
    return -1;
}
