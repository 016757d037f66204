#include "core/heap.h"
#include "core/common.h"

static bool before(const vx__tnode *a, const vx__tnode *b) {
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return (int32_t)(a->seq - b->seq) < 0;
}

static void place(vx__heap *h, uint32_t i, vx__tnode *n) {
    h->v[i] = n;
    n->idx = i;
}

static void sift_up(vx__heap *h, uint32_t i) {
    vx__tnode *n = h->v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(n, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(vx__heap *h, uint32_t i) {
    vx__tnode *n = h->v[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && before(h->v[child + 1], h->v[child]))
            child++;
        if (!before(h->v[child], n))
            break;
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, n);
}

int vx__heap_reserve(vx__heap *h) {
    if (h->reserved == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        vx__tnode **v = vx__realloc(h->v, (size_t)cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    h->reserved++;
    return 0;
}

void vx__heap_unreserve(vx__heap *h) { h->reserved--; }

void vx__heap_arm(vx__heap *h, vx__tnode *n, uint64_t deadline) {
    if (vx__tnode_armed(n))
        vx__heap_disarm(h, n);
    n->deadline = deadline;
    n->seq = h->seq++;
    place(h, h->len++, n);
    sift_up(h, n->idx);
}

void vx__heap_disarm(vx__heap *h, vx__tnode *n) {
    uint32_t i = n->idx;
    if (i == VX__HEAP_NONE)
        return;
    n->idx = VX__HEAP_NONE;
    if (i == --h->len)
        return;
    place(h, i, h->v[h->len]);
    if (i > 0 && before(h->v[i], h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void vx__heap_free(vx__heap *h) {
    vx__free(h->v);
    *h = (vx__heap){0};
}
