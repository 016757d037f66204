/* Connection logic common to every engine: input hand-off, the output queue
 * and its water marks, half-close, graceful and abortive close, idle timeout.
 * Engines perform the I/O and report here through the vx__conn_* calls. */
#include "net/conn.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define DEFAULT_HIGH (1u << 20)
#define DEFAULT_LOW (256u << 10)
#define READ_RESERVE (16u << 10)
#define MAX_PENDING_INPUT (16u << 20) /* unconsumed input past this is a broken peer or app */
#define LINGER_MS 2000                /* after our FIN, wait this long for the peer's */
#define CLOSE_FLUSH_MS 30000          /* a closing conn whose peer reads nothing */
/* Each queued file holds an fd: past FILES_HIGH of them the queue counts as
 * above the high-water mark whatever its bytes, so that a peer pipelining
 * requests for small files cannot make one connection hold hundreds of fds. */
#define FILES_HIGH 16
#define FILES_LOW 4
#define SENDFILE_MAX 0x7ffff000u /* the most one sendfile(2) moves anyway */

static void finish_close(vx_conn *c);

static void fire_timer(vx__tnode *n);

vx_conn *vx__conn_new(vx_loop *loop, int fd, bool nodelay) {
    vx_conn *c = vx__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (vx__heap_reserve(&loop->timers) < 0) {
        vx__free(c);
        return NULL;
    }
    if (vx__handle_init(loop, &c->h, VX__H_CONN, fd) < 0) {
        vx__heap_unreserve(&loop->timers);
        vx__free(c);
        return NULL;
    }
    vx__tnode_init(&c->timer, fire_timer);
    c->low = DEFAULT_LOW;
    c->high = DEFAULT_HIGH;
    if (nodelay) {
        int one = 1;
        VX__COUNT_SYS(loop, SETSOCKOPT);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    loop->stats.conns_live++;
    return c;
}

/* A socket connected elsewhere (handed over by another loop, inherited):
 * from now on it is ours, so every failure closes it. */
int vx_conn_adopt(vx_loop *loop, int fd, bool nodelay, vx_conn **out) {
    if (fd < 0)
        return -EBADF;
    int rc = !out ? -EINVAL : loop->freeing ? -ECANCELED : 0;
    VX__COUNT_SYS(loop, OTHER);
    int fl = rc ? 0 : fcntl(fd, F_GETFL);
    if (fl >= 0 && !rc && !(fl & O_NONBLOCK)) {
        VX__COUNT_SYS(loop, OTHER);
        fl = fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    if (!rc && fl >= 0) {
        VX__COUNT_SYS(loop, OTHER);
        fl = fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    if (!rc && fl < 0)
        rc = -errno;
    vx_conn *c = rc ? NULL : vx__conn_new(loop, fd, nodelay);
    if (!c) {
        if (!rc) {
            rc = -ENOMEM;
            VX__COUNT_ERR(loop, NOMEM);
        }
        VX__COUNT_SYS(loop, CLOSE);
        close(fd);
        return rc;
    }
    loop->stats.accepts++;
    *out = c;
    return 0;
}

/* ------------------------------------------------------------- accessors */

void *vx_conn_data(const vx_conn *c) { return c->data; }
void vx_conn_set_data(vx_conn *c, void *data) { c->data = data; }
vx_loop *vx_conn_loop(const vx_conn *c) { return c->h.loop; }
int vx_conn_fd(const vx_conn *c) { return c->h.fd; }
size_t vx_conn_queued(const vx_conn *c) { return c->out.bytes; }

static bool dead(const vx_conn *c) { return c->h.hflags & VX__HF_CLOSING; }

bool vx__conn_wants_read(const vx_conn *c) {
    if (dead(c) || !(c->flags & VX__CF_STARTED))
        return false;
    if (c->flags & (VX__CF_CONNECTING | VX__CF_EOF))
        return false;
    if (c->flags & VX__CF_LINGER)
        return true;
    return !(c->flags & (VX__CF_PAUSED | VX__CF_HWM | VX__CF_CLOSING));
}

bool vx__conn_wants_write(const vx_conn *c) { return c->out.bytes && !dead(c); }

static void update_reading(vx_conn *c) {
    if (!dead(c) && !(c->flags & VX__CF_CONNECTING))
        c->h.loop->engine->read(c);
}

void vx__conn_schedule_again(vx_conn *c) {
    if (c->flags & VX__CF_AGAIN)
        return;
    c->flags |= VX__CF_AGAIN;
    c->again_next = c->h.loop->again_head;
    c->h.loop->again_head = c;
}

void vx__conn_schedule_flush(vx_conn *c) {
    if (c->flags & (VX__CF_IN_FLUSH | VX__CF_WBLOCKED))
        return;
    c->flags |= VX__CF_IN_FLUSH;
    c->flush_next = c->h.loop->flush_head;
    c->h.loop->flush_head = c;
}

/* Activity: O(1), the timer node is only moved when it fires (lazy deadline). */
static void touch(vx_conn *c) {
    if (c->idle_ms)
        c->idle_deadline = c->h.loop->now + c->idle_ms;
}

static void arm_deadline(vx_conn *c, uint64_t ms) {
    c->idle_deadline = c->h.loop->now + ms;
    if (!vx__tnode_armed(&c->timer) || c->timer.deadline > c->idle_deadline)
        vx__heap_arm(&c->h.loop->timers, &c->timer, c->idle_deadline);
}

/* ------------------------------------------------------------- public API */

int vx_conn_start(vx_conn *c, const vx_conn_cbs *cbs, void *data) {
    if (!cbs || !cbs->on_data)
        return -EINVAL;
    if (c->flags & VX__CF_STARTED)
        return -EALREADY;
    if (dead(c) || (c->flags & VX__CF_CLOSING))
        return -EPIPE;
    c->cbs = cbs;
    c->data = data;
    c->flags |= VX__CF_STARTED;
    update_reading(c);
    return 0;
}

static bool above_high(const vx_conn *c) {
    return c->high && (c->out.bytes > c->high || c->out.files > FILES_HIGH);
}

static bool below_low(const vx_conn *c) {
    return c->out.bytes <= c->low && c->out.files <= FILES_LOW;
}

/* The queue grew: send it at the end of the turn, pause reading past the
 * high-water mark. */
static void queued(vx_conn *c) {
    vx__conn_schedule_flush(c);
    if (above_high(c) && !(c->flags & VX__CF_HWM)) {
        c->flags |= VX__CF_HWM;
        update_reading(c);
    }
}

static bool writable(const vx_conn *c) {
    return !dead(c) && !(c->flags & (VX__CF_CLOSING | VX__CF_SHUT_WANTED));
}

int vx_conn_write(vx_conn *c, const void *data, size_t len) {
    if (!writable(c))
        return -EPIPE;
    if (len == 0)
        return 0;
    int rc = vx__outq_append(&c->out, &c->h.loop->chunks, data, len);
    if (rc < 0)
        return rc;
    queued(c);
    return 0;
}

int vx_conn_sendfile(vx_conn *c, int fd, uint64_t off, uint64_t len) {
    if (fd < 0)
        return -EBADF;
    bool range_ok = len <= INT64_MAX && off <= INT64_MAX - len; /* sendfile's off_t */
    int rc = !writable(c) ? -EPIPE : !range_ok ? -EINVAL : 0;
    if (rc == 0 && len == 0) {
        close(fd);
        return 0;
    }
    if (rc == 0 && (rc = vx__outq_append_file(&c->out, fd, off, len)) == 0) {
        queued(c);
        return 0;
    }
    close(fd); /* ours even on failure: the caller has one rule */
    return rc;
}

bool vx_conn_congested(const vx_conn *c) { return c->flags & VX__CF_HWM; }

int vx__conn_reserve(vx_conn *c, size_t n, char **out) {
    if (!writable(c))
        return -EPIPE;
    *out = vx__outq_reserve(&c->out, &c->h.loop->chunks, n);
    return *out ? 0 : -ENOMEM;
}

void vx__conn_commit(vx_conn *c, size_t n) {
    if (!n)
        return;
    vx__outq_commit(&c->out, n);
    queued(c);
}

void vx_conn_set_watermarks(vx_conn *c, size_t low, size_t high) {
    c->high = (uint32_t)VX__MIN(high, UINT32_MAX);
    c->low = (uint32_t)VX__MIN(VX__MIN(low, high), UINT32_MAX);
}

void vx_conn_pause(vx_conn *c) {
    if (c->flags & VX__CF_PAUSED)
        return;
    c->flags |= VX__CF_PAUSED;
    update_reading(c);
}

static void resumed(vx_conn *c) {
    update_reading(c);
    /* Input kept while paused may hold whole messages: hand it over again. */
    if (c->in.len && vx__conn_wants_read(c))
        vx__conn_schedule_again(c);
}

void vx_conn_resume(vx_conn *c) {
    if (!(c->flags & VX__CF_PAUSED))
        return;
    c->flags &= ~VX__CF_PAUSED;
    resumed(c);
}

void vx_conn_set_idle_timeout(vx_conn *c, uint64_t ms) {
    if (dead(c))
        return;
    if (ms > UINT32_MAX)
        ms = UINT32_MAX;
    c->idle_ms = (uint32_t)ms;
    if (!ms) {
        if (!(c->flags & (VX__CF_CONNECTING | VX__CF_CLOSING)))
            vx__heap_disarm(&c->h.loop->timers, &c->timer);
        return;
    }
    arm_deadline(c, ms);
}

static void shutdown_write(vx_conn *c) {
    if (c->flags & VX__CF_SHUT_DONE)
        return;
    c->flags |= VX__CF_SHUT_DONE;
    VX__COUNT_SYS(c->h.loop, SHUTDOWN);
    shutdown(c->h.fd, SHUT_WR);
}

int vx_conn_shutdown(vx_conn *c) {
    if (dead(c) || (c->flags & VX__CF_CLOSING))
        return -EPIPE;
    c->flags |= VX__CF_SHUT_WANTED;
    if (!c->out.bytes && !(c->flags & VX__CF_CONNECTING))
        shutdown_write(c);
    return 0;
}

/* Output is flushed: close now if the peer is done (its FIN came, or it
 * said it sends nothing more and no input of it waits), else send FIN and
 * wait for the peer's (discarding input) so that unread input does not turn
 * our close into a reset that destroys the tail of what we sent. Skipping
 * the linger saves a shutdown, a read of the EOF and a wakeup for every
 * short-lived connection; a peer that sends after saying it would not may
 * get a reset, as from nginx. */
static void close_drained(vx_conn *c) {
    if ((c->flags & VX__CF_EOF) || ((c->flags & VX__CF_PEER_DONE) && !c->in.len)) {
        finish_close(c);
        return;
    }
    shutdown_write(c);
    c->flags |= VX__CF_LINGER;
    arm_deadline(c, LINGER_MS);
    c->idle_ms = 0; /* the linger deadline is final */
    update_reading(c);
}

void vx__conn_peer_done(vx_conn *c) { c->flags |= VX__CF_PEER_DONE; }

void vx_conn_close(vx_conn *c) {
    if (dead(c) || (c->flags & VX__CF_CLOSING))
        return;
    c->flags |= VX__CF_CLOSING;
    if ((c->flags & VX__CF_CONNECTING) || !(c->flags & VX__CF_STARTED)) {
        finish_close(c);
        return;
    }
    update_reading(c);
    if (!c->out.bytes) {
        close_drained(c);
        return;
    }
    if (!c->idle_ms)
        vx_conn_set_idle_timeout(c, CLOSE_FLUSH_MS);
}

void vx_conn_abort(vx_conn *c, bool rst) {
    if (dead(c))
        return;
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        VX__COUNT_SYS(c->h.loop, SETSOCKOPT);
        setsockopt(c->h.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    finish_close(c);
}

/* ------------------------------------------------------- engine reports */

char *vx__conn_read_buf(vx_conn *c, size_t *cap) {
    if (!c->in.len) {
        *cap = VX__SCRATCH_SIZE;
        return c->h.loop->scratch;
    }
    if (vx__buf_reserve(&c->in, READ_RESERVE) < 0)
        return NULL;
    *cap = c->in.cap - c->in.len;
    return c->in.data + c->in.len;
}

static void fail(vx_conn *c, int err) {
    if (!c->close_err)
        c->close_err = err;
    finish_close(c);
}

/* Hand data[0..len) to the user; keep what it did not consume. */
static void deliver(vx_conn *c, char *data, size_t len, bool from_in) {
    c->flags |= VX__CF_IN_CB;
    size_t used = c->cbs->on_data(c, data, len);
    c->flags &= ~VX__CF_IN_CB;
    if (used > len)
        used = len;
    if (dead(c))
        return;
    if (from_in) {
        vx__buf_consume(&c->in, used);
    } else if (used < len && vx__buf_append(&c->in, data + used, len - used) < 0) {
        VX__COUNT_ERR(c->h.loop, NOMEM);
        fail(c, -ENOMEM);
        return;
    }
    if (c->in.len > MAX_PENDING_INPUT) {
        VX__LOG_WARN("conn fd %d: %u unconsumed input bytes, closing", c->h.fd, c->in.len);
        fail(c, -ENOBUFS);
    }
}

void vx__conn_input(vx_conn *c, char *p, size_t n) {
    vx_loop *loop = c->h.loop;
    loop->stats.bytes_in += n;
    loop->stats.reads++;
    touch(c);
    if (c->flags & VX__CF_LINGER)
        return; /* closing: input is discarded */
    if (!c->in.len) {
        deliver(c, p, n, false);
        return;
    }
    if (p == c->in.data + c->in.len) {
        c->in.len += (uint32_t)n;
    } else if (vx__buf_append(&c->in, p, n) < 0) {
        VX__COUNT_ERR(loop, NOMEM);
        fail(c, -ENOMEM);
        return;
    }
    deliver(c, c->in.data, c->in.len, true);
}

void vx__conn_eof(vx_conn *c) {
    /* Input held while paused is due before the FIN behind it: a resume put c
     * on the again list for it, but the engine may read the FIN first. Hand
     * it over now; should that pause reading again, leave the FIN where it is
     * (it stays readable: the engine sees it again once reading resumes). */
    if (c->in.len && (c->flags & VX__CF_AGAIN) && !(c->flags & VX__CF_LINGER) &&
        vx__conn_wants_read(c)) {
        deliver(c, c->in.data, c->in.len, true);
        if (dead(c) || !vx__conn_wants_read(c))
            return;
    }
    c->flags |= VX__CF_EOF;
    update_reading(c);
    if (c->flags & VX__CF_CLOSING) {
        if (c->flags & VX__CF_LINGER)
            finish_close(c);
        return;
    }
    if (c->cbs->on_eof)
        c->cbs->on_eof(c);
    else
        vx_conn_close(c);
}

void vx__conn_error(vx_conn *c, int err, int kind) {
    if (err == -ECONNRESET || err == -EPIPE)
        VX__COUNT_ERR(c->h.loop, RESET); /* the peer's doing, not a read/write failure */
    else if (kind >= 0)
        c->h.loop->stats.errors[kind]++;
    if (c->flags & VX__CF_LINGER)
        err = 0; /* we were closing anyway; the peer just did not say goodbye */
    fail(c, err);
}

/* sendfile(2) has no MSG_NOSIGNAL: on a socket the peer reset it raises
 * SIGPIPE, which kills a host that did not ignore it. So the first file sent
 * on a thread blocks SIGPIPE in that thread for good (one syscall per
 * thread, not two per call), and an EPIPE takes the pending signal back. */
static void sigpipe_block_once(vx_loop *loop, sigset_t *set) {
    static _Thread_local bool blocked;
    sigemptyset(set);
    sigaddset(set, SIGPIPE);
    if (blocked)
        return;
    VX__COUNT_SYS(loop, OTHER);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    blocked = true;
}

ssize_t vx__conn_send_file(vx_conn *c, const vx__chunk *f, size_t *offered) {
    sigset_t pipe_set;
    sigpipe_block_once(c->h.loop, &pipe_set);
    off_t pos = (off_t)f->fpos;
    *offered = (size_t)VX__MIN(f->fleft, (uint64_t)SENDFILE_MAX);
    VX__COUNT_SYS(c->h.loop, SENDFILE);
    ssize_t n = sendfile(c->h.fd, f->fd, &pos, *offered);
    if (n < 0 && errno == EPIPE) {
        VX__COUNT_SYS(c->h.loop, OTHER);
        sigtimedwait(&pipe_set, NULL, &(struct timespec){0}); /* ours: take it back */
        errno = EPIPE;
    }
    return n;
}

void vx__conn_file_short(vx_conn *c, const vx__chunk *f) {
    VX__LOG_WARN("conn fd %d: file fd %d ended %llu bytes short of the range queued "
                 "(truncated under us?): closing, the framing is lost",
                 c->h.fd, f->fd, (unsigned long long)f->fleft);
    vx__conn_error(c, -ENODATA, VX_ERRK_WRITE);
}

void vx__conn_sent(vx_conn *c, size_t n) {
    vx_loop *loop = c->h.loop;
    loop->stats.bytes_out += n;
    loop->stats.writes++;
    vx__outq_consume(&c->out, &loop->chunks, n);
    touch(c);
    if ((c->flags & VX__CF_HWM) && below_low(c)) {
        c->flags &= ~VX__CF_HWM;
        resumed(c);
        if ((c->flags & VX__CF_STARTED) && c->cbs->on_drain && !(c->flags & VX__CF_CLOSING))
            c->cbs->on_drain(c);
        if (dead(c))
            return;
    }
    if (c->out.bytes)
        return;
    if (c->flags & VX__CF_CLOSING)
        close_drained(c);
    else if (c->flags & VX__CF_SHUT_WANTED)
        shutdown_write(c);
}

void vx__conn_connected(vx_conn *c, int err) {
    vx_loop *loop = c->h.loop;
    vx_connect_cb cb = c->connect_cb;
    vx__heap_disarm(&loop->timers, &c->timer);
    c->flags &= ~VX__CF_CONNECTING;
    if (err < 0) {
        VX__COUNT_ERR(loop, CONNECT);
        c->connect_cb = NULL;
        finish_close(c); /* the user never saw c: no close callback */
        if (cb)
            cb(NULL, err, c->data);
        return;
    }
    c->connect_cb = NULL;
    cb(c, 0, c->data);
    if (dead(c))
        return;
    if (c->out.bytes)
        vx__conn_schedule_flush(c);
    if (c->flags & VX__CF_CLOSING && !c->out.bytes)
        close_drained(c);
}

/* ---------------------------------------------------------------- timers */

static void fire_timer(vx__tnode *n) {
    vx_conn *c = VX__CONTAINER_OF(n, vx_conn, timer);
    vx_loop *loop = c->h.loop;
    if (c->flags & VX__CF_CONNECTING) {
        VX__COUNT_ERR(loop, TIMEOUT);
        vx__conn_connected(c, -ETIMEDOUT);
        return;
    }
    if (loop->now < c->idle_deadline) {
        vx__heap_arm(&loop->timers, n, c->idle_deadline);
        return;
    }
    if (c->flags & VX__CF_LINGER) {
        finish_close(c);
        return;
    }
    VX__COUNT_ERR(loop, TIMEOUT);
    fail(c, -ETIMEDOUT);
}

/* ------------------------------------------------------------- closing */

static void unlink_again(vx_conn *c) {
    vx_conn **pp = &c->h.loop->again_head;
    while (*pp && *pp != c)
        pp = &(*pp)->again_next;
    if (*pp)
        *pp = c->again_next;
    c->flags &= ~VX__CF_AGAIN;
}

static void unlink_flush(vx_conn *c) {
    vx_conn **pp = &c->h.loop->flush_head;
    while (*pp && *pp != c)
        pp = &(*pp)->flush_next;
    if (*pp)
        *pp = c->flush_next;
    c->flags &= ~VX__CF_IN_FLUSH;
}

/* Hand c to the engine for closing; the close callback runs when it is reaped. */
static void finish_close(vx_conn *c) {
    vx_loop *loop = c->h.loop;
    if (dead(c))
        return;
    c->h.hflags |= VX__HF_CLOSING;
    vx__heap_disarm(&loop->timers, &c->timer);
    if (c->flags & VX__CF_AGAIN)
        unlink_again(c);
    if (c->flags & VX__CF_IN_FLUSH)
        unlink_flush(c);
    loop->stats.conns_live--;
    /* The engine first: a send in flight may still point into the queue, and
     * the engine then takes the chunks over until its completion. */
    loop->engine->close(&c->h);
    vx__outq_clear(&c->out, &loop->chunks);
}

void vx__conn_teardown(vx_conn *c) {
    if (!c->close_err)
        c->close_err = -ECANCELED;
    finish_close(c);
}

void vx__conn_reap(vx_conn *c) {
    vx_loop *loop = c->h.loop;
    if ((c->flags & VX__CF_STARTED) && c->cbs->on_close)
        c->cbs->on_close(c, c->close_err);
    vx__heap_disarm(&loop->timers, &c->timer); /* in case on_close touched it */
    vx__buf_free(&c->in);
    vx__heap_unreserve(&loop->timers);
    vx__free(c);
}

/* ------------------------------------------------------- end of a turn */

void vx__conn_run_again(vx_loop *loop) {
    vx_conn *list = loop->again_head;
    loop->again_head = NULL;
    while (list) {
        vx_conn *c = list;
        list = c->again_next;
        c->flags &= ~VX__CF_AGAIN;
        if (!vx__conn_wants_read(c))
            continue;
        if (c->in.len && !(c->flags & VX__CF_LINGER)) {
            deliver(c, c->in.data, c->in.len, true);
            if (!vx__conn_wants_read(c))
                continue;
        }
        if (loop->engine->read_again)
            loop->engine->read_again(c);
    }
}

void vx__conn_flush_all(vx_loop *loop) {
    vx_conn *c;
    while ((c = loop->flush_head)) {
        loop->flush_head = c->flush_next;
        c->flags &= ~VX__CF_IN_FLUSH;
        if (dead(c) || (c->flags & (VX__CF_CONNECTING | VX__CF_WBLOCKED)) || !c->out.bytes)
            continue;
        loop->engine->flush(c);
    }
}
