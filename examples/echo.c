/* echo: the smallest vortex server. Usage: example-echo [PORT]
 * (default 9000; 0 picks a free port). Prints "listening 127.0.0.1:PORT". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "vortex.h"

static size_t on_data(vx_conn *c, const char *data, size_t len) {
    vx_conn_write(c, data, len); /* copied and queued; flushed at the end of this turn */
    return len;                  /* all consumed */
}

static void on_accept(vx_listener *l, vx_conn *c, void *data) {
    static const vx_conn_cbs cbs = {.on_data = on_data}; /* no on_eof: close after flush */
    (void)l, (void)data;
    if (vx_conn_start(c, &cbs, NULL) < 0)
        vx_conn_close(c);
}

static void on_signal(vx_signal *s, int signum, void *loop) {
    (void)s, (void)signum;
    vx_loop_stop(loop);
}

int main(int argc, char **argv) {
    vx_loop *loop = NULL;
    vx_listener *l;
    vx_signal *sig;
    vx_listen_opts o = {.host = "127.0.0.1", .port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9000)};
    int rc = vx_loop_new(&loop, NULL);
    if (rc == 0 && (rc = vx_listen(loop, &o, on_accept, NULL, &l)) == 0 &&
        (rc = vx_signal_start(loop, SIGTERM, on_signal, loop, &sig)) == 0) {
        printf("listening 127.0.0.1:%u\n", (unsigned)vx_listener_port(l));
        fflush(stdout);
        rc = vx_loop_run(loop);
        vx_signal_free(sig);
    }
    if (rc < 0)
        fprintf(stderr, "echo: %s\n", vx_strerror(rc));
    if (loop)
        vx_loop_free(loop); /* closes the listener and connections; frees the loop */
    return rc < 0;
}
