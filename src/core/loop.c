/* The loop: backend choice, the turn, deferred and posted callbacks, and the
 * reaping of closed handles.
 *
 * One turn: wait in the engine (which dispatches I/O), then run due timers,
 * deferred callbacks, postponed reads, flush every connection with queued
 * output (one write each: this is what makes pipelining cheap), and free the
 * handles that closed, after their close callbacks. */
#include "core/loop.h"
#include "poller/poller.h"
#include <limits.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static const char *const backend_names[VX_BACKEND__COUNT] = {
    "auto", "select", "poll", "epoll", "epoll-et", "uring",
};

int vx_backend_parse(const char *name) {
    for (int i = 0; name && i < VX_BACKEND__COUNT; i++)
        if (!strcmp(name, backend_names[i]))
            return i;
    return -EINVAL;
}

const char *vx_backend_name(vx_backend b) {
    return (unsigned)b < VX_BACKEND__COUNT ? backend_names[b] : "?";
}

int vx_backend_resolve(vx_backend b) {
    vx_loop *probe;
    int rc = vx_loop_new(&probe, &(vx_loop_opts){.backend = b});
    if (rc < 0)
        return rc;
    rc = (int)probe->backend;
    vx_loop_free(probe);
    return rc;
}

static const vx__poller *poller_of(vx_backend b) {
    switch (b) {
    case VX_BACKEND_SELECT:
        return &vx__poller_select;
    case VX_BACKEND_POLL:
        return &vx__poller_poll;
    case VX_BACKEND_EPOLL:
        return &vx__poller_epoll;
    case VX_BACKEND_EPOLL_ET:
        return &vx__poller_epoll_et;
    default:
        return NULL;
    }
}

static int engine_start(vx_loop *loop, vx_backend b) {
    loop->backend = b;
    loop->poller = poller_of(b);
    loop->engine = b == VX_BACKEND_URING ? &vx__uring_engine : &vx__reactor_engine;
    return loop->engine->init(loop);
}

/* auto: VX_BACKEND from the environment, else uring if it works, else epoll. */
static int choose_backend(vx_loop *loop, vx_backend want) {
    if (want == VX_BACKEND_AUTO) {
        const char *env = getenv("VX_BACKEND");
        int b = env ? vx_backend_parse(env) : -EINVAL;
        if (env && b < 0)
            VX__LOG_WARN("VX_BACKEND=%s is not a backend; choosing automatically", env);
        want = b > 0 ? (vx_backend)b : VX_BACKEND_AUTO;
    }
    if (want != VX_BACKEND_AUTO)
        return engine_start(loop, want);
    int rc = engine_start(loop, VX_BACKEND_URING);
    if (rc == 0)
        return 0;
    VX__LOG_INFO("io_uring unavailable (%s: %s); using epoll", vx_err_name(rc), vx_strerror(rc));
    return engine_start(loop, VX_BACKEND_EPOLL);
}

static uint64_t clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void vx_loop_update_time(vx_loop *loop) { loop->now = clock_ms(); }
uint64_t vx_loop_now(const vx_loop *loop) { return loop->now; }
const char *vx_loop_backend(const vx_loop *loop) { return vx_backend_name(loop->backend); }

int vx__tasks_push(vx__tasks *t, vx_fn fn, void *arg) {
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        vx__task *v = vx__realloc(t->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->len++] = (vx__task){fn, arg};
    return 0;
}

int vx__handle_init(vx_loop *loop, vx__handle *h, int type, int fd) {
    if (loop->handle_count == loop->closed_cap) {
        size_t cap = loop->closed_cap ? loop->closed_cap * 2 : 64;
        vx__handle **v = vx__realloc(loop->closed, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        loop->closed = v;
        loop->closed_cap = cap;
    }
    loop->handle_count++;
    h->loop = loop;
    h->fd = fd;
    h->type = (uint8_t)type;
    h->slot = -1;
    vx__list_push(&loop->handles, &h->node);
    return 0;
}

void vx__handle_closed(vx__handle *h) {
    vx_loop *loop = h->loop;
    h->hflags |= VX__HF_CLOSED;
    loop->closed[loop->closed_len++] = h; /* room reserved by vx__handle_init */
}

/* ------------------------------------------------------- cross-thread */

static void wake(vx_loop *loop) {
    if (atomic_exchange(&loop->wake_pending, true))
        return;
    uint64_t one = 1;
    ssize_t rc = write(loop->wake_fd, &one, sizeof one);
    VX__UNUSED(rc); /* EAGAIN: the counter is already non-zero, so it is readable */
}

static void on_wake(vx_io *io, int fd, unsigned events, void *data) {
    VX__UNUSED(io);
    VX__UNUSED(events);
    vx_loop *loop = data;
    uint64_t v;
    VX__COUNT_SYS(loop, OTHER); /* loop machinery: READ counts the reads of data */
    ssize_t rc = read(fd, &v, sizeof v);
    VX__UNUSED(rc);
    atomic_store(&loop->wake_pending, false); /* a post after this wakes us again */
    pthread_mutex_lock(&loop->post_lock);
    vx__tasks batch = loop->posted;
    loop->posted = (vx__tasks){0};
    pthread_mutex_unlock(&loop->post_lock);
    for (size_t i = 0; i < batch.len; i++)
        batch.v[i].fn(batch.v[i].arg);
    vx__free(batch.v);
    /* Finished pool jobs. Their list is taken after wake_pending was reset, so
     * a job that finishes from now on wakes the loop again. */
    if (loop->work_outstanding)
        vx__work_run_done(loop);
}

void vx__loop_wake(vx_loop *loop) { wake(loop); }

int vx_loop_post(vx_loop *loop, vx_fn fn, void *arg) {
    pthread_mutex_lock(&loop->post_lock);
    int rc = vx__tasks_push(&loop->posted, fn, arg);
    pthread_mutex_unlock(&loop->post_lock);
    if (rc == 0)
        wake(loop);
    return rc;
}

void vx_loop_stop(vx_loop *loop) {
    atomic_store(&loop->stop, true);
    wake(loop);
}

int vx_loop_defer(vx_loop *loop, vx_fn fn, void *arg) {
    return vx__tasks_push(&loop->deferred, fn, arg);
}

/* ------------------------------------------------------------- the turn */

static void run_timers(vx_loop *loop) {
    uint32_t start = loop->timers.seq; /* timers armed by callbacks wait a turn */
    vx__tnode *n;
    while ((n = vx__heap_min(&loop->timers)) && n->deadline <= loop->now &&
           (int32_t)(n->seq - start) < 0) {
        vx__heap_disarm(&loop->timers, n);
        n->fire(n);
    }
}

static void run_deferred(vx_loop *loop) {
    size_t n = loop->deferred.len;
    if (!n)
        return;
    for (size_t i = 0; i < n; i++) {
        vx__task t = loop->deferred.v[i]; /* the array may grow under us */
        t.fn(t.arg);
    }
    vx__tasks *d = &loop->deferred;
    memmove(d->v, d->v + n, (d->len - n) * sizeof *d->v);
    d->len -= n;
}

static void reap(vx__handle *h) {
    vx__list_remove(&h->node);
    h->loop->handle_count--;
    switch (h->type) {
    case VX__H_CONN:
        vx__conn_reap((vx_conn *)h);
        break;
    case VX__H_LISTENER:
        vx__listener_reap((vx_listener *)h);
        break;
    default:
        vx__io_reap((vx_io *)h);
    }
}

static void reap_closed(vx_loop *loop) {
    for (size_t i = 0; i < loop->closed_len; i++) /* close callbacks may close more */
        reap(loop->closed[i]);
    loop->closed_len = 0;
}

static void end_of_turn(vx_loop *loop) {
    run_timers(loop);
    run_deferred(loop);
    vx__conn_run_again(loop);
    vx__conn_flush_all(loop);
    reap_closed(loop);
}

static int next_timeout(const vx_loop *loop) {
    if (loop->deferred.len || loop->again_head || loop->flush_head || loop->closed_len)
        return 0;
    const vx__tnode *n = vx__heap_min(&loop->timers);
    if (!n)
        return -1;
    if (n->deadline <= loop->now)
        return 0;
    uint64_t ms = n->deadline - loop->now;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int vx_loop_run(vx_loop *loop) {
    int rc = 0;
    loop->running = true;
    vx_loop_update_time(loop);
    for (;;) {
        end_of_turn(loop);
        if (atomic_load_explicit(&loop->stop, memory_order_relaxed))
            break;
        rc = loop->engine->wait(loop, next_timeout(loop));
        vx_loop_update_time(loop);
        if (rc < 0 && rc != -EINTR) {
            VX__COUNT_ERR(loop, POLLER);
            VX__LOG_ERROR("%s: wait failed: %s (%s)", vx_loop_backend(loop), vx_err_name(rc),
                          vx_strerror(rc));
            break;
        }
        rc = 0;
    }
    loop->running = false;
    atomic_store(&loop->stop, false);
    return rc;
}

/* ---------------------------------------------------------- life cycle */

int vx_loop_new(vx_loop **out, const vx_loop_opts *opts) {
    vx_loop *loop = vx__calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    vx__list_init(&loop->handles);
    vx__list_init(&loop->timer_list);
    vx__list_init(&loop->signals);
    sigemptyset(&loop->sig_mask);
    loop->sig_fd = loop->wake_fd = -1;
    loop->chunks.max = 64;
    pthread_mutex_init(&loop->post_lock, NULL);
    pthread_mutex_init(&loop->work_lock, NULL);
    loop->work_tail = &loop->work_done;
    vx_loop_update_time(loop);
    int rc = -ENOMEM;
    if (!(loop->scratch = vx__malloc(VX__SCRATCH_SIZE)))
        goto fail;
    if ((rc = choose_backend(loop, opts ? opts->backend : VX_BACKEND_AUTO)) < 0) {
        loop->engine = NULL;
        goto fail;
    }
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = vx_io_start(loop, loop->wake_fd, VX_READABLE, on_wake, loop, &loop->wake_io)) < 0)
        goto fail;
    *out = loop;
    return 0;
fail:
    vx_loop_free(loop);
    return rc;
}

static void close_handle(vx__handle *h) {
    if (h->hflags & VX__HF_CLOSING)
        return;
    switch (h->type) {
    case VX__H_CONN:
        vx__conn_teardown((vx_conn *)h);
        break;
    case VX__H_LISTENER:
        vx_listener_close((vx_listener *)h);
        break;
    default:
        vx_io_free((vx_io *)h);
    }
}

void vx_loop_free(vx_loop *loop) {
    if (!loop)
        return;
    loop->freeing = true;
    /* First, while every handle is still open: the done callbacks may use them. */
    vx__work_fini(loop);
    vx_pool_free(loop->file_pool); /* no job of it is left (vx_file_read) */
    vx__signals_free_all(loop);
    for (vx__list *it = loop->handles.next, *next; it != &loop->handles; it = next) {
        next = it->next;
        close_handle(VX__CONTAINER_OF(it, vx__handle, node));
    }
    if (loop->engine)
        loop->engine->fini(loop); /* completes every pending close */
    reap_closed(loop);
    vx__timers_free_all(loop);
    if (loop->sig_fd >= 0)
        close(loop->sig_fd);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    pthread_mutex_destroy(&loop->post_lock);
    pthread_mutex_destroy(&loop->work_lock);
    vx__free(loop->posted.v);
    vx__free(loop->deferred.v);
    vx__free(loop->closed);
    vx__heap_free(&loop->timers);
    vx__chunk_cache_free(&loop->chunks);
    vx__free(loop->scratch);
    vx__free(loop);
}
