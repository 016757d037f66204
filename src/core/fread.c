/* Asynchronous file reads (vx_file_read): the loop's thread never waits for
 * a disk. The io_uring engine submits a READ and completes it like any other
 * operation (engine->file_read). The reactor engines have no such operation,
 * so the read is a pread(2) job on a worker pool (vx_work): the loop's own
 * pool if the application set one, else a small one the loop starts on first
 * use, owns and frees in vx_loop_free (after vx__work_fini, when no job of it
 * is left). A pool thread blocked on the disk holds up only the reads queued
 * behind it, never the loop; FILE_POOL_THREADS of them keep that many reads
 * in flight, as a disk queue wants. */
#include "core/loop.h"
#include <unistd.h>

#define FILE_POOL_THREADS 4
#define FILE_POOL_QUEUE 1024 /* reads waiting; past it -EAGAIN (back-pressure) */

void vx__fread_done(vx__fread *fr, ssize_t n) {
    vx_loop *loop = fr->loop;
    vx_read_cb cb = fr->cb;
    void *arg = fr->arg;
    loop->stats.file_reads++;
    if (n > 0)
        loop->stats.file_bytes += (uint64_t)n;
    vx__free(fr);
    cb(arg, n);
}

static void pread_job(void *arg) {
    vx__fread *fr = arg;
    ssize_t n;
    do
        n = pread(fr->fd, fr->buf, fr->len, (off_t)fr->off);
    while (n < 0 && errno == EINTR);
    fr->res = n < 0 ? -errno : n;
}

static void pread_done(void *arg, int status) {
    vx__fread *fr = arg;
    vx__fread_done(fr, status < 0 ? status : fr->res);
}

/* The pool reads go to: the application's, else the loop's own. */
static int file_pool(vx_loop *loop) {
    if (loop->pool)
        return 0;
    if (!loop->file_pool) {
        int rc = vx_pool_new(&loop->file_pool, FILE_POOL_THREADS, FILE_POOL_QUEUE);
        if (rc < 0)
            return rc;
    }
    vx_loop_set_pool(loop, loop->file_pool);
    return 0;
}

int vx_file_read(vx_loop *loop, int fd, void *buf, size_t len, uint64_t off, vx_read_cb cb,
                 void *arg) {
    if (!cb || fd < 0 || off > INT64_MAX)
        return -EINVAL;
    if (loop->freeing)
        return -ECANCELED;
    vx__fread *fr = vx__malloc(sizeof *fr);
    if (!fr)
        return -ENOMEM;
    *fr = (vx__fread){
        .loop = loop, .fd = fd, .buf = buf, .len = len, .off = off, .cb = cb, .arg = arg};
    int rc;
    if (loop->engine->file_read)
        rc = loop->engine->file_read(fr);
    else if ((rc = file_pool(loop)) == 0)
        rc = vx_work(loop, pread_job, pread_done, fr);
    if (rc < 0)
        vx__free(fr);
    return rc;
}
