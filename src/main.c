/*
 * main.c - command line: run the daemon (-c FILE), or check a config file
 * (-t). Runs in the master before anything else. Exit codes: 0, 1 (usage or
 * fatal), 70 (the app cannot start), 78 (configuration error, EX_CONFIG).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "accesslog.h"
#include "app.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "paths.h"
#include "proc.h"
#include "proctitle.h"

#define DEFAULT_CONFIG PF_SYSCONFDIR "/preforkd/preforkd.ini"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: preforkd [-t] [-c FILE]\n"
            "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
            "  -t       check the configuration and the app module, then exit:\n"
            "           0 when valid, 78 with the errors otherwise\n"
            "  -v       print the version\n"
            "  -h       this help\n");
}

/* The access log format is the access log's to judge (accesslog.c). */
static int check_access_log(const struct config *c)
{
    char why[160];

    if (c->log.access_log == NULL ||
        accesslog_check_format(c->log.access_log_format, why, sizeof(why)) == 0)
        return 0;
    fprintf(stderr, "%s: [log] access_log_format: %s\n", c->path, why);
    return -1;
}

/* -t: the file, then the module and the app's own keys. */
static int check_only(struct config *cfg)
{
    struct app app = {0};

    if (app_open(&app, cfg->app.module) < 0 || app_load(&app, cfg) < 0) {
        app_close(&app);
        return EXIT_CONFIG;
    }
    app_close(&app);
    fprintf(stderr, "preforkd: %s: configuration ok\n", cfg->path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    struct config cfg;
    char *errors = NULL;
    bool test = false;
    int opt, rc;

    proctitle_init(argc, argv);
    while ((opt = getopt(argc, argv, "c:thv")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test = true; break;
        case 'v': printf("preforkd " PF_VERSION "\n"); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }
    if (config_load(path, &cfg, &errors) < 0) {
        fprintf(stderr, "%s", errors);
        if (errors[0] && errors[strlen(errors) - 1] != '\n')
            fputc('\n', stderr);
        fprintf(stderr, "preforkd: %s: configuration invalid\n", path);
        free(errors);
        return EXIT_CONFIG;
    }
    if (check_access_log(&cfg) < 0) {
        fprintf(stderr, "preforkd: %s: configuration invalid\n", path);
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    log_set_level(cfg.log.level);
    if (test) {
        rc = check_only(&cfg);
        config_free(&cfg);
        return rc;
    }
    if (log_open(cfg.log.error_log, cfg.log.level) < 0) {
        fprintf(stderr, "preforkd: error_log %s: %m\n", cfg.log.error_log);
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    return master_run(&cfg, argv);
}
