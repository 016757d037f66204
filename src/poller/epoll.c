/* epoll, level-triggered (the default) or edge-triggered. Handles are found
 * through data.ptr, so there is no fd table. Edge mode registers IN|OUT once
 * (when the reactor first needs it) and never touches it again: no
 * epoll_ctl on the request path (connections only; listeners and foreign fds
 * stay level-triggered). Closing an fd removes it from the epoll set,
 * so forget() costs no syscall (except for listeners, see ep_forget). */
#include "poller/poller.h"
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 1024

typedef struct epoll_state {
    int epfd;
    struct epoll_event events[MAX_EVENTS];
} epoll_state;

static int ep_init(vx_loop *loop) {
    epoll_state *s = vx__malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = -errno;
        vx__free(s);
        return err;
    }
    loop->poller_data = s;
    return 0;
}

static void ep_fini(vx_loop *loop) {
    epoll_state *s = loop->poller_data;
    close(s->epfd);
    vx__free(s);
    loop->poller_data = NULL;
}

static uint32_t to_epoll(uint32_t ev, bool edge) {
    if (edge)
        return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    return (ev & VX__EV_IN ? EPOLLIN : 0) | (ev & VX__EV_OUT ? EPOLLOUT : 0);
}

static int update(vx_loop *loop, vx__handle *h, uint32_t events, bool edge) {
    epoll_state *s = loop->poller_data;
    /* Listeners and foreign fds keep level-triggered semantics in edge mode:
     * accept pauses on EMFILE and vx_io promises level-triggered callbacks. */
    edge = edge && h->type == VX__H_CONN;
    uint32_t old = h->events;
    if (old == events || (edge && old && events))
        return h->events = events, 0;
    int op = !old ? EPOLL_CTL_ADD : !events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    struct epoll_event ev = {.events = to_epoll(events, edge), .data.ptr = h};
    /* Only valid with ADD. Listeners never see MOD: their interest is IN or
     * nothing (pausing on EMFILE is a DEL), so the flag survives a pause. */
    if (op == EPOLL_CTL_ADD && (h->hflags & VX__HF_EXCLUSIVE))
        ev.events |= EPOLLEXCLUSIVE;
    VX__COUNT_SYS(loop, CTL);
    if (epoll_ctl(s->epfd, op, h->fd, &ev) < 0)
        return -errno;
    h->events = events;
    return 0;
}

static int ep_update_lt(vx_loop *loop, vx__handle *h, uint32_t events) {
    return update(loop, h, events, false);
}
static int ep_update_et(vx_loop *loop, vx__handle *h, uint32_t events) {
    return update(loop, h, events, true);
}

/* Closing the fd removes it from the set only when it was the last fd of its
 * open file. A listener may share its file with other fds (vx_listen_fd dups
 * an inherited or shared socket), and then its registration would outlive the
 * handle, reporting a freed pointer: remove listeners explicitly. */
static void ep_forget(vx_loop *loop, vx__handle *h) {
    if (h->type == VX__H_LISTENER && h->events) {
        epoll_state *s = loop->poller_data;
        VX__COUNT_SYS(loop, CTL);
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, h->fd, NULL);
    }
    h->events = 0;
}

static int ep_wait(vx_loop *loop, int timeout_ms) {
    epoll_state *s = loop->poller_data;
    VX__COUNT_SYS(loop, WAIT);
    int n = epoll_wait(s->epfd, s->events, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return -errno;
    vx_loop_update_time(loop); /* see vx__poller.wait */
    for (int i = 0; i < n; i++) {
        uint32_t e = s->events[i].events;
        uint32_t ev = (e & (EPOLLIN | EPOLLRDHUP) ? VX__EV_IN : 0) |
                      (e & EPOLLRDHUP ? VX__EV_RDHUP : 0) | (e & EPOLLOUT ? VX__EV_OUT : 0) |
                      (e & EPOLLERR ? VX__EV_ERR : 0) | (e & EPOLLHUP ? VX__EV_HUP : 0);
        vx__reactor_ready(loop, s->events[i].data.ptr, ev);
    }
    return n;
}

const vx__poller vx__poller_epoll = {
    .name = "epoll",
    .edge = false,
    .init = ep_init,
    .fini = ep_fini,
    .update = ep_update_lt,
    .forget = ep_forget,
    .wait = ep_wait,
};

const vx__poller vx__poller_epoll_et = {
    .name = "epoll-et",
    .edge = true,
    .init = ep_init,
    .fini = ep_fini,
    .update = ep_update_et,
    .forget = ep_forget,
    .wait = ep_wait,
};
