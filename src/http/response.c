/* Responses, built straight into the connection's output queue: the status
 * line, Server, Date (cached per second), the caller's headers, framing and a
 * small body are assembled on the stack and queued with one vx_conn_write. */
#include "http/server.h"
#include <stdio.h>
#include <unistd.h>

#define HEAD_MAX 4096   /* status line + headers assembled on the stack */
#define SMALL_BODY 4096 /* bodies up to this are copied in with the head */
#define FILE_CHUNK (64 * 1024)

const char *vx__http_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
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
    char t[24];
    int n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = t[--n];
    return p;
}

/* The head into b (HEAD_MAX bytes, headers already checked to fit); its length.
 * length < 0: chunked (or, for HTTP/1.0, delimited by the close). */
static size_t build_head(vx_http_req *r, char *b, int status, const char *headers, size_t hlen,
                         int64_t length) {
    char *p = b;
    if (status < 100 || status > 599)
        status = 500;
    p = put(p, "HTTP/1.1 ", 9);
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    const char *reason = vx__http_reason(status);
    p = put(p, reason, strlen(reason));
    p = put(p, "\r\n", 2);
    p = put(p, r->h->server_line, r->h->server_line_len);
    size_t dl;
    const char *date = vx__http_date_line(vx_conn_loop(r->c), &dl);
    p = put(p, date, dl);
    if (hlen)
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
    vx__http_loop *hl = r->hl;
    hl->requests++;
    hl->status[status]++;
    return (size_t)(p - b);
}

static int queue(vx_http_req *r, const void *p, size_t n) {
    r->hl->bytes_out += n;
    return vx_conn_write(r->c, p, n);
}

static int start(vx_http_req *r, int status, const char *headers, int64_t length, char *b,
                 size_t *used) {
    if (r->started)
        return -EINVAL;
    size_t hlen = headers ? strlen(headers) : 0;
    if (hlen > HEAD_MAX - 512)
        return -EINVAL;
    r->started = true;
    r->ended = false;
    r->status = status;
    *used = build_head(r, b, status, headers, hlen, length);
    r->resp_chunked = length < 0 && r->pr.minor >= 1 && !bodyless(status);
    r->resp_left = length < 0 ? -1 : length;
    if (r->is_head || bodyless(status))
        r->resp_left = 0;
    return 0;
}

static void finish(vx_http_req *r) {
    r->ended = true;
    vx__http_finished(r);
}

int vx_http_respond(vx_http_req *r, int status, const char *headers, const void *body, size_t len) {
    char b[HEAD_MAX + SMALL_BODY];
    size_t n;
    int rc = start(r, status, headers, bodyless(status) ? 0 : (int64_t)len, b, &n);
    if (rc < 0)
        return rc;
    if (r->is_head || bodyless(status))
        len = 0;
    if (len <= SMALL_BODY) {
        if (len)
            memcpy(b + n, body, len);
        rc = queue(r, b, n + len);
    } else if ((rc = queue(r, b, n)) == 0) {
        rc = queue(r, body, len);
    }
    r->resp_left = 0;
    finish(r);
    return rc;
}

int vx_http_begin(vx_http_req *r, int status, const char *headers, int64_t length) {
    char b[HEAD_MAX];
    size_t n;
    int rc = start(r, status, headers, length, b, &n);
    return rc < 0 ? rc : queue(r, b, n);
}

int vx_http_write(vx_http_req *r, const void *p, size_t n) {
    if (!r->started || r->ended)
        return -EINVAL;
    if (r->is_head || bodyless(r->status) || n == 0)
        return 0;
    if (r->resp_chunked) {
        char sz[24];
        int k = snprintf(sz, sizeof sz, "%zx\r\n", n);
        int rc = queue(r, sz, (size_t)k);
        if (rc == 0)
            rc = queue(r, p, n);
        return rc < 0 ? rc : queue(r, "\r\n", 2);
    }
    if (r->resp_left >= 0) {
        if ((int64_t)n > r->resp_left)
            return -EINVAL;
        r->resp_left -= (int64_t)n;
    }
    return queue(r, p, n);
}

int vx_http_end(vx_http_req *r) {
    if (!r->started || r->ended)
        return -EINVAL;
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

bool vx_http_congested(const vx_http_req *r) { return vx_conn_queued(r->c) > 256 * 1024; }

void vx_http_on_drain(vx_http_req *r, vx_http_handler fn, void *data) {
    r->drain_fn = fn;
    r->drain_data = data;
}

/* The file is read into the output queue (one copy) rather than sent with
 * sendfile(2): this works identically on every backend, keeps the order with
 * the queued headers and pipelined responses, and back-pressure is the
 * connection's own water marks. */
void vx__http_pump_file(vx_http_req *r) {
    static _Thread_local char chunk[FILE_CHUNK];
    while (r->file_left && vx_conn_queued(r->c) <= 256 * 1024) {
        size_t want = (size_t)VX__MIN(r->file_left, (uint64_t)FILE_CHUNK);
        ssize_t got = pread(r->file_fd, chunk, want, (off_t)r->file_off);
        if (got <= 0 || queue(r, chunk, (size_t)got) < 0) {
            /* truncated under us, or the connection is gone: framing is lost */
            close(r->file_fd);
            r->file_fd = -1;
            vx_conn_abort(r->c, false);
            return;
        }
        r->file_off += (uint64_t)got;
        r->file_left -= (uint64_t)got;
        r->resp_left -= got;
    }
    if (r->file_left == 0) {
        close(r->file_fd);
        r->file_fd = -1;
        finish(r);
    }
}

int vx_http_send_fd(vx_http_req *r, int fd, off_t off, uint64_t len) {
    if (!r->started || r->ended || r->file_fd >= 0) {
        close(fd);
        return -EINVAL;
    }
    if (r->is_head || bodyless(r->status) || len == 0) {
        close(fd);
        return vx_http_end(r);
    }
    r->file_fd = fd;
    r->file_off = (uint64_t)off;
    r->file_left = len;
    vx__http_pump_file(r);
    return 0;
}

void vx__http_error(vx_http_req *r, int status, bool close_after, const char *extra) {
    if (r->started && !r->ended) { /* mid-response: nothing sane to add */
        vx_conn_abort(r->c, false);
        return;
    }
    r->started = false;
    if (close_after)
        r->keep_alive = false;
    char headers[256];
    snprintf(headers, sizeof headers, "Content-Type: text/plain\r\n%s", extra ? extra : "");
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, vx__http_reason(status));
    vx_http_respond(r, status, headers, body, (size_t)n);
}
