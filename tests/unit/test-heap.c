/* Unit tests of the deadline heap behind timers and timeouts. */
#include "core/common.h"
#include "core/heap.h"
#include "harness.h"
#include <stdlib.h>

static int fired_order[1000], nfired;

static void record(vx__tnode *n) { fired_order[nfired++] = (int)n->deadline; }

static void pop_due(vx__heap *h, uint64_t now) {
    vx__tnode *n;
    while ((n = vx__heap_min(h)) && n->deadline <= now) {
        vx__heap_disarm(h, n);
        n->fire(n);
    }
}

TEST(heap_orders_random_deadlines) {
    vx__heap h = {0};
    static vx__tnode nodes[1000];
    rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < 1000; i++) {
        REQUIRE_OK(vx__heap_reserve(&h));
        vx__tnode_init(&nodes[i], record);
        vx__heap_arm(&h, &nodes[i], rng_range(&r, 0, 500));
    }
    /* disarm a third of them, re-arm some others */
    for (int i = 0; i < 1000; i += 3)
        vx__heap_disarm(&h, &nodes[i]);
    for (int i = 1; i < 1000; i += 7)
        vx__heap_arm(&h, &nodes[i], rng_range(&r, 0, 500));
    int expected = 0;
    for (int i = 0; i < 1000; i++)
        expected += vx__tnode_armed(&nodes[i]);
    CHECK_EQ_INT(h.len, expected);
    nfired = 0;
    pop_due(&h, 1000);
    CHECK_EQ_INT(nfired, expected);
    for (int i = 1; i < nfired; i++)
        CHECK(fired_order[i - 1] <= fired_order[i]);
    CHECK_EQ_INT(h.len, 0);
    vx__heap_free(&h);
}

static vx__tnode *seen[8];
static int nseen;
static void record_node(vx__tnode *n) { seen[nseen++] = n; }

TEST(heap_equal_deadlines_fire_in_arming_order) {
    vx__heap h = {0};
    vx__tnode n[8];
    for (int i = 0; i < 8; i++) {
        REQUIRE_OK(vx__heap_reserve(&h));
        vx__tnode_init(&n[i], record_node);
        vx__heap_arm(&h, &n[i], 100);
    }
    nseen = 0;
    pop_due(&h, 100);
    REQUIRE_EQ_INT(nseen, 8);
    for (int i = 0; i < 8; i++)
        CHECK(seen[i] == &n[i]);
    vx__heap_free(&h);
}

TEST(heap_disarm_is_idempotent) {
    vx__heap h = {0};
    vx__tnode a, b;
    REQUIRE_OK(vx__heap_reserve(&h));
    REQUIRE_OK(vx__heap_reserve(&h));
    vx__tnode_init(&a, record);
    vx__tnode_init(&b, record);
    vx__heap_arm(&h, &a, 5);
    vx__heap_arm(&h, &b, 3);
    vx__heap_disarm(&h, &a);
    vx__heap_disarm(&h, &a);
    CHECK(!vx__tnode_armed(&a));
    CHECK(vx__heap_min(&h) == &b);
    CHECK_EQ_INT(h.len, 1);
    vx__heap_free(&h);
}
