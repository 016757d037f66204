/* Internal helpers shared by every part of the library: allocation through
 * the user's hook, logging, counters, and the intrusive list used for handles. */
#ifndef VX_CORE_COMMON_H
#define VX_CORE_COMMON_H

#include "vortex.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>

#define VX__UNUSED(x) ((void)(x))
#define VX__CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))
#define VX__LIKELY(x) __builtin_expect(!!(x), 1)
#define VX__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define VX__MIN(a, b) ((a) < (b) ? (a) : (b))
#define VX__MAX(a, b) ((a) > (b) ? (a) : (b))

/* alloc.c: every allocation goes through the hook set by vx_allocator_set(). */
void *vx__malloc(size_t size);
void *vx__calloc(size_t n, size_t size);
void *vx__realloc(void *p, size_t size);
void vx__free(void *p);
char *vx__strdup(const char *s);

/* log.c */
void vx__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define VX__LOG_ERROR(...) vx__log(VX_LOG_ERROR, __VA_ARGS__)
#define VX__LOG_WARN(...) vx__log(VX_LOG_WARN, __VA_ARGS__)
#define VX__LOG_INFO(...) vx__log(VX_LOG_INFO, __VA_ARGS__)

/* Doubly linked intrusive list with a sentinel head. */
typedef struct vx__list {
    struct vx__list *prev, *next;
} vx__list;

static inline void vx__list_init(vx__list *h) { h->prev = h->next = h; }
static inline bool vx__list_empty(const vx__list *h) { return h->next == h; }
static inline void vx__list_push(vx__list *h, vx__list *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void vx__list_remove(vx__list *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
