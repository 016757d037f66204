/* vx_connect: success (TCP and Unix), refused, timeout, missing Unix path.
 * The client loop runs in the case's thread; servers are an echo server thread or
 * plain sockets that never accept. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MSG "hello, vortex connect"

static vx_loop *loop_new(void) {
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};
    REQUIRE_OK(vx_loop_new(&loop, &o));
    return loop;
}

struct guard {
    vx_loop *loop;
    bool fired;
};

static void guard_cb(vx_timer *t, void *data) {
    struct guard *g = data;
    (void)t;
    g->fired = true;
    vx_loop_stop(g->loop);
}

/* Run the loop until something stops it, at most ms; true if stopped in time. */
static bool run_for(vx_loop *loop, uint64_t ms) {
    struct guard g = {.loop = loop};
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, guard_cb, &g, &t));
    vx_timer_start(t, ms, 0);
    CHECK_OK(vx_loop_run(loop));
    vx_timer_free(t);
    return !g.fired;
}

/* The client side of one vx_connect. */
struct cli {
    vx_loop *loop;
    int calls, err, inside;
    bool in_call;
    vx_conn *c;
    char got[256];
    size_t ngot;
    int closes, close_err;
    uint64_t t_cb;    /* now_ms() when the connect callback ran */
    vx_timer *linger; /* keeps the connection open past the connect timeout */
};

static size_t cli_on_data(vx_conn *c, const char *data, size_t len) {
    struct cli *k = vx_conn_data(c);
    size_t room = sizeof k->got - 1 - k->ngot, n = len < room ? len : room;
    memcpy(k->got + k->ngot, data, n);
    k->ngot += n;
    if (k->ngot >= strlen(MSG) && !vx_timer_active(k->linger))
        vx_timer_start(k->linger, 500, 0);
    return len;
}

static void cli_on_close(vx_conn *c, int err) {
    struct cli *k = vx_conn_data(c);
    k->closes++;
    k->close_err = err;
    k->c = NULL;
    vx_loop_stop(k->loop);
}

static const vx_conn_cbs cli_cbs = {.on_data = cli_on_data, .on_close = cli_on_close};

static void linger_cb(vx_timer *t, void *data) {
    struct cli *k = data;
    (void)t;
    if (k->c)
        vx_conn_close(k->c);
}

static void cli_connect_cb(vx_conn *c, int err, void *data) {
    struct cli *k = data;
    k->calls++;
    k->err = err;
    k->inside += k->in_call;
    k->t_cb = now_ms();
    if (err) {
        CHECK(c == NULL);
        vx_loop_stop(k->loop);
        return;
    }
    REQUIRE(c != NULL);
    k->c = c;
    CHECK(vx_conn_loop(c) == k->loop);
    CHECK(vx_conn_fd(c) >= 0);
    CHECK_OK(vx_conn_start(c, &cli_cbs, k));
    CHECK(vx_conn_data(c) == k);
    CHECK_OK(vx_conn_write(c, MSG, strlen(MSG)));
}

static int cli_connect(struct cli *k, const vx_connect_opts *o) {
    k->in_call = true;
    int rc = vx_connect(k->loop, o, cli_connect_cb, k);
    k->in_call = false;
    return rc;
}

static void cli_init(struct cli *k, vx_loop *loop) {
    memset(k, 0, sizeof *k);
    k->loop = loop;
    REQUIRE_OK(vx_timer_new(loop, linger_cb, k, &k->linger));
}

/* Connect, exchange MSG, keep the connection 500 ms (past timeout_ms 300), close. */
static void exchange(vx_loop *loop, const vx_connect_opts *o) {
    struct cli k;
    cli_init(&k, loop);
    REQUIRE_OK(cli_connect(&k, o));
    CHECK_EQ_INT(k.calls, 0); /* "later", not inside vx_connect */
    CHECK(run_for(loop, 5000));
    CHECK_EQ_INT(k.calls, 1);
    CHECK_EQ_INT(k.inside, 0);
    CHECK_EQ_INT(k.err, 0);
    CHECK_EQ_INT(k.closes, 1);
    CHECK_MSG(k.close_err == 0, "client on_close err %d (%s)", k.close_err,
              vx_err_name(k.close_err));
    k.got[k.ngot] = 0;
    CHECK_EQ_STR(k.got, MSG);
    vx_timer_free(k.linger);
}

TEST(connect_tcp_and_exchange) {
    echo_server es;
    REQUIRE_OK(echo_server_start(&es, NULL));
    vx_loop *loop = loop_new();
    vx_connect_opts o = {.host = "127.0.0.1", .port = es.port, .timeout_ms = 300};
    exchange(loop, &o);
    o.host = "localhost";
    exchange(loop, &o);
    CHECK(echo_wait_closed(&es, 2, 5000));
    CHECK_EQ_INT(atomic_load(&es.accepted), 2);
    CHECK_EQ_INT(atomic_load(&es.bytes), 2 * strlen(MSG));
    vx_loop_free(loop);
    CHECK_OK(echo_server_stop(&es));
}

TEST(connect_unix_and_exchange) {
    char path[108];
    unix_path_make(path, sizeof path, "connect");
    echo_server es;
    echo_opts eo = {.unix_path = path};
    REQUIRE_OK(echo_server_start(&es, &eo));
    vx_loop *loop = loop_new();
    vx_connect_opts o = {.unix_path = path, .timeout_ms = 300};
    exchange(loop, &o);
    CHECK(echo_wait_closed(&es, 1, 5000));
    vx_loop_free(loop);
    CHECK_OK(echo_server_stop(&es));
    unlink(path);
}

/* A call that fails must not call back; one that succeeds calls back exactly
 * once, later. Returns the error seen either way. */
static int connect_expect_error(vx_loop *loop, const vx_connect_opts *o, uint64_t max_ms,
                                uint64_t *took_ms) {
    struct cli k;
    cli_init(&k, loop);
    uint64_t t0 = now_ms();
    int rc = cli_connect(&k, o);
    int err;
    if (rc < 0) {
        harness_log("vx_connect returned %d (%s)", rc, vx_err_name(rc));
        CHECK_EQ_INT(k.calls, 0);
        run_for(loop, 100);
        CHECK_EQ_INT(k.calls, 0); /* never both */
        err = rc;
    } else {
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(k.calls, 0);
        CHECK_MSG(run_for(loop, max_ms), "no connect callback within %llu ms",
                  (unsigned long long)max_ms);
        CHECK_EQ_INT(k.calls, 1); /* never neither */
        CHECK_EQ_INT(k.inside, 0);
        harness_log("connect callback err %d (%s) after %llu ms", k.err, vx_err_name(k.err),
                    (unsigned long long)(now_ms() - t0));
        err = k.err;
        /* past the connect timeout too: a leftover timer must not call back again */
        run_for(loop, o->timeout_ms + 100);
        CHECK_EQ_INT(k.calls, 1); /* exactly once */
        CHECK_EQ_INT(k.closes, 0);
    }
    if (took_ms)
        *took_ms = (k.calls ? k.t_cb : now_ms()) - t0;
    vx_timer_free(k.linger);
    return err;
}

TEST(connect_refused) {
    /* a port that nothing listens on: bind without listen */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    vx_loop *loop = loop_new();
    vx_connect_opts o = {.host = "127.0.0.1", .port = ntohs(a.sin_port)};
    int err = connect_expect_error(loop, &o, 3000, NULL);
    CHECK_MSG(err == -ECONNREFUSED, "got %d (%s)", err, vx_err_name(err));
    /* the same with a timeout armed: the refusal wins, the timer is dropped */
    o.timeout_ms = 300;
    err = connect_expect_error(loop, &o, 3000, NULL);
    CHECK_MSG(err == -ECONNREFUSED, "got %d (%s)", err, vx_err_name(err));
    vx_stats s;
    vx_loop_stats(loop, &s);
    harness_log("errors: connect=%llu timeout=%llu", (unsigned long long)s.errors[VX_ERRK_CONNECT],
                (unsigned long long)s.errors[VX_ERRK_TIMEOUT]);
    CHECK_EQ_INT(s.conns_live, 0);
    vx_loop_free(loop);
    close(fd);
}

/* A listener with backlog 0 that never accepts, its queue filled: further SYNs
 * are dropped on Linux, so a connect neither succeeds nor fails. */
static int fill_accept_queue(uint16_t *port, int *fillers, int *nfill) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    REQUIRE(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    REQUIRE(listen(lfd, 0) == 0);
    REQUIRE(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    *nfill = 0;
    for (int i = 0; i < 16; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        fillers[(*nfill)++] = fd;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            continue;
        REQUIRE(errno == EINPROGRESS);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 200) == 0) {
            harness_log("accept queue full after %d connects", i);
            return lfd; /* this one stays in progress: the queue is full */
        }
    }
    close(lfd);
    return -1;
}

TEST(connect_timeout) {
    int fillers[16], nfill = 0;
    uint16_t port = 0;
    int lfd = fill_accept_queue(&port, fillers, &nfill);
    if (lfd < 0) {
        for (int i = 0; i < nfill; i++)
            close(fillers[i]);
        SKIP("could not fill a loopback accept queue (SYNs are not dropped here)");
    }
    vx_loop *loop = loop_new();
    vx_connect_opts o = {.host = "127.0.0.1", .port = port, .timeout_ms = 300};
    uint64_t took = 0;
    int err = connect_expect_error(loop, &o, 5000, &took);
    CHECK_MSG(err == -ETIMEDOUT, "got %d (%s)", err, vx_err_name(err));
    CHECK_MSG(took >= 250 && took <= 4000, "timed out after %llu ms (timeout 300)",
              (unsigned long long)took);
    vx_stats s;
    vx_loop_stats(loop, &s);
    CHECK_EQ_INT(s.conns_live, 0);
    vx_loop_free(loop);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(lfd);
}

TEST(connect_unix_missing_path) {
    char path[108];
    unix_path_make(path, sizeof path, "missing");
    vx_loop *loop = loop_new();
    vx_connect_opts o = {.unix_path = path};
    int err = connect_expect_error(loop, &o, 3000, NULL);
    CHECK_MSG(err == -ENOENT || err == -ECONNREFUSED, "got %d (%s)", err, vx_err_name(err));

    /* a stale socket file nobody listens on: refused */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    close(fd);
    err = connect_expect_error(loop, &o, 3000, NULL);
    CHECK_MSG(err == -ECONNREFUSED, "got %d (%s)", err, vx_err_name(err));
    unlink(path);
    vx_loop_free(loop);
}
