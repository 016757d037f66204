/* Readiness of foreign fds (and of the loop's own eventfd and signalfd). */
#include "core/loop.h"

struct vx_io {
    vx__handle h;
    vx_io_cb cb;
    void *data;
};

int vx_io_start(vx_loop *loop, int fd, unsigned events, vx_io_cb cb, void *data, vx_io **out) {
    if (fd < 0 || !cb || !out || (events & ~(unsigned)(VX_READABLE | VX_WRITABLE)))
        return -EINVAL;
    if (loop->freeing)
        return -ECANCELED;
    vx_io *io = vx__calloc(1, sizeof *io);
    if (!io)
        return -ENOMEM;
    int rc = vx__handle_init(loop, &io->h, VX__H_IO, fd);
    if (rc < 0) {
        vx__free(io);
        return rc;
    }
    io->cb = cb;
    io->data = data;
    if (events && (rc = loop->engine->io(io, events)) < 0) {
        vx_io_free(io);
        return rc;
    }
    *out = io;
    return 0;
}

int vx_io_update(vx_io *io, unsigned events) {
    if (io->h.hflags & VX__HF_CLOSING)
        return -EBADF;
    if (events & ~(unsigned)(VX_READABLE | VX_WRITABLE))
        return -EINVAL;
    return io->h.loop->engine->io(io, events);
}

void vx_io_free(vx_io *io) {
    if (io->h.hflags & VX__HF_CLOSING)
        return;
    io->h.hflags |= VX__HF_CLOSING;
    io->h.loop->engine->close(&io->h);
}

void vx__io_ready(vx_io *io, unsigned events) {
    if (!(io->h.hflags & VX__HF_CLOSING))
        io->cb(io, io->h.fd, events, io->data);
}

void vx__io_reap(vx_io *io) { vx__free(io); }
