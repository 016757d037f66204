/* vx-echo: the echo server of the classic examples, on any backend.
 *   vx-echo [--host H] [--port P] [--unix PATH] [--backend NAME]
 *           [--idle-timeout MS] [--rot13] [--stats]
 * Prints one line "listening HOST:PORT backend=NAME" once it accepts;
 * SIGINT/SIGTERM stop it (exit 0). --stats prints the loop counters to
 * stderr on exit. */
#include "vortex.h"
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    const char *host, *unix_path;
    int port;
    vx_backend backend;
    uint64_t idle_ms;
    bool rot13, stats;
} opt = {.host = "127.0.0.1", .port = 9000};

static void rot13(char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if ((c >= 'a' && c <= 'z'))
            p[i] = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            p[i] = (char)('A' + (c - 'A' + 13) % 26);
    }
}

static size_t on_data(vx_conn *c, const char *data, size_t len) {
    if (opt.rot13)
        rot13((char *)data, len); /* the view is ours during the call */
    if (vx_conn_write(c, data, len) < 0)
        vx_conn_abort(c, false);
    return len;
}

static const vx_conn_cbs echo_cbs = {.on_data = on_data};

static void on_accept(vx_listener *l, vx_conn *c, void *data) {
    (void)l;
    (void)data;
    if (opt.idle_ms)
        vx_conn_set_idle_timeout(c, opt.idle_ms);
    vx_conn_start(c, &echo_cbs, NULL);
}

static void on_signal(vx_signal *s, int signum, void *data) {
    (void)s;
    (void)signum;
    vx_loop_stop(data);
}

static void usage(FILE *f) {
    fprintf(f, "usage: vx-echo [--host H] [--port P] [--unix PATH] [--backend "
               "auto|select|poll|epoll|epoll-et|uring]\n"
               "               [--idle-timeout MS] [--rot13] [--stats]\n");
}

static void parse_args(int argc, char **argv) {
    static const struct option longs[] = {
        {"host", 1, 0, 'h'},    {"port", 1, 0, 'p'},         {"unix", 1, 0, 'u'},
        {"backend", 1, 0, 'b'}, {"idle-timeout", 1, 0, 'i'}, {"rot13", 0, 0, 'r'},
        {"stats", 0, 0, 's'},   {"help", 0, 0, '?'},         {0, 0, 0, 0},
    };
    int ch, b;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'u':
            opt.unix_path = optarg;
            break;
        case 'i':
            opt.idle_ms = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            opt.rot13 = true;
            break;
        case 's':
            opt.stats = true;
            break;
        case 'b':
            if ((b = vx_backend_parse(optarg)) < 0) {
                fprintf(stderr, "vx-echo: unknown backend '%s'\n", optarg);
                exit(2);
            }
            opt.backend = (vx_backend)b;
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (opt.port < 0 || opt.port > 65535) {
        fprintf(stderr, "vx-echo: bad port %d\n", opt.port);
        exit(2);
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    vx_loop *loop;
    int rc = vx_loop_new(&loop, &(vx_loop_opts){.backend = opt.backend});
    if (rc < 0) {
        fprintf(stderr, "vx-echo: backend %s unavailable: %s\n", vx_backend_name(opt.backend),
                vx_strerror(rc));
        return 1;
    }
    vx_listener *l;
    rc = vx_listen(
        loop,
        &(vx_listen_opts){.host = opt.host, .port = (uint16_t)opt.port, .unix_path = opt.unix_path},
        on_accept, NULL, &l);
    if (rc < 0) {
        fprintf(stderr, "vx-echo: listen: %s\n", vx_strerror(rc));
        return 1;
    }
    vx_signal *sint, *sterm;
    if (vx_signal_start(loop, SIGINT, on_signal, loop, &sint) < 0 ||
        vx_signal_start(loop, SIGTERM, on_signal, loop, &sterm) < 0) {
        fprintf(stderr, "vx-echo: cannot watch signals\n");
        return 1;
    }
    if (opt.unix_path)
        printf("listening unix:%s backend=%s\n", opt.unix_path, vx_loop_backend(loop));
    else
        printf("listening %s:%u backend=%s\n", opt.host, vx_listener_port(l),
               vx_loop_backend(loop));
    fflush(stdout);
    rc = vx_loop_run(loop);
    if (opt.stats) {
        char line[1024];
        vx_stats_format(loop, line, sizeof line);
        fprintf(stderr, "%s\n", line);
    }
    vx_loop_free(loop);
    return rc < 0 ? 1 : 0;
}
