/* The reactor engine: performs accept, read, write and connect when a
 * readiness poller (select, poll, epoll, epoll-et) says an fd is ready.
 *
 * A new connection is read once before the poller watches it (probe_first).
 * Level-triggered pollers: one read per readable event (fair between
 * connections, like the hand-written loops); write interest only while a
 * write is blocked. Edge-triggered: interest is registered once, when first
 * needed (reading, or a blocked write), reads go on
 * until a short read (the kernel raises a new edge for data that arrives
 * later) with a budget per turn, and writes wait for the next edge.
 * Output goes in queue order: memory chunks with one writev, a file segment
 * with sendfile(2) (vx__conn_send_file), then on to what follows it. */
#include "net/conn.h"
#include "poller/poller.h"
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 64
#define EDGE_READ_BUDGET 16
#define MAX_IOV 64

static bool edge(const vx_loop *loop) { return loop->poller->edge; }

/* A failure is logged at most once a second (a select backend past
 * FD_SETSIZE would otherwise log every accept), with the count in between. */
static void poller_failed(vx__handle *h, int rc) {
    vx_loop *loop = h->loop;
    VX__COUNT_ERR(loop, POLLER);
    if (loop->poller_log_at && loop->now < loop->poller_log_at + 1000) {
        loop->poller_log_quiet++;
        return;
    }
    VX__LOG_WARN("%s: cannot watch fd %d: %s (%llu more since the last such line)",
                 loop->poller->name, h->fd, vx_err_name(rc),
                 (unsigned long long)loop->poller_log_quiet);
    loop->poller_log_at = loop->now ? loop->now : 1;
    loop->poller_log_quiet = 0;
}

static int poller_set(vx__handle *h, uint32_t events) {
    int rc = h->loop->poller->update(h->loop, h, events);
    if (rc < 0)
        poller_failed(h, rc);
    return rc;
}

/* ------------------------------------------------------------ reading */

/* One read; false when the caller should stop reading for now. */
static bool read_once(vx_conn *c, bool *short_read) {
    size_t cap;
    char *p = vx__conn_read_buf(c, &cap);
    if (!p) {
        vx__conn_error(c, -ENOMEM, VX_ERRK_NOMEM);
        return false;
    }
    VX__COUNT_SYS(c->h.loop, READ);
    /* recv, not read: conns are sockets, and it skips the VFS layer's
     * per-call checks and notification hooks. */
    ssize_t n = recv(c->h.fd, p, cap, 0);
    if (n > 0) {
        *short_read = (size_t)n < cap;
        vx__conn_input(c, p, (size_t)n);
        return true;
    }
    if (n == 0) {
        vx__conn_eof(c);
        return false;
    }
    if (errno == EAGAIN || errno == EINTR)
        return false;
    vx__conn_error(c, -errno, VX_ERRK_READ);
    return false;
}

/* Edge mode stops at a short read: data that arrives later raises a new
 * edge. Not so for a FIN already queued behind the data (RDHUP), nor after a
 * pause or a spent budget: then only EAGAIN or EOF ends the reading. */
static void do_read(vx_conn *c, bool to_eagain) {
    bool short_read = false;
    if (!edge(c->h.loop)) {
        read_once(c, &short_read);
        return;
    }
    for (int i = 0; i < EDGE_READ_BUDGET; i++) {
        if (!vx__conn_wants_read(c) || !read_once(c, &short_read) || (short_read && !to_eagain))
            return;
    }
    vx__conn_schedule_again(c); /* budget spent: more may be waiting, and no new edge comes */
}

static uint32_t lt_interest(const vx_conn *c) {
    return (vx__conn_wants_read(c) ? VX__EV_IN : 0) | (c->flags & VX__CF_WBLOCKED ? VX__EV_OUT : 0);
}

/* A new connection is read once before its fd is watched, at the end of the
 * turn that accepted it: a client that speaks first has usually sent its
 * request by then, and a connection served and closed within that turn costs
 * no epoll_ctl at all (an HTTP request on a connection of its own: ADD and
 * DEL were 2 of its 6 syscalls). Not for fds the poller could never watch:
 * those are refused before anything is read. */
static bool probe_first(const vx_conn *c) {
    int max_fd = c->h.loop->poller->max_fd;
    return !(c->flags & VX__CF_PROBED) && !c->h.events && (!max_fd || c->h.fd < max_fd);
}

/* A connection the poller refuses (select: fd >= FD_SETSIZE; epoll: ENOMEM,
 * ENOSPC) would never hear from its peer again: close it with the reason. */
static void reactor_read(vx_conn *c) {
    if (probe_first(c) && vx__conn_wants_read(c)) {
        vx__conn_schedule_again(c); /* reactor_read_again reads, then watches */
        return;
    }
    int rc = 0;
    if (!edge(c->h.loop))
        rc = poller_set(&c->h, lt_interest(c));
    else if (!c->h.events) { /* once, for the connection's life, when first needed */
        if (vx__conn_wants_read(c) || (c->flags & VX__CF_WBLOCKED))
            rc = poller_set(&c->h, VX__EV_IN | VX__EV_OUT);
    } else if (vx__conn_wants_read(c))
        vx__conn_schedule_again(c); /* resumed: the edge may have passed while paused */
    if (rc < 0)
        vx__conn_error(c, rc, -1);
}

static void reactor_read_again(vx_conn *c) {
    if (!(c->flags & VX__CF_PROBED)) {
        c->flags |= VX__CF_PROBED;
        if (!c->h.events) {
            do_read(c, false);
            if (!(c->h.hflags & VX__HF_CLOSING))
                reactor_read(c);
            return;
        }
    }
    if (edge(c->h.loop))
        do_read(c, true);
}

/* ------------------------------------------------------------ writing */

/* One send of (up to MAX_IOV chunks of) the queue's memory up to its first
 * file segment; *offered is what it tried. MSG_MORE when a file segment
 * follows: a response head then leaves in one segment with the start of its
 * body (the sendfile comes right after) instead of in a packet of its own. */
static ssize_t send_queue(vx_conn *c, size_t *offered) {
    struct iovec iov[MAX_IOV];
    int cnt = vx__outq_iov(&c->out, iov, MAX_IOV);
    *offered = 0;
    for (int i = 0; i < cnt; i++)
        *offered += iov[i].iov_len;
    int flags = MSG_NOSIGNAL | (cnt < MAX_IOV && *offered < c->out.bytes ? MSG_MORE : 0);
    VX__COUNT_SYS(c->h.loop, WRITE);
    if (cnt == 1)
        return send(c->h.fd, iov[0].iov_base, iov[0].iov_len, flags);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
    return sendmsg(c->h.fd, &msg, flags);
}

/* Write interest: level-triggered pollers while blocked; edge mode from the
 * first block on (a connection served within its first turn never needs it). */
static void set_blocked(vx_conn *c, bool blocked) {
    if (blocked == !!(c->flags & VX__CF_WBLOCKED))
        return;
    c->flags ^= VX__CF_WBLOCKED;
    if (c->h.hflags & VX__HF_CLOSING)
        return;
    int rc = 0;
    if (!edge(c->h.loop))
        rc = poller_set(&c->h, lt_interest(c));
    else if (blocked && !c->h.events)
        rc = poller_set(&c->h, VX__EV_IN | VX__EV_OUT);
    if (rc < 0) /* it would never hear that the socket has room again */
        vx__conn_error(c, rc, -1);
}

/* Memory chunks with writev, file segments with sendfile, in queue order. */
static void reactor_flush(vx_conn *c) {
    while (c->out.bytes) {
        size_t offered;
        const vx__chunk *f = vx__outq_file(&c->out);
        ssize_t n = f ? vx__conn_send_file(c, f, &offered) : send_queue(c, &offered);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                set_blocked(c, true);
                return;
            }
            vx__conn_error(c, -errno, VX_ERRK_WRITE);
            return;
        }
        if (n == 0 && f) {
            vx__conn_file_short(c, f);
            return;
        }
        vx__conn_sent(c, (size_t)n);
        if (c->h.hflags & VX__HF_CLOSING)
            return;
        /* Short: the socket buffer is full, or (sendfile) the file ended. Edge
         * mode asks again at once, since only a full buffer brings a new edge;
         * a level-triggered poller reports a socket that still has room. */
        if ((size_t)n < offered && !(f && edge(c->h.loop))) {
            set_blocked(c, true);
            return;
        }
    }
    set_blocked(c, false);
}

/* ---------------------------------------------------------- connecting */

static int reactor_connect(vx_conn *c, const struct sockaddr *sa, socklen_t len) {
    c->flags |= VX__CF_PROBED; /* the peer of an outgoing conn rarely speaks first */
    VX__COUNT_SYS(c->h.loop, CONNECT);
    if (connect(c->h.fd, sa, len) < 0 && errno != EINPROGRESS)
        return -errno;
    /* Writable means finished, even when connect() already succeeded (Unix
     * sockets): the callback must run later, never from inside vx_connect(). */
    return poller_set(&c->h, VX__EV_OUT);
}

static void finish_connect(vx_conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    VX__COUNT_SYS(c->h.loop, OTHER);
    if (getsockopt(c->h.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (!edge(c->h.loop))
        poller_set(&c->h, 0);
    vx__conn_connected(c, -err);
}

/* ------------------------------------------------------------ dispatch */

/* Error or hang-up while not reading: level-triggered pollers would report
 * it forever, so the connection ends here. */
static void conn_hangup(vx_conn *c, uint32_t ev) {
    int err = 0;
    socklen_t len = sizeof err;
    if (ev & VX__EV_ERR)
        getsockopt(c->h.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err)
        vx__conn_error(c, -err, -1);
    else if (!edge(c->h.loop))
        vx__conn_error(c, (c->flags & VX__CF_EOF) && (c->flags & VX__CF_SHUT_DONE) ? 0 : -EPIPE,
                       -1);
}

static void conn_ready(vx_conn *c, uint32_t ev) {
    if (c->flags & VX__CF_CONNECTING) {
        finish_connect(c);
        return;
    }
    if ((ev & VX__EV_OUT) && (c->flags & VX__CF_WBLOCKED)) {
        reactor_flush(c); /* clears WBLOCKED (and write interest) once drained */
        if (c->h.hflags & VX__HF_CLOSING)
            return;
    }
    if (!(ev & (VX__EV_IN | VX__EV_ERR | VX__EV_HUP)))
        return;
    if (vx__conn_wants_read(c))
        do_read(c, ev & VX__EV_RDHUP);
    else if ((ev & (VX__EV_ERR | VX__EV_HUP)) && !(c->flags & VX__CF_WBLOCKED))
        conn_hangup(c, ev);
}

static void accept_ready(vx_listener *l) {
    vx__handle *h = (vx__handle *)l;
    for (int i = 0; i < ACCEPT_BATCH && h->events && !(h->hflags & VX__HF_CLOSING); i++) {
        int fd = vx__listener_accept(l);
        if (fd < 0) {
            if (fd != -EAGAIN)
                vx__listener_error(l, fd);
            return;
        }
        vx__listener_accepted(l, fd);
    }
}

void vx__reactor_ready(vx_loop *loop, vx__handle *h, uint32_t ev) {
    loop->stats.events++;
    if (h->hflags & VX__HF_CLOSING)
        return; /* closed by an earlier callback of this batch */
    switch (h->type) {
    case VX__H_CONN:
        conn_ready((vx_conn *)h, ev);
        break;
    case VX__H_LISTENER:
        accept_ready((vx_listener *)h);
        break;
    default:
        vx__io_ready((vx_io *)h, (ev & (VX__EV_IN | VX__EV_ERR | VX__EV_HUP) ? VX_READABLE : 0) |
                                     (ev & VX__EV_OUT ? VX_WRITABLE : 0));
    }
}

/* ------------------------------------------------------------ the rest */

static int reactor_listen(vx_listener *l, bool on) {
    return poller_set((vx__handle *)l, on ? VX__EV_IN : 0);
}

static int reactor_io(vx_io *io, unsigned events) {
    return poller_set((vx__handle *)io, (events & VX_READABLE ? VX__EV_IN : 0) |
                                            (events & VX_WRITABLE ? VX__EV_OUT : 0));
}

static void reactor_close(vx__handle *h) {
    vx_loop *loop = h->loop;
    h->hflags |= VX__HF_CLOSING;
    if (h->type == VX__H_IO) {
        if (h->events)
            poller_set(h, 0); /* the fd stays open: really remove it */
    } else {
        if (h->events || h->slot >= 0)
            loop->poller->forget(loop, h);
        if (h->type == VX__H_LISTENER)
            vx__listener_sweep((vx_listener *)h);
        VX__COUNT_SYS(loop, CLOSE);
        close(h->fd);
    }
    vx__handle_closed(h);
}

static int reactor_wait(vx_loop *loop, int timeout_ms) {
    int n = loop->poller->wait(loop, timeout_ms);
    loop->stats.wakeups++;
    return n < 0 ? n : 0;
}

static int reactor_init(vx_loop *loop) { return loop->poller->init(loop); }

static void reactor_fini(vx_loop *loop) { loop->poller->fini(loop); }

const vx__engine vx__reactor_engine = {
    .name = "reactor",
    .init = reactor_init,
    .fini = reactor_fini,
    .wait = reactor_wait,
    .listen = reactor_listen,
    .read = reactor_read,
    .flush = reactor_flush,
    .connect = reactor_connect,
    .close = reactor_close,
    .io = reactor_io,
    .read_again = reactor_read_again,
};
