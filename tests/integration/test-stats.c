/* Loop counters: what an echo exchange must add up to, and the formatting. */
#include "harness.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#define NMSG 100
#define MSGLEN 100

TEST(fresh_loop_and_names) {
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};
    REQUIRE_OK(vx_loop_new(&loop, &o));
    vx_stats s;
    memset(&s, 0xa5, sizeof s);
    vx_loop_stats(loop, &s);
    CHECK_EQ_INT(s.accepts, 0);
    CHECK_EQ_INT(s.conns_live, 0);
    CHECK_EQ_INT(s.bytes_in, 0);
    CHECK_EQ_INT(s.bytes_out, 0);
    for (int k = 0; k < VX_ERRK__COUNT; k++)
        CHECK_EQ_INT(s.errors[k], 0);
    uint64_t sum = 0;
    for (int k = 0; k < VX_SYS__COUNT; k++)
        sum += s.syscalls[k];
    CHECK_EQ_INT(vx_stats_syscalls(&s), sum);

    CHECK_EQ_STR(vx_syscall_kind_name(VX_SYS_READ), "read");
    CHECK_EQ_STR(vx_syscall_kind_name(VX_SYS_WAIT), "wait");
    CHECK_EQ_STR(vx_syscall_kind_name(VX_SYS_OTHER), "other");
    CHECK_EQ_STR(vx_error_kind_name(VX_ERRK_ACCEPT_EMFILE), "accept_emfile");
    CHECK_EQ_STR(vx_error_kind_name(VX_ERRK_POLLER), "poller");

    char buf[512];
    int n = vx_stats_format(loop, buf, sizeof buf);
    CHECK(n > 0);
    CHECK_EQ_INT(n, strlen(buf));
    CHECK(strchr(buf, '\n') == NULL || strchr(buf, '\n') == buf + n - 1);
    char want[64];
    snprintf(want, sizeof want, "backend=%s", vx_loop_backend(loop));
    CHECK_MSG(strstr(buf, want) != NULL, "\"%s\" not in \"%s\"", want, buf);

    /* a short buffer: truncated, terminated, nothing written past it */
    char small[64];
    memset(small, 'Z', sizeof small);
    vx_stats_format(loop, small, 16);
    CHECK(memchr(small, 0, 16) != NULL);
    int untouched = 0;
    for (int i = 16; i < 64; i++)
        untouched += small[i] == 'Z';
    CHECK_EQ_INT(untouched, 48);
    vx_loop_free(loop);
}

struct fmt_req {
    server *s;
    char buf[1024];
    int n;
    const char *backend;
};

static void fmt_fn(void *arg) {
    struct fmt_req *r = arg;
    r->n = vx_stats_format(r->s->loop, r->buf, sizeof r->buf);
    r->backend = vx_loop_backend(r->s->loop);
}

TEST(echo_counters) {
    echo_server es;
    REQUIRE_OK(echo_server_start(&es, NULL));
    vx_stats before, mid, after;
    server_stats(&es.srv, &before);
    CHECK_EQ_INT(before.accepts, 0);
    CHECK_EQ_INT(before.conns_live, 0);

    int fd = tcp_connect("127.0.0.1", es.port, 5000);
    REQUIRE_OK(fd);
    rng r;
    rng_seed(&r, 11);
    unsigned char msg[MSGLEN], back[MSGLEN];
    int bad = 0;
    for (int i = 0; i < NMSG; i++) {
        rng_fill(&r, msg, sizeof msg);
        bad += write_all(fd, msg, sizeof msg, 5000) != MSGLEN;
        bad += read_exact(fd, back, sizeof back, 5000) != MSGLEN;
        bad += memcmp(msg, back, sizeof msg) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    server_stats(&es.srv, &mid);
    CHECK_EQ_INT(mid.conns_live, 1);
    CHECK_EQ_INT(mid.accepts, 1);

    CHECK(shutdown(fd, SHUT_WR) == 0);
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);
    CHECK(echo_wait_closed(&es, 1, 5000));
    server_stats(&es.srv, &after);

    struct fmt_req fr = {.s = &es.srv};
    server_call(&es.srv, fmt_fn, &fr);
    harness_log("%s", fr.buf);

    CHECK_EQ_INT(after.accepts, 1);
    CHECK_EQ_INT(after.conns_live, 0);
    CHECK_EQ_INT(after.bytes_in, NMSG * MSGLEN);
    CHECK_EQ_INT(after.bytes_out, NMSG * MSGLEN);
    /* uring receives by SQE: no read syscalls at all */
    if (strcmp(vx_loop_backend(es.srv.loop), "uring") == 0)
        CHECK_EQ_INT(after.syscalls[VX_SYS_READ], 0);
    else
        CHECK(after.syscalls[VX_SYS_READ] > 0);
    CHECK(after.wakeups > 0);
    CHECK(after.events > 0);
    CHECK(after.reads >= 1);
    CHECK(after.writes >= 1);
    CHECK(after.wakeups >= mid.wakeups && mid.wakeups >= before.wakeups);
    CHECK(vx_stats_syscalls(&after) >= after.syscalls[VX_SYS_READ]);
    for (int k = 0; k < VX_ERRK__COUNT; k++)
        CHECK_MSG(after.errors[k] == 0, "errors[%s] = %llu", vx_error_kind_name(k),
                  (unsigned long long)after.errors[k]);

    char want[64];
    snprintf(want, sizeof want, "backend=%s", fr.backend);
    CHECK(fr.n > 0);
    CHECK_MSG(strstr(fr.buf, want) != NULL, "\"%s\" not in \"%s\"", want, fr.buf);
    CHECK_OK(echo_server_stop(&es));
}
