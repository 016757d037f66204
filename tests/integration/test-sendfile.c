/* File output with sendfile(2) (vx_conn_sendfile, vx_http_send_fd), once per
 * backend (VX_BACKEND), over real loopback sockets: multi-MiB files served
 * byte-exact in order among memory writes (TCP and Unix), queue accounting and
 * back-pressure without spinning, aborts/resets/loop free mid-file without fd
 * leaks, a file truncated under us, and through vx_http: pipelined static
 * responses with Range and HEAD, and the bound on fds a pipelining client can
 * make one connection hold. */
#include "harness.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KiB 1024u
#define MiB (1024u * 1024u)
#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

/* ------------------------------------------------------------------ files */

/* A temporary file of len random bytes from seed, unlinked at once (the fd
 * keeps it); its bytes in *data when data is not NULL. */
static int temp_file(uint64_t seed, size_t len, unsigned char **data) {
    char path[] = "/tmp/vx-sendfile-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    rng r;
    rng_seed(&r, seed);
    unsigned char *buf = rng_alloc(&r, len);
    REQUIRE(write_all(fd, buf, len, 10000) == (ssize_t)len);
    if (data)
        *data = buf;
    else
        free(buf);
    return fd;
}

/* Read until EOF or an error (*err: 0 or -errno) into buf (cap bytes). */
static size_t read_to_end(int fd, unsigned char *buf, size_t cap, int timeout_ms, int *err) {
    size_t got = 0;
    *err = 0;
    while (got < cap) {
        size_t want = MIN_SZ(cap - got, 256 * KiB);
        ssize_t k = read_exact(fd, buf + got, want, timeout_ms);
        if (k < 0) {
            *err = (int)k;
            break;
        }
        got += (size_t)k;
        if ((size_t)k < want)
            break; /* EOF */
    }
    return got;
}

/* ------------------------------------------------- a raw connection server */

/* One step of what the server queues on each accepted connection. */
typedef struct piece {
    const void *mem; /* memory bytes; NULL: len bytes of fd from off */
    size_t len;
    int fd; /* dup()ed per connection: vx_conn_sendfile takes its fd */
    uint64_t off;
} piece;

typedef struct fsrv {
    server srv;
    vx_listener *l;
    uint16_t port;
    char unix_path[108]; /* listen there instead when set */
    const piece *script;
    int npieces;
    bool close_after; /* vx_conn_close() once the script is queued */
    vx_conn *conn;    /* the last accepted one; loop thread only */
    atomic_int accepted, closed, close_err, drains, queue_rc;
    atomic_size_t queued; /* vx_conn_queued() right after the script */
    atomic_bool congested;
} fsrv;

static size_t f_data(vx_conn *c, const char *p, size_t n) {
    (void)c, (void)p;
    return n;
}

static void f_drain(vx_conn *c) {
    fsrv *s = vx_conn_data(c);
    atomic_fetch_add(&s->drains, 1);
}

static void f_close(vx_conn *c, int err) {
    fsrv *s = vx_conn_data(c);
    if (s->conn == c)
        s->conn = NULL;
    atomic_store(&s->close_err, err);
    atomic_fetch_add(&s->closed, 1);
}

static const vx_conn_cbs f_cbs = {.on_data = f_data, .on_drain = f_drain, .on_close = f_close};

static void f_accept(vx_listener *l, vx_conn *c, void *data) {
    fsrv *s = data;
    (void)l;
    if (vx_conn_start(c, &f_cbs, s) < 0) {
        vx_conn_abort(c, false);
        return;
    }
    s->conn = c;
    int rc = 0;
    for (int i = 0; i < s->npieces && rc == 0; i++) {
        const piece *p = &s->script[i];
        rc = p->mem ? vx_conn_write(c, p->mem, p->len)
                    : vx_conn_sendfile(c, dup(p->fd), p->off, p->len);
    }
    atomic_store(&s->queue_rc, rc);
    atomic_store(&s->queued, vx_conn_queued(c));
    atomic_store(&s->congested, vx_conn_congested(c));
    atomic_fetch_add(&s->accepted, 1);
    if (s->close_after)
        vx_conn_close(c);
}

static int f_setup(vx_loop *loop, void *arg) {
    fsrv *s = arg;
    vx_listen_opts o = {.host = "127.0.0.1", .unix_path = s->unix_path[0] ? s->unix_path : NULL};
    int rc = vx_listen(loop, &o, f_accept, s, &s->l);
    if (rc == 0)
        s->port = vx_listener_port(s->l);
    return rc;
}

static void fsrv_start(fsrv *s, const piece *script, int n, bool close_after) {
    s->script = script;
    s->npieces = n;
    s->close_after = close_after;
    int rc = server_start(&s->srv, f_setup, s);
    if (rc < 0)
        SKIP("server: %s", vx_err_name(rc));
}

static int f_connect(fsrv *s) {
    int fd = s->unix_path[0] ? unix_connect(s->unix_path) : tcp_connect("127.0.0.1", s->port, 2000);
    REQUIRE(fd >= 0);
    return fd;
}

static bool cond_int_ge(atomic_int *v, int n) { return atomic_load(v) >= n; }

typedef struct wait_arg {
    atomic_int *v;
    int n;
} wait_arg;

static bool wait_cb(void *arg) {
    wait_arg *w = arg;
    return cond_int_ge(w->v, w->n);
}

static bool wait_ge(atomic_int *v, int n, int timeout_ms) {
    wait_arg w = {v, n};
    return wait_until(wait_cb, &w, timeout_ms);
}

static bool fds_back(void *arg) { return count_open_fds() == *(int *)arg; }

/* The expected byte stream of a script (file pieces from fdata). */
static unsigned char *expected(const piece *script, int n, const unsigned char *fdata,
                               size_t *len) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += script[i].len;
    unsigned char *out = malloc(total ? total : 1);
    REQUIRE(out);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + at, script[i].mem ? script[i].mem : fdata + script[i].off, script[i].len);
        at += script[i].len;
    }
    *len = total;
    return out;
}

/* ------------------------------------------------------------------ tests */

static void interleaved_once(bool unix_socket) {
    unsigned char *fdata, *mid;
    int ffd = temp_file(1, 6 * MiB, &fdata);
    rng r;
    rng_seed(&r, 2);
    mid = rng_alloc(&r, 100 * KiB);
    const piece script[] = {
        {.mem = "head\n", .len = 5},
        {.fd = ffd, .off = 0, .len = 6 * MiB},
        {.mem = mid, .len = 100 * KiB},
        {.fd = ffd, .off = 12345, .len = MiB},
        {.fd = ffd, .off = 6 * MiB - 10, .len = 10}, /* two files back to back */
        {.mem = "tail\n", .len = 5},
    };
    int n = (int)(sizeof script / sizeof *script);
    size_t total;
    unsigned char *want = expected(script, n, fdata, &total);
    unsigned char *got = malloc(total + 1);
    REQUIRE(got);

    static fsrv s;
    memset(&s, 0, sizeof s);
    if (unix_socket)
        unix_path_make(s.unix_path, sizeof s.unix_path, "sendfile");
    fsrv_start(&s, script, n, true);
    int fd = f_connect(&s);
    int err;
    size_t k = read_to_end(fd, got, total + 1, 10000, &err);
    CHECK_EQ_INT(err, 0);
    CHECK_EQ_INT(k, total);
    CHECK(k == total && memcmp(got, want, total) == 0);
    close(fd); /* the server lingers for our FIN */
    REQUIRE(wait_ge(&s.closed, 1, 3000));
    CHECK_EQ_INT(atomic_load(&s.queue_rc), 0);
    CHECK_EQ_INT(atomic_load(&s.queued), total); /* file bytes count as queued */
    CHECK_EQ_INT(atomic_load(&s.close_err), 0);
    vx_stats st;
    server_stats(&s.srv, &st);
    harness_log("%s: %zu bytes, sendfile=%llu write=%llu", unix_socket ? "unix" : "tcp", total,
                (unsigned long long)st.syscalls[VX_SYS_SENDFILE],
                (unsigned long long)st.syscalls[VX_SYS_WRITE]);
    CHECK(st.syscalls[VX_SYS_SENDFILE] >= 3);
    CHECK(st.bytes_out >= total);
    server_stop(&s.srv);
    close(ffd);
    free(want);
    free(got);
    free(fdata);
    free(mid);
}

TEST(interleaved_with_memory_byte_exact_tcp) { interleaved_once(false); }

TEST(interleaved_with_memory_byte_exact_unix) { interleaved_once(true); }

/* A client that reads nothing for a second: the queue holds the file bytes
 * (congested, reading paused), the loop sleeps, and everything arrives intact
 * once it reads, with on_drain on the way. */
TEST(slow_reader_paced_without_spinning) {
    unsigned char *fdata;
    int ffd = temp_file(3, 16 * MiB, &fdata);
    const piece script[] = {{.mem = "x", .len = 1}, {.fd = ffd, .off = 0, .len = 16 * MiB}};
    size_t total;
    unsigned char *want = expected(script, 2, fdata, &total);
    unsigned char *got = malloc(total + 1);
    REQUIRE(got);
    static fsrv s;
    memset(&s, 0, sizeof s);
    fsrv_start(&s, script, 2, false); /* not closing: on_drain is for open connections */
    int fd = f_connect(&s);
    REQUIRE(wait_ge(&s.accepted, 1, 3000));
    CHECK_EQ_INT(atomic_load(&s.queued), total);
    CHECK(atomic_load(&s.congested)); /* 16 MiB is past the 1 MiB high-water mark */
    sleep_ms(200);                    /* the socket buffers fill */
    vx_stats s0, s1;
    server_stats(&s.srv, &s0);
    sleep_ms(1000);
    server_stats(&s.srv, &s1);
    uint64_t wk = s1.wakeups - s0.wakeups;
    uint64_t sys = vx_stats_syscalls(&s1) - vx_stats_syscalls(&s0);
    harness_log("stalled 1 s: %llu wakeups, %llu syscalls; %llu bytes out so far",
                (unsigned long long)wk, (unsigned long long)sys, (unsigned long long)s1.bytes_out);
    CHECK_LE_INT(wk, 10);
    CHECK_LE_INT(sys, 30);
    CHECK(s1.bytes_out < total); /* it really stalled */
    CHECK_EQ_INT(read_exact(fd, got, total, 10000), total);
    CHECK(memcmp(got, want, total) == 0);
    CHECK(wait_ge(&s.drains, 1, 3000));
    close(fd);
    REQUIRE(wait_ge(&s.closed, 1, 3000));
    server_stop(&s.srv);
    close(ffd);
    free(want);
    free(got);
    free(fdata);
}

static void abort_conn(void *arg) {
    fsrv *s = arg;
    if (s->conn)
        vx_conn_abort(s->conn, true);
}

static void close_conn(void *arg) {
    fsrv *s = arg;
    if (s->conn)
        vx_conn_close(s->conn);
}

/* Read until EOF or an error; false if bytes keep coming for 3 s. */
static bool drained(int fd, unsigned char *buf, size_t cap) {
    uint64_t end = now_ms() + 3000;
    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(fd, buf, cap);
        if (k <= 0 && !(k < 0 && errno == EINTR))
            return true;
    }
    return false;
}

/* Every way a connection ends mid-file closes the queued file fds. */
TEST(abort_reset_close_free_mid_file_no_fd_leak) {
    int ffd = temp_file(4, 32 * MiB, NULL);
    const piece script[] = {{.mem = "head", .len = 4},
                            {.fd = ffd, .off = 0, .len = 32 * MiB},
                            {.mem = "mid", .len = 3},
                            {.fd = ffd, .off = 0, .len = 32 * MiB}};
    static unsigned char buf[64 * KiB];
    int before_server = count_open_fds();
    static fsrv s;
    memset(&s, 0, sizeof s);
    fsrv_start(&s, script, 4, false);
    int base = count_open_fds();

    /* the server aborts with a reset */
    int fd = f_connect(&s);
    CHECK_EQ_INT(read_exact(fd, buf, sizeof buf, 3000), sizeof buf);
    server_call(&s.srv, abort_conn, &s);
    REQUIRE(wait_ge(&s.closed, 1, 3000));
    CHECK(drained(fd, buf, sizeof buf)); /* the stream ends: no more file bytes come */
    close(fd);
    CHECK_MSG(wait_until(fds_back, &base, 3000), "after abort: %d fds, %d before", count_open_fds(),
              base);

    /* the client resets */
    fd = f_connect(&s);
    CHECK_EQ_INT(read_exact(fd, buf, sizeof buf, 3000), sizeof buf);
    close_rst(fd);
    REQUIRE(wait_ge(&s.closed, 2, 5000));
    CHECK(atomic_load(&s.close_err) != 0);
    CHECK_MSG(wait_until(fds_back, &base, 3000), "after reset: %d fds, %d before", count_open_fds(),
              base);

    /* a graceful close mid-file, then the client goes away without reading */
    fd = f_connect(&s);
    REQUIRE(wait_ge(&s.accepted, 3, 3000));
    server_call(&s.srv, close_conn, &s);
    sleep_ms(50);
    close(fd); /* unread data: the kernel resets */
    REQUIRE(wait_ge(&s.closed, 3, 5000));
    CHECK_MSG(wait_until(fds_back, &base, 3000), "after close: %d fds, %d before", count_open_fds(),
              base);

    /* the loop is freed with files queued */
    fd = f_connect(&s);
    REQUIRE(wait_ge(&s.accepted, 4, 3000));
    server_stop(&s.srv);
    close(fd);
    CHECK_MSG(wait_until(fds_back, &before_server, 3000), "after loop free: %d fds, %d before",
              count_open_fds(), before_server);
    close(ffd);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[4096];

static void capture_log(int level, const char *msg, void *ud) {
    (void)level, (void)ud;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
    pthread_mutex_unlock(&log_mu);
}

static bool logged(const char *what) {
    pthread_mutex_lock(&log_mu);
    bool yes = strstr(log_text, what) != NULL;
    pthread_mutex_unlock(&log_mu);
    return yes;
}

/* The file shrinks after its length was promised: the connection closes
 * (-ENODATA, logged) rather than waiting forever or sending garbage. Cut
 * below what was sent, the next sendfile returns 0; cut above it, one comes
 * up short at the new end while the socket still has room (in edge mode no
 * new edge would say so). */
static void truncated_once(uint64_t cut) {
    vx_log_set(capture_log, NULL, VX_LOG_WARN);
    unsigned char *fdata;
    int ffd = temp_file(5, 32 * MiB, &fdata);
    const piece script[] = {{.mem = "head", .len = 4}, {.fd = ffd, .off = 0, .len = 32 * MiB}};
    size_t total;
    unsigned char *want = expected(script, 2, fdata, &total);
    unsigned char *got = malloc(total + 1);
    REQUIRE(got);
    static fsrv s;
    memset(&s, 0, sizeof s);
    fsrv_start(&s, script, 2, true);
    int fd = f_connect(&s);
    REQUIRE(wait_ge(&s.accepted, 1, 3000));
    sleep_ms(200); /* stalled on the full socket, far from the end */
    vx_stats st;
    server_stats(&s.srv, &st);
    REQUIRE(ftruncate(ffd, (off_t)cut) == 0);
    int err;
    size_t k = read_to_end(fd, got, total + 1, 10000, &err);
    harness_log("cut at %llu after %llu bytes out: got %zu of %zu bytes, then %s",
                (unsigned long long)cut, (unsigned long long)st.bytes_out, k, total,
                err ? vx_err_name(err) : "EOF");
    CHECK(k < total);
    if (cut > st.bytes_out)
        CHECK_EQ_INT(k, 4 + cut); /* all that is left is sent */
    /* Up to the new end the bytes are the file's. Past it, bytes already in
     * the socket are page-cache pages (zero-copy) that the truncation may
     * have zeroed: no promise there. */
    CHECK(memcmp(got, want, MIN_SZ(k, 4 + cut)) == 0);
    REQUIRE(wait_ge(&s.closed, 1, 5000));
    CHECK_EQ_STR(vx_err_name(atomic_load(&s.close_err)), "ENODATA");
    CHECK(logged("short of the range queued"));
    close(fd);
    server_stop(&s.srv);
    vx_log_set(NULL, NULL, VX_LOG_INFO);
    close(ffd);
    free(want);
    free(got);
    free(fdata);
}

TEST(truncated_below_sent_closes_and_logs) { truncated_once(MiB); }

TEST(truncated_ahead_closes_and_logs) { truncated_once(12 * MiB); }

/* A Unix-socket peer that goes away mid-file makes the next sendfile fail
 * with EPIPE, which raises SIGPIPE (sendfile has no MSG_NOSIGNAL): the
 * connection must just close, the process live on. */
TEST(peer_gone_mid_file_no_sigpipe) {
    int ffd = temp_file(6, 32 * MiB, NULL);
    const piece script[] = {{.fd = ffd, .off = 0, .len = 32 * MiB}};
    static unsigned char buf[64 * KiB];
    static fsrv s;
    memset(&s, 0, sizeof s);
    unix_path_make(s.unix_path, sizeof s.unix_path, "sendfile-gone");
    fsrv_start(&s, script, 1, false);
    for (int i = 0; i < 3; i++) {
        int fd = f_connect(&s);
        CHECK_EQ_INT(read_exact(fd, buf, sizeof buf, 3000), sizeof buf);
        close(fd);
        REQUIRE(wait_ge(&s.closed, i + 1, 5000));
        /* The point is that no SIGPIPE killed us. Which error closes the
         * conn is a race: sendfile sees EPIPE, while a read in flight (uring's
         * multishot recv) sees the ECONNRESET a Unix socket closed with
         * unread data leaves on its peer. */
        int err = atomic_load(&s.close_err);
        CHECK_MSG(err == -EPIPE || err == -ECONNRESET, "closed with %s", vx_err_name(err));
    }
    server_stop(&s.srv);
    close(ffd);
}

/* --------------------------------------------------------------- vx_http */

typedef struct hsrv {
    server srv;
    vx_http *http;
    vx_listener *l;
    uint16_t port;
    char root[64];
    int root_fd;         /* root, opened once (O_PATH) */
    atomic_int max_fds;  /* most fds open seen by the static handler */
    atomic_int short_rc; /* what vx_http_send_fd returned in h_short */
    bool cold;           /* www_file leaves its files out of the page cache */
} hsrv;

static void h_static(vx_http_req *r, void *d) {
    hsrv *s = d;
    size_t n;
    const char *p = vx_http_req_path(r, &n);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n - 8), p + 8); /* after "/static/" */
    vx_http_static(r, s->root_fd, name);
    int fds = count_open_fds();
    if (fds > atomic_load(&s->max_fds))
        atomic_store(&s->max_fds, fds);
}

/* 100 bytes announced, a 40-byte file sent: the body cannot be whole. */
static void h_short(vx_http_req *r, void *d) {
    hsrv *s = d;
    int fd = openat(s->root_fd, "short.txt", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || vx_http_begin(r, 200, NULL, 100) < 0) {
        vx_http_respond(r, 500, NULL, NULL, 0);
        return;
    }
    atomic_store(&s->short_rc, vx_http_send_fd(r, fd, 0, 100));
}

static void h_plain(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, NULL, "Hello, World!", 13);
}

static int h_setup(vx_loop *loop, void *arg) {
    hsrv *s = arg;
    int rc =
        vx_listen(loop, &(vx_listen_opts){.host = "127.0.0.1"}, vx_http_on_accept, s->http, &s->l);
    if (rc == 0)
        s->port = vx_listener_port(s->l);
    return rc;
}

/* The root is a new directory in base. */
static void hsrv_start_in(hsrv *s, const char *base, const vx_http_opts *o) {
    memset(s, 0, sizeof *s);
    snprintf(s->root, sizeof s->root, "%s/vx-sendfile-www-XXXXXX", base);
    REQUIRE(mkdtemp(s->root));
    s->root_fd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(s->root_fd >= 0);
    REQUIRE_OK(vx_http_new(&s->http, o));
    REQUIRE_OK(vx_http_route(s->http, "GET", "/static/", VX_HTTP_PREFIX, h_static, NULL, s));
    REQUIRE_OK(vx_http_route(s->http, "GET", "/plaintext", 0, h_plain, NULL, NULL));
    REQUIRE_OK(vx_http_route(s->http, "GET", "/short", 0, h_short, NULL, s));
    int rc = server_start(&s->srv, h_setup, s);
    if (rc < 0)
        SKIP("server: %s", vx_err_name(rc));
}

static void hsrv_start_with(hsrv *s, const vx_http_opts *o) { hsrv_start_in(s, "/tmp", o); }

/* Every file body above 16 KiB with sendfile. */
static void hsrv_start(hsrv *s) {
    hsrv_start_with(s, &(vx_http_opts){.async_file_min = UINT64_MAX});
}

/* File bodies from 64 KiB on read off the loop's thread (filebody.c), so
 * far as they are not all in the page cache: www_file leaves them out. */
static void hsrv_start_async(hsrv *s) {
    hsrv_start_with(s, &(vx_http_opts){.async_file_min = 64 * KiB});
    s->cold = true;
}

/* Pages of fd in the page cache (cachestat(2)), or -1. */
static int64_t cached_pages(int fd) {
    struct {
        uint64_t off, len;
    } range = {0, 0}; /* the whole file */
    uint64_t cs[5];   /* nr_cache first */
    return syscall(451 /* SYS_cachestat */, fd, &range, cs, 0) < 0 ? -1 : (int64_t)cs[0];
}

/* Drop the page cache of fd (clean pages only: written back first). */
static void uncache(int fd) {
    REQUIRE(fdatasync(fd) == 0);
    REQUIRE(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
}

static unsigned char *www_file(hsrv *s, const char *name, uint64_t seed, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s->root, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    rng r;
    rng_seed(&r, seed);
    unsigned char *data = rng_alloc(&r, len);
    REQUIRE(write_all(fd, data, len, 10000) == (ssize_t)len);
    if (s->cold) {
        uncache(fd);
        if (cached_pages(fd) == (int64_t)((len + 4095) / 4096) && len)
            SKIP("the page cache of %s stays (tmpfs?): large bodies go by sendfile", path);
    }
    close(fd);
    return data;
}

static void hsrv_stop(hsrv *s, const char *const *names, int n) {
    server_stop(&s->srv);
    vx_http_free(s->http);
    char path[128];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", s->root, names[i]);
        unlink(path);
    }
    close(s->root_fd);
    rmdir(s->root);
}

/* A buffered client reading responses off one connection. */
typedef struct rd {
    int fd;
    size_t off, len;
    char buf[64 * 1024];
} rd;

static bool rd_more(rd *r) {
    if (r->off == r->len)
        r->off = r->len = 0;
    ssize_t k = read_exact(r->fd, r->buf + r->len, 1, 5000); /* waits for the first byte */
    if (k != 1)
        return false;
    r->len++;
    ssize_t more = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, MSG_DONTWAIT);
    if (more > 0)
        r->len += (size_t)more;
    return true;
}

/* A response head: status and Content-Length (-1 when absent); head copied. */
static int rd_head(rd *r, char *head, size_t cap, long long *clen) {
    for (;;) {
        char *end = memmem(r->buf + r->off, r->len - r->off, "\r\n\r\n", 4);
        if (end) {
            size_t n = (size_t)(end + 4 - (r->buf + r->off));
            REQUIRE(n < cap);
            memcpy(head, r->buf + r->off, n);
            head[n] = 0;
            r->off += n;
            break;
        }
        if (r->off > 0) { /* keep the partial head at the front */
            memmove(r->buf, r->buf + r->off, r->len - r->off);
            r->len -= r->off;
            r->off = 0;
        }
        if (r->len == sizeof r->buf || !rd_more(r))
            return -1;
    }
    const char *cl = strcasestr(head, "\r\nContent-Length: ");
    *clen = cl ? strtoll(cl + 18, NULL, 10) : -1;
    int status = 0;
    return sscanf(head, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

static size_t rd_body(rd *r, unsigned char *out, size_t n) {
    size_t got = 0;
    while (got < n) {
        if (r->off == r->len && !rd_more(r))
            break;
        size_t k = MIN_SZ(r->len - r->off, n - got);
        memcpy(out + got, r->buf + r->off, k);
        r->off += k;
        got += k;
    }
    return got;
}

/* Read one response and compare it with (status, body[0..len)); HEAD: no body. */
static void expect_resp(rd *r, int status, const unsigned char *body, size_t len, bool head_req) {
    char head[2048];
    long long clen;
    int st = rd_head(r, head, sizeof head, &clen);
    REQUIRE(st > 0);
    CHECK_EQ_INT(st, status);
    CHECK_EQ_INT(clen, (long long)len);
    if (head_req || clen <= 0)
        return;
    unsigned char *got = malloc(len);
    REQUIRE(got);
    size_t k = rd_body(r, got, len);
    CHECK_EQ_INT(k, len);
    CHECK_MSG(k == len && memcmp(got, body, len) == 0, "body of a %d response differs", status);
    free(got);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* Pipelined static responses (with Range and HEAD between them) arrive in
 * order, byte-exact, in one batch of requests. */
TEST(http_pipelined_static_range_head) {
    static hsrv s;
    hsrv_start(&s);
    unsigned char *small = www_file(&s, "small.txt", 10, 100);
    unsigned char *mid = www_file(&s, "mid.bin", 11, 300 * KiB);
    unsigned char *big = www_file(&s, "big.bin", 12, 3 * MiB);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    static const char *const reqs[] = {
        GET("/static/small.txt"),
        GET("/static/big.bin"),
        GET("/plaintext"),
        GET("/static/mid.bin"),
        "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-2999999\r\n\r\n",
        "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
        GET("/static/small.txt"),
    };
    char batch[1024] = "";
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++)
        strcat(batch, reqs[i]);
    REQUIRE(write_all(r.fd, batch, strlen(batch), 2000) == (ssize_t)strlen(batch));
    expect_resp(&r, 200, small, 100, false);
    expect_resp(&r, 200, big, 3 * MiB, false);
    expect_resp(&r, 200, (const unsigned char *)"Hello, World!", 13, false);
    expect_resp(&r, 200, mid, 300 * KiB, false);
    expect_resp(&r, 206, big + 1000, 2999000, false);
    expect_resp(&r, 200, big, 3 * MiB, true);
    expect_resp(&r, 200, small, 100, false);
    vx_stats st;
    server_stats(&s.srv, &st);
    harness_log("sendfile=%llu write=%llu", (unsigned long long)st.syscalls[VX_SYS_SENDFILE],
                (unsigned long long)st.syscalls[VX_SYS_WRITE]);
    CHECK(st.syscalls[VX_SYS_SENDFILE] >= 3); /* big, mid, the range; small.txt is read in */
    close(r.fd);
    const char *names[] = {"small.txt", "mid.bin", "big.bin"};
    hsrv_stop(&s, names, 3);
    free(small);
    free(mid);
    free(big);
}

/* The same with the bodies read off the loop's thread: pipelined among
 * memory responses, ranges that start and end off the 4 KiB alignment
 * O_DIRECT wants, a file size that is not a multiple of it, HEAD; no
 * sendfile at all, and the reads counted. */
TEST(http_async_file_pipelined_ranges) {
    static hsrv s;
    hsrv_start_async(&s);
    enum { BIG = 3 * MiB + 5 };
    unsigned char *small = www_file(&s, "small.txt", 40, 100);
    unsigned char *mid = www_file(&s, "mid.bin", 41, 300 * KiB);
    unsigned char *big = www_file(&s, "big.bin", 42, BIG);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    static const char *const reqs[] = {
        GET("/static/small.txt"),
        GET("/static/big.bin"),
        GET("/plaintext"),
        GET("/static/mid.bin"),
        "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-2999999\r\n\r\n",
        "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-70001\r\n\r\n",
        "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=4096-\r\n\r\n",
        "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
        GET("/static/small.txt"),
    };
    char batch[1024] = "";
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++)
        strcat(batch, reqs[i]);
    REQUIRE(write_all(r.fd, batch, strlen(batch), 2000) == (ssize_t)strlen(batch));
    expect_resp(&r, 200, small, 100, false);
    expect_resp(&r, 200, big, BIG, false);
    expect_resp(&r, 200, (const unsigned char *)"Hello, World!", 13, false);
    expect_resp(&r, 200, mid, 300 * KiB, false);
    expect_resp(&r, 206, big + 1000, 2999000, false);
    expect_resp(&r, 206, big + BIG - 70001, 70001, false);
    expect_resp(&r, 206, big + 4096, BIG - 4096, false);
    expect_resp(&r, 200, big, BIG, true);
    expect_resp(&r, 200, small, 100, false);
    vx_stats st;
    server_stats(&s.srv, &st);
    harness_log("file_reads=%llu file_bytes=%llu sendfile=%llu", (unsigned long long)st.file_reads,
                (unsigned long long)st.file_bytes,
                (unsigned long long)st.syscalls[VX_SYS_SENDFILE]);
    CHECK_EQ_INT(st.syscalls[VX_SYS_SENDFILE], 0);
    /* big, mid and the three ranges (HEAD reads nothing), each read whole
     * (rounded out to 4 KiB at both ends) and no more */
    uint64_t least = (uint64_t)BIG + 300 * KiB + 2999000 + 70001 + BIG - 4096;
    CHECK(st.file_bytes >= least && st.file_bytes <= least + 6 * 8 * KiB);
    close(r.fd);
    const char *names[] = {"small.txt", "mid.bin", "big.bin"};
    hsrv_stop(&s, names, 3);
    free(small);
    free(mid);
    free(big);
}

/* A client that stops reading: the server reads the file no further ahead
 * than the socket buffers and its own two pieces, then every byte arrives. */
TEST(http_async_file_paced_by_reader) {
    static hsrv s;
    hsrv_start_async(&s);
    enum { SIZE = 48 * MiB };
    unsigned char *big = www_file(&s, "big.bin", 43, SIZE);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    const char *req = GET("/static/big.bin");
    REQUIRE(write_all(r.fd, req, strlen(req), 2000) == (ssize_t)strlen(req));
    vx_stats st;
    for (int i = 0; i < 500 && (server_stats(&s.srv, &st), st.file_bytes == 0); i++)
        sleep_ms(20); /* the first read is back (slow under valgrind) */
    CHECK(st.file_bytes > 0);
    sleep_ms(500); /* then it would read the whole file unless paced */
    server_stats(&s.srv, &st);
    harness_log("read ahead of a stalled client: %llu bytes", (unsigned long long)st.file_bytes);
    CHECK_LE_INT(st.file_bytes, 16 * MiB);
    expect_resp(&r, 200, big, SIZE, false);
    close(r.fd);
    const char *names[] = {"big.bin"};
    hsrv_stop(&s, names, 1);
    free(big);
}

/* Clients that reset mid-body, some with a read in flight: the server frees
 * each body once its read is back (no fd or memory left behind: the fd count
 * returns, ASan and valgrind check the rest) and serves the next client. */
TEST(http_async_file_client_resets_no_leak) {
    static hsrv s;
    hsrv_start_async(&s);
    enum { SIZE = 32 * MiB };
    unsigned char *big = www_file(&s, "big.bin", 44, SIZE);
    unsigned char *mid = www_file(&s, "mid.bin", 45, 300 * KiB);
    int base = count_open_fds();
    static unsigned char buf[MiB];
    for (int i = 0; i < 6; i++) {
        int fd = tcp_connect("127.0.0.1", s.port, 2000);
        REQUIRE(fd >= 0);
        const char *req = GET("/static/big.bin");
        REQUIRE(write_all(fd, req, strlen(req), 2000) == (ssize_t)strlen(req));
        CHECK(read_exact(fd, buf, (size_t)(i + 1) * 100 * KiB, 5000) > 0);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    const char *req = GET("/static/mid.bin");
    REQUIRE(write_all(r.fd, req, strlen(req), 2000) == (ssize_t)strlen(req));
    expect_resp(&r, 200, mid, 300 * KiB, false);
    close(r.fd);
    int fds = base;
    for (int i = 0; i < 100 && (fds = count_open_fds()) > base; i++)
        sleep_ms(20);
    CHECK_LE_INT(fds, base);
    const char *names[] = {"big.bin", "mid.bin"};
    hsrv_stop(&s, names, 2);
    free(big);
    free(mid);
}

/* A body past async_file_min whose pages are all in the page cache goes out
 * with sendfile, which cannot block then and copies nothing; past 64 MiB the
 * cache is not asked and the body is read off the loop. The files live
 * on tmpfs, the one place a shared host cannot evict them from under the test;
 * out of the cache, the same bodies are read off the loop's thread
 * (http_async_file_pipelined_ranges: no sendfile at all). */
TEST(http_async_file_cached_goes_by_sendfile) {
    struct statfs sf;
    if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC)
        SKIP("no tmpfs at /dev/shm");
    static hsrv s;
    hsrv_start_in(&s, "/dev/shm", &(vx_http_opts){.async_file_min = 64 * KiB});
    enum { SIZE = 2 * MiB + 5 };
    unsigned char *big = www_file(&s, "big.bin", 46, SIZE);
    char path[128];
    snprintf(path, sizeof path, "%s/big.bin", s.root);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    if (cached_pages(fd) < 0)
        SKIP("no cachestat(2) before Linux 6.5: every large body is read off the loop");
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    const char *reqs = GET("/static/big.bin") "GET /static/big.bin HTTP/1.1\r\nHost: t\r\n"
                                              "Range: bytes=100000-\r\n\r\n";
    REQUIRE(write_all(r.fd, reqs, strlen(reqs), 2000) == (ssize_t)strlen(reqs));
    expect_resp(&r, 200, big, SIZE, false);
    expect_resp(&r, 206, big + 100000, SIZE - 100000, false);
    vx_stats st;
    server_stats(&s.srv, &st);
    harness_log("file_reads=%llu sendfile=%llu", (unsigned long long)st.file_reads,
                (unsigned long long)st.syscalls[VX_SYS_SENDFILE]);
    CHECK_EQ_INT(st.file_reads, 0);
    uint64_t sends = st.syscalls[VX_SYS_SENDFILE];
    CHECK(sends >= 2);
    /* Past 64 MiB the check would hold the loop too long: read off it. */
    enum { HUGE = 64 * MiB + 4097 };
    unsigned char *huge = www_file(&s, "huge.bin", 47, HUGE);
    const char *req = GET("/static/huge.bin");
    REQUIRE(write_all(r.fd, req, strlen(req), 2000) == (ssize_t)strlen(req));
    expect_resp(&r, 200, huge, HUGE, false);
    server_stats(&s.srv, &st);
    harness_log("past 64 MiB: file_reads=%llu sendfile=%llu", (unsigned long long)st.file_reads,
                (unsigned long long)st.syscalls[VX_SYS_SENDFILE]);
    CHECK(st.file_reads >= HUGE / (256 * KiB));
    CHECK_EQ_INT(st.syscalls[VX_SYS_SENDFILE], sends);
    close(fd);
    close(r.fd);
    const char *names[] = {"big.bin", "huge.bin"};
    hsrv_stop(&s, names, 2);
    free(big);
    free(huge);
}

/* 64 pipelined requests for a 20 KiB file in one write (above the size that
 * is copied in with the head, so each one is a queued file segment): the
 * connection holds a bounded number of queued files at a time (the rest of
 * the batch waits for the drain), and every response still arrives. */
TEST(http_pipelined_files_bounded_fds) {
    static hsrv s;
    hsrv_start(&s);
    enum { FSIZE = 20 * KiB };
    unsigned char *small = www_file(&s, "one.txt", 20, FSIZE);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    enum { N = 64 };
    static char batch[N * 64];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(batch + n, sizeof batch - n, GET("/static/one.txt"));
    int base = count_open_fds();
    REQUIRE(write_all(r.fd, batch, n, 2000) == (ssize_t)n);
    for (int i = 0; i < N; i++)
        expect_resp(&r, 200, small, FSIZE, false);
    int extra = atomic_load(&s.max_fds) - base;
    harness_log("at most %d fds more than before the batch", extra);
    CHECK_LE_INT(extra, 20);
    close(r.fd);
    const char *names[] = {"one.txt"};
    hsrv_stop(&s, names, 1);
    free(small);
}

/* A static file truncated mid-response: the promised length cannot be kept,
 * so the connection is aborted (the client sees a short body, then EOF) and
 * the reason logged; start is hsrv_start (sendfile) or hsrv_start_async
 * (read off the loop's thread: what was read goes out first). */
static void truncated_static_once(void (*start)(hsrv *), const char *logline) {
    vx_log_set(capture_log, NULL, VX_LOG_WARN);
    static hsrv s;
    start(&s);
    unsigned char *big = www_file(&s, "big.bin", 30, 32 * MiB);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    const char *req = GET("/static/big.bin");
    REQUIRE(write_all(r.fd, req, strlen(req), 2000) == (ssize_t)strlen(req));
    char head[2048];
    long long clen;
    CHECK_EQ_INT(rd_head(&r, head, sizeof head, &clen), 200);
    CHECK_EQ_INT(clen, 32 * MiB);
    sleep_ms(200);
    char path[128];
    snprintf(path, sizeof path, "%s/big.bin", s.root);
    REQUIRE(truncate(path, MiB) == 0);
    unsigned char *got = malloc(32 * MiB);
    REQUIRE(got);
    size_t k = rd_body(&r, got, 32 * MiB);
    harness_log("body: %zu of %u bytes", k, 32 * MiB);
    CHECK(k < 32 * MiB);
    CHECK(memcmp(got, big, MIN_SZ(k, MiB)) == 0); /* past the new end: see above */
    CHECK(logged(logline));
    close(r.fd);
    const char *names[] = {"big.bin"};
    hsrv_stop(&s, names, 1);
    vx_log_set(NULL, NULL, VX_LOG_INFO);
    free(got);
    free(big);
}

TEST(http_truncated_static_aborts) {
    truncated_static_once(hsrv_start, "short of the range queued");
}

TEST(http_async_file_truncated_closes_and_logs) {
    truncated_static_once(hsrv_start_async, "file body ends");
}

/* Small files are read in behind their head (one send, the fd closed at
 * once); one whose file ends before the length announced sends what it had,
 * logs why and closes: the client sees a short body, then EOF. */
TEST(http_small_file_short_closes_and_logs) {
    vx_log_set(capture_log, NULL, VX_LOG_WARN);
    static hsrv s;
    hsrv_start(&s);
    unsigned char *data = www_file(&s, "short.txt", 40, 40);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    const char *req = GET("/short") GET("/plaintext");
    REQUIRE(write_all(r.fd, req, strlen(req), 2000) == (ssize_t)strlen(req));
    char head[2048];
    long long clen;
    CHECK_EQ_INT(rd_head(&r, head, sizeof head, &clen), 200);
    CHECK_EQ_INT(clen, 100);
    unsigned char got[128];
    size_t k = rd_body(&r, got, 100);
    CHECK_EQ_INT(k, 40);
    CHECK(memcmp(got, data, 40) == 0);
    CHECK(!rd_more(&r)); /* EOF: the pipelined request behind it is not answered */
    CHECK_EQ_STR(vx_err_name(atomic_load(&s.short_rc)), "ENODATA");
    CHECK(logged("bytes short of the 100 announced"));
    close(r.fd);
    const char *names[] = {"short.txt"};
    hsrv_stop(&s, names, 1);
    vx_log_set(NULL, NULL, VX_LOG_INFO);
    free(data);
}

/* Names are opened beneath the root (openat2 RESOLVE_BENEATH): a symbolic
 * link that stays inside is followed, one that leads out (absolute,
 * relative, or through a linked directory) is a 404, and so are a
 * directory and a FIFO — which must not block the loop thread waiting for
 * a writer: the request behind it is answered. */
TEST(http_static_links_beneath_root) {
    static hsrv s;
    hsrv_start(&s);
    unsigned char *a = www_file(&s, "a.txt", 50, 50);
    char outside[96], path[160];
    snprintf(outside, sizeof outside, "%s-outside.txt", s.root); /* a sibling of the root */
    int ofd = open(outside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(ofd >= 0 && write(ofd, "secret", 6) == 6);
    close(ofd);
    const char *base = strrchr(outside, '/') + 1;
    REQUIRE(mkdirat(s.root_fd, "sub", 0755) == 0);
    REQUIRE(symlinkat("a.txt", s.root_fd, "in-link") == 0);
    REQUIRE(symlinkat("../a.txt", s.root_fd, "sub/up-link") == 0);
    REQUIRE(symlinkat(outside, s.root_fd, "abs-out") == 0);
    snprintf(path, sizeof path, "../%s", base);
    REQUIRE(symlinkat(path, s.root_fd, "rel-out") == 0);
    REQUIRE(symlinkat("/tmp", s.root_fd, "dir-out") == 0);
    REQUIRE(mkfifoat(s.root_fd, "fifo", 0644) == 0);
    static rd r;
    r.fd = tcp_connect("127.0.0.1", s.port, 2000);
    REQUIRE(r.fd >= 0);
    char batch[1024];
    int n = snprintf(
        batch, sizeof batch,
        GET("/static/in-link") GET("/static/sub/up-link") GET("/static/abs-out")
            GET("/static/rel-out") "GET /static/dir-out/%s HTTP/1.1\r\nHost: t\r\n\r\n" GET(
                "/static/fifo") GET("/static/sub") GET("/static/a.txt"),
        base);
    REQUIRE(write_all(r.fd, batch, (size_t)n, 2000) == n);
    const unsigned char nf[] = "404 Not Found\n";
    if (have_openat2()) { /* links inside are followed */
        expect_resp(&r, 200, a, 50, false);
        expect_resp(&r, 200, a, 50, false);
    } else { /* the fallback walk refuses every link (valgrind has no openat2) */
        harness_log("no openat2: links inside the root are refused too");
        expect_resp(&r, 404, nf, 14, false);
        expect_resp(&r, 404, nf, 14, false);
    }
    for (int i = 0; i < 5; i++) /* abs-out, rel-out, dir-out/..., fifo, sub */
        expect_resp(&r, 404, nf, 14, false);
    expect_resp(&r, 200, a, 50, false);
    close(r.fd);
    const char *names[] = {"a.txt",   "in-link", "sub/up-link", "abs-out",
                           "rel-out", "dir-out", "fifo"};
    for (int i = 0; i < 7; i++)
        unlinkat(s.root_fd, names[i], 0);
    unlinkat(s.root_fd, "sub", AT_REMOVEDIR);
    hsrv_stop(&s, NULL, 0);
    unlink(outside);
    free(a);
}
