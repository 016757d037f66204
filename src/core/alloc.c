/* The one allocator hook: tests swap it to fail the Nth allocation. */
#include "core/common.h"
#include <stdlib.h>

static vx_realloc_fn hook;
static void *hook_ud;

void vx_allocator_set(vx_realloc_fn fn, void *ud) {
    hook = fn;
    hook_ud = ud;
}

void *vx__realloc(void *p, size_t size) {
    if (hook)
        return hook(p, size, hook_ud);
    if (size == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, size);
}

void *vx__malloc(size_t size) { return vx__realloc(NULL, size ? size : 1); }

void *vx__calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = vx__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void vx__free(void *p) {
    if (p)
        vx__realloc(p, 0);
}

char *vx__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = vx__malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}
