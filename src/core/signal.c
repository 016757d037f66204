/* Signals through one signalfd per loop: the signal is blocked in the
 * calling thread and read as data, so handlers run as ordinary callbacks.
 * Signals go to any thread that does not block them: block them in every
 * thread (before creating threads), or run the loop in the only thread. */
#include "core/loop.h"
#include <sys/signalfd.h>
#include <unistd.h>

struct vx_signal {
    vx__list link;
    vx_loop *loop;
    int signum;
    vx_signal_cb cb;
    void *data;
};

static void on_signalfd(vx_io *io, int fd, unsigned events, void *data) {
    VX__UNUSED(io);
    VX__UNUSED(events);
    vx_loop *loop = data;
    struct signalfd_siginfo si[8];
    for (;;) {
        VX__COUNT_SYS(loop, READ);
        ssize_t n = read(fd, si, sizeof si);
        if (n <= 0)
            return;
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            vx__list *it = loop->signals.next, *next;
            for (; it != &loop->signals; it = next) {
                next = it->next;
                vx_signal *s = VX__CONTAINER_OF(it, vx_signal, link);
                if (s->signum == (int)si[i].ssi_signo)
                    s->cb(s, s->signum, s->data);
            }
        }
    }
}

static int watch(vx_loop *loop, int signum) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signum);
    sigset_t mask = loop->sig_mask;
    sigaddset(&mask, signum);
    int fd = signalfd(loop->sig_fd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (loop->sig_fd < 0) {
        int rc = vx_io_start(loop, fd, VX_READABLE, on_signalfd, loop, &loop->sig_io);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        loop->sig_fd = fd;
    }
    pthread_sigmask(SIG_BLOCK, &one, NULL);
    loop->sig_mask = mask;
    return 0;
}

int vx_signal_start(vx_loop *loop, int signum, vx_signal_cb cb, void *data, vx_signal **out) {
    if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP || !cb || !out)
        return -EINVAL;
    vx_signal *s = vx__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (!sigismember(&loop->sig_mask, signum)) {
        int rc = watch(loop, signum);
        if (rc < 0) {
            vx__free(s);
            return rc;
        }
    }
    s->loop = loop;
    s->signum = signum;
    s->cb = cb;
    s->data = data;
    vx__list_push(&loop->signals, &s->link);
    *out = s;
    return 0;
}

void vx_signal_free(vx_signal *s) {
    vx_loop *loop = s->loop;
    vx__list_remove(&s->link);
    for (vx__list *it = loop->signals.next; it != &loop->signals; it = it->next)
        if (VX__CONTAINER_OF(it, vx_signal, link)->signum == s->signum)
            goto done; /* still watched by another */
    sigdelset(&loop->sig_mask, s->signum);
    signalfd(loop->sig_fd, &loop->sig_mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, s->signum);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
done:
    vx__free(s);
}

void vx__signals_free_all(vx_loop *loop) {
    while (!vx__list_empty(&loop->signals))
        vx_signal_free(VX__CONTAINER_OF(loop->signals.next, vx_signal, link));
}
