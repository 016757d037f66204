/* A test double of the connection, loop and timer functions the HTTP server
 * calls (tests/fuzz/fake-conn.c), linked instead of src/net and src/core/loop
 * so that a fuzz target drives src/http/server.c from bytes, with no socket.
 *
 * It keeps the contracts of vortex.h that the server relies on: on_data gets
 * the unconsumed bytes of the last call followed by the new ones (each call
 * in a fresh exact-size allocation, freed after it, so ASan sees a pointer
 * kept past the call); nothing is read while paused, above the high-water
 * mark or closing; writes fail with -EPIPE once closing; output is "sent"
 * at the end of a turn, at most budget bytes a turn, and the drain callback
 * follows the water marks; close callbacks run at the end of the turn, and
 * vx_conn_abort() drops what was not sent. The peer's side (the bytes it
 * sends, the bytes it got) lives in a fake_peer owned by the test, which
 * outlives the connection. */
#ifndef VX_FAKE_CONN_H
#define VX_FAKE_CONN_H

#include "vortex.h"

/* What the peer sends and what it sees; owned by the test. */
typedef struct fake_peer {
    const uint8_t *in; /* the bytes the peer sends, then FIN when eof */
    size_t in_len, in_off;
    const size_t *pieces; /* one read takes at most pieces[i] bytes (cycling); NULL: all */
    size_t npieces, piece;
    bool eof, eof_read;
    size_t budget; /* bytes sent per turn (0: all) */
    uint8_t *out;  /* every byte the server queued, in order */
    size_t out_len, out_cap, sent;
    bool closed;        /* the close callback ran */
    int close_err;      /* its argument */
    bool server_closed; /* the server called vx_conn_close or vx_conn_abort */
    bool aborted;       /* ... vx_conn_abort: out_len - sent bytes were dropped */
    size_t late_writes; /* writes refused after the server's own close */
    vx_conn *c;         /* NULL once the connection is freed */
} fake_peer;

vx_loop *fake_loop_new(void);
/* Every connection must be closed and every timer freed before. */
void fake_loop_free(vx_loop *loop);
/* One turn: read a piece (or the FIN) where reading is wanted, then the end
 * of a turn: kept input handed again to resumed connections, sending, close
 * callbacks. Returns whether anything happened. */
bool fake_loop_turn(vx_loop *loop);
/* Move the clock by ms, run the timers (and idle timeouts) now due, then
 * the end of a turn, as vx_loop_run does after timers. */
void fake_loop_advance(vx_loop *loop, uint64_t ms);

/* A connection from peer (which must outlive it), not started. */
vx_conn *fake_conn_new(vx_loop *loop, fake_peer *peer);

/* Not in every vortex.h the fake is built with; the same prototypes. */
bool vx_conn_congested(const vx_conn *c);
int vx_conn_sendfile(vx_conn *c, int fd, uint64_t off, uint64_t len);
int vx__conn_reserve(vx_conn *c, size_t n, char **out);
void vx__conn_peer_done(vx_conn *c);
void vx__conn_commit(vx_conn *c, size_t n);

#endif
