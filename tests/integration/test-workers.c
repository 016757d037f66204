/* The worker pool: vx_work runs fn on a pool thread and done on the loop
 * thread, exactly once each; back-pressure; cancellation at vx_loop_free; a
 * pool shared by two loops; and a connection whose replies are computed in
 * the pool (an uppercasing echo server with 20 clients). */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static vx_loop *loop_new(void) {
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};
    REQUIRE_OK(vx_loop_new(&loop, &o));
    return loop;
}

static vx_pool *pool_new(int threads, size_t queue_max) {
    vx_pool *p = NULL;
    REQUIRE_OK(vx_pool_new(&p, threads, queue_max));
    REQUIRE(p != NULL);
    return p;
}

/* Stops the loop after ms: a guard against a done that never comes. */
static void guard_cb(vx_timer *t, void *data) {
    (void)t;
    harness_fail(__FILE__, __LINE__, "guard timer fired: the jobs did not complete");
    vx_loop_stop(data);
}

static vx_timer *guard_start(vx_loop *loop, uint64_t ms) {
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, guard_cb, loop, &t));
    vx_timer_start(t, ms, 0);
    return t;
}

/* A gate pool jobs can wait at until the test opens it. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int arrived;
} gate;

static void gate_init(gate *g) {
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
    g->arrived = 0;
}

static void gate_pass(gate *g) {
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Wait (up to 10 s) until n jobs arrived at the gate. */
static bool gate_wait_arrived(gate *g, int n) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    while (g->arrived < n && rc == 0)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &dl);
    bool ok = g->arrived >= n;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

/* ------------------------------------------------------- 1000 jobs, once each */

#define NJOBS 1000

typedef struct many {
    vx_loop *loop;
    pthread_t loop_tid;
    atomic_int ran[NJOBS];
    atomic_int on_loop_thread; /* fns that ran on the loop thread (must stay 0) */
    int done[NJOBS];
    int done_total, done_bad_thread, done_bad_status;
    int submit_errors;
} many;

typedef struct many_job {
    many *m;
    int i;
} many_job;

static many_job jobs_of_many[NJOBS];

static void many_fn(void *arg) {
    many_job *j = arg;
    atomic_fetch_add(&j->m->ran[j->i], 1);
    if (pthread_equal(pthread_self(), j->m->loop_tid))
        atomic_fetch_add(&j->m->on_loop_thread, 1);
}

static void many_done(void *arg, int status) {
    many_job *j = arg;
    many *m = j->m;
    if (!pthread_equal(pthread_self(), m->loop_tid))
        m->done_bad_thread++;
    if (status != 0)
        m->done_bad_status++;
    m->done[j->i]++;
    if (++m->done_total == NJOBS)
        vx_loop_stop(m->loop);
}

static void many_submit(vx_timer *t, void *data) {
    many *m = data;
    (void)t;
    for (int i = 0; i < NJOBS; i++) {
        jobs_of_many[i] = (many_job){m, i};
        if (vx_work(m->loop, many_fn, many_done, &jobs_of_many[i]) < 0)
            m->submit_errors++;
    }
}

TEST(thousand_jobs_done_once_on_loop_thread) {
    static many m;
    vx_loop *loop = loop_new();
    vx_pool *pool = pool_new(3, NJOBS);
    vx_loop_set_pool(loop, pool);
    m.loop = loop;
    m.loop_tid = pthread_self();
    vx_timer *submit = NULL;
    REQUIRE_OK(vx_timer_new(loop, many_submit, &m, &submit));
    vx_timer_start(submit, 0, 0); /* from inside the running loop */
    vx_timer *guard = guard_start(loop, 20000);
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(m.submit_errors, 0);
    CHECK_EQ_INT(m.done_total, NJOBS);
    CHECK_EQ_INT(m.done_bad_thread, 0);
    CHECK_EQ_INT(m.done_bad_status, 0);
    CHECK_EQ_INT(atomic_load(&m.on_loop_thread), 0);
    int bad = 0;
    for (int i = 0; i < NJOBS; i++)
        bad += m.done[i] != 1 || atomic_load(&m.ran[i]) != 1;
    CHECK_EQ_INT(bad, 0);
    vx_stats st;
    vx_loop_stats(loop, &st);
    harness_log("%d jobs on 3 threads: %llu loop wakeups", NJOBS, (unsigned long long)st.wakeups);
    vx_timer_free(submit);
    vx_timer_free(guard);
    vx_loop_free(loop);
    vx_pool_free(pool);
}

/* --------------------------------------------------------- back-pressure */

typedef struct bp {
    vx_loop *loop;
    gate g;
    int done, done_bad_status, expect;
} bp;

static void bp_fn(void *arg) { gate_pass(&((bp *)arg)->g); }

static void bp_done(void *arg, int status) {
    bp *b = arg;
    if (status != 0)
        b->done_bad_status++;
    if (++b->done == b->expect)
        vx_loop_stop(b->loop);
}

static void open_later(vx_timer *t, void *data) {
    (void)t;
    gate_open(data);
}

TEST(back_pressure_queue_full_then_drains) {
    static bp b;
    vx_loop *loop = loop_new();
    vx_pool *pool = pool_new(1, 4);
    vx_loop_set_pool(loop, pool);
    b.loop = loop;
    gate_init(&b.g);
    b.expect = 5;
    /* The single thread takes job 1 and blocks; 2..5 wait; the queue is full. */
    REQUIRE_OK(vx_work(loop, bp_fn, bp_done, &b));
    REQUIRE(gate_wait_arrived(&b.g, 1));
    for (int i = 2; i <= 5; i++)
        CHECK_OK(vx_work(loop, bp_fn, bp_done, &b));
    CHECK_EQ_INT(vx_work(loop, bp_fn, bp_done, &b), -EAGAIN);
    CHECK_EQ_INT(vx_work(loop, bp_fn, bp_done, &b), -EAGAIN); /* and stays full */

    vx_timer *opener = NULL;
    REQUIRE_OK(vx_timer_new(loop, open_later, &b.g, &opener));
    vx_timer_start(opener, 20, 0);
    vx_timer *guard = guard_start(loop, 20000);
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(b.done, 5);
    CHECK_EQ_INT(b.done_bad_status, 0);

    /* Room again: a new job is accepted and completes. */
    b.expect = 6;
    CHECK_OK(vx_work(loop, bp_fn, bp_done, &b));
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(b.done, 6);
    vx_timer_free(opener);
    vx_timer_free(guard);
    vx_loop_free(loop);
    vx_pool_free(pool);
}

/* ------------------------------------------------ vx_loop_free cancels */

typedef struct cjob {
    gate *g;        /* job 0 waits here */
    atomic_int ran; /* fn ran */
    int status;     /* done's status; 1 until done runs */
    int done_calls;
    pthread_t done_tid;
} cjob;

static void c_fn(void *arg) {
    cjob *j = arg;
    atomic_fetch_add(&j->ran, 1);
    if (j->g)
        gate_pass(j->g);
}

/* The first cancelled job opens the gate: the running job can only finish
 * after vx_loop_free took the queued ones out, so the outcome is certain. */
static gate *c_gate_to_open;

static void c_done(void *arg, int status) {
    cjob *j = arg;
    j->status = status;
    j->done_calls++;
    j->done_tid = pthread_self();
    if (status == -ECANCELED && c_gate_to_open) {
        gate_open(c_gate_to_open);
        c_gate_to_open = NULL;
    }
}

TEST(loop_free_cancels_queued_and_waits_for_running) {
    static gate g;
    static cjob j[6];
    gate_init(&g);
    vx_loop *loop = loop_new();
    vx_pool *pool = pool_new(1, 16);
    vx_loop_set_pool(loop, pool);
    for (int i = 0; i < 6; i++)
        j[i] = (cjob){.g = i == 0 ? &g : NULL, .status = 1};
    REQUIRE_OK(vx_work(loop, c_fn, c_done, &j[0]));
    REQUIRE(gate_wait_arrived(&g, 1)); /* job 0 runs (and blocks) */
    for (int i = 1; i < 6; i++)
        REQUIRE_OK(vx_work(loop, c_fn, c_done, &j[i]));
    c_gate_to_open = &g;
    vx_loop_free(loop); /* never ran: every done comes from here */

    CHECK_EQ_INT(atomic_load(&j[0].ran), 1);
    CHECK_EQ_INT(j[0].status, 0);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(j[i].done_calls, 1);
        CHECK(pthread_equal(j[i].done_tid, pthread_self()));
    }
    for (int i = 1; i < 6; i++) {
        CHECK_EQ_INT(atomic_load(&j[i].ran), 0);
        CHECK_EQ_INT(j[i].status, -ECANCELED);
    }
    vx_pool_free(pool);
}

/* A job that finished while the loop was stopped: its done runs in vx_loop_free
 * with status 0. And the pool keeps serving other loops afterwards. */
TEST(loop_free_delivers_finished_jobs) {
    static cjob j[3];
    vx_pool *pool = pool_new(2, 16);
    vx_loop *loop = loop_new();
    vx_loop_set_pool(loop, pool);
    for (int i = 0; i < 3; i++) {
        j[i] = (cjob){.status = 1};
        REQUIRE_OK(vx_work(loop, c_fn, c_done, &j[i]));
    }
    uint64_t t0 = now_ms();
    while ((atomic_load(&j[0].ran) + atomic_load(&j[1].ran) + atomic_load(&j[2].ran)) < 3 &&
           now_ms() - t0 < 10000)
        sleep_ms(1);
    vx_loop_free(loop);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(j[i].done_calls, 1);
        CHECK_EQ_INT(j[i].status, 0);
    }
    /* A second loop on the same pool. */
    vx_loop *loop2 = loop_new();
    vx_loop_set_pool(loop2, pool);
    static bp b;
    gate_init(&b.g);
    gate_open(&b.g);
    b.loop = loop2;
    b.expect = 1;
    REQUIRE_OK(vx_work(loop2, bp_fn, bp_done, &b));
    vx_timer *guard = guard_start(loop2, 20000);
    CHECK_OK(vx_loop_run(loop2));
    CHECK_EQ_INT(b.done, 1);
    vx_timer_free(guard);
    vx_loop_free(loop2);
    vx_pool_free(pool);
}

/* --------------------------------------------- two loops, one pool */

#define PER_LOOP 300

typedef struct side {
    server srv;
    vx_pool *pool;
    atomic_int done;
    atomic_int wrong_thread;
    atomic_int bad_status;
    atomic_int submit_errors;
    int id;
} side;

static atomic_int ran_by_side[2];

static int side_setup(vx_loop *loop, void *arg) {
    side *s = arg;
    vx_loop_set_pool(loop, s->pool);
    return 0;
}

static void side_fn(void *arg) {
    side *s = arg;
    atomic_fetch_add(&ran_by_side[s->id], 1);
}

static void side_done(void *arg, int status) {
    side *s = arg;
    if (!pthread_equal(pthread_self(), s->srv.tid))
        atomic_fetch_add(&s->wrong_thread, 1);
    if (status != 0)
        atomic_fetch_add(&s->bad_status, 1);
    atomic_fetch_add(&s->done, 1);
}

static void side_submit(void *arg) {
    side *s = arg;
    for (int i = 0; i < PER_LOOP; i++)
        if (vx_work(s->srv.loop, side_fn, side_done, s) < 0)
            atomic_fetch_add(&s->submit_errors, 1);
}

static bool sides_done(void *arg) {
    side *s = arg;
    return atomic_load(&s[0].done) == PER_LOOP && atomic_load(&s[1].done) == PER_LOOP;
}

TEST(two_loops_share_a_pool) {
    static side s[2];
    vx_pool *pool = pool_new(2, 2 * PER_LOOP);
    for (int i = 0; i < 2; i++) {
        s[i].pool = pool;
        s[i].id = i;
        REQUIRE_OK(server_start(&s[i].srv, side_setup, &s[i]));
    }
    /* Both loops submit at the same time, so the pool interleaves them. */
    for (int i = 0; i < 2; i++)
        REQUIRE_OK(vx_loop_post(s[i].srv.loop, side_submit, &s[i]));
    CHECK(wait_until(sides_done, s, 20000));
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(atomic_load(&s[i].submit_errors), 0);
        CHECK_EQ_INT(atomic_load(&s[i].done), PER_LOOP);
        CHECK_EQ_INT(atomic_load(&s[i].wrong_thread), 0);
        CHECK_EQ_INT(atomic_load(&s[i].bad_status), 0);
        CHECK_EQ_INT(atomic_load(&ran_by_side[i]), PER_LOOP);
    }
    for (int i = 0; i < 2; i++)
        CHECK_OK(server_stop(&s[i].srv));
    vx_pool_free(pool);
}

/* ------------------------------- a connection served through the pool */

/* Each connection has at most one job in flight: on_data copies what came
 * into it and pauses reading; the job uppercases it on a pool thread; done
 * writes the reply and resumes. */
typedef struct up_job {
    vx_conn *conn; /* NULL once the connection closed under the job */
    size_t len, cap;
    bool eof;  /* the peer finished while the job ran: close after the reply */
    bool busy; /* a job is in flight */
    char *buf;
} up_job;

static void up_free(up_job *j) {
    free(j->buf);
    free(j);
}

typedef struct up_server {
    vx_pool *pool;
    vx_listener *l;
    uint16_t port;
    atomic_int jobs, closed, errors;
} up_server;

static up_server ups;

static void up_fn(void *arg) {
    up_job *j = arg;
    for (size_t i = 0; i < j->len; i++)
        if (j->buf[i] >= 'a' && j->buf[i] <= 'z')
            j->buf[i] = (char)(j->buf[i] - 'a' + 'A');
}

static void up_done(void *arg, int status) {
    up_job *j = arg;
    j->busy = false;
    if (!j->conn) { /* closed meanwhile: the job is ours to free */
        up_free(j);
        return;
    }
    atomic_fetch_add(&ups.jobs, 1);
    if (status != 0 || vx_conn_write(j->conn, j->buf, j->len) < 0) {
        atomic_fetch_add(&ups.errors, 1);
        vx_conn_abort(j->conn, true);
        return;
    }
    if (j->eof)
        vx_conn_close(j->conn);
    else
        vx_conn_resume(j->conn);
}

static size_t up_data(vx_conn *c, const char *data, size_t len) {
    up_job *j = vx_conn_data(c);
    if (j->busy) /* keep it: handed again after the resume (paused: not expected) */
        return 0;
    if (len > j->cap) {
        char *b = realloc(j->buf, len);
        if (!b) {
            vx_conn_abort(c, true);
            return len;
        }
        j->buf = b;
        j->cap = len;
    }
    memcpy(j->buf, data, len);
    j->len = len;
    int rc = vx_work(vx_conn_loop(c), up_fn, up_done, j);
    if (rc < 0) {
        atomic_fetch_add(&ups.errors, 1);
        vx_conn_abort(c, true);
        return len;
    }
    j->busy = true;
    vx_conn_pause(c);
    return len;
}

static void up_eof(vx_conn *c) {
    up_job *j = vx_conn_data(c);
    if (j->busy)
        j->eof = true;
    else
        vx_conn_close(c);
}

static void up_close(vx_conn *c, int err) {
    up_job *j = vx_conn_data(c);
    (void)err;
    atomic_fetch_add(&ups.closed, 1);
    if (j->busy)
        j->conn = NULL; /* up_done frees it */
    else
        up_free(j);
}

static const vx_conn_cbs up_cbs = {.on_data = up_data, .on_eof = up_eof, .on_close = up_close};

static void up_accept(vx_listener *l, vx_conn *c, void *data) {
    (void)l;
    (void)data;
    up_job *j = calloc(1, sizeof *j);
    if (!j) {
        vx_conn_close(c);
        return;
    }
    j->conn = c;
    if (vx_conn_start(c, &up_cbs, j) < 0) {
        free(j);
        vx_conn_close(c);
    }
}

static int up_setup(vx_loop *loop, void *arg) {
    up_server *u = arg;
    vx_loop_set_pool(loop, u->pool);
    vx_listen_opts lo = {.host = "127.0.0.1"};
    int rc = vx_listen(loop, &lo, up_accept, u, &u->l);
    if (rc == 0)
        u->port = vx_listener_port(u->l);
    return rc;
}

#define UP_CLIENTS 20
#define UP_BYTES (100 * 1024)

typedef struct client {
    int fd;
    size_t sent, got;
    bool shut, eof;
    unsigned char *out, *expect, *in;
} client;

/* Every client sends UP_BYTES in random pieces, then shuts down its write
 * side and reads until EOF; all 20 at once through one poll(). */
static int clients_run(client *cl, int n, rng *r, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int left = n;
    while (left > 0) {
        struct pollfd pf[UP_CLIENTS];
        for (int i = 0; i < n; i++) {
            pf[i].fd = cl[i].eof ? -1 : cl[i].fd;
            pf[i].events = (short)(POLLIN | (cl[i].shut ? 0 : POLLOUT));
        }
        if (now_ms() > deadline)
            return -ETIMEDOUT;
        if (poll(pf, (nfds_t)n, 100) < 0)
            return -errno;
        for (int i = 0; i < n; i++) {
            client *c = &cl[i];
            if (c->eof)
                continue;
            if ((pf[i].revents & POLLOUT) && !c->shut) {
                size_t k = (size_t)rng_range(r, 1, 8192);
                if (k > UP_BYTES - c->sent)
                    k = UP_BYTES - c->sent;
                ssize_t w = send(c->fd, c->out + c->sent, k, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0)
                    c->sent += (size_t)w;
                if (c->sent == UP_BYTES) {
                    shutdown(c->fd, SHUT_WR);
                    c->shut = true;
                }
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t g = recv(c->fd, c->in + c->got, UP_BYTES + 1 - c->got, MSG_DONTWAIT);
                if (g > 0) {
                    c->got += (size_t)g;
                } else if (g == 0 || (errno != EAGAIN && errno != EINTR)) {
                    c->eof = true;
                    left--;
                }
            }
        }
    }
    return 0;
}

TEST(echo_uppercased_in_the_pool_20_clients) {
    static client cl[UP_CLIENTS];
    server srv;
    rng r;
    rng_seed(&r, 42);
    ups.pool = pool_new(2, 64);
    REQUIRE_OK(server_start(&srv, up_setup, &ups));
    for (int i = 0; i < UP_CLIENTS; i++) {
        client *c = &cl[i];
        c->out = rng_alloc(&r, UP_BYTES);
        c->expect = malloc(UP_BYTES);
        c->in = malloc(UP_BYTES + 1);
        REQUIRE(c->expect && c->in);
        for (size_t k = 0; k < UP_BYTES; k++) {
            unsigned char ch = c->out[k];
            if (k % 3 == 0) /* plenty of letters to change */
                ch = c->out[k] = (unsigned char)('a' + ch % 26);
            c->expect[k] = ch >= 'a' && ch <= 'z' ? (unsigned char)(ch - 'a' + 'A') : ch;
        }
        c->fd = tcp_connect("127.0.0.1", ups.port, 5000);
        REQUIRE(c->fd >= 0);
        REQUIRE_OK(set_nonblock(c->fd, true));
    }
    CHECK_OK(clients_run(cl, UP_CLIENTS, &r, 30000));
    for (int i = 0; i < UP_CLIENTS; i++) {
        client *c = &cl[i];
        CHECK_EQ_INT(c->got, UP_BYTES);
        CHECK_MSG(c->got == UP_BYTES && memcmp(c->in, c->expect, UP_BYTES) == 0,
                  "client %d: reply differs from the uppercased input", i);
        close(c->fd);
        free(c->out);
        free(c->expect);
        free(c->in);
    }
    uint64_t t0 = now_ms();
    while (atomic_load(&ups.closed) < UP_CLIENTS && now_ms() - t0 < 5000)
        sleep_ms(5);
    CHECK_EQ_INT(atomic_load(&ups.closed), UP_CLIENTS);
    CHECK_EQ_INT(atomic_load(&ups.errors), 0);
    CHECK(atomic_load(&ups.jobs) >= UP_CLIENTS);
    harness_log("%d jobs for %d clients", atomic_load(&ups.jobs), UP_CLIENTS);
    CHECK_OK(server_stop(&srv));
    vx_pool_free(ups.pool);
}
