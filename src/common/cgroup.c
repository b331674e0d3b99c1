/*
 * cgroup.c - the memory cgroup the master runs in: which one, where its
 * files are, its limit, usage and OOM kill count (see cgroup.h). Runs in
 * the master and in preforkd -t. Small reads under /proc and the cgroup
 * mounts; a file that is not there is an answer ("no limit"), not a fault.
 * Convention: 0 / -1, with cg->why saying why on -1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"

/* A v1 limit this large is "none": the kernel shows LONG_MAX rounded down
 * to its page size, and no machine has 4 EiB. */
#define V1_UNLIMITED (UINT64_C(1) << 62)

/* One cgroup hierarchy mounted: the directory of the hierarchy it shows
 * (its root) and where. */
struct mount {
    char root[512];
    char point[512];
};

/* The whole of a small file, NUL-terminated, into buf: 0 / -1 (errno). */
static int read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* "N\n", or "max\n" (no limit): 1 with *v, 0 for "max", -1 unreadable or
 * malformed (errno). */
static int read_limit(const char *path, uint64_t *v)
{
    char buf[64], *end;
    unsigned long long n;

    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    if (strncmp(buf, "max", 3) == 0)
        return 0;
    errno = 0;
    n = strtoull(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\n' && *end != '\0')) {
        errno = EINVAL;
        return -1;
    }
    if (n >= V1_UNLIMITED)
        return 0;
    *v = n;
    return 1;
}

/* Whether item is one of the comma-separated words of list. */
static bool has_item(const char *list, const char *item)
{
    size_t n = strlen(item);

    for (const char *p = list; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, item, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* mountinfo escapes blanks, newlines and backslashes as \ooo. */
static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* path below the mount's root, "" for the root itself; NULL when the
 * cgroup is not under it. */
static const char *below(const char *path, const char *mroot)
{
    size_t n = strlen(mroot);

    if (strcmp(mroot, "/") == 0)
        return strcmp(path, "/") == 0 ? "" : path;
    if (strncmp(path, mroot, n) == 0 && (path[n] == '/' || path[n] == '\0'))
        return path + n;
    return NULL;
}

/* Reads the line of /proc/self/cgroup for v2 ("0::/path") or for the v1
 * controller ctl ("4:memory:/path") into path. 0 / -1 (none). */
static int self_cgroup(const char *root, bool v2, const char *want, char *path,
                       size_t len)
{
    char file[600], *line = NULL;
    size_t cap = 0;
    int rc = -1;
    FILE *f;

    snprintf(file, sizeof(file), "%s/proc/self/cgroup", root);
    if ((f = fopen(file, "re")) == NULL)
        return -1;
    while (rc < 0 && getline(&line, &cap, f) > 0) {
        char *ctl = strchr(line, ':'), *p = ctl ? strchr(ctl + 1, ':') : NULL;
        if (p == NULL)
            continue;
        *p++ = '\0';
        *ctl++ = '\0';
        p[strcspn(p, "\n")] = '\0';
        if (v2 ? strcmp(line, "0") == 0 && *ctl == '\0' : has_item(ctl, want)) {
            snprintf(path, len, "%s", p);
            rc = 0;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

/* The mount of the hierarchy (cgroup2, or v1 with the controller want)
 * whose root holds path, the deepest such root when several do; failing
 * that, any mount of it (its cgroup is then taken as the mount's root).
 * 0 / -1 (not mounted). */
static int find_mount(const char *root, bool v2, const char *want, const char *path,
                      struct mount *m)
{
    char file[600], *line = NULL;
    size_t cap = 0, best = 0;
    bool any = false, under = false, is_under;
    FILE *f;

    snprintf(file, sizeof(file), "%s/proc/self/mountinfo", root);
    if ((f = fopen(file, "re")) == NULL)
        return -1;
    while (getline(&line, &cap, f) > 0) {
        /* id parent maj:min root point options [optional...] - type source super */
        char *field[6], *sep = strstr(line, " - "), *type, *super, *save = NULL;
        int n = 0;

        if (sep == NULL)
            continue;
        *sep = '\0';
        for (char *t = strtok_r(line, " ", &save); t && n < 6;
             t = strtok_r(NULL, " ", &save))
            field[n++] = t;
        type = strtok_r(sep + 3, " \n", &save);
        (void)strtok_r(NULL, " \n", &save); /* the source */
        super = strtok_r(NULL, " \n", &save);
        if (n < 5 || type == NULL ||
            !(v2 ? strcmp(type, "cgroup2") == 0
                 : strcmp(type, "cgroup") == 0 && super && has_item(super, want)))
            continue;
        unescape(field[3]);
        unescape(field[4]);
        is_under = below(path, field[3]) != NULL;
        if (any && !(is_under && (!under || strlen(field[3]) > best)))
            continue;
        any = true;
        under = is_under;
        best = strlen(field[3]);
        snprintf(m->root, sizeof(m->root), "%s", field[3]);
        snprintf(m->point, sizeof(m->point), "%s", field[4]);
    }
    free(line);
    fclose(f);
    return any ? 0 : -1;
}

/* cg->dir and the mount's directory (top) for the cgroup at path. */
static void locate(const char *root, const char *path, const struct mount *m,
                   struct cgroup *cg, char *top, size_t len)
{
    const char *rel = below(path, m->root);

    snprintf(cg->path, sizeof(cg->path), "%s", path);
    snprintf(top, len, "%s%s", root, strcmp(m->point, "/") == 0 ? "" : m->point);
    snprintf(cg->dir, sizeof(cg->dir), "%s%s", top, rel ? rel : "");
}

/* Whether the file (a space-separated list) has the word w. */
static bool has_word(const char *file, const char *w)
{
    char buf[512];

    if (read_small(file, buf, sizeof(buf)) < 0)
        return false;
    buf[strcspn(buf, "\n")] = '\0';
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t;
         t = strtok_r(NULL, " ", &save))
        if (strcmp(t, w) == 0)
            return true;
    return false;
}

/* Whether the memory controller is on the v2 hierarchy: the cgroup has
 * memory.max, or (the root cgroup has none) the root lists the controller. */
static bool v2_has_memory(const struct cgroup *cg, const char *top)
{
    char file[1100];

    snprintf(file, sizeof(file), "%s/memory.max", cg->dir);
    if (access(file, F_OK) == 0)
        return true;
    snprintf(file, sizeof(file), "%s/cgroup.controllers", top);
    return has_word(file, "memory");
}

/* The smallest limit from the cgroup's directory up to the mount's (top):
 * a parent's limit holds its children too. */
static void walk_limits(struct cgroup *cg, const char *top, const char *name)
{
    char dir[sizeof(cg->dir)], file[sizeof(cg->dir) + 32];
    size_t ntop = strlen(top);
    int first_errno = 0, read = 0;

    snprintf(dir, sizeof(dir), "%s", cg->dir);
    for (;;) {
        uint64_t v;
        char *slash;
        int rc;

        snprintf(file, sizeof(file), "%s/%s", dir, name);
        rc = read_limit(file, &v);
        if (rc < 0 && first_errno == 0 && read == 0)
            first_errno = errno;
        read += rc >= 0;
        if (rc == 1 && (cg->limit == 0 || v < cg->limit)) {
            cg->limit = v;
            snprintf(cg->limit_dir, sizeof(cg->limit_dir), "%s", dir);
        }
        if (strlen(dir) <= ntop || (slash = strrchr(dir, '/')) == NULL ||
            (size_t)(slash - dir) < ntop)
            break;
        *slash = '\0';
    }
    if (cg->limit > 0)
        return;
    if (read == 0)
        snprintf(cg->why, sizeof(cg->why), "cannot read %.400s/%s: %s", cg->dir, name,
                 strerror(first_errno ? first_errno : ENOENT));
    else
        snprintf(cg->why, sizeof(cg->why),
                 "no memory limit on cgroup %s %.400s or "
                 "its ancestors (%s)",
                 cgroup_version_name(cg->version), cg->path, name);
}

int cgroup_find(const char *root, struct cgroup *cg)
{
    char path[sizeof(cg->path)], top[sizeof(cg->dir)];
    struct mount m;
    bool v2_mounted = false;

    memset(cg, 0, sizeof(*cg));
    root = root ? root : "";
    if (self_cgroup(root, true, NULL, path, sizeof(path)) == 0 &&
        find_mount(root, true, NULL, path, &m) == 0) {
        locate(root, path, &m, cg, top, sizeof(top));
        v2_mounted = true;
        if (v2_has_memory(cg, top)) {
            cg->version = CGROUP_V2;
            walk_limits(cg, top, "memory.max");
            return 0;
        }
    }
    if (self_cgroup(root, false, "memory", path, sizeof(path)) == 0 &&
        find_mount(root, false, "memory", path, &m) == 0) {
        locate(root, path, &m, cg, top, sizeof(top));
        cg->version = CGROUP_V1;
        walk_limits(cg, top, "memory.limit_in_bytes");
        return 0;
    }
    memset(cg, 0, sizeof(*cg));
    snprintf(cg->why, sizeof(cg->why), "%s",
             v2_mounted
                 ? "no memory cgroup: the memory controller is neither on cgroup v2 "
                   "nor mounted as v1"
                 : "no memory cgroup: /proc/self/cgroup and /proc/self/mountinfo show "
                   "no cgroup v2 nor v1 memory hierarchy");
    return -1;
}

/* The number after "key " on one of the lines of dir/name. */
static int read_keyed(const struct cgroup *cg, const char *name, const char *key,
                      uint64_t *n)
{
    char file[sizeof(cg->dir) + 32], buf[1024];
    size_t klen = strlen(key);

    if (cg->version == CGROUP_NONE) {
        errno = ENOENT;
        return -1;
    }
    snprintf(file, sizeof(file), "%s/%s", cg->dir, name);
    if (read_small(file, buf, sizeof(buf)) < 0)
        return -1;
    for (char *l = buf; l != NULL; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, key, klen) == 0 && l[klen] == ' ') {
            *n = strtoull(l + klen + 1, NULL, 10);
            return 0;
        }
    errno = ENOENT;
    return -1;
}

int cgroup_oom_kills(const struct cgroup *cg, uint64_t *n)
{
    return read_keyed(cg,
                      cg->version == CGROUP_V2 ? "memory.events" : "memory.oom_control",
                      "oom_kill", n);
}

int cgroup_usage(const struct cgroup *cg, uint64_t *bytes)
{
    char file[sizeof(cg->dir) + 32];

    if (cg->version == CGROUP_NONE) {
        errno = ENOENT;
        return -1;
    }
    snprintf(file, sizeof(file), "%s/%s", cg->dir,
             cg->version == CGROUP_V2 ? "memory.current" : "memory.usage_in_bytes");
    return read_limit(file, bytes) == 1 ? 0 : -1;
}

/* The CPU quota of one directory: v2 cpu.max ("QUOTA PERIOD", "max
 * PERIOD"), v1 cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us. CPUs
 * (2.5 = two and a half), or 0 for none or unreadable. */
static double dir_cpus(const char *dir, bool v2)
{
    char file[1200], buf[64], per[64];
    long long quota, period;

    if (v2) {
        snprintf(file, sizeof(file), "%s/cpu.max", dir);
        if (read_small(file, buf, sizeof(buf)) < 0 ||
            sscanf(buf, "%lld %lld", &quota, &period) != 2)
            return 0;
    } else {
        snprintf(file, sizeof(file), "%s/cpu.cfs_quota_us", dir);
        if (read_small(file, buf, sizeof(buf)) < 0 || sscanf(buf, "%lld", &quota) != 1)
            return 0;
        snprintf(file, sizeof(file), "%s/cpu.cfs_period_us", dir);
        if (read_small(file, per, sizeof(per)) < 0 || sscanf(per, "%lld", &period) != 1)
            return 0;
    }
    return quota > 0 && period > 0 ? (double)quota / (double)period : 0;
}

double cgroup_cpu_limit(const char *root)
{
    char path[512], dir[1100], top[1100];
    struct cgroup cg;
    struct mount m;
    double least = 0;
    bool v2;

    root = root ? root : "";
    if (self_cgroup(root, true, NULL, path, sizeof(path)) == 0 &&
        find_mount(root, true, NULL, path, &m) == 0) {
        locate(root, path, &m, &cg, top, sizeof(top));
        /* The controllers this cgroup may use; the root lists all. */
        snprintf(dir, sizeof(dir), "%s/cgroup.controllers", cg.dir);
        if (has_word(dir, "cpu")) {
            v2 = true;
            goto walk;
        }
    }
    if (self_cgroup(root, false, "cpu", path, sizeof(path)) < 0 ||
        find_mount(root, false, "cpu", path, &m) < 0)
        return 0;
    v2 = false;
    locate(root, path, &m, &cg, top, sizeof(top));
walk:
    /* A parent's quota holds its children too: the smallest counts. */
    snprintf(dir, sizeof(dir), "%s", cg.dir);
    for (;;) {
        double c = dir_cpus(dir, v2);
        char *slash;

        if (c > 0 && (least == 0 || c < least))
            least = c;
        if (strlen(dir) <= strlen(top) || (slash = strrchr(dir, '/')) == NULL ||
            (size_t)(slash - dir) < strlen(top))
            break;
        *slash = '\0';
    }
    return least;
}

const char *cgroup_version_name(enum cgroup_version v)
{
    return v == CGROUP_V2 ? "v2" : v == CGROUP_V1 ? "v1" : "none";
}
