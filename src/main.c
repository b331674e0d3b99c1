/*
 * main.c - command line: run the daemon (-c FILE), or check a config file
 * (-t, check.c) and print it as in effect (-T, dump.c). Runs in the master
 * before anything else. Exit codes: 0, 1 (usage or fatal), 70 (the app
 * cannot start), 78 (configuration error, EX_CONFIG).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "check.h"
#include "config.h"
#include "dump.h"
#include "log.h"
#include "master.h"
#include "paths.h"
#include "proc.h"
#include "proctitle.h"

#define DEFAULT_CONFIG PF_SYSCONFDIR "/preforkd/preforkd.ini"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: preforkd [-t|-T] [-c FILE]\n"
        "       preforkd [-t|-T] --wsgi MODULE:CALLABLE [OPTION...]\n"
        "       preforkd -h|--help | -v|--version\n"
        "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
        "  -t       check everything start-up would (the file, user and group,\n"
        "           log files, listening addresses, the app module), then exit:\n"
        "           0 when valid, 78 with the errors otherwise\n"
        "  -T       as -t, then print the configuration in effect (every key,\n"
        "           defaults filled in) on stdout as an INI file\n"
        "  -v       print the version (also --version)\n"
        "  -h       this help (also --help)\n"
        "Without a file, serve a Python WSGI app (see docs/python.md); each\n"
        "option stands for a key of the file:\n"
        "  --wsgi MODULE:CALLABLE   [app] module = wsgi, app = MODULE:CALLABLE\n"
        "  -b, --listen ADDR        [server] listen (repeatable; default 127.0.0.1:8000)\n"
        "  -w, --workers N          [server] workers (a number, or auto)\n"
        "  --threads N              [app] threads\n"
        "  --python-path DIR        [app] python_path (default: the current directory)\n"
        "  --virtualenv DIR         [app] virtualenv\n"
        "  --max-requests N         [recycle] max_requests\n"
        "  --admin ADDR             [admin] listen\n"
        "  --set SECTION.KEY=VALUE  any other key, e.g. --set recycle.max_rss=256M\n");
}

/* --wsgi: the options become the text of an INI file, one key a line,
 * so that they are checked, reported and reloaded exactly as a file is. */
#define NSECTIONS 5
static const char *const sections[NSECTIONS] = {"server", "recycle", "app", "log",
                                                "admin"};
static char *lines[NSECTIONS]; /* each "key = value\n"..., or NULL */

/* Appends to *dst (NULL: empty) with printf's format; exits when memory
 * runs out, as nothing could start then. */
static void cat_printf(char **dst, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cat_printf(char **dst, const char *fmt, ...)
{
    char *more, *joined;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&more, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    if (asprintf(&joined, "%s%s", *dst ? *dst : "", more) < 0)
        exit(1);
    free(more);
    free(*dst);
    *dst = joined;
}

/* Adds "key = value" to section; -1 for an unknown section. */
static int cli_key(const char *section, size_t slen, const char *key, size_t klen,
                   const char *value)
{
    for (int i = 0; i < NSECTIONS; i++)
        if (strlen(sections[i]) == slen && strncmp(sections[i], section, slen) == 0) {
            cat_printf(&lines[i], "%.*s = %s\n", (int)klen, key, value);
            return 0;
        }
    return -1;
}

static int cli_set(const char *section, const char *key, const char *value)
{
    return cli_key(section, strlen(section), key, strlen(key), value);
}

/* "--set recycle.max_rss=256M". */
static int cli_set_arg(const char *arg)
{
    const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');

    if (dot == NULL || eq == NULL || eq < dot || dot == arg || eq == dot + 1 ||
        cli_key(arg, (size_t)(dot - arg), dot + 1, (size_t)(eq - dot - 1), eq + 1) < 0) {
        fprintf(stderr,
                "preforkd: --set %s: expected SECTION.KEY=VALUE with a "
                "section of server, recycle, app, log, admin\n",
                arg);
        return -1;
    }
    return 0;
}

/* The INI text of the --wsgi options; malloc'd. */
static char *cli_text(const char *app, bool python_path)
{
    char cwd[4096], *text = NULL;

    cli_set("app", "module", "wsgi");
    cli_set("app", "app", app);
    if (!python_path && getcwd(cwd, sizeof cwd) != NULL)
        cli_set("app", "python_path", cwd); /* as Gunicorn, the directory it runs in */
    for (int i = 0; i < NSECTIONS; i++) {
        if (lines[i] == NULL)
            continue;
        cat_printf(&text, "[%s]\n%s", sections[i], lines[i]);
        free(lines[i]);
        lines[i] = NULL;
    }
    return text;
}

/* The access log format is the access log's to judge (accesslog.c). */
static int check_access_log(const struct config *c)
{
    char why[160];

    if (c->log.access_log == NULL ||
        accesslog_check_format(c->log.access_log_format, why, sizeof(why)) == 0)
        return 0;
    fprintf(stderr, "%s:%d: [log] access_log_format: %s\n", c->path,
            config_line(c, "log", "access_log_format"), why);
    return -1;
}

/* -t, -T: every check start-up would make (check.c); -T then prints the
 * configuration, only when it passed, so its output is always a file
 * preforkd accepts. */
static int check_only(struct config *cfg, bool dump)
{
    int rc = check_run(cfg);

    if (rc == 0 && dump) {
        dump_config(stdout, cfg);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "preforkd: -T: writing to stdout: %m\n");
            rc = 1;
        }
    }
    return rc;
}

enum {
    OPT_WSGI = 256,
    OPT_THREADS,
    OPT_PYPATH,
    OPT_VENV,
    OPT_MAXREQ,
    OPT_ADMIN,
    OPT_SET
};

static const struct option long_options[] = {
    {"wsgi", required_argument, NULL, OPT_WSGI},
    {"listen", required_argument, NULL, 'b'},
    {"bind", required_argument, NULL, 'b'},
    {"workers", required_argument, NULL, 'w'},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"python-path", required_argument, NULL, OPT_PYPATH},
    {"virtualenv", required_argument, NULL, OPT_VENV},
    {"max-requests", required_argument, NULL, OPT_MAXREQ},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"set", required_argument, NULL, OPT_SET},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'v'},
    {NULL, 0, NULL, 0},
};

/* What the command line asked for. */
struct args {
    const char *path, *wsgi;
    char *listen; /* --bind, each; for --wsgi */
    bool test, dump, file, options, python_path;
};

/* Reads argv into a. -1 to go on, or the exit code (--help, --version, a
 * usage error). */
static int parse_args(int argc, char **argv, struct args *a)
{
    int opt;

    while ((opt = getopt_long(argc, argv, "c:tThvb:w:", long_options, NULL)) != -1) {
        a->options |= opt != 'c' && opt != 't' && opt != 'T' && opt != OPT_WSGI;
        switch (opt) {
        case 'c':
            a->path = optarg;
            a->file = true;
            break;
        case 't': a->test = true; break;
        case 'T': a->test = a->dump = true; break;
        case 'v': printf("preforkd " PF_VERSION "\n"); return 0;
        case 'h': usage(stdout); return 0;
        case OPT_WSGI: a->wsgi = optarg; break;
        case 'b': cat_printf(&a->listen, "%s%s", a->listen ? ", " : "", optarg); break;
        case 'w': cli_set("server", "workers", optarg); break;
        case OPT_THREADS: cli_set("app", "threads", optarg); break;
        case OPT_PYPATH:
            cli_set("app", "python_path", optarg);
            a->python_path = true;
            break;
        case OPT_VENV: cli_set("app", "virtualenv", optarg); break;
        case OPT_MAXREQ: cli_set("recycle", "max_requests", optarg); break;
        case OPT_ADMIN: cli_set("admin", "listen", optarg); break;
        case OPT_SET:
            if (cli_set_arg(optarg) < 0)
                return EXIT_CONFIG;
            break;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || (a->wsgi != NULL && a->file) ||
        (a->wsgi == NULL && a->options)) {
        if (a->wsgi != NULL && a->file)
            fprintf(stderr, "preforkd: -c and --wsgi exclude each other\n");
        else if (a->wsgi == NULL && a->options)
            fprintf(stderr, "preforkd: these options go with --wsgi (with -c, "
                            "the file says it all)\n");
        usage(stderr);
        return 1;
    }
    return -1;
}

/* The configuration: the file, or the one --wsgi and its options make.
 * 0, or EXIT_CONFIG after printing every error and "configuration invalid". */
static int load(struct args *a, struct config *cfg)
{
    char *errors = NULL, *text = NULL;
    int rc;

    if (a->wsgi != NULL) {
        if (a->listen != NULL)
            cli_set("server", "listen", a->listen);
        a->path = "preforkd --wsgi";
        text = cli_text(a->wsgi, a->python_path);
    }
    free(a->listen);
    a->listen = NULL;
    rc = text != NULL ? config_load_text(a->path, text, cfg, &errors)
                      : config_load(a->path, cfg, &errors);
    free(text);
    if (rc == 0)
        return 0;
    fprintf(stderr, "%s", errors);
    if (errors[0] && errors[strlen(errors) - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "preforkd: %s: configuration invalid\n", a->path);
    free(errors);
    return EXIT_CONFIG;
}

int main(int argc, char **argv)
{
    struct args a = {.path = DEFAULT_CONFIG};
    struct config cfg;
    int rc;

    proctitle_init(argc, argv);
    if ((rc = parse_args(argc, argv, &a)) >= 0 || (rc = load(&a, &cfg)) != 0) {
        free(a.listen);
        return rc;
    }
    log_set_level(cfg.log.level);
    if (a.test) {
        rc = check_only(&cfg, a.dump);
        config_free(&cfg);
        return rc;
    }
    if (check_access_log(&cfg) < 0) {
        fprintf(stderr, "preforkd: %s: configuration invalid\n", a.path);
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (log_open(cfg.log.error_log, cfg.log.level) < 0) {
        fprintf(stderr, "preforkd: error_log %s: %m\n", cfg.log.error_log);
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    return master_run(&cfg, argv);
}
