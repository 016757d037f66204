/* Responses, built in place at the end of the connection's output queue:
 * the status line (preformatted for the common codes), Server, Date (cached
 * per second), the caller's headers, framing and a small body are written
 * straight into the queue's tail chunk: no stack buffer, no second copy. */
#include "core/loop.h" /* vx__conn_reserve/commit */
#include "http/server.h"
#include <stdio.h>
#include <unistd.h>

#define HEADERS_MAX 3584    /* the caller's header lines */
#define HEAD_FIXED 256      /* status line, Date, framing, Connection, CRLF */
#define SMALL_BODY 8192     /* bodies up to this are copied in with the head */
#define FILE_COPY_MAX 16384 /* file bodies up to this are read in behind the head */

#define VX__HTTP_STATUSES(X)                                                                       \
    X(100, "Continue")                                                                             \
    X(200, "OK")                                                                                   \
    X(201, "Created")                                                                              \
    X(204, "No Content")                                                                           \
    X(206, "Partial Content")                                                                      \
    X(301, "Moved Permanently")                                                                    \
    X(302, "Found")                                                                                \
    X(304, "Not Modified")                                                                         \
    X(400, "Bad Request")                                                                          \
    X(403, "Forbidden")                                                                            \
    X(404, "Not Found")                                                                            \
    X(405, "Method Not Allowed")                                                                   \
    X(408, "Request Timeout")                                                                      \
    X(411, "Length Required")                                                                      \
    X(413, "Content Too Large")                                                                    \
    X(414, "URI Too Long")                                                                         \
    X(416, "Range Not Satisfiable")                                                                \
    X(431, "Request Header Fields Too Large")                                                      \
    X(500, "Internal Server Error")                                                                \
    X(501, "Not Implemented")                                                                      \
    X(503, "Service Unavailable")                                                                  \
    X(505, "HTTP Version Not Supported")

const char *vx__http_reason(int status) {
    switch (status) {
#define X(code, text)                                                                              \
    case code:                                                                                     \
        return text;
        VX__HTTP_STATUSES(X)
#undef X
    default:
        return "Unknown";
    }
}

static bool bodyless(int status) { return status < 200 || status == 204 || status == 304; }

static char *put(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v) {
    if (v < 100) { /* most bodies of the benchmarks, without a division loop */
        if (v >= 10)
            *p++ = (char)('0' + v / 10);
        *p = (char)('0' + v % 10);
        return p + 1;
    }
    char t[24];
    int n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = t[--n];
    return p;
}

/* "HTTP/1.1 200 OK\r\n": one constant-size copy for the codes above. */
static char *put_status_line(char *p, int status) {
    switch (status) {
#define X(code, text)                                                                              \
    case code:                                                                                     \
        return put(p, "HTTP/1.1 " #code " " text "\r\n", sizeof("HTTP/1.1 " #code " " text) + 1);
        VX__HTTP_STATUSES(X)
#undef X
    }
    p = put(p, "HTTP/1.1 ", 9);
    p = put_u64(p, (uint64_t)status);
    return put(p, " Unknown\r\n", 10);
}

/* The most a head takes with hlen bytes of the caller's headers. */
static size_t head_max(const vx_http_req *r, size_t hlen) {
    return HEAD_FIXED + r->h->server_line_len + hlen;
}

/* The head into b (head_max() bytes); returns its end. length < 0: chunked
 * (or, for HTTP/1.0, delimited by the close). */
static char *build_head(vx_http_req *r, char *b, int status, const char *headers, size_t hlen,
                        int64_t length) {
    char *p = put_status_line(b, status);
    p = put(p, r->h->server_line, r->h->server_line_len);
    size_t dl;
    const char *date = vx__http_date_line(vx_conn_loop(r->c), &dl);
    p = put(p, date, dl);
    if (hlen) /* headers may be NULL: no memcpy from NULL */
        p = put(p, headers, hlen);
    if (length < 0 && r->pr.minor == 0)
        r->keep_alive = false;
    if (atomic_load_explicit(&r->h->shutdown, memory_order_relaxed))
        r->keep_alive = false;
    if (!bodyless(status)) {
        if (length >= 0) {
            p = put(p, "Content-Length: ", 16);
            p = put_u64(p, (uint64_t)length);
            p = put(p, "\r\n", 2);
        } else if (r->pr.minor >= 1) {
            p = put(p, "Transfer-Encoding: chunked\r\n", 28);
        }
    }
    if (!r->keep_alive)
        p = put(p, "Connection: close\r\n", 19);
    else if (r->pr.minor == 0)
        p = put(p, "Connection: keep-alive\r\n", 24);
    p = put(p, "\r\n", 2);
    r->hl->requests++;
    r->hl->status[status]++;
    return p;
}

static int queue(vx_http_req *r, const void *p, size_t n) {
    r->hl->bytes_out += n;
    int rc = vx_conn_write(r->c, p, n);
    if (rc < 0) { /* a piece is lost, and the framing with it: no body with a hole */
        r->keep_alive = false;
        vx_conn_abort(r->c, false);
    }
    return rc;
}

static void finish(vx_http_req *r) {
    r->ended = true;
    vx__http_finished(r);
}

/* A response call after the connection closed: it ends the response (which
 * frees r, see vx__http_finished) and reports -EPIPE. */
static int end_closed(vx_http_req *r) {
    r->started = true;
    finish(r);
    return -EPIPE;
}

/* Begin the response: the head, then `inline_len` bytes of body, in one
 * reserved stretch of the output queue. A response that cannot be queued
 * (the connection is closing, or out of memory) still ends, so the request
 * state machine moves on; the error is returned. */
static int start(vx_http_req *r, int status, const char *headers, int64_t length,
                 const void *inline_body, size_t inline_len) {
    if (r->started)
        return -EINVAL;
    if (!r->c)
        return end_closed(r);
    if (status < 100 || status > 599)
        status = 500;
    size_t hlen = headers ? strlen(headers) : 0;
    if (hlen > HEADERS_MAX)
        return -EINVAL;
    r->started = true;
    r->ended = false;
    r->status = status;
    r->resp_chunked = length < 0 && r->pr.minor >= 1 && !bodyless(status);
    r->resp_left = r->is_head || bodyless(status) ? 0 : length < 0 ? -1 : length;
    char *b;
    int rc = vx__conn_reserve(r->c, head_max(r, hlen) + inline_len, &b);
    if (rc < 0) {
        r->resp_left = 0;
        r->keep_alive = false; /* the client waits for this answer: the close is all it gets */
        finish(r);
        return rc;
    }
    char *p = build_head(r, b, status, headers, hlen, length);
    if (inline_len)
        p = put(p, inline_body, inline_len);
    size_t n = (size_t)(p - b);
    r->hl->bytes_out += n;
    vx__conn_commit(r->c, n);
    return 0;
}

int vx_http_respond(vx_http_req *r, int status, const char *headers, const void *body, size_t len) {
    if (status < 100 || status > 599)
        status = 500;
    int64_t announced = bodyless(status) ? 0 : (int64_t)len; /* HEAD: the GET's length */
    if (r->is_head || bodyless(status))
        len = 0;
    bool small = len <= SMALL_BODY;
    int rc = start(r, status, headers, announced, body, small ? len : 0);
    if (rc < 0)
        return rc;
    if (!small)
        rc = queue(r, body, len);
    r->resp_left = 0;
    finish(r);
    return rc;
}

int vx_http_begin(vx_http_req *r, int status, const char *headers, int64_t length) {
    return start(r, status, headers, length, NULL, 0);
}

int vx_http_write(vx_http_req *r, const void *p, size_t n) {
    if (!r->started || r->ended)
        return -EINVAL;
    if (!r->c)
        return end_closed(r);
    if (r->is_head || bodyless(r->status) || n == 0)
        return 0;
    int rc;
    if (r->resp_chunked) {
        char sz[24];
        int k = snprintf(sz, sizeof sz, "%zx\r\n", n);
        rc = queue(r, sz, (size_t)k);
        if (rc == 0)
            rc = queue(r, p, n);
        if (rc == 0)
            rc = queue(r, "\r\n", 2);
    } else {
        if (r->resp_left >= 0) {
            if ((int64_t)n > r->resp_left)
                return -EINVAL;
            r->resp_left -= (int64_t)n;
        }
        rc = queue(r, p, n);
    }
    if (rc < 0)
        finish(r); /* the connection is closing: the response ends with it */
    return rc;
}

int vx_http_end(vx_http_req *r) {
    if (!r->started || r->ended)
        return -EINVAL;
    if (!r->c)
        return end_closed(r);
    int rc = 0;
    if (r->resp_chunked && !r->is_head)
        rc = queue(r, "0\r\n\r\n", 5);
    else if (r->resp_left > 0) /* shorter than announced: the framing is lost */
        r->keep_alive = false;
    if (r->resp_left < 0 && !r->resp_chunked)
        r->keep_alive = false; /* HTTP/1.0 without a length: the close ends it */
    finish(r);
    return rc;
}

bool vx_http_congested(const vx_http_req *r) {
    return r->c && vx_conn_queued(r->c) > 256 * 1024; /* closed: the next write says so */
}

void vx_http_on_drain(vx_http_req *r, vx_http_handler fn, void *data) {
    r->drain_fn = fn;
    r->drain_data = data;
}

void vx_http_on_abort(vx_http_req *r, vx_http_handler fn, void *data) {
    r->abort_fn = fn;
    r->abort_data = data;
}

/* The head is out and its body cannot follow: abort, end, report rc. */
static int body_lost(vx_http_req *r, int rc) {
    vx_conn_abort(r->c, false);
    finish(r);
    return rc;
}

/* A small file body is read straight into the output queue behind its head
 * and leaves with it in one send: below FILE_COPY_MAX one copy costs less
 * than sendfile's fixed cost (measured in docs/http.md), and the fd closes
 * at once. A file that ends early (truncated under us) sends what it had and
 * closes the connection, as a short sendfile does: the framing is lost. */
static int copy_fd(vx_http_req *r, int fd, off_t off, uint64_t len) {
    char *b;
    int rc = vx__conn_reserve(r->c, len, &b);
    ssize_t n = 0;
    if (rc == 0 && (n = pread(fd, b, len, off)) < 0)
        rc = -errno;
    close(fd);
    if (rc < 0)
        return body_lost(r, rc);
    vx__conn_commit(r->c, (size_t)n);
    r->hl->bytes_out += (uint64_t)n;
    if (r->resp_left > 0)
        r->resp_left -= n;
    if ((uint64_t)n == len)
        return vx_http_end(r);
    VX__LOG_WARN("http: file ended %llu bytes short of the %llu announced "
                 "(truncated under us?): closing, the framing is lost",
                 (unsigned long long)(len - (uint64_t)n), (unsigned long long)len);
    vx_http_end(r); /* shorter than announced: closes after the flush */
    return -ENODATA;
}

/* From async_file_min on, the body is read off the loop's thread
 * (filebody.c) unless the whole range is in the page cache: then sendfile
 * cannot block on the disk, and it copies nothing. Otherwise the body joins
 * the output queue as a file segment (vx_conn_sendfile), behind the head and
 * whatever was pipelined before it, and leaves with sendfile(2) on every
 * backend. The response ends as soon as it is queued: the connection's water
 * marks, which count file bytes and files, pace it from there (a drain
 * callback could never be waited for here: nothing arrives when the whole
 * range was queued at once). A page evicted between the check and the send
 * costs the loop one disk read, as below the threshold. */
int vx_http_send_fd(vx_http_req *r, int fd, off_t off, uint64_t len) {
    if (!r->started || r->ended || off < 0) {
        close(fd);
        return -EINVAL;
    }
    if (!r->c) {
        close(fd);
        return end_closed(r);
    }
    if (r->is_head || bodyless(r->status) || len == 0) {
        close(fd);
        return vx_http_end(r);
    }
    if (r->resp_chunked || (r->resp_left >= 0 && len > (uint64_t)r->resp_left)) {
        close(fd); /* raw bytes would break the chunked or announced framing */
        return -EINVAL;
    }
    if (len <= FILE_COPY_MAX)
        return copy_fd(r, fd, off, len);
    if (len >= r->h->o.async_file_min && !vx__http_file_cached(fd, (uint64_t)off, len))
        return vx__http_file_body(r, fd, (uint64_t)off, len);
    int rc = vx_conn_sendfile(r->c, fd, (uint64_t)off, len); /* takes fd */
    if (rc < 0)
        return body_lost(r, rc);
    r->hl->bytes_out += len;
    if (r->resp_left > 0)
        r->resp_left -= (int64_t)len;
    return vx_http_end(r);
}

void vx__http_error(vx_http_req *r, int status, bool close_after, const char *extra) {
    if (r->started && !r->ended) { /* mid-response: nothing sane to add */
        vx_conn_abort(r->c, false);
        return;
    }
    r->started = false;
    r->client_close = false; /* an error: the client may be sending still, so linger */
    if (close_after)
        r->keep_alive = false;
    char headers[256];
    snprintf(headers, sizeof headers, "Content-Type: text/plain\r\n%s", extra ? extra : "");
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, vx__http_reason(status));
    vx_http_respond(r, status, headers, body, (size_t)n);
}
