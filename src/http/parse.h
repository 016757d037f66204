/* HTTP/1.1 request parsing (RFC 9112), picohttpparser-style: no allocation,
 * no I/O; every string is a slice of the caller's buffer. Strict where
 * leniency enables request smuggling. */
#ifndef VX_HTTP_PARSE_H
#define VX_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VX_HTTP_MAX_HEADERS 100
#define VX_HTTP_MAX_LINE (8 * 1024)   /* request line: 414 past this */
#define VX_HTTP_MAX_HEAD (16 * 1024)  /* whole head: 431 past this */

typedef struct vx_http_slice {
    const char *p;
    size_t n;
} vx_http_slice;

typedef struct vx_http_header {
    vx_http_slice name, value; /* value without surrounding whitespace */
} vx_http_header;

typedef enum {
    VX_HTTP_GET, VX_HTTP_HEAD, VX_HTTP_POST, VX_HTTP_PUT, VX_HTTP_DELETE,
    VX_HTTP_OPTIONS, VX_HTTP_PATCH, VX_HTTP_CONNECT, VX_HTTP_TRACE, VX_HTTP_OTHER
} vx_http_method;

typedef struct vx_http_request {
    vx_http_method method;
    vx_http_slice method_name;
    vx_http_slice target;      /* as sent: path?query */
    vx_http_slice path, query; /* query without '?' (n == 0 if none) */
    int minor;                 /* HTTP/1.minor */
    vx_http_header headers[VX_HTTP_MAX_HEADERS];
    size_t nheaders;
    /* Framing, from the headers (RFC 9112 section 6): */
    int64_t content_length;    /* -1: none */
    bool chunked;              /* Transfer-Encoding: chunked (then content_length is -1) */
    bool keep_alive;           /* after this request (version + Connection) */
    bool expect_continue;      /* Expect: 100-continue */
} vx_http_request;

/* Parse one request head from buf[0..len). Returns the head's length (> 0),
 * VX_HTTP_INCOMPLETE when more bytes are needed, or VX_HTTP_ERROR with
 * *status set (400 malformed or smuggling risk, 414 line too long, 431
 * headers too large or too many, 501 unknown transfer coding, 505 version)
 * and *why a static reason for the log. */
#define VX_HTTP_INCOMPLETE (-2)
#define VX_HTTP_ERROR (-1)
ssize_t vx__http_parse_request(const char *buf, size_t len, vx_http_request *req, int *status,
                              const char **why);

/* Incremental chunked-body decoder (extensions skipped, trailers parsed and
 * dropped). Zero-initialise before use. */
typedef struct vx_http_chunked {
    int state;
    uint64_t left; /* bytes left in the current chunk */
    size_t trailer_bytes;
} vx_http_chunked;

/* Decode buf[0..len) in place: data bytes are moved to the front of buf and
 * their count stored in *out. Returns bytes of input consumed, or
 * VX_HTTP_ERROR (*why set). *done becomes true after the last chunk and its
 * trailers; the bytes after that are not consumed. */
ssize_t vx__http_chunked_decode(vx_http_chunked *d, char *buf, size_t len, size_t *out, bool *done,
                               const char **why);

/* Case-insensitive header lookup; NULL when absent. */
const vx_http_header *vx__http_find_header(const vx_http_request *req, const char *name);
/* Percent-decode (and '+' to space when form) src into dst (may be src);
 * returns the length or -1 on a bad escape. */
ssize_t vx__http_url_decode(char *dst, const char *src, size_t n, bool form);
/* The value of key in a query string (raw, not decoded); false if absent. */
bool vx__http_query_get(vx_http_slice query, const char *key, vx_http_slice *value);

#endif
