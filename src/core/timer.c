/* User timers: a node in the loop's deadline heap. A repeating timer is
 * re-armed before its callback runs, so the callback may stop, restart or
 * free it. */
#include "core/loop.h"

struct vx_timer {
    vx__tnode node;
    vx_loop *loop;
    vx_timer_cb cb;
    void *data;
    uint64_t repeat;
    vx__list link; /* loop->timer_list: freed by vx_loop_free if still alive */
};

static void fire(vx__tnode *n) {
    vx_timer *t = VX__CONTAINER_OF(n, vx_timer, node);
    if (t->repeat)
        vx__heap_arm(&t->loop->timers, n, t->loop->now + t->repeat);
    t->cb(t, t->data);
}

int vx_timer_new(vx_loop *loop, vx_timer_cb cb, void *data, vx_timer **out) {
    if (!cb || !out)
        return -EINVAL;
    vx_timer *t = vx__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    if (vx__heap_reserve(&loop->timers) < 0) {
        vx__free(t);
        return -ENOMEM;
    }
    vx__tnode_init(&t->node, fire);
    t->loop = loop;
    t->cb = cb;
    t->data = data;
    vx__list_push(&loop->timer_list, &t->link);
    *out = t;
    return 0;
}

void vx_timer_start(vx_timer *t, uint64_t after_ms, uint64_t repeat_ms) {
    t->repeat = repeat_ms;
    vx__heap_arm(&t->loop->timers, &t->node, t->loop->now + after_ms);
}

void vx_timer_stop(vx_timer *t) { vx__heap_disarm(&t->loop->timers, &t->node); }

bool vx_timer_active(const vx_timer *t) { return vx__tnode_armed(&t->node); }

void vx_timer_free(vx_timer *t) {
    vx__heap_disarm(&t->loop->timers, &t->node);
    vx__heap_unreserve(&t->loop->timers);
    vx__list_remove(&t->link);
    vx__free(t);
}

void vx__timers_free_all(vx_loop *loop) {
    while (!vx__list_empty(&loop->timer_list))
        vx_timer_free(VX__CONTAINER_OF(loop->timer_list.next, vx_timer, link));
}
