/* daemon/modmap — see modmap.h.
 *
 * Two tables and a generation count.  The one publisher fills the table
 * the readers are not reading (tables[(gen + 1) & 1]) and then increments
 * gen (release): from then on readers take that one.  A reader loads gen
 * (acquire), copies from tables[gen & 1], and loads gen again: if it moved
 * by more than one, the publisher may have rewritten the table under the
 * copy and the reader tries again.  No lock, no call: a signal handler
 * may read, even one interrupting the publisher itself (which only ever
 * writes the table nobody reads).  The copy loop reads plain memory the
 * publisher may be writing: the generation check, not the C memory model,
 * is what tells a torn copy from a good one. */
#include "modmap.h"

#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>

#define READ_TRIES 4

struct table {
    size_t n;
    struct asyncd_modmap_entry e[ASYNCD_MODMAP_MAX];
};

static struct table tables[2];
static _Atomic unsigned gen;

/* Finds the segments of the object loaded at base. */
struct span {
    uintptr_t base, lo, hi;
};

static int find_span(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct span *s = arg;
    int i;

    (void)size;
    if (info->dlpi_addr != s->base)
        return 0;
    s->lo = UINTPTR_MAX;
    s->hi = 0;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type != PT_LOAD)
            continue;
        if (info->dlpi_addr + ph->p_vaddr < s->lo)
            s->lo = info->dlpi_addr + ph->p_vaddr;
        if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > s->hi)
            s->hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    }
    return 1;
}

static void fill(struct asyncd_modmap_entry *e, const struct asyncd_module *m)
{
    struct link_map *lm = NULL;
    struct span s = {0};
    const char *slash = strrchr(m->file, '/');

    memset(e, 0, sizeof(*e));
    e->module = m;
    strncpy(e->name, m->desc->name, sizeof(e->name) - 1);
    strncpy(e->file, slash != NULL ? slash + 1 : m->file, sizeof(e->file) - 1);
    e->group = m->group;
    e->run = (void *)m->desc->run;
    if (dlinfo(m->dl, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL) {
        s.base = lm->l_addr;
        if (dl_iterate_phdr(find_span, &s) == 1) {
            e->base = s.base;
            e->lo = s.lo;
            e->hi = s.hi;
        }
    }
}

void asyncd_modmap_publish(const struct asyncd_module *list, const struct asyncd_module *draining,
                           const struct asyncd_module *stuck)
{
    unsigned g = atomic_load_explicit(&gen, memory_order_relaxed);
    struct table *t = &tables[(g + 1) & 1];
    const struct asyncd_module *lists[3] = {list, draining, stuck}, *m;
    size_t i, n = 0;

    for (i = 0; i < 3; i++)
        for (m = lists[i]; m != NULL && n < ASYNCD_MODMAP_MAX; m = m->next)
            fill(&t->e[n++], m);
    t->n = n;
    atomic_store_explicit(&gen, g + 1, memory_order_release);
}

void asyncd_modmap_group(const struct asyncd_module *m)
{
    unsigned g = atomic_load_explicit(&gen, memory_order_relaxed);
    const struct table *old = &tables[g & 1];
    struct table *t = &tables[(g + 1) & 1];
    struct asyncd_modmap_entry e;
    size_t i;

    /* Filled afresh: a reload may have freed a module whose memory m now
     * reuses, and mapped m where another was.  Entries that key on m or
     * overlap its span are such leftovers: dropped. */
    fill(&e, m);
    t->n = 0;
    for (i = 0; i < old->n; i++)
        if (old->e[i].module != m && !(old->e[i].lo < e.hi && e.lo < old->e[i].hi))
            t->e[t->n++] = old->e[i];
    if (t->n < ASYNCD_MODMAP_MAX)
        t->e[t->n++] = e;
    atomic_store_explicit(&gen, g + 1, memory_order_release);
}

/* Copies the first entry that matches (addr in its span, or its group). */
static bool find(uintptr_t addr, const void *group, struct asyncd_modmap_entry *out)
{
    int tries;

    for (tries = 0; tries < READ_TRIES; tries++) {
        unsigned g = atomic_load_explicit(&gen, memory_order_acquire);
        const struct table *t = &tables[g & 1];
        size_t i, n = t->n < ASYNCD_MODMAP_MAX ? t->n : ASYNCD_MODMAP_MAX;
        bool found = false;

        for (i = 0; i < n && !found; i++) {
            const struct asyncd_modmap_entry *e = &t->e[i];

            if ((addr != 0 && addr >= e->lo && addr < e->hi) ||
                (group != NULL && e->group == group)) {
                *out = *e;
                found = true;
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&gen, memory_order_relaxed) - g <= 1) {
            out->name[sizeof(out->name) - 1] = '\0';
            out->file[sizeof(out->file) - 1] = '\0';
            return found;
        }
    }
    return false;
}

bool asyncd_modmap_by_addr(uintptr_t addr, struct asyncd_modmap_entry *out)
{
    return addr != 0 && find(addr, NULL, out);
}

bool asyncd_modmap_by_group(const void *group, struct asyncd_modmap_entry *out)
{
    return group != NULL && find(0, group, out);
}
