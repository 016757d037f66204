/* vx_io: readiness of foreign fds (pipes here), level-triggered. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static vx_loop *loop_new(void) {
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};
    REQUIRE_OK(vx_loop_new(&loop, &o));
    return loop;
}

struct pipe_ctx {
    vx_loop *loop;
    vx_io *io;
    int rfd, wfd;
    int calls, wrong_fd, bad_events;
    unsigned last_events;
    char got[256];
    size_t ngot;
    size_t read_per_call; /* 0: read everything available */
    int phase;
    int calls_in_phase[8];
    int eofs;
    bool free_on_eof;
};

static void pipe_cb(vx_io *io, int fd, unsigned events, void *data) {
    struct pipe_ctx *p = data;
    p->calls++;
    p->calls_in_phase[p->phase]++;
    p->wrong_fd += fd != p->rfd;
    p->bad_events += !(events & VX_READABLE);
    p->last_events = events;
    size_t want = p->read_per_call ? p->read_per_call : sizeof p->got - 1 - p->ngot;
    if (want > sizeof p->got - 1 - p->ngot)
        want = sizeof p->got - 1 - p->ngot;
    ssize_t n = read(fd, p->got + p->ngot, want);
    if (n > 0)
        p->ngot += (size_t)n;
    if (n == 0) {
        p->eofs++;
        if (p->free_on_eof) {
            vx_io_free(io);
            p->io = NULL;
            vx_loop_stop(p->loop);
        } else {
            CHECK_OK(vx_io_update(io, 0)); /* hang-up stays readable: stop watching */
        }
    }
}

/* A scripted sequence of steps, one per timer tick. */
struct script {
    struct pipe_ctx *p;
    int step;
};

static void wr(int fd, const char *s) { CHECK_EQ_INT(write(fd, s, strlen(s)), strlen(s)); }

static void script_cb(vx_timer *t, void *data) {
    struct script *s = data;
    struct pipe_ctx *p = s->p;
    switch (s->step++) {
    case 0: /* readable -> callback */
        p->phase = 1;
        wr(p->wfd, "one,");
        break;
    case 1: /* paused: data waits, no callback */
        CHECK_OK(vx_io_update(p->io, 0));
        p->phase = 2;
        wr(p->wfd, "two,");
        break;
    case 2: /* resumed: the waiting data is reported (level-triggered) */
        p->phase = 3;
        CHECK_OK(vx_io_update(p->io, VX_READABLE));
        break;
    case 3: /* freed: no callback ever again */
        p->phase = 4;
        vx_io_free(p->io);
        p->io = NULL;
        wr(p->wfd, "three,");
        break;
    default:
        vx_timer_stop(t);
        vx_loop_stop(p->loop);
        break;
    }
}

TEST(pipe_readable_pause_resume_free) {
    vx_loop *loop = loop_new();
    int fds[2];
    REQUIRE(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    struct pipe_ctx p = {.loop = loop, .rfd = fds[0], .wfd = fds[1]};
    REQUIRE_OK(vx_io_start(loop, fds[0], VX_READABLE, pipe_cb, &p, &p.io));
    struct script s = {.p = &p};
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, script_cb, &s, &t));
    vx_timer_start(t, 20, 60);
    CHECK_OK(vx_loop_run(loop));

    CHECK_EQ_INT(s.step, 5);
    CHECK_EQ_INT(p.calls_in_phase[0], 0); /* nothing before the first write */
    CHECK(p.calls_in_phase[1] >= 1);
    CHECK_EQ_INT(p.calls_in_phase[2], 0); /* paused */
    CHECK(p.calls_in_phase[3] >= 1);      /* resumed */
    CHECK_EQ_INT(p.calls_in_phase[4], 0); /* freed */
    CHECK_EQ_INT(p.wrong_fd, 0);
    CHECK_EQ_INT(p.bad_events, 0);
    p.got[p.ngot] = 0;
    CHECK_EQ_STR(p.got, "one,two,");
    char rest[16] = {0};
    CHECK_EQ_INT(read(fds[0], rest, sizeof rest - 1), 6); /* the fd stayed ours, open */
    CHECK_EQ_STR(rest, "three,");
    vx_timer_free(t);
    vx_loop_free(loop);
    close(fds[0]);
    close(fds[1]);
}

static void close_writer_cb(vx_timer *t, void *data) {
    struct pipe_ctx *p = data;
    (void)t;
    close(p->wfd);
    p->wfd = -1;
}

static void fill_cb(vx_timer *t, void *data) {
    struct pipe_ctx *p = data;
    (void)t;
    wr(p->wfd, "abcdefghij");
}

TEST(level_triggered_and_hangup) {
    vx_loop *loop = loop_new();
    int fds[2];
    REQUIRE(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    /* read 1 byte per callback: level-triggered means it is called again and
     * again until the pipe is drained; then the writer closes: readable + EOF,
     * and the callback frees the watcher from inside itself */
    struct pipe_ctx p = {
        .loop = loop, .rfd = fds[0], .wfd = fds[1], .read_per_call = 1, .free_on_eof = true};
    REQUIRE_OK(vx_io_start(loop, fds[0], VX_READABLE, pipe_cb, &p, &p.io));
    vx_timer *fill = NULL, *closer = NULL;
    REQUIRE_OK(vx_timer_new(loop, fill_cb, &p, &fill));
    REQUIRE_OK(vx_timer_new(loop, close_writer_cb, &p, &closer));
    vx_timer_start(fill, 10, 0);
    vx_timer_start(closer, 100, 0);
    CHECK_OK(vx_loop_run(loop));
    p.got[p.ngot] = 0;
    CHECK_EQ_STR(p.got, "abcdefghij");
    CHECK(p.calls >= 11);
    CHECK_EQ_INT(p.eofs, 1);
    CHECK(p.io == NULL);
    vx_timer_free(fill);
    vx_timer_free(closer);
    vx_loop_free(loop);
    close(fds[0]);
}

struct wctx {
    vx_loop *loop;
    int calls;
    unsigned events;
};

static void writable_cb(vx_io *io, int fd, unsigned events, void *data) {
    struct wctx *w = data;
    (void)fd;
    w->calls++;
    w->events |= events;
    if (w->calls == 3) { /* called repeatedly while writable; then pause */
        CHECK_OK(vx_io_update(io, 0));
    }
}

static void stop_cb(vx_timer *t, void *data) {
    (void)t;
    vx_loop_stop(data);
}

TEST(pipe_writable) {
    vx_loop *loop = loop_new();
    int fds[2];
    REQUIRE(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    struct wctx w = {.loop = loop};
    vx_io *io = NULL;
    REQUIRE_OK(vx_io_start(loop, fds[1], VX_WRITABLE, writable_cb, &w, &io));
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, stop_cb, loop, &t));
    vx_timer_start(t, 100, 0);
    CHECK_OK(vx_loop_run(loop));
    CHECK_EQ_INT(w.calls, 3);
    CHECK(w.events & VX_WRITABLE);
    CHECK(!(w.events & VX_READABLE));
    vx_io_free(io);
    vx_timer_free(t);
    vx_loop_free(loop);
    close(fds[0]);
    close(fds[1]);
}
