/* The io_uring engine: operations are submitted and their completions
 * dispatched; nothing here asks "is this fd ready?".
 *
 *  - One ring per loop (SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN when the
 *    kernel has them, else plainer flags), created disabled and enabled by the
 *    first thread that submits, so a loop may be created on one thread and run
 *    on another.
 *  - Every SQE prepared during a turn goes to the kernel in the one
 *    io_uring_enter() of the next wait(), which also waits; the syscall is made
 *    here (not in liburing) so that stats.syscalls[WAIT] counts each one.
 *  - Reading: one multishot recv per connection on a provided-buffer ring
 *    shared by the loop; each buffer goes back to the ring right after
 *    vx__conn_input() returns. Pausing cancels the recv, but the kernel may
 *    have read ahead: CQEs that arrive while reading is off go to a stash
 *    (uop.stash; a FIN to US_EOF). On resume, read() puts the conn on the
 *    again list and read_again() hands the stash over in PIECE-byte pieces,
 *    stopping as soon as reading is off again (so the high-water mark holds
 *    as with the reactor's bounded reads); the recv is re-armed only once the
 *    stash is empty, so bytes keep their order.
 *  - Writing: one send (or sendmsg of up to MAX_IOV chunks) in flight per
 *    connection, straight from the output queue, with VX__CF_WBLOCKED set
 *    until it completes; the rest of the queue goes out in the flush at the
 *    end of the turn of the completion.
 *  - Files (the queue's file segments, vx_conn_sendfile): when one reaches the
 *    queue head and no send is in flight, a non-blocking sendfile(2) runs
 *    right in the flush; on EAGAIN or a short count a one-shot POLLOUT poll
 *    stands for the write in flight (WBLOCKED until its CQE, cancelled on
 *    close like a send). Not IORING_OP_SPLICE file->pipe->socket: the kernel
 *    always runs splice in io-wq threads, and it needs a pipe per connection.
 *    Measured with a prototype (request/response on one loopback connection,
 *    2 vCPUs, Linux 6.18): a 4 KiB file costs ~16 us of server CPU and one
 *    sendfile, against ~40 us, two linked SQEs and ~2.5 context switches;
 *    1 MiB is even (~200 us) only with 1 MiB pipes (pipe-user-pages-soft
 *    allows 64 of them), and 650 us and 32 SQEs with the default 64 KiB.
 *    Like the reactor, a page-cache miss blocks the loop: vx_file_read
 *    below reads off it, which vx_http uses for large bodies.
 *  - Accepting: one multishot accept per listener. Foreign fds: one-shot
 *    poll re-armed after each callback, which gives the level-triggered
 *    semantics vx_io promises (a multishot poll reports wake-ups, not state).
 *  - Closing: cancel each operation in flight, then close(2) the fd once the
 *    last completion of the handle arrived (the socket stays open while the
 *    kernel still holds requests on it, and the fd number cannot be reused
 *    under a pending cancel), then vx__handle_closed().
 *
 * user_data = handle pointer | K_* kind in the low 3 bits (handles come from
 * the allocator, aligned to at least 8). 0 marks CQEs nobody waits for (the
 * results of cancels).
 *
 * File reads (vx_file_read): an IORING_OP_READ on the plain fd, its
 * vx__fread as user_data (kind K_FREAD); the kernel completes it inline when
 * it can (page cache, O_DIRECT with NOWAIT) and in an io-wq thread when it
 * would block, never on the loop's thread. A read cannot be called back from
 * the disk, so fini waits for every one still in flight before the memory it
 * writes into can be freed.
 *
 * Per-handle engine state lives in vx__handle.events (US_* bits: the reactor's
 * interest field, unused with this engine) and vx__handle.slot (index of the
 * connection's uop while it needs one, see struct uop; -1 otherwise).
 * vx__handle.inflight counts the operations whose final CQE has not arrived:
 * the handle may be freed only when it reaches 0. */
#include "net/conn.h"
#include <assert.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SQ_ENTRIES 4096
#define CQ_ENTRIES 16384
/* Provided buffers. Since 6.12 the kernel can consume a buffer a piece at a
 * time (IOU_PBUF_RING_INC): a recv takes only what it fills, the next one
 * goes on from there, so 16 x 64 KiB = 1 MiB holds thousands of small
 * requests and still takes a bulk upload 64 KiB per recv. The kernel writes
 * the ring's memory in order, so all of it is the copy's working set: at
 * 1 MiB it stays in L2, where 4 MiB did not (a 1 MiB upload cost 30-40 %
 * more server CPU than with epoll; bench/RESULTS.md). Without INC each recv
 * takes a whole buffer: 512 x 8 KiB (loopback bulk echo, 4 x 1 GiB: 8 KiB
 * cost ~2.0 s of server CPU, 16 and 32 KiB ~3.0 s, 4 KiB ~2.4 s; 200 busy
 * clients never emptied 256). An empty ring only costs a re-arm. */
#define INC_NBUFS 16 /* ring sizes are powers of two */
#define INC_BUF_SIZE (64u * 1024)
#define NBUFS 512
#define BUF_SIZE (8u * 1024)
#ifndef IOU_PBUF_RING_INC /* liburing < 2.8 does not name them */
#define IOU_PBUF_RING_INC 2
#endif
#ifdef IOU_PBUF_RING_MMAP /* the registration's flags were 'pad' before 6.4 */
#define VX__BUF_REG_FLAGS flags
#else
#define VX__BUF_REG_FLAGS pad
#endif
#define VX__CQE_F_BUF_MORE (1U << 4) /* IORING_CQE_F_BUF_MORE: the buffer goes on */
/* Batched waits are opt-in: on this project's 2-vCPU test host they bought
 * nothing (plaintext, 64 conns: 76-85k vs 91k requests per server core-s
 * without; bench/RESULTS.md), so the default keeps the plain wait. */
#define BATCH_US 0 /* see uring_wait */
#define BATCH_MAX 32
#ifndef IORING_FEAT_MIN_TIMEOUT
#define VX__FEAT_MIN_TIMEOUT (1U << 15) /* liburing < 2.8 does not name it */
#else
#define VX__FEAT_MIN_TIMEOUT IORING_FEAT_MIN_TIMEOUT
#endif
#define BGID 0             /* buffer group id */
#define MAX_IOV 64         /* chunks per sendmsg, as in the reactor */
#define CQE_BATCH 256      /* CQEs copied out of the ring before dispatch */
#define FINI_DRAIN_MS 1000 /* bound on waiting for cancels at vx_loop_free */
#define PIECE (16u * 1024) /* stashed input is handed over this much at a time */
/* File table slots at most: 8 bytes of kernel memory each, per ring, so a
 * limit of 1M fds (common in containers) does not cost 8 MiB per loop; fds
 * above it use the plain path. */
#define MAX_FIXED (1u << 16)

/* K_FREAD's pointer is a vx__fread, not a handle (vx_file_read). */
enum { K_FREAD, K_RECV, K_SEND, K_CONNECT, K_ACCEPT, K_POLL, K_WPOLL, K_FILES };

/* Engine state bits in vx__handle.events. */
enum {
    US_RECV = 1 << 0,        /* multishot recv alive (mirrors VX__CF_READING) */
    US_RECV_CANCEL = 1 << 1, /* ... and its cancel was asked for */
    US_SEND = 1 << 2,        /* a send is in flight */
    US_CONNECT = 1 << 3,     /* a connect is in flight */
    US_EOF = 1 << 4,         /* FIN arrived while not reading: report on resume */
    US_ACCEPT = 1 << 5,      /* multishot accept alive */
    US_ACCEPT_CANCEL = 1 << 6,
    US_LISTEN = 1 << 7, /* accepting wanted */
    US_POLL = 1 << 8,   /* poll request alive */
    US_POLL_CANCEL = 1 << 9,
    US_WANT_R = 1 << 10, /* vx_io interest */
    US_WANT_W = 1 << 11,
    US_ARMED_R = 1 << 12, /* interest of the poll request alive */
    US_ARMED_W = 1 << 13,
    US_SENDMSG = 1 << 14, /* the uop's iovecs belong to the send in flight */
    US_WPOLL = 1 << 15,   /* POLLOUT armed for a file segment (sendfile said EAGAIN) */
    US_FIXED = 1 << 16,   /* the fd sits in the ring's file table, at index fd */
};
#define US_WANT (US_WANT_R | US_WANT_W)
#define US_ARMED (US_ARMED_R | US_ARMED_W)

/* Memory a connection needs only now and then: the sendmsg header and
 * iovecs of the send in flight, the address of a connect in flight, input
 * read ahead while reading was off, and the output queue of a connection
 * closed while its send was in flight. Owned by the engine, attached to a
 * conn through h->slot while any of these is in use, then recycled. */
typedef struct uop {
    union {
        struct {
            struct msghdr msg;
            struct iovec iov[MAX_IOV];
        };
        struct sockaddr_storage sa;
    };
    vx__buf stash; /* bytes [stash_off, stash.len) not handed over yet */
    uint32_t stash_off;
    vx__outq orphan;
    int32_t next_free;
} uop;

/* The engine's state; loop->engine_data, dies in fini. */
typedef struct uring {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    uint32_t *boff;      /* per buffer: bytes the kernel consumed so far (INC) */
    unsigned nbufs;      /* INC_NBUFS (incremental) or NBUFS */
    unsigned buf_size;   /* INC_BUF_SIZE or BUF_SIZE */
    unsigned br_pending; /* buffers added since the last advance */
    bool enabled;        /* the ring starts disabled (IORING_SETUP_R_DISABLED) */
    bool defer;          /* DEFER_TASKRUN: completions need GETEVENTS */
    bool taskrun_flag;   /* the kernel says when GETEVENTS is needed */
    bool skip_success;   /* IOSQE_CQE_SKIP_SUCCESS for cancels */
    int nfixed;          /* size of the sparse file table (0: none) */
    int no_file;         /* -1: what a slot is cleared with (read by the kernel) */
    uint32_t closing;    /* handles in close whose fd is not closed yet */
    uint32_t freads;     /* file reads in flight */
    uint64_t enobufs;    /* recvs that found the buffer ring empty */
    /* Batched waits (see uring_wait): completions to wait for beyond the
     * sends submitted in the same enter, and how long (0: off). */
    unsigned batch, batch_us;
    unsigned sends;     /* send SQEs prepared since the last enter */
    vx__outq graveyard; /* queues of closed conns with a send in flight and no uop */
    uop **ops;
    int32_t nops, cap_ops, free_op;
    vx_loop *loop;
    struct io_uring_cqe cqes[CQE_BATCH];
} uring;

static uring *U(const vx_loop *loop) { return loop->engine_data; }
static bool closing(const vx__handle *h) { return h->hflags & VX__HF_CLOSING; }

/* ------------------------------------------------------------ submitting */

/* Enter the kernel: submit what is queued, run deferred completions when
 * getevents, wait for wait_nr CQEs up to timeout_ms (-1: no limit). */
static int enter(uring *u, unsigned wait_nr, bool getevents, int timeout_ms) {
    vx_loop *loop = u->loop;
    if (!u->enabled) {
        VX__COUNT_SYS(loop, OTHER);
        int rc = io_uring_register(u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (rc < 0)
            return rc;
        u->enabled = true;
    }
    /* Publish the new SQ tail (liburing's flush, without its enter). */
    struct io_uring_sq *sq = &u->ring.sq;
    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    unsigned to_submit = sq->sqe_tail - *sq->khead;
    if (!to_submit && !getevents)
        return 0;
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (timeout_ms % 1000) * 1000000LL};
    struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8, .ts = (uint64_t)(uintptr_t)&ts};
    unsigned flags = getevents ? IORING_ENTER_GETEVENTS : 0;
    void *argp = NULL;
    size_t argsz = _NSIG / 8;
    bool batched = wait_nr > 1 && u->batch_us;
    if ((wait_nr && timeout_ms > 0) || batched) {
        flags |= IORING_ENTER_EXT_ARG;
        argp = &arg;
        argsz = sizeof arg;
        if (timeout_ms < 0)
            arg.ts = 0; /* no overall limit */
        if (batched)
            arg.pad = u->batch_us; /* min_wait_usec since 6.12 (IORING_FEAT_MIN_TIMEOUT) */
    }
    u->sends = 0;
    VX__COUNT_SYS(loop, WAIT);
    int rc = io_uring_enter2(u->ring.ring_fd, to_submit, wait_nr, flags, argp, argsz);
    return rc == -ETIME ? 0 : rc;
}

/* A free SQE; when the SQ is full, submit (without waiting) and retry. NULL
 * only if the kernel takes nothing, which with SUBMIT_ALL means it is broken. */
static struct io_uring_sqe *get_sqe(uring *u) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    for (int i = 0; VX__UNLIKELY(!sqe) && i < 4; i++) {
        int rc = enter(u, 0, false, 0);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            break;
        sqe = io_uring_get_sqe(&u->ring);
    }
    if (VX__UNLIKELY(!sqe)) {
        VX__COUNT_ERR(u->loop, POLLER);
        VX__LOG_ERROR("uring: submission queue stays full; an operation is lost");
    }
    return sqe;
}

static void set_ud(struct io_uring_sqe *sqe, vx__handle *h, unsigned kind) {
    assert(((uintptr_t)h & 7) == 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)h | kind);
    h->inflight++;
}

/* ------------------------------------------------------------ fixed files
 *
 * A connection's socket also goes into the ring's sparse file table, at the
 * index of its fd, before its first recv, send or connect: operations then
 * name the slot (IOSQE_FIXED_FILE) and the kernel skips fget/fput on every
 * send (measured: ~1% of server CPU per plaintext request). The update is an
 * SQE of its own, ahead of the operation in the same submission, which the
 * kernel runs in order and inline; it counts as in flight so the handle (whose
 * fd field the kernel reads) outlives it. The slot holds a reference to the
 * socket: finish() clears it, with an SQE that leaves with the next enter, so
 * a closed socket is released (and its FIN sent) one turn later at most. A
 * failed update leaves the conn on its plain fd. */

static void fixed_register(uring *u, vx__handle *h) {
    if ((h->events & US_FIXED) || h->fd >= u->nfixed)
        return;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return;
    io_uring_prep_files_update(sqe, &h->fd, 1, h->fd);
    set_ud(sqe, h, K_FILES);
    h->events |= US_FIXED;
}

/* Let the SQE of h name its socket by slot when it has one. */
static void fixed_use(const vx__handle *h, struct io_uring_sqe *sqe) {
    if (h->events & US_FIXED) {
        sqe->fd = h->fd; /* the slot's index */
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

static void fixed_clear(uring *u, vx__handle *h) {
    if (!(h->events & US_FIXED))
        return;
    h->events &= ~(uint32_t)US_FIXED;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return; /* logged; the socket is released with the ring */
    io_uring_prep_files_update(sqe, &u->no_file, 1, h->fd);
    io_uring_sqe_set_data64(sqe, 0);
    if (u->skip_success)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void on_files(uring *u, vx__handle *h, int res) {
    if (res < 0 && (h->events & US_FIXED)) {
        h->events &= ~(uint32_t)US_FIXED; /* operations already named the slot fail with it */
        VX__LOG_WARN("uring: fd %d not in the file table: %s", h->fd, vx_err_name(res));
        VX__COUNT_ERR(u->loop, POLLER);
    }
}

/* Ask the kernel to end h's operation of this kind; its final CQE follows. */
static void cancel(uring *u, vx__handle *h, unsigned kind) {
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)h | kind, 0);
    io_uring_sqe_set_data64(sqe, 0);
    if (u->skip_success)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* ------------------------------------------------------------ uop pool */

static uop *op_get(uring *u, vx__handle *h) {
    if (h->slot >= 0)
        return u->ops[h->slot];
    if (u->free_op < 0) {
        if (u->nops == u->cap_ops) { /* the pointer array doubles; uops never move */
            int32_t cap = u->cap_ops ? 2 * u->cap_ops : 16;
            uop **v = vx__realloc(u->ops, (size_t)cap * sizeof *v);
            if (!v)
                return NULL;
            u->ops = v;
            u->cap_ops = cap;
        }
        uop *op = vx__calloc(1, sizeof(uop));
        if (!op)
            return NULL;
        op->next_free = -1;
        u->ops[u->nops] = op;
        u->free_op = u->nops++;
    }
    h->slot = u->free_op;
    uop *op = u->ops[h->slot];
    u->free_op = op->next_free;
    return op;
}

static uop *op_of(const uring *u, const vx__handle *h) {
    return h->slot >= 0 ? u->ops[h->slot] : NULL;
}

static void op_put(uring *u, vx__handle *h) {
    uop *op = op_of(u, h);
    if (!op)
        return;
    vx__outq_clear(&op->orphan, &u->loop->chunks);
    vx__buf_free(&op->stash);
    op->stash_off = 0;
    op->next_free = u->free_op;
    u->free_op = h->slot;
    h->slot = -1;
}

/* Give the uop back once nothing uses it (idle connections hold none). */
static void op_done(uring *u, vx__handle *h) {
    uop *op = op_of(u, h);
    if (op && !(h->events & (US_SENDMSG | US_CONNECT)) && !op->stash.len && !op->orphan.head)
        op_put(u, h);
}

static bool stashed(const uring *u, const vx_conn *c) {
    const uop *op = op_of(u, &c->h);
    return op && op->stash.len;
}

/* ------------------------------------------------------------ closing */

/* Every CQE of h arrived: close the fd (not a vx_io's) and let the loop reap h. */
static void finish(uring *u, vx__handle *h) {
    if (h->type == VX__H_LISTENER)
        vx__listener_sweep((vx_listener *)h); /* its accept is gone */
    if (h->type != VX__H_IO) {
        fixed_clear(u, h);
        VX__COUNT_SYS(u->loop, CLOSE);
        close(h->fd);
    }
    op_put(u, h);
    u->closing--;
    vx__handle_closed(h);
}

/* Out of memory for an orphan record: keep the chunks until the ring is gone
 * rather than free them under a send the kernel may still be reading. */
static void bury(uring *u, vx__outq *q) {
    if (!q->head)
        return;
    if (u->graveyard.tail)
        u->graveyard.tail->next = q->head;
    else
        u->graveyard.head = q->head;
    u->graveyard.tail = q->tail;
    u->graveyard.bytes += q->bytes;
    u->graveyard.files += q->files;
    *q = (vx__outq){0};
}

static void uring_close(vx__handle *h) {
    uring *u = U(h->loop);
    h->hflags |= VX__HF_CLOSING;
    u->closing++;
    uint32_t ev = h->events;
    if ((ev & (US_RECV | US_RECV_CANCEL)) == US_RECV)
        cancel(u, h, K_RECV);
    if (ev & US_SEND) {
        vx_conn *c = (vx_conn *)h;
        uop *op = c->out.head ? op_get(u, h) : NULL;
        if (op) { /* the kernel may still read these chunks: free them at the CQE */
            op->orphan = c->out;
            c->out = (vx__outq){0};
        } else {
            bury(u, &c->out);
        }
        cancel(u, h, K_SEND);
    }
    if (ev & US_WPOLL) /* the kernel holds no queue memory for it: conn.c clears the queue */
        cancel(u, h, K_WPOLL);
    if (ev & US_CONNECT)
        cancel(u, h, K_CONNECT);
    if ((ev & (US_ACCEPT | US_ACCEPT_CANCEL)) == US_ACCEPT)
        cancel(u, h, K_ACCEPT);
    if ((ev & (US_POLL | US_POLL_CANCEL)) == US_POLL)
        cancel(u, h, K_POLL);
    if (!h->inflight)
        finish(u, h);
}

/* ------------------------------------------------------------ reading */

static void recycle(uring *u, unsigned bid) {
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->buf_size, u->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(u->nbufs),
                          (int)u->br_pending++);
}

/* A recv CQE filled n bytes of buffer bid: where they start; the buffer goes
 * back to the ring once the kernel is done with it. */
static char *buf_take(uring *u, unsigned bid, int n, unsigned flags) {
    char *p = u->bufs + (size_t)bid * u->buf_size + u->boff[bid];
    if ((flags & VX__CQE_F_BUF_MORE) && n > 0) {
        u->boff[bid] += (uint32_t)n;
    } else {
        u->boff[bid] = 0;
        recycle(u, bid);
    }
    return p;
}

static void arm_recv(uring *u, vx_conn *c) {
    fixed_register(u, &c->h);
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return;
    io_uring_prep_recv_multishot(sqe, c->h.fd, NULL, 0, 0);
    fixed_use(&c->h, sqe);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    set_ud(sqe, &c->h, K_RECV);
    c->h.events |= US_RECV;
    c->flags |= VX__CF_READING;
}

/* Bring the recv in line with vx__conn_wants_read(); also called after each
 * final recv CQE, which is how a multishot recv is re-armed. */
static void uring_read(vx_conn *c) {
    uring *u = U(c->h.loop);
    uint32_t ev = c->h.events;
    if (closing(&c->h))
        return;
    if (vx__conn_wants_read(c)) {
        if ((ev & US_EOF) || stashed(u, c))
            vx__conn_schedule_again(c); /* read_again hands over the stash first */
        else if (!(ev & US_RECV))
            arm_recv(u, c);
        /* else alive, or being cancelled: its final CQE re-arms */
        return;
    }
    if ((ev & (US_RECV | US_RECV_CANCEL)) == US_RECV) {
        cancel(u, &c->h, K_RECV);
        c->h.events |= US_RECV_CANCEL;
    }
}

/* Hand the stash over while reading stays on. It is detached meanwhile, so
 * that a callback closing c cannot free the bytes it is looking at. */
static void deliver_stash(uring *u, vx_conn *c) {
    uop *op = op_of(u, &c->h);
    if (!op || !op->stash.len)
        return;
    vx__buf st = op->stash;
    uint32_t off = op->stash_off;
    op->stash = (vx__buf){0};
    op->stash_off = 0;
    while (off < st.len && vx__conn_wants_read(c) && !closing(&c->h)) {
        uint32_t n = VX__MIN(st.len - off, PIECE);
        vx__conn_input(c, st.data + off, n);
        off += n;
    }
    if (off == st.len || closing(&c->h) || !(op = op_get(u, &c->h))) {
        vx__buf_free(&st);
    } else {
        assert(!op->stash.len); /* no CQE is dispatched inside a callback */
        op->stash = st;
        op->stash_off = off;
    }
    op_done(u, &c->h);
}

/* Reading is on again and conn.c has handed c->in over: the stash, then a
 * FIN kept back, then a new recv. */
static void uring_read_again(vx_conn *c) {
    uring *u = U(c->h.loop);
    deliver_stash(u, c);
    if (closing(&c->h) || !vx__conn_wants_read(c) || stashed(u, c))
        return;
    if (c->h.events & US_EOF) {
        c->h.events &= ~(uint32_t)US_EOF;
        vx__conn_eof(c);
    } else if (!(c->h.events & US_RECV)) {
        arm_recv(u, c);
    }
}

/* Bytes the kernel delivered: to the user, or behind the stash while reading
 * is off or the stash is not handed over yet. */
static void input(uring *u, vx_conn *c, char *p, size_t n) {
    if (vx__conn_wants_read(c) && !stashed(u, c)) {
        vx__conn_input(c, p, n);
        return;
    }
    uop *op = op_get(u, &c->h);
    if (!op || vx__buf_append(&op->stash, p, n) < 0) {
        vx__conn_error(c, -ENOMEM, VX_ERRK_NOMEM);
    }
}

static void on_recv(uring *u, vx_conn *c, int res, unsigned flags) {
    bool more = flags & IORING_CQE_F_MORE;
    if (!more) {
        c->h.events &= ~(uint32_t)(US_RECV | US_RECV_CANCEL);
        c->flags &= ~VX__CF_READING;
    }
    if (flags & IORING_CQE_F_BUFFER) {
        /* the bytes stay valid until the next enter: recycled buffers
         * reach the kernel once per CQE batch */
        char *p = buf_take(u, flags >> IORING_CQE_BUFFER_SHIFT, res, flags);
        if (res > 0 && !closing(&c->h))
            input(u, c, p, (size_t)res);
    } else if (closing(&c->h)) {
        return;
    } else if (res == 0) {
        if (vx__conn_wants_read(c) && !stashed(u, c))
            vx__conn_eof(c);
        else
            c->h.events |= US_EOF;
    } else if (res == -ENOBUFS) {
        u->enobufs++; /* every buffer is back by the time the re-arm is submitted */
    } else if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN) {
        vx__conn_error(c, res, VX_ERRK_READ);
    }
    if (!more && !closing(&c->h))
        uring_read(c);
}

/* ------------------------------------------------------------ writing */

/* One send SQE for the queue's memory up to its first file segment. */
static void submit_send(uring *u, vx_conn *c) {
    fixed_register(u, &c->h);
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return;
    vx__chunk *k = c->out.head;
    if (!k->next || vx__chunk_is_file(k->next)) { /* one chunk: a plain send, no memory of ours */
        /* MSG_MORE before a file: the head leaves with the start of the body */
        int more = k->next ? MSG_MORE : 0;
        io_uring_prep_send(sqe, c->h.fd, k->data + k->off, k->len - k->off, MSG_NOSIGNAL | more);
    } else {
        uop *op = op_get(u, &c->h);
        if (!op) { /* the SQE is already taken: make it harmless */
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, 0);
            vx__conn_error(c, -ENOMEM, VX_ERRK_NOMEM);
            return;
        }
        int n = vx__outq_iov(&c->out, op->iov, MAX_IOV);
        op->msg = (struct msghdr){.msg_iov = op->iov, .msg_iovlen = (size_t)n};
        io_uring_prep_sendmsg(sqe, c->h.fd, &op->msg, MSG_NOSIGNAL);
        c->h.events |= US_SENDMSG;
    }
    fixed_use(&c->h, sqe);
    set_ud(sqe, &c->h, K_SEND);
    u->sends++;
    c->h.events |= US_SEND;
    c->flags |= VX__CF_WBLOCKED; /* conn.c schedules no flush meanwhile */
}

/* Wait for room in the socket (one-shot POLLOUT); it stands for the one
 * write in flight, so WBLOCKED holds until its CQE. */
static void arm_wpoll(uring *u, vx_conn *c) {
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return; /* logged; the next write schedules another flush */
    io_uring_prep_poll_add(sqe, c->h.fd, POLLOUT);
    set_ud(sqe, &c->h, K_WPOLL);
    c->h.events |= US_WPOLL;
    c->flags |= VX__CF_WBLOCKED;
}

/* sendfile(2) of the file segment at the queue head, here and now (see the
 * header comment for why not a splice SQE). true when the segment is done
 * and c may go on; false when c waits for POLLOUT or is closing. A short
 * count means a full socket or a file that ended: the poll tells them apart
 * (it completes at once when there is room, and the next call returns 0). */
static bool send_file(uring *u, vx_conn *c) {
    const vx__chunk *f = vx__outq_file(&c->out);
    size_t want;
    ssize_t n = vx__conn_send_file(c, f, &want);
    if (n == 0) {
        vx__conn_file_short(c, f);
        return false;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        vx__conn_error(c, -errno, VX_ERRK_WRITE);
        return false;
    }
    if (n > 0) {
        vx__conn_sent(c, (size_t)n); /* may call back, close, write more */
        if (closing(&c->h))
            return false;
        if ((size_t)n == want)
            return true;
    }
    arm_wpoll(u, c);
    return false;
}

static void uring_flush(vx_conn *c) {
    uring *u = U(c->h.loop);
    if (c->h.events & (US_SEND | US_WPOLL))
        return;
    while (vx__outq_file(&c->out))
        if (!send_file(u, c))
            return;
    if (c->out.bytes)
        submit_send(u, c);
}

static void on_wpoll(vx_conn *c, int res) {
    c->h.events &= ~(uint32_t)US_WPOLL;
    if (closing(&c->h))
        return;
    c->flags &= ~VX__CF_WBLOCKED;
    if (res < 0 && res != -EINTR && res != -ECANCELED) {
        vx__conn_error(c, res, VX_ERRK_WRITE);
        return;
    }
    vx__conn_schedule_flush(c); /* POLLERR/POLLHUP included: sendfile reports the error */
}

static void on_send(uring *u, vx_conn *c, int res) {
    c->h.events &= ~(uint32_t)(US_SEND | US_SENDMSG);
    op_done(u, &c->h);
    if (closing(&c->h))
        return;
    c->flags &= ~VX__CF_WBLOCKED;
    if (res == -EINTR || res == -EAGAIN) {
        vx__conn_schedule_flush(c);
        return;
    }
    if (res < 0) {
        vx__conn_error(c, res, VX_ERRK_WRITE);
        return;
    }
    vx__conn_sent(c, (size_t)res); /* may call back, close, write more */
    if (!closing(&c->h) && c->out.bytes)
        vx__conn_schedule_flush(c); /* a short send: the kernel polls for room with the next */
}

/* ---------------------------------------------------------- connecting */

static int uring_connect(vx_conn *c, const struct sockaddr *sa, socklen_t len) {
    uring *u = U(c->h.loop);
    if (len > sizeof(struct sockaddr_storage))
        return -EINVAL;
    uop *op = op_get(u, &c->h);
    if (!op)
        return -ENOMEM;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe) {
        op_done(u, &c->h);
        return -EBUSY;
    }
    memcpy(&op->sa, sa, len);
    io_uring_prep_connect(sqe, c->h.fd, (struct sockaddr *)&op->sa, len);
    set_ud(sqe, &c->h, K_CONNECT);
    c->h.events |= US_CONNECT;
    return 0;
}

static void on_connect(uring *u, vx_conn *c, int res) {
    c->h.events &= ~(uint32_t)US_CONNECT;
    op_done(u, &c->h);
    if (!closing(&c->h))
        vx__conn_connected(c, res < 0 ? res : 0);
}

/* ------------------------------------------------------------ accepting */

static int arm_accept(uring *u, vx_listener *l) {
    vx__handle *h = (vx__handle *)l;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_multishot_accept(sqe, h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    set_ud(sqe, h, K_ACCEPT);
    h->events |= US_ACCEPT;
    return 0;
}

static int uring_listen(vx_listener *l, bool on) {
    uring *u = U(((vx__handle *)l)->loop);
    vx__handle *h = (vx__handle *)l;
    if (on) {
        h->events |= US_LISTEN;
        return h->events & US_ACCEPT ? 0 : arm_accept(u, l); /* a cancelled one re-arms */
    }
    h->events &= ~(uint32_t)US_LISTEN;
    if ((h->events & (US_ACCEPT | US_ACCEPT_CANCEL)) == US_ACCEPT) {
        cancel(u, h, K_ACCEPT);
        h->events |= US_ACCEPT_CANCEL;
    }
    return 0;
}

/* Errors that come back at once however often we retry. */
static bool accept_fatal(int err) {
    return err == -EINVAL || err == -EBADF || err == -ENOTSOCK || err == -EOPNOTSUPP;
}

static void on_accept(uring *u, vx_listener *l, int res, unsigned flags) {
    vx__handle *h = (vx__handle *)l;
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        h->events &= ~(uint32_t)(US_ACCEPT | US_ACCEPT_CANCEL);
    if (res >= 0) {
        /* The kernel accepts ahead: this client already sees an established
         * connection. Dropping it would lose it (a reload, a drain), so it is
         * served even though the listener is closing — unless the loop is
         * going away. vortex.h documents this for vx_listener_close(). */
        if (u->loop->freeing) {
            VX__COUNT_SYS(u->loop, CLOSE);
            close(res);
            return;
        }
        vx__listener_accepted(l, res);
    } else if (res != -ECANCELED && res != -ECONNABORTED && res != -EINTR && !closing(h)) {
        vx__listener_error(l, res); /* may pause: listen(l, false) */
        if (accept_fatal(res)) {
            VX__LOG_ERROR("listener fd %d: accepting stopped", h->fd);
            h->events &= ~(uint32_t)US_LISTEN;
        }
    }
    if (!more && !closing(h) && (h->events & (US_LISTEN | US_ACCEPT)) == US_LISTEN)
        arm_accept(u, l);
}

/* ------------------------------------------------------ foreign fds */

static int arm_poll(uring *u, vx__handle *h) {
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return -EBUSY;
    uint32_t want = h->events & US_WANT;
    unsigned mask = (want & US_WANT_R ? POLLIN : 0) | (want & US_WANT_W ? POLLOUT : 0);
    io_uring_prep_poll_add(sqe, h->fd, mask);
    set_ud(sqe, h, K_POLL);
    h->events |= US_POLL | (want << 2); /* US_WANT_x << 2 == US_ARMED_x */
    return 0;
}

/* Bring the poll request in line with the interest. */
static int poll_sync(uring *u, vx__handle *h) {
    uint32_t ev = h->events;
    if (!(ev & US_POLL))
        return ev & US_WANT ? arm_poll(u, h) : 0;
    if (((ev & US_ARMED) >> 2) != (ev & US_WANT) && !(ev & US_POLL_CANCEL)) {
        cancel(u, h, K_POLL); /* its CQE re-arms with the new interest */
        h->events |= US_POLL_CANCEL;
    }
    return 0;
}

static int uring_io(vx_io *io, unsigned events) {
    vx__handle *h = (vx__handle *)io;
    h->events = (h->events & ~(uint32_t)US_WANT) | (events & VX_READABLE ? US_WANT_R : 0) |
                (events & VX_WRITABLE ? US_WANT_W : 0);
    return poll_sync(U(h->loop), h);
}

static void on_poll(uring *u, vx_io *io, int res) {
    vx__handle *h = (vx__handle *)io;
    h->events &= ~(uint32_t)(US_POLL | US_POLL_CANCEL | US_ARMED);
    if (closing(h))
        return;
    if (res < 0 && res != -ECANCELED) {
        VX__COUNT_ERR(u->loop, POLLER);
        VX__LOG_WARN("uring: cannot watch fd %d: %s", h->fd, vx_err_name(res));
        h->events &= ~(uint32_t)US_WANT; /* retrying would spin */
        return;
    }
    uint32_t want = h->events & US_WANT;
    unsigned ev = 0;
    if (res > 0 && (want & US_WANT_R) && (res & (POLLIN | POLLPRI | POLLERR | POLLHUP | POLLRDHUP)))
        ev |= VX_READABLE;
    if (res > 0 && (want & US_WANT_W) && (res & (POLLOUT | POLLERR | POLLHUP)))
        ev |= VX_WRITABLE;
    if (ev)
        vx__io_ready(io, ev);
    if (!closing(h))
        poll_sync(u, h); /* one-shot: re-arm, which also reports a level still high */
}

/* ------------------------------------------------------------ file reads */

static int uring_file_read(vx__fread *fr) {
    uring *u = U(fr->loop);
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return -EAGAIN;
    /* The length is 32 bits in the SQE; pread(2) itself stops at 0x7ffff000. */
    io_uring_prep_read(sqe, fr->fd, fr->buf, (unsigned)VX__MIN(fr->len, 0x7ffff000u), fr->off);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)fr | K_FREAD);
    u->freads++;
    return 0;
}

/* ------------------------------------------------------------ dispatch */

static void dispatch(uring *u, const struct io_uring_cqe *cqe) {
    vx__handle *h = (vx__handle *)(uintptr_t)(cqe->user_data & ~(uint64_t)7);
    if (!h)
        return;
    if ((cqe->user_data & 7) == K_FREAD) {
        u->freads--;
        vx__fread_done((vx__fread *)h, cqe->res);
        return;
    }
    switch (cqe->user_data & 7) {
    case K_RECV:
        on_recv(u, (vx_conn *)h, cqe->res, cqe->flags);
        break;
    case K_SEND:
        on_send(u, (vx_conn *)h, cqe->res);
        break;
    case K_CONNECT:
        on_connect(u, (vx_conn *)h, cqe->res);
        break;
    case K_ACCEPT:
        on_accept(u, (vx_listener *)h, cqe->res, cqe->flags);
        break;
    case K_WPOLL:
        on_wpoll((vx_conn *)h, cqe->res);
        break;
    case K_FILES:
        on_files(u, h, cqe->res);
        break;
    default:
        on_poll(u, (vx_io *)h, cqe->res);
    }
    /* The handle stays valid until its last CQE: reaping waits for finish(). */
    if (!(cqe->flags & IORING_CQE_F_MORE) && --h->inflight == 0 && closing(h) &&
        !(h->hflags & VX__HF_CLOSED))
        finish(u, h);
}

/* Dispatch every CQE in the ring. Each batch is copied out and the CQ head
 * advanced first, so that callbacks may submit (and the kernel post) freely. */
static void reap_cqes(uring *u) {
    for (;;) {
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            u->cqes[n++] = *cqe;
            if (n == CQE_BATCH)
                break;
        }
        if (!n)
            return;
        io_uring_cq_advance(&u->ring, n);
        u->loop->stats.events += n;
        for (unsigned i = 0; i < n; i++)
            dispatch(u, &u->cqes[i]);
        if (u->br_pending) { /* buffers go back to the kernel once per batch */
            io_uring_buf_ring_advance(u->br, (int)u->br_pending);
            u->br_pending = 0;
        }
    }
}

static int uring_wait(vx_loop *loop, int timeout_ms) {
    uring *u = U(loop);
    unsigned sqflags = IO_URING_READ_ONCE(*u->ring.sq.kflags);
    bool ready = io_uring_cq_ready(&u->ring) > 0;
    /* Batching: a loop that just had many completions waits, for at most
     * batch_us, for half as many again (plus the CQEs of its own sends, which
     * complete inline during the submit), then returns with whatever came.
     * Fewer wake-ups under load, each with more work; one completion after a
     * quiet turn still wakes it at once (batch is 1 then). */
    unsigned wait_nr = timeout_ms != 0 && !ready ? (u->batch > 1 ? u->batch + u->sends : 1) : 0;
    /* Without a wait, enter for completions only when the kernel has some
     * deferred (or cannot say) or the CQ overflowed. */
    bool getevents = wait_nr || (sqflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) ||
                     (u->defer && !u->taskrun_flag);
    int rc = enter(u, wait_nr, getevents, timeout_ms);
    vx_loop_update_time(loop); /* as the pollers do: see vx__poller.wait */
    loop->stats.wakeups++;
    uint64_t before = loop->stats.events;
    reap_cqes(u);
    if (u->batch_us && wait_nr) {
        uint64_t got = (loop->stats.events - before) / 2; /* about a recv and a send each */
        u->batch = (unsigned)VX__MIN(got / 2, (uint64_t)BATCH_MAX);
    }
    if (rc == -EBUSY || rc == -EAGAIN || rc == -EINTR)
        return rc == -EINTR ? rc : 0; /* CQEs reaped: the next wait submits again */
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- life cycle */

static bool env_flag(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

/* Batched waits, in microseconds: VX_URING_BATCH_US, default BATCH_US, 0 off. */
static unsigned batch_us_setting(void) {
    const char *e = getenv("VX_URING_BATCH_US");
    return e && *e ? (unsigned)strtoul(e, NULL, 10) : BATCH_US;
}

/* Without DEFER_TASKRUN the kernel is older than 6.1; multishot recv needs 6.0. */
static bool kernel_at_least_6_0(void) {
    struct utsname un;
    int major = 0;
    return uname(&un) == 0 && sscanf(un.release, "%d", &major) == 1 && major >= 6;
}

static int ring_setup(uring *u) {
    static const unsigned tiers[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0] && rc == -EINVAL; i++) {
        struct io_uring_params p = {.flags = tiers[i] | IORING_SETUP_CQSIZE,
                                    .cq_entries = CQ_ENTRIES};
        VX__COUNT_SYS(u->loop, OTHER);
        rc = io_uring_queue_init_params(SQ_ENTRIES, &u->ring, &p);
        if (rc < 0)
            continue;
        if (!(p.features & IORING_FEAT_EXT_ARG) || (i > 0 && !kernel_at_least_6_0())) {
            io_uring_queue_exit(&u->ring);
            return -ENOSYS; /* too old for what this engine uses */
        }
        if (i > 0)
            VX__LOG_INFO("uring: kernel refused DEFER_TASKRUN; using plainer ring flags");
        u->enabled = !(p.flags & IORING_SETUP_R_DISABLED);
        u->defer = p.flags & IORING_SETUP_DEFER_TASKRUN;
        u->taskrun_flag = p.flags & IORING_SETUP_TASKRUN_FLAG;
        u->skip_success = p.features & IORING_FEAT_CQE_SKIP;
        u->batch_us = p.features & VX__FEAT_MIN_TIMEOUT ? batch_us_setting() : 0;
    }
    return rc;
}

/* Register the buffer ring: incremental (INC_NBUFS x INC_BUF_SIZE) where
 * the kernel has it, else NBUFS x BUF_SIZE (also with VX_URING_WHOLE_BUFS=1,
 * so that the tests cover that path on new kernels too). */
static int bufs_register(uring *u) {
    size_t ring_sz = NBUFS * sizeof(struct io_uring_buf); /* fits either */
    VX__COUNT_SYS(u->loop, OTHER);
    void *br = mmap(NULL, ring_sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -ENOMEM;
    u->br = br;
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
                                   .ring_entries = INC_NBUFS,
                                   .bgid = BGID,
                                   .VX__BUF_REG_FLAGS = IOU_PBUF_RING_INC};
    int rc = -EINVAL;
    if (!env_flag("VX_URING_WHOLE_BUFS")) {
        VX__COUNT_SYS(u->loop, OTHER);
        rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    }
    if (rc == 0) {
        u->nbufs = INC_NBUFS, u->buf_size = INC_BUF_SIZE;
        return 0;
    }
    reg.ring_entries = NBUFS, reg.VX__BUF_REG_FLAGS = 0; /* kernel < 6.12 */
    VX__COUNT_SYS(u->loop, OTHER);
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0)
        return rc == -EINVAL ? -ENOSYS : rc; /* no buffer rings: kernel < 5.19 */
    u->nbufs = NBUFS, u->buf_size = BUF_SIZE;
    return 0;
}

static int bufs_setup(uring *u) {
    int rc = bufs_register(u);
    if (rc < 0)
        return rc;
    u->boff = vx__calloc(u->nbufs, sizeof *u->boff);
    if (!(u->bufs = vx__malloc((size_t)u->nbufs * u->buf_size)) || !u->boff)
        return -ENOMEM;
    io_uring_buf_ring_init(u->br);
    for (unsigned i = 0; i < u->nbufs; i++)
        recycle(u, i);
    io_uring_buf_ring_advance(u->br, (int)u->nbufs);
    u->br_pending = 0;
    vx__log(VX_LOG_DEBUG, "uring: %u provided buffers of %u KiB%s", u->nbufs, u->buf_size >> 10,
            u->nbufs == INC_NBUFS ? ", consumed incrementally" : "");
    return 0;
}

/* The sparse file table, one slot per fd the process may open (see
 * fixed_register); without it (old kernel, no memory) plain fds serve. */
static void files_setup(uring *u) {
    struct rlimit rl;
    u->no_file = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    unsigned n = rl.rlim_cur > MAX_FIXED ? MAX_FIXED : (unsigned)rl.rlim_cur;
    VX__COUNT_SYS(u->loop, OTHER);
    int rc = io_uring_register_files_sparse(&u->ring, n);
    if (rc < 0)
        vx__log(VX_LOG_DEBUG, "uring: no file table (%s): plain fds", vx_err_name(rc));
    else
        u->nfixed = (int)n;
}

static void release(uring *u, bool ring_up) {
    if (ring_up) {
        if (u->nbufs) /* after the ring is gone the kernel cannot pick a buffer */
            io_uring_unregister_buf_ring(&u->ring, BGID);
        io_uring_queue_exit(&u->ring);
    }
    if (u->br)
        munmap(u->br, NBUFS * sizeof(struct io_uring_buf));
    vx__free(u->bufs);
    vx__free(u->boff);
    for (int32_t i = 0; i < u->nops; i++) {
        vx__outq_clear(&u->ops[i]->orphan, &u->loop->chunks);
        vx__free(u->ops[i]);
    }
    vx__outq_clear(&u->graveyard, &u->loop->chunks);
    vx__free(u->ops);
    vx__free(u);
}

static int uring_init(vx_loop *loop) {
    if (env_flag("VX_URING_DISABLE"))
        return -ENOSYS;
    uring *u = vx__calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    u->loop = loop;
    u->free_op = -1;
    int rc = ring_setup(u);
    if (rc < 0) {
        release(u, false);
        return rc;
    }
    if ((rc = bufs_setup(u)) < 0) {
        release(u, true);
        return rc;
    }
    files_setup(u);
    loop->engine_data = u;
    return 0;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Every handle is closing (vx_loop_free closed them): let the cancels finish
 * so each handle gets its last CQE, and the file reads complete, bounded in
 * time; then force the handles. A read still in flight then is left to the
 * kernel with its memory (logged): freeing what it writes into is worse. */
static void uring_fini(vx_loop *loop) {
    uring *u = U(loop);
    if (!u)
        return;
    uint64_t deadline = mono_ms() + FINI_DRAIN_MS;
    while (u->closing || u->freads) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            break;
        int rc = enter(u, 1, true, (int)VX__MIN(deadline - now, 100));
        reap_cqes(u);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
            break; /* e.g. -EEXIST: freed on another thread than it ran on */
    }
    if (u->closing)
        VX__LOG_WARN("uring: %u handles still busy in the kernel at loop free; forcing",
                     u->closing);
    if (u->freads)
        VX__LOG_ERROR("uring: %u file reads still in flight at loop free; their buffers "
                      "are left to the kernel",
                      u->freads);
    for (vx__list *it = loop->handles.next; u->closing && it != &loop->handles; it = it->next) {
        vx__handle *h = VX__CONTAINER_OF(it, vx__handle, node);
        if (closing(h) && !(h->hflags & VX__HF_CLOSED)) {
            h->inflight = 0;
            finish(u, h);
        }
    }
    if (u->enobufs)
        vx__log(VX_LOG_DEBUG, "uring: buffer ring ran dry %llu times",
                (unsigned long long)u->enobufs);
    release(u, true);
    loop->engine_data = NULL;
}

const vx__engine vx__uring_engine = {
    .name = "uring",
    .init = uring_init,
    .fini = uring_fini,
    .wait = uring_wait,
    .listen = uring_listen,
    .read = uring_read,
    .flush = uring_flush,
    .connect = uring_connect,
    .close = uring_close,
    .io = uring_io,
    .read_again = uring_read_again,
    .file_read = uring_file_read,
};
