/* Internal declarations of the HTTP server (server.c: connections, routing,
 * timeouts; response.c: building responses; request.c: accessors; date.c: the
 * Date cache; static.c: files). */
#ifndef VX_HTTP_SERVER_H
#define VX_HTTP_SERVER_H

#include "core/common.h"
#include "http/parse.h"
#include <pthread.h>
#include <stdatomic.h>

#define VX__HTTP_MAX_PARAMS 8
#define VX__HTTP_SWEEP_MS 250 /* header timeouts and shutdown checks, per loop */

/* A route, owned by its vx_http. */
typedef struct vx__http_route {
    unsigned methods; /* bit per vx_http_method; ~0u: any */
    char *pattern;
    size_t plen;
    unsigned flags;
    int nparams;
    vx_http_handler fn;
    vx_http_body_cb body;
    void *data;
} vx__http_route;

/* The server: immutable once serving, except the atomics. */
struct vx_http {
    vx_http_opts o;
    char server_line[96]; /* "Server: NAME\r\n" */
    size_t server_line_len;
    vx__http_route *routes;
    int nroutes;
    atomic_bool shutdown;
    atomic_uint_fast64_t conns, requests, bytes_in, bytes_out;
    atomic_uint_fast64_t status[600];
    /* Requests whose connection closed before the application ended their
     * response (any loop): freed when it does, or by vx_http_free. */
    pthread_mutex_t orphans_lock;
    vx__list orphans;
};

/* Per (loop, server): the connections, a sweep timer and counters not yet
 * published. Lives while it has connections; thread-local lookup. */
typedef struct vx__http_loop {
    vx_loop *loop;
    vx_http *h;
    vx_timer *sweep;
    vx__list conns;
    int nconns;
    uint64_t requests, bytes_in, bytes_out;
    uint32_t status[600];
    struct vx__http_loop *next;
} vx__http_loop;

enum {
    VX__HS_IDLE,    /* between requests, no partial input */
    VX__HS_HEAD,    /* a partial head is buffered (header timeout runs) */
    VX__HS_BODY,    /* reading the body */
    VX__HS_WAIT,    /* handler returned without finishing the response */
    VX__HS_CLOSING, /* answered with Connection: close */
};

enum { VX__HB_BUFFER, VX__HB_STREAM, VX__HB_DISCARD };

/* One per connection, allocated at attach and reused by every request on it;
 * freed in the connection's close callback, unless the application still
 * owes the response: then c and hl become NULL, the request waits in
 * h->orphans, and the call that ends the response frees it. */
struct vx_http_req {
    vx_http *h;
    vx_conn *c;        /* NULL once the connection closed */
    vx__http_loop *hl; /* NULL once the connection closed */
    vx__list link;     /* in hl->conns, then h->orphans */
    int state;
    uint64_t head_start;
    vx_http_request pr; /* slices into the input, valid during callbacks */
    const vx__http_route *route;
    vx_http_slice params[VX__HTTP_MAX_PARAMS];
    /* request body */
    int body_mode;
    bool chunked, continue_sent;
    int64_t body_left;
    vx_http_chunked ck;
    char *buf; /* decoded chunked body (buffered mode); kept across requests */
    size_t buf_len, buf_cap;
    /* The head's bytes in the input (pr and params point into them), and a
     * copy once its body goes on past that input (keep_head in server.c). */
    const char *head_p;
    size_t head_n, head_cap;
    char *head_buf;
    bool head_kept;
    const char *body;
    size_t body_len;
    uint64_t body_rcvd;
    void *user;
    /* response */
    bool keep_alive, is_head, in_handler, started, ended, resp_chunked;
    bool client_close; /* the request asked to close (not an error): no linger needed */
    int status;
    int64_t resp_left;
    vx_http_handler drain_fn, abort_fn;
    void *drain_data, *abort_data;
};

/* date.c: "Date: <IMF-fixdate>\r\n" for now, cached per thread. */
const char *vx__http_date_line(vx_loop *loop, size_t *len);
/* Format t as an IMF-fixdate into buf[30]; returns 29. */
size_t vx__http_fmt_date(char *buf, int64_t t);
/* Parse an IMF-fixdate; -1 when malformed. */
int64_t vx__http_parse_date(const char *p, size_t n);

/* response.c */
const char *vx__http_reason(int status);
/* Respond to a request the router or the limits refused; close after when `close`. */
void vx__http_error(vx_http_req *r, int status, bool close, const char *extra);
/* server.c: the response of r ended (resume reading or close; free an
 * orphan outside callbacks). */
void vx__http_finished(vx_http_req *r);
/* filebody.c: send len bytes of fd from off (the head is queued, len is
 * announced and at least async_file_min), reading them off the loop's
 * thread; takes fd and ends r, now or when the last piece is queued. */
int vx__http_file_body(vx_http_req *r, int fd, uint64_t off, uint64_t len);
/* filebody.c: whether every page of the range is in the page cache
 * (cachestat(2), Linux 6.5; false when the kernel cannot say, and for
 * ranges over 64 MiB, which the check would take too long for). */
bool vx__http_file_cached(int fd, uint64_t off, uint64_t len);
/* static.c: open name (relative, no "."/".." segment) for reading beneath
 * the directory root_fd, or -1 with errno. open_beneath uses openat2
 * (RESOLVE_BENEATH) and falls back to open_walk, which refuses every
 * symbolic link, when the kernel lacks it. */
int vx__http_open_beneath(int root_fd, const char *name);
int vx__http_open_walk(int root_fd, const char *name);

#endif
