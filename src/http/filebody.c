/* Large file bodies, read off the loop's thread (vx_http_send_fd from
 * async_file_min bytes on, when not all of the range is in the page cache:
 * vx__http_file_cached, below, lets a cached one keep sendfile).
 *
 * sendfile(2) reads the page cache on the loop's thread, so a page that is
 * not there stops every connection of the loop until the disk answers. Here
 * the file is read BUF_SIZE at a time with vx_file_read (an io_uring READ, or
 * a pread on a pool thread) into one aligned buffer, with O_DIRECT where the
 * file system takes it (a file this large, read once, would only push hotter
 * pages out of the cache), and each piece is copied into the output queue
 * behind the head. The next read starts as soon as the buffer was copied out,
 * so the disk works while the socket drains; a piece that arrives while the
 * connection is congested waits in the buffer for the drain callback. The
 * price against sendfile is that copy and a second one into the socket: the
 * reason the threshold is high.
 *
 * O_DIRECT wants the buffer, offset and length aligned (ALIGN suits every
 * file system): reads start at the range's offset rounded down, the bytes
 * before it are skipped, and the last read runs to the next boundary (the
 * kernel stops at the end of the file). A file that ends before the range
 * (truncated under us) or a read that fails sends what it had and ends the
 * response short, which closes the connection: the framing is lost (logged).
 *
 * Ownership: the body owns the fd and the buffer. While a read is in flight
 * the kernel or a pool thread writes into the buffer, so the body lives until
 * that read completes even when the request went away first (its abort
 * callback then only drops r and ends the response). */
#include "core/loop.h"
#include "http/server.h"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* Linux 6.5, the same number on every architecture */
#endif

#define BUF_SIZE (256u * 1024) /* one read; a multiple of ALIGN */
#define ALIGN 4096u

typedef struct file_body {
    vx_http_req *r; /* NULL once the request went away */
    vx_loop *loop;
    int fd;
    bool reading;  /* a read is in flight into buf */
    uint64_t pos;  /* file offset of the next read (ALIGN-aligned) */
    uint64_t end;  /* file offset the range ends at */
    uint32_t skip; /* bytes of the first read before the range */
    size_t held;   /* bytes of buf read and not yet queued (from skip on) */
    char *buf;
} file_body;

static void body_free(file_body *b) {
    close(b->fd);
    free(b->buf);
    vx__free(b);
}

static void on_abort(vx_http_req *r, void *data) {
    file_body *b = data;
    b->r = NULL;
    vx_http_end(r); /* -EPIPE: it ends the request, which is freed after us */
    if (!b->reading)
        body_free(b);
}

/* End the response: whole (it closes nothing), or short after why (logged),
 * which closes the connection once what was queued is out. */
static void body_end(file_body *b, const char *why, int err) {
    vx_http_req *r = b->r;
    b->r = NULL;
    vx_http_on_abort(r, NULL, NULL);
    vx_http_on_drain(r, NULL, NULL);
    if (why)
        VX__LOG_WARN("http: file body ends %llu bytes short: %s (%s); closing, the framing is "
                     "lost",
                     (unsigned long long)(b->end - b->pos + b->held), why, vx_strerror(err));
    vx_http_end(r);
    body_free(b);
}

static void on_read(void *arg, ssize_t n);

static void read_next(file_body *b) {
    uint64_t want = (b->end - b->pos + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
    b->reading = true; /* before: a read may complete inside the call */
    int rc =
        vx_file_read(b->loop, b->fd, b->buf, (size_t)VX__MIN(want, BUF_SIZE), b->pos, on_read, b);
    if (rc < 0) {
        b->reading = false;
        body_end(b, "the read could not start", rc);
    }
}

/* Queue what the buffer holds unless the connection is congested (then the
 * drain callback comes back here); then read on, or end. */
static void pump(vx_http_req *r, void *data) {
    file_body *b = data;
    if (b->reading) /* a drain while the next piece is on its way */
        return;
    if (b->held) {
        if (vx_http_congested(r))
            return vx_http_on_drain(r, pump, b);
        int rc = vx_http_write(r, b->buf + b->skip, b->held);
        if (rc < 0) { /* the connection went: the write ended the response */
            b->r = NULL;
            return body_free(b);
        }
        b->held = b->skip = 0;
    }
    if (b->pos < b->end)
        read_next(b);
    else
        body_end(b, NULL, 0);
}

static void on_read(void *arg, ssize_t n) {
    file_body *b = arg;
    b->reading = false;
    if (!b->r)
        return body_free(b);
    uint64_t due = VX__MIN(b->end - b->pos, BUF_SIZE); /* what this read must bring */
    size_t got = n > 0 ? (size_t)VX__MIN((uint64_t)n, due) : 0;
    b->pos += got;
    b->held = got > b->skip ? got - b->skip : 0;
    if (got < due) { /* queue what came, then stop */
        if (b->held && vx_http_write(b->r, b->buf + b->skip, b->held) < 0) {
            b->r = NULL;
            return body_free(b);
        }
        b->held = 0;
        return body_end(b, n < 0 ? "the read failed" : "the file ended (truncated under us?)",
                        n < 0 ? (int)n : -ENODATA);
    }
    pump(b->r, b);
}

/* cachestat(2)'s arguments (linux/mman.h, newer than Debian 12's headers). */
struct cs_range {
    uint64_t off, len;
};
struct cs_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* cachestat walks every page of the range on the loop's thread: ~27 ns each
 * here, 0.45 ms for 64 MiB, about what one large sendfile call costs. Longer
 * ranges are not asked about (and are read off the loop). */
#define CACHED_CHECK_MAX (64u << 20)

bool vx__http_file_cached(int fd, uint64_t off, uint64_t len) {
    static atomic_bool missing; /* ENOSYS once: the kernel predates it */
    if (len == 0 || len > CACHED_CHECK_MAX || atomic_load_explicit(&missing, memory_order_relaxed))
        return false;
    struct cs_range range = {off, len};
    struct cs_stat st;
    if (syscall(SYS_cachestat, fd, &range, &st, 0) < 0) {
        if (errno == ENOSYS)
            atomic_store_explicit(&missing, true, memory_order_relaxed);
        return false; /* e.g. EOPNOTSUPP (hugetlbfs): read it off the loop */
    }
    uint64_t page = (uint64_t)getpagesize();
    uint64_t pages = (off + len - 1) / page - off / page + 1;
    return st.nr_cache >= pages;
}

/* O_DIRECT if the file system takes it; never O_NONBLOCK, with which io_uring
 * reports a page-cache miss as -EAGAIN instead of waiting for the disk. */
static void direct_io(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return;
    if (fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | O_DIRECT) < 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); /* e.g. EINVAL: read through the cache */
}

int vx__http_file_body(vx_http_req *r, int fd, uint64_t off, uint64_t len) {
    if (len > (uint64_t)INT64_MAX - off) {
        close(fd);
        return -EINVAL;
    }
    file_body *b = vx__calloc(1, sizeof *b);
    void *buf = NULL; /* libc's: the realloc-shaped allocator hook cannot align */
    if (!b || posix_memalign(&buf, ALIGN, BUF_SIZE) != 0) {
        vx__free(b);
        close(fd);
        vx_http_end(r); /* nothing of the body is out: short, closes */
        return -ENOMEM;
    }
    direct_io(fd);
    *b = (file_body){.r = r,
                     .loop = vx_conn_loop(vx_http_req_conn(r)),
                     .fd = fd,
                     .pos = off & ~(uint64_t)(ALIGN - 1),
                     .end = off + len,
                     .skip = (uint32_t)(off & (ALIGN - 1)),
                     .buf = buf};
    vx_http_on_abort(r, on_abort, b);
    read_next(b);
    return 0;
}
