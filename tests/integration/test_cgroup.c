/*
 * test_cgroup.c - tests of src/common/cgroup.c and src/master/memlimit.c: finding the
 * memory cgroup, its limit, usage and OOM kill count in fake trees (v2,
 * v1, hybrid, nested ancestors, missing files: /proc/self/cgroup and
 * mountinfo written by the test), resolving max_rss shares into bytes,
 * and, as root, the real daemon in a real memory cgroup with a leaking
 * worker: the kernel's OOM killer named in the log and /stats, and
 * max_rss = auto recycling before it comes to that. The real-cgroup cases
 * skip (one line on stderr) when not root or when no cgroup can be made.
 */
#include <check.h>
#include <sched.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "load.h"
#include "memlimit.h"
#include "opsutil.h"

#define MIB (UINT64_C(1) << 20)
#define V1_NONE "9223372036854771712\n" /* LONG_MAX rounded down to a page */

static char tmpdir[256];

/* ---- fake trees ------------------------------------------------------------ */

static char root[PATH_MAX]; /* this test's tree */

static void new_root(void)
{
    static int seq;

    snprintf(root, sizeof root, "%s/r%d-%d", tmpdir, (int)getpid(), seq++);
    ck_assert_int_eq(mkdir(root, 0755), 0);
}

/* Writes root/rel (its directories made as needed). */
static void fake(const char *rel, const char *text)
{
    char path[PATH_MAX + 256];

    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = strchr(path + strlen(root) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path);
        *s = '/';
    }
    harness_write_file(path, text, strlen(text));
}

static void expect_dir(const struct cgroup *cg, const char *rel)
{
    char want[PATH_MAX + 256];

    snprintf(want, sizeof want, "%s%s", root, rel);
    ck_assert_str_eq(cg->dir, want);
}

/* The cgroup of the tree found, its limit set on itself, and its figures. */
static void expect_figures(enum cgroup_version v, uint64_t limit, uint64_t usage,
                           uint64_t kills)
{
    struct cgroup cg;
    uint64_t n;

    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_int_eq(cg.version, v);
    ck_assert_uint_eq(cg.limit, limit);
    ck_assert_str_eq(cg.limit_dir, cg.dir);
    ck_assert_int_eq(cgroup_usage(&cg, &n), 0);
    ck_assert_uint_eq(n, usage);
    ck_assert_int_eq(cgroup_oom_kills(&cg, &n), 0);
    ck_assert_uint_eq(n, kills);
}

#define MOUNT_V2 \
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
#define MOUNT_ROOTFS "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
#define HYBRID_MOUNTS \
    MOUNT_ROOTFS \
    "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n" \
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" \
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
#define HYBRID_SELF "9:name=systemd:/\n4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/\n"

/* v2: "max" on the cgroup and its parent: no limit, and why. */
START_TEST(test_v2_max)
{
    struct cgroup cg;

    new_root();
    fake("proc/self/cgroup", "0::/system.slice/app.service\n");
    fake("proc/self/mountinfo", MOUNT_ROOTFS MOUNT_V2);
    fake("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
    fake("sys/fs/cgroup/system.slice/memory.max", "max\n");
    fake("sys/fs/cgroup/system.slice/app.service/memory.max", "max\n");
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_int_eq(cg.version, CGROUP_V2);
    ck_assert_str_eq(cg.path, "/system.slice/app.service");
    expect_dir(&cg, "/sys/fs/cgroup/system.slice/app.service");
    ck_assert_uint_eq(cg.limit, 0);
    ck_assert_str_eq(cg.limit_dir, "");
    ck_assert_msg(strstr(cg.why,
                         "no memory limit on cgroup v2 /system.slice/app.service") !=
                      NULL,
                  "%s", cg.why);
}
END_TEST

/* v2 with a number: that is the limit; usage and OOM kills read. */
START_TEST(test_v2_limit)
{
    new_root();
    fake("proc/self/cgroup", "0::/system.slice/app.service\n");
    fake("proc/self/mountinfo", MOUNT_ROOTFS MOUNT_V2);
    fake("sys/fs/cgroup/system.slice/memory.max", "max\n");
    fake("sys/fs/cgroup/system.slice/app.service/memory.max", "100663296\n");
    fake("sys/fs/cgroup/system.slice/app.service/memory.current", "5242880\n");
    fake("sys/fs/cgroup/system.slice/app.service/memory.events",
         "low 0\nhigh 0\nmax 12\noom 4\noom_kill 3\noom_group_kill 0\n");
    expect_figures(CGROUP_V2, 96 * MIB, 5 * MIB, 3);
}
END_TEST

/* In a container: the mount shows the pod's cgroup, the process is two
 * levels below; the smallest limit of the visible ancestors wins, and
 * nothing above the mount point is read. */
START_TEST(test_v2_nested)
{
    struct cgroup cg;

    new_root();
    fake("proc/self/cgroup", "0::/kubepods/pod1/ctr/sub\n");
    fake("proc/self/mountinfo", MOUNT_ROOTFS
         "30 22 0:26 /kubepods/pod1 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
    fake("sys/fs/cgroup/ctr/sub/memory.max", "max\n");
    fake("sys/fs/cgroup/ctr/memory.max", "209715200\n");
    fake("sys/fs/cgroup/memory.max", "104857600\n");
    fake("sys/fs/memory.max", "1000\n"); /* not a cgroup: above the mount */
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_int_eq(cg.version, CGROUP_V2);
    expect_dir(&cg, "/sys/fs/cgroup/ctr/sub");
    ck_assert_uint_eq(cg.limit, 100 * MIB);
    ck_assert_str_eq(cg.limit_dir + strlen(root), "/sys/fs/cgroup");
    /* The parent is the smaller one now. */
    fake("sys/fs/cgroup/ctr/memory.max", "52428800\n");
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_uint_eq(cg.limit, 50 * MIB);
    ck_assert_str_eq(cg.limit_dir + strlen(root), "/sys/fs/cgroup/ctr");
}
END_TEST

/* The v2 root cgroup has no memory.max: the controller is named by
 * cgroup.controllers, and there is no limit. */
START_TEST(test_v2_root)
{
    struct cgroup cg;

    new_root();
    fake("proc/self/cgroup", "0::/\n");
    fake("proc/self/mountinfo", MOUNT_V2 MOUNT_ROOTFS);
    fake("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_int_eq(cg.version, CGROUP_V2);
    expect_dir(&cg, "/sys/fs/cgroup");
    ck_assert_uint_eq(cg.limit, 0);
}
END_TEST

/* Hybrid (cgroup2 without the memory controller, v1 memory): v1, and
 * its huge "no limit" value is none. */
START_TEST(test_v1_unlimited)
{
    struct cgroup cg;

    new_root();
    fake("proc/self/cgroup", HYBRID_SELF);
    fake("proc/self/mountinfo", HYBRID_MOUNTS);
    fake("sys/fs/cgroup/unified/cgroup.controllers", "\n");
    fake("sys/fs/cgroup/unified/memory.pressure", "some avg10=0.00\n");
    fake("sys/fs/cgroup/memory/memory.limit_in_bytes", V1_NONE);
    fake("sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", V1_NONE);
    fake("sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes", V1_NONE);
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_int_eq(cg.version, CGROUP_V1);
    ck_assert_str_eq(cg.path, "/process_api/x");
    expect_dir(&cg, "/sys/fs/cgroup/memory/process_api/x");
    ck_assert_uint_eq(cg.limit, 0);
    ck_assert_msg(strstr(cg.why, "memory.limit_in_bytes") != NULL, "%s", cg.why);
}
END_TEST

START_TEST(test_v1_limited)
{
    struct cgroup cg;

    new_root();
    fake("proc/self/cgroup", HYBRID_SELF);
    fake("proc/self/mountinfo", HYBRID_MOUNTS);
    fake("sys/fs/cgroup/memory/memory.limit_in_bytes", V1_NONE);
    fake("sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "268435456\n");
    fake("sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes", "100663296\n");
    fake("sys/fs/cgroup/memory/process_api/x/memory.usage_in_bytes", "7524352\n");
    fake("sys/fs/cgroup/memory/process_api/x/memory.oom_control",
         "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    expect_figures(CGROUP_V1, 96 * MIB, 7524352, 2);
    /* A v1 mount of an inner cgroup (a container without a namespace). */
    fake("proc/self/mountinfo", MOUNT_ROOTFS
         "34 30 0:31 /process_api /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n");
    fake("sys/fs/cgroup/memory/x/memory.limit_in_bytes", "50331648\n");
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    expect_dir(&cg, "/sys/fs/cgroup/memory/x");
    ck_assert_uint_eq(cg.limit, 48 * MIB);
}
END_TEST

/* CPU quotas (workers = auto): the smallest over the ancestors, v2 cpu.max
 * and v1 cpu.cfs_quota_us / cpu.cfs_period_us; none is 0. */
START_TEST(test_cpu_limit)
{
    new_root();
    fake("proc/self/cgroup", "0::/kubepods/pod1/c1\n");
    fake("proc/self/mountinfo", MOUNT_ROOTFS MOUNT_V2);
    fake("sys/fs/cgroup/kubepods/pod1/c1/cgroup.controllers",
         "cpuset cpu io memory pids\n");
    fake("sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "max 100000\n");
    ck_assert(cgroup_cpu_limit(root) == 0);
    fake("sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n");
    fake("sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n");
    ck_assert(cgroup_cpu_limit(root) == 1.5);
    fake("sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "50000 100000\n");
    ck_assert(cgroup_cpu_limit(root) == 0.5);
    /* No cpu controller for this cgroup (cpuset is not cpu). */
    fake("sys/fs/cgroup/kubepods/pod1/c1/cgroup.controllers", "cpuset memory\n");
    ck_assert(cgroup_cpu_limit(root) == 0);

    /* Hybrid: v1 cpu,cpuacct, with an inner cgroup. */
    new_root();
    fake("proc/self/cgroup", "4:memory:/x\n1:cpu,cpuacct:/docker/abc\n0::/\n");
    fake("proc/self/mountinfo", HYBRID_MOUNTS);
    fake("sys/fs/cgroup/unified/cgroup.controllers", "\n");
    fake("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    fake("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    ck_assert(cgroup_cpu_limit(root) == 0);
    fake("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
    ck_assert(cgroup_cpu_limit(root) == 2.5);

    /* Neither. */
    new_root();
    fake("proc/self/cgroup", "4:memory:/x\n");
    fake("proc/self/mountinfo", MOUNT_ROOTFS);
    ck_assert(cgroup_cpu_limit(root) == 0);
}
END_TEST

/* Missing pieces: no limit file, no oom_kill line, no memory cgroup. */
START_TEST(test_missing)
{
    struct cgroup cg;
    uint64_t n;

    new_root();
    fake("proc/self/cgroup", HYBRID_SELF);
    fake("proc/self/mountinfo", HYBRID_MOUNTS);
    fake("sys/fs/cgroup/memory/process_api/x/memory.oom_control",
         "oom_kill_disable 0\nunder_oom 0\n"); /* a kernel before 4.13 */
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    ck_assert_int_eq(cg.version, CGROUP_V1);
    ck_assert_uint_eq(cg.limit, 0);
    ck_assert_msg(strstr(cg.why, "cannot read ") && strstr(cg.why, "No such file"), "%s",
                  cg.why);
    ck_assert_int_eq(cgroup_oom_kills(&cg, &n), -1);
    ck_assert_int_eq(cgroup_usage(&cg, &n), -1);

    /* cgroup2 only, without the memory controller. */
    new_root();
    fake("proc/self/cgroup", "0::/user.slice\n");
    fake("proc/self/mountinfo", MOUNT_ROOTFS MOUNT_V2);
    fake("sys/fs/cgroup/cgroup.controllers", "cpu pids\n");
    ck_assert_int_eq(cgroup_find(root, &cg), -1);
    ck_assert_int_eq(cg.version, CGROUP_NONE);
    ck_assert_msg(strstr(cg.why, "memory controller") != NULL, "%s", cg.why);
    ck_assert_int_eq(cgroup_oom_kills(&cg, &n), -1);

    /* No /proc at all. */
    new_root();
    ck_assert_int_eq(cgroup_find(root, &cg), -1);
    ck_assert_uint_eq(cg.limit, 0);
    ck_assert_msg(cg.why[0] != '\0', "no reason given");
}
END_TEST

/* Blanks in a mount point come escaped in mountinfo (\040). */
START_TEST(test_mountinfo_escapes)
{
    struct cgroup cg;

    new_root();
    fake("proc/self/cgroup", "0::/a\n");
    fake("proc/self/mountinfo",
         MOUNT_ROOTFS "30 22 0:26 / /srv/my\\040cgroups rw - cgroup2 none rw\n");
    fake("srv/my cgroups/a/memory.max", "1048576\n");
    ck_assert_int_eq(cgroup_find(root, &cg), 0);
    expect_dir(&cg, "/srv/my cgroups/a");
    ck_assert_uint_eq(cg.limit, MIB);
}
END_TEST

/* ---- resolving shares ---------------------------------------------------- */

static void shares(struct config *c, const char *soft, const char *hard)
{
    char path[PATH_MAX + 32], *err = NULL;
    FILE *f;

    snprintf(path, sizeof path, "%s/shares.ini", tmpdir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[server]\nworkers = 2\n[recycle]\n%s%s[app]\nmodule = hello\n", soft,
            hard);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(config_load(path, c, &err) == 0, "%s", err);
}

START_TEST(test_resolve)
{
    struct config c;
    char err[512] = "";
    uint64_t share = 96 * MIB / 3;

    /* auto: 75 % and 95 % of limit / (workers 2 + max_concurrent_recycles 1). */
    shares(&c, "max_rss = auto\n", "max_rss_hard = auto\n");
    ck_assert_int_eq(memlimit_resolve(&c, 96 * MIB, 2, false, err, sizeof err), 0);
    ck_assert_uint_eq(c.recycle.share, share);
    ck_assert_uint_eq(c.recycle.max_rss, share * 3 / 4);
    ck_assert_uint_eq(c.recycle.max_rss_hard, (uint64_t)((long double)share * 95 / 100));
    ck_assert_int_eq(c.recycle.max_rss_set.source, MEMLIMIT_AUTO);
    ck_assert_str_eq(memlimit_source_name(c.recycle.max_rss_hard_set.source), "auto");
    /* One worker more: smaller shares. */
    ck_assert_int_eq(memlimit_resolve(&c, 96 * MIB, 3, false, err, sizeof err), 0);
    ck_assert_uint_eq(c.recycle.max_rss, 96 * MIB / 4 * 3 / 4);
    /* No limit: off, and said so. */
    ck_assert_int_eq(memlimit_resolve(&c, 0, 2, false, err, sizeof err), 0);
    ck_assert_uint_eq(c.recycle.max_rss, 0);
    ck_assert_uint_eq(c.recycle.max_rss_hard, 0);
    ck_assert_int_eq(c.recycle.max_rss_set.source, MEMLIMIT_NO_LIMIT);
    config_free(&c);

    /* A size and a share: fine while the share is larger... */
    shares(&c, "max_rss = 20M\n", "max_rss_hard = 90%\n");
    ck_assert_int_eq(memlimit_resolve(&c, 96 * MIB, 2, false, err, sizeof err), 0);
    ck_assert_uint_eq(c.recycle.max_rss, 20 * MIB);
    ck_assert_int_eq(c.recycle.max_rss_set.source, MEMLIMIT_SIZE);
    ck_assert_int_eq(c.recycle.max_rss_hard_set.source, MEMLIMIT_SHARE);
    /* ...an error at start or reload once it is not (file, line, key)... */
    ck_assert_int_eq(memlimit_resolve(&c, 64 * MIB, 2, false, err, sizeof err), -1);
    ck_assert_msg(strstr(err,
                         "shares.ini:5: [recycle] max_rss_hard: expected more than "
                         "max_rss (20M), got \"90%\" (= 19.2M; the cgroup's memory limit "
                         "64.0M over workers 2 + max_concurrent_recycles 1)"),
                  "%s", err);
    /* ...and after a scale, max_rss yields to max_rss_hard. */
    ck_assert_int_eq(memlimit_resolve(&c, 64 * MIB, 2, true, NULL, 0), 1);
    ck_assert_uint_eq(c.recycle.max_rss_hard,
                      (uint64_t)((long double)(64 * MIB / 3) * 90 / 100));
    ck_assert_uint_eq(c.recycle.max_rss, c.recycle.max_rss_hard / 5 * 4);
    ck_assert_int_eq(c.recycle.max_rss_set.source, MEMLIMIT_CLAMPED);
    /* Back to a larger share: the size again. */
    ck_assert_int_eq(memlimit_resolve(&c, 96 * MIB, 2, true, NULL, 0), 0);
    ck_assert_uint_eq(c.recycle.max_rss, 20 * MIB);
    config_free(&c);

    /* The other way round. */
    shares(&c, "max_rss = 50%\n", "max_rss_hard = 10M\n");
    ck_assert_int_eq(memlimit_resolve(&c, 96 * MIB, 2, false, err, sizeof err), -1);
    ck_assert_msg(strstr(err,
                         "shares.ini:5: [recycle] max_rss_hard: expected more than "
                         "max_rss (50% = 16.0M), got \"10M\" (the cgroup's memory limit "
                         "96.0M over workers 2 + max_concurrent_recycles 1)"),
                  "%s", err);
    config_free(&c);

    /* Sizes only: as written, whatever the cgroup. */
    shares(&c, "max_rss = 200M\n", "");
    ck_assert_int_eq(memlimit_resolve(&c, 96 * MIB, 2, false, err, sizeof err), 0);
    ck_assert_uint_eq(c.recycle.max_rss, 200 * MIB);
    ck_assert_int_eq(c.recycle.max_rss_hard_set.source, MEMLIMIT_OFF);
    config_free(&c);
}
END_TEST

/* ---- a real memory cgroup ---------------------------------------------------- */

static char cg_base[1024]; /* where the test's cgroups are made ("": none) */
static char cg_skip[600];  /* why not */

/* Whether list (blank-separated words) holds word. */
static bool has_word(const char *path, const char *word)
{
    char *text = harness_read_file(path, NULL), *save = NULL;
    bool found = false;

    for (char *w = text ? strtok_r(text, " \n", &save) : NULL; w && !found;
         w = strtok_r(NULL, " \n", &save))
        found = strcmp(w, word) == 0;
    free(text);
    return found;
}

/* The directory under which a memory cgroup can be made: our own v1
 * memory cgroup; on v2 our own when it hands memory to its children,
 * else its parent (a cgroup with processes cannot enable controllers). */
static void find_base(void)
{
    struct cgroup own;
    char ctl[1100];

    if (geteuid() != 0) {
        snprintf(cg_skip, sizeof cg_skip, "not root");
        return;
    }
    if (cgroup_find(NULL, &own) < 0) {
        snprintf(cg_skip, sizeof cg_skip, "%s", own.why);
        return;
    }
    snprintf(cg_base, sizeof cg_base, "%s", own.dir);
    snprintf(ctl, sizeof ctl, "%s/cgroup.subtree_control", own.dir);
    if (own.version == CGROUP_V2 && !has_word(ctl, "memory") && strrchr(cg_base, '/'))
        *strrchr(cg_base, '/') = '\0';
}

/* Writes text to dir/name; 0 / -1 (errno). */
static int cg_write(const char *dir, const char *name, const char *text)
{
    char path[1200];
    FILE *f;
    int rc;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if ((f = fopen(path, "w")) == NULL)
        return -1;
    rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

/* The pids in dir/cgroup.procs, at most max; -1 when unreadable. */
static int cg_procs(const char *dir, pid_t *out, int max)
{
    char path[1200], *text, *save = NULL;
    int n = 0;

    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    if ((text = harness_read_file(path, NULL)) == NULL)
        return -1;
    for (char *w = strtok_r(text, "\n", &save); w && n < max;
         w = strtok_r(NULL, "\n", &save))
        out[n++] = (pid_t)atoi(w);
    free(text);
    return n;
}

/* Removes a cgroup of ours once its processes are gone (they are the
 * daemon's: after half the deadline they are killed, by pid). */
static bool cg_remove(const char *dir, double timeout)
{
    double start = harness_now();
    bool killed = false;

    for (;;) {
        pid_t pids[64];
        int n = cg_procs(dir, pids, 64);

        if (n < 0)
            return true; /* gone already */
        if (n == 0 && (rmdir(dir) == 0 || errno == ENOENT))
            return true;
        if (harness_now() - start > timeout)
            return false;
        if (n > 0 && !killed && harness_now() - start > timeout / 2) {
            for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
            killed = true;
        }
        harness_pause(0.01);
    }
}

/* The runner's teardown: the cgroups of tests that failed half-way. */
static void cg_cleanup(void)
{
    char prefix[64], dir[1400];
    struct dirent *e;
    DIR *d;

    if (cg_base[0] == '\0' || (d = opendir(cg_base)) == NULL)
        return;
    snprintf(prefix, sizeof prefix, "preforkd-test-%d-", (int)getpid());
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(dir, sizeof dir, "%s/%s", cg_base, e->d_name);
        if (!cg_remove(dir, 20))
            fprintf(stderr, "test_cgroup: could not remove %s\n", dir);
    }
    closedir(d);
}

/* CI runs as root with cgroups to make: there, a skip is a failure. */
static void must_not_skip(const char *test)
{
    const char *v = getenv("PREFORKD_REQUIRE_CGROUP");

    ck_assert_msg(v == NULL || strcmp(v, "1") != 0,
                  "%s: a real cgroup is required here (PREFORKD_REQUIRE_CGROUP=1)", test);
}

struct realcg {
    char dir[1300];
    uint64_t limit;
};

/* A memory cgroup of limit bytes for this test, without swap; false (and
 * a line on stderr) when it cannot be made. */
static bool cg_make(struct realcg *cg, uint64_t limit, const char *test)
{
    char text[32];

    if (cg_base[0] == '\0') {
        fprintf(stderr, "%s: skipped: no memory cgroup to use (%s)\n", test, cg_skip);
        must_not_skip(test);
        return false;
    }
    snprintf(cg->dir, sizeof cg->dir, "%s/preforkd-test-%d-%d", cg_base, (int)getppid(),
             (int)getpid());
    cg->limit = limit;
    snprintf(text, sizeof text, "%llu\n", (unsigned long long)limit);
    if (mkdir(cg->dir, 0755) < 0) {
        fprintf(stderr, "%s: skipped: cannot make cgroup %s: %s\n", test, cg->dir,
                strerror(errno));
        must_not_skip(test);
        return false;
    }
    if (cg_write(cg->dir, "memory.max", text) < 0 &&
        cg_write(cg->dir, "memory.limit_in_bytes", text) < 0) {
        fprintf(stderr, "%s: skipped: cannot set the memory limit of %s: %s\n", test,
                cg->dir, strerror(errno));
        rmdir(cg->dir);
        must_not_skip(test);
        return false;
    }
    /* No swap, so that the limit is the memory the leak can have. */
    (void)cg_write(cg->dir, "memory.swappiness", "0\n");
    (void)cg_write(cg->dir, "memory.swap.max", "0\n");
    return true;
}

/* A daemon whose master starts in cg: a wrapper puts itself in the cgroup
 * and execs preforkd (the workers and the mold are forked there too). */
static struct hdaemon *start_in(const struct realcg *cg, const char *recycle)
{
    static char wrapper[256]; /* d->exec_bin: one daemon per test */
    struct hdaemon *d = harness_daemon_new();
    char *leak = load_module_path("PREFORKD_APPS", "leak"), text[2048];

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 2\ntimeout = 5s\n"
                          "graceful_timeout = 5s\n[recycle]\n%s\n[app]\nmodule = %s\n"
                          "leak_bytes = 1M\n[admin]\nlisten = 127.0.0.1:0\n",
                          recycle, leak);
    free(leak);
    snprintf(wrapper, sizeof wrapper, "%s/in-cgroup.sh", d->dir);
    snprintf(text, sizeof text,
             "#!/bin/sh\necho $$ > '%s/cgroup.procs' || exit 111\n"
             "exec '%s' \"$@\"\n",
             cg->dir, harness_env("PREFORKD_BIN"));
    harness_write_file(wrapper, text, strlen(text));
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    d->exec_bin = wrapper;
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    return d;
}

/* workers = auto counts the CPUs the daemon may run on: under taskset -c 0,
 * one worker on a machine with more. */
START_TEST(test_auto_workers_affinity)
{
    char *hello = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d;
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof set, &set) < 0 || CPU_COUNT(&set) < 2 ||
        !CPU_ISSET(0, &set) || access("/usr/bin/taskset", X_OK) < 0) {
        fprintf(stderr, "test_auto_workers_affinity: skipped: needs CPU 0 and another, "
                        "and /usr/bin/taskset\n");
        free(hello);
        return;
    }
    d = harness_daemon_new();
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = auto\n"
                          "[app]\nmodule = %s\n",
                          hello);
    d->exec_bin = "/usr/bin/taskset";
    {
        const char *args[] = {"-c", "0",     harness_env("PREFORKD_BIN"),
                              "-c", d->conf, NULL};
        harness_daemon_spawn(d, args);
    }
    harness_daemon_wait_ready(d, 20);
    ck_assert_msg(harness_log_count(d, "ready: 1 workers serving") == 1,
                  "workers = auto under taskset -c 0 did not start 1 worker");
    ck_assert(harness_daemon_stop(d, SIGTERM, 10));
    free(hello);
}
END_TEST

/* /stats, its "cgroup" object, and a number of one of its members
 * ("max_rss.bytes": the number "bytes" after "max_rss"). */
static double cgroup_num(const char *json, const char *member, const char *key)
{
    const char *cg = strstr(json, "\"cgroup\": {"), *m;
    char pat[64];

    ck_assert_msg(cg != NULL, "no cgroup in %s", json);
    if (member == NULL)
        return stats_num(cg, key);
    snprintf(pat, sizeof pat, "\"%s\": {", member);
    m = strstr(cg, pat);
    ck_assert_msg(m != NULL, "no %s in %s", member, cg);
    return stats_num(m, key);
}

/* The last log line matching what, for the test's output. */
static void print_line(struct hdaemon *d, const char *test, const char *what)
{
    char *log = harness_log_text(d), *hit = strstr(log, what), *start, *end;

    if (hit != NULL) {
        for (start = hit; start > log && start[-1] != '\n'; start--)
            ;
        end = strchr(hit, '\n');
        fprintf(stderr, "%s: %.*s\n", test,
                (int)(end ? end - start : (long)strlen(start)), start);
    }
    free(log);
}

static char *metrics_get(int admin)
{
    struct hconn *c = harness_connect(admin);
    struct hresp r;
    char *body;

    harness_send_str(c, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "GET /metrics");
    ck_assert_int_eq(r.status, 200);
    body = strdup(r.body);
    hresp_free(&r);
    harness_close(c);
    return body;
}

static void active_pid(const char *obj, void *arg)
{
    pid_t *pid = arg;

    if (*pid == 0 && stats_str_is(obj, "phase", "active") &&
        stats_str_is(obj, "state", "serving"))
        *pid = (pid_t)stats_num(obj, "pid");
}

/* Whether /stats shows this max_rss within a few seconds. */
static bool wait_max_rss(int admin, uint64_t want)
{
    double end = harness_now() + 10, v;

    do {
        char *j = stats_get(admin);

        v = j ? cgroup_num(j, "max_rss", "bytes") : -1;
        free(j);
        if (v == (double)want)
            return true;
        harness_pause(0.01);
    } while (harness_now() < end);
    fprintf(stderr, "max_rss %.0f, expected %llu\n", v, (unsigned long long)want);
    return false;
}

/* preforkctl status: one line about the limit, with the effective ones. */
static void expect_status(int admin, uint64_t soft, uint64_t hard)
{
    char addr[64], want[160], *out;
    const char *argv[] = {harness_env("PREFORKD_CTL"), "-a", addr, "status", NULL};
    int rc;

    snprintf(addr, sizeof addr, "127.0.0.1:%d", admin);
    rc = ops_run(argv, &out, 30);
    snprintf(want, sizeof want, "max_rss %.1fM (auto), max_rss_hard %.1fM (auto)\n",
             (double)soft / MIB, (double)hard / MIB);
    ck_assert_msg(rc == 0 && strstr(out, "\ncgroup v") && strstr(out, want) &&
                      strstr(out, ", 0 OOM kills; "),
                  "exit %d, no \"%s\" in:\n%s", rc, want, out);
    free(out);
}

static uint64_t test_limit(void)
{
    const char *san = getenv("PREFORKD_SANITIZE");

    /* ASan's allocator and shadow pages make every process far larger. */
    return (san && strcmp(san, "1") == 0 ? 320 : 96) * MIB;
}

/* No max_rss: the leaking workers grow until the kernel kills one. The
 * master names the OOM killer with the limit, counts it, replaces it. */
START_TEST(test_real_oom_kill)
{
    struct realcg cg;
    struct hdaemon *d;
    char *j, want[256];
    int admin, spawned;
    double end;

    if (!cg_make(&cg, test_limit(), "test_real_oom_kill"))
        return;
    d = start_in(&cg, "");
    admin = stats_admin_port(d);
    j = stats_get(admin);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(cgroup_num(j, NULL, "memory_limit") == (double)cg.limit, "%s", j);
    ck_assert_msg(cgroup_num(j, NULL, "oom_kills") == 0, "%s", j);
    ck_assert_msg(strstr(j, strrchr(cg.dir, '/')) != NULL, "cgroup path not in %s", j);
    free(j);
    spawned = harness_log_count(d, "worker [0-9]+ spawned");
    /* 1 MiB a request: a few hundred requests at most reach the limit. */
    end = harness_now() + 60;
    while (harness_log_count(d, "killed by the kernel's OOM killer") == 0 &&
           harness_now() < end) {
        struct load l = {.port = d->port, .requests = 1};
        load_run(&l); /* may fail: the worker is killed under it */
    }
    snprintf(want, sizeof want,
             "worker [0-9]+ \\(pid [0-9]+\\) killed by the kernel's "
             "OOM killer: cgroup v[12] .*/preforkd-test-[0-9-]+ at its memory limit of "
             "%.1fM \\(oom_kill count [0-9]+; killed by signal 9 \\(SIGKILL\\)\\)",
             (double)cg.limit / MIB);
    ck_assert_msg(harness_log_count(d, want) >= 1, "%s", harness_log_tail(d, 3000));
    print_line(d, "test_real_oom_kill", "killed by the kernel's OOM killer");
    ck_assert(harness_log_wait(d, "retired: oom_kill \\(killed by signal 9", 1, 5));
    /* Replaced: a worker more was spawned, and two serve. */
    ck_assert(harness_log_wait(d, "worker [0-9]+ spawned", spawned + 1, 10));
    end = harness_now() + 10;
    do {
        j = stats_get(admin);
        ck_assert_ptr_nonnull(j);
        if (stats_num(j, "workers_serving") == 2 || harness_now() > end)
            break;
        free(j);
        harness_pause(0.02);
    } while (true);
    ck_assert_msg(stats_num(j, "workers_serving") == 2, "%s", j);
    ck_assert_msg(cgroup_num(j, NULL, "oom_kills") >= 1, "%s", j);
    ck_assert_msg(stats_num(j, "oom_kill") >= 1, "%s", j);
    ck_assert_msg(stats_num(j, "crash") == 0, "%s", j);
    free(j);
    ck_assert(harness_daemon_stop(d, SIGTERM, 20));
    ck_assert_msg(cg_remove(cg.dir, 20), "cgroup %s not removed", cg.dir);
}
END_TEST

/* max_rss = auto in the same cgroup: the expected bytes in /stats, and a
 * leaking worker leaves by max_rss before the kernel needs to step in. */
START_TEST(test_real_auto)
{
    struct realcg cg;
    struct hdaemon *d;
    uint64_t share, soft, hard;
    char *j, *m, want[128];
    pid_t victim;
    int admin;
    double end;

    if (!cg_make(&cg, test_limit(), "test_real_auto"))
        return;
    share = cg.limit / 3; /* workers 2 + max_concurrent_recycles 1 */
    soft = (uint64_t)((long double)share * CONFIG_AUTO_MAX_RSS / 100);
    hard = (uint64_t)((long double)share * CONFIG_AUTO_MAX_RSS_HARD / 100);
    d = start_in(&cg, "max_rss = auto\nmax_rss_hard = auto\n");
    admin = stats_admin_port(d);
    j = stats_get(admin);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(cgroup_num(j, NULL, "share_per_worker") == (double)share, "%s", j);
    ck_assert_msg(cgroup_num(j, "max_rss", "bytes") == (double)soft, "%s", j);
    ck_assert_msg(cgroup_num(j, "max_rss_hard", "bytes") == (double)hard, "%s", j);
    ck_assert_msg(strstr(j, "\"max_rss\": {\"bytes\": ") &&
                      strstr(j, "\"setting\": \"auto\", \"source\": \"auto\"}"),
                  "%s", j);
    free(j);
    m = metrics_get(admin);
    ck_assert_msg(strstr(m, "\npreforkd_cgroup_memory_limit_bytes ") &&
                      strstr(m, "\npreforkd_oom_kills_total 0\n"),
                  "%s", m);
    snprintf(want, sizeof want, "\npreforkd_max_rss_bytes %llu\n",
             (unsigned long long)soft);
    ck_assert_msg(strstr(m, want) != NULL, "%s", m);
    ops_promtool_check(d->dir, m);
    free(m);
    expect_status(admin, soft, hard);
    end = harness_now() + 60;
    while (harness_log_count(d, "retired: max_rss \\(") < 3 && harness_now() < end)
        load_sync(d->port, 5, false, "leaked 1048576 bytes\n");
    ck_assert_msg(harness_log_count(d, "retired: max_rss \\(") >= 3, "%s",
                  harness_log_tail(d, 3000));
    print_line(d, "test_real_auto", "[recycle] max_rss = auto:");
    j = stats_get(admin);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(cgroup_num(j, NULL, "oom_kills") == 0, "%s", j);
    ck_assert_msg(stats_num(j, "oom_kill") == 0 && stats_num(j, "max_rss_hard") == 0,
                  "%s", j);
    free(j);
    /* A worker more: smaller shares at once; a reload: the file's again. */
    ck_assert_int_eq(kill(d->pid, SIGTTIN), 0);
    ck_assert(wait_max_rss(admin, (uint64_t)((long double)(cg.limit / 4) * 75 / 100)));
    ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
    ck_assert(harness_log_wait(d, "reload done", 1, 20));
    ck_assert(wait_max_rss(admin, soft));
    ck_assert_int_eq(harness_log_count(d, "\\[recycle\\] max_rss = auto: "), 3);
    /* A SIGKILL from someone else is no OOM kill: the count did not move. */
    j = stats_get(admin);
    ck_assert_ptr_nonnull(j);
    victim = 0;
    stats_each_worker(j, active_pid, &victim); /* not one the reload retires */
    free(j);
    ck_assert_int_eq(harness_log_count(d, "OOM killer"), 0);
    ck_assert_int_gt(victim, 0);
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    ck_assert(harness_log_wait(d,
                               "killed by signal 9 \\(SIGKILL\\), neither by preforkd "
                               "nor by the kernel's OOM killer \\(the cgroup's oom_kill "
                               "count is still 0\\)",
                               1, 10));
    ck_assert(harness_log_wait(d, "retired: crash \\(killed by signal 9", 1, 5));
    ck_assert(harness_daemon_stop(d, SIGTERM, 20));
    ck_assert_msg(cg_remove(cg.dir, 20), "cgroup %s not removed", cg.dir);
}
END_TEST

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    Suite *s = suite_create("cgroup");
    TCase *tc = tcase_create("find");
    TCase *real;
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    int rc;

    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_cgroup.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    /* LeakSanitizer walking what the leak app holds on purpose at every
     * worker exit would only slow the recycles down (as in test_recycling). */
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    find_base();
    tcase_add_test(tc, test_v2_max);
    tcase_add_test(tc, test_v2_limit);
    tcase_add_test(tc, test_v2_nested);
    tcase_add_test(tc, test_v2_root);
    tcase_add_test(tc, test_v1_unlimited);
    tcase_add_test(tc, test_v1_limited);
    tcase_add_test(tc, test_missing);
    tcase_add_test(tc, test_cpu_limit);
    tcase_add_test(tc, test_mountinfo_escapes);
    tcase_add_test(tc, test_resolve);
    suite_add_tcase(s, tc);
    real = harness_tcase(s, "real", 120);
    tcase_add_unchecked_fixture(real, NULL, cg_cleanup);
    tcase_add_test(real, test_real_oom_kill);
    tcase_add_test(real, test_real_auto);
    tcase_add_test(real, test_auto_workers_affinity);
    rc = harness_run_suite(s);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
