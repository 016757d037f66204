/* Fault injection, once per backend (VX_BACKEND): what a full fd table and
 * hostile or broken peers do to the HTTP server (a vortex loop in a thread,
 * clients are plain sockets here). Each case injects one kind of fault and
 * asserts that the server survives it, counts it, keeps answering the other
 * clients byte-exactly, and frees everything: no connection left open and no
 * allocation left (a counting allocator hook wraps libc for the whole case, so
 * the plain build checks leaks too, not only the ASan pass).
 *
 * Time only ever appears as a bound that turns a hang into a failure, or as a
 * lower bound that the server's own timers guarantee (a timeout that fires
 * early is a bug, whatever the machine's speed).
 *
 * What exists elsewhere and is not repeated here: EMFILE on the echo path with
 * the "no spinning" check (test-emfile.c), a peer reset and a slow reader on the
 * echo path (test-echo.c), the basic 400/414/431/413/408 answers (test-http.c
 * limits, slowloris_408), and the exact parser limits (unit/test-http-parse.c). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ------------------------------------------------- allocation and log hooks */

/* Live allocations of the library: what it allocated minus what it freed.
 * Every thread of the case allocates through here, hence the atomics. */
static atomic_long live_allocs;
static atomic_ullong total_allocs;

static void *counting_realloc(void *p, size_t size, void *ud) {
    (void)ud;
    if (size == 0) {
        if (p) {
            free(p);
            atomic_fetch_sub(&live_allocs, 1);
        }
        return NULL;
    }
    void *q = realloc(p, size);
    if (q && !p) {
        atomic_fetch_add(&live_allocs, 1);
        atomic_fetch_add(&total_allocs, 1);
    }
    return q;
}

/* Log lines the library wrote, from the loop thread. */
static struct {
    pthread_mutex_t mu;
    int lines, n408, emfile;
    char first408[200], first_emfile[200];
} logs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void capture_log(int level, const char *msg, void *ud) {
    (void)level;
    (void)ud;
    pthread_mutex_lock(&logs.mu);
    logs.lines++;
    if (strstr(msg, "http: 408") && logs.n408++ == 0)
        snprintf(logs.first408, sizeof logs.first408, "%s", msg);
    if (strstr(msg, "EMFILE") && logs.emfile++ == 0)
        snprintf(logs.first_emfile, sizeof logs.first_emfile, "%s", msg);
    pthread_mutex_unlock(&logs.mu);
}

static int log_count(int *field) {
    pthread_mutex_lock(&logs.mu);
    int n = *field;
    pthread_mutex_unlock(&logs.mu);
    return n;
}

/* ---------------------------------------------------------------- payloads */

/* Byte i of every large body: the top byte of a multiplicative hash, whose
 * period (2^56) no lost, repeated or reordered piece can hide in. */
static inline unsigned char pat(uint64_t i) {
    return (unsigned char)((i * 0x9e3779b97f4a7c15ull) >> 56);
}

static void pat_fill(unsigned char *p, uint64_t off, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = pat(off + i);
}

#define BLOB_SIZE (4 * MiB)
static unsigned char blob[BLOB_SIZE]; /* /blob: one vx_http_respond of all of it */

/* -------------------------------------------------------------- the server */

#define BIG_PIECE (16 * KiB)
#define BIG_SLOTS 256
#define HIGH_WATER (256 * KiB) /* what vx_http_attach sets and vx_http_congested uses */

typedef struct fsrv fsrv;

/* State of one streamed /big response (loop thread only). A response that a
 * reset ended keeps its slot: the drain callback that would free it never
 * comes, and the slots are enough for one case. */
typedef struct big {
    fsrv *fs;
    uint64_t off, len;
    bool used;
} big;

struct fsrv {
    server srv;
    vx_http *http;
    vx_listener *l;
    uint16_t port;
    atomic_size_t max_queued; /* most output queued on a /big connection */
    atomic_int bigs_started, bigs_done;
    big bigs[BIG_SLOTS];
};

static void h_plain(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, "Content-Type: text/plain\r\n", "Hello, World!", 13);
}

static void h_echo(vx_http_req *r, void *d) {
    (void)d;
    size_t n;
    const char *b = vx_http_req_body(r, &n);
    vx_http_respond(r, 200, NULL, b, n);
}

static void h_blob(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, NULL, blob, BLOB_SIZE);
}

/* Write /big while the connection is not congested; the drain callback goes on. */
static void big_pump(vx_http_req *r, void *d) {
    static _Thread_local unsigned char piece[BIG_PIECE];
    big *b = d;
    while (b->off < b->len && !vx_http_congested(r)) {
        size_t n = (size_t)min_u64(b->len - b->off, BIG_PIECE);
        pat_fill(piece, b->off, n);
        if (vx_http_write(r, piece, n) < 0) {
            b->used = false;
            return;
        }
        b->off += n;
        size_t q = vx_conn_queued(vx_http_req_conn(r)), m = atomic_load(&b->fs->max_queued);
        while (q > m && !atomic_compare_exchange_weak(&b->fs->max_queued, &m, q))
            ;
    }
    if (b->off == b->len) {
        b->used = false;
        atomic_fetch_add(&b->fs->bigs_done, 1);
        vx_http_end(r);
    }
}

/* GET /big?n=BYTES: a streamed pattern body of n bytes with Content-Length. */
static void h_big(vx_http_req *r, void *d) {
    fsrv *fs = d;
    char num[32];
    uint64_t n = vx_http_req_query_get(r, "n", num, sizeof num) > 0 ? strtoull(num, NULL, 10) : 0;
    big *b = NULL;
    for (int i = 0; i < BIG_SLOTS && !b; i++)
        if (!fs->bigs[i].used)
            b = &fs->bigs[i];
    if (!b) {
        vx_http_respond(r, 503, NULL, "no slot\n", 8);
        return;
    }
    *b = (big){.fs = fs, .len = n, .used = true};
    atomic_fetch_add(&fs->bigs_started, 1);
    if (vx_http_begin(r, 200, "Content-Type: application/octet-stream\r\n", (int64_t)n) < 0) {
        b->used = false;
        return;
    }
    vx_http_on_drain(r, big_pump, b);
    big_pump(r, b);
}

static int fsrv_setup(vx_loop *loop, void *arg) {
    fsrv *fs = arg;
    vx_listen_opts o = {.host = "127.0.0.1"};
    int rc = vx_listen(loop, &o, vx_http_on_accept, fs->http, &fs->l);
    if (rc == 0)
        fs->port = vx_listener_port(fs->l);
    return rc;
}

/* Hooks first (before any loop exists), then the server. header_timeout_ms 0:
 * the default. */
static void fsrv_start(fsrv *fs, uint64_t header_timeout_ms) {
    memset(fs, 0, sizeof *fs);
    atomic_store(&live_allocs, 0);
    atomic_store(&total_allocs, 0);
    vx_allocator_set(counting_realloc, NULL);
    vx_log_set(capture_log, NULL, VX_LOG_INFO);
    pat_fill(blob, 0, BLOB_SIZE);
    vx_http_opts o = {.max_body = 1 * MiB, .header_timeout_ms = header_timeout_ms};
    REQUIRE_OK(vx_http_new(&fs->http, &o));
    REQUIRE_OK(vx_http_route(fs->http, "GET", "/plaintext", 0, h_plain, NULL, NULL));
    REQUIRE_OK(vx_http_route(fs->http, "POST", "/echo", 0, h_echo, NULL, NULL));
    REQUIRE_OK(vx_http_route(fs->http, "GET", "/blob", 0, h_blob, NULL, NULL));
    REQUIRE_OK(vx_http_route(fs->http, "GET", "/big", 0, h_big, NULL, fs));
    int rc = server_start(&fs->srv, fsrv_setup, fs);
    if (rc < 0)
        SKIP("server: %s", vx_err_name(rc));
}

static uint64_t http_conns(fsrv *fs) {
    static vx_http_stats st; /* 4.8 KiB: off the stack */
    vx_http_get_stats(fs->http, &st);
    return st.conns;
}

struct conns_wait {
    fsrv *fs;
    uint64_t n;
};

static bool conns_reached(void *arg) {
    struct conns_wait *w = arg;
    return http_conns(w->fs) == w->n;
}

static bool wait_http_conns(fsrv *fs, uint64_t n, int timeout_ms) {
    struct conns_wait w = {fs, n};
    return wait_until(conns_reached, &w, timeout_ms);
}

/* Every client closed: the server must drop to no connection, and once the
 * loop and the server are freed nothing the library allocated may be left. */
static void fsrv_stop(fsrv *fs) {
    CHECK_MSG(wait_http_conns(fs, 0, 5000), "%llu HTTP connections left open",
              (unsigned long long)http_conns(fs));
    vx_stats st;
    server_stats(&fs->srv, &st);
    CHECK_EQ_INT(st.conns_live, 0);
    CHECK_OK(server_stop(&fs->srv));
    vx_http_free(fs->http);
    long live = atomic_load(&live_allocs);
    harness_log("allocations: %llu in all, %ld left after freeing the server",
                (unsigned long long)atomic_load(&total_allocs), live);
    CHECK_EQ_INT(live, 0);
    vx_log_set(NULL, NULL, VX_LOG_INFO);
}

/* ------------------------------------------------------------- the clients */

static int conn_to(fsrv *fs) {
    int fd = tcp_connect("127.0.0.1", fs->port, 5000);
    REQUIRE_OK(fd);
    return fd;
}

typedef struct hresp {
    int status;
    char head[2048];
    int64_t clen; /* -1: none */
    bool close;   /* Connection: close */
} hresp;

/* Read one response head, byte by byte so that nothing past it is taken. */
static int read_head(int fd, hresp *h, int timeout_ms) {
    size_t n = 0;
    memset(h, 0, sizeof *h);
    h->clen = -1;
    while (n < sizeof h->head - 1) {
        if (read_exact(fd, h->head + n, 1, timeout_ms) != 1)
            return -1;
        n++;
        if (n >= 4 && !memcmp(h->head + n - 4, "\r\n\r\n", 4))
            break;
    }
    if (sscanf(h->head, "HTTP/1.1 %d ", &h->status) != 1)
        return -1;
    const char *cl = strcasestr(h->head, "\r\nContent-Length: ");
    if (cl)
        h->clen = strtoll(cl + 18, NULL, 10);
    h->close = strcasestr(h->head, "\r\nConnection: close\r\n") != NULL;
    return 0;
}

/* Read n body bytes, comparing with want (or with the pattern from byte 0 when
 * want is NULL). true when every byte came and matched. */
static bool read_body(int fd, const void *want, uint64_t n, int timeout_ms) {
    static _Thread_local unsigned char buf[64 * KiB], exp[64 * KiB];
    uint64_t got = 0;
    while (got < n) {
        size_t k = (size_t)min_u64(n - got, sizeof buf);
        ssize_t r = read_exact(fd, buf, k, timeout_ms);
        if (r != (ssize_t)k) {
            harness_log("body: %lld at offset %llu of %llu (%s)", (long long)r,
                        (unsigned long long)got, (unsigned long long)n,
                        r < 0 ? vx_err_name((int)r) : "EOF");
            return false;
        }
        const unsigned char *w = want ? (const unsigned char *)want + got : exp;
        if (!want)
            pat_fill(exp, got, k);
        if (memcmp(buf, w, k) != 0) {
            size_t i = 0;
            while (buf[i] == w[i])
                i++;
            harness_log("body: wrong byte at offset %llu of %llu", (unsigned long long)(got + i),
                        (unsigned long long)n);
            return false;
        }
        got += k;
    }
    return true;
}

/* A whole response: status, Content-Length == len, body bytes == body (NULL:
 * the pattern). */
static bool expect_resp(int fd, int status, const void *body, uint64_t len, hresp *h) {
    hresp local;
    if (!h)
        h = &local;
    if (read_head(fd, h, 5000) < 0) {
        harness_log("no response head (wanted %d)", status);
        return false;
    }
    if (h->status != status || h->clen != (int64_t)len) {
        harness_log("got %d with Content-Length %lld, wanted %d with %llu", h->status,
                    (long long)h->clen, status, (unsigned long long)len);
        return false;
    }
    return read_body(fd, body, len, 5000);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static bool send_str(int fd, const char *s) {
    size_t n = strlen(s);
    return write_all(fd, s, n, 5000) == (ssize_t)n;
}

/* One keep-alive GET /plaintext on fd, byte-exact. */
static bool get_plain(int fd) {
    hresp h;
    return send_str(fd, GET("/plaintext")) && expect_resp(fd, 200, "Hello, World!", 13, &h) &&
           !h.close;
}

/* One POST /echo of len random bytes on fd, byte-exact. */
static bool post_echo(int fd, rng *r, size_t len) {
    unsigned char *body = rng_alloc(r, len);
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             len);
    bool ok = send_str(fd, head) && write_all(fd, body, len, 5000) == (ssize_t)len &&
              expect_resp(fd, 200, body, len, NULL);
    free(body);
    return ok;
}

/* A refusal: status, Connection: close, the text body, then EOF and nothing else. */
static bool expect_refusal(int fd, int status) {
    char body[64];
    hresp h;
    int n = snprintf(body, sizeof body, "%d ", status);
    if (read_head(fd, &h, 5000) < 0) {
        harness_log("no response head (wanted %d)", status);
        return false;
    }
    if (h.status != status || !h.close || h.clen <= n || h.clen >= (int64_t)sizeof body) {
        harness_log("got %d (close %d, Content-Length %lld), wanted %d with Connection: close",
                    h.status, h.close, (long long)h.clen, status);
        return false;
    }
    char got[64];
    if (read_exact(fd, got, (size_t)h.clen, 5000) != h.clen || memcmp(got, body, (size_t)n) != 0 ||
        got[h.clen - 1] != '\n') {
        harness_log("bad body after %d", status);
        return false;
    }
    int e = wait_eof(fd, 5000);
    if (e != 0)
        harness_log("after the %d: wait_eof %d (%s)", status, e, e < 0 ? vx_err_name(e) : "data");
    return e == 0;
}

struct stat_wait {
    fsrv *fs;
    uint64_t bytes_in;
};

static bool bytes_in_reached(void *arg) {
    struct stat_wait *w = arg;
    vx_stats st;
    server_stats(&w->fs->srv, &st);
    return st.bytes_in >= w->bytes_in;
}

/* Wait until the server has read `more` bytes beyond `base` (a sync point:
 * the fault must hit a request the server really holds half of). */
static bool wait_server_read(fsrv *fs, uint64_t base, uint64_t more) {
    struct stat_wait w = {fs, base + more};
    return wait_until(bytes_in_reached, &w, 5000);
}

static uint64_t server_errors(fsrv *fs, int kind) {
    vx_stats st;
    server_stats(&fs->srv, &st);
    return st.errors[kind];
}

static uint64_t server_bytes_in(fsrv *fs) {
    vx_stats st;
    server_stats(&fs->srv, &st);
    return st.bytes_in;
}

static bool is_select(fsrv *fs) { return !strcmp(vx_loop_backend(fs->srv.loop), "select"); }

/* ------------------------------------------ accept storm at fd exhaustion */

#define KEEPALIVE 4
#define STORM 200
#define ROOM 8 /* free fd numbers left under the lowered limit */

/* The smallest soft limit that leaves exactly `room` free fd numbers below it. */
static int limit_with_room(int room) {
    int free_below = 0;
    for (int fd = 0; fd < 65536; fd++) {
        if (free_below == room)
            return fd;
        free_below += fcntl(fd, F_GETFD) < 0;
    }
    return 65536;
}

static bool emfile_seen(void *arg) { return server_errors(arg, VX_ERRK_ACCEPT_EMFILE) > 0; }

/* A new listener for the storm (loop thread). io_uring reads RLIMIT_NOFILE
 * when an accept is submitted, and a multishot accept armed before the limit
 * dropped would go on with the old one: the storm needs one armed after. */
static void relisten(void *arg) {
    fsrv *fs = arg;
    vx_loop *loop = fs->srv.loop;
    vx_listener_close(fs->l);
    fs->l = NULL;
    fs->port = 0;
    vx_listen_opts o = {.host = "127.0.0.1"};
    if (vx_listen(loop, &o, vx_http_on_accept, fs->http, &fs->l) == 0)
        fs->port = vx_listener_port(fs->l);
}

/* The harness forked this case, so lowering RLIMIT_NOFILE affects only this
 * process: server thread and clients alike. The storm's sockets exist before
 * the limit drops (connect() takes no fd), so only the server runs out. */
TEST(accept_storm_at_fd_limit) {
    /* valgrind keeps a lowered RLIMIT_NOFILE to itself and closes the fds the
     * kernel hands out above it, faking EMFILE after the accept succeeded. */
    if (getenv("VX_VALGRIND"))
        SKIP("valgrind emulates RLIMIT_NOFILE");
    static fsrv fs;
    fsrv_start(&fs, 0);
    rng r;
    rng_seed(&r, 11);
    int ka[KEEPALIVE], storm[STORM];
    for (int i = 0; i < KEEPALIVE; i++) {
        ka[i] = conn_to(&fs);
        CHECK(get_plain(ka[i]));
    }
    for (int i = 0; i < STORM; i++) {
        storm[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(storm[i] >= 0);
    }
    struct rlimit old, rl;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    rl = old;
    rl.rlim_cur = (rlim_t)limit_with_room(ROOM);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    server_call(&fs.srv, relisten, &fs);
    REQUIRE(fs.port != 0);

    /* the kernel completes every handshake (backlog 4096); each client sends
     * a whole request at once */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(fs.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint64_t t0 = now_ms();
    for (int i = 0; i < STORM; i++) {
        int rc = connect(storm[i], (struct sockaddr *)&a, sizeof a);
        CHECK(rc == 0 || errno == EINPROGRESS);
    }
    for (int i = 0; i < STORM; i++)
        CHECK(send_str(storm[i], GET("/plaintext")));
    CHECK_MSG(wait_until(emfile_seen, &fs, 5000), "the server never hit EMFILE (limit %llu)",
              (unsigned long long)rl.rlim_cur);

    /* at the limit, the connections it already holds are served */
    int served = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < KEEPALIVE; i++)
            served += get_plain(ka[i]);
    for (int i = 0; i < KEEPALIVE; i++)
        served += post_echo(ka[i], &r, 64 * KiB);
    CHECK_EQ_INT(served, 4 * KEEPALIVE);
    uint64_t emfile_at_limit = server_errors(&fs, VX_ERRK_ACCEPT_EMFILE);

    /* fds free up as answered clients leave: in the end every client of the
     * storm has its answer, whatever order the server took them in */
    static bool done[STORM];
    struct pollfd pf[STORM];
    int idx[STORM], answered = 0, bad = 0;
    uint64_t deadline = now_ms() + 20000;
    while (answered + bad < STORM && now_ms() < deadline) {
        int n = 0;
        for (int i = 0; i < STORM; i++)
            if (!done[i]) {
                pf[n] = (struct pollfd){.fd = storm[i], .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(pf, (nfds_t)n, 200) <= 0)
            continue;
        for (int j = 0; j < n; j++) {
            if (!pf[j].revents)
                continue;
            int i = idx[j];
            if (expect_resp(storm[i], 200, "Hello, World!", 13, NULL))
                answered++;
            else
                bad++;
            close(storm[i]);
            done[i] = true;
        }
    }
    uint64_t took = now_ms() - t0;
    for (int i = 0; i < STORM; i++)
        if (!done[i])
            close(storm[i]);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(answered, STORM);

    /* recovered: a new client, and the old ones */
    int fd = conn_to(&fs);
    CHECK(get_plain(fd));
    close(fd);
    for (int i = 0; i < KEEPALIVE; i++) {
        CHECK(get_plain(ka[i]));
        close(ka[i]);
    }
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    vx_stats st;
    server_stats(&fs.srv, &st);
    harness_log("limit %llu (room %d): %d clients answered in %llu ms; accept_emfile %llu "
                "(%llu when the held clients were served), accepts %llu",
                (unsigned long long)rl.rlim_cur, ROOM, answered, (unsigned long long)took,
                (unsigned long long)st.errors[VX_ERRK_ACCEPT_EMFILE],
                (unsigned long long)emfile_at_limit, (unsigned long long)st.accepts);
    CHECK(st.errors[VX_ERRK_ACCEPT_EMFILE] > 0);
    CHECK_EQ_INT(st.accepts, KEEPALIVE + STORM + 1);
    CHECK_MSG(log_count(&logs.emfile) > 0, "no log line names EMFILE");
    harness_log("log: %s", logs.first_emfile);
    fsrv_stop(&fs);
}

/* ------------------------------------------------------------ peer resets */

/* close_rst (SO_LINGER 0) at each point of an exchange. A bystander on a
 * keep-alive connection is served between and after the resets. */
TEST(resets_mid_request_and_response) {
    static fsrv fs;
    fsrv_start(&fs, 0);
    rng r;
    rng_seed(&r, 12);
    int by = conn_to(&fs);
    CHECK(get_plain(by));
    uint64_t reset0 = server_errors(&fs, VX_ERRK_RESET);
    int resets = 0;
    unsigned char *body = rng_alloc(&r, 200 * KiB);
    char head[256];

    /* 1: in the middle of a request head */
    int fd = conn_to(&fs);
    const char *part = "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Half: abc";
    uint64_t in0 = server_bytes_in(&fs);
    CHECK(send_str(fd, part));
    CHECK(wait_server_read(&fs, in0, strlen(part)));
    CHECK(get_plain(by));
    close_rst(fd);
    resets++;
    CHECK_MSG(wait_http_conns(&fs, 1, 5000), "reset mid-head: connection not closed");
    CHECK(get_plain(by));

    /* 2: in the middle of a Content-Length body */
    fd = conn_to(&fs);
    int n = snprintf(head, sizeof head,
                     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n", 200 * KiB);
    in0 = server_bytes_in(&fs);
    CHECK(send_str(fd, head));
    CHECK_EQ_INT(write_all(fd, body, 100 * KiB, 5000), 100 * KiB);
    CHECK(wait_server_read(&fs, in0, (uint64_t)n + 100 * KiB));
    CHECK(post_echo(by, &r, 32 * KiB));
    close_rst(fd);
    resets++;
    CHECK_MSG(wait_http_conns(&fs, 1, 5000), "reset mid-body: connection not closed");

    /* 3: in the middle of a chunk */
    fd = conn_to(&fs);
    const char *ch = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "4000\r\n";
    in0 = server_bytes_in(&fs);
    CHECK(send_str(fd, ch));
    CHECK_EQ_INT(write_all(fd, body, 8 * KiB, 5000), 8 * KiB);
    CHECK(wait_server_read(&fs, in0, strlen(ch) + 8 * KiB));
    close_rst(fd);
    resets++;
    CHECK_MSG(wait_http_conns(&fs, 1, 5000), "reset mid-chunk: connection not closed");
    CHECK(get_plain(by));

    /* 4: in the middle of a streamed response, after 1 MiB of it was read */
    fd = conn_to(&fs);
    hresp h;
    CHECK(send_str(fd, GET("/big?n=67108864")));
    CHECK(read_head(fd, &h, 5000) == 0 && h.status == 200 && h.clen == 64 * MiB);
    CHECK(read_body(fd, NULL, 1 * MiB, 5000));
    close_rst(fd);
    resets++;
    CHECK_MSG(wait_http_conns(&fs, 1, 5000), "reset mid-response: connection not closed");
    CHECK(post_echo(by, &r, 100 * KiB));

    /* 5: in the middle of one large vx_http_respond */
    fd = conn_to(&fs);
    CHECK(send_str(fd, GET("/blob")));
    CHECK(read_head(fd, &h, 5000) == 0 && h.status == 200 && h.clen == BLOB_SIZE);
    CHECK(read_body(fd, blob, 256 * KiB, 5000));
    close_rst(fd);
    resets++;
    CHECK_MSG(wait_http_conns(&fs, 1, 5000), "reset mid-blob: connection not closed");
    CHECK(get_plain(by));

    /* 6: a response never read, reset once the server is blocked writing it */
    atomic_store(&fs.max_queued, 0);
    fd = conn_to(&fs);
    CHECK(send_str(fd, GET("/big?n=67108864")));
    bool blocked = false;
    uint64_t until = now_ms() + 5000;
    while (!(blocked = atomic_load(&fs.max_queued) > HIGH_WATER) && now_ms() < until)
        sleep_ms(5);
    CHECK_MSG(blocked, "the server never filled its output queue");
    close_rst(fd);
    resets++;
    CHECK_MSG(wait_http_conns(&fs, 1, 5000), "reset while blocked: connection not closed");
    CHECK(get_plain(by));
    CHECK(post_echo(by, &r, 1 * KiB));

    uint64_t counted = server_errors(&fs, VX_ERRK_RESET) - reset0;
    harness_log("%d resets injected, errors[reset] +%llu", resets, (unsigned long long)counted);
    CHECK_EQ_INT(counted, resets);
    close(by);
    free(body);
    fsrv_stop(&fs);
}

/* --------------------------------------------------------------- slowloris */

#define SLOW_N 1000
/* select: both ends of every connection are fds of this process, and select
 * refuses fds >= FD_SETSIZE (1024) by design */
#define SLOW_N_SELECT 400
#define HEADER_TIMEOUT_MS 2000
#define SLOW_BUF 512

/* The whole 408 refusal, then nothing: status line, Connection: close, and
 * the 20-byte text body ending the data. */
static bool is_408(const char *b, size_t n) {
    static const char tail[] = "\r\n\r\n408 Request Timeout\n";
    const size_t tl = sizeof tail - 1;
    char s[SLOW_BUF + 1];
    if (n <= tl || n > SLOW_BUF)
        return false;
    memcpy(s, b, n);
    s[n] = 0;
    return !strncmp(s, "HTTP/1.1 408 Request Timeout\r\n", 30) &&
           strstr(s, "\r\nConnection: close\r\n") && strstr(s, "\r\nContent-Length: 20\r\n") &&
           !memcmp(s + n - tl, tail, tl) && strstr(s, "\r\n\r\n") == s + n - tl;
}

TEST(slowloris_closed_at_header_timeout) {
    static fsrv fs;
    static int fds[SLOW_N];
    static uint64_t first[SLOW_N];
    static char buf[SLOW_N][SLOW_BUF];
    static size_t blen[SLOW_N];
    static bool done[SLOW_N];
    static struct pollfd pf[SLOW_N];
    static int idx[SLOW_N];
    fsrv_start(&fs, HEADER_TIMEOUT_MS);
    int n = is_select(&fs) ? SLOW_N_SELECT : SLOW_N;
    if (n != SLOW_N)
        harness_log("select: %d slow connections, not %d (2 fds each here, all under "
                    "FD_SETSIZE)",
                    n, SLOW_N);
    for (int i = 0; i < n; i++) {
        fds[i] = conn_to(&fs);
        REQUIRE_OK(set_nonblock(fds[i], true));
    }
    CHECK_MSG(wait_http_conns(&fs, (uint64_t)n, 10000), "only %llu of %d slow clients accepted",
              (unsigned long long)http_conns(&fs), n);
    int ka = conn_to(&fs);

    /* one byte a second from each, never a whole head */
    const char *drip = "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: 1\r\n";
    size_t k = 0;
    int ndone = 0, bad = 0, normal_ok = 0, normal_bad = 0;
    uint64_t t0 = now_ms(), last_tick = 0, last_normal = 0, min_ms = UINT64_MAX, max_ms = 0;
    uint64_t deadline = t0 + HEADER_TIMEOUT_MS + 8000; /* a hang detector, not a target */
    while (ndone < n && now_ms() < deadline) {
        if (drip[k] && (k == 0 || now_ms() - last_tick >= 1000)) {
            last_tick = now_ms();
            for (int i = 0; i < n; i++) {
                if (done[i])
                    continue;
                if (k == 0)
                    first[i] = now_ms();
                ssize_t w = send(fds[i], drip + k, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w; /* after the 408 the server discards what still comes */
            }
            k++;
        }
        if (now_ms() - last_normal >= 100) { /* normal clients meanwhile */
            get_plain(ka) ? normal_ok++ : normal_bad++;
            int fd = conn_to(&fs);
            get_plain(fd) ? normal_ok++ : normal_bad++;
            close(fd);
            last_normal = now_ms();
        }
        int np = 0;
        for (int i = 0; i < n; i++)
            if (!done[i]) {
                pf[np] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                idx[np++] = i;
            }
        if (poll(pf, (nfds_t)np, 10) <= 0)
            continue;
        for (int j = 0; j < np; j++) {
            int i = idx[j];
            if (!pf[j].revents)
                continue;
            ssize_t got = recv(fds[i], buf[i] + blen[i], SLOW_BUF - blen[i], 0);
            if (got > 0 && blen[i] + (size_t)got < SLOW_BUF) {
                blen[i] += (size_t)got;
                continue;
            }
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            uint64_t ms = now_ms() - first[i];
            if (got != 0 || !is_408(buf[i], blen[i])) {
                harness_log("slow client %d: %s after %zu bytes", i,
                            got < 0 ? strerror(errno)
                            : got   ? "too much data"
                                    : "not a 408",
                            blen[i]);
                bad++;
            }
            min_ms = ms < min_ms ? ms : min_ms;
            max_ms = ms > max_ms ? ms : max_ms;
            done[i] = true;
            ndone++;
            close(fds[i]);
        }
    }
    for (int i = 0; i < n; i++)
        if (!done[i])
            close(fds[i]);
    harness_log("%d slow clients: %d got 408 + EOF, %llu..%llu ms after their first byte "
                "(header timeout %d ms); %d normal requests served meanwhile",
                n, ndone - bad, (unsigned long long)min_ms, (unsigned long long)max_ms,
                HEADER_TIMEOUT_MS, normal_ok);
    CHECK_EQ_INT(ndone, n);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(normal_bad, 0);
    CHECK(normal_ok > 0);
    /* the server's own timer: it may not fire before the timeout, on any machine */
    CHECK_MSG(min_ms >= HEADER_TIMEOUT_MS, "a slow client got its 408 after %llu ms",
              (unsigned long long)min_ms);
    /* Logged with the reason, rate-limited (10 lines a second per thread): a
     * slowloris must not turn into a log flood. */
    int logged = log_count(&logs.n408);
    CHECK(logged >= 1);
    CHECK_LE_INT(logged, n < 40 ? n : 40);
    CHECK(strstr(logs.first408, "header timeout") != NULL);
    harness_log("log: %d lines, first: %s", logged, logs.first408);
    CHECK(get_plain(ka));
    close(ka);
    fsrv_stop(&fs);
}

/* ------------------------------------------------- clients that never read */

#define NOREAD_CLIENTS 8
#define NOREAD_BYTES (32 * MiB)

/* Resident set of this process (server and clients), KiB. */
static long rss_kib(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

struct stall {
    fsrv *fs;
    uint64_t out, since;
};

/* bytes_out did not move for 300 ms: every response waits for its reader. */
static bool stalled(void *arg) {
    struct stall *s = arg;
    vx_stats st;
    server_stats(&s->fs->srv, &st);
    if (st.bytes_out != s->out) {
        s->out = st.bytes_out;
        s->since = now_ms();
    }
    return now_ms() - s->since >= 300;
}

/* 8 clients ask for 32 MiB each and read nothing: the server must hold at
 * most its high-water mark (plus one piece) per connection, not the bodies. */
TEST(never_reading_clients_bounded) {
    static fsrv fs;
    fsrv_start(&fs, 0);
    int fd = conn_to(&fs); /* warm up: the caches, one whole streamed body */
    CHECK(send_str(fd, GET("/big?n=1048576")));
    CHECK(expect_resp(fd, 200, NULL, 1 * MiB, NULL));
    close(fd);
    long rss0 = rss_kib();
    int fds[NOREAD_CLIENTS];
    char req[64];
    snprintf(req, sizeof req, GET("/big?n=%u"), NOREAD_BYTES);
    for (int i = 0; i < NOREAD_CLIENTS; i++) {
        fds[i] = conn_to(&fs);
        CHECK(send_str(fds[i], req));
    }
    struct stall s = {&fs, 0, now_ms()};
    CHECK_MSG(wait_until(stalled, &s, 10000), "the server kept sending to clients that read "
                                              "nothing");
    long rss1 = rss_kib();
    size_t maxq = atomic_load(&fs.max_queued);
    harness_log("%d clients reading nothing of %u MiB each: server sent %llu bytes (kernel "
                "buffers), queued at most %zu per connection; RSS %ld -> %ld KiB",
                NOREAD_CLIENTS, NOREAD_BYTES / MiB, (unsigned long long)s.out, maxq, rss0, rss1);
    CHECK_EQ_INT(atomic_load(&fs.bigs_started), NOREAD_CLIENTS + 1);
    CHECK_LE_INT(maxq, HIGH_WATER + BIG_PIECE);
    CHECK(rss0 > 0 && rss1 > 0);
    CHECK_LE_INT(rss1 - rss0, 64 * 1024); /* the bodies would be 256 MiB */

    /* reading resumes: two take everything, byte-exact; the others leave
     * with unread data (their close is a reset) */
    for (int i = 0; i < NOREAD_CLIENTS; i++) {
        hresp h;
        CHECK(read_head(fds[i], &h, 5000) == 0 && h.status == 200 && h.clen == NOREAD_BYTES);
        CHECK(read_body(fds[i], NULL, i < 2 ? NOREAD_BYTES : 1 * MiB, 10000));
        close(fds[i]);
    }
    CHECK(atomic_load(&fs.bigs_done) >= 1 + 2);
    fsrv_stop(&fs);
}

/* --------------------------------------------------------- half-closed peers */

/* Send req, then shutdown(SHUT_WR) before reading a byte. */
static int send_then_fin(fsrv *fs, const char *req, const void *body, size_t blen) {
    int fd = conn_to(fs);
    CHECK(send_str(fd, req));
    if (blen)
        CHECK_EQ_INT(write_all(fd, body, blen, 5000), blen);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    return fd;
}

TEST(half_closed_peers_get_whole_responses) {
    static fsrv fs;
    fsrv_start(&fs, 0);
    rng r;
    rng_seed(&r, 13);
    unsigned char *body = rng_alloc(&r, 512 * KiB);
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
             512 * KiB);

    int fd = send_then_fin(&fs, GET("/plaintext"), NULL, 0);
    CHECK(expect_resp(fd, 200, "Hello, World!", 13, NULL));
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);

    fd = send_then_fin(&fs, head, body, 512 * KiB);
    CHECK(expect_resp(fd, 200, body, 512 * KiB, NULL));
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);

    fd = send_then_fin(&fs, GET("/big?n=8388608"), NULL, 0);
    CHECK(expect_resp(fd, 200, NULL, 8 * MiB, NULL));
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);

    fd = send_then_fin(&fs, GET("/blob"), NULL, 0);
    CHECK(expect_resp(fd, 200, blob, BLOB_SIZE, NULL));
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);

    /* a pipelined batch, a streamed response in the middle of it: the FIN
     * is there long before the requests behind that response are read */
    for (int i = 0; i < 3; i++) {
        fd = send_then_fin(&fs,
                           GET("/plaintext") GET("/big?n=1048576") "POST /echo HTTP/1.1\r\n"
                                                                   "Host: t\r\n"
                                                                   "Content-Length: 5\r\n\r\n"
                                                                   "hello" GET("/blob"),
                           NULL, 0);
        CHECK(expect_resp(fd, 200, "Hello, World!", 13, NULL));
        CHECK(expect_resp(fd, 200, NULL, 1 * MiB, NULL));
        CHECK(expect_resp(fd, 200, "hello", 5, NULL));
        CHECK(expect_resp(fd, 200, blob, BLOB_SIZE, NULL));
        CHECK_EQ_INT(wait_eof(fd, 5000), 0);
        close(fd);
    }

    /* FIN in the middle of a head: nothing to answer, the server just closes */
    fd = send_then_fin(&fs, "GET /plaintext HTTP/1.1\r\nHo", NULL, 0);
    CHECK_EQ_INT(wait_eof(fd, 5000), 0);
    close(fd);
    free(body);
    fsrv_stop(&fs);
}

/* ------------------------------------------------- garbage and binary input */

/* The start of a TLS 1.2 ClientHello (record, handshake header, version,
 * random, no session, two suites, null compression, SNI "localhost"). */
static const unsigned char client_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0x3d, 0x01, 0x00, 0x00, 0x39, 0x03, 0x03, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x00, 0x00,
    0x04, 0x13, 0x01, 0xc0, 0x2f, 0x01, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x0c,
    0x00, 0x00, 0x09, 'l',  'o',  'c',  'a',  'l',  'h',  'o',  's',  't'};

typedef struct garbage {
    const char *what;
    const void *p;
    size_t n;
    int status;
} garbage;

struct status_wait {
    fsrv *fs;
    int status;
    uint64_t n;
};

/* The counters are published every 250 ms and when the last connection goes. */
static bool status_reached(void *arg) {
    static vx_http_stats st;
    struct status_wait *w = arg;
    vx_http_get_stats(w->fs->http, &st);
    return st.status[w->status] >= w->n;
}

TEST(garbage_and_binary_input_refused) {
    static fsrv fs;
    fsrv_start(&fs, 0);
    rng r;
    rng_seed(&r, 14);
    static unsigned char rnd[8][4096], nuls[512];
    garbage g[32];
    int ng = 0;
    for (int i = 0; i < 8; i++) {
        size_t len = (size_t)rng_range(&r, 64, sizeof rnd[i]);
        rng_fill(&r, rnd[i], len);
        g[ng++] = (garbage){"random bytes", rnd[i], len, 400};
    }
    g[ng++] = (garbage){"NUL bytes", nuls, sizeof nuls, 400};
    static const char nul_in_value[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n";
    g[ng++] = (garbage){"NUL in a header value", nul_in_value, sizeof nul_in_value - 1, 400};
    g[ng++] = (garbage){"TLS ClientHello", client_hello, sizeof client_hello, 400};
    static const char ssh[] = "SSH-2.0-OpenSSH_9.6\r\n";
    g[ng++] = (garbage){"SSH banner", ssh, sizeof ssh - 1, 400};
    static const char bare_lf[] = "GET /plaintext HTTP/1.1\nHost: t\n\n";
    g[ng++] = (garbage){"bare LF", bare_lf, sizeof bare_lf - 1, 400};
    static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    g[ng++] = (garbage){"HTTP/2 preface", h2, sizeof h2 - 1, 505};
    static const char bad_chunk[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
                                    "chunked\r\n\r\nzz\r\n";
    g[ng++] = (garbage){"chunk size not hex", bad_chunk, sizeof bad_chunk - 1, 400};

    int refused = 0, n400 = 0;
    for (int i = 0; i < ng; i++) {
        int fd = conn_to(&fs);
        if (i % 2) /* every other one after a good request on the same connection */
            CHECK(get_plain(fd));
        CHECK_EQ_INT(write_all(fd, g[i].p, g[i].n, 5000), g[i].n);
        bool ok = expect_refusal(fd, g[i].status);
        CHECK_MSG(ok, "%s (%zu bytes): no %d then close", g[i].what, g[i].n, g[i].status);
        refused += ok;
        n400 += g[i].status == 400;
        close(fd);
    }
    harness_log("%d garbage inputs: %d refused then closed", ng, refused);
    CHECK_EQ_INT(refused, ng);
    struct status_wait w = {&fs, 400, (uint64_t)n400};
    CHECK(wait_until(status_reached, &w, 5000));
    static vx_http_stats st;
    vx_http_get_stats(fs.http, &st);
    CHECK_EQ_INT(st.status[400], n400);
    fsrv_stop(&fs);
}

/* ---------------------------------------------------------- oversized input */

#define ENDLESS_CAP (64 * MiB)

/* After prefix, send piece again and again until the server answers; the
 * bytes sent, or -1 when ENDLESS_CAP went out unanswered (the server buffers
 * without a limit). The kernel's socket buffers hold a few MiB at most. */
static int64_t send_until_answered(int fd, const char *prefix, const void *piece, size_t n) {
    if (!send_str(fd, prefix))
        return -1;
    uint64_t sent = strlen(prefix);
    set_nonblock(fd, true);
    while (sent < ENDLESS_CAP) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, 5000) <= 0)
            break;
        if (p.revents & POLLIN)
            break;
        ssize_t k = send(fd, piece, n, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            break; /* the answer, if any, is waiting to be read */
        if (k > 0)
            sent += (uint64_t)k;
    }
    set_nonblock(fd, false);
    return sent < ENDLESS_CAP ? (int64_t)sent : -1;
}

TEST(oversized_input_refused_early) {
    static fsrv fs;
    fsrv_start(&fs, 0);
    static char line[4096], chunk[16 * KiB + 16], fields[4096];
    memset(line, 'a', sizeof line);
    int cn = snprintf(chunk, sizeof chunk, "%x\r\n", 16 * KiB);
    memset(chunk + cn, 'c', 16 * KiB);
    memcpy(chunk + cn + 16 * KiB, "\r\n", 2);
    size_t chunk_len = (size_t)cn + 16 * KiB + 2;
    for (size_t i = 0; i + 8 <= sizeof fields; i += 8)
        memcpy(fields + i, "X-h: v\r\n", 8);
    struct {
        const char *what, *prefix;
        const void *piece;
        size_t n;
        int status;
        bool after_good; /* on a connection that was served first */
    } cases[] = {
        {"endless request line", "GET /", line, sizeof line, 414, false},
        {"endless request line, keep-alive", "GET /", line, sizeof line, 414, true},
        {"endless header value", "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Long: ", line,
         sizeof line, 431, false},
        {"endless header fields", "GET /plaintext HTTP/1.1\r\nHost: t\r\n", fields, sizeof fields,
         431, true},
        {"endless chunked body",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", chunk, chunk_len,
         413, false},
        {"Content-Length of 1 TiB",
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1099511627776\r\n\r\n", line,
         sizeof line, 413, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = conn_to(&fs);
        if (cases[i].after_good)
            CHECK(get_plain(fd));
        int64_t sent = send_until_answered(fd, cases[i].prefix, cases[i].piece, cases[i].n);
        harness_log("%s: answered after %lld bytes", cases[i].what, (long long)sent);
        CHECK_MSG(sent >= 0, "%s: %u MiB sent and no answer", cases[i].what, ENDLESS_CAP / MiB);
        CHECK_MSG(expect_refusal(fd, cases[i].status), "%s: no %d then close", cases[i].what,
                  cases[i].status);
        close(fd);
    }
    fsrv_stop(&fs);
}

/* ---------------------------------------------- a quiet peer, then one byte */

#define IDLE_MS 1500

typedef struct sink {
    server srv;
    uint16_t port;
    atomic_int closed, close_err;
} sink;

/* Consumes everything and answers nothing: no write refreshes anything. */
static size_t sink_data(vx_conn *c, const char *p, size_t n) {
    (void)c;
    (void)p;
    return n;
}

static void sink_close(vx_conn *c, int err) {
    sink *s = vx_conn_data(c);
    atomic_store(&s->close_err, err);
    atomic_fetch_add(&s->closed, 1);
}

static const vx_conn_cbs sink_cbs = {.on_data = sink_data, .on_close = sink_close};

static void sink_accept(vx_listener *l, vx_conn *c, void *data) {
    (void)l;
    if (vx_conn_start(c, &sink_cbs, data) < 0) {
        vx_conn_close(c);
        return;
    }
    vx_conn_set_idle_timeout(c, IDLE_MS);
}

static int sink_setup(vx_loop *loop, void *arg) {
    sink *s = arg;
    vx_listener *l;
    int rc = vx_listen(loop, &(vx_listen_opts){.host = "127.0.0.1"}, sink_accept, s, &l);
    if (rc == 0)
        s->port = vx_listener_port(l);
    return rc;
}

/* The loop sleeps until the idle deadline; a byte arrives two thirds of the
 * way there. The peer has been quiet for IDLE_MS only IDLE_MS after that byte:
 * a close sooner means the byte was stamped with the clock of before the
 * sleep. */
TEST(quiet_peer_gets_its_whole_idle_timeout) {
    static sink s;
    memset(&s, 0, sizeof s);
    atomic_store(&live_allocs, 0);
    vx_allocator_set(counting_realloc, NULL);
    REQUIRE_OK(server_start(&s.srv, sink_setup, &s));
    int fd = tcp_connect("127.0.0.1", s.port, 5000);
    REQUIRE_OK(fd);
    sleep_ms(IDLE_MS * 2 / 3);
    uint64_t t = now_ms();
    CHECK_EQ_INT(write_all(fd, "x", 1, 1000), 1);
    CHECK_EQ_INT(wait_eof(fd, IDLE_MS + 5000), 0);
    uint64_t quiet = now_ms() - t;
    harness_log("closed %llu ms after the last byte (idle timeout %d ms)",
                (unsigned long long)quiet, IDLE_MS);
    CHECK_MSG(quiet >= IDLE_MS, "closed %llu ms after the peer's last byte, idle timeout %d ms",
              (unsigned long long)quiet, IDLE_MS);
    close(fd);
    uint64_t until = now_ms() + 5000;
    while (atomic_load(&s.closed) < 1 && now_ms() < until)
        sleep_ms(5);
    CHECK_EQ_INT(atomic_load(&s.closed), 1);
    CHECK_EQ_INT(atomic_load(&s.close_err), -ETIMEDOUT);
    CHECK_OK(server_stop(&s.srv));
    CHECK_EQ_INT(atomic_load(&live_allocs), 0);
}
