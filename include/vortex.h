/* vortex: one event-loop API over every Linux I/O model.
 *
 * Conventions (the whole API follows them):
 *  - Functions return 0 (or a count) on success and a negative errno on failure;
 *    vx_strerror()/vx_err_name() name any such value.
 *  - If a call that takes a callback fails, that callback is never called.
 *  - One loop per thread. Nothing in a loop is locked: only vx_loop_post() and
 *    vx_loop_stop() may be called from another thread.
 *  - Handles (vx_conn, vx_listener, vx_io) are freed by the loop after their
 *    close callback ran; timers and signal watchers are freed by their *_free().
 *  - Data handed to a read callback is a view, valid only during the call.
 */
#ifndef VORTEX_H
#define VORTEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VX_API __attribute__((visibility("default")))

#define VX_VERSION_MAJOR 0
#define VX_VERSION_MINOR 1

typedef struct vx_loop vx_loop;
typedef struct vx_conn vx_conn;
typedef struct vx_listener vx_listener;
typedef struct vx_timer vx_timer;
typedef struct vx_signal vx_signal;
typedef struct vx_io vx_io;

/* ------------------------------------------------------------------ errors */

/* The name ("ECONNRESET") and message of a negative errno; never NULL. */
VX_API const char *vx_err_name(int err);
VX_API const char *vx_strerror(int err);

/* ----------------------------------------------------------------- logging */

enum { VX_LOG_ERROR, VX_LOG_WARN, VX_LOG_INFO, VX_LOG_DEBUG };
typedef void (*vx_log_fn)(int level, const char *msg, void *ud);
/* Route library log lines to fn (NULL: stderr) and drop lines above level. */
VX_API void vx_log_set(vx_log_fn fn, void *ud, int level);

/* --------------------------------------------------------------- allocator */

/* realloc-shaped hook used for every allocation (size 0 frees). NULL restores
 * the libc one. Set it before creating any loop; tests use it to fail the Nth
 * allocation. */
typedef void *(*vx_realloc_fn)(void *ptr, size_t size, void *ud);
VX_API void vx_allocator_set(vx_realloc_fn fn, void *ud);

/* -------------------------------------------------------------------- loop */

typedef enum {
    VX_BACKEND_AUTO = 0, /* uring when it works, else epoll (VX_BACKEND env overrides) */
    VX_BACKEND_SELECT,
    VX_BACKEND_POLL,
    VX_BACKEND_EPOLL,    /* level-triggered */
    VX_BACKEND_EPOLL_ET, /* edge-triggered, drain to EAGAIN */
    VX_BACKEND_URING,    /* io_uring completion engine */
    VX_BACKEND__COUNT
} vx_backend;

/* Backend from its name ("auto", "select", "poll", "epoll", "epoll-et", "uring");
 * -EINVAL when unknown. */
VX_API int vx_backend_parse(const char *name);
VX_API const char *vx_backend_name(vx_backend b);
/* The backend a loop asking for b would get here (auto and VX_BACKEND
 * resolved, by creating and freeing a loop), or -ENOSYS/-EPERM... */
VX_API int vx_backend_resolve(vx_backend b);

typedef struct vx_loop_opts {
    vx_backend backend; /* VX_BACKEND_AUTO: see above */
} vx_loop_opts;

/* Create a loop (opts may be NULL). -ENOSYS/-EPERM when the backend asked for
 * cannot run here; auto never fails for that reason. */
VX_API int vx_loop_new(vx_loop **out, const vx_loop_opts *opts);
/* Run until vx_loop_stop(); returns 0, or a negative errno if the poller failed. */
VX_API int vx_loop_run(vx_loop *loop);
/* Make vx_loop_run() return after the current turn. Thread-safe. */
VX_API void vx_loop_stop(vx_loop *loop);
/* Close every handle still open (their close callbacks run) and free the loop.
 * Must not be called while the loop runs. */
VX_API void vx_loop_free(vx_loop *loop);
/* Name of the backend in use ("epoll", "uring", ...). */
VX_API const char *vx_loop_backend(const vx_loop *loop);
/* The loop's cached monotonic clock in milliseconds (updated once per turn). */
VX_API uint64_t vx_loop_now(const vx_loop *loop);
/* Re-read the clock now (for long callbacks). */
VX_API void vx_loop_update_time(vx_loop *loop);

typedef void (*vx_fn)(void *arg);
/* Run fn(arg) on the loop's thread during its next turn. Thread-safe: the only
 * cross-thread call besides vx_loop_stop(). 0 or -ENOMEM. */
VX_API int vx_loop_post(vx_loop *loop, vx_fn fn, void *arg);
/* Run fn(arg) at the end of the current turn (loop thread only). 0 or -ENOMEM. */
VX_API int vx_loop_defer(vx_loop *loop, vx_fn fn, void *arg);

/* ------------------------------------------------------------------ counters */

#define VX_SYSCALL_KINDS(X)                                                                        \
    X(READ, "read")                                                                                \
    X(WRITE, "write")                                                                              \
    X(SENDFILE, "sendfile")                                                                        \
    X(ACCEPT, "accept")                                                                            \
    X(CONNECT, "connect")                                                                          \
    X(CLOSE, "close")                                                                              \
    X(SHUTDOWN, "shutdown")                                                                        \
    X(SETSOCKOPT, "setsockopt")                                                                    \
    X(WAIT, "wait")                                                                                \
    X(CTL, "ctl")                                                                                  \
    X(OTHER, "other")

#define VX_ERROR_KINDS(X)                                                                          \
    X(ACCEPT_EMFILE, "accept_emfile")                                                              \
    X(ACCEPT_OTHER, "accept_other")                                                                \
    X(RESET, "reset")                                                                              \
    X(READ, "read")                                                                                \
    X(WRITE, "write")                                                                              \
    X(CONNECT, "connect")                                                                          \
    X(TIMEOUT, "timeout")                                                                          \
    X(NOMEM, "nomem")                                                                              \
    X(POLLER, "poller")

enum {
#define X(k, s) VX_SYS_##k,
    VX_SYSCALL_KINDS(X)
#undef X
        VX_SYS__COUNT
};
enum {
#define X(k, s) VX_ERRK_##k,
    VX_ERROR_KINDS(X)
#undef X
        VX_ERRK__COUNT
};

/* Per-loop counters: always on, cheap (plain increments on the loop thread). */
typedef struct vx_stats {
    uint64_t syscalls[VX_SYS__COUNT]; /* syscalls by kind */
    uint64_t errors[VX_ERRK__COUNT];  /* errors by kind */
    uint64_t wakeups;                 /* returns from the poller's wait */
    uint64_t events;                  /* events (or completions) dispatched */
    uint64_t accepts;                 /* connections accepted */
    uint64_t conns_live;              /* connections open now */
    uint64_t bytes_in, bytes_out;
    uint64_t reads, writes;          /* read and write callbacks/flushes */
    uint64_t file_reads, file_bytes; /* vx_file_read calls completed, and bytes they read */
} vx_stats;

VX_API void vx_loop_stats(const vx_loop *loop, vx_stats *out);
VX_API uint64_t vx_stats_syscalls(const vx_stats *s); /* sum over kinds */
VX_API const char *vx_syscall_kind_name(int kind);
VX_API const char *vx_error_kind_name(int kind);
/* One line "backend=epoll wakeups=... read=..." into buf; returns its length. */
VX_API int vx_stats_format(const vx_loop *loop, char *buf, size_t len);

/* ------------------------------------------------------------------ timers */

typedef void (*vx_timer_cb)(vx_timer *t, void *data);
/* A stopped timer. 0, or -ENOMEM. */
VX_API int vx_timer_new(vx_loop *loop, vx_timer_cb cb, void *data, vx_timer **out);
/* (Re)arm: first fire after `after_ms`, then every `repeat_ms` (0: one-shot). */
VX_API void vx_timer_start(vx_timer *t, uint64_t after_ms, uint64_t repeat_ms);
VX_API void vx_timer_stop(vx_timer *t);
VX_API bool vx_timer_active(const vx_timer *t);
/* Stop and free; safe inside the timer's own callback. */
VX_API void vx_timer_free(vx_timer *t);

/* ----------------------------------------------------------------- signals */

typedef void (*vx_signal_cb)(vx_signal *s, int signum, void *data);
/* Deliver signum through the loop (signalfd; the signal is blocked in this
 * thread). 0, -EINVAL, -ENOMEM or a signalfd error. */
VX_API int vx_signal_start(vx_loop *loop, int signum, vx_signal_cb cb, void *data, vx_signal **out);
/* Stop watching and free. */
VX_API void vx_signal_free(vx_signal *s);

/* --------------------------------------------------- readiness of foreign fds */

enum { VX_READABLE = 1, VX_WRITABLE = 2 };
typedef void (*vx_io_cb)(vx_io *io, int fd, unsigned events, void *data);
/* Watch a foreign fd (pipe, eventfd, another library's socket); the fd stays
 * the caller's. events = VX_READABLE|VX_WRITABLE (level-triggered semantics);
 * errors and hang-ups are reported as readable. */
VX_API int vx_io_start(vx_loop *loop, int fd, unsigned events, vx_io_cb cb, void *data,
                       vx_io **out);
/* Change the events watched (0 pauses). */
VX_API int vx_io_update(vx_io *io, unsigned events);
/* Stop watching and free (the fd is not closed). No callback runs after this.
 * Free the watcher before closing its fd. */
VX_API void vx_io_free(vx_io *io);

/* ----------------------------------------------------- asynchronous file reads */

/* n: bytes read (0 at the end of the file), or -errno (-ECANCELED: the loop
 * was freed before the read could start). */
typedef void (*vx_read_cb)(void *arg, ssize_t n);
/* Read up to len bytes of fd at off into buf without blocking the loop's
 * thread on the disk: an io_uring READ on the uring backend, a pread(2) on a
 * pool thread elsewhere (the loop's vx_loop_set_pool pool, else one the loop
 * starts on first use and owns). cb runs once, on the loop's thread (at the
 * latest in vx_loop_free); buf and fd must stay valid until then. With
 * O_DIRECT, buf, len and off must be aligned as the file system asks (4096
 * always does). 0, or -ENOMEM/-EAGAIN/-ECANCELED, and then cb will not run. */
VX_API int vx_file_read(vx_loop *loop, int fd, void *buf, size_t len, uint64_t off, vx_read_cb cb,
                        void *arg);

/* ------------------------------------------------------------ connections */

/* Bytes arrived. Return how many were consumed; the rest is kept by the
 * connection and handed again, followed by new bytes, on the next call. */
typedef size_t (*vx_data_cb)(vx_conn *c, const char *data, size_t len);
/* The peer sent FIN. Queued output is still delivered. Without this callback
 * the connection is closed once its output is flushed. */
typedef void (*vx_eof_cb)(vx_conn *c);
/* Queued output fell below the low-water mark after having crossed the high one. */
typedef void (*vx_drain_cb)(vx_conn *c);
/* The connection is closed: err is 0 for an orderly close, else the reason
 * (-ECONNRESET, -ETIMEDOUT, ...). The conn is freed right after this returns. */
typedef void (*vx_close_cb)(vx_conn *c, int err);

/* Callbacks of a connection; must outlive it (typically static const). */
typedef struct vx_conn_cbs {
    vx_data_cb on_data;
    vx_eof_cb on_eof;     /* optional */
    vx_drain_cb on_drain; /* optional */
    vx_close_cb on_close; /* optional */
} vx_conn_cbs;

/* Begin reading. Until this is called an accepted connection reads nothing. */
VX_API int vx_conn_start(vx_conn *c, const vx_conn_cbs *cbs, void *data);
VX_API void *vx_conn_data(const vx_conn *c);
VX_API void vx_conn_set_data(vx_conn *c, void *data);
VX_API vx_loop *vx_conn_loop(const vx_conn *c);
VX_API int vx_conn_fd(const vx_conn *c);

/* Queue bytes (copied); flushed once at the end of this loop turn with one
 * write/writev. 0, -EPIPE after shutdown/close, -ENOMEM. */
VX_API int vx_conn_write(vx_conn *c, const void *data, size_t len);
/* Queue len bytes of the file fd from offset off behind what is queued; they
 * go out with sendfile(2), no copy through user space. The connection takes
 * fd, also when this fails: it is closed once sent or when the connection
 * closes (dup() it to keep one). The bytes count in vx_conn_queued() and the
 * water marks; more than 16 queued files count as above the high-water mark.
 * fd must suit sendfile (a regular file); reading it may block the loop on a
 * page-cache miss (vx_file_read does not). If the file ends before off + len, the connection closes
 * with -ENODATA. sendfile(2) has no MSG_NOSIGNAL, so the loop's thread gets
 * SIGPIPE blocked at the first file it sends. 0, -EPIPE, -EBADF, -EINVAL
 * (range past 2^63), -ENOMEM. */
VX_API int vx_conn_sendfile(vx_conn *c, int fd, uint64_t off, uint64_t len);
/* Bytes (memory and file) queued and not yet accepted by the kernel. */
VX_API size_t vx_conn_queued(const vx_conn *c);
/* Reading is paused by the high-water mark; on_drain follows once the queue
 * falls below the low one, and input left unconsumed is then handed again.
 * So a protocol answering pipelined requests stops taking new ones while
 * this is true, and resumes by itself. */
VX_API bool vx_conn_congested(const vx_conn *c);
/* Pause reading once more than `high` bytes are queued, resume below `low`.
 * Defaults 1 MiB / 256 KiB. `high` 0 disables the pause. */
VX_API void vx_conn_set_watermarks(vx_conn *c, size_t low, size_t high);
/* Stop/resume reading (independent of the water marks). */
VX_API void vx_conn_pause(vx_conn *c);
VX_API void vx_conn_resume(vx_conn *c);
/* Close when no byte arrived or left for ms (0 disables). The close callback
 * gets -ETIMEDOUT. Cost per activity is O(1). */
VX_API void vx_conn_set_idle_timeout(vx_conn *c, uint64_t ms);
/* shutdown(SHUT_WR) once queued output is sent; reading goes on. */
VX_API int vx_conn_shutdown(vx_conn *c);
/* Stop reading, send queued output, then close. Idempotent. */
VX_API void vx_conn_close(vx_conn *c);
/* Close now, dropping queued output (a reset if `rst`). Idempotent. */
VX_API void vx_conn_abort(vx_conn *c, bool rst);

/* ------------------------------------------------------------------ listen */

typedef void (*vx_accept_cb)(vx_listener *l, vx_conn *c, void *data);

typedef struct vx_listen_opts {
    const char *host;      /* numeric IPv4/IPv6 or "localhost"; NULL: 0.0.0.0 */
    uint16_t port;         /* 0: a free port (see vx_listener_port) */
    const char *unix_path; /* listen on a Unix socket instead (replaces a stale one) */
    int backlog;           /* 0: 4096 */
    bool reuseport;        /* SO_REUSEPORT */
    bool no_delay_off;     /* keep Nagle on accepted TCP connections (else TCP_NODELAY is set
                            * on the listening socket, and accepted ones inherit it) */
    bool exclusive;        /* EPOLLEXCLUSIVE: one of the loops sharing the socket wakes */
} vx_listen_opts;

/* Bind, listen and start accepting; cb owns each new connection (start or
 * close it). -EADDRINUSE, -EINVAL, -EMFILE... */
VX_API int vx_listen(vx_loop *loop, const vx_listen_opts *opts, vx_accept_cb cb, void *data,
                     vx_listener **out);
/* The bound port (TCP), useful after port 0. */
VX_API uint16_t vx_listener_port(const vx_listener *l);
VX_API int vx_listener_fd(const vx_listener *l);
/* Stop accepting, close the socket (and unlink a Unix path), free. On io_uring
 * the kernel may have accepted connections for l that were not reported yet:
 * they still reach the accept callback (during the next turns, l still valid),
 * because their clients already consider them established. */
VX_API void vx_listener_close(vx_listener *l);

/* ----------------------------------------------------------------- connect */

/* c is the new connection (start it) when err is 0; NULL when err < 0
 * (-ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH, ...). */
typedef void (*vx_connect_cb)(vx_conn *c, int err, void *data);

typedef struct vx_connect_opts {
    const char *host; /* numeric IPv4/IPv6 or "localhost" */
    uint16_t port;
    const char *unix_path; /* connect to a Unix socket instead */
    uint64_t timeout_ms;   /* 0: no timeout */
    bool no_delay_off;
} vx_connect_opts;

/* Start a non-blocking connect; cb runs exactly once, on the loop, later. */
VX_API int vx_connect(vx_loop *loop, const vx_connect_opts *opts, vx_connect_cb cb, void *data);

/* ---------------------------------------------------------- adopting fds */

/* Listen on an already-listening socket (inherited from a master process,
 * shared by several loops). The fd is dup()ed: the caller keeps its own.
 * Of o, only backlog-independent flags are used (no_delay_off, exclusive);
 * when the socket lacks TCP_NODELAY, each accepted connection sets its own. */
VX_API int vx_listen_fd(vx_loop *loop, int fd, const vx_listen_opts *o, vx_accept_cb cb, void *data,
                        vx_listener **out);
/* A connection from a connected stream socket (made non-blocking and
 * close-on-exec here); the loop owns fd from now on, even on failure. Counted
 * as an accept of this loop. 0, or -ENOMEM (fd closed). Keep no dup of fd:
 * epoll would go on reporting the socket after the connection closed. */
VX_API int vx_conn_adopt(vx_loop *loop, int fd, bool nodelay, vx_conn **out);

/* ------------------------------------------------------------ worker pool */

/* Threads for blocking work (files, DNS, CPU-heavy handlers). */
typedef struct vx_pool vx_pool;
/* threads >= 1; queue_max >= 1 bounds the jobs waiting (back-pressure). */
VX_API int vx_pool_new(vx_pool **out, int threads, size_t queue_max);
/* Run the jobs already queued, join the threads, free. No loop using the pool
 * may still run. */
VX_API void vx_pool_free(vx_pool *pool);
/* Jobs of this loop's vx_work() go to pool (NULL detaches). */
VX_API void vx_loop_set_pool(vx_loop *loop, vx_pool *pool);

typedef void (*vx_work_fn)(void *arg);
/* status 0 when fn ran, -ECANCELED when the loop was freed first (fn did not run). */
typedef void (*vx_done_fn)(void *arg, int status);
/* Run fn(arg) on a pool thread, then done(arg, status) on the loop's thread.
 * -EAGAIN when the pool's queue is full (retry later: back-pressure), -EINVAL
 * without a pool, -ECANCELED inside vx_loop_free(), which waits for jobs
 * already running. */
VX_API int vx_work(vx_loop *loop, vx_work_fn fn, vx_done_fn done, void *arg);

/* ---------------------------------------------------------- server models */

/* How a server spends its threads and processes. */
typedef enum {
    VX_MODEL_SINGLE,          /* one loop, one thread (redis) */
    VX_MODEL_REUSEPORT,       /* N loops, one SO_REUSEPORT listener each */
    VX_MODEL_HANDOFF,         /* a main loop accepts, N sub-loops serve (netty, muduo) */
    VX_MODEL_SHARED,          /* one listener in N loops, EPOLLEXCLUSIVE: no thundering herd */
    VX_MODEL_PROCS,           /* a master forks N worker processes (nginx) */
    VX_MODEL_THREAD_PER_CONN, /* baseline: blocking I/O, a thread per connection */
    VX_MODEL_FORK_PER_CONN,   /* baseline: blocking I/O, a process per connection */
} vx_model_kind;

typedef struct vx_model {
    vx_model_kind kind;
    int n; /* loops or processes; 1 for single and the baselines */
} vx_model;

/* "single", "reuseport:4", "handoff:2", "shared:2", "procs:4",
 * "thread-per-conn", "fork-per-conn" (":N" defaults to the CPU count). */
VX_API int vx_model_parse(const char *s, vx_model *out);
/* The same text back ("reuseport:4"); returns its length. */
VX_API int vx_model_format(const vx_model *m, char *buf, size_t len);

typedef struct vx_server vx_server;

/* Blocking handler of the baselines: serve fd until done (the server closes it). */
typedef void (*vx_blocking_fn)(int fd, void *data);
/* Per-loop set-up, on that loop's thread (or worker process) before it accepts. */
typedef int (*vx_loop_init_fn)(vx_loop *loop, int index, void *data);

typedef struct vx_server_opts {
    vx_listen_opts listen; /* address; reuseport is set by the model */
    vx_backend backend;
    vx_model model;
    bool pin_cpus;              /* loop i on CPU i % ncpu */
    bool least_loaded;          /* handoff: to the sub-loop with fewest live conns */
    vx_accept_cb on_accept;     /* on the loop owning the connection; l is NULL in handoff */
    vx_blocking_fn on_blocking; /* the baselines' handler */
    vx_loop_init_fn on_loop;    /* optional */
    void *data;
    uint64_t drain_ms; /* graceful stop: in-flight connections get this long (0: 5000) */
    bool quiet;        /* procs: no log line per worker start/exit */
    /* Optional: vx_server_stop calls on_stop(data) first, in its caller's
     * context (a signal handler too: must be async-signal-safe), and so does
     * every procs worker as it stops, on its own copy of data; e.g. a
     * vx_http_shutdown, so that idle keep-alive connections end at once. */
    void (*on_stop)(void *data);
} vx_server_opts;

/* Bind (the master binds for procs) and prepare; nothing runs yet. */
VX_API int vx_server_new(vx_server **out, const vx_server_opts *o);
VX_API uint16_t vx_server_port(const vx_server *s);
/* Run until stopped: threads/processes start, and the calling thread waits
 * (procs: it is the master, restarting workers that die; SIGHUP replaces them
 * one by one, SIGTERM/SIGINT stop them gracefully). 0 or -errno. */
VX_API int vx_server_run(vx_server *s);
/* Graceful stop: stop accepting, let connections finish up to drain_ms, return
 * from vx_server_run. Thread-safe and async-signal-safe. */
VX_API void vx_server_stop(vx_server *s);
VX_API void vx_server_free(vx_server *s);
/* Loops (threads models) or workers (procs) of the server. */
VX_API int vx_server_count(const vx_server *s);
/* Counters of loop i while vx_server_run runs (thread models; any thread,
 * at most ~100 ms stale). -EINVAL for the other models or a bad index,
 * -EAGAIN when the server is not running. */
VX_API int vx_server_stats(const vx_server *s, int i, vx_stats *out);

/* ------------------------------------------------------------ HTTP parsing */

/* HTTP/1.1 request parsing (RFC 9112), picohttpparser-style: no allocation,
 * no I/O; every string is a slice of the caller's buffer. Strict where
 * leniency enables request smuggling: bare LF or bare CR line endings,
 * obs-fold, whitespace before a colon, control bytes in values, repeated
 * Content-Length (even identical), Content-Length with Transfer-Encoding,
 * Transfer-Encoding in HTTP/1.0, a missing (HTTP/1.1) or repeated Host, and
 * CONNECT (authority-form) are all 400. Thread-safe; the SIMD level (AVX2,
 * SSE4.2, scalar) is picked at first use; VX_HTTP_SCALAR=1 forces scalar. */

#define VX_HTTP_MAX_HEADERS 100
#define VX_HTTP_MAX_LINE (8 * 1024)  /* request line: 414 past this */
#define VX_HTTP_MAX_HEAD (16 * 1024) /* whole head: 431 past this */

typedef struct vx_http_slice {
    const char *p;
    size_t n;
} vx_http_slice;

typedef struct vx_http_header {
    vx_http_slice name, value; /* value without surrounding whitespace */
} vx_http_header;

typedef enum {
    VX_HTTP_GET,
    VX_HTTP_HEAD,
    VX_HTTP_POST,
    VX_HTTP_PUT,
    VX_HTTP_DELETE,
    VX_HTTP_OPTIONS,
    VX_HTTP_PATCH,
    VX_HTTP_CONNECT,
    VX_HTTP_TRACE,
    VX_HTTP_OTHER
} vx_http_method;

typedef struct vx_http_request {
    vx_http_method method;
    vx_http_slice method_name;
    vx_http_slice target;      /* as sent: path?query, "*", or http://authority/path?query */
    vx_http_slice path, query; /* query without '?' (n == 0 if none); path is "*" for
                                  OPTIONS *, and may be empty (meaning "/") in absolute-form */
    int minor;                 /* HTTP/1.minor */
    vx_http_header headers[VX_HTTP_MAX_HEADERS];
    size_t nheaders;
    /* Framing, from the headers (RFC 9112 section 6): */
    int64_t content_length; /* -1: none */
    bool chunked;           /* Transfer-Encoding: chunked (then content_length is -1) */
    bool keep_alive;        /* after this request (version + Connection) */
    bool expect_continue;   /* Expect: 100-continue (HTTP/1.1 only) */
} vx_http_request;

/* Parse one request head from buf[0..len). Returns the head's length (> 0),
 * VX_HTTP_INCOMPLETE when more bytes are needed, or VX_HTTP_ERROR with
 * *status set (400 malformed or smuggling risk, 414 line too long, 431
 * headers too large or too many, 501 unknown transfer coding, 505 version)
 * and *why a static reason for the log. Leading empty lines (CRLF) are
 * skipped and counted in the length. Stateless: call again with the same
 * buffer plus the new bytes; a prefix of a request gives INCOMPLETE or the
 * error the whole request gives. 414: the request line without CRLF exceeds
 * VX_HTTP_MAX_LINE; 431: the head (with leading CRLFs) exceeds VX_HTTP_MAX_HEAD
 * or has more than VX_HTTP_MAX_HEADERS fields, reported as soon as the bytes
 * show it. Transfer-Encoding must be exactly one "chunked" (501 for any other
 * coding, 400 when chunked is not last or an element is empty). *req is
 * garbage after an error, except keep_alive (false). */
#define VX_HTTP_INCOMPLETE (-2)
#define VX_HTTP_ERROR (-1)
VX_API ssize_t vx_http_parse_request(const char *buf, size_t len, vx_http_request *req, int *status,
                                     const char **why);

/* Incremental chunked-body decoder (extensions skipped, trailers parsed and
 * dropped). Zero-initialise before use. */
typedef struct vx_http_chunked {
    int state;
    uint64_t left; /* bytes left in the current chunk */
    size_t trailer_bytes;
    size_t line_bytes; /* of the current chunk-size line (at most 4 KiB with extensions) */
} vx_http_chunked;

/* Decode buf[0..len) in place: data bytes are moved to the front of buf and
 * their count stored in *out. Returns bytes of input consumed, or
 * VX_HTTP_ERROR (*why set). *done becomes true after the last chunk and its
 * trailers; the bytes after that are not consumed. Each call decodes its own
 * buf (the caller appends *out bytes to what it has). Trailers: at most
 * 16 KiB. On an error, *out still counts the data decoded before it; after
 * an error every call fails. */
VX_API ssize_t vx_http_chunked_decode(vx_http_chunked *d, char *buf, size_t len, size_t *out,
                                      bool *done, const char **why);

/* Case-insensitive header lookup; NULL when absent. */
const vx_http_header *vx_http_find_header(const vx_http_request *req, const char *name);
/* Percent-decode (and '+' to space when form) src into dst (may be src);
 * returns the length or -1 on a bad escape. */
VX_API ssize_t vx_http_url_decode(char *dst, const char *src, size_t n, bool form);
/* The value of key in a query string (raw, not decoded); false if absent. */
VX_API bool vx_http_query_get(vx_http_slice query, const char *key, vx_http_slice *value);
/* Whether an Accept-Encoding value v[0..n) accepts coding (case-insensitive;
 * "x-gzip" counts as "gzip"): listed with a weight above 0 ("gzip;q=0" and
 * "gzip ; q=0.000" refuse). "*" is not taken for it, and malformed elements
 * count for nothing, so the answer may stay uncompressed. */
VX_API bool vx_http_accepts_coding(const char *v, size_t n, const char *coding);

/* ------------------------------------------------------------- HTTP server */

/* An HTTP/1.1 server on top of any vx_conn, so it runs on every backend and
 * server model: routes, limits, keep-alive, and pipelining (every response
 * produced from one read leaves in the one write of that loop turn).
 * Set it up with vx_http_new() and vx_http_route(), then attach connections
 * from any number of loops and threads: it is read-only once serving; state
 * lives in the connections (and a small record per loop for timeouts). */
typedef struct vx_http vx_http;
/* A connection's current request and its response. Valid from the handler
 * call until the response ends, also when the connection closes first: a
 * handler that returned with its response open must still end it (respond,
 * end or send_fd; these then fail with -EPIPE), which frees it. The strings
 * the accessors return are views valid only during the handler and body
 * callbacks: an asynchronous handler copies what it needs first. */
typedef struct vx_http_req vx_http_req;

typedef void (*vx_http_handler)(vx_http_req *r, void *data);
/* A piece of a VX_HTTP_STREAM_BODY route's request body (decoded from
 * chunked if needed); the handler runs once the body is complete. */
typedef void (*vx_http_body_cb)(vx_http_req *r, const char *p, size_t n, void *data);

typedef struct vx_http_opts {
    const char *server_name;    /* Server header; NULL: "vortex" */
    size_t max_body;            /* buffered request bodies; 0: 1 MiB (413 past it) */
    uint64_t header_timeout_ms; /* a request head must be complete in; 0: 10000 (408) */
    uint64_t idle_timeout_ms;   /* keep-alive connection without traffic; 0: 60000 */
    /* File bodies (vx_http_send_fd) this long or longer, unless all in the
     * page cache (cachestat(2), asked up to 64 MiB), are read off the loop's
     * thread with O_DIRECT (vx_file_read) instead of sent with sendfile(2),
     * which blocks the loop on a page-cache miss; 0: 4 MiB, UINT64_MAX: never. */
    uint64_t async_file_min;
} vx_http_opts;

/* 0, -EINVAL or -ENOMEM. */
VX_API int vx_http_new(vx_http **out, const vx_http_opts *o);
/* Once no connection uses it any more; it also frees the requests whose
 * connection closed and whose response the application never ended. */
VX_API void vx_http_free(vx_http *h);

enum {
    VX_HTTP_PREFIX = 1,      /* pattern is a path prefix ("/static/") */
    VX_HTTP_STREAM_BODY = 2, /* body to the body callback in pieces: never held, no max_body */
};
/* Route methods ("GET", "GET,POST", "*" for any; GET routes also serve HEAD)
 * on pattern: an exact path, segments "{name}" capturing one path segment
 * ("/json/{count}"), or a prefix with VX_HTTP_PREFIX. First match wins; a
 * path only other methods' routes match gets 405 with Allow; none, 404.
 * Before serving only. 0, -EINVAL or -ENOMEM. */
VX_API int vx_http_route(vx_http *h, const char *methods, const char *pattern, unsigned flags,
                         vx_http_handler fn, vx_http_body_cb body, void *data);

/* Serve HTTP on c; data is the vx_http (shaped as vx_server_opts.on_accept). */
VX_API void vx_http_on_accept(vx_listener *l, vx_conn *c, void *data);
/* The same with a result: 0, or -ENOMEM (c is closed). */
VX_API int vx_http_attach(vx_http *h, vx_conn *c);
/* Graceful stop: idle keep-alive connections close within ~250 ms, requests
 * in flight finish with "Connection: close". Any thread, async-signal-safe. */
VX_API void vx_http_shutdown(vx_http *h);

/* Counters summed over every loop (at most ~250 ms stale). */
typedef struct vx_http_stats {
    uint64_t conns;       /* connections open now */
    uint64_t requests;    /* responses started, by any status */
    uint64_t bytes_in;    /* request heads and bodies */
    uint64_t bytes_out;   /* response heads and bodies */
    uint64_t status[600]; /* responses by status code */
} vx_http_stats;
VX_API void vx_http_get_stats(const vx_http *h, vx_http_stats *out);

/* The request (views; len may be NULL). */
VX_API const char *vx_http_req_method(const vx_http_req *r, size_t *len);
VX_API const char *vx_http_req_path(const vx_http_req *r, size_t *len);  /* raw, no query */
VX_API const char *vx_http_req_query(const vx_http_req *r, size_t *len); /* raw, "" if none */
/* Decoded value of key in the query, NUL-terminated in buf: its length,
 * -ENOENT, -ENOSPC or -EINVAL (bad escape). */
VX_API ssize_t vx_http_req_query_get(const vx_http_req *r, const char *key, char *buf, size_t cap);
/* Header value (case-insensitive name) or a path parameter; NULL when absent. */
VX_API const char *vx_http_req_header(const vx_http_req *r, const char *name, size_t *len);
VX_API const char *vx_http_req_param(const vx_http_req *r, const char *name, size_t *len);
/* The buffered body ("" for none or a streamed one). */
VX_API const char *vx_http_req_body(const vx_http_req *r, size_t *len);
/* Body bytes received so far (decoded), buffered or streamed. */
VX_API uint64_t vx_http_req_body_received(const vx_http_req *r);
VX_API int vx_http_req_minor(const vx_http_req *r); /* HTTP/1.x */
/* One user pointer per request (NULL when a request begins). */
VX_API void *vx_http_req_data(const vx_http_req *r);
VX_API void vx_http_req_set_data(vx_http_req *r, void *data);
VX_API vx_conn *vx_http_req_conn(const vx_http_req *r); /* NULL once the connection closed */

/* The whole response in one call: status, extra header lines (each ending
 * "\r\n"; NULL: none) and body. Server, Date, Content-Length and, when
 * needed, Connection are added; HEAD gets the headers only. A handler that
 * returns without responding answers later (same thread): reading pauses,
 * so pipelined requests wait in order. 0, -EINVAL (already answered), -EPIPE. */
VX_API int vx_http_respond(vx_http_req *r, int status, const char *headers, const void *body,
                           size_t len);
/* Streaming: begin with length >= 0 (Content-Length) or -1 (chunked), write,
 * end. Past the high-water mark (vx_http_congested), wait for the drain
 * callback before writing more. */
VX_API int vx_http_begin(vx_http_req *r, int status, const char *headers, int64_t length);
VX_API int vx_http_write(vx_http_req *r, const void *p, size_t n);
VX_API int vx_http_end(vx_http_req *r);
VX_API bool vx_http_congested(const vx_http_req *r);
/* fn runs when the output drained below the low-water mark; also once when
 * the connection closes mid-response without an abort callback (its writes
 * then fail with -EPIPE, which ends the response). */
VX_API void vx_http_on_drain(vx_http_req *r, vx_http_handler fn, void *data);
/* fn runs once if the connection closes (reset, timeout, shutdown) before
 * this request's response ended, so that work done for it can stop; any
 * response call from then on fails with -EPIPE and ends the response. Set in
 * the handler or a body callback; a request whose handler had not run yet
 * (its body was still arriving) is freed when fn returns. A failed write
 * (-EPIPE, -ENOMEM) ends the response itself, with no callback. */
VX_API void vx_http_on_abort(vx_http_req *r, vx_http_handler fn, void *data);
/* After vx_http_begin(length = len): the rest of the body is len bytes of
 * the regular file fd from off — up to 16 KiB read in behind the head at
 * once, from async_file_min on (unless all in the page cache) read in
 * pieces off the loop's thread (the response ends when the last piece is
 * queued), otherwise queued for
 * sendfile(2) (vx_conn_sendfile) and the response ends here. fd becomes the
 * server's (closed when sent, also on failure). 0, -EINVAL (chunked, or more
 * than announced), -ENODATA (the file ended first: what it had is sent, then
 * the connection closes), or the read or vx_conn_sendfile error. */
VX_API int vx_http_send_fd(vx_http_req *r, int fd, off_t off, uint64_t len);
/* A static file: name (decoded, relative) beneath the directory root_fd (the
 * caller's; open(dir, O_PATH | O_DIRECTORY) is enough), with Content-Type by
 * extension, Last-Modified/If-Modified-Since (304), a single Range (206/416);
 * 404 when missing, not a regular file or reached by a symbolic link that
 * leaves the root, 400 for "."/".." segments. Opened on every request, so
 * changes show at once. Always responds; 0 or -errno. */
VX_API int vx_http_static(vx_http_req *r, int root_fd, const char *name);

#ifdef __cplusplus
}
#endif
#endif
