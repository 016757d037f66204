/* Unit tests of the connection buffers: the input buffer and the chunked
 * output queue (coalescing, iovecs, partial consumption, chunk recycling,
 * file segments in order and their fds closed). */
#include "core/buf.h"
#include "core/common.h"
#include "harness.h"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

TEST(buf_append_consume) {
    vx__buf b = {0};
    CHECK_EQ_INT(b.cap, 0);
    REQUIRE_OK(vx__buf_append(&b, "hello ", 6));
    REQUIRE_OK(vx__buf_append(&b, "world", 5));
    CHECK_EQ_INT(b.len, 11);
    CHECK(!memcmp(b.data, "hello world", 11));
    vx__buf_consume(&b, 6);
    CHECK_EQ_INT(b.len, 5);
    CHECK(!memcmp(b.data, "world", 5));
    vx__buf_consume(&b, 5);
    CHECK(b.data == NULL); /* an empty buffer holds no memory */
    CHECK_EQ_INT(b.cap, 0);
}

TEST(buf_grows_to_fit) {
    vx__buf b = {0};
    rng r;
    rng_seed(&r, 42);
    unsigned char *src = rng_alloc(&r, 1 << 20);
    size_t off = 0;
    while (off < (1u << 20)) {
        size_t n = rng_range(&r, 1, 9000);
        if (n > (1u << 20) - off)
            n = (1u << 20) - off;
        REQUIRE_OK(vx__buf_append(&b, src + off, n));
        off += n;
    }
    CHECK_EQ_INT(b.len, 1 << 20);
    CHECK(b.cap >= b.len);
    CHECK(!memcmp(b.data, src, 1 << 20));
    vx__buf_free(&b);
    free(src);
}

static size_t drain_iov(vx__outq *q, unsigned char *out) {
    struct iovec iov[64];
    size_t total = 0;
    int n = vx__outq_iov(q, iov, 64);
    for (int i = 0; i < n; i++) {
        memcpy(out + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    return total;
}

TEST(outq_coalesces_small_writes) {
    vx__outq q = {0};
    vx__chunk_cache cc = {.max = 4};
    for (int i = 0; i < 100; i++)
        REQUIRE_OK(vx__outq_append(&q, &cc, "0123456789", 10));
    CHECK_EQ_INT(q.bytes, 1000);
    CHECK(q.head == q.tail); /* one chunk: one send */
    struct iovec iov[4];
    CHECK_EQ_INT(vx__outq_iov(&q, iov, 4), 1);
    vx__outq_clear(&q, &cc);
    CHECK_EQ_INT(cc.count, 1); /* the standard chunk went back to the cache */
    vx__chunk_cache_free(&cc);
}

TEST(outq_partial_consume_keeps_order) {
    vx__outq q = {0};
    vx__chunk_cache cc = {.max = 4};
    rng r;
    rng_seed(&r, 7);
    size_t total = 300000;
    unsigned char *src = rng_alloc(&r, total), *dst = malloc(total);
    size_t in = 0, out = 0;
    while (out < total) {
        if (in < total) {
            size_t n = rng_range(&r, 1, 40000);
            if (n > total - in)
                n = total - in;
            REQUIRE_OK(vx__outq_append(&q, &cc, src + in, n));
            in += n;
        }
        /* the "kernel" takes a random prefix of what is offered */
        unsigned char *tmp = malloc(q.bytes + 1);
        size_t offered = drain_iov(&q, tmp);
        size_t took = offered ? rng_range(&r, 0, offered) : 0;
        memcpy(dst + out, tmp, took);
        free(tmp);
        vx__outq_consume(&q, &cc, took);
        out += took;
        CHECK_EQ_INT(q.bytes, in - out);
    }
    CHECK(!memcmp(src, dst, total));
    CHECK(q.head == NULL && q.tail == NULL);
    CHECK_LE_INT(cc.count, 4);
    vx__chunk_cache_free(&cc);
    free(src);
    free(dst);
}

static int fail_after;
static void *failing_realloc(void *p, size_t size, void *ud) {
    (void)ud;
    if (size == 0) {
        free(p);
        return NULL;
    }
    if (fail_after-- <= 0)
        return NULL;
    return realloc(p, size);
}

TEST(outq_append_failure_leaves_queue_intact) {
    vx__outq q = {0};
    vx__chunk_cache cc = {.max = 0};
    REQUIRE_OK(vx__outq_append(&q, &cc, "abc", 3));
    fail_after = 0;
    vx_allocator_set(failing_realloc, NULL);
    char big[40000];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(vx__outq_append(&q, &cc, big, sizeof big), -ENOMEM);
    vx_allocator_set(NULL, NULL);
    CHECK_EQ_INT(q.bytes, 3);
    CHECK(q.head && q.head->len - q.head->off == 3 && !memcmp(q.head->data, "abc", 3));
    vx__outq_clear(&q, &cc);
}

/* A file segment's fd is open (not yet closed by the queue). */
static bool fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(outq_file_segments_keep_order_and_close_fds) {
    vx__outq q = {0};
    vx__chunk_cache cc = {.max = 4};
    int p[2];
    REQUIRE(pipe(p) == 0); /* any fd will do: the queue never reads it */
    REQUIRE_OK(vx__outq_append(&q, &cc, "head", 4));
    REQUIRE_OK(vx__outq_append_file(&q, p[0], 100, 5000));
    REQUIRE_OK(vx__outq_append(&q, &cc, "tail", 4)); /* not coalesced into the file */
    CHECK_EQ_INT(q.bytes, 4 + 5000 + 4);
    CHECK_EQ_INT(q.files, 1);
    struct iovec iov[4];
    CHECK_EQ_INT(vx__outq_iov(&q, iov, 4), 1); /* memory up to the file only */
    CHECK(iov[0].iov_len == 4 && !memcmp(iov[0].iov_base, "head", 4));
    CHECK(vx__outq_file(&q) == NULL);
    vx__outq_consume(&q, &cc, 4);
    vx__chunk *f = vx__outq_file(&q);
    REQUIRE(f != NULL);
    CHECK_EQ_INT(vx__outq_iov(&q, iov, 4), 0);
    CHECK(f->fd == p[0] && f->fpos == 100 && f->fleft == 5000);
    vx__outq_consume(&q, &cc, 1000);
    CHECK(f->fpos == 1100 && f->fleft == 4000 && fd_open(p[0]));
    vx__outq_consume(&q, &cc, 4001); /* the rest of the file and one byte of the tail */
    CHECK(!fd_open(p[0]));
    CHECK_EQ_INT(q.files, 0);
    CHECK_EQ_INT(q.bytes, 3);
    CHECK_EQ_INT(vx__outq_iov(&q, iov, 4), 1);
    CHECK(iov[0].iov_len == 3 && !memcmp(iov[0].iov_base, "ail", 3));
    vx__outq_clear(&q, &cc);
    close(p[1]);
    vx__chunk_cache_free(&cc);
}

TEST(outq_clear_closes_every_file) {
    vx__outq q = {0};
    vx__chunk_cache cc = {.max = 4};
    int fds[6];
    for (int i = 0; i < 6; i += 2)
        REQUIRE(pipe(fds + i) == 0);
    for (int i = 0; i < 6; i++) {
        REQUIRE_OK(vx__outq_append_file(&q, fds[i], 0, 10));
        REQUIRE_OK(vx__outq_append(&q, &cc, "x", 1));
    }
    CHECK_EQ_INT(q.files, 6);
    vx__outq_consume(&q, &cc, 5); /* partway into the first file */
    vx__outq_clear(&q, &cc);
    for (int i = 0; i < 6; i++)
        CHECK_MSG(!fd_open(fds[i]), "fd %d of file %d still open", fds[i], i);
    CHECK(q.head == NULL && q.tail == NULL && q.bytes == 0 && q.files == 0);
    vx__chunk_cache_free(&cc);
}

/* A reservation behind a file segment gets a chunk of its own. */
TEST(outq_reserve_after_file_makes_a_chunk) {
    vx__outq q = {0};
    vx__chunk_cache cc = {.max = 4};
    int p[2];
    REQUIRE(pipe(p) == 0);
    REQUIRE_OK(vx__outq_append_file(&q, p[0], 0, 10));
    char *w = vx__outq_reserve(&q, &cc, 5);
    REQUIRE(w != NULL);
    memcpy(w, "abcde", 5);
    vx__outq_commit(&q, 5);
    CHECK(q.head != q.tail && vx__chunk_is_file(q.head) && !vx__chunk_is_file(q.tail));
    vx__outq_consume(&q, &cc, 10);
    struct iovec iov[2];
    CHECK_EQ_INT(vx__outq_iov(&q, iov, 2), 1);
    CHECK(iov[0].iov_len == 5 && !memcmp(iov[0].iov_base, "abcde", 5));
    vx__outq_clear(&q, &cc);
    close(p[1]);
    vx__chunk_cache_free(&cc);
}
