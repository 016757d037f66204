/* The blocking baselines (thread-per-conn, fork-per-conn): byte-exact echo
 * with half-close under 20 concurrent clients, and the graceful stop: an
 * in-flight client is waited for; one that never finishes is cut off once
 * drain_ms has passed. The handler is a plain blocking echo. The baselines
 * use no vx_loop, so every backend runs the same code here. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCLIENTS 20

static atomic_int handlers_done;

/* Echo until the peer's FIN, then return: the server closes fd. */
static void blocking_echo(int fd, void *data) {
    (void)data;
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    atomic_fetch_add(&handlers_done, 1);
}

typedef struct bserver {
    vx_server *s;
    pthread_t tid;
    int rc;
    atomic_bool done;
    uint64_t done_ms;
} bserver;

static void *run_thread(void *arg) {
    bserver *b = arg;
    b->rc = vx_server_run(b->s);
    b->done_ms = now_ms();
    atomic_store(&b->done, true);
    return NULL;
}

static void bserver_start(bserver *b, vx_model_kind kind, uint64_t drain_ms) {
    memset(b, 0, sizeof *b);
    vx_server_opts o = {
        .listen = {.host = "127.0.0.1"},
        .model = {.kind = kind, .n = 1},
        .on_blocking = blocking_echo,
        .drain_ms = drain_ms,
    };
    REQUIRE_OK(vx_server_new(&b->s, &o));
    REQUIRE(pthread_create(&b->tid, NULL, run_thread, b) == 0);
}

static bool is_done(void *arg) { return atomic_load(&((bserver *)arg)->done); }

static void bserver_finish(bserver *b) {
    pthread_join(b->tid, NULL);
    CHECK_EQ_INT(b->rc, 0);
    vx_server_free(b->s);
}

/* ------------------------------------------------------------- echo */

typedef struct client {
    uint16_t port;
    int index;
    int rc;
} client;

static void *client_thread(void *arg) {
    client *c = arg;
    rng r;
    rng_seed(&r, 1000 + (uint64_t)c->index);
    size_t len = (size_t)rng_range(&r, 1, 256 * 1024);
    unsigned char *buf = rng_alloc(&r, len);
    c->rc = -1;
    int fd = tcp_connect("127.0.0.1", c->port, 5000);
    if (fd >= 0) {
        c->rc = echo_roundtrip(fd, buf, len, &r, 10000);
        close(fd);
    }
    free(buf);
    return NULL;
}

static void echo_concurrent(vx_model_kind kind) {
    bserver b;
    bserver_start(&b, kind, 2000);
    uint16_t port = vx_server_port(b.s);
    client cl[NCLIENTS];
    pthread_t t[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (client){.port = port, .index = i};
        REQUIRE(pthread_create(&t[i], NULL, client_thread, &cl[i]) == 0);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(cl[i].rc, 0);
    }
    CHECK_EQ_INT(vx_server_count(b.s), 1);
    vx_server_stop(b.s);
    CHECK(wait_until(is_done, &b, 3000));
    bserver_finish(&b);
    if (kind == VX_MODEL_THREAD_PER_CONN)
        CHECK_EQ_INT(atomic_load(&handlers_done), NCLIENTS);
    else
        CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD); /* every child reaped */
}

TEST(thread_per_conn_echo) { echo_concurrent(VX_MODEL_THREAD_PER_CONN); }
TEST(fork_per_conn_echo) { echo_concurrent(VX_MODEL_FORK_PER_CONN); }

/* ------------------------------------------------------------ drain */

/* A client half-way through its exchange when the stop comes: the server
 * keeps serving it, and returns once it is done. */
static void drain_waits(vx_model_kind kind) {
    bserver b;
    bserver_start(&b, kind, 5000);
    int fd = tcp_connect("127.0.0.1", vx_server_port(b.s), 5000);
    REQUIRE(fd >= 0);
    rng r;
    rng_seed(&r, 7);
    size_t len = 64 * 1024;
    unsigned char *buf = rng_alloc(&r, len), *got = malloc(len);
    REQUIRE_EQ_INT(write_all(fd, buf, len / 2, 3000), len / 2);
    REQUIRE_EQ_INT(read_exact(fd, got, len / 2, 3000), len / 2); /* its handler runs */

    vx_server_stop(b.s);
    sleep_ms(300);
    CHECK(!atomic_load(&b.done)); /* still waiting for us */
    int late = tcp_connect("127.0.0.1", vx_server_port(b.s), 1000);
    if (late >= 0) { /* queued, never accepted: no echo comes back */
        CHECK_EQ_INT(write_all(late, "x", 1, 1000), 1);
        char c;
        CHECK(read_exact(late, &c, 1, 300) != 1);
        close(late);
    }

    REQUIRE_EQ_INT(write_all(fd, buf + len / 2, len - len / 2, 3000), len - len / 2);
    shutdown(fd, SHUT_WR);
    CHECK_EQ_INT(read_exact(fd, got + len / 2, len - len / 2, 3000), len - len / 2);
    CHECK(memcmp(buf, got, len) == 0);
    CHECK_EQ_INT(wait_eof(fd, 3000), 0);
    close(fd);
    uint64_t t0 = now_ms();
    CHECK(wait_until(is_done, &b, 3000));
    CHECK_LE_INT(b.done_ms - t0, 1000); /* returned as soon as the client was done */
    bserver_finish(&b);
    free(buf);
    free(got);
}

TEST(thread_per_conn_drain) { drain_waits(VX_MODEL_THREAD_PER_CONN); }
TEST(fork_per_conn_drain) { drain_waits(VX_MODEL_FORK_PER_CONN); }

/* A client that never finishes is cut off after drain_ms: shutdown() of
 * its socket (threads), SIGTERM of its child (fork). */
static void drain_deadline(vx_model_kind kind) {
    bserver b;
    bserver_start(&b, kind, 300);
    int fd = tcp_connect("127.0.0.1", vx_server_port(b.s), 5000);
    REQUIRE(fd >= 0);
    char c = 'a';
    REQUIRE_EQ_INT(write_all(fd, &c, 1, 1000), 1);
    REQUIRE_EQ_INT(read_exact(fd, &c, 1, 3000), 1);
    uint64_t t0 = now_ms();
    vx_server_stop(b.s);
    CHECK(wait_until(is_done, &b, 5000));
    uint64_t took = b.done_ms - t0;
    CHECK_MSG(took >= 250 && took < 2500, "stop took %llu ms", (unsigned long long)took);
    int e = wait_eof(fd, 2000);
    CHECK_MSG(e == 0 || e == -ECONNRESET, "wait_eof: %d", e);
    close(fd);
    bserver_finish(&b);
}

TEST(thread_per_conn_deadline) { drain_deadline(VX_MODEL_THREAD_PER_CONN); }
TEST(fork_per_conn_deadline) { drain_deadline(VX_MODEL_FORK_PER_CONN); }

/* A stop requested before run: run returns at once. */
TEST(stop_before_run) {
    bserver b;
    vx_server_opts o = {.listen = {.host = "127.0.0.1"},
                        .model = {.kind = VX_MODEL_THREAD_PER_CONN, .n = 1},
                        .on_blocking = blocking_echo};
    REQUIRE_OK(vx_server_new(&b.s, &o));
    vx_server_stop(b.s);
    CHECK_EQ_INT(vx_server_run(b.s), 0);
    vx_server_free(b.s);
}
