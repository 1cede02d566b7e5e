/* runtime/fiber/annotate — telling the sanitizers about stack switches.
 *
 * AddressSanitizer must know which stack is live (for its fake stacks and
 * for poisoning), ThreadSanitizer which fiber runs (each fiber has its own
 * shadow of the call stack and of happens-before).  Without sanitizers all
 * of this compiles to nothing. */
#ifndef ASYNC_FIBER_ANNOTATE_H
#define ASYNC_FIBER_ANNOTATE_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASYNC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASYNC_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define ASYNC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ASYNC_TSAN 1
#endif
#endif

#ifdef ASYNC_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef ASYNC_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* What one side of a switch needs to tell the sanitizers; empty (zero
 * bytes, a GNU C extension) in a plain build. */
struct async__annot {
#ifdef ASYNC_ASAN
    const void *bottom;     /* lowest address of the stack */
    size_t size;            /* its size */
    void *fake;             /* ASan's fake-stack handle while switched out */
#endif
#ifdef ASYNC_TSAN
    void *tsan;             /* TSan fiber */
#endif
};

static inline void async__asan_unpoison(void *p, size_t n)
{
#ifdef ASYNC_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
    (void)p;
    (void)n;
#endif
}

/* Before switching from `from` to `to`.  `dying`: from never runs again. */
static inline void async__annot_leave(struct async__annot *from, const struct async__annot *to,
                                      int dying)
{
#ifdef ASYNC_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &from->fake, to->bottom, to->size);
#endif
#ifdef ASYNC_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    (void)from;
    (void)to;
    (void)dying;
}

/* First thing after a switch lands in `self`. */
static inline void async__annot_enter(struct async__annot *self)
{
#ifdef ASYNC_ASAN
    __sanitizer_finish_switch_fiber(self->fake, NULL, NULL);
#endif
    (void)self;
}

/* The thread's own stack, as the scheduler context. */
void async__annot_thread(struct async__annot *a);

static inline void async__annot_fiber_new(struct async__annot *a, void *lo, size_t size)
{
#ifdef ASYNC_ASAN
    a->bottom = lo;
    a->size = size;
    a->fake = NULL;
#endif
#ifdef ASYNC_TSAN
    a->tsan = __tsan_create_fiber(0);
#endif
    (void)a;
    (void)lo;
    (void)size;
}

static inline void async__annot_fiber_free(struct async__annot *a)
{
#ifdef ASYNC_TSAN
    __tsan_destroy_fiber(a->tsan);
    a->tsan = NULL;
#endif
    (void)a;
}

#endif
