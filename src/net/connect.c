/* Outgoing connections: socket, non-blocking connect through the engine, a
 * timeout on the connection's timer node. Every outcome after the socket
 * exists reaches the callback, on the loop, later. */
#include "net/conn.h"
#include "net/sock.h"
#include <unistd.h>

static void report_failure(void *arg) {
    vx_conn *c = arg;
    vx__conn_connected(c, c->close_err);
}

int vx_connect(vx_loop *loop, const vx_connect_opts *o, vx_connect_cb cb, void *data) {
    if (!o || !cb)
        return -EINVAL;
    if (loop->freeing)
        return -ECANCELED;
    vx__addr a;
    int rc = vx__addr_parse(&a, o->host, o->port, o->unix_path);
    if (rc < 0)
        return rc;
    int fd = vx__sock_new(loop, &a);
    if (fd < 0)
        return fd;
    vx_conn *c = vx__conn_new(loop, fd, !o->unix_path && !o->no_delay_off);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->flags |= VX__CF_CONNECTING;
    c->connect_cb = cb;
    c->data = data;
    if (o->timeout_ms)
        vx__heap_arm(&loop->timers, &c->timer, loop->now + o->timeout_ms);
    rc = loop->engine->connect(c, (const struct sockaddr *)&a.ss, a.len);
    if (rc < 0) {
        /* Refused, unreachable, no such path: the callback still gets it. */
        c->close_err = rc;
        if (vx_loop_defer(loop, report_failure, c) < 0) {
            c->connect_cb = NULL;
            vx__conn_connected(c, rc); /* callback would run now: undo instead */
            return -ENOMEM;
        }
    }
    return 0;
}
