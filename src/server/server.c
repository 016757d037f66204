/* The server object: model names, binding, the stop signal, dispatch. */
#include "server/server.h"
#include "net/sock.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const char *const model_names[] = {
    [VX_MODEL_SINGLE] = "single",
    [VX_MODEL_REUSEPORT] = "reuseport",
    [VX_MODEL_HANDOFF] = "handoff",
    [VX_MODEL_SHARED] = "shared",
    [VX_MODEL_PROCS] = "procs",
    [VX_MODEL_THREAD_PER_CONN] = "thread-per-conn",
    [VX_MODEL_FORK_PER_CONN] = "fork-per-conn",
};
#define NMODELS ((int)(sizeof model_names / sizeof model_names[0]))

static bool takes_n(vx_model_kind k) {
    return k == VX_MODEL_REUSEPORT || k == VX_MODEL_HANDOFF || k == VX_MODEL_SHARED ||
           k == VX_MODEL_PROCS;
}

int vx_model_parse(const char *s, vx_model *out) {
    if (!s || !out)
        return -EINVAL;
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    for (int k = 0; k < NMODELS; k++) {
        if (strlen(model_names[k]) != len || strncmp(s, model_names[k], len))
            continue;
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (colon) {
            char *end;
            n = strtol(colon + 1, &end, 10);
            if (!takes_n((vx_model_kind)k) || *end || n < 1 || n > 1024)
                return -EINVAL;
        }
        out->kind = (vx_model_kind)k;
        out->n = takes_n((vx_model_kind)k) ? (int)(n > 0 ? n : 1) : 1;
        return 0;
    }
    return -EINVAL;
}

int vx_model_format(const vx_model *m, char *buf, size_t len) {
    if ((unsigned)m->kind >= (unsigned)NMODELS)
        return snprintf(buf, len, "?");
    if (takes_n(m->kind))
        return snprintf(buf, len, "%s:%d", model_names[m->kind], m->n);
    return snprintf(buf, len, "%s", model_names[m->kind]);
}

int vx__server_bind(const vx_server *s, bool reuseport) {
    const vx_listen_opts *l = &s->o.listen;
    vx__addr a;
    int rc = vx__addr_parse(&a, l->host, s->port ? s->port : l->port, l->unix_path);
    if (rc < 0)
        return rc;
    vx_loop scratch = {0}; /* vx__sock_listen counts syscalls into a loop */
    return vx__sock_listen(&scratch, &a, l->backlog, reuseport, !l->no_delay_off);
}

int vx_server_new(vx_server **out, const vx_server_opts *o) {
    if (!o || !out || o->model.n < 1)
        return -EINVAL;
    bool blocking =
        o->model.kind == VX_MODEL_THREAD_PER_CONN || o->model.kind == VX_MODEL_FORK_PER_CONN;
    if (blocking ? !o->on_blocking : !o->on_accept)
        return -EINVAL;
    vx_server *s = vx__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->o = *o;
    if (!s->o.drain_ms)
        s->o.drain_ms = 5000;
    s->listen_fd = -1;
    s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = s->stop_fd < 0 ? -errno : 0;
    /* reuseport binds one socket per loop; the first also resolves port 0. */
    bool reuseport = o->model.kind == VX_MODEL_REUSEPORT;
    if (!rc && (rc = vx__server_bind(s, reuseport)) >= 0) {
        s->listen_fd = rc;
        s->port = o->listen.unix_path ? 0 : vx__sock_port(rc);
        rc = 0;
    }
    if (rc < 0) {
        vx_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint16_t vx_server_port(const vx_server *s) { return s->port; }

int vx_server_run(vx_server *s) {
    switch (s->o.model.kind) {
    case VX_MODEL_PROCS:
        return vx__procs_run(s);
    case VX_MODEL_THREAD_PER_CONN:
    case VX_MODEL_FORK_PER_CONN:
        return vx__blocking_run(s);
    default:
        return vx__threads_run(s);
    }
}

void vx_server_stop(vx_server *s) {
    if (s->o.on_stop)
        s->o.on_stop(s->o.data);
    atomic_store(&s->stopping, true);
    uint64_t one = 1;
    ssize_t rc = write(s->stop_fd, &one, sizeof one); /* async-signal-safe */
    (void)rc;
}

void vx_server_free(vx_server *s) {
    if (!s)
        return;
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        if (s->o.listen.unix_path) /* we bound it */
            unlink(s->o.listen.unix_path);
    }
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    vx__free(s);
}

static bool threads_model(vx_model_kind k) {
    return k == VX_MODEL_SINGLE || k == VX_MODEL_REUSEPORT || k == VX_MODEL_HANDOFF ||
           k == VX_MODEL_SHARED;
}

int vx_server_count(const vx_server *s) {
    if (s->o.model.kind == VX_MODEL_PROCS)
        return vx__procs_count(s);
    return threads_model(s->o.model.kind) ? vx__threads_count(s) : 1;
}

int vx_server_stats(const vx_server *s, int i, vx_stats *out) {
    return threads_model(s->o.model.kind) ? vx__threads_stats(s, i, out) : -EINVAL;
}
