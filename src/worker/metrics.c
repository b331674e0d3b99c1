/*
 * metrics.c - figures the app publishes about its worker (pf_worker_heap,
 * pf_metric_set), kept in the worker's scoreboard slot for the master to
 * show in /stats and /metrics. Runs in workers, on the loop thread, but
 * metrics_read, which runs in the master: it reads the rows under a
 * per-row sequence number (odd: being written), so it never shows a torn
 * label.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "preforkd.h"

static struct slot *my_slot;

void metrics_init(struct slot *slot)
{
    my_slot = slot;
}

static bool name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n >= sizeof(my_slot->metrics[0].name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    return true;
}

/* See preforkd.h. */
void pf_worker_heap(const char *name, uint64_t bytes)
{
    if (my_slot == NULL)
        return;
    if (strncmp(my_slot->app_heap_name, name, sizeof(my_slot->app_heap_name) - 1) != 0)
        snprintf(my_slot->app_heap_name, sizeof(my_slot->app_heap_name), "%s", name);
    SB_SET(my_slot->app_heap, bytes);
}

static void write_row(struct sb_metric *m, const char *name, const char *label,
                      double value)
{
    uint64_t bits;

    memcpy(&bits, &value, sizeof(bits));
    SB_ADD(m->seq, 1); /* odd: being written */
    atomic_thread_fence(memory_order_release);
    if (name != NULL) {
        snprintf(m->name, sizeof(m->name), "%s", name);
        snprintf(m->label, sizeof(m->label), "%s", label);
    }
    SB_SET(m->value, bits);
    atomic_thread_fence(memory_order_release);
    SB_ADD(m->seq, 1);
}

/* See preforkd.h. */
int pf_metric_set(const char *name, const char *label, double value)
{
    struct sb_metric *free_row = NULL;

    if (my_slot == NULL || !name_ok(name))
        return -1;
    label = label != NULL ? label : "";
    for (int i = 0; i < SB_METRICS; i++) {
        struct sb_metric *m = &my_slot->metrics[i];
        if (m->name[0] == '\0') {
            if (free_row == NULL)
                free_row = m;
        } else if (strcmp(m->name, name) == 0 &&
                   strncmp(m->label, label, sizeof(m->label) - 1) == 0) {
            write_row(m, NULL, NULL, value);
            return 0;
        }
    }
    if (free_row == NULL)
        return -1;
    write_row(free_row, name, label, value);
    return 0;
}

/* See preforkd.h. */
void pf_metric_clear(const char *name)
{
    if (my_slot == NULL || name == NULL)
        return;
    for (int i = 0; i < SB_METRICS; i++)
        if (strcmp(my_slot->metrics[i].name, name) == 0)
            write_row(&my_slot->metrics[i], "", "", 0);
}

/* See metrics.h. */
bool metrics_read(struct slot *s, int i, struct metrics_row *out)
{
    struct sb_metric *m = &s->metrics[i];

    for (int tries = 0; tries < 4; tries++) {
        uint32_t before = SB_GET(m->seq);
        uint64_t bits;

        if (before & 1)
            continue;
        atomic_thread_fence(memory_order_acquire);
        memcpy(out->name, m->name, sizeof(out->name));
        memcpy(out->label, m->label, sizeof(out->label));
        bits = SB_GET(m->value);
        atomic_thread_fence(memory_order_acquire);
        if (SB_GET(m->seq) != before)
            continue;
        out->name[sizeof(out->name) - 1] = '\0';
        out->label[sizeof(out->label) - 1] = '\0';
        memcpy(&out->value, &bits, sizeof(bits));
        return out->name[0] != '\0';
    }
    return false;
}
