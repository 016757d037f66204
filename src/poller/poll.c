/* poll(2): no fd limit, cost linear in the number of watched fds. The kernel
 * reads one dense struct pollfd array; a parallel array holds the handle of
 * each entry, and h->slot is the handle's index in both. Removal moves the
 * last entry into the hole, so it is O(1) and the array never has gaps.
 *
 * Callbacks run while the array is walked and may remove any entry (moving
 * the last one) or append new ones. The walk goes from the last entry down
 * and clears each entry's revents before dispatching it, so:
 *  - an entry moved into a lower slot was already visited and carries
 *    revents 0: it is not dispatched twice;
 *  - an entry appended during the walk lies above it and carries revents 0:
 *    a new handle that reuses a removed fd number never gets the old result;
 *  - a removed entry is gone from the array: it is never dispatched.
 * Only live entries are read, so no stale handle pointer is ever followed. */
#include "poller/poller.h"
#include <poll.h>

#define INITIAL_CAP 64

typedef struct poll_state {
    struct pollfd *fds;   /* what the kernel reads */
    vx__handle **handles; /* handles[i] owns fds[i] */
    int len, cap;
} poll_state;

static int poll_init(vx_loop *loop) {
    poll_state *s = vx__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    loop->poller_data = s;
    return 0;
}

static void poll_fini(vx_loop *loop) {
    poll_state *s = loop->poller_data;
    vx__free(s->fds);
    vx__free(s->handles);
    vx__free(s);
    loop->poller_data = NULL;
}

/* Room for one more entry. The arrays grow one after the other: if the
 * second realloc fails the first one is merely larger than cap says. */
static int grow(poll_state *s) {
    if (s->len < s->cap)
        return 0;
    int cap = s->cap ? s->cap * 2 : INITIAL_CAP;
    struct pollfd *fds = vx__realloc(s->fds, (size_t)cap * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    s->fds = fds;
    vx__handle **handles = vx__realloc(s->handles, (size_t)cap * sizeof *handles);
    if (!handles)
        return -ENOMEM;
    s->handles = handles;
    s->cap = cap;
    return 0;
}

static short to_poll(uint32_t events) {
    return (short)((events & VX__EV_IN ? POLLIN : 0) | (events & VX__EV_OUT ? POLLOUT : 0));
}

/* Take h out of the array: the last entry (with its revents) fills the hole. */
static void remove_slot(poll_state *s, vx__handle *h) {
    int i = h->slot, last = --s->len;
    if (i != last) {
        s->fds[i] = s->fds[last];
        s->handles[i] = s->handles[last];
        s->handles[i]->slot = i;
    }
    h->slot = -1;
}

static int poll_update(vx_loop *loop, vx__handle *h, uint32_t events) {
    poll_state *s = loop->poller_data;
    if (h->events == events)
        return 0;
    if (!events) {
        if (h->slot >= 0)
            remove_slot(s, h);
        h->events = 0;
        return 0;
    }
    if (h->slot < 0) {
        int rc = grow(s);
        if (rc < 0)
            return rc;
        h->slot = s->len++;
        s->handles[h->slot] = h;
        s->fds[h->slot] = (struct pollfd){.fd = h->fd};
    }
    struct pollfd *p = &s->fds[h->slot];
    p->events = to_poll(events);
    /* Interest dropped during a walk: do not report what is no longer wanted.
     * Errors and hang-ups stay, as poll reports them unasked. */
    p->revents &= (short)(p->events | POLLERR | POLLHUP | POLLNVAL);
    h->events = events;
    return 0;
}

/* The fd is closed right after this: it only has to leave the array. */
static void poll_forget(vx_loop *loop, vx__handle *h) {
    poll_state *s = loop->poller_data;
    if (h->slot >= 0)
        remove_slot(s, h);
    h->events = 0;
}

static uint32_t from_poll(short re) {
    return (re & (POLLIN | POLLPRI) ? VX__EV_IN : 0) | (re & POLLOUT ? VX__EV_OUT : 0) |
           (re & (POLLERR | POLLNVAL) ? VX__EV_ERR : 0) | (re & POLLHUP ? VX__EV_HUP : 0);
}

static int poll_wait(vx_loop *loop, int timeout_ms) {
    poll_state *s = loop->poller_data;
    VX__COUNT_SYS(loop, WAIT);
    int n = poll(s->fds, (nfds_t)s->len, timeout_ms);
    if (n < 0)
        return -errno;
    vx_loop_update_time(loop); /* see vx__poller.wait */

    int left = n; /* entries with revents not seen yet: stop early once all are */
    for (int i = s->len - 1; i >= 0 && left > 0; i--) {
        if (i >= s->len)
            continue; /* callbacks removed several entries: the top is gone */
        short re = s->fds[i].revents;
        if (!re)
            continue;
        s->fds[i].revents = 0; /* before dispatch: the entry may move below us */
        left--;
        vx__reactor_ready(loop, s->handles[i], from_poll(re));
    }
    return n;
}

const vx__poller vx__poller_poll = {
    .name = "poll",
    .edge = false,
    .init = poll_init,
    .fini = poll_fini,
    .update = poll_update,
    .forget = poll_forget,
    .wait = poll_wait,
};
