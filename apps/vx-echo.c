/* vx-echo: the echo server of the classic examples, on any backend and any
 * server model.
 *   vx-echo [--host H] [--port P] [--unix PATH] [--backend NAME]
 *           [--model single|reuseport:N|handoff:N|shared:N|procs:N|
 *                    thread-per-conn|fork-per-conn]
 *           [--idle-timeout MS] [--rot13] [--stats] [--pin]
 * Prints one line "listening HOST:PORT backend=NAME model=MODEL" once the
 * socket listens (backend=blocking for the baselines); SIGINT/SIGTERM stop
 * it gracefully (exit 0). --stats prints the counters to stderr on exit: with
 * several loops one "loop=I ..." line each, then the sum, whose line starts
 * with "backend=" (what bench/run.sh reads). */
#include "common.h"
#include "vortex.h"
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static struct {
    const char *host, *unix_path;
    int port;
    vx_backend backend;
    vx_model model;
    uint64_t idle_ms;
    bool rot13, stats, pin;
} opt = {.host = "127.0.0.1", .port = 9000, .model = {VX_MODEL_SINGLE, 1}};

static void rot13(char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if ((c >= 'a' && c <= 'z'))
            p[i] = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            p[i] = (char)('A' + (c - 'A' + 13) % 26);
    }
}

/* ------------------------------------------------------------- the loops */

static size_t on_data(vx_conn *c, const char *data, size_t len) {
    if (opt.rot13)
        rot13((char *)data, len); /* the view is ours during the call */
    if (vx_conn_write(c, data, len) < 0)
        vx_conn_abort(c, false);
    return len;
}

static const vx_conn_cbs echo_cbs = {.on_data = on_data};

/* l is NULL under handoff (the connection was accepted by another loop). */
static void on_accept(vx_listener *l, vx_conn *c, void *data) {
    (void)l;
    (void)data;
    if (opt.idle_ms)
        vx_conn_set_idle_timeout(c, opt.idle_ms);
    vx_conn_start(c, &echo_cbs, NULL);
}

/* ---------------------------------------------------------- the baselines */

/* Blocking read/write until EOF, an error or --idle-timeout of silence. */
static void on_blocking(int fd, void *data) {
    (void)data;
    if (opt.idle_ms) {
        struct timeval tv = {.tv_sec = (time_t)(opt.idle_ms / 1000),
                             .tv_usec = (suseconds_t)(opt.idle_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        if (opt.rot13)
            rot13(buf, (size_t)n);
        if (!app_write_all(fd, buf, (size_t)n))
            return;
    }
}

/* ------------------------------------------------------------ stopping */

static vx_server *server;
static int stop_pipe[2] = {-1, -1}; /* --stats: the handler wakes stats_thread */
static vx_stats *final_stats;       /* per loop, read at the stop request */
static int final_count;

static void on_signal(int signum) {
    (void)signum;
    int saved = errno;
    if (stop_pipe[1] >= 0) {
        char b = 1;
        ssize_t rc = write(stop_pipe[1], &b, 1);
        (void)rc;
    } else {
        vx_server_stop(server); /* async-signal-safe */
    }
    errno = saved;
}

/* --stats: counters exist only while the loops run, so read them when the
 * stop is asked for (the load is over by then), then stop the server. */
static void *stats_thread(void *arg) {
    (void)arg;
    char b;
    while (read(stop_pipe[0], &b, 1) < 0 && errno == EINTR)
        ;
    for (int i = 0; i < final_count; i++)
        if (vx_server_stats(server, i, &final_stats[i]) < 0)
            memset(&final_stats[i], 0, sizeof final_stats[i]);
    vx_server_stop(server);
    return NULL;
}

static int stats_line(char *buf, size_t len, const vx_stats *s) {
    int used = snprintf(buf, len,
                        "wakeups=%llu events=%llu accepts=%llu conns=%llu bytes_in=%llu "
                        "bytes_out=%llu syscalls=%llu",
                        (unsigned long long)s->wakeups, (unsigned long long)s->events,
                        (unsigned long long)s->accepts, (unsigned long long)s->conns_live,
                        (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
                        (unsigned long long)vx_stats_syscalls(s));
    for (int k = 0; k < VX_SYS__COUNT && used < (int)len; k++)
        if (s->syscalls[k])
            used += snprintf(buf + used, len - (size_t)used, " sys_%s=%llu",
                             vx_syscall_kind_name(k), (unsigned long long)s->syscalls[k]);
    for (int k = 0; k < VX_ERRK__COUNT && used < (int)len; k++)
        if (s->errors[k])
            used += snprintf(buf + used, len - (size_t)used, " err_%s=%llu", vx_error_kind_name(k),
                             (unsigned long long)s->errors[k]);
    return used;
}

static void print_stats(const char *backend) {
    vx_stats sum = {0};
    char line[1024];
    for (int i = 0; i < final_count; i++) {
        const vx_stats *s = &final_stats[i];
        for (int k = 0; k < VX_SYS__COUNT; k++)
            sum.syscalls[k] += s->syscalls[k];
        for (int k = 0; k < VX_ERRK__COUNT; k++)
            sum.errors[k] += s->errors[k];
        sum.wakeups += s->wakeups;
        sum.events += s->events;
        sum.accepts += s->accepts;
        sum.conns_live += s->conns_live;
        sum.bytes_in += s->bytes_in;
        sum.bytes_out += s->bytes_out;
        sum.reads += s->reads;
        sum.writes += s->writes;
        if (final_count > 1) {
            stats_line(line, sizeof line, s);
            fprintf(stderr, "loop=%d %s\n", i, line);
        }
    }
    stats_line(line, sizeof line, &sum);
    fprintf(stderr, "backend=%s loops=%d %s\n", backend, final_count, line);
}

/* --------------------------------------------------------------- main */

static void usage(FILE *f) {
    fprintf(f, "usage: vx-echo [--host H] [--port P] [--unix PATH] [--backend "
               "auto|select|poll|epoll|epoll-et|uring]\n"
               "               [--model single|reuseport:N|handoff:N|shared:N|procs:N|"
               "thread-per-conn|fork-per-conn]\n"
               "               [--idle-timeout MS] [--rot13] [--stats] [--pin]\n");
}

static void parse_args(int argc, char **argv) {
    static const struct option longs[] = {
        {"host", 1, 0, 'h'},
        {"port", 1, 0, 'p'},
        {"unix", 1, 0, 'u'},
        {"backend", 1, 0, 'b'},
        {"idle-timeout", 1, 0, 'i'},
        {"rot13", 0, 0, 'r'},
        {"stats", 0, 0, 's'},
        {"model", 1, 0, 'm'},
        {"pin", 0, 0, 'P'},
        {"help", 0, 0, '?'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = (int)app_num("vx-echo", "--port", optarg, 0, 65535);
            break;
        case 'u':
            opt.unix_path = optarg;
            break;
        case 'i':
            opt.idle_ms = (uint64_t)app_num("vx-echo", "--idle-timeout", optarg, 0, 86400000);
            break;
        case 'r':
            opt.rot13 = true;
            break;
        case 'P':
            opt.pin = true; /* loop i on CPU i; reuseport adds SO_INCOMING_CPU */
            break;
        case 's':
            opt.stats = true;
            break;
        case 'm':
            opt.model = app_model("vx-echo", optarg);
            break;
        case 'b':
            opt.backend = app_backend("vx-echo", optarg);
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    bool blocking = app_blocking_model(opt.model);
    if (!blocking && app_resolve_backend("vx-echo", &opt.backend) < 0)
        return 1;
    vx_server_opts so = {
        .listen = {.host = opt.host, .port = (uint16_t)opt.port, .unix_path = opt.unix_path},
        .backend = opt.backend,
        .model = opt.model,
        .pin_cpus = opt.pin,
        .on_accept = on_accept,
        .on_blocking = on_blocking,
    };
    int rc = vx_server_new(&server, &so);
    if (rc < 0) {
        fprintf(stderr, "vx-echo: listen: %s\n", vx_strerror(rc));
        return 1;
    }
    const char *backend = blocking ? "blocking" : vx_backend_name(opt.backend);
    char model[64];
    vx_model_format(&opt.model, model, sizeof model);
    pthread_t st;
    bool with_stats = opt.stats && !blocking && opt.model.kind != VX_MODEL_PROCS;
    if (with_stats) {
        final_count = vx_server_count(server);
        final_stats = calloc((size_t)final_count, sizeof *final_stats);
        if (!final_stats || pipe(stop_pipe) < 0 ||
            pthread_create(&st, NULL, stats_thread, NULL) != 0) {
            fprintf(stderr, "vx-echo: cannot set up --stats\n");
            return 1;
        }
    }
    app_on_stop_signals(on_signal);
    if (opt.unix_path)
        printf("listening unix:%s backend=%s model=%s\n", opt.unix_path, backend, model);
    else
        printf("listening %s:%u backend=%s model=%s\n", opt.host, vx_server_port(server), backend,
               model);
    fflush(stdout);
    rc = vx_server_run(server);
    app_ignore_stop_signals(); /* on_signal must not see the server freed below */
    if (rc < 0)
        fprintf(stderr, "vx-echo: %s\n", vx_strerror(rc));
    if (with_stats) {
        char b = 0;
        ssize_t w = write(stop_pipe[1], &b, 1); /* stopped on its own: release the thread */
        (void)w;
        pthread_join(st, NULL);
        print_stats(backend);
        free(final_stats);
    } else if (opt.stats) {
        fprintf(stderr, "backend=%s model=%s (no per-loop counters for this model)\n", backend,
                model);
    }
    vx_server_free(server);
    return rc < 0 ? 1 : 0;
}
