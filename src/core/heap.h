/* A binary min-heap of deadline nodes: the loop's timers, connection idle
 * timeouts and connect timeouts all live here. Nodes are embedded in their
 * owners; the heap only stores pointers, and each node knows its index, so
 * removal is O(log n). Equal deadlines fire in arming order (seq). */
#ifndef VX_CORE_HEAP_H
#define VX_CORE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VX__HEAP_NONE UINT32_MAX

typedef struct vx__tnode vx__tnode;
typedef void (*vx__tnode_fn)(vx__tnode *n);

struct vx__tnode {
    uint64_t deadline; /* loop milliseconds */
    uint32_t idx;      /* position in the heap, VX__HEAP_NONE when not armed */
    uint32_t seq;
    vx__tnode_fn fire;
};

typedef struct vx__heap {
    vx__tnode **v;
    uint32_t len, cap;
    uint32_t reserved; /* nodes that may be armed at once: cap never falls below */
    uint32_t seq;
} vx__heap;

static inline void vx__tnode_init(vx__tnode *n, vx__tnode_fn fire) {
    n->idx = VX__HEAP_NONE;
    n->fire = fire;
    n->deadline = 0;
    n->seq = 0;
}
static inline bool vx__tnode_armed(const vx__tnode *n) { return n->idx != VX__HEAP_NONE; }

/* Make room for one more node that may be armed later, so arming never fails. */
int vx__heap_reserve(vx__heap *h);
void vx__heap_unreserve(vx__heap *h);
void vx__heap_arm(vx__heap *h, vx__tnode *n, uint64_t deadline);
void vx__heap_disarm(vx__heap *h, vx__tnode *n);
static inline vx__tnode *vx__heap_min(const vx__heap *h) { return h->len ? h->v[0] : NULL; }
void vx__heap_free(vx__heap *h);

#endif
