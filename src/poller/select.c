/* select(2): the portable baseline. Interest lives in two fd_sets that are
 * copied before each call (select overwrites its arguments), and a table
 * indexed by fd finds the handle of a ready fd.
 *
 * fd_set is a fixed bitmap of FD_SETSIZE (1024) bits: FD_SET on a larger fd
 * writes past it (undefined behaviour, glibc aborts with _FORTIFY_SOURCE), so
 * such fds are refused with -EINVAL and the reactor closes the connection.
 * This is the backend's real limit, not a bug: poll and epoll have none.
 *
 * Callbacks run while the result sets are walked and may drop any handle,
 * whose fd number may be reused by a new handle in the same batch. Dropping
 * interest also clears the fd in the result sets, so the walk never hands a
 * result meant for the old handle to a removed one or to its successor. */
#include "poller/poller.h"
#include <sys/select.h>

typedef struct select_state {
    fd_set rfds, wfds; /* interest */
    fd_set rres, wres; /* results of the current wait; cleared as interest drops */
    int maxfd;         /* highest registered fd, -1 when none */
    int refused_fd;    /* last fd refused for being too large (logged once) */
    vx__handle *table[FD_SETSIZE];
} select_state;

static int sel_init(vx_loop *loop) {
    select_state *s = vx__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    FD_ZERO(&s->rfds);
    FD_ZERO(&s->wfds);
    FD_ZERO(&s->rres);
    FD_ZERO(&s->wres);
    s->maxfd = -1;
    s->refused_fd = -1;
    loop->poller_data = s;
    return 0;
}

static void sel_fini(vx_loop *loop) {
    vx__free(loop->poller_data);
    loop->poller_data = NULL;
}

/* Refusing is the contract for fds past the bitmap; say why once per fd, since
 * a level-triggered caller may retry the same handle. */
static int refuse(select_state *s, int fd) {
    if (fd != s->refused_fd) {
        s->refused_fd = fd;
        VX__LOG_WARN("select: fd %d >= FD_SETSIZE (%d): refused; use poll or epoll for more "
                     "connections",
                     fd, FD_SETSIZE);
    }
    return -EINVAL;
}

/* Turn fd on or off in an interest set; off also clears its pending result. */
static void set_bit(fd_set *set, fd_set *res, int fd, bool on) {
    if (on) {
        FD_SET(fd, set);
        return;
    }
    FD_CLR(fd, set);
    FD_CLR(fd, res); /* not wanted any more: the walk must not report it */
}

static void drop(select_state *s, vx__handle *h) {
    int fd = h->fd;
    set_bit(&s->rfds, &s->rres, fd, false);
    set_bit(&s->wfds, &s->wres, fd, false);
    s->table[fd] = NULL;
    /* The top fd went away: walk down to the next registered one, so select
     * does not scan a tail of dead bits. */
    if (fd == s->maxfd)
        while (s->maxfd >= 0 && !s->table[s->maxfd])
            s->maxfd--;
}

static int sel_update(vx_loop *loop, vx__handle *h, uint32_t events) {
    select_state *s = loop->poller_data;
    int fd = h->fd;
    if (h->events == events)
        return 0;
    if (fd >= FD_SETSIZE) /* never registered: only "drop" can reach here with events 0 */
        return events ? refuse(s, fd) : (h->events = 0, 0);
    if (!events) {
        drop(s, h);
        h->events = 0;
        return 0;
    }
    if (s->table[fd] && s->table[fd] != h)
        return -EEXIST; /* like epoll: one handle per fd */
    s->table[fd] = h;
    set_bit(&s->rfds, &s->rres, fd, events & VX__EV_IN);
    set_bit(&s->wfds, &s->wres, fd, events & VX__EV_OUT);
    if (fd > s->maxfd)
        s->maxfd = fd;
    h->events = events;
    return 0;
}

/* The fd is closed right after this: it only has to leave our sets. */
static void sel_forget(vx_loop *loop, vx__handle *h) {
    select_state *s = loop->poller_data;
    if (h->fd < FD_SETSIZE && s->table[h->fd] == h)
        drop(s, h);
    h->events = 0;
    h->slot = -1;
}

static int sel_wait(vx_loop *loop, int timeout_ms) {
    select_state *s = loop->poller_data;
    struct timeval tv, *tvp = NULL;
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    s->rres = s->rfds;
    s->wres = s->wfds;
    int top = s->maxfd;
    VX__COUNT_SYS(loop, WAIT);
    int n = select(top + 1, &s->rres, &s->wres, NULL, tvp);
    if (n < 0) {
        int err = -errno;
        FD_ZERO(&s->rres); /* undefined after a failure: keep drop()'s FD_CLR meaningful */
        FD_ZERO(&s->wres);
        return err;
    }
    vx_loop_update_time(loop); /* see vx__poller.wait */
    /* Fds registered during the walk have no result bits (they were not in
     * the copies), and dropped ones lost theirs in drop(). */
    int left = n; /* bits not seen yet: stop early once all are */
    for (int fd = 0; fd <= top && left > 0; fd++) {
        bool r = FD_ISSET(fd, &s->rres), w = FD_ISSET(fd, &s->wres);
        uint32_t ev = (r ? VX__EV_IN : 0) | (w ? VX__EV_OUT : 0);
        left -= r + w;
        if (!ev || !s->table[fd])
            continue;
        FD_CLR(fd, &s->rres);
        FD_CLR(fd, &s->wres);
        vx__reactor_ready(loop, s->table[fd], ev);
    }
    return n;
}

const vx__poller vx__poller_select = {
    .name = "select",
    .edge = false,
    .max_fd = FD_SETSIZE,
    .init = sel_init,
    .fini = sel_fini,
    .update = sel_update,
    .forget = sel_forget,
    .wait = sel_wait,
};
