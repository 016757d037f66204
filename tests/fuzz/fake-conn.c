/* The connection/loop/timer test double of fake-conn.h. One loop, a few
 * connections and timers: lists are short, so plain arrays and scans. */
#include "fake-conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKE_ASSERT(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fake-conn: %s (line %d)\n", #c, __LINE__);                            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_CONNS 4
#define MAX_TIMERS 16

/* Owned by the loop; freed at the end of the turn its close was asked in. */
struct vx_conn {
    vx_loop *loop;
    fake_peer *peer;
    const vx_conn_cbs *cbs;
    void *data;
    char *in; /* unconsumed input, handed back first */
    size_t in_len;
    size_t queued, low, high;
    uint64_t idle_ms, idle_at;
    bool started, paused, hwm, closing, dead, again;
};

/* Owned by its creator until vx_timer_free (deferred while it runs). */
struct vx_timer {
    vx_loop *loop;
    vx_timer_cb cb;
    void *data;
    uint64_t due, repeat;
    bool active, running, freed;
};

struct vx_loop {
    uint64_t now;
    vx_conn *conns[MAX_CONNS];
    vx_timer *timers[MAX_TIMERS];
};

/* ------------------------------------------------------------------ loop */

vx_loop *fake_loop_new(void) {
    vx_loop *l = calloc(1, sizeof *l);
    FAKE_ASSERT(l);
    l->now = 1000;
    return l;
}

void fake_loop_free(vx_loop *loop) {
    for (int i = 0; i < MAX_CONNS; i++)
        FAKE_ASSERT(!loop->conns[i]);
    for (int i = 0; i < MAX_TIMERS; i++)
        FAKE_ASSERT(!loop->timers[i]);
    free(loop);
}

uint64_t vx_loop_now(const vx_loop *loop) { return loop->now; }

/* ---------------------------------------------------------------- timers */

int vx_timer_new(vx_loop *loop, vx_timer_cb cb, void *data, vx_timer **out) {
    for (int i = 0; i < MAX_TIMERS; i++) {
        if (loop->timers[i])
            continue;
        vx_timer *t = calloc(1, sizeof *t);
        if (!t)
            return -ENOMEM;
        *t = (vx_timer){.loop = loop, .cb = cb, .data = data};
        loop->timers[i] = t;
        *out = t;
        return 0;
    }
    return -ENOMEM;
}

void vx_timer_start(vx_timer *t, uint64_t after_ms, uint64_t repeat_ms) {
    t->due = t->loop->now + after_ms;
    t->repeat = repeat_ms;
    t->active = true;
}

void vx_timer_stop(vx_timer *t) { t->active = false; }

bool vx_timer_active(const vx_timer *t) { return t->active; }

static void timer_release(vx_timer *t) {
    for (int i = 0; i < MAX_TIMERS; i++)
        if (t->loop->timers[i] == t)
            t->loop->timers[i] = NULL;
    free(t);
}

void vx_timer_free(vx_timer *t) {
    if (!t)
        return;
    t->active = false;
    if (t->running)
        t->freed = true; /* inside its own callback: free on return */
    else
        timer_release(t);
}

/* Fire t once if due (a repeating timer once per advance, like a late loop). */
static void timer_fire(vx_timer *t) {
    if (!t->active || t->due > t->loop->now)
        return;
    if (t->repeat)
        t->due = t->loop->now + t->repeat;
    else
        t->active = false;
    t->running = true;
    t->cb(t, t->data);
    t->running = false;
    if (t->freed)
        timer_release(t);
}

/* ----------------------------------------------------------- connections */

vx_conn *fake_conn_new(vx_loop *loop, fake_peer *peer) {
    for (int i = 0; i < MAX_CONNS; i++) {
        if (loop->conns[i])
            continue;
        vx_conn *c = calloc(1, sizeof *c);
        FAKE_ASSERT(c);
        *c = (vx_conn){.loop = loop, .peer = peer, .low = 256 << 10, .high = 1 << 20};
        peer->c = c;
        loop->conns[i] = c;
        return c;
    }
    FAKE_ASSERT(!"too many fake connections");
    return NULL;
}

void *vx_conn_data(const vx_conn *c) { return c->data; }
void vx_conn_set_data(vx_conn *c, void *data) { c->data = data; }
vx_loop *vx_conn_loop(const vx_conn *c) { return c->loop; }
size_t vx_conn_queued(const vx_conn *c) { return c->queued; }
bool vx_conn_congested(const vx_conn *c) { return c->hwm; }

static bool wants_read(const vx_conn *c) {
    return c->started && !c->dead && !c->paused && !c->hwm && !c->closing && !c->peer->eof_read;
}

static void touch(vx_conn *c) {
    if (c->idle_ms)
        c->idle_at = c->loop->now + c->idle_ms;
}

int vx_conn_start(vx_conn *c, const vx_conn_cbs *cbs, void *data) {
    if (!cbs || !cbs->on_data)
        return -EINVAL;
    if (c->started)
        return -EALREADY;
    if (c->dead || c->closing)
        return -EPIPE;
    c->cbs = cbs;
    c->data = data;
    c->started = true;
    return 0;
}

static void finish_close(vx_conn *c, int err) {
    if (c->dead)
        return;
    c->dead = true;
    c->peer->close_err = err;
}

/* Refused; a late write when the server itself had closed (after the
 * peer's FIN, the server could not know yet). */
static int refuse(vx_conn *c) {
    c->peer->late_writes += c->peer->server_closed;
    return -EPIPE;
}

static bool writable(const vx_conn *c) { return !c->dead && !c->closing; }

static void grow_out(fake_peer *p, size_t n) {
    if (p->out_len + n <= p->out_cap)
        return;
    size_t cap = p->out_cap ? p->out_cap : 4096;
    while (cap < p->out_len + n)
        cap *= 2;
    p->out = realloc(p->out, cap);
    FAKE_ASSERT(p->out);
    p->out_cap = cap;
}

static void queued(vx_conn *c, size_t n) {
    c->peer->out_len += n;
    c->queued += n;
    if (c->high && c->queued > c->high)
        c->hwm = true;
}

int vx_conn_write(vx_conn *c, const void *data, size_t len) {
    if (!writable(c))
        return refuse(c);
    if (len == 0)
        return 0;
    grow_out(c->peer, len);
    memcpy(c->peer->out + c->peer->out_len, data, len);
    queued(c, len);
    return 0;
}

int vx__conn_reserve(vx_conn *c, size_t n, char **out) {
    if (!writable(c))
        return refuse(c);
    grow_out(c->peer, n);
    *out = (char *)c->peer->out + c->peer->out_len;
    return 0;
}

void vx__conn_commit(vx_conn *c, size_t n) {
    if (n)
        queued(c, n);
}

/* The file's bytes go out as the kernel would send them: read here. */
int vx_conn_sendfile(vx_conn *c, int fd, uint64_t off, uint64_t len) {
    int rc = writable(c) ? 0 : refuse(c);
    char buf[4096];
    while (rc == 0 && len) {
        ssize_t got = pread(fd, buf, len < sizeof buf ? (size_t)len : sizeof buf, (off_t)off);
        if (got <= 0) {
            finish_close(c, -ENODATA);
            break;
        }
        rc = vx_conn_write(c, buf, (size_t)got);
        off += (uint64_t)got;
        len -= (uint64_t)got;
    }
    close(fd);
    return rc;
}

/* Reads at once and calls back inside the call (the file body copes). */
int vx_file_read(vx_loop *loop, int fd, void *buf, size_t len, uint64_t off, vx_read_cb cb,
                 void *arg) {
    (void)loop;
    ssize_t n = pread(fd, buf, len, (off_t)off);
    cb(arg, n < 0 ? -errno : n);
    return 0;
}

void vx_conn_set_watermarks(vx_conn *c, size_t low, size_t high) {
    c->high = high;
    c->low = low < high ? low : high;
}

void vx_conn_pause(vx_conn *c) { c->paused = true; }

void vx_conn_resume(vx_conn *c) {
    if (!c->paused)
        return;
    c->paused = false;
    c->again = c->in_len > 0; /* kept input may hold whole messages */
}

void vx_conn_set_idle_timeout(vx_conn *c, uint64_t ms) {
    c->idle_ms = ms;
    touch(c);
}

void vx_conn_close(vx_conn *c) {
    if (c->dead || c->closing)
        return;
    c->peer->server_closed = true;
    c->closing = true;
    if (!c->started)
        finish_close(c, 0);
}

/* The fake models no linger: what the peer reads is the same either way. */
void vx__conn_peer_done(vx_conn *c) { (void)c; }

void vx_conn_abort(vx_conn *c, bool rst) {
    (void)rst;
    if (c->dead)
        return;
    c->peer->server_closed = true;
    c->peer->aborted = true;
    finish_close(c, 0);
}

/* ----------------------------------------------------------------- turns */

/* Hand in[0..n) (which the call takes over) to on_data; keep the rest. */
static void deliver(vx_conn *c, char *in, size_t n) {
    c->in = NULL;
    c->in_len = 0;
    size_t used = c->cbs->on_data(c, in, n);
    FAKE_ASSERT(used <= n);
    if (!c->dead && used < n) {
        c->in = malloc(n - used); /* a fresh copy: the old one dies now */
        FAKE_ASSERT(c->in);
        memcpy(c->in, in + used, n - used);
        c->in_len = n - used;
    }
    free(in);
}

/* The next piece the peer sent, after what was kept. */
static bool read_piece(vx_conn *c) {
    fake_peer *p = c->peer;
    size_t left = p->in_len - p->in_off;
    if (left == 0) {
        if (!p->eof)
            return false;
        /* As vx__conn_eof: input kept while paused is due before the FIN; if
         * handing it over pauses reading again, the FIN waits for the resume. */
        if (c->again && c->in_len) {
            c->again = false;
            deliver(c, c->in, c->in_len);
            if (!wants_read(c))
                return true;
        }
        p->eof_read = true; /* no on_eof in the HTTP server: close once flushed */
        if (c->cbs->on_eof)
            c->cbs->on_eof(c);
        else
            c->closing = true;
        return true;
    }
    size_t n = p->pieces ? p->pieces[p->piece++ % p->npieces] : left;
    n = n < left ? n : left;
    char *buf = malloc(c->in_len + n);
    FAKE_ASSERT(buf);
    if (c->in_len)
        memcpy(buf, c->in, c->in_len);
    memcpy(buf + c->in_len, p->in + p->in_off, n);
    p->in_off += n;
    size_t total = c->in_len + n;
    free(c->in);
    touch(c);
    deliver(c, buf, total);
    return true;
}

/* Send up to the budget; the drain callback below the low-water mark. */
static bool flush(vx_conn *c) {
    if (c->dead || !c->queued)
        return false;
    size_t n = c->peer->budget && c->peer->budget < c->queued ? c->peer->budget : c->queued;
    c->queued -= n;
    c->peer->sent += n;
    touch(c);
    if (c->hwm && c->queued <= c->low) {
        c->hwm = false;
        c->again = c->in_len > 0;
        if (c->cbs->on_drain && !c->closing)
            c->cbs->on_drain(c);
    }
    return true;
}

static void reap(vx_loop *loop, int i) {
    vx_conn *c = loop->conns[i];
    if (c->started && c->cbs->on_close)
        c->cbs->on_close(c, c->peer->close_err);
    c->peer->closed = true;
    c->peer->c = NULL;
    free(c->in);
    free(c);
    loop->conns[i] = NULL;
}

/* The end of a turn, after reads and timers (as vx_loop_run orders it):
 * kept input to resumed connections, sending, close callbacks. */
static bool end_of_turn(vx_loop *loop) {
    bool did = false;
    for (int i = 0; i < MAX_CONNS; i++) {
        vx_conn *c = loop->conns[i];
        if (!c || c->dead)
            continue;
        if (c->again && wants_read(c)) {
            c->again = false;
            did = true;
            deliver(c, c->in, c->in_len);
        }
        did |= flush(c);
        if (c->closing && !c->queued && !c->dead) {
            finish_close(c, 0); /* flushed: the FIN and the peer's go by */
            did = true;
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (loop->conns[i] && loop->conns[i]->dead) {
            reap(loop, i);
            did = true;
        }
    return did;
}

bool fake_loop_turn(vx_loop *loop) {
    bool did = false;
    for (int i = 0; i < MAX_CONNS; i++)
        if (loop->conns[i] && wants_read(loop->conns[i]))
            did |= read_piece(loop->conns[i]);
    return end_of_turn(loop) || did;
}

void fake_loop_advance(vx_loop *loop, uint64_t ms) {
    loop->now += ms;
    for (int i = 0; i < MAX_CONNS; i++) {
        vx_conn *c = loop->conns[i];
        if (c && !c->dead && c->idle_ms && c->idle_at <= loop->now)
            finish_close(c, -ETIMEDOUT);
    }
    for (int i = 0; i < MAX_TIMERS; i++)
        if (loop->timers[i])
            timer_fire(loop->timers[i]);
    end_of_turn(loop);
}
