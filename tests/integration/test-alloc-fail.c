/* Allocation failure, once per backend (the uring engine and each poller
 * allocate differently): a vx_allocator_set hook fails the Nth allocation of
 * an operation, for N = 1, 2, ... until the operation runs without reaching
 * its Nth allocation. Every failure must come back as -ENOMEM (or, once a
 * connection exists, as that connection closing cleanly: the peer sees EOF or
 * a reset, never a hang), the loop must keep working afterwards (the same
 * operation then succeeds, byte-exactly), and nothing may leak: the hook
 * counts live allocations, which must be back to zero once the loop and the
 * server are freed (the ASan pass checks with LeakSanitizer as well).
 *
 * Paths: vx_loop_new (+ free), vx_timer_new, vx_listen (TCP and Unix),
 * accepting + vx_conn_start + a line echo (held partial input, a multi-chunk
 * reply), vx_connect + a round trip, vx_http_new + vx_http_route, and
 * accepting + vx_http_attach + a request. Operations on a loop thread are
 * armed on that thread: only its allocations count, so the test thread's own
 * calls into the loop (vx_loop_post) are never the ones that fail. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_N 400 /* more allocations than any path here makes */

/* ------------------------------------------------------------------ the hook */

static struct {
    atomic_long live;    /* allocations minus frees, every thread */
    atomic_bool armed;   /* count (and fail) the armed thread's allocations */
    pthread_t thread;    /* written before armed is set */
    atomic_long count;   /* allocations of that thread since arming */
    atomic_long fail_at; /* N */
    atomic_int failed;   /* the Nth was refused */
} H;

static void *failing_realloc(void *p, size_t size, void *ud) {
    (void)ud;
    if (size == 0) {
        if (p) {
            free(p);
            atomic_fetch_sub(&H.live, 1);
        }
        return NULL;
    }
    if (atomic_load(&H.armed) && pthread_equal(pthread_self(), H.thread) &&
        atomic_fetch_add(&H.count, 1) + 1 == atomic_load(&H.fail_at)) {
        atomic_store(&H.failed, 1);
        return NULL; /* a failed realloc leaves p as it was */
    }
    void *q = realloc(p, size);
    if (q && !p)
        atomic_fetch_add(&H.live, 1);
    return q;
}

/* Fail the nth allocation this thread makes from now on. */
static void arm(long n) {
    H.thread = pthread_self();
    atomic_store(&H.count, 0);
    atomic_store(&H.fail_at, n);
    atomic_store(&H.failed, 0);
    atomic_store(&H.armed, true);
}

static void disarm(void) { atomic_store(&H.armed, false); }

static void arm_fn(void *arg) { arm(*(long *)arg); }
static void disarm_fn(void *arg) {
    (void)arg;
    disarm();
}

static atomic_int log_lines;

static void quiet_log(int level, const char *msg, void *ud) {
    (void)level;
    (void)msg;
    (void)ud;
    atomic_fetch_add(&log_lines, 1); /* "out of memory for a new connection" and such */
}

static void hooks_install(void) {
    atomic_store(&H.live, 0);
    vx_allocator_set(failing_realloc, NULL);
    vx_log_set(quiet_log, NULL, VX_LOG_WARN);
}

/* The end of one N: every allocation of the library is gone. */
static void check_no_leak(const char *path, long n) {
    long live = atomic_load(&H.live);
    CHECK_MSG(live == 0, "%s, allocation %ld failed: %ld allocations never freed", path, n, live);
}

/* One line per path for the report. */
static void report(const char *path, long points, long absorbed) {
    harness_log("%s: %ld allocations, each failed in turn (%ld absorbed without an error), "
                "then a run with none failing",
                path, points, absorbed);
}

/* ----------------------------------------------------- a loop that still works */

/* A timer fires and stops the loop: the loop runs. */
struct turn {
    vx_loop *loop;
    int fired;
};

static void turn_cb(vx_timer *t, void *data) {
    struct turn *tu = data;
    (void)t;
    tu->fired++;
    vx_loop_stop(tu->loop);
}

static bool loop_turns(vx_loop *loop) {
    struct turn tu = {loop, 0};
    vx_timer *t;
    if (vx_timer_new(loop, turn_cb, &tu, &t) < 0)
        return false;
    vx_timer_start(t, 1, 0);
    int rc = vx_loop_run(loop);
    vx_timer_free(t);
    return rc == 0 && tu.fired == 1;
}

/* ------------------------------------------------------------- vx_loop_new */

TEST(loop_new) {
    hooks_install();
    /* by name: "auto" would take an io_uring set-up failure for "unavailable here"
     * and fall back to epoll */
    int b = vx_backend_resolve(VX_BACKEND_AUTO);
    REQUIRE_OK(b);
    vx_loop_opts o = {.backend = (vx_backend)b};
    long points = 0;
    for (long n = 1; n <= MAX_N; n++) {
        vx_loop *loop = NULL;
        arm(n);
        int rc = vx_loop_new(&loop, &o);
        disarm();
        if (!atomic_load(&H.failed)) {
            REQUIRE_OK(rc);
            CHECK(loop_turns(loop));
            vx_loop_free(loop);
            check_no_leak("vx_loop_new", n);
            report("vx_loop_new", points, 0);
            return;
        }
        points++;
        CHECK_MSG(rc == -ENOMEM, "vx_loop_new, allocation %ld failed: %d (%s)", n, rc,
                  vx_err_name(rc));
        CHECK(loop == NULL);
        check_no_leak("vx_loop_new", n);
        /* and the next loop is fine */
        REQUIRE_OK(vx_loop_new(&loop, &o));
        CHECK(loop_turns(loop));
        vx_loop_free(loop);
        check_no_leak("vx_loop_new", n);
    }
    CHECK(!"vx_loop_new never succeeded");
}

/* ------------------------------------------------------------ vx_timer_new */

static void count_cb(vx_timer *t, void *data) {
    (void)t;
    (*(int *)data)++;
}

/* With `before` timers armed already: 0 (the heap is not allocated yet),
 * 1, and 64 (the heap is full: the new timer's reservation grows it). The
 * failure must not disturb them: each still fires once. */
static long timer_path(int before) {
    static vx_timer *ts[64];
    static int fired[64];
    long points = 0;
    for (long n = 1; n <= MAX_N; n++) {
        vx_loop *loop;
        REQUIRE_OK(vx_loop_new(&loop, NULL));
        for (int i = 0; i < before; i++) {
            fired[i] = 0;
            REQUIRE_OK(vx_timer_new(loop, count_cb, &fired[i], &ts[i]));
            vx_timer_start(ts[i], 0, 0);
        }
        int fired2 = 0;
        vx_timer *t = NULL;
        arm(n);
        int rc = vx_timer_new(loop, count_cb, &fired2, &t);
        disarm();
        bool failed = atomic_load(&H.failed);
        if (failed) {
            points++;
            CHECK_MSG(rc == -ENOMEM, "vx_timer_new, allocation %ld failed: %d", n, rc);
            REQUIRE_OK(vx_timer_new(loop, count_cb, &fired2, &t)); /* fine now */
        } else {
            REQUIRE_OK(rc);
        }
        vx_timer_start(t, 0, 0);
        CHECK(loop_turns(loop));
        CHECK_EQ_INT(fired2, 1);
        for (int i = 0; i < before; i++) {
            CHECK_EQ_INT(fired[i], 1);
            vx_timer_free(ts[i]);
        }
        vx_timer_free(t);
        vx_loop_free(loop);
        check_no_leak("vx_timer_new", n);
        if (!failed || harness_failures())
            return points;
    }
    CHECK(!"vx_timer_new never succeeded");
    return points;
}

TEST(timer_new) {
    hooks_install();
    static const int before[] = {0, 1, 64};
    for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
        harness_log("  with %d timers already:", before[i]);
        report("vx_timer_new", timer_path(before[i]), 0);
    }
}

/* ---------------------------------------------- a line echo on the loop thread */

/* The server's side of every connection here: echo whole lines, keep a
 * partial one (held input: an allocation), close when a write fails. */
typedef struct srv {
    server srv;
    vx_listener *l;
    uint16_t port;
    char path[108];
    bool is_unix;
    /* results, written on the loop thread */
    atomic_int accepted, closed, close_errs, write_errs;
    /* listen attempt */
    long n;
    int rc;
    bool failed;
    vx_http *http;
    atomic_int attach_rc;
} srv;

static size_t line_echo(vx_conn *c, const char *p, size_t n) {
    srv *s = vx_conn_data(c);
    size_t k = n;
    while (k && p[k - 1] != '\n')
        k--;
    if (k && vx_conn_write(c, p, k) < 0) {
        atomic_fetch_add(&s->write_errs, 1);
        vx_conn_close(c);
        return n;
    }
    return k;
}

static void echo_closed(vx_conn *c, int err) {
    srv *s = vx_conn_data(c);
    if (err)
        atomic_fetch_add(&s->close_errs, 1);
    atomic_fetch_add(&s->closed, 1);
}

static const vx_conn_cbs line_cbs = {.on_data = line_echo, .on_close = echo_closed};

static void line_accept(vx_listener *l, vx_conn *c, void *data) {
    srv *s = data;
    (void)l;
    atomic_fetch_add(&s->accepted, 1);
    if (vx_conn_start(c, &line_cbs, s) < 0)
        vx_conn_close(c);
}

static int srv_listen(vx_loop *loop, srv *s) {
    vx_listen_opts o = {.host = "127.0.0.1", .unix_path = s->is_unix ? s->path : NULL};
    vx_accept_cb cb = s->http ? vx_http_on_accept : line_accept;
    int rc = vx_listen(loop, &o, cb, s->http ? (void *)s->http : (void *)s, &s->l);
    if (rc == 0)
        s->port = vx_listener_port(s->l);
    return rc;
}

static int srv_setup(vx_loop *loop, void *arg) { return srv_listen(loop, arg); }

static void srv_start(srv *s, bool listening) {
    int rc = server_start(&s->srv, listening ? srv_setup : NULL, s);
    if (rc < 0)
        SKIP("server: %s", vx_err_name(rc));
}

static int srv_connect(srv *s) {
    int fd = s->is_unix ? unix_connect(s->path) : tcp_connect("127.0.0.1", s->port, 5000);
    REQUIRE_OK(fd);
    return fd;
}

static uint64_t srv_conns(srv *s) {
    vx_stats st;
    server_stats(&s->srv, &st);
    return st.conns_live;
}

static bool srv_idle(void *arg) { return srv_conns(arg) == 0; }

/* The client's side of one exchange: a partial line the server must hold,
 * the rest of it, then a 40 KiB line (a reply of several chunks). 1: echoed
 * exactly; 0: the connection closed (EOF or reset) without the whole echo;
 * -1: wrong bytes or a hang. */
static int line_exchange(int fd, rng *r) {
    static char big[40 * 1024 + 1];
    for (size_t i = 0; i + 1 < sizeof big; i++)
        big[i] = (char)('a' + rng_range(r, 0, 25));
    big[sizeof big - 1] = '\n';
    static char want[sizeof big + 16], got[sizeof big + 16];
    size_t wn = 0;
    memcpy(want, "hello world\n", 12);
    wn = 12;
    memcpy(want + wn, big, sizeof big);
    wn += sizeof big;
    if (write_all(fd, "hello wor", 9, 5000) != 9)
        return 0;
    sleep_ms(20); /* usually read on its own: then held as a partial line */
    if (write_all(fd, "ld\n", 3, 5000) != 3 || write_all(fd, big, sizeof big, 5000) < 0)
        return 0;
    ssize_t n = read_exact(fd, got, wn, 5000);
    if (n == -ETIMEDOUT) {
        harness_log("no echo and no close within 5 s");
        return -1;
    }
    if (n == (ssize_t)wn)
        return memcmp(got, want, wn) == 0 ? 1 : -1;
    if (n >= 0 && memcmp(got, want, (size_t)n) != 0)
        return -1;
    return 0; /* EOF or ECONNRESET before the end */
}

/* The loop serves a new connection, byte-exactly. */
static bool srv_works(srv *s, rng *r) {
    int fd = srv_connect(s);
    int rc = line_exchange(fd, r);
    close(fd);
    return rc == 1;
}

/* --------------------------------------------------------------- vx_listen */

/* s->n 0: unarmed. */
static void try_listen(void *arg) {
    srv *s = arg;
    if (s->n)
        arm(s->n);
    s->rc = srv_listen(s->srv.loop, s);
    disarm();
    s->failed = s->n && atomic_load(&H.failed);
}

/* Connections to hold while the operation runs: 62 make the next handle the
 * loop's 64th (its handle and poll arrays grow), 63 make the next timer-heap
 * reservation the 65th (the heap grows). */
static const int crowds[] = {62, 63};

static void crowd_open(srv *s, int *fds, int n) {
    for (int i = 0; i < n; i++)
        fds[i] = srv_connect(s);
    uint64_t until = now_ms() + 5000;
    while (atomic_load(&s->accepted) < n && now_ms() < until)
        sleep_ms(1);
    REQUIRE_EQ_INT(atomic_load(&s->accepted), n);
}

static void crowd_close(int *fds, int n) {
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* With `extra` connections open (to a first listener), listen again. */
static long listen_path(bool is_unix, int extra) {
    const char *path = is_unix ? "vx_listen (Unix)" : "vx_listen (TCP)";
    rng r;
    rng_seed(&r, 21);
    long points = 0;
    int fds[64];
    for (long n = 1; n <= MAX_N; n++) {
        static srv s;
        memset(&s, 0, sizeof s);
        srv_start(&s, extra > 0);
        crowd_open(&s, fds, extra);
        s.is_unix = is_unix;
        if (is_unix)
            unix_path_make(s.path, sizeof s.path, "allocfail");
        s.n = n;
        server_call(&s.srv, try_listen, &s);
        bool failed = s.failed;
        if (failed) {
            points++;
            CHECK_MSG(s.rc == -ENOMEM, "%s, allocation %ld failed: %d (%s)", path, n, s.rc,
                      vx_err_name(s.rc));
            /* a turn later (reaping) the same listen works */
            s.n = 0;
            server_call(&s.srv, try_listen, &s);
        }
        CHECK_OK(s.rc);
        if (s.rc == 0)
            CHECK(srv_works(&s, &r));
        crowd_close(fds, extra);
        CHECK(wait_until(srv_idle, &s, 5000));
        CHECK_OK(server_stop(&s.srv));
        if (is_unix)
            unlink(s.path);
        check_no_leak(path, n);
        if (!failed || harness_failures())
            return points;
    }
    CHECK(!"vx_listen never succeeded");
    return points;
}

TEST(listen_tcp) {
    hooks_install();
    report("vx_listen (TCP)", listen_path(false, 0), 0);
    for (size_t i = 0; i < sizeof crowds / sizeof crowds[0]; i++) {
        harness_log("  with %d connections open:", crowds[i]);
        report("vx_listen (TCP)", listen_path(false, crowds[i]), 0);
    }
}

TEST(listen_unix) {
    hooks_install();
    report("vx_listen (Unix)", listen_path(true, 0), 0);
}

/* ------------------------------------- accept + vx_conn_start + line echo */

static long accept_path(int extra, long *absorbed) {
    rng r;
    rng_seed(&r, 22);
    long points = 0;
    int fds[64];
    for (long n = 1; n <= MAX_N; n++) {
        static srv s;
        memset(&s, 0, sizeof s);
        srv_start(&s, true);
        crowd_open(&s, fds, extra);
        server_call(&s.srv, arm_fn, &n);
        int fd = srv_connect(&s);
        int ex = line_exchange(fd, &r);
        close(fd);
        server_call(&s.srv, disarm_fn, NULL);
        bool failed = atomic_load(&H.failed);
        CHECK_MSG(ex >= 0, "allocation %ld failed: the exchange hung or went wrong", n);
        if (failed) {
            points++;
            *absorbed += ex == 1;
        } else {
            CHECK_MSG(ex == 1, "no allocation failed, yet no echo");
        }
        /* the same loop serves the next connection */
        CHECK_MSG(srv_works(&s, &r), "after allocation %ld failed, the loop no longer serves", n);
        crowd_close(fds, extra);
        CHECK_MSG(wait_until(srv_idle, &s, 5000), "allocation %ld: %llu connections left", n,
                  (unsigned long long)srv_conns(&s));
        CHECK_OK(server_stop(&s.srv));
        check_no_leak("accept + echo", n);
        if (!failed || harness_failures())
            return points;
    }
    CHECK(!"accepting never succeeded");
    return points;
}

TEST(accept_and_echo) {
    hooks_install();
    long absorbed = 0, points = accept_path(0, &absorbed);
    report("accept + vx_conn_start + echo", points, absorbed);
    for (size_t i = 0; i < sizeof crowds / sizeof crowds[0]; i++) {
        absorbed = 0;
        harness_log("  with %d connections open:", crowds[i]);
        points = accept_path(crowds[i], &absorbed);
        report("accept + vx_conn_start + echo", points, absorbed);
    }
}

/* -------------------------------------------------------------- vx_connect */

/* The loop's side: connect, send a line, expect it back, close. */
typedef struct cli {
    server srv;
    uint16_t port;
    long n;
    int rc;            /* vx_connect's */
    atomic_int cb_err; /* the connect callback's err; 1 until it ran */
    atomic_int echoed; /* the whole line came back */
    atomic_int closed; /* the connection's close callback ran */
    char got[64];
    size_t got_len;
} cli;

static const char cli_line[] = "connect round trip\n";

static size_t cli_data(vx_conn *c, const char *p, size_t n) {
    cli *k = vx_conn_data(c);
    size_t room = sizeof k->got - k->got_len;
    memcpy(k->got + k->got_len, p, n < room ? n : room);
    k->got_len += n < room ? n : room;
    if (k->got_len >= sizeof cli_line - 1) {
        atomic_store(&k->echoed, !memcmp(k->got, cli_line, sizeof cli_line - 1) ? 1 : -1);
        vx_conn_close(c);
    }
    return n;
}

static void cli_closed(vx_conn *c, int err) {
    (void)err;
    cli *k = vx_conn_data(c);
    atomic_store(&k->closed, 1);
}

static const vx_conn_cbs cli_cbs = {.on_data = cli_data, .on_close = cli_closed};

static void cli_connected(vx_conn *c, int err, void *data) {
    cli *k = data;
    atomic_store(&k->cb_err, err);
    if (err < 0)
        return;
    if (vx_conn_start(c, &cli_cbs, k) < 0) {
        vx_conn_close(c);
        atomic_store(&k->closed, 1);
        return;
    }
    if (vx_conn_write(c, cli_line, sizeof cli_line - 1) < 0)
        vx_conn_close(c);
}

static void try_connect(void *arg) {
    cli *k = arg;
    atomic_store(&k->cb_err, 1);
    atomic_store(&k->echoed, 0);
    atomic_store(&k->closed, 0);
    k->got_len = 0;
    vx_connect_opts o = {.host = "127.0.0.1", .port = k->port, .timeout_ms = 5000};
    if (k->n)
        arm(k->n);
    k->rc = vx_connect(k->srv.loop, &o, cli_connected, k);
}

static bool cli_settled(void *arg) {
    cli *k = arg;
    int e = atomic_load(&k->cb_err);
    return k->rc < 0 || (e < 0) || (e == 0 && atomic_load(&k->closed));
}

/* The test thread's side: a plain listener that echoes one line per client
 * until the loop's side is done. 1 when the loop's client got its echo. */
static int connect_round(cli *k, int lfd) {
    server_call(&k->srv, try_connect, k);
    uint64_t deadline = now_ms() + 5000;
    int peer = -1;
    char buf[64];
    size_t have = 0;
    while (!cli_settled(k) && now_ms() < deadline) {
        struct pollfd p = {.fd = peer >= 0 ? peer : lfd, .events = POLLIN};
        if (poll(&p, 1, 5) <= 0)
            continue;
        if (peer < 0) {
            peer = accept(lfd, NULL, NULL);
            continue;
        }
        ssize_t got = read(peer, buf + have, sizeof buf - have);
        if (got <= 0) {
            close(peer);
            peer = -2; /* done with it; keep polling the listener harmlessly */
            continue;
        }
        have += (size_t)got;
        if (have >= sizeof cli_line - 1)
            CHECK_EQ_INT(write_all(peer, buf, have, 5000), have);
    }
    if (peer >= 0)
        close(peer);
    /* a connection the kernel completed for a socket the loop then dropped */
    while ((peer = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
        close(peer);
    server_call(&k->srv, disarm_fn, NULL);
    CHECK_MSG(cli_settled(k), "vx_connect, allocation %ld: no outcome within 5 s", k->n);
    return atomic_load(&k->echoed) == 1 ? 1 : 0;
}

static int plain_listener(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -errno;
    set_nonblock(fd, true);
    *port = ntohs(a.sin_port);
    return fd;
}

TEST(connect_round_trip) {
    hooks_install();
    uint16_t port = 0;
    int lfd = plain_listener(&port);
    REQUIRE_OK(lfd);
    long points = 0, absorbed = 0;
    for (long n = 1; n <= MAX_N; n++) {
        static cli k;
        memset(&k, 0, sizeof k);
        k.port = port;
        int rc = server_start(&k.srv, NULL, NULL);
        if (rc < 0)
            SKIP("server: %s", vx_err_name(rc));
        k.n = n;
        int ok = connect_round(&k, lfd);
        bool failed = atomic_load(&H.failed);
        int e = atomic_load(&k.cb_err);
        if (failed) {
            points++;
            absorbed += ok;
            /* -ENOMEM from the call, or through the callback; or the
             * connection closed after it was made */
            CHECK_MSG(k.rc == -ENOMEM || k.rc == 0, "vx_connect, allocation %ld: %d", n, k.rc);
            CHECK_MSG(k.rc < 0 || e == -ENOMEM || e == 0,
                      "vx_connect, allocation %ld: callback err %d (%s)", n, e, vx_err_name(e));
        } else {
            CHECK_OK(k.rc);
            CHECK_EQ_INT(e, 0);
            CHECK_MSG(ok == 1, "no allocation failed, yet no round trip");
        }
        /* the loop connects again */
        k.n = 0;
        CHECK_MSG(connect_round(&k, lfd) == 1,
                  "after allocation %ld failed, vx_connect no longer works", n);
        CHECK_OK(server_stop(&k.srv));
        check_no_leak("vx_connect", n);
        if (!failed) {
            report("vx_connect + round trip", points, absorbed);
            close(lfd);
            return;
        }
        if (harness_failures())
            break;
    }
    close(lfd);
    CHECK(!"vx_connect never succeeded");
}

/* ------------------------------------------------ vx_http_new + vx_http_route */

static void h_ok(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, NULL, "ok\n", 3);
}

static void h_echo(vx_http_req *r, void *d) {
    (void)d;
    size_t n;
    const char *b = vx_http_req_body(r, &n);
    vx_http_respond(r, 200, NULL, b, n);
}

/* 0 or the first error. */
static int http_make(vx_http **out) {
    vx_http_opts o = {.server_name = "alloc-fail"};
    int rc = vx_http_new(out, &o);
    if (rc == 0)
        rc = vx_http_route(*out, "GET", "/ok", 0, h_ok, NULL, NULL);
    if (rc == 0)
        rc = vx_http_route(*out, "GET,POST", "/item/{id}", 0, h_ok, NULL, NULL);
    if (rc == 0)
        rc = vx_http_route(*out, "*", "/static/", VX_HTTP_PREFIX, h_ok, NULL, NULL);
    if (rc == 0)
        rc = vx_http_route(*out, "POST", "/echo", 0, h_echo, NULL, NULL);
    return rc;
}

TEST(http_new_and_route) {
    hooks_install();
    long points = 0;
    for (long n = 1; n <= MAX_N; n++) {
        vx_http *h = NULL;
        arm(n);
        int rc = http_make(&h);
        disarm();
        bool failed = atomic_load(&H.failed);
        if (failed) {
            points++;
            CHECK_MSG(rc == -ENOMEM, "vx_http_new/route, allocation %ld failed: %d", n, rc);
        } else {
            CHECK_OK(rc);
        }
        vx_http_free(h);
        check_no_leak("vx_http_new + vx_http_route", n);
        if (!failed) {
            report("vx_http_new + 4 x vx_http_route", points, 0);
            return;
        }
    }
    CHECK(!"vx_http_new never succeeded");
}

/* --------------------------------------- accept + vx_http_attach + a request */

/* One response: 1 when it is a 200 with exactly body[0..n); 0 when the
 * connection closed first (EOF or reset), or after a 503 with Connection:
 * close (out of memory for a request body); -1 for a hang or wrong bytes. */
static int http_resp(int fd, const char *body, size_t n) {
    static char buf[512], got[16 * 1024];
    size_t have = 0;
    for (;;) {
        ssize_t k = read_exact(fd, buf + have, 1, 5000);
        if (k == -ETIMEDOUT)
            return -1;
        if (k != 1)
            return 0;
        have++;
        if (have >= 4 && !memcmp(buf + have - 4, "\r\n\r\n", 4))
            break;
        if (have == sizeof buf - 1)
            return -1;
    }
    buf[have] = 0;
    const char *cl = strstr(buf, "\r\nContent-Length: ");
    if (!strncmp(buf, "HTTP/1.1 503 ", 13) && strstr(buf, "\r\nConnection: close\r\n") && cl) {
        size_t tn = strtoul(cl + 18, NULL, 10); /* its text body, then EOF */
        if (tn > sizeof got || read_exact(fd, got, tn, 5000) != (ssize_t)tn)
            return -1;
        return wait_eof(fd, 5000) == 0 ? 0 : -1;
    }
    if (strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) || !cl || strtoul(cl + 18, NULL, 10) != n)
        return -1;
    ssize_t k = read_exact(fd, got, n, 5000);
    if (k == -ETIMEDOUT || (k >= 0 && memcmp(got, body, (size_t)k) != 0))
        return -1;
    return k == (ssize_t)n ? 1 : 0;
}

/* A POST with Expect: 100-continue whose client sends its body only after
 * the 100, as curl does for large bodies: a 100 that cannot be queued must
 * close the connection, not leave the client waiting. 1: the 100 and the
 * echo; 0: closed first; -1: hang or wrong bytes. */
static int http_continue(int fd) {
    static const char head[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                               "Expect: 100-continue\r\n\r\n";
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char got[sizeof interim - 1];
    if (write_all(fd, head, sizeof head - 1, 5000) < 0)
        return 0;
    ssize_t k = read_exact(fd, got, sizeof got, 5000);
    if (k == -ETIMEDOUT || (k >= 0 && memcmp(got, interim, (size_t)k) != 0))
        return -1;
    if (k != (ssize_t)sizeof got)
        return 0;
    if (write_all(fd, "hello", 5, 5000) < 0)
        return 0;
    return http_resp(fd, "hello", 5);
}

/* The 100-continue POST above, then a chunked POST whose chunk arrives in two
 * pieces (held input, the decoded body buffer), echoed in a reply of several
 * chunks, and a GET pipelined behind it. 1: all exact; 0: closed first; -1:
 * hang or wrong bytes. */
static int http_exchange(int fd, rng *r) {
    int c = http_continue(fd);
    if (c < 1)
        return c;
    static char body[10 * 1024];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)('a' + rng_range(r, 0, 25));
    char head[160];
    int hn = snprintf(head, sizeof head,
                      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "%zx\r\n",
                      sizeof body);
    static const char tail[] = "\r\n0\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
    if (write_all(fd, head, (size_t)hn, 5000) < 0 || write_all(fd, body, 5000, 5000) < 0)
        return 0;
    sleep_ms(20); /* usually read on its own: then held */
    if (write_all(fd, body + 5000, sizeof body - 5000, 5000) < 0 ||
        write_all(fd, tail, sizeof tail - 1, 5000) < 0)
        return 0;
    int a = http_resp(fd, body, sizeof body);
    return a < 1 ? a : http_resp(fd, "ok\n", 3);
}

static uint64_t http_conns(vx_http *h) {
    static vx_http_stats st;
    vx_http_get_stats(h, &st);
    return st.conns;
}

static bool http_idle(void *arg) {
    srv *s = arg;
    return http_conns(s->http) == 0 && srv_conns(s) == 0;
}

TEST(accept_and_http_attach) {
    hooks_install();
    rng r;
    rng_seed(&r, 23);
    long points = 0, absorbed = 0;
    for (long n = 1; n <= MAX_N; n++) {
        static srv s;
        memset(&s, 0, sizeof s);
        REQUIRE_OK(http_make(&s.http));
        srv_start(&s, true);
        server_call(&s.srv, arm_fn, &n);
        int fd = srv_connect(&s);
        int got = http_exchange(fd, &r);
        close(fd);
        server_call(&s.srv, disarm_fn, NULL);
        bool failed = atomic_load(&H.failed);
        CHECK_MSG(got >= 0, "allocation %ld failed: the request hung or went wrong", n);
        if (failed) {
            points++;
            absorbed += got == 1;
        } else {
            CHECK_MSG(got == 1, "no allocation failed, yet no response");
        }
        fd = srv_connect(&s);
        CHECK_MSG(http_exchange(fd, &r) == 1,
                  "after allocation %ld failed, the server no longer answers", n);
        close(fd);
        CHECK_MSG(wait_until(http_idle, &s, 5000), "allocation %ld: %llu HTTP connections left", n,
                  (unsigned long long)http_conns(s.http));
        CHECK_OK(server_stop(&s.srv));
        vx_http_free(s.http);
        check_no_leak("accept + vx_http_attach", n);
        if (!failed) {
            report("accept + vx_http_attach + request", points, absorbed);
            return;
        }
        if (harness_failures())
            return;
    }
    CHECK(!"vx_http_attach never succeeded");
}
