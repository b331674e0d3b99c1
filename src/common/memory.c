/*
 * memory.c - reading a process's memory from /proc: statm for RSS (kept
 * open, one pread per sample), smaps_rollup for USS/PSS. Runs in workers
 * (their own figures) and in the master (every worker's, for the hard
 * limit). Nothing is cached here: callers decide how often to read.
 * Convention: 0 / -1 with errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memory.h"

int memory_open(struct mem_reader *m, pid_t pid)
{
    char path[64];

    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/statm");
    else
        snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    m->pid = pid;
    m->statm_fd = open(path, O_RDONLY | O_CLOEXEC);
    return m->statm_fd < 0 ? -1 : 0;
}

void memory_close(struct mem_reader *m)
{
    if (m->statm_fd >= 0)
        close(m->statm_fd);
    m->statm_fd = -1;
}

int memory_rss(struct mem_reader *m, uint64_t *rss)
{
    char buf[128];
    unsigned long long size, resident;
    ssize_t n = pread(m->statm_fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        errno = EINVAL;
        return -1;
    }
    *rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    return 0;
}

int memory_full(pid_t pid, struct mem_usage *u)
{
    char path[64], line[128];
    unsigned long long kb;
    uint64_t priv = 0;
    FILE *f;

    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/smaps_rollup");
    else
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    if ((f = fopen(path, "re")) == NULL)
        return -1;
    memset(u, 0, sizeof(*u));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Rss: %llu kB", &kb) == 1)
            u->rss = kb * 1024;
        else if (sscanf(line, "Pss: %llu kB", &kb) == 1)
            u->pss = kb * 1024;
        else if (sscanf(line, "Private_Clean: %llu kB", &kb) == 1 ||
                 sscanf(line, "Private_Dirty: %llu kB", &kb) == 1)
            priv += kb * 1024;
    }
    fclose(f);
    u->uss = priv;
    return 0;
}

int memory_metric(struct mem_reader *m, enum memory_metric metric, uint64_t *out)
{
    struct mem_usage u;

    if (metric == METRIC_RSS)
        return memory_rss(m, out);
    if (memory_full(m->pid, &u) < 0)
        return -1;
    *out = metric == METRIC_USS ? u.uss : u.pss;
    return 0;
}

const char *memory_fmt(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "KMGT";
    double v = (double)bytes;
    int i = -1;

    while (v >= 1024 && i < 3) {
        v /= 1024;
        i++;
    }
    if (i < 0)
        snprintf(buf, len, "%" PRIu64 "B", bytes);
    else
        snprintf(buf, len, "%.1f%c", v, units[i]);
    return buf;
}
