/* daemon/modmap.c — which module's code holds an address: a fixed table
 * of the loaded modules' mapped ranges, readable from a signal handler.
 *
 * The table is written by the daemon's fiber only (asyncd_modmap_add and
 * asyncd_modmap_remove, from the loader) and read from any thread, fatal
 * signal handlers included: each slot is a seqlock.  The writer makes seq
 * odd, writes base, end, name and file, then makes seq even (release); a
 * reader loads seq (acquire), copies, re-loads seq, and trusts the copy
 * only when both loads saw the same even value.  base and end are
 * atomics; name and file are plain bytes whose torn reads the sequence
 * check discards.  No lock, no allocation on the reading side. */
#include "modmap.h"

#include "log.h"

#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>

#define SLOTS ASYNCD_MODMAP_SLOTS

static struct slot {
    _Atomic unsigned seq;
    _Atomic uintptr_t base, end;        /* end == 0: free */
    char name[sizeof(((struct asyncd_module_where *)0)->name)];
    char file[sizeof(((struct asyncd_module_where *)0)->file)];
} slots[SLOTS];

/* Byte copy with a NUL: memcpy and strlcpy need not be async-signal-safe. */
static void copy_str(char *to, const char *from, size_t size)
{
    size_t i;

    for (i = 0; i + 1 < size && from[i] != '\0'; i++)
        to[i] = from[i];
    to[i] = '\0';
}

static void slot_write(struct slot *s, uintptr_t base, uintptr_t end, const char *name,
                       const char *file)
{
    unsigned seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->base, base, memory_order_relaxed);
    atomic_store_explicit(&s->end, end, memory_order_relaxed);
    if (name != NULL) {
        copy_str(s->name, name, sizeof(s->name));
        copy_str(s->file, file, sizeof(s->file));
    }
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

bool asyncd_modules_find_by_addr(const void *addr, struct asyncd_module_where *out)
{
    uintptr_t a = (uintptr_t)addr;
    size_t i;
    int tries;

    for (i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];

        for (tries = 0; tries < 4; tries++) {
            unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
            uintptr_t base, end;

            if (seq & 1)
                continue; /* being written */
            base = atomic_load_explicit(&s->base, memory_order_relaxed);
            end = atomic_load_explicit(&s->end, memory_order_relaxed);
            if (end == 0 || a < base || a >= end)
                break;
            copy_str(out->name, s->name, sizeof(out->name));
            copy_str(out->file, s->file, sizeof(out->file));
            out->base = base;
            out->end = end;
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->seq, memory_order_relaxed) == seq)
                return true;
        }
    }
    return false;
}

struct range {
    const char *name;   /* the link map's name, /proc/self/fd/N */
    uintptr_t addr;     /* its load bias */
    uintptr_t base, end;
};

static int find_range(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct range *r = arg;
    int i;

    (void)size;
    if (info->dlpi_addr != r->addr || info->dlpi_name == NULL ||
        strcmp(info->dlpi_name, r->name) != 0)
        return 0;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type != PT_LOAD)
            continue;
        if (r->end == 0 || info->dlpi_addr + ph->p_vaddr < r->base)
            r->base = info->dlpi_addr + ph->p_vaddr;
        if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > r->end)
            r->end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    }
    return 1;
}

int asyncd_modmap_add(void *dl, const char *name, const char *file)
{
    struct link_map *lm = NULL;
    struct range r = {0};
    int i;

    if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL)
        goto fail;
    r.name = lm->l_name;
    r.addr = lm->l_addr;
    dl_iterate_phdr(find_range, &r);
    if (r.end == 0)
        goto fail;
    for (i = 0; i < SLOTS; i++)
        if (atomic_load_explicit(&slots[i].end, memory_order_relaxed) == 0) {
            slot_write(&slots[i], r.base, r.end, name, file);
            return i;
        }
    asyncd_log(ASYNC_LOG_WARNING, "module %s: the address table is full; a crash in its code "
               "will not name it", name);
    return -1;
fail:
    asyncd_log(ASYNC_LOG_WARNING, "module %s: its mapping cannot be found; a crash in its code "
               "will not name it", name);
    return -1;
}

void asyncd_modmap_remove(int slot)
{
    if (slot >= 0 && slot < SLOTS)
        slot_write(&slots[slot], 0, 0, NULL, NULL);
}
