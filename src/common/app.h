/*
 * app.h - application modules: find, dlopen, check the ABI, and run the
 * module's life-cycle calls. Runs in the mold (preload, fork hooks), in
 * workers (preload = false, worker_init, commands, worker_exit) and in
 * preforkd -t; never in the master.
 * Convention: 0 / -1; every failure is logged with the module's path.
 */
#ifndef PF_APP_H
#define PF_APP_H

#include <stdbool.h>

#include "config.h"
#include "preforkd.h"

struct app {
    void *dl;                 /* dlopen handle */
    const struct pf_app *api; /* the module's pf_app_entry */
    void *state;              /* from load() */
    char *path;               /* the file actually opened */
    bool loaded;              /* load() succeeded, unload() still due */
};

/* Resolves module (a built-in name such as "hello", found in the apps
 * directory next to the executable, then in PF_APPDIR; or a path, when it
 * contains '/' or ends in ".so"), dlopens it (RTLD_NOW|RTLD_LOCAL) and checks
 * pf_app_entry: present, abi_version == PF_ABI_VERSION, size large enough,
 * handle != NULL. On -1 logs e.g.
 *   app: /x/y.so: ABI version 7, this preforkd speaks 1: rebuild the module
 * and *a is left empty. */
int app_open(struct app *a, const char *module);

/* Calls load() with the [app] keys of c. A key the module never asked for
 * with pf_config_get* is then an error naming file, line and key; so is a
 * failing load(). 0 / -1. */
int app_load(struct app *a, struct config *c);

/* worker_init(); 0 / -1 (logged). */
int app_worker_init(struct app *a);
/* fork_prepare() / fork_parent(), if the module has them: in the mold,
 * around each fork of a worker. */
void app_fork_prepare(struct app *a);
void app_fork_parent(struct app *a);
/* command(), the module's answer to an operator's command (see
 * preforkd.h); 404 with a line in out when the module has none. */
int app_command(struct app *a, const char *cmd, const char *args, char *out,
                size_t outlen);
/* worker_exit(), if any. */
void app_worker_exit(struct app *a);
/* unload() if loaded, then dlclose; *a is left empty. Safe on an empty a. */
void app_close(struct app *a);

#endif
