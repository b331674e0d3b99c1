/*
 * proctitle.c - the process title shown by ps, and the thread name. Runs
 * in the master (proctitle_init at the top of main, proctitle_set), the
 * mold and every worker (proctitle_set after fork). Owns the memory that
 * held the original argv and environ strings; the strings themselves live
 * on in heap copies.
 * Convention: void; failures only leave the title unchanged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "proctitle.h"

#define PREFIX "preforkd"

extern char **environ;

static char *area;      /* the original argv[0] .. end of the last string */
static size_t area_len; /* bytes, NUL of the last string included */

/* End of the run of strings that starts at argv[0] and continues through
 * those argv and environ strings that follow each other in memory. */
static char *area_end(int argc, char **argv)
{
    char *end = argv[0] + strlen(argv[0]) + 1;

    for (int i = 1; i < argc && argv[i] == end; i++)
        end += strlen(argv[i]) + 1;
    for (size_t i = 0; environ != NULL && environ[i] == end; i++)
        end += strlen(environ[i]) + 1;
    return end;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* volatile: never read, so the store would otherwise be optimised away. */
static char **volatile env_copies; /* see proctitle_init */

/* Heap copies of n strings, in a NULL-terminated array; NULL on ENOMEM. */
static char **copy_strings(char *const *src, size_t n)
{
    char **v = calloc(n + 1, sizeof(*v));

    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i]);
        if (v[i] == NULL) {
            free_strings(v, i);
            return NULL;
        }
    }
    return v;
}

/* Takes the argv+environ area for the title (see proctitle.h). The string
 * copies are never freed: they are argv and environ for the rest of the
 * process. The pointer arrays argv and environ stay where the kernel put
 * them (outside the area): only their entries are repointed. */
void proctitle_init(int argc, char **argv)
{
    size_t nenv = 0;
    char **args, **env;

    if (area != NULL || argc < 1 || argv == NULL || argv[0] == NULL)
        return;
    while (environ != NULL && environ[nenv] != NULL)
        nenv++;
    args = copy_strings(argv, (size_t)argc);
    if (args == NULL)
        return;
    env = copy_strings(environ, nenv);
    if (env == NULL) {
        free_strings(args, (size_t)argc);
        return;
    }
    /* Measure before repointing anything: the area is the old strings. */
    area = argv[0];
    area_len = (size_t)(area_end(argc, argv) - area);
    for (int i = 0; i < argc; i++)
        argv[i] = args[i];
    free(args);
    for (size_t i = 0; i < nenv; i++)
        environ[i] = env[i];
    /* Kept, not freed: a later unsetenv() drops a string from environ, and
     * this array keeps it reachable (it is the process's own for its life;
     * LeakSanitizer would call it lost otherwise). */
    env_copies = env;
    program_invocation_name = argv[0];
    char *slash = strrchr(argv[0], '/');
    program_invocation_short_name = slash ? slash + 1 : argv[0];
}

/* "preforkd-master", "preforkd-w3": what fits in the 15 bytes of a thread
 * name, from a role such as "worker 3 [gen 1]" or "master -c x.ini". */
static void set_thread_name(const char *role)
{
    char name[16];
    size_t word = strcspn(role, " \t");
    const char *next = role + word + strspn(role + word, " \t");

    if (word == 0)
        snprintf(name, sizeof(name), PREFIX);
    else if (strncmp(role, "worker", word) == 0 && word == 6 && *next >= '0' &&
             *next <= '9')
        snprintf(name, sizeof(name), PREFIX "-w%.*s", (int)strspn(next, "0123456789"),
                 next);
    else
        snprintf(name, sizeof(name), PREFIX "-%.*s", (int)word, role);
    prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

/* Sets the title and the thread name (see proctitle.h). */
void proctitle_set(const char *fmt, ...)
{
    char role[512], title[sizeof(role) + sizeof(PREFIX ": ")];
    const char *r = role;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(role, sizeof(role), fmt, ap);
    va_end(ap);
    if (strncmp(role, PREFIX, strlen(PREFIX)) == 0) {
        r += strlen(PREFIX);
        r += strspn(r, ": \t");
        snprintf(title, sizeof(title), "%s", role);
    } else {
        snprintf(title, sizeof(title), PREFIX ": %s", role);
    }
    set_thread_name(r);
    if (area == NULL || area_len == 0)
        return;
    size_t n = strlen(title);
    if (n > area_len - 1)
        n = area_len - 1;
    memcpy(area, title, n);
    memset(area + n, 0, area_len - n);
}
