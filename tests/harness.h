/* harness: the tiny test framework every vortex test links.
 *
 * A test file defines cases with TEST(name) { ... }; the harness provides main(),
 * runs each case in a forked child (its own process group) with a timeout, and
 * prints one line per case and a summary "N passed, N failed". A hang is a
 * failure, not a stuck CI.
 *
 *   ./test-echo                 run every case
 *   ./test-echo half_close      run the cases whose name contains "half_close"
 *   HARNESS_TIMEOUT=10          per-case timeout in seconds (default 60)
 *   HARNESS_NOFORK=1            run cases in-process (for gdb); first failure exits
 *
 * Exit code: 0 all passed, 1 a case failed, 77 every case skipped (or the backend
 * named by VX_BACKEND is unavailable here: "SKIP: backend X unavailable").
 *
 * CHECK* record a failure and go on; REQUIRE* end the case at once. Both may be
 * used from any thread of the case. SKIP(...) ends the case as skipped.
 *
 * The helpers below are for tests that talk to a vortex loop over real loopback
 * sockets: the server loop runs in a background thread (server_start), clients are
 * plain blocking or non-blocking sockets in the test thread.
 */
#ifndef VX_TEST_HARNESS_H
#define VX_TEST_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "vortex.h"

/* ------------------------------------------------------------ registration */

typedef void (*harness_fn)(void);
void harness_register(const char *name, harness_fn fn);

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_register_##name(void) {                          \
        harness_register(#name, test_##name);                                                      \
    }                                                                                              \
    static void test_##name(void)

/* ------------------------------------------------------------------ checks */

void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void harness_abort_case(void);
_Noreturn void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Failures recorded so far in this case. */
int harness_failures(void);

#define CHECK(cond) ((cond) ? (void)0 : harness_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond))

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                           \
            harness_fail(__FILE__, __LINE__, __VA_ARGS__);                                         \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_)                                                                            \
            harness_fail(__FILE__, __LINE__, "CHECK_EQ_INT(%s, %s) failed: %lld != %lld", #a, #b,  \
                         va_, vb_);                                                                \
    } while (0)

/* a <= b, e.g. "at most" bounds */
#define CHECK_LE_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (!(va_ <= vb_))                                                                         \
            harness_fail(__FILE__, __LINE__, "CHECK_LE_INT(%s, %s) failed: %lld > %lld", #a, #b,   \
                         va_, vb_);                                                                \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                 \
            harness_fail(__FILE__, __LINE__, "CHECK_EQ_STR(%s, %s) failed: \"%s\" != \"%s\"", #a,  \
                         #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                          \
    } while (0)

/* A vortex call returning 0 / a count, or -errno: print the error's name. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        long long r_ = (long long)(expr);                                                          \
        if (r_ < 0)                                                                                \
            harness_fail(__FILE__, __LINE__, "%s failed: %lld (%s)", #expr, r_,                    \
                         vx_err_name((int)r_));                                                    \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_fail(__FILE__, __LINE__, "REQUIRE(%s) failed", #cond);                         \
            harness_abort_case();                                                                  \
        }                                                                                          \
    } while (0)

#define REQUIRE_EQ_INT(a, b)                                                                       \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            harness_fail(__FILE__, __LINE__, "REQUIRE_EQ_INT(%s, %s) failed: %lld != %lld", #a,    \
                         #b, va_, vb_);                                                            \
            harness_abort_case();                                                                  \
        }                                                                                          \
    } while (0)

#define REQUIRE_OK(expr)                                                                           \
    do {                                                                                           \
        long long r_ = (long long)(expr);                                                          \
        if (r_ < 0) {                                                                              \
            harness_fail(__FILE__, __LINE__, "%s failed: %lld (%s)", #expr, r_,                    \
                         vx_err_name((int)r_));                                                    \
            harness_abort_case();                                                                  \
        }                                                                                          \
    } while (0)

#define SKIP(...) harness_skip(__VA_ARGS__)

/* Diagnostic line (prefixed with the case name), not a failure. */
void harness_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------- time */

uint64_t now_ms(void); /* CLOCK_MONOTONIC */
void sleep_ms(unsigned ms);

/* Poll `cond(arg)` every few ms until true or timeout; returns its last value. */
bool wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* ------------------------------------------------------------------ random */

/* xorshift64*: reproducible payloads from a fixed seed. */
typedef struct rng {
    uint64_t s;
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
/* Uniform in [lo, hi] (inclusive). */
uint64_t rng_range(rng *r, uint64_t lo, uint64_t hi);
void rng_fill(rng *r, void *buf, size_t len);
/* Allocate len random bytes (abort on OOM). */
unsigned char *rng_alloc(rng *r, size_t len);

/* ----------------------------------------------------------------- sockets */

/* Blocking TCP connect to host:port ("127.0.0.1", "::1") with a timeout.
 * Returns a blocking fd with TCP_NODELAY, or -errno. */
int tcp_connect(const char *host, uint16_t port, int timeout_ms);
/* Blocking connect to a Unix socket path; fd or -errno. */
int unix_connect(const char *path);
/* A unique path under /tmp for a Unix socket (buf must hold 108 bytes). */
void unix_path_make(char *buf, size_t len, const char *tag);
int set_nonblock(int fd, bool on);
/* close() with SO_LINGER {1, 0}: the peer gets a RST. */
void close_rst(int fd);

/* Read exactly n bytes (poll-based, works on blocking and non-blocking fds).
 * Returns n; fewer if EOF came first; -ETIMEDOUT; or -errno. */
ssize_t read_exact(int fd, void *buf, size_t n, int timeout_ms);
/* Write all n bytes; n, -ETIMEDOUT or -errno (never raises SIGPIPE on sockets). */
ssize_t write_all(int fd, const void *buf, size_t n, int timeout_ms);
/* Wait for EOF: 0 on EOF, -ETIMEDOUT, -errno (e.g. -ECONNRESET), or 1 if data
 * arrived instead (the data is discarded). */
int wait_eof(int fd, int timeout_ms);

/* Send buf (in random chunks from r when r != NULL), shut down the write side,
 * and read until EOF, comparing against buf. Full duplex (non-blocking inside).
 * Returns 0 when exactly buf came back, else -1 (and prints why). */
int echo_roundtrip(int fd, const void *buf, size_t len, rng *r, int timeout_ms);

/* Number of fds this process has open (/proc/self/fd). */
int count_open_fds(void);

/* Whether openat2(2) works here: not before Linux 5.6, nor under valgrind
 * (3.19 does not know it), where vx_http_static falls back to its walk. */
bool have_openat2(void);

/* -------------------------------------------------------- server in a thread */

/* Runs on the server thread after the loop is created; 0 or -errno. */
typedef int (*server_setup_fn)(vx_loop *loop, void *arg);

/* A vortex loop running in a background thread (all signals blocked there).
 * server_start returns once the loop is running (or setup failed). */
typedef struct server {
    pthread_t tid;
    vx_loop *loop;
    server_setup_fn setup;
    void *arg;
    int rc;    /* loop_new/setup result, then vx_loop_run's */
    int state; /* 0 starting, 1 running, 2 failed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} server;

int server_start(server *s, server_setup_fn setup, void *arg);
/* vx_loop_stop from this thread, join; the loop is freed on its thread.
 * Returns vx_loop_run's result. */
int server_stop(server *s);
/* Run fn(arg) on the loop thread and wait for it (vx_loop_post + condvar). */
int server_call(server *s, vx_fn fn, void *arg);
/* vx_loop_stats, read on the loop thread. */
void server_stats(server *s, vx_stats *out);

/* -------------------------------------------------------------- echo server */

/* An echo server on the public API: on_data writes back what it got and returns
 * len; no on_eof, so the connection closes once its output is flushed. The
 * counters are written on the loop thread and may be read from any thread. */
typedef struct echo_opts {
    const char *host;      /* default "127.0.0.1" */
    const char *unix_path; /* listen on a Unix socket instead */
    size_t low, high;      /* water marks (both 0: library defaults) */
    uint64_t idle_ms;      /* vx_conn_set_idle_timeout in the accept callback */
    int backlog;
} echo_opts;

typedef struct echo_server {
    server srv;
    echo_opts opts;
    vx_listener *listener;
    uint16_t port;
    atomic_int accepted;
    atomic_int live;
    atomic_int closed;
    atomic_int close_err_last;
    atomic_int close_timeouts; /* closes with -ETIMEDOUT */
    atomic_int close_errors;   /* closes with err != 0 */
    atomic_int write_errors;   /* vx_conn_write < 0 */
    atomic_size_t max_queued;  /* max vx_conn_queued() seen after a write */
    atomic_ullong bytes;       /* bytes echoed */
} echo_server;

/* Start an echo server thread (opts may be NULL); 0 or -errno. */
int echo_server_start(echo_server *es, const echo_opts *opts);
int echo_server_stop(echo_server *es);
/* Wait until es->closed >= n; returns whether it happened within timeout. */
bool echo_wait_closed(echo_server *es, int n, int timeout_ms);

/* The callbacks, for tests that build their own echo servers. */
extern const vx_conn_cbs echo_cbs;

#endif
