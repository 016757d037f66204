/* Idle timeouts: the echo server sets vx_conn_set_idle_timeout(c, 200) when it
 * accepts. Timing checks are lenient: a generous margin, never exact durations. */
#include "harness.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE_MS 200

static void start_idle_echo(echo_server *es) {
    echo_opts o = {.idle_ms = IDLE_MS};
    REQUIRE_OK(echo_server_start(es, &o));
}

TEST(silent_client_is_closed) {
    echo_server es;
    start_idle_echo(&es);
    uint64_t t0 = now_ms();
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    int r = wait_eof(fd, 3000);
    uint64_t took = now_ms() - t0;
    harness_log("silent client: wait_eof %d (%s) after %llu ms", r, r < 0 ? vx_err_name(r) : "-",
                (unsigned long long)took);
    CHECK_EQ_INT(r, 0);
    CHECK_MSG(took >= IDLE_MS - 50, "closed after %llu ms, idle timeout is %d ms",
              (unsigned long long)took, IDLE_MS);
    CHECK(took <= 2500);
    CHECK(echo_wait_closed(&es, 1, 2000));
    CHECK_EQ_INT(atomic_load(&es.close_timeouts), 1);
    CHECK_EQ_INT(atomic_load(&es.close_err_last), -ETIMEDOUT);
    CHECK_EQ_INT(atomic_load(&es.live), 0);
    close(fd);
    vx_stats s;
    server_stats(&es.srv, &s);
    harness_log("errors[timeout]=%llu", (unsigned long long)s.errors[VX_ERRK_TIMEOUT]);
    CHECK_OK(echo_server_stop(&es));
}

TEST(active_client_is_kept) {
    echo_server es;
    start_idle_echo(&es);
    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    int failures = 0, rounds = 0;
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 1000 && !failures) {
        char b = (char)('a' + rounds % 26), back = 0;
        if (write_all(fd, &b, 1, 1000) != 1 || read_exact(fd, &back, 1, 1000) != 1 || back != b) {
            harness_log("round %d at %llu ms: no echo", rounds,
                        (unsigned long long)(now_ms() - t0));
            failures++;
        }
        rounds++;
        sleep_ms(50);
    }
    CHECK_EQ_INT(failures, 0);
    CHECK(rounds >= 10);
    CHECK_EQ_INT(atomic_load(&es.closed), 0);

    /* falls silent: closed by the timeout now */
    uint64_t t1 = now_ms();
    CHECK_EQ_INT(wait_eof(fd, 3000), 0);
    CHECK(now_ms() - t1 >= IDLE_MS - 50 - 50);
    CHECK(echo_wait_closed(&es, 1, 2000));
    CHECK_EQ_INT(atomic_load(&es.close_err_last), -ETIMEDOUT);
    close(fd);
    CHECK_OK(echo_server_stop(&es));
}

#define NIDLE 50

TEST(many_idle_connections_all_closed) {
    echo_server es;
    start_idle_echo(&es);
    int fds[NIDLE];
    for (int i = 0; i < NIDLE; i++) {
        fds[i] = tcp_connect("127.0.0.1", es.port, 5000);
        REQUIRE_OK(fds[i]);
        if (i % 10 == 0) { /* some talk once first */
            char b = 'x';
            CHECK_EQ_INT(write_all(fds[i], &b, 1, 1000), 1);
            CHECK_EQ_INT(read_exact(fds[i], &b, 1, 1000), 1);
        }
    }
    int eofs = 0;
    for (int i = 0; i < NIDLE; i++)
        eofs += wait_eof(fds[i], 3000) == 0;
    CHECK_EQ_INT(eofs, NIDLE);
    CHECK(echo_wait_closed(&es, NIDLE, 2000));
    CHECK_EQ_INT(atomic_load(&es.close_timeouts), NIDLE);
    for (int i = 0; i < NIDLE; i++)
        close(fds[i]);
    CHECK_OK(echo_server_stop(&es));
}
