/* Listening sockets. Accepting is the engine's operation; this file owns the
 * socket, hands new connections to the user, and handles fd exhaustion:
 * on EMFILE/ENFILE (or ENOBUFS/ENOMEM) accepting pauses for a short while
 * instead of spinning on a listener that stays readable, the refusals are
 * counted, and the reason is logged once per episode. vx_listen_fd() listens
 * on a dup of a socket bound elsewhere (a master process, a server's other loops). */
#include "net/conn.h"
#include "net/sock.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/un.h>
#include <unistd.h>

#define RETRY_MS 100
#define SWEEP_MAX 64 /* a bound, should others keep the queue full */

struct vx_listener {
    vx__handle h;
    vx_accept_cb cb;
    void *data;
    bool nodelay_each; /* TCP_NODELAY wanted and not inherited from the socket */
    bool exhausted;    /* inside an fd-exhaustion episode */
    uint16_t port;
    char *unix_path;
    vx__tnode retry;
};

static void retry_accept(vx__tnode *n) {
    vx_listener *l = VX__CONTAINER_OF(n, vx_listener, retry);
    l->h.loop->engine->listen(l, true);
}

/* Common tail of vx_listen and vx_listen_fd: l (with unix_path set or not)
 * takes fd, which is closed on failure; l is freed on failure. */
static int listener_start(vx_loop *loop, vx_listener *l, int fd, const vx_listen_opts *o,
                          bool is_unix, vx_accept_cb cb, void *data, vx_listener **out) {
    int rc;
    if ((rc = vx__heap_reserve(&loop->timers)) < 0) {
        close(fd);
        goto fail;
    }
    if ((rc = vx__handle_init(loop, &l->h, VX__H_LISTENER, fd)) < 0) {
        vx__heap_unreserve(&loop->timers);
        close(fd);
        goto fail;
    }
    l->cb = cb;
    l->data = data;
    l->nodelay_each = !is_unix && !(o && o->no_delay_off);
    if (l->nodelay_each) {
        VX__COUNT_SYS(loop, OTHER);
        l->nodelay_each = !vx__sock_nodelay(fd);
    }
    l->port = is_unix ? 0 : vx__sock_port(fd);
    if (o && o->exclusive)
        l->h.hflags |= VX__HF_EXCLUSIVE;
    vx__tnode_init(&l->retry, retry_accept);
    if ((rc = loop->engine->listen(l, true)) < 0) {
        vx_listener_close(l);
        return rc;
    }
    *out = l;
    return 0;
fail:
    vx__free(l->unix_path);
    vx__free(l);
    return rc;
}

int vx_listen(vx_loop *loop, const vx_listen_opts *o, vx_accept_cb cb, void *data,
              vx_listener **out) {
    if (!o || !cb || !out)
        return -EINVAL;
    if (loop->freeing)
        return -ECANCELED;
    vx__addr a;
    int rc = vx__addr_parse(&a, o->host, o->port, o->unix_path);
    if (rc < 0)
        return rc;
    vx_listener *l = vx__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    if (o->unix_path && !(l->unix_path = vx__strdup(o->unix_path))) {
        vx__free(l);
        return -ENOMEM;
    }
    int fd = vx__sock_listen(loop, &a, o->backlog, o->reuseport, !o->no_delay_off);
    if (fd < 0) {
        vx__free(l->unix_path);
        vx__free(l);
        return fd;
    }
    return listener_start(loop, l, fd, o, o->unix_path != NULL, cb, data, out);
}

/* The fd is someone else's (a master process, the other loops of a server):
 * we take a private dup, never unlink its Unix path, and find out the port
 * and the family from the socket itself. */
int vx_listen_fd(vx_loop *loop, int fd, const vx_listen_opts *o, vx_accept_cb cb, void *data,
                 vx_listener **out) {
    if (fd < 0 || !cb || !out)
        return -EINVAL;
    if (loop->freeing)
        return -ECANCELED;
    int listening = 0;
    socklen_t optlen = sizeof listening;
    VX__COUNT_SYS(loop, OTHER);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0)
        return -errno;
    if (!listening)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    VX__COUNT_SYS(loop, OTHER);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    vx_listener *l = vx__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    VX__COUNT_SYS(loop, OTHER);
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (nfd < 0) {
        int err = -errno;
        vx__free(l);
        return err;
    }
    /* O_NONBLOCK belongs to the open file: every holder of fd sees it too. */
    VX__COUNT_SYS(loop, OTHER);
    int fl = fcntl(nfd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) {
        VX__COUNT_SYS(loop, OTHER);
        fl = fcntl(nfd, F_SETFL, fl | O_NONBLOCK);
    }
    if (fl < 0) {
        int err = -errno;
        close(nfd);
        vx__free(l);
        return err;
    }
    return listener_start(loop, l, nfd, o, ss.ss_family == AF_UNIX, cb, data, out);
}

uint16_t vx_listener_port(const vx_listener *l) { return l->port; }
int vx_listener_fd(const vx_listener *l) { return l->h.fd; }

void vx__listener_accepted(vx_listener *l, int fd) {
    vx_loop *loop = l->h.loop;
    if (l->exhausted) {
        l->exhausted = false;
        VX__LOG_INFO("listener fd %d: accepting again", l->h.fd);
    }
    vx_conn *c = vx__conn_new(loop, fd, l->nodelay_each);
    if (!c) {
        VX__COUNT_ERR(loop, NOMEM);
        VX__LOG_WARN("listener fd %d: out of memory for a new connection, dropped", l->h.fd);
        VX__COUNT_SYS(loop, CLOSE);
        close(fd);
        return;
    }
    loop->stats.accepts++;
    l->cb(l, c, l->data);
}

int vx__listener_accept(vx_listener *l) {
    for (;;) {
        VX__COUNT_SYS(l->h.loop, ACCEPT);
        int fd = accept4(l->h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EINTR && errno != ECONNABORTED)
            return -errno;
    }
}

/* Loops that share a socket wait on it exclusively (EPOLLEXCLUSIVE; io_uring
 * arms every accept that way), so the kernel wakes one of them per
 * connection. A loop that closes its listener may have taken that wakeup
 * and not acted on it: the connection then waits in the queue, unannounced
 * to the other loops, until the next one arrives (a reload under load left
 * clients hanging so). Once this loop's wait is gone, new arrivals wake the
 * others; what is queued now is taken here and served like the connections
 * in flight, which the closing loop drains anyway. */
void vx__listener_sweep(vx_listener *l) {
    if (!(l->h.hflags & VX__HF_EXCLUSIVE) || l->h.loop->freeing)
        return;
    for (int i = 0; i < SWEEP_MAX; i++) {
        int fd = vx__listener_accept(l);
        if (fd < 0)
            return; /* EAGAIN: nothing queued; else the others' to take */
        vx__listener_accepted(l, fd);
    }
}

void vx__listener_error(vx_listener *l, int err) {
    vx_loop *loop = l->h.loop;
    bool exhaustion = err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
    if (!exhaustion) {
        VX__COUNT_ERR(loop, ACCEPT_OTHER);
        VX__LOG_WARN("listener fd %d: accept failed: %s (%s)", l->h.fd, vx_err_name(err),
                     vx_strerror(err));
        return;
    }
    if (err == -EMFILE || err == -ENFILE)
        VX__COUNT_ERR(loop, ACCEPT_EMFILE);
    else
        VX__COUNT_ERR(loop, NOMEM);
    if (!l->exhausted) {
        l->exhausted = true;
        VX__LOG_WARN(
            "listener fd %d: accept failed: %s (%s); pausing accepts, retrying every %d ms",
            l->h.fd, vx_err_name(err), vx_strerror(err), RETRY_MS);
    }
    loop->engine->listen(l, false);
    vx__heap_arm(&loop->timers, &l->retry, loop->now + RETRY_MS);
}

void vx_listener_close(vx_listener *l) {
    if (l->h.hflags & VX__HF_CLOSING)
        return;
    l->h.hflags |= VX__HF_CLOSING;
    l->h.loop->listeners_closing++;
    vx__heap_disarm(&l->h.loop->timers, &l->retry);
    if (l->unix_path)
        unlink(l->unix_path); /* now: the caller may bind the path again at once */
    l->h.loop->engine->close(&l->h);
}

void vx__listener_reap(vx_listener *l) {
    l->h.loop->listeners_closing--;
    vx__free(l->unix_path);
    vx__heap_unreserve(&l->h.loop->timers);
    vx__free(l);
}
