/* The HTTP server: routes, and the per-connection state machine that turns
 * input into handler calls. One read may hold many pipelined requests: they
 * are all answered during the data callback, so their responses leave
 * together in the loop's one write. A handler that does not finish its
 * response pauses reading; the connection keeps the unconsumed input and
 * hands it back when vx__http_finished() resumes it. */
#include "core/loop.h" /* vx__conn_peer_done */
#include "http/server.h"
#include <stdio.h>
#include <unistd.h>

/* ------------------------------------------------------------- the server */

int vx_http_new(vx_http **out, const vx_http_opts *o) {
    vx_http *h = vx__calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    if (o)
        h->o = *o;
    if (!h->o.server_name)
        h->o.server_name = "vortex";
    if (!h->o.max_body)
        h->o.max_body = 1 << 20;
    if (!h->o.header_timeout_ms)
        h->o.header_timeout_ms = 10000;
    if (!h->o.idle_timeout_ms)
        h->o.idle_timeout_ms = 60000;
    if (!h->o.async_file_min)
        h->o.async_file_min = 4 << 20;
    int n = snprintf(h->server_line, sizeof h->server_line, "Server: %s\r\n", h->o.server_name);
    if (n < 0 || (size_t)n >= sizeof h->server_line) {
        vx__free(h);
        return -EINVAL;
    }
    h->server_line_len = (size_t)n;
    vx__list_init(&h->orphans);
    pthread_mutex_init(&h->orphans_lock, NULL);
    *out = h;
    return 0;
}

static void free_req(vx_http_req *r) {
    vx__free(r->buf);
    vx__free(r->head_buf);
    vx__free(r);
}

void vx_http_free(vx_http *h) {
    if (!h)
        return;
    while (h->orphans.next != &h->orphans) { /* responses the application never ended */
        vx__list *it = h->orphans.next;
        vx__list_remove(it);
        free_req(VX__CONTAINER_OF(it, vx_http_req, link));
    }
    pthread_mutex_destroy(&h->orphans_lock);
    for (int i = 0; i < h->nroutes; i++)
        vx__free(h->routes[i].pattern);
    vx__free(h->routes);
    vx__free(h);
}

void vx_http_shutdown(vx_http *h) { atomic_store(&h->shutdown, true); }

static const char *const method_names[] = {"GET",     "HEAD",  "POST",    "PUT",  "DELETE",
                                           "OPTIONS", "PATCH", "CONNECT", "TRACE"};

static int parse_methods(const char *s, unsigned *out) {
    if (!strcmp(s, "*")) {
        *out = ~0u;
        return 0;
    }
    unsigned m = 0;
    while (*s) {
        size_t n = strcspn(s, ",|");
        int found = -1;
        for (int i = 0; i < (int)(sizeof method_names / sizeof *method_names); i++)
            if (strlen(method_names[i]) == n && !memcmp(s, method_names[i], n))
                found = i;
        if (found < 0)
            return -EINVAL;
        m |= 1u << found;
        s += n;
        if (*s)
            s++;
    }
    if (m & (1u << VX_HTTP_GET))
        m |= 1u << VX_HTTP_HEAD;
    *out = m;
    return m ? 0 : -EINVAL;
}

int vx_http_route(vx_http *h, const char *methods, const char *pattern, unsigned flags,
                  vx_http_handler fn, vx_http_body_cb body, void *data) {
    vx__http_route rt = {.flags = flags, .fn = fn, .body = body, .data = data};
    if (!fn || !pattern || pattern[0] != '/' || parse_methods(methods, &rt.methods) < 0)
        return -EINVAL;
    for (const char *p = pattern; *p; p++)
        rt.nparams += *p == '{';
    if (rt.nparams > VX__HTTP_MAX_PARAMS)
        return -EINVAL;
    vx__http_route *v = vx__realloc(h->routes, (size_t)(h->nroutes + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    h->routes = v;
    if (!(rt.pattern = vx__strdup(pattern)))
        return -ENOMEM;
    rt.plen = strlen(pattern);
    h->routes[h->nroutes++] = rt;
    return 0;
}

void vx_http_get_stats(const vx_http *h, vx_http_stats *out) {
    memset(out, 0, sizeof *out);
    out->conns = atomic_load(&h->conns);
    out->requests = atomic_load(&h->requests);
    out->bytes_in = atomic_load(&h->bytes_in);
    out->bytes_out = atomic_load(&h->bytes_out);
    for (int i = 0; i < 600; i++)
        out->status[i] = atomic_load_explicit(&h->status[i], memory_order_relaxed);
}

/* ---------------------------------------------------------------- routing */

/* Match path against a pattern with "{name}" segments; captures to params. */
static bool match(const vx__http_route *rt, vx_http_slice path, vx_http_slice *params) {
    if (!rt->nparams) {
        if (rt->flags & VX_HTTP_PREFIX)
            return path.n >= rt->plen && !memcmp(path.p, rt->pattern, rt->plen);
        return path.n == rt->plen && !memcmp(path.p, rt->pattern, rt->plen);
    }
    const char *p = rt->pattern, *s = path.p, *end = path.p + path.n;
    int k = 0;
    while (*p) {
        if (*p == '{') {
            const char *seg = s;
            while (s < end && *s != '/')
                s++;
            if (s == seg)
                return false;
            params[k++] = (vx_http_slice){seg, (size_t)(s - seg)};
            p = strchr(p, '}');
            if (!p)
                return false;
            p++;
        } else {
            if (s == end || *s != *p)
                return false;
            s++;
            p++;
        }
    }
    return s == end || (rt->flags & VX_HTTP_PREFIX);
}

/* The route for the request, or NULL with *status 404/405 and allow filled. */
static const vx__http_route *route(vx_http_req *r, int *status, char *allow, size_t cap) {
    vx_http *h = r->h;
    unsigned bit = r->pr.method < VX_HTTP_OTHER ? 1u << r->pr.method : 1u << 31;
    unsigned others = 0;
    for (int i = 0; i < h->nroutes; i++) {
        const vx__http_route *rt = &h->routes[i];
        if (!match(rt, r->pr.path, r->params))
            continue;
        if (rt->methods & bit)
            return rt;
        others |= rt->methods;
    }
    if (!others) {
        *status = 404;
        return NULL;
    }
    *status = 405;
    size_t used = (size_t)snprintf(allow, cap, "Allow: ");
    for (int i = 0; i < (int)(sizeof method_names / sizeof *method_names); i++)
        if (others & (1u << i))
            used += (size_t)snprintf(allow + used, cap - used, "%s%s", method_names[i],
                                     (others >> (i + 1)) & 0x1ff ? ", " : "");
    snprintf(allow + used, cap - used, "\r\n");
    return NULL;
}

/* ------------------------------------------------------- per-loop records */

static _Thread_local vx__http_loop *loops; /* this thread's, usually one */

static void publish(vx__http_loop *hl) {
    vx_http *h = hl->h;
    atomic_fetch_add_explicit(&h->requests, hl->requests, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->bytes_in, hl->bytes_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->bytes_out, hl->bytes_out, memory_order_relaxed);
    hl->requests = hl->bytes_in = hl->bytes_out = 0;
    for (int i = 0; i < 600; i++)
        if (hl->status[i]) {
            atomic_fetch_add_explicit(&h->status[i], hl->status[i], memory_order_relaxed);
            hl->status[i] = 0;
        }
}

static void log_refused(vx_loop *loop, int status, const char *why);

/* After this response the connection closes: the request asked (or an
 * error made it so), or the server is shutting down. */
static bool closes_after(const vx_http_req *r) {
    return !r->keep_alive || atomic_load(&r->h->shutdown);
}

/* Close once the output is sent. A close the client asked for, with nothing
 * behind its request, need not linger for the client's FIN. */
static void close_conn(vx_http_req *r, bool nothing_behind) {
    r->state = VX__HS_CLOSING;
    if (r->client_close && nothing_behind)
        vx__conn_peer_done(r->c);
    vx_conn_close(r->c);
}

static void sweep(vx_timer *t, void *data) {
    VX__UNUSED(t);
    vx__http_loop *hl = data;
    vx_http *h = hl->h;
    uint64_t now = vx_loop_now(hl->loop);
    bool down = atomic_load(&h->shutdown);
    publish(hl);
    for (vx__list *it = hl->conns.next, *next; it != &hl->conns; it = next) {
        next = it->next;
        vx_http_req *r = VX__CONTAINER_OF(it, vx_http_req, link);
        if (r->state == VX__HS_HEAD && now - r->head_start >= h->o.header_timeout_ms) {
            log_refused(hl->loop, 408, "request head not complete within the header timeout");
            r->is_head = false;
            r->pr.minor = 1;
            vx__http_error(r, 408, true, NULL);
        } else if (down && r->state == VX__HS_IDLE) {
            close_conn(r, false);
        }
    }
}

static vx__http_loop *loop_get(vx_http *h, vx_loop *loop) {
    for (vx__http_loop *hl = loops; hl; hl = hl->next)
        if (hl->loop == loop && hl->h == h)
            return hl;
    vx__http_loop *hl = vx__calloc(1, sizeof *hl);
    if (!hl)
        return NULL;
    if (vx_timer_new(loop, sweep, hl, &hl->sweep) < 0) {
        vx__free(hl);
        return NULL;
    }
    vx_timer_start(hl->sweep, VX__HTTP_SWEEP_MS, VX__HTTP_SWEEP_MS);
    hl->loop = loop;
    hl->h = h;
    vx__list_init(&hl->conns);
    hl->next = loops;
    loops = hl;
    return hl;
}

/* The last connection is gone: publish and free (also inside vx_loop_free,
 * whose close callbacks run before timers are freed). */
static void loop_put(vx__http_loop *hl) {
    if (--hl->nconns > 0)
        return;
    publish(hl);
    for (vx__http_loop **pp = &loops; *pp; pp = &(*pp)->next)
        if (*pp == hl) {
            *pp = hl->next;
            break;
        }
    vx_timer_free(hl->sweep);
    vx__free(hl);
}

/* ----------------------------------------------------------- connections */

static size_t on_data(vx_conn *c, const char *data, size_t len);
static void on_drain(vx_conn *c);
static void on_close(vx_conn *c, int err);

static const vx_conn_cbs http_cbs = {
    .on_data = on_data, .on_drain = on_drain, .on_close = on_close};

int vx_http_attach(vx_http *h, vx_conn *c) {
    vx__http_loop *hl = loop_get(h, vx_conn_loop(c));
    vx_http_req *r = hl ? vx__calloc(1, sizeof *r) : NULL;
    if (!r) {
        if (hl && hl->nconns == 0) {
            hl->nconns = 1;
            loop_put(hl);
        }
        vx_conn_abort(c, false);
        return -ENOMEM;
    }
    r->h = h;
    r->c = c;
    r->hl = hl;
    r->ended = true;
    hl->nconns++;
    vx__list_push(&hl->conns, &r->link);
    atomic_fetch_add_explicit(&h->conns, 1, memory_order_relaxed);
    vx_conn_set_idle_timeout(c, h->o.idle_timeout_ms);
    vx_conn_set_watermarks(c, 64 * 1024, 256 * 1024);
    int rc = vx_conn_start(c, &http_cbs, r);
    if (rc < 0) {
        vx_conn_abort(c, false); /* on_close is not ours yet: clean up here */
        vx__list_remove(&r->link);
        atomic_fetch_sub_explicit(&h->conns, 1, memory_order_relaxed);
        loop_put(hl);
        vx__free(r);
    }
    return rc;
}

void vx_http_on_accept(vx_listener *l, vx_conn *c, void *data) {
    VX__UNUSED(l);
    vx_http_attach(data, c);
}

/* The connection is gone. A request in progress hears of it (its abort
 * callback, else a started response's drain callback, whose writes now fail
 * and so end it). One whose handler left the response open stays the
 * application's until it ends it: a timer or a work callback may still hold
 * it, and every call on it from now on fails with -EPIPE. */
static void on_close(vx_conn *c, int err) {
    VX__UNUSED(err);
    vx_http_req *r = vx_conn_data(c);
    vx_http *h = r->h;
    vx__list_remove(&r->link);
    atomic_fetch_sub_explicit(&h->conns, 1, memory_order_relaxed);
    loop_put(r->hl);
    r->c = NULL;
    r->hl = NULL;
    vx_http_handler fn = r->abort_fn;
    void *fn_data = r->abort_data;
    if (!fn && r->started) {
        fn = r->drain_fn;
        fn_data = r->drain_data;
    }
    if (!r->ended && fn) {
        r->in_handler = true; /* an end in fn does not free r under us */
        fn(r, fn_data);
        r->in_handler = false;
    }
    if (r->ended || r->state != VX__HS_WAIT) { /* ended, or its handler never ran */
        free_req(r);
        return;
    }
    pthread_mutex_lock(&h->orphans_lock);
    vx__list_push(&h->orphans, &r->link);
    pthread_mutex_unlock(&h->orphans_lock);
}

static void on_drain(vx_conn *c) {
    vx_http_req *r = vx_conn_data(c);
    if (r->drain_fn)
        r->drain_fn(r, r->drain_data);
}

/* Rate-limited (per thread) log line for refused requests. */
static void log_refused(vx_loop *loop, int status, const char *why) {
    static _Thread_local uint64_t window;
    static _Thread_local unsigned count;
    uint64_t now = vx_loop_now(loop) / 1000;
    if (now != window) {
        if (count > 10)
            vx__log(VX_LOG_INFO, "http: %u more refused requests not logged", count - 10);
        window = now;
        count = 0;
    }
    if (++count <= 10)
        vx__log(VX_LOG_INFO, "http: %d, %s", status, why ? why : "bad request");
}

void vx__http_finished(vx_http_req *r) {
    if (r->in_handler)
        return; /* on_data goes on with the next request (on_close frees an orphan) */
    if (!r->c) {
        pthread_mutex_lock(&r->h->orphans_lock);
        vx__list_remove(&r->link);
        pthread_mutex_unlock(&r->h->orphans_lock);
        free_req(r);
        return;
    }
    if (closes_after(r)) {
        close_conn(r, true); /* input kept behind the request still lingers (conn.c) */
        return;
    }
    r->state = VX__HS_IDLE;
    vx_conn_resume(r->c);
}

static void dispatch(vx_http_req *r) {
    r->in_handler = true;
    r->route->fn(r, r->route->data);
    r->in_handler = false;
}

/* A head was parsed: route it and prepare for its body. false: refused and
 * the connection closes. */
static bool begin_request(vx_http_req *r) {
    r->keep_alive = r->pr.keep_alive;
    r->client_close = !r->pr.keep_alive;
    r->is_head = r->pr.method == VX_HTTP_HEAD;
    r->started = r->ended = false;
    r->drain_fn = r->abort_fn = NULL;
    r->user = NULL;
    r->body_rcvd = 0;
    r->body = "";
    r->body_len = r->buf_len = 0;
    r->chunked = r->pr.chunked;
    r->body_left = r->pr.content_length > 0 ? r->pr.content_length : 0;
    memset(&r->ck, 0, sizeof r->ck);
    int status;
    char allow[128];
    r->route = route(r, &status, allow, sizeof allow);
    bool has_body = r->chunked || r->body_left > 0;
    if (!r->route) {
        r->body_mode = VX__HB_DISCARD;
        r->status = status;
        return true;
    }
    r->body_mode = r->route->flags & VX_HTTP_STREAM_BODY ? VX__HB_STREAM : VX__HB_BUFFER;
    if (r->body_mode == VX__HB_BUFFER && r->body_left > (int64_t)r->h->o.max_body) {
        log_refused(vx_conn_loop(r->c), 413, "body larger than max_body");
        vx__http_error(r, 413, true, NULL);
        return false;
    }
    if (has_body && r->pr.expect_continue && !r->continue_sent && r->pr.minor >= 1) {
        /* Unqueueable (out of memory, or closing): the client may wait for
         * it forever, so the connection ends instead. */
        int rc = vx_conn_write(r->c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (rc < 0) {
            log_refused(vx_conn_loop(r->c), 503, "100 Continue not queueable: connection closed");
            vx_conn_abort(r->c, false);
            return false;
        }
        r->continue_sent = true;
    }
    return true;
}

/* Run the handler (or the refusal) for a complete request. */
static void complete(vx_http_req *r) {
    r->state = VX__HS_WAIT;
    r->continue_sent = false;
    if (!r->route) {
        char allow[128];
        int status;
        route(r, &status, allow, sizeof allow);
        r->in_handler = true;
        vx__http_error(r, status, false, status == 405 ? allow : NULL);
        r->in_handler = false;
        return;
    }
    dispatch(r);
}

static bool grow(vx_http_req *r, size_t need) {
    if (need <= r->buf_cap)
        return true;
    size_t cap = r->buf_cap ? r->buf_cap * 2 : 4096;
    while (cap < need)
        cap *= 2;
    char *p = vx__realloc(r->buf, cap);
    if (!p)
        return false;
    r->buf = p;
    r->buf_cap = cap;
    return true;
}

static void rebase(vx_http_slice *s, const char *from, char *to) { s->p = to + (s->p - from); }

/* A body that goes on past this read consumes the input holding the head,
 * but the body callbacks and the handler still read the views into it: copy
 * the head and point the views at the copy (out of memory: abort). */
static void keep_head(vx_http_req *r) {
    if (r->head_kept)
        return;
    if (r->head_cap < r->head_n) {
        char *p = vx__realloc(r->head_buf, r->head_n);
        if (!p) {
            vx_conn_abort(r->c, false);
            return;
        }
        r->head_buf = p;
        r->head_cap = r->head_n;
    }
    memcpy(r->head_buf, r->head_p, r->head_n);
    vx_http_request *q = &r->pr;
    vx_http_slice *s[] = {&q->method_name, &q->target, &q->path, &q->query};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        rebase(s[i], r->head_p, r->head_buf);
    for (size_t i = 0; i < q->nheaders; i++) {
        rebase(&q->headers[i].name, r->head_p, r->head_buf);
        rebase(&q->headers[i].value, r->head_p, r->head_buf);
    }
    for (int i = 0; r->route && i < r->route->nparams; i++)
        rebase(&r->params[i], r->head_p, r->head_buf);
    r->head_kept = true;
}

/* n more bytes of a buffered body would pass max_body. */
static bool over_max_body(const vx_http_req *r, size_t n) {
    return r->body_mode == VX__HB_BUFFER && r->buf_len + n > r->h->o.max_body;
}

/* Body bytes of the current request from p[0..n); returns bytes consumed or
 * -1 after refusing. Sets *done at its end. */
static ssize_t feed_body(vx_http_req *r, char *p, size_t n, bool *done) {
    size_t used, out;
    char *d = p;
    if (r->chunked) {
        const char *why = NULL;
        ssize_t u = vx_http_chunked_decode(&r->ck, p, n, &out, done, &why);
        if (u < 0) {
            /* Data before the error past max_body is a 413, as it is when a
             * read ends before the error: the answer must not depend on
             * where the reads split the body. */
            int status = over_max_body(r, out) ? 413 : 400;
            log_refused(vx_conn_loop(r->c), status,
                        status == 413 ? "body larger than max_body" : why);
            vx__http_error(r, status, true, NULL);
            return -1;
        }
        used = (size_t)u;
    } else {
        used = out = (size_t)VX__MIN((int64_t)n, r->body_left);
        r->body_left -= (int64_t)used;
        *done = r->body_left == 0;
    }
    r->body_rcvd += out;
    if (r->body_mode == VX__HB_STREAM && out) {
        r->in_handler = true;
        r->route->body(r, d, out, r->route->data);
        r->in_handler = false;
    } else if (r->body_mode == VX__HB_BUFFER && out) {
        bool large = over_max_body(r, out);
        if (large || !grow(r, r->buf_len + out)) {
            int status = large ? 413 : 503; /* out of memory is ours, not a body too large */
            log_refused(vx_conn_loop(r->c), status,
                        large ? "body larger than max_body" : "out of memory for the body");
            vx__http_error(r, status, true, NULL);
            return -1;
        }
        memcpy(r->buf + r->buf_len, d, out);
        r->buf_len += out;
    }
    if (*done && r->body_mode == VX__HB_BUFFER) {
        r->body = r->buf ? r->buf : "";
        r->body_len = r->buf_len;
    }
    return (ssize_t)used;
}

/* One step at off: returns the new offset, or SIZE_MAX to stop (waiting for
 * bytes, paused or closing), with *keep the bytes consumed. */
static size_t step(vx_http_req *r, char *data, size_t len, size_t off, size_t *keep) {
    char *p = data + off;
    size_t n = len - off;
    if (r->state == VX__HS_IDLE || r->state == VX__HS_HEAD) {
        int status = 0;
        const char *why = NULL;
        ssize_t hl = vx_http_parse_request(p, n, &r->pr, &status, &why);
        if (hl == VX_HTTP_INCOMPLETE) {
            if (r->state == VX__HS_IDLE) {
                r->state = VX__HS_HEAD;
                r->head_start = vx_loop_now(vx_conn_loop(r->c));
            }
            *keep = off;
            return SIZE_MAX;
        }
        if (hl < 0) {
            log_refused(vx_conn_loop(r->c), status, why);
            r->is_head = false;
            r->pr.minor = 1;
            vx__http_error(r, status ? status : 400, true, NULL);
            *keep = len;
            return SIZE_MAX;
        }
        r->hl->bytes_in += (uint64_t)hl;
        r->head_p = p;
        r->head_n = (size_t)hl;
        r->head_kept = false;
        if (!begin_request(r)) {
            *keep = len;
            return SIZE_MAX;
        }
        /* A buffered Content-Length body is read in place once it is all in. */
        if (!r->chunked && r->body_mode == VX__HB_BUFFER && r->body_left > 0) {
            if ((int64_t)(n - (size_t)hl) < r->body_left) {
                r->state = VX__HS_BODY; /* not HEAD: no header timeout, idle applies */
                r->body_mode = -1;      /* marks "re-parse when more arrives" */
                r->hl->bytes_in -= (uint64_t)hl;
                *keep = off;
                return SIZE_MAX;
            }
            r->body = p + hl;
            r->body_len = (size_t)r->body_left;
            r->body_rcvd = r->body_len;
            r->hl->bytes_in += (uint64_t)r->body_left;
            off += (size_t)hl + (size_t)r->body_left;
            r->body_left = 0;
            complete(r);
            return off;
        }
        off += (size_t)hl;
        if (!r->chunked && r->body_left == 0) {
            complete(r);
            return off;
        }
        r->state = VX__HS_BODY;
        return off;
    }
    if (r->state == VX__HS_BODY) {
        bool done = false;
        ssize_t used = feed_body(r, p, n, &done);
        if (used < 0) {
            *keep = len;
            return SIZE_MAX;
        }
        r->hl->bytes_in += (uint64_t)used;
        off += (size_t)used;
        if (done)
            complete(r);
        else if ((size_t)used == n) {
            keep_head(r);
            *keep = len;
            return SIZE_MAX;
        }
        return off;
    }
    *keep = off; /* WAIT or CLOSING: hold the rest */
    return SIZE_MAX;
}

static size_t on_data(vx_conn *c, const char *data, size_t len) {
    vx_http_req *r = vx_conn_data(c);
    size_t off = 0, keep = 0;
    if (r->state == VX__HS_BODY && r->body_mode == -1)
        r->state = VX__HS_IDLE; /* the whole buffered request again, head first */
    for (;;) {
        if (r->state == VX__HS_WAIT) {
            if (!r->ended) { /* answered later: pipelined requests wait */
                vx_conn_pause(c);
                return off;
            }
            if (closes_after(r)) {
                close_conn(r, off == len);
                return len;
            }
            r->state = VX__HS_IDLE;
            /* Output backs up (say, pipelined requests for large or many
             * files): the rest waits in the connection, which hands it back
             * once the queue drained (vx_conn_congested). */
            if (off < len && vx_conn_congested(c))
                return off;
        }
        if (r->state == VX__HS_CLOSING)
            return len;
        if (off == len) {
            if (r->state == VX__HS_HEAD)
                r->state = VX__HS_IDLE;
            else if (r->state == VX__HS_BODY)
                keep_head(r); /* the head ended this read, its body comes next */
            return len;
        }
        size_t next = step(r, (char *)data, len, off, &keep);
        if (next == SIZE_MAX)
            return keep;
        off = next;
    }
}
