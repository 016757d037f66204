/* Echo over real loopback sockets: the server is the harness echo server (a vortex
 * loop in a thread); clients are plain sockets in the test thread. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

static void start_echo(echo_server *es, const echo_opts *o) {
    int rc = echo_server_start(es, o);
    if (rc < 0) {
        harness_fail(__FILE__, __LINE__, "echo_server_start: %s", vx_err_name(rc));
        harness_abort_case();
    }
}

/* ------------------------------------------------------- many clients at once */

#define NCLIENTS 200
#define TOTAL_BYTES (20u * MiB)

struct client {
    int fd;
    const unsigned char *buf;
    size_t len, sent, recvd, chunk_end;
    bool shut, eof;
};

static void client_next_chunk(struct client *c, rng *r) {
    c->chunk_end = c->sent + rng_range(r, 1, 64 * KiB);
    if (c->chunk_end > c->len)
        c->chunk_end = c->len;
}

/* One step of client c after poll said `revents`; false on a hard failure. */
static bool client_step(struct client *c, short revents, rng *r, int id) {
    static unsigned char tmp[64 * KiB];
    if ((revents & POLLOUT) && c->sent < c->len) {
        ssize_t k = send(c->fd, c->buf + c->sent, c->chunk_end - c->sent, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN && errno != EINTR) {
            harness_log("client %d: send: %s", id, strerror(errno));
            return false;
        }
        if (k > 0) {
            c->sent += (size_t)k;
            if (c->sent == c->chunk_end)
                client_next_chunk(c, r);
        }
    }
    if (c->sent == c->len && !c->shut) {
        CHECK(shutdown(c->fd, SHUT_WR) == 0);
        c->shut = true;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t k = recv(c->fd, tmp, sizeof tmp, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (k < 0) {
            harness_log("client %d: recv: %s (got %zu of %zu)", id, strerror(errno), c->recvd,
                        c->len);
            return false;
        }
        if (k == 0) {
            c->eof = true;
            if (c->recvd != c->len || !c->shut) {
                harness_log("client %d: EOF after %zu of %zu bytes (sent %zu)", id, c->recvd,
                            c->len, c->sent);
                return false;
            }
            return true;
        }
        if (c->recvd + (size_t)k > c->sent || memcmp(tmp, c->buf + c->recvd, (size_t)k) != 0) {
            harness_log("client %d: wrong bytes at %zu..%zu", id, c->recvd, c->recvd + (size_t)k);
            return false;
        }
        c->recvd += (size_t)k;
    }
    return true;
}

TEST(concurrent_clients_random_chunks) {
    echo_server es;
    start_echo(&es, NULL);
    rng r;
    rng_seed(&r, 1);

    struct client *cl = calloc(NCLIENTS, sizeof *cl);
    struct pollfd *pf = calloc(NCLIENTS, sizeof *pf);
    REQUIRE(cl && pf);
    size_t sizes[NCLIENTS], total = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        /* two edge cases, then random sizes averaging TOTAL_BYTES / NCLIENTS */
        sizes[i] = i == 0 ? 0 : i == 1 ? 1 : rng_range(&r, 1, 2 * TOTAL_BYTES / NCLIENTS);
        total += sizes[i];
    }
    unsigned char *data = rng_alloc(&r, total);
    size_t off = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i].buf = data + off;
        cl[i].len = sizes[i];
        off += sizes[i];
        cl[i].fd = tcp_connect("127.0.0.1", es.port, 5000);
        REQUIRE_OK(cl[i].fd);
        REQUIRE_OK(set_nonblock(cl[i].fd, true));
        client_next_chunk(&cl[i], &r);
    }
    harness_log("%d clients, %zu bytes in all", NCLIENTS, total);

    uint64_t t0 = now_ms(), deadline = t0 + 15000;
    int done = 0, failed = 0;
    while (done + failed < NCLIENTS && now_ms() < deadline) {
        for (int i = 0; i < NCLIENTS; i++) {
            struct client *c = &cl[i];
            if (c->sent == c->len && !c->shut) { /* empty payload: shut at once */
                CHECK(shutdown(c->fd, SHUT_WR) == 0);
                c->shut = true;
            }
            pf[i].fd = c->eof || c->fd < 0 ? -1 : c->fd;
            pf[i].events = (short)(POLLIN | (c->sent < c->len ? POLLOUT : 0));
            pf[i].revents = 0;
        }
        if (poll(pf, NCLIENTS, 1000) < 0 && errno != EINTR)
            REQUIRE(!"poll failed");
        for (int i = 0; i < NCLIENTS; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            bool was_eof = cl[i].eof;
            if (!client_step(&cl[i], pf[i].revents, &r, i)) {
                failed++;
                close(cl[i].fd);
                cl[i].fd = -1;
                continue;
            }
            if (!was_eof && cl[i].eof)
                done++;
        }
    }
    harness_log("echoed %zu bytes over %d clients in %llu ms", total, NCLIENTS,
                (unsigned long long)(now_ms() - t0));
    CHECK_EQ_INT(failed, 0);
    CHECK_EQ_INT(done, NCLIENTS);
    for (int i = 0; i < NCLIENTS; i++)
        if (cl[i].fd >= 0)
            close(cl[i].fd);
    CHECK_EQ_INT(atomic_load(&es.accepted), NCLIENTS);
    CHECK(echo_wait_closed(&es, NCLIENTS, 5000));
    CHECK_EQ_INT(atomic_load(&es.close_errors), 0);
    CHECK_EQ_INT(atomic_load(&es.write_errors), 0);
    CHECK_EQ_INT(atomic_load(&es.bytes), total);
    CHECK_EQ_INT(atomic_load(&es.live), 0);
    CHECK_OK(echo_server_stop(&es));
    free(data);
    free(pf);
    free(cl);
}

/* --------------------------------------------------------------- half-close */

TEST(half_close_delivers_everything_then_eof) {
    echo_server es;
    start_echo(&es, NULL);
    rng r;
    rng_seed(&r, 2);
    unsigned char *buf = rng_alloc(&r, 1 * MiB);

    /* 1: duplex, random chunks, then shutdown(SHUT_WR) */
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK(echo_roundtrip(fd, buf, 1 * MiB, &r, 10000) == 0);
    close(fd);

    /* 2: write it all and shut down before reading a single byte */
    fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK_EQ_INT(write_all(fd, buf, 256 * KiB, 5000), 256 * KiB);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    sleep_ms(100);
    unsigned char *back = malloc(256 * KiB);
    REQUIRE(back);
    CHECK_EQ_INT(read_exact(fd, back, 256 * KiB, 5000), 256 * KiB);
    CHECK(memcmp(back, buf, 256 * KiB) == 0);
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);

    CHECK(echo_wait_closed(&es, 2, 5000));
    CHECK_EQ_INT(atomic_load(&es.close_errors), 0);
    CHECK_OK(echo_server_stop(&es));
    free(back);
    free(buf);
}

/* ------------------------------------------------------------- peer reset */

TEST(peer_reset_mid_stream) {
    echo_server es;
    echo_opts o = {.low = 64 * KiB, .high = 256 * KiB};
    start_echo(&es, &o);
    rng r;
    rng_seed(&r, 3);
    unsigned char *buf = rng_alloc(&r, 4 * MiB);
    unsigned char *back = malloc(64 * KiB);
    REQUIRE(back);

    /* 1: after an exchange, more data, then a RST instead of a FIN */
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK_EQ_INT(write_all(fd, buf, 64 * KiB, 5000), 64 * KiB);
    CHECK_EQ_INT(read_exact(fd, back, 64 * KiB, 5000), 64 * KiB);
    CHECK(memcmp(back, buf, 64 * KiB) == 0);
    CHECK_EQ_INT(write_all(fd, buf, 64 * KiB, 5000), 64 * KiB);
    close_rst(fd);
    CHECK(echo_wait_closed(&es, 1, 5000));
    int err = atomic_load(&es.close_err_last);
    harness_log("reset after an exchange: on_close err %d (%s)", err, vx_err_name(err));
    CHECK_MSG(err == 0 || err == -ECONNRESET || err == -EPIPE, "on_close err %d (%s)", err,
              vx_err_name(err));

    /* 2: a RST while the server holds a full output queue (the client never read) */
    fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    set_nonblock(fd, true);
    size_t sent = 0;
    uint64_t last = now_ms();
    while (sent < 4 * MiB && now_ms() - last < 300) {
        ssize_t k = send(fd, buf + sent, 4 * MiB - sent, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
            last = now_ms();
        } else {
            sleep_ms(5);
        }
    }
    harness_log("sent %zu bytes before the RST", sent);
    close_rst(fd);
    CHECK(echo_wait_closed(&es, 2, 5000));
    err = atomic_load(&es.close_err_last);
    harness_log("reset with queued output: on_close err %d (%s)", err, vx_err_name(err));
    CHECK_MSG(err == 0 || err == -ECONNRESET || err == -EPIPE, "on_close err %d (%s)", err,
              vx_err_name(err));
    CHECK_EQ_INT(atomic_load(&es.live), 0);

    /* 3: the server still serves */
    fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    CHECK(echo_roundtrip(fd, buf, 300 * KiB, &r, 10000) == 0);
    close(fd);
    CHECK(echo_wait_closed(&es, 3, 5000));
    CHECK_OK(echo_server_stop(&es));
    free(back);
    free(buf);
}

/* ----------------------------------------------------- back-pressure bound */

#define FLOOD_BYTES (64u * MiB)
#define FLOOD_HIGH (256u * KiB)
#define FLOOD_LOW (64u * KiB)

TEST(slow_reader_backpressure_bounded) {
    echo_server es;
    echo_opts o = {.low = FLOOD_LOW, .high = FLOOD_HIGH};
    start_echo(&es, &o);
    rng r;
    rng_seed(&r, 4);
    unsigned char *buf = rng_alloc(&r, FLOOD_BYTES);
    static unsigned char tmp[256 * KiB];

    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    set_nonblock(fd, true);

    /* phase 1: write as fast as we can, never read, until nothing moves for 500 ms */
    size_t sent = 0;
    uint64_t t0 = now_ms(), last = t0;
    while (sent < FLOOD_BYTES && now_ms() - last < 500 && now_ms() - t0 < 4000) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 50);
        ssize_t k = send(fd, buf + sent, FLOOD_BYTES - sent, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
            last = now_ms();
        } else {
            CHECK(k < 0 && (errno == EAGAIN || errno == EINTR));
        }
    }
    size_t maxq = atomic_load(&es.max_queued);
    harness_log("stalled after %zu bytes; server max queued %zu", sent, maxq);
    CHECK(sent < FLOOD_BYTES); /* the stream really stalled: the server stopped reading */
    CHECK_LE_INT(maxq, FLOOD_HIGH + 256 * KiB);

    /* while stalled, the paused server must sleep, not spin on readiness */
    vx_stats s0, s1;
    server_stats(&es.srv, &s0);
    sleep_ms(300);
    server_stats(&es.srv, &s1);
    harness_log("wakeups while stalled: %llu in 300 ms",
                (unsigned long long)(s1.wakeups - s0.wakeups));
    CHECK_LE_INT(s1.wakeups - s0.wakeups, 50);

    /* phase 2: read everything back while sending the rest */
    size_t recvd = 0;
    bool shut = false, eof = false, bad = false;
    uint64_t deadline = now_ms() + 15000;
    while (!eof && !bad && now_ms() < deadline) {
        if (sent == FLOOD_BYTES && !shut) {
            CHECK(shutdown(fd, SHUT_WR) == 0);
            shut = true;
        }
        struct pollfd p = {.fd = fd,
                           .events = (short)(POLLIN | (sent < FLOOD_BYTES ? POLLOUT : 0))};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if ((p.revents & POLLOUT) && sent < FLOOD_BYTES) {
            ssize_t k = send(fd, buf + sent, FLOOD_BYTES - sent, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, tmp, sizeof tmp, 0);
            if (k == 0) {
                eof = true;
            } else if (k > 0) {
                if (recvd + (size_t)k > sent || memcmp(tmp, buf + recvd, (size_t)k) != 0) {
                    harness_log("wrong bytes at %zu..%zu", recvd, recvd + (size_t)k);
                    bad = true;
                }
                recvd += (size_t)k;
            } else if (errno != EAGAIN && errno != EINTR) {
                harness_log("recv: %s", strerror(errno));
                bad = true;
            }
        }
    }
    CHECK(!bad);
    CHECK(eof);
    CHECK_EQ_INT(recvd, FLOOD_BYTES);
    maxq = atomic_load(&es.max_queued);
    harness_log("server max queued over the whole run: %zu", maxq);
    CHECK_LE_INT(maxq, FLOOD_HIGH + 256 * KiB);
    close(fd);
    CHECK(echo_wait_closed(&es, 1, 5000));
    CHECK_EQ_INT(atomic_load(&es.close_errors), 0);
    CHECK_OK(echo_server_stop(&es));
    free(buf);
}

/* ------------------------------------------------------------ Unix sockets */

static bool path_gone(void *arg) { return access(arg, F_OK) != 0; }

static void close_listener_fn(void *arg) {
    echo_server *es = arg;
    vx_listener_close(es->listener);
    es->listener = NULL;
}

TEST(unix_socket_echo) {
    char path[108];
    unix_path_make(path, sizeof path, "echo");

    /* a stale socket file from a dead server: vx_listen replaces it */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    REQUIRE(bind(stale, (struct sockaddr *)&a, sizeof a) == 0);
    close(stale);

    echo_server es;
    echo_opts o = {.unix_path = path};
    start_echo(&es, &o);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));

    rng r;
    rng_seed(&r, 5);
    unsigned char *buf = rng_alloc(&r, 1 * MiB);
    for (int i = 0; i < 3; i++) {
        int fd = unix_connect(path);
        REQUIRE_OK(fd);
        CHECK(echo_roundtrip(fd, buf, i == 0 ? 1 : 1 * MiB, &r, 10000) == 0);
        close(fd);
    }
    CHECK(echo_wait_closed(&es, 3, 5000));
    CHECK_EQ_INT(atomic_load(&es.close_errors), 0);

    /* closing the listener unlinks its path (at the end of that loop turn) */
    server_call(&es.srv, close_listener_fn, &es);
    CHECK_MSG(wait_until(path_gone, path, 2000), "%s still exists after vx_listener_close", path);
    CHECK_OK(echo_server_stop(&es));
    unlink(path);
    free(buf);
}

/* ------------------------------------------------------------------- IPv6 */

static bool ipv6_loopback_works(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

TEST(ipv6_loopback_echo) {
    if (!ipv6_loopback_works())
        SKIP("IPv6 is not available on loopback (cannot bind ::1)");
    echo_server es;
    echo_opts o = {.host = "::1"};
    start_echo(&es, &o);
    CHECK(es.port != 0);
    rng r;
    rng_seed(&r, 6);
    unsigned char *buf = rng_alloc(&r, 512 * KiB);
    int fd = tcp_connect("::1", es.port, 5000);
    REQUIRE_OK(fd);
    struct sockaddr_in6 peer;
    socklen_t pl = sizeof peer;
    CHECK(getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 && peer.sin6_family == AF_INET6);
    CHECK(echo_roundtrip(fd, buf, 512 * KiB, &r, 10000) == 0);
    close(fd);
    /* an IPv6 listener on ::1 is not reachable over IPv4 */
    int fd4 = tcp_connect("127.0.0.1", es.port, 1000);
    CHECK(fd4 < 0);
    if (fd4 >= 0)
        close(fd4);
    CHECK(echo_wait_closed(&es, 1, 5000));
    CHECK_OK(echo_server_stop(&es));
    free(buf);
}

/* --------------------------------------------------------------- ping-pong */

TEST(ping_pong_10000_round_trips) {
    echo_server es;
    start_echo(&es, NULL);
    rng r;
    rng_seed(&r, 7);
    unsigned char msg[256], back[256];
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    uint64_t t0 = now_ms();
    int bad = 0;
    for (int i = 0; i < 10000 && !bad; i++) {
        size_t len = rng_range(&r, 1, sizeof msg);
        rng_fill(&r, msg, len);
        if (write_all(fd, msg, len, 5000) != (ssize_t)len) {
            harness_log("round trip %d: write failed", i);
            bad++;
        } else if (read_exact(fd, back, len, 5000) != (ssize_t)len) {
            harness_log("round trip %d: no echo", i);
            bad++;
        } else if (memcmp(msg, back, len) != 0) {
            harness_log("round trip %d: wrong bytes", i);
            bad++;
        }
    }
    harness_log("10000 round trips in %llu ms", (unsigned long long)(now_ms() - t0));
    CHECK_EQ_INT(bad, 0);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);
    CHECK(echo_wait_closed(&es, 1, 5000));
    CHECK_EQ_INT(atomic_load(&es.close_errors), 0);
    CHECK_OK(echo_server_stop(&es));
}
