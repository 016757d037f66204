/* Asynchronous file reads (vx_file_read), once per backend (VX_BACKEND): an
 * io_uring READ on uring, a pool thread elsewhere. Many reads in flight at
 * random offsets come back byte-exact and counted; O_DIRECT with aligned
 * buffers; the end of the file and the errors a read or the call itself
 * report; reads chained from their own callbacks; and vx_loop_free with reads
 * queued, each callback run exactly once (ASan and valgrind see the rest). */
#include "harness.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

static vx_loop *loop_new(void) {
    vx_loop *loop = NULL;
    REQUIRE_OK(vx_loop_new(&loop, &(vx_loop_opts){.backend = VX_BACKEND_AUTO}));
    return loop;
}

/* A temporary file of len random bytes, its bytes in *data; unlinked at once
 * unless the caller wants its path (path[32]: the caller unlinks it). */
static int temp_file(size_t len, uint64_t seed, unsigned char **data, char *path) {
    char own[32];
    char *p = path ? path : own;
    strcpy(p, "/tmp/vx-fread-XXXXXX");
    int fd = mkstemp(p);
    REQUIRE(fd >= 0);
    if (!path)
        unlink(p);
    rng r;
    rng_seed(&r, seed);
    *data = rng_alloc(&r, len);
    REQUIRE(write_all(fd, *data, len, 10000) == (ssize_t)len);
    return fd;
}

static void guard_cb(vx_timer *t, void *loop) {
    (void)t;
    harness_fail(__FILE__, __LINE__, "guard timer fired: reads did not complete");
    vx_loop_stop(loop);
}

/* One read and what it must bring. */
typedef struct rd {
    vx_loop *loop;
    int *left; /* reads not called back yet; the last one stops the loop */
    char *buf;
    size_t len;
    uint64_t off;
    ssize_t n;
    int calls;
} rd;

static void on_read(void *arg, ssize_t n) {
    rd *r = arg;
    r->n = n;
    r->calls++;
    if (--*r->left == 0)
        vx_loop_stop(r->loop);
}

static void run_until_done(vx_loop *loop) {
    vx_timer *guard;
    REQUIRE_OK(vx_timer_new(loop, guard_cb, loop, &guard));
    vx_timer_start(guard, 20000, 0);
    REQUIRE_OK(vx_loop_run(loop));
    vx_timer_free(guard);
}

/* 64 reads in flight at once, at random offsets and lengths (some past the
 * end): each one byte-exact, and the loop's counters add up. */
TEST(many_reads_in_flight_byte_exact) {
    enum { N = 64, SIZE = 8 * MiB };
    unsigned char *data;
    int fd = temp_file(SIZE, 1, &data, NULL);
    vx_loop *loop = loop_new();
    static rd rs[N];
    int left = N;
    rng g;
    rng_seed(&g, 2);
    uint64_t want_bytes = 0;
    for (int i = 0; i < N; i++) {
        rd *r = &rs[i];
        *r = (rd){.loop = loop, .left = &left, .len = rng_range(&g, 1, 600 * KiB)};
        r->off = rng_range(&g, 0, SIZE - 1);
        r->buf = malloc(r->len);
        REQUIRE(r->buf);
        want_bytes += r->off + r->len > SIZE ? SIZE - r->off : r->len;
        REQUIRE_OK(vx_file_read(loop, fd, r->buf, r->len, r->off, on_read, r));
    }
    run_until_done(loop);
    CHECK_EQ_INT(left, 0);
    for (int i = 0; i < N; i++) {
        rd *r = &rs[i];
        size_t want = r->off + r->len > SIZE ? SIZE - r->off : r->len;
        CHECK_EQ_INT(r->calls, 1);
        CHECK_EQ_INT(r->n, (ssize_t)want);
        CHECK_MSG(r->n == (ssize_t)want && memcmp(r->buf, data + r->off, want) == 0,
                  "read %d (%zu bytes at %llu) differs", i, r->len, (unsigned long long)r->off);
        free(r->buf);
    }
    vx_stats st;
    vx_loop_stats(loop, &st);
    CHECK_EQ_INT(st.file_reads, N);
    CHECK_EQ_INT(st.file_bytes, want_bytes);
    vx_loop_free(loop);
    close(fd);
    free(data);
}

/* O_DIRECT: 4096-aligned buffers and offsets, the last read short at the end. */
TEST(direct_reads_aligned) {
    enum { SIZE = 3 * MiB + 1000, PIECE = 256 * KiB };
    unsigned char *data;
    char path[32];
    int wfd = temp_file(SIZE, 3, &data, path);
    close(wfd);
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    unlink(path);
    if (fd < 0)
        SKIP("O_DIRECT not supported on /tmp here: %s", strerror(errno));
    vx_loop *loop = loop_new();
    enum { N = (SIZE + PIECE - 1) / PIECE };
    static rd rs[N];
    int left = N;
    for (int i = 0; i < N; i++) {
        rd *r = &rs[i];
        *r = (rd){.loop = loop, .left = &left, .len = PIECE, .off = (uint64_t)i * PIECE};
        REQUIRE(posix_memalign((void **)&r->buf, 4096, PIECE) == 0);
        REQUIRE_OK(vx_file_read(loop, fd, r->buf, r->len, r->off, on_read, r));
    }
    run_until_done(loop);
    for (int i = 0; i < N; i++) {
        rd *r = &rs[i];
        size_t want = i == N - 1 ? SIZE - r->off : PIECE;
        CHECK_EQ_INT(r->n, (ssize_t)want);
        CHECK_MSG(r->n == (ssize_t)want && memcmp(r->buf, data + r->off, want) == 0,
                  "direct read %d differs", i);
        free(r->buf);
    }
    vx_loop_free(loop);
    close(fd);
    free(data);
}

/* What comes back: 0 at and past the end, -errno from the read; and what
 * the call refuses at once (no callback then). */
TEST(end_of_file_and_errors) {
    unsigned char *data;
    char path[32];
    int fd = temp_file(1000, 4, &data, path);
    int wronly = open(path, O_WRONLY | O_CLOEXEC);
    unlink(path);
    REQUIRE(wronly >= 0);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dir >= 0);
    vx_loop *loop = loop_new();
    static char buf[4][4096];
    static rd rs[4];
    int left = 4;
    const int fds[4] = {fd, fd, wronly, dir};
    const uint64_t offs[4] = {1000, 5000, 0, 0};
    for (int i = 0; i < 4; i++) {
        rs[i] = (rd){.loop = loop, .left = &left, .buf = buf[i], .len = sizeof buf[i]};
        REQUIRE_OK(vx_file_read(loop, fds[i], rs[i].buf, rs[i].len, offs[i], on_read, &rs[i]));
    }
    run_until_done(loop);
    CHECK_EQ_INT(rs[0].n, 0);
    CHECK_EQ_INT(rs[1].n, 0);
    CHECK_EQ_INT(rs[2].n, -EBADF);
    CHECK_EQ_INT(rs[3].n, -EISDIR);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(rs[i].calls, 1);
    CHECK_EQ_INT(vx_file_read(loop, -1, buf[0], 10, 0, on_read, &rs[0]), -EINVAL);
    CHECK_EQ_INT(vx_file_read(loop, fd, buf[0], 10, 0, NULL, NULL), -EINVAL);
    CHECK_EQ_INT(vx_file_read(loop, fd, buf[0], 10, (uint64_t)INT64_MAX + 1, on_read, &rs[0]),
                 -EINVAL);
    CHECK_EQ_INT(rs[0].calls, 1);
    vx_loop_free(loop);
    close(fd);
    close(wronly);
    close(dir);
    free(data);
}

/* A reader that starts its next read from the callback, as a file body
 * does, until the end of the file: every byte, in order. */
typedef struct chain {
    vx_loop *loop;
    int fd;
    char buf[100 * KiB];
    unsigned char *got;
    uint64_t pos;
    int reads;
} chain;

static void chain_next(void *arg, ssize_t n) {
    chain *c = arg;
    if (n <= 0) {
        CHECK_EQ_INT(n, 0);
        vx_loop_stop(c->loop);
        return;
    }
    memcpy(c->got + c->pos, c->buf, (size_t)n);
    c->pos += (uint64_t)n;
    c->reads++;
    int rc = vx_file_read(c->loop, c->fd, c->buf, sizeof c->buf, c->pos, chain_next, c);
    if (rc < 0) {
        harness_fail(__FILE__, __LINE__, "vx_file_read: %s", vx_err_name(rc));
        vx_loop_stop(c->loop);
    }
}

TEST(reads_chained_from_callbacks) {
    enum { SIZE = 5 * MiB + 17 };
    unsigned char *data;
    static chain c;
    c.fd = temp_file(SIZE, 5, &data, NULL);
    c.loop = loop_new();
    c.got = malloc(SIZE);
    REQUIRE(c.got);
    REQUIRE_OK(vx_file_read(c.loop, c.fd, c.buf, sizeof c.buf, 0, chain_next, &c));
    run_until_done(c.loop);
    CHECK_EQ_INT(c.pos, SIZE);
    CHECK_EQ_INT(c.reads, (SIZE + sizeof c.buf - 1) / sizeof c.buf);
    CHECK(c.pos == SIZE && memcmp(c.got, data, SIZE) == 0);
    vx_loop_free(c.loop);
    close(c.fd);
    free(c.got);
    free(data);
}

/* vx_loop_free with 200 reads queued and the loop never run: every callback
 * runs exactly once, inside the free, with the bytes read (the read ran) or
 * -ECANCELED (it never started); buffers may be freed after. */
TEST(loop_free_with_reads_queued) {
    enum { N = 200, SIZE = 2 * MiB };
    unsigned char *data;
    int fd = temp_file(SIZE, 6, &data, NULL);
    vx_loop *loop = loop_new();
    static rd rs[N];
    int left = N;
    for (int i = 0; i < N; i++) {
        rs[i] = (rd){.loop = loop, .left = &left, .len = 64 * KiB, .off = (uint64_t)i * 8 * KiB};
        rs[i].buf = malloc(rs[i].len);
        REQUIRE(rs[i].buf);
        REQUIRE_OK(vx_file_read(loop, fd, rs[i].buf, rs[i].len, rs[i].off, on_read, &rs[i]));
    }
    vx_loop_free(loop);
    int done = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(rs[i].calls, 1);
        if (rs[i].n == -ECANCELED) {
            cancelled++;
        } else {
            CHECK_EQ_INT(rs[i].n, 64 * KiB);
            CHECK(memcmp(rs[i].buf, data + rs[i].off, 64 * KiB) == 0);
            done++;
        }
        free(rs[i].buf);
    }
    harness_log("at loop free: %d reads done, %d cancelled", done, cancelled);
    CHECK_EQ_INT(left, 0);
    close(fd);
    free(data);
}
