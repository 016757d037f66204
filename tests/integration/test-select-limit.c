/* select's hard limit: fd_set holds FD_SETSIZE (1024) bits, and FD_SET on a
 * larger fd is undefined behaviour. The select backend must refuse such fds
 * with -EINVAL, count and log it, close a connection it cannot watch (the
 * close callback gets the error, the peer sees EOF or a reset), and go on
 * serving everything else.
 *
 * Only meaningful with VX_BACKEND=select; the other backends skip it. Low fd
 * numbers are filled with placeholders (dup2 of one socket) so that the next
 * accept() in the server thread returns an fd >= FD_SETSIZE. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

static void require_select(void) {
    const char *b = getenv("VX_BACKEND");
    if (!b || strcmp(b, "select") != 0)
        SKIP("only meaningful with VX_BACKEND=select (have %s)", b ? b : "unset");
}

/* Room for the placeholders, the big fds and the clients. */
static void raise_nofile(void) {
    struct rlimit rl;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur >= FD_SETSIZE + 100)
        return;
    if (rl.rlim_max < FD_SETSIZE + 100)
        SKIP("hard RLIMIT_NOFILE %llu is too low", (unsigned long long)rl.rlim_max);
    rl.rlim_cur = FD_SETSIZE + 100;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* Log lines from any thread (the server's loop logs on its own). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_setsize;    /* lines that mention FD_SETSIZE */
static char log_line[256]; /* the first of them */

static void capture_log(int level, const char *msg, void *ud) {
    (void)level;
    (void)ud;
    pthread_mutex_lock(&log_mu);
    if (strstr(msg, "FD_SETSIZE") && log_setsize++ == 0)
        snprintf(log_line, sizeof log_line, "%s", msg);
    pthread_mutex_unlock(&log_mu);
}

static int log_setsize_count(void) {
    pthread_mutex_lock(&log_mu);
    int n = log_setsize;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* Occupy every free fd number below FD_SETSIZE; returns how many (fds[]). */
static int fill_low_fds(int *fds, int max) {
    int src = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(src >= 0 && src < FD_SETSIZE);
    int n = 0;
    fds[n++] = src;
    for (int fd = 0; fd < FD_SETSIZE && n < max; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        REQUIRE(dup2(src, fd) == fd);
        fds[n++] = fd;
    }
    return n;
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static uint64_t poller_errors(vx_loop *loop) {
    vx_stats st;
    vx_loop_stats(loop, &st);
    return st.errors[VX_ERRK_POLLER];
}

/* ------------------------------------------------------------ vx_io */

static void io_cb(vx_io *io, int fd, unsigned events, void *data) {
    (void)io;
    char b[16];
    ssize_t n = read(fd, b, sizeof b);
    (void)n;
    (void)events;
    int *calls = data;
    (*calls)++;
}

static void stop_cb(vx_timer *t, void *data) {
    (void)t;
    vx_loop_stop(data);
}

TEST(io_start_refuses_fd_past_setsize) {
    require_select();
    raise_nofile();
    vx_log_set(capture_log, NULL, VX_LOG_DEBUG);
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_SELECT};
    REQUIRE_OK(vx_loop_new(&loop, &o));

    int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(sock >= 0);
    int big = fcntl(sock, F_DUPFD_CLOEXEC, FD_SETSIZE + 7); /* the first free fd >= it */
    REQUIRE(big >= FD_SETSIZE);

    uint64_t e0 = poller_errors(loop);
    vx_io *io = NULL;
    int calls = 0;
    CHECK_EQ_INT(vx_io_start(loop, big, VX_READABLE, io_cb, &calls, &io), -EINVAL);
    CHECK(io == NULL);
    CHECK_EQ_INT(vx_io_start(loop, big, VX_WRITABLE, io_cb, &calls, &io), -EINVAL);
    CHECK(io == NULL);
    CHECK_EQ_INT(poller_errors(loop) - e0, 2); /* counted once per refusal */
    CHECK_EQ_INT(log_setsize_count(), 1);      /* explained once per fd */
    harness_log("log: %s", log_line);

    /* Nothing to watch is fine; asking for events later is refused again. */
    REQUIRE_OK(vx_io_start(loop, big, 0, io_cb, &calls, &io));
    CHECK_EQ_INT(vx_io_update(io, VX_READABLE), -EINVAL);
    CHECK_OK(vx_io_update(io, 0));
    vx_io_free(io);

    /* fds below the limit still work on the same loop. */
    int p[2];
    REQUIRE(pipe(p) == 0 && p[0] < FD_SETSIZE);
    REQUIRE_OK(vx_io_start(loop, p[0], VX_READABLE, io_cb, &calls, &io));
    REQUIRE(write(p[1], "x", 1) == 1);
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, stop_cb, loop, &t));
    vx_timer_start(t, 100, 0);
    CHECK_OK(vx_loop_run(loop));
    CHECK(calls >= 1);
    vx_timer_free(t);
    vx_io_free(io);
    vx_loop_free(loop);
    close(p[0]);
    close(p[1]);
    close(big);
    close(sock);
}

/* ----------------------------------------------------- connections */

TEST(accepted_fd_past_setsize_is_closed) {
    require_select();
    raise_nofile();
    vx_log_set(capture_log, NULL, VX_LOG_DEBUG);
    echo_server es;
    REQUIRE_OK(echo_server_start(&es, NULL));
    vx_stats st;
    server_stats(&es.srv, &st);
    uint64_t e0 = st.errors[VX_ERRK_POLLER];

    /* Every number below FD_SETSIZE taken: the client and the server's
     * accepted socket both land above it. */
    static int low[FD_SETSIZE + 1];
    int nlow = fill_low_fds(low, FD_SETSIZE + 1);
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK(fd >= FD_SETSIZE);

    /* (b) the server closes it: EOF, or a reset if our bytes were unread */
    CHECK_OK(write_all(fd, "hello", 5, 3000));
    int r = wait_eof(fd, 5000);
    CHECK_MSG(r == 0 || r == -ECONNRESET, "client: expected EOF or reset, got %d (%s)", r,
              r < 0 ? vx_err_name(r) : "data");
    close(fd);
    CHECK(echo_wait_closed(&es, 1, 5000));
    CHECK_EQ_INT(atomic_load(&es.accepted), 1);
    CHECK_EQ_INT(atomic_load(&es.close_err_last), -EINVAL); /* the close callback got why */
    CHECK_EQ_INT(atomic_load(&es.bytes), 0);

    /* (c) counted, (d) explained */
    server_stats(&es.srv, &st);
    CHECK(st.errors[VX_ERRK_POLLER] > e0);
    CHECK_EQ_INT(st.conns_live, 0);
    CHECK(log_setsize_count() >= 1);
    harness_log("errors[poller] %llu -> %llu; log: %s", (unsigned long long)e0,
                (unsigned long long)st.errors[VX_ERRK_POLLER], log_line);

    /* (e) with low numbers free again, a new client is served normally */
    close_all(low, nlow);
    fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK(fd < FD_SETSIZE);
    rng rg;
    rng_seed(&rg, 42);
    size_t len = 256 * 1024;
    unsigned char *buf = rng_alloc(&rg, len);
    CHECK(echo_roundtrip(fd, buf, len, &rg, 10000) == 0);
    close(fd);
    free(buf);
    CHECK(echo_wait_closed(&es, 2, 5000));
    CHECK_EQ_INT(atomic_load(&es.close_errors), 1);

    /* (a) the server survived all of it */
    CHECK_OK(echo_server_stop(&es));
}

/* ------------------------------------------------------------ connect */

struct connect_ctx {
    vx_loop *loop;
    uint16_t port;
    atomic_int done, err;
};

static void on_connect(vx_conn *c, int err, void *data) {
    struct connect_ctx *cc = data;
    if (c)
        vx_conn_close(c);
    atomic_store(&cc->err, err);
    atomic_store(&cc->done, 1);
}

static void start_connect(void *arg) {
    struct connect_ctx *cc = arg;
    vx_connect_opts o = {.host = "127.0.0.1", .port = cc->port, .timeout_ms = 3000};
    int rc = vx_connect(cc->loop, &o, on_connect, cc);
    if (rc < 0) {
        atomic_store(&cc->err, rc);
        atomic_store(&cc->done, 2);
    }
}

static bool connect_done(void *arg) { return atomic_load(&((struct connect_ctx *)arg)->done) != 0; }

TEST(connect_fd_past_setsize_fails_cleanly) {
    require_select();
    raise_nofile();
    vx_log_set(capture_log, NULL, VX_LOG_DEBUG);
    echo_server es;
    REQUIRE_OK(echo_server_start(&es, NULL));
    static int low[FD_SETSIZE + 1];
    int nlow = fill_low_fds(low, FD_SETSIZE + 1);

    /* The outgoing socket lands above FD_SETSIZE: the callback gets -EINVAL. */
    struct connect_ctx cc = {.loop = es.srv.loop, .port = es.port};
    server_call(&es.srv, start_connect, &cc);
    CHECK(wait_until(connect_done, &cc, 5000));
    CHECK_EQ_INT(atomic_load(&cc.done), 1); /* through the callback, not vx_connect's result */
    CHECK_EQ_INT(atomic_load(&cc.err), -EINVAL);
    close_all(low, nlow);

    /* The loop goes on: a client below the limit is served. */
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK(write_all(fd, "ping", 4, 3000) == 4);
    char b[4];
    CHECK(read_exact(fd, b, 4, 3000) == 4 && memcmp(b, "ping", 4) == 0);
    close(fd);
    CHECK_OK(echo_server_stop(&es));
}
