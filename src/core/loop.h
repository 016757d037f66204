/* The loop, the handle base every fd-owning object starts with, and the
 * engine contract.
 *
 * An engine performs operations (accept, read, write, connect, close) for the
 * loop. The reactor engine (engine/reactor.c) performs them when a readiness
 * poller (poller/NAME.c) reports an fd ready; the io_uring engine (engine/uring.c)
 * submits them and dispatches their completions. Both report results back
 * through the vx__conn_* / vx__listener_* / vx__io_* entry points below, so
 * the connection logic (net/conn.c) is written once. */
#ifndef VX_CORE_LOOP_H
#define VX_CORE_LOOP_H

#include "core/buf.h"
#include "core/common.h"
#include "core/heap.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

enum vx__htype { VX__H_CONN = 1, VX__H_LISTENER, VX__H_IO };

/* Handle flags shared by every kind. */
enum {
    VX__HF_CLOSING = 1 << 0, /* engine->close() called: no more callbacks */
    VX__HF_CLOSED = 1 << 1,  /* engine done with it; freed at the end of the turn */
    /* Listener shared with other loops: epoll adds it with EPOLLEXCLUSIVE, so
     * one connection wakes one of them (other pollers have no equivalent). */
    VX__HF_EXCLUSIVE = 1 << 2,
};

/* The first member of vx_conn, vx_listener and vx_io. Owned by that object. */
typedef struct vx__handle {
    vx_loop *loop;
    int fd;
    uint8_t type;
    uint8_t hflags;
    uint16_t inflight; /* engine operations not completed yet (uring) */
    uint32_t events;   /* engine-private: poller interest (reactor), op state (uring) */
    int32_t slot;      /* engine-private: pollfd slot (poll), op index (uring); -1 none */
    vx__list node;     /* loop->handles, for vx_loop_free */
} vx__handle;

/* Poller event bits (independent of epoll's values). */
/* RDHUP: the peer's FIN is queued (edge mode must then read until EOF, since
 * no later edge will announce it). */
enum { VX__EV_IN = 1, VX__EV_OUT = 2, VX__EV_ERR = 4, VX__EV_HUP = 8, VX__EV_RDHUP = 16 };

struct vx__fread;

typedef struct vx__engine {
    const char *name;
    /* 0, or -errno; -ENOSYS/-EPERM mean "not available here". */
    int (*init)(vx_loop *loop);
    /* Complete every pending close (vx__handle_closed) and release everything. */
    void (*fini)(vx_loop *loop);
    /* Submit pending work, wait up to timeout_ms (-1: forever), dispatch what
     * happened. 0, or -errno on a fatal poller error. */
    int (*wait)(vx_loop *loop, int timeout_ms);
    /* Start (on) or stop accepting. */
    int (*listen)(vx_listener *l, bool on);
    /* Reading wanted or not, from vx__conn_wants_read(). */
    void (*read)(vx_conn *c);
    /* Send the queued output of c (called once per turn per dirty conn). */
    void (*flush)(vx_conn *c);
    /* c->h.fd is a non-blocking socket; connect it. Completion: vx__conn_connected. */
    int (*connect)(vx_conn *c, const struct sockaddr *sa, socklen_t len);
    /* Stop everything on h and close its fd (not for VX__H_IO, whose fd is the
     * user's); call vx__handle_closed(h) once no operation is in flight. */
    void (*close)(vx__handle *h);
    /* Watch a foreign fd for VX_READABLE|VX_WRITABLE (0: stop). */
    int (*io)(vx_io *io, unsigned events);
    /* Optional: read c now if it may have data the engine was not told about
     * (edge-triggered resume or read budget exhausted). */
    void (*read_again)(vx_conn *c);
    /* Optional: start the read fr describes and call vx__fread_done(fr) with
     * its result once it completed, at the latest in fini. 0 or -errno.
     * Without it vx_file_read runs a pread(2) on a pool thread. */
    int (*file_read)(struct vx__fread *fr);
} vx__engine;

/* One vx_file_read: owned by whoever performs it (the engine, or the pool's
 * job), freed by vx__fread_done. */
typedef struct vx__fread {
    vx_loop *loop;
    int fd;
    void *buf;
    size_t len;
    uint64_t off;
    ssize_t res; /* bytes read or -errno (pool path) */
    vx_read_cb cb;
    void *arg;
} vx__fread;

/* fread.c: count, free fr, then run its callback with n. */
void vx__fread_done(vx__fread *fr, ssize_t n);

typedef struct vx__task {
    vx_fn fn;
    void *arg;
} vx__task;

typedef struct vx__tasks {
    vx__task *v;
    size_t len, cap;
} vx__tasks;

#define VX__SCRATCH_SIZE (64 * 1024)

struct vx_loop {
    const vx__engine *engine;
    void *engine_data;
    const struct vx__poller *poller; /* reactor only */
    void *poller_data;
    vx_backend backend;
    uint64_t now; /* cached monotonic ms */
    atomic_bool stop;
    bool running;
    vx_stats stats;

    vx__heap timers;
    vx__list handles; /* every conn, listener, io */
    size_t handle_count;
    bool freeing;               /* inside vx_loop_free: no new handles */
    uint32_t listeners_closing; /* closed, not reaped: io_uring may still hand over accepts */
    uint64_t poller_log_at;     /* rate limit of "cannot watch fd" lines */
    uint64_t poller_log_quiet;
    vx__list timer_list;
    vx__tasks deferred;

    /* End-of-turn work lists (intrusive, singly linked). */
    vx_conn *flush_head; /* conns with output to send */
    vx_conn *again_head; /* conns to read again (edge-triggered budget) */
    vx__handle **closed; /* closed handles to reap */
    size_t closed_len, closed_cap;

    char *scratch; /* read buffer shared by all connections of this loop */
    vx__chunk_cache chunks;

    /* vx_loop_post: a locked queue and an eventfd. */
    pthread_mutex_t post_lock;
    vx__tasks posted;
    atomic_bool wake_pending;
    int wake_fd;
    vx_io *wake_io;

    /* Worker pool (server/workers.c). The pool threads append finished jobs
     * to work_done and wake the loop (through the vx_loop_post eventfd) only
     * when the list was empty: one wakeup per batch. */
    vx_pool *pool;             /* where vx_work() sends jobs; NULL: none */
    size_t work_outstanding;   /* jobs queued, running or finished whose done has not been
                                * taken yet (loop thread only) */
    pthread_mutex_t work_lock; /* guards work_done, work_tail, work_done_n */
    struct vx__job *work_done; /* finished jobs, oldest first */
    struct vx__job **work_tail;
    size_t work_done_n;
    vx_pool *file_pool; /* started by vx_file_read without a pool; the loop's */

    /* Signals through one signalfd per loop. */
    int sig_fd;
    vx_io *sig_io;
    sigset_t sig_mask;
    vx__list signals;
};

#define VX__COUNT_SYS(loop, kind) ((loop)->stats.syscalls[VX_SYS_##kind]++)
#define VX__COUNT_ERR(loop, kind) ((loop)->stats.errors[VX_ERRK_##kind]++)

/* loop.c */
/* 0, or -ENOMEM (room to reap it later is reserved here). */
int vx__handle_init(vx_loop *loop, vx__handle *h, int type, int fd);
/* The engine is done with h (fd closed, nothing in flight): reap at turn end. */
void vx__handle_closed(vx__handle *h);
int vx__tasks_push(vx__tasks *t, vx_fn fn, void *arg);

/* Wake the loop from any thread (coalesced with vx_loop_post's wakeups). */
void vx__loop_wake(vx_loop *loop);

/* server/workers.c */
/* Loop thread, from the wakeup handler: run done(arg, 0) of the finished jobs. */
void vx__work_run_done(vx_loop *loop);
/* vx_loop_free: cancel the queued jobs (done gets -ECANCELED), wait for the
 * running ones and run their done(arg, 0), on the freeing thread. */
void vx__work_fini(vx_loop *loop);

/* net/conn.c: what engines report about connections. */
bool vx__conn_wants_read(const vx_conn *c);
bool vx__conn_wants_write(const vx_conn *c);
/* Where to read into: the tail of the pending input, or the loop scratch. */
char *vx__conn_read_buf(vx_conn *c, size_t *cap);
/* n > 0 bytes arrived at p (from vx__conn_read_buf or an engine's own buffer). */
void vx__conn_input(vx_conn *c, char *p, size_t n);
void vx__conn_eof(vx_conn *c);
/* An operation failed with err (< 0, not -EAGAIN): close c. kind is the
 * VX_ERRK_* to count (-1: none); resets are counted as VX_ERRK_RESET instead. */
void vx__conn_error(vx_conn *c, int err, int kind);
/* The kernel accepted n bytes of queued output. */
void vx__conn_sent(vx_conn *c, size_t n);
/* One sendfile(2) of the file segment f at the head of c's queue (counted,
 * never raising SIGPIPE); *offered is what it asked for. As sendfile: the
 * count, or -1 with errno. */
ssize_t vx__conn_send_file(vx_conn *c, const vx__chunk *f, size_t *offered);
/* vx__conn_send_file() returned 0: the file is shorter than the range
 * queued. Logs and closes c (-ENODATA). */
void vx__conn_file_short(vx_conn *c, const vx__chunk *f);
void vx__conn_connected(vx_conn *c, int err);
/* A new connection on accepted/created fd; NULL on -ENOMEM (fd left open). */
vx_conn *vx__conn_new(vx_loop *loop, int fd, bool nodelay);

/* net/listener.c */
void vx__listener_accepted(vx_listener *l, int fd);
/* accept failed with err: counts, logs, and pauses on EMFILE/ENFILE/ENOMEM. */
void vx__listener_error(vx_listener *l, int err);
/* One accept4 of a non-blocking connection: its fd, or -errno. */
int vx__listener_accept(vx_listener *l);
/* The engine's wait on l is gone and its fd is about to close: a listener
 * that shares its socket takes what is queued (see listener.c). */
void vx__listener_sweep(vx_listener *l);

/* core/io.c */
void vx__io_ready(vx_io *io, unsigned events);

/* Reaping: free a handle after the engine is done with it (end of turn). */
void vx__conn_reap(vx_conn *c);
void vx__listener_reap(vx_listener *l);
void vx__io_reap(vx_io *io);
/* Closing every handle at vx_loop_free(). */
void vx__conn_teardown(vx_conn *c);
void vx__timers_free_all(vx_loop *loop);
void vx__signals_free_all(vx_loop *loop);
/* End-of-turn connection work (net/conn.c). */
void vx__conn_run_again(vx_loop *loop);
void vx__conn_flush_all(vx_loop *loop);
void vx__conn_schedule_again(vx_conn *c);
/* Send c's queue in this turn's end-of-turn flush. */
void vx__conn_schedule_flush(vx_conn *c);
/* Build output in place (the HTTP server's response heads): room for n bytes
 * at the end of c's queue, then commit the bytes written (0 is allowed).
 * 0, -EPIPE (closing) or -ENOMEM. */
int vx__conn_reserve(vx_conn *c, size_t n, char **out);
void vx__conn_commit(vx_conn *c, size_t n);
/* The peer said it sends nothing more (HTTP "Connection: close", its request
 * all read): a close of c need not linger for the peer's FIN once the queue
 * is sent, unless input is still buffered. */
void vx__conn_peer_done(vx_conn *c);

/* Engines (engine/reactor.c, engine/uring.c). */
extern const vx__engine vx__reactor_engine;
extern const vx__engine vx__uring_engine;

#endif
