/* Timers, deferred and posted functions, cross-thread stop, and signals.
 * The loop runs in the case's own (main) thread here. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static vx_loop *loop_new(void) {
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};
    REQUIRE_OK(vx_loop_new(&loop, &o));
    REQUIRE(loop != NULL);
    return loop;
}

static vx_timer *timer_new(vx_loop *loop, vx_timer_cb cb, void *data) {
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, cb, data, &t));
    REQUIRE(t != NULL);
    return t;
}

/* A timer that stops the loop; `fired` tells a guard from an expected stop. */
struct stopper {
    vx_loop *loop;
    vx_timer *t;
    bool fired;
};

static void stopper_cb(vx_timer *t, void *data) {
    struct stopper *s = data;
    (void)t;
    s->fired = true;
    vx_loop_stop(s->loop);
}

static void stopper_start(struct stopper *s, vx_loop *loop, uint64_t ms) {
    s->loop = loop;
    s->fired = false;
    s->t = timer_new(loop, stopper_cb, s);
    vx_timer_start(s->t, ms, 0);
}

struct counter {
    vx_loop *loop;
    int n;
    int limit; /* stop the timer (or the loop, see stop_loop) after this many */
    bool stop_loop;
    uint64_t at[64]; /* vx_loop_now at each fire */
};

static void counter_cb(vx_timer *t, void *data) {
    struct counter *c = data;
    if (c->n < 64)
        c->at[c->n] = vx_loop_now(c->loop);
    c->n++;
    if (c->limit && c->n == c->limit) {
        if (c->stop_loop)
            vx_loop_stop(c->loop);
        else
            vx_timer_stop(t);
    }
}

TEST(one_shot_fires_once) {
    vx_loop *loop = loop_new();
    struct counter c = {.loop = loop};
    struct stopper st;
    vx_timer *t = timer_new(loop, counter_cb, &c);

    CHECK(!vx_timer_active(t));
    uint64_t t0 = vx_loop_now(loop), w0 = now_ms();
    vx_timer_start(t, 20, 0);
    CHECK(vx_timer_active(t));
    stopper_start(&st, loop, 200);
    CHECK_OK(vx_loop_run(loop));
    CHECK(st.fired);
    CHECK_EQ_INT(c.n, 1);
    CHECK(c.at[0] >= t0 + 20);
    CHECK(now_ms() - w0 >= 150); /* the loop really ran until the stopper */
    CHECK(!vx_timer_active(t));
    vx_timer_free(t);
    vx_timer_free(st.t);
    vx_loop_free(loop);
}

TEST(repeating_fires_repeatedly) {
    vx_loop *loop = loop_new();
    struct counter free_run = {.loop = loop}, limited = {.loop = loop, .limit = 5};
    struct stopper st;
    vx_timer *a = timer_new(loop, counter_cb, &free_run);
    vx_timer *b = timer_new(loop, counter_cb, &limited);

    uint64_t t0 = vx_loop_now(loop);
    vx_timer_start(a, 10, 10);
    vx_timer_start(b, 5, 5);
    stopper_start(&st, loop, 300);
    CHECK_OK(vx_loop_run(loop));
    CHECK(st.fired);
    /* 300 ms at a 10 ms period: at most 30 fires; at least a few even on a slow box */
    harness_log("10 ms repeating timer fired %d times in 300 ms", free_run.n);
    CHECK(free_run.n >= 5);
    CHECK_LE_INT(free_run.n, 31);
    CHECK(vx_timer_active(a));
    for (int i = 0; i < free_run.n && i < 64; i++) {
        CHECK(free_run.at[i] >= t0 + 10 * (uint64_t)(i + 1));
        if (i)
            CHECK(free_run.at[i] >= free_run.at[i - 1]);
    }
    /* stopped from its own callback at the 5th fire: never again */
    CHECK_EQ_INT(limited.n, 5);
    CHECK(!vx_timer_active(b));
    vx_timer_free(a);
    vx_timer_free(b);
    vx_timer_free(st.t);
    vx_loop_free(loop);
}

#define NORDER 300

struct order_ctx {
    vx_loop *loop;
    uint64_t deadline[NORDER];
    uint64_t fired_at[NORDER];
    int hits[NORDER];
    int order[NORDER];
    int nfired;
};

struct order_item {
    struct order_ctx *ctx;
    int idx;
};

static void order_cb(vx_timer *t, void *data) {
    struct order_item *it = data;
    struct order_ctx *o = it->ctx;
    (void)t;
    o->hits[it->idx]++;
    o->fired_at[it->idx] = vx_loop_now(o->loop);
    if (o->nfired < NORDER)
        o->order[o->nfired] = it->idx;
    if (++o->nfired == NORDER)
        vx_loop_stop(o->loop);
}

TEST(many_timers_fire_in_deadline_order) {
    vx_loop *loop = loop_new();
    struct order_ctx *o = calloc(1, sizeof *o);
    struct order_item *items = calloc(NORDER, sizeof *items);
    vx_timer **ts = calloc(NORDER, sizeof *ts);
    struct stopper guard;
    rng r;
    REQUIRE(o && items && ts);
    rng_seed(&r, 42);
    o->loop = loop;

    uint64_t t0 = vx_loop_now(loop);
    for (int i = 0; i < NORDER; i++) {
        uint64_t after = rng_range(&r, 0, 150);
        items[i] = (struct order_item){o, i};
        ts[i] = timer_new(loop, order_cb, &items[i]);
        o->deadline[i] = t0 + after;
        vx_timer_start(ts[i], after, 0);
    }
    /* restart a few with a new deadline: only the last start counts */
    for (int i = 0; i < NORDER; i += 10) {
        uint64_t after = rng_range(&r, 0, 150);
        o->deadline[i] = t0 + after;
        vx_timer_start(ts[i], after, 0);
    }
    stopper_start(&guard, loop, 5000);
    CHECK_OK(vx_loop_run(loop));
    CHECK(!guard.fired);
    CHECK_EQ_INT(o->nfired, NORDER);
    int bad_order = 0, early = 0, not_once = 0;
    for (int k = 0; k < NORDER; k++) {
        int i = o->order[k];
        not_once += o->hits[k] != 1;
        early += o->fired_at[i] < o->deadline[i];
        if (k && o->deadline[i] < o->deadline[o->order[k - 1]]) {
            if (!bad_order)
                harness_log("timer %d (deadline +%llu) fired after timer %d (deadline +%llu)", i,
                            (unsigned long long)(o->deadline[i] - t0), o->order[k - 1],
                            (unsigned long long)(o->deadline[o->order[k - 1]] - t0));
            bad_order++;
        }
    }
    CHECK_EQ_INT(bad_order, 0);
    CHECK_EQ_INT(early, 0);
    CHECK_EQ_INT(not_once, 0);
    for (int i = 0; i < NORDER; i++)
        vx_timer_free(ts[i]);
    vx_timer_free(guard.t);
    vx_loop_free(loop);
    free(ts);
    free(items);
    free(o);
}

struct stop_other {
    vx_timer *victim;
    bool was_active;
};

static void stop_other_cb(vx_timer *t, void *data) {
    struct stop_other *s = data;
    (void)t;
    s->was_active = vx_timer_active(s->victim);
    vx_timer_stop(s->victim);
    vx_timer_stop(s->victim); /* twice: harmless */
}

TEST(stop_before_fire) {
    vx_loop *loop = loop_new();
    struct counter c = {.loop = loop}, c2 = {.loop = loop};
    struct stopper st;
    vx_timer *victim = timer_new(loop, counter_cb, &c);
    vx_timer *never = timer_new(loop, counter_cb, &c2);
    struct stop_other so = {.victim = victim};
    vx_timer *killer = timer_new(loop, stop_other_cb, &so);

    vx_timer_start(victim, 60, 0);
    vx_timer_start(killer, 10, 0);
    vx_timer_start(never, 20, 0);
    vx_timer_stop(never); /* stopped before the loop even ran */
    CHECK(!vx_timer_active(never));
    stopper_start(&st, loop, 150);
    CHECK_OK(vx_loop_run(loop));
    CHECK(so.was_active);
    CHECK_EQ_INT(c.n, 0);
    CHECK_EQ_INT(c2.n, 0);
    CHECK(!vx_timer_active(victim));
    vx_timer_free(victim);
    vx_timer_free(never);
    vx_timer_free(killer);
    vx_timer_free(st.t);
    vx_loop_free(loop);
}

struct restart_ctx {
    vx_loop *loop;
    vx_timer *target;
    uint64_t restarted_at;
};

static void restart_cb(vx_timer *t, void *data) {
    struct restart_ctx *r = data;
    (void)t;
    r->restarted_at = vx_loop_now(r->loop);
    vx_timer_start(r->target, 100, 0); /* was due at 50: now due at 20 + 100 */
}

/* a one-shot that re-arms itself from its callback until it fired 3 times */
static void rearm_cb(vx_timer *t, void *data) {
    struct counter *c = data;
    c->n++;
    if (c->n < 3)
        vx_timer_start(t, 10, 0);
}

TEST(restart) {
    vx_loop *loop = loop_new();
    struct counter c = {.loop = loop}, re = {.loop = loop};
    struct stopper st;
    vx_timer *target = timer_new(loop, counter_cb, &c);
    struct restart_ctx rc = {.loop = loop, .target = target};
    vx_timer *restarter = timer_new(loop, restart_cb, &rc);
    vx_timer *rearm = timer_new(loop, rearm_cb, &re);

    vx_timer_start(target, 50, 0);
    vx_timer_start(restarter, 20, 0);
    vx_timer_start(rearm, 10, 0);
    stopper_start(&st, loop, 300);
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(c.n, 1);
    CHECK(rc.restarted_at > 0);
    CHECK(c.at[0] >= rc.restarted_at + 100);
    CHECK_EQ_INT(re.n, 3);
    CHECK(!vx_timer_active(rearm));
    vx_timer_free(target);
    vx_timer_free(restarter);
    vx_timer_free(rearm);
    vx_timer_free(st.t);
    vx_loop_free(loop);
}

static void free_self_cb(vx_timer *t, void *data) {
    int *n = data;
    (*n)++;
    vx_timer_free(t);
}

/* two timers due in the same turn; whichever runs first frees both */
struct pair {
    vx_timer *t[2];
    int n;
};

static void pair_cb(vx_timer *t, void *data) {
    struct pair *p = data;
    p->n++;
    for (int i = 0; i < 2; i++)
        if (p->t[i] && p->t[i] != t) {
            vx_timer_free(p->t[i]);
            p->t[i] = NULL;
        }
    for (int i = 0; i < 2; i++)
        if (p->t[i] == t)
            p->t[i] = NULL;
    vx_timer_free(t);
}

TEST(free_inside_own_callback) {
    vx_loop *loop = loop_new();
    int n_rep = 0, n_once = 0;
    struct pair p = {0};
    struct stopper st;
    vx_timer *rep = timer_new(loop, free_self_cb, &n_rep);
    vx_timer *once = timer_new(loop, free_self_cb, &n_once);
    p.t[0] = timer_new(loop, pair_cb, &p);
    p.t[1] = timer_new(loop, pair_cb, &p);

    vx_timer_start(rep, 5, 5);
    vx_timer_start(once, 5, 0);
    vx_timer_start(p.t[0], 10, 0);
    vx_timer_start(p.t[1], 10, 0);
    stopper_start(&st, loop, 100);
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(n_rep, 1);
    CHECK_EQ_INT(n_once, 1);
    CHECK_EQ_INT(p.n, 1);
    /* a timer freed before it ever ran */
    vx_timer *unused = timer_new(loop, free_self_cb, &n_once);
    vx_timer_start(unused, 1000, 0);
    vx_timer_free(unused);
    vx_timer_free(st.t);
    vx_loop_free(loop);
}

struct mono {
    vx_loop *loop;
    uint64_t last;
    int n, backwards;
    uint64_t jump;
};

static void mono_cb(vx_timer *t, void *data) {
    struct mono *m = data;
    uint64_t now = vx_loop_now(m->loop);
    m->backwards += now < m->last;
    m->last = now;
    if (++m->n == 20) {
        /* a long callback: the cached clock lags until vx_loop_update_time */
        sleep_ms(30);
        uint64_t cached = vx_loop_now(m->loop);
        vx_loop_update_time(m->loop);
        m->jump = vx_loop_now(m->loop) - now;
        m->backwards += cached < now;
        m->last = vx_loop_now(m->loop);
    }
    if (m->n == 40) {
        vx_timer_stop(t);
        vx_loop_stop(m->loop);
    }
}

TEST(loop_now_is_monotonic) {
    vx_loop *loop = loop_new();
    struct mono m = {.loop = loop};
    struct stopper guard;
    m.last = vx_loop_now(loop);
    vx_timer *t = timer_new(loop, mono_cb, &m);
    vx_timer_start(t, 1, 1);
    stopper_start(&guard, loop, 5000);
    uint64_t w0 = now_ms(), l0 = vx_loop_now(loop);
    CHECK_OK(vx_loop_run(loop));
    uint64_t w1 = now_ms();
    CHECK(!guard.fired);
    CHECK_EQ_INT(m.n, 40);
    CHECK_EQ_INT(m.backwards, 0);
    CHECK_MSG(m.jump >= 28, "vx_loop_update_time after a 30 ms sleep moved the clock %llu ms",
              (unsigned long long)m.jump);
    /* the loop clock advanced about as much as the wall clock */
    uint64_t l1 = vx_loop_now(loop);
    CHECK(l1 >= l0 + 30);
    CHECK_LE_INT(l1 - l0, (w1 - w0) + 50);
    vx_timer_free(t);
    vx_timer_free(guard.t);
    vx_loop_free(loop);
}

struct defer_ctx {
    vx_loop *loop;
    int stage; /* 1 while the timer callback runs, 2 once it returned */
    int ran, nested_ran;
    int ran_inside; /* deferred fn ran while the callback was still running */
    uint64_t cb_at, ran_at;
    int ticks_at_run, ticks;
};

static void nested_fn(void *arg) {
    struct defer_ctx *d = arg;
    d->nested_ran++;
}

static void defer_fn(void *arg) {
    struct defer_ctx *d = arg;
    d->ran_inside += d->stage == 1;
    d->ran++;
    d->ran_at = vx_loop_now(d->loop);
    d->ticks_at_run = d->ticks;
    CHECK_OK(vx_loop_defer(d->loop, nested_fn, d));
}

static void defer_timer_cb(vx_timer *t, void *data) {
    struct defer_ctx *d = data;
    (void)t;
    d->stage = 1;
    d->cb_at = vx_loop_now(d->loop);
    CHECK_OK(vx_loop_defer(d->loop, defer_fn, d));
    /* still inside the callback: the deferred function must not have run */
    CHECK_EQ_INT(d->ran, 0);
    d->stage = 2;
}

static void tick_cb(vx_timer *t, void *data) {
    struct defer_ctx *d = data;
    (void)t;
    d->ticks++;
}

TEST(defer_runs_at_end_of_turn) {
    vx_loop *loop = loop_new();
    struct defer_ctx d = {.loop = loop};
    struct stopper st;
    vx_timer *t = timer_new(loop, defer_timer_cb, &d);
    vx_timer *tick = timer_new(loop, tick_cb, &d);
    vx_timer_start(t, 10, 0);
    vx_timer_start(tick, 80, 80);
    stopper_start(&st, loop, 200);
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(d.ran, 1);
    CHECK_EQ_INT(d.ran_inside, 0);
    /* same turn: before the 80 ms tick, without waiting in the poller */
    CHECK_EQ_INT(d.ticks_at_run, 0);
    CHECK_LE_INT(d.ran_at - d.cb_at, 5);
    CHECK_EQ_INT(d.nested_ran, 1);
    vx_timer_free(t);
    vx_timer_free(tick);
    vx_timer_free(st.t);
    vx_loop_free(loop);
}

#define POST_THREADS 4
#define POSTS_PER_THREAD 5000
#define POSTS_TOTAL (POST_THREADS * POSTS_PER_THREAD)

struct post_ctx {
    vx_loop *loop;
    pthread_t loop_thread;
    unsigned char hits[POSTS_TOTAL]; /* written only on the loop thread */
    int total, wrong_thread;
    atomic_int post_errors;
};

struct post_item {
    struct post_ctx *ctx;
    int idx;
};

struct poster {
    struct post_ctx *ctx;
    struct post_item *items;
    pthread_t tid;
};

static void post_fn(void *arg) {
    struct post_item *it = arg;
    struct post_ctx *p = it->ctx;
    p->wrong_thread += !pthread_equal(pthread_self(), p->loop_thread);
    p->hits[it->idx]++;
    if (++p->total == POSTS_TOTAL)
        vx_loop_stop(p->loop);
}

static void *poster_main(void *arg) {
    struct poster *ps = arg;
    for (int i = 0; i < POSTS_PER_THREAD; i++) {
        int rc = vx_loop_post(ps->ctx->loop, post_fn, &ps->items[i]);
        if (rc < 0)
            atomic_fetch_add(&ps->ctx->post_errors, 1);
        if (i % 1000 == 0)
            sched_yield();
    }
    return NULL;
}

TEST(post_from_four_threads_runs_each_once) {
    vx_loop *loop = loop_new();
    struct post_ctx *p = calloc(1, sizeof *p);
    struct post_item *items = calloc(POSTS_TOTAL, sizeof *items);
    struct poster ps[POST_THREADS];
    struct stopper guard;
    REQUIRE(p && items);
    p->loop = loop;
    p->loop_thread = pthread_self();
    for (int i = 0; i < POSTS_TOTAL; i++)
        items[i] = (struct post_item){p, i};
    stopper_start(&guard, loop, 15000);
    for (int t = 0; t < POST_THREADS; t++) {
        ps[t] = (struct poster){.ctx = p, .items = items + t * POSTS_PER_THREAD};
        REQUIRE(pthread_create(&ps[t].tid, NULL, poster_main, &ps[t]) == 0);
    }
    CHECK_OK(vx_loop_run(loop));
    for (int t = 0; t < POST_THREADS; t++)
        pthread_join(ps[t].tid, NULL);
    CHECK(!guard.fired);
    CHECK_EQ_INT(atomic_load(&p->post_errors), 0);
    CHECK_EQ_INT(p->total, POSTS_TOTAL);
    CHECK_EQ_INT(p->wrong_thread, 0);
    int missing = 0, dup = 0;
    for (int i = 0; i < POSTS_TOTAL; i++) {
        missing += p->hits[i] == 0;
        dup += p->hits[i] > 1;
    }
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_INT(dup, 0);
    vx_timer_free(guard.t);
    vx_loop_free(loop);
    free(items);
    free(p);
}

struct stopper_thread {
    vx_loop *loop;
    unsigned delay_ms;
    pthread_t tid;
};

static void *stop_thread_main(void *arg) {
    struct stopper_thread *s = arg;
    sleep_ms(s->delay_ms);
    vx_loop_stop(s->loop);
    return NULL;
}

TEST(stop_from_another_thread) {
    /* 1: a loop with nothing to do blocks until stopped from elsewhere */
    vx_loop *loop = loop_new();
    struct stopper_thread s = {.loop = loop, .delay_ms = 100};
    uint64_t t0 = now_ms();
    REQUIRE(pthread_create(&s.tid, NULL, stop_thread_main, &s) == 0);
    CHECK_OK(vx_loop_run(loop));
    uint64_t took = now_ms() - t0;
    pthread_join(s.tid, NULL);
    CHECK_MSG(took >= 90, "vx_loop_run returned after %llu ms, before the stop at 100 ms",
              (unsigned long long)took);
    CHECK_LE_INT(took, 3000);

    /* 2: the stop wakes a loop sleeping on a long timer */
    struct stopper guard;
    stopper_start(&guard, loop, 10000);
    s.delay_ms = 50;
    t0 = now_ms();
    REQUIRE(pthread_create(&s.tid, NULL, stop_thread_main, &s) == 0);
    CHECK_OK(vx_loop_run(loop));
    took = now_ms() - t0;
    pthread_join(s.tid, NULL);
    CHECK(!guard.fired);
    CHECK_LE_INT(took, 3000);

    /* 3: the loop can run again after a stop */
    struct stopper again;
    stopper_start(&again, loop, 20);
    CHECK_OK(vx_loop_run(loop));
    CHECK(again.fired);
    vx_timer_free(guard.t);
    vx_timer_free(again.t);
    vx_loop_free(loop);
}

struct sig_ctx {
    vx_loop *loop;
    int n[2];
    int signum[2];
    int stop_after;
};

static void sig_cb(vx_signal *s, int signum, void *data) {
    struct sig_ctx *c = data;
    (void)s;
    int i = signum == SIGUSR2;
    c->n[i]++;
    c->signum[i] = signum;
    if (c->n[0] + c->n[1] == c->stop_after)
        vx_loop_stop(c->loop);
}

static void raise_usr1_cb(vx_timer *t, void *data) {
    (void)t;
    (void)data;
    kill(getpid(), SIGUSR1);
}

static void raise_usr2_cb(vx_timer *t, void *data) {
    (void)t;
    (void)data;
    kill(getpid(), SIGUSR2);
}

TEST(signals_through_the_loop) {
    vx_loop *loop = loop_new();
    struct sig_ctx c = {.loop = loop, .stop_after = 2};
    vx_signal *s1 = NULL, *s2 = NULL, *bad = NULL;
    struct stopper guard;

    CHECK_EQ_INT(vx_signal_start(loop, 0, sig_cb, &c, &bad), -EINVAL);
    CHECK_EQ_INT(vx_signal_start(loop, 100000, sig_cb, &c, &bad), -EINVAL);
    REQUIRE_OK(vx_signal_start(loop, SIGUSR1, sig_cb, &c, &s1));
    REQUIRE_OK(vx_signal_start(loop, SIGUSR2, sig_cb, &c, &s2));
    vx_timer *r1 = timer_new(loop, raise_usr1_cb, NULL);
    vx_timer *r2 = timer_new(loop, raise_usr2_cb, NULL);
    vx_timer_start(r1, 10, 0);
    vx_timer_start(r2, 30, 0);
    stopper_start(&guard, loop, 3000);
    CHECK_OK(vx_loop_run(loop));
    CHECK(!guard.fired);
    CHECK_EQ_INT(c.n[0], 1);
    CHECK_EQ_INT(c.n[1], 1);
    CHECK_EQ_INT(c.signum[0], SIGUSR1);
    CHECK_EQ_INT(c.signum[1], SIGUSR2);
    vx_signal_free(s1);
    vx_signal_free(s2);
    vx_timer_free(r1);
    vx_timer_free(r2);
    vx_timer_free(guard.t);
    vx_loop_free(loop);
}

static void *raise_thread_main(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the loop thread must take it */
    sleep_ms(30);
    kill(getpid(), SIGUSR1);
    return NULL;
}

TEST(signal_sent_by_another_thread) {
    vx_loop *loop = loop_new();
    struct sig_ctx c = {.loop = loop, .stop_after = 1};
    vx_signal *s1 = NULL;
    struct stopper guard;
    pthread_t tid;

    REQUIRE_OK(vx_signal_start(loop, SIGUSR1, sig_cb, &c, &s1));
    REQUIRE(pthread_create(&tid, NULL, raise_thread_main, NULL) == 0);
    stopper_start(&guard, loop, 3000);
    CHECK_OK(vx_loop_run(loop));
    pthread_join(tid, NULL);
    CHECK(!guard.fired);
    CHECK_EQ_INT(c.n[0], 1);
    CHECK_EQ_INT(c.signum[0], SIGUSR1);
    vx_signal_free(s1);
    vx_timer_free(guard.t);
    vx_loop_free(loop);
}
