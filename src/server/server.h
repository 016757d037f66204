/* A server: one of the models of vortex.h behind one object. server.c owns
 * the object, the bound socket and the stop signal; each model is one file:
 *   threads.c   single, reuseport, handoff, shared (loops on threads)
 *   procs.c     master/worker processes
 *   blocking.c  thread-per-connection and fork-per-connection baselines */
#ifndef VX_SERVER_SERVER_H
#define VX_SERVER_SERVER_H

#include "core/common.h"
#include <stdatomic.h>

struct vx_server {
    vx_server_opts o;
    int listen_fd; /* bound and listening (every model but reuseport), else -1 */
    uint16_t port; /* resolved, also for port 0 */
    int stop_fd;   /* eventfd: vx_server_stop() writes 1 (async-signal-safe) */
    atomic_bool stopping;
    void *impl; /* the model's state, owned by its file */
};

/* Each model: run until stop_fd is readable, then stop gracefully within
 * o.drain_ms; free what it allocated before returning. 0 or -errno. */
int vx__threads_run(vx_server *s);
int vx__procs_run(vx_server *s);
int vx__blocking_run(vx_server *s);
/* Models with counters (threads.c); -EINVAL elsewhere. */
int vx__threads_count(const vx_server *s);
int vx__threads_stats(const vx_server *s, int i, vx_stats *out);
int vx__procs_count(const vx_server *s);

/* A listening socket for s (o.listen with reuseport as given), or -errno. */
int vx__server_bind(const vx_server *s, bool reuseport);

#endif
