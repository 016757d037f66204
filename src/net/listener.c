/* Listening sockets. Accepting is the engine's operation; this file owns the
 * socket, hands new connections to the user, and handles fd exhaustion:
 * on EMFILE/ENFILE (or ENOBUFS/ENOMEM) accepting pauses for a short while
 * instead of spinning on a listener that stays readable, the refusals are
 * counted, and the reason is logged once per episode. */
#include "net/conn.h"
#include "net/sock.h"
#include <stdio.h>
#include <sys/un.h>
#include <unistd.h>

#define RETRY_MS 100

struct vx_listener {
    vx__handle h;
    vx_accept_cb cb;
    void *data;
    bool nodelay;
    bool exhausted; /* inside an fd-exhaustion episode */
    uint16_t port;
    char *unix_path;
    vx__tnode retry;
};

static void retry_accept(vx__tnode *n) {
    vx_listener *l = VX__CONTAINER_OF(n, vx_listener, retry);
    l->h.loop->engine->listen(l, true);
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
    int fd = vx__sock_listen(loop, &a, o->backlog, o->reuseport);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
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
    l->nodelay = !o->unix_path && !o->no_delay_off;
    l->port = o->unix_path ? 0 : vx__sock_port(fd);
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

uint16_t vx_listener_port(const vx_listener *l) { return l->port; }
int vx_listener_fd(const vx_listener *l) { return l->h.fd; }

void vx__listener_accepted(vx_listener *l, int fd) {
    vx_loop *loop = l->h.loop;
    if (l->exhausted) {
        l->exhausted = false;
        VX__LOG_INFO("listener fd %d: accepting again", l->h.fd);
    }
    vx_conn *c = vx__conn_new(loop, fd, l->nodelay);
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
    vx__heap_disarm(&l->h.loop->timers, &l->retry);
    if (l->unix_path)
        unlink(l->unix_path); /* now: the caller may bind the path again at once */
    l->h.loop->engine->close(&l->h);
}

void vx__listener_reap(vx_listener *l) {
    vx__free(l->unix_path);
    vx__heap_unreserve(&l->h.loop->timers);
    vx__free(l);
}
