/*
 * main.c - preforkctl's command line: options, finding the daemon from the
 * INI file (or -a/-p), and dispatching to a command. Runs in preforkctl
 * only. Exit codes (ctl.h): 0 done, 1 the operation failed, 2 usage,
 * 69 no daemon to talk to.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "paths.h"

#define DEFAULT_CONFIG PF_SYSCONFDIR "/preforkd/preforkd.ini"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: preforkctl [-c FILE] [-a ADDRESS] [-p PIDFILE] [-t SECONDS] COMMAND\n"
        "       preforkctl -h|--help | -v|--version\n"
        "commands:\n"
        "  status [--json]   workers, generations, memory, recycles (--json: /stats as is)\n"
        "  reload            SIGHUP, then wait until the new generation serves\n"
        "                    (exit 1 with the reason when the daemon refuses it)\n"
        "  scale +N|-N|N     add, remove, or set the number of workers\n"
        "  stop              SIGTERM, then wait until the master has exited\n"
        "  upgrade           binary upgrade: USR2, wait for the new master, WINCH\n"
        "                    and TERM the old one\n"
        "  snapshot WORKER   worker WORKER's memory, allocator, fds, connections\n"
        "  recycle WORKER    replace worker WORKER gracefully (as max_requests does)\n"
        "  trace start WORKER [--frames N]   Python workers: start tracemalloc\n"
        "  trace dump WORKER [--top N]       what grew since start, by line\n"
        "  trace stop WORKER                 stop it; the worker is recycled\n"
        "options:\n"
        "  -c FILE     the daemon's configuration (default " DEFAULT_CONFIG "):\n"
        "              [admin] listen and [server] pidfile are read from it\n"
        "  -a ADDRESS  the admin endpoint (host:port or unix:/path), overrides the file\n"
        "  -p PIDFILE  the master's pidfile, overrides the file\n"
        "  -t SECONDS  how long to wait (reload, scale, upgrade: 60; stop:\n"
        "              graceful_timeout + 10; a worker's answer: 5)\n"
        "  -h          this help (also --help)\n"
        "  -v          print the version (also --version)\n"
        "exit: 0 done, 1 failed, 2 usage, 69 daemon not reachable\n");
}

/* [admin] listen and [server] pidfile from the file, unless given. */
static int load_config(struct ctl *c, bool need_file, const char *cmd)
{
    char *errors = NULL;

    if (config_load(c->conf_path, &c->cfg, &errors) < 0) {
        if (!need_file) {
            free(errors);
            return 0;
        }
        fputs(errors ? errors : "", stderr);
        /* A reload would be refused for the same errors: say so, rather
         * than how to reach the daemon without the file. */
        if (strcmp(cmd, "reload") == 0)
            ctl_err("reload: %s is not valid (above): nothing was sent, the daemon "
                    "goes on with the configuration it has",
                    c->conf_path);
        else
            ctl_err("%s: the daemon's admin endpoint and pidfile cannot be read from "
                    "this file (above)",
                    c->conf_path);
        free(errors);
        return -1;
    }
    c->have_cfg = true;
    c->graceful = c->cfg.server.graceful_timeout;
    if (c->pidfile == NULL)
        c->pidfile = c->cfg.server.pidfile;
    if (!c->have_admin && c->cfg.admin.enabled) {
        c->admin = c->cfg.admin.listen;
        c->have_admin = true;
    }
    return 0;
}

/* The admin address must name a real port: 0 is chosen at start. */
static int check_admin(const struct ctl *c)
{
    const struct listen_addr *a = &c->admin;

    if (!c->have_admin || a->family == AF_UNIX)
        return 0;
    if ((a->family == AF_INET && a->u.in.sin_port == 0) ||
        (a->family == AF_INET6 && a->u.in6.sin6_port == 0)) {
        ctl_err("admin endpoint %s: port 0 is chosen when the daemon starts; "
                "give the address with -a",
                a->text);
        return -1;
    }
    return 0;
}

static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'v'},
    {NULL, 0, NULL, 0},
};

/* "+": options end at the command, so its own ("status --json") are its. */
static int options(struct ctl *c, int argc, char **argv)
{
    const char *why;
    char *end;
    int opt;

    while ((opt = getopt_long(argc, argv, "+c:a:p:t:hv", long_options, NULL)) != -1) {
        switch (opt) {
        case 'c': c->conf_path = optarg; break;
        case 'p': c->pidfile = optarg; break;
        case 'a':
            if (listen_parse(optarg, &c->admin, &why) < 0) {
                ctl_err("-a %s: %s", optarg, why);
                return -1;
            }
            c->have_admin = true;
            break;
        case 't':
            c->timeout = strtod(optarg, &end);
            if (*end != '\0' || !(c->timeout > 0)) {
                ctl_err("-t %s: expected a number of seconds > 0", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(CTL_OK);
        case 'v': printf("preforkctl " PF_VERSION "\n"); exit(CTL_OK);
        default: usage(stderr); return -1;
        }
    }
    return 0;
}

static int run(struct ctl *c, const char *cmd, int nargs, char **args)
{
    bool json = nargs == 1 && strcmp(args[0], "--json") == 0;

    if (ctl_is_worker_command(cmd))
        return ctl_worker(c, cmd, nargs, args);
    if (strcmp(cmd, "status") == 0 && (nargs == 0 || json)) {
        c->json = json;
        return ctl_status(c);
    }
    if (strcmp(cmd, "scale") == 0 && nargs == 1)
        return ctl_scale(c, args[0]);
    if (nargs != 0) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(cmd, "reload") == 0)
        return ctl_reload(c);
    if (strcmp(cmd, "stop") == 0)
        return ctl_stop(c);
    if (strcmp(cmd, "upgrade") == 0)
        return ctl_upgrade(c);
    ctl_err("unknown command \"%s\"", cmd);
    usage(stderr);
    return CTL_USAGE;
}

int main(int argc, char **argv)
{
    struct ctl c = {.conf_path = DEFAULT_CONFIG, .graceful = 30};
    bool need_file;
    int rc;

    if (options(&c, argc, argv) < 0)
        return CTL_USAGE;
    if (optind >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    /* With both -a and -p the file is optional (graceful_timeout from it);
     * with -a it is for status and the commands to one worker, which only
     * talk to the admin endpoint. */
    need_file = !c.have_admin ||
                (c.pidfile == NULL && !ctl_is_worker_command(argv[optind]) &&
                 strcmp(argv[optind], "status") != 0);
    if (load_config(&c, need_file, argv[optind]) < 0)
        return CTL_FAILED;
    if (check_admin(&c) < 0)
        return CTL_USAGE;
    rc = run(&c, argv[optind], argc - optind - 1, argv + optind + 1);
    if (c.have_cfg)
        config_free(&c.cfg);
    return rc;
}
