/* A stream connection (TCP or Unix). Owned by the loop from accept/connect
 * until its close callback has returned; the user owns only its data pointer.
 * Idle, it holds no buffer: input that the data callback did not consume and
 * output the kernel did not take yet are the only per-connection memory. */
#ifndef VX_NET_CONN_H
#define VX_NET_CONN_H

#include "core/loop.h"

enum {
    VX__CF_STARTED = 1 << 0,     /* vx_conn_start() called */
    VX__CF_CONNECTING = 1 << 1,  /* outgoing, not connected yet */
    VX__CF_PAUSED = 1 << 2,      /* vx_conn_pause() */
    VX__CF_HWM = 1 << 3,         /* paused by the high-water mark */
    VX__CF_EOF = 1 << 4,         /* peer sent FIN */
    VX__CF_SHUT_WANTED = 1 << 5, /* shutdown(SHUT_WR) after the queue drains */
    VX__CF_SHUT_DONE = 1 << 6,
    VX__CF_IN_FLUSH = 1 << 7,   /* on loop->flush_head */
    VX__CF_WBLOCKED = 1 << 8,   /* engine waits to send more (EAGAIN / send in flight) */
    VX__CF_AGAIN = 1 << 9,      /* on loop->again_head (reactor, edge mode) */
    VX__CF_IN_CB = 1 << 10,     /* inside the data callback */
    VX__CF_READING = 1 << 11,   /* engine-private: a read is armed (uring) */
    VX__CF_CLOSING = 1 << 12,   /* vx_conn_close(): flush, then close */
    VX__CF_LINGER = 1 << 13,    /* closing: FIN sent, discarding input until the peer's */
    VX__CF_PEER_DONE = 1 << 14, /* the peer said it sends no more: close without lingering */
    VX__CF_PROBED = 1 << 15,    /* engine-private: the first read was tried (reactor) */
};

struct vx_conn {
    vx__handle h;
    union {
        const vx_conn_cbs *cbs;   /* after start */
        vx_connect_cb connect_cb; /* while connecting */
    };
    void *data;
    uint32_t flags;
    int close_err;
    vx__buf in;   /* unconsumed input */
    vx__outq out; /* queued output */
    uint32_t low, high;
    uint32_t idle_ms;
    uint64_t idle_deadline; /* lazy: the timer node is re-armed only when it fires */
    vx__tnode timer;        /* idle or connect timeout */
    vx_conn *flush_next;
    vx_conn *again_next;
};

#endif
