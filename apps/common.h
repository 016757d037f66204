/* Helpers shared by the programs (static: each apps/NAME.c is one program):
 * the flags every program takes (--backend, --model, numbers), the backend
 * they name in the listening line, signals, and a blocking write loop. */
#ifndef VX_APPS_COMMON_H
#define VX_APPS_COMMON_H

#include "vortex.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* --backend NAME, or exit 2. */
static inline vx_backend app_backend(const char *prog, const char *arg) {
    int b = vx_backend_parse(arg);
    if (b < 0) {
        fprintf(stderr, "%s: unknown backend '%s'\n", prog, arg);
        exit(2);
    }
    return (vx_backend)b;
}

/* --model MODEL, or exit 2. */
static inline vx_model app_model(const char *prog, const char *arg) {
    vx_model m;
    if (vx_model_parse(arg, &m) < 0) {
        fprintf(stderr, "%s: unknown model '%s'\n", prog, arg);
        exit(2);
    }
    return m;
}

/* The decimal integer of option name in lo..hi, or exit 2 ("--port abc" is
 * not port 0, nor "--max-body -1" 16 EiB). */
static inline long long app_num(const char *prog, const char *name, const char *s, long long lo,
                                long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: bad %s '%s' (%lld..%lld)\n", prog, name, s, lo, hi);
        exit(2);
    }
    return v;
}

/* The monotonic clock in nanoseconds. */
static inline uint64_t app_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline bool app_blocking_model(vx_model m) {
    return m.kind == VX_MODEL_THREAD_PER_CONN || m.kind == VX_MODEL_FORK_PER_CONN;
}

/* Resolve auto (and VX_BACKEND) once, so that the listening line names the
 * backend and every loop of the server uses the same one. 0 or -errno. */
static inline int app_resolve_backend(const char *prog, vx_backend *b) {
    int r = vx_backend_resolve(*b);
    if (r < 0) {
        fprintf(stderr, "%s: backend %s unavailable: %s\n", prog, vx_backend_name(*b),
                vx_strerror(r));
        return r;
    }
    *b = (vx_backend)r;
    return 0;
}

/* SIGINT and SIGTERM call fn (which must be async-signal-safe). They are
 * unblocked in the calling (main) thread too: the mask is inherited across
 * exec, and a launcher that had them blocked (a thread that set up sigwait
 * or signalfd, say) would leave SIGTERM pending forever: the server keeps
 * running idle (its loop threads block every signal) and main never leaves
 * vx_server_run. Threads created from now on inherit the unblocked mask;
 * vx_server_run blocks every signal in its own. */
static inline void app_on_stop_signals(void (*fn)(int)) {
    struct sigaction sa = {.sa_handler = fn, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
}

/* Once vx_server_run returned: SIGINT and SIGTERM are ignored from now on.
 * The stop is done, and one more signal (a second Ctrl-C, a supervisor
 * repeating SIGTERM) would run a handler that uses the server, or the
 * vx_http, that main frees next: a write to freed memory and to whatever fd
 * took stop_fd's number (under ASan, a report that deadlocks at exit). */
static inline void app_ignore_stop_signals(void) {
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
}

/* All of p to a blocking socket; false on error (never SIGPIPE). */
static inline bool app_write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

#endif
