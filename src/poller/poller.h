/* The readiness poller contract: a backend is one file filling one const
 * table with these few functions (redis ae_*.c, nginx ngx_event_actions_t).
 * The reactor engine (engine/reactor.c) turns readiness into operations. */
#ifndef VX_POLLER_POLLER_H
#define VX_POLLER_POLLER_H

#include "core/loop.h"

typedef struct vx__poller {
    const char *name;
    /* Edge-triggered: events are reported once per change, so the reactor
     * reads and writes until EAGAIN and never changes interest per request. */
    bool edge;
    /* fds from this one on cannot be watched (select: FD_SETSIZE); 0: no limit */
    int max_fd;
    int (*init)(vx_loop *loop);
    void (*fini)(vx_loop *loop);
    /* Register, change or drop (events == 0) the interest of h in VX__EV_IN /
     * VX__EV_OUT; h->events holds the previous interest and is updated here. */
    int (*update)(vx_loop *loop, vx__handle *h, uint32_t events);
    /* h->fd is about to be closed: forget it (epoll needs no syscall for that). */
    void (*forget)(vx_loop *loop, vx__handle *h);
    /* Wait up to timeout_ms (-1: forever) and call vx__reactor_ready() for each
     * ready handle. Returns the number of events, or -errno (-EINTR is fine).
     * Refresh the loop's clock between the two: the callbacks stamp activity
     * (idle and header deadlines) with it, and the time from before a long
     * sleep would make those deadlines fall due early. */
    int (*wait)(vx_loop *loop, int timeout_ms);
} vx__poller;

/* engine/reactor.c: h is ready for VX__EV_* events. */
void vx__reactor_ready(vx_loop *loop, vx__handle *h, uint32_t events);

extern const vx__poller vx__poller_select;
extern const vx__poller vx__poller_poll;
extern const vx__poller vx__poller_epoll;
extern const vx__poller vx__poller_epoll_et;

#endif
