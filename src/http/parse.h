/* HTTP/1.1 request parsing (RFC 9112), picohttpparser-style: no allocation,
 * no I/O; every string is a slice of the caller's buffer. Strict where
 * leniency enables request smuggling: bare LF or bare CR line endings,
 * obs-fold, whitespace before a colon, control bytes in values, repeated
 * Content-Length (even identical), Content-Length with Transfer-Encoding,
 * Transfer-Encoding in HTTP/1.0, a missing (HTTP/1.1) or repeated Host, and
 * CONNECT (authority-form) are all 400. Thread-safe; the SIMD level (AVX2,
 * SSE4.2, scalar) is picked at first use; VX_HTTP_SCALAR=1 forces scalar. */
#ifndef VX_HTTP_PARSE_H
#define VX_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VX_HTTP_MAX_HEADERS 100
#define VX_HTTP_MAX_LINE (8 * 1024)  /* request line: 414 past this */
#define VX_HTTP_MAX_HEAD (16 * 1024) /* whole head: 431 past this */

typedef struct vx_http_slice {
    const char *p;
    size_t n;
} vx_http_slice;

typedef struct vx_http_header {
    vx_http_slice name, value; /* value without surrounding whitespace */
} vx_http_header;

typedef enum {
    VX_HTTP_GET,
    VX_HTTP_HEAD,
    VX_HTTP_POST,
    VX_HTTP_PUT,
    VX_HTTP_DELETE,
    VX_HTTP_OPTIONS,
    VX_HTTP_PATCH,
    VX_HTTP_CONNECT,
    VX_HTTP_TRACE,
    VX_HTTP_OTHER
} vx_http_method;

typedef struct vx_http_request {
    vx_http_method method;
    vx_http_slice method_name;
    vx_http_slice target;      /* as sent: path?query, "*", or http://authority/path?query */
    vx_http_slice path, query; /* query without '?' (n == 0 if none); path is "*" for
                                  OPTIONS *, and may be empty (meaning "/") in absolute-form */
    int minor;                 /* HTTP/1.minor */
    vx_http_header headers[VX_HTTP_MAX_HEADERS];
    size_t nheaders;
    /* Framing, from the headers (RFC 9112 section 6): */
    int64_t content_length; /* -1: none */
    bool chunked;           /* Transfer-Encoding: chunked (then content_length is -1) */
    bool keep_alive;        /* after this request (version + Connection) */
    bool expect_continue;   /* Expect: 100-continue (HTTP/1.1 only) */
} vx_http_request;

/* Parse one request head from buf[0..len). Returns the head's length (> 0),
 * VX_HTTP_INCOMPLETE when more bytes are needed, or VX_HTTP_ERROR with
 * *status set (400 malformed or smuggling risk, 414 line too long, 431
 * headers too large or too many, 501 unknown transfer coding, 505 version)
 * and *why a static reason for the log. Leading empty lines (CRLF) are
 * skipped and counted in the length. Stateless: call again with the same
 * buffer plus the new bytes; a prefix of a request gives INCOMPLETE or the
 * error the whole request gives. 414: the request line without CRLF exceeds
 * VX_HTTP_MAX_LINE; 431: the head (with leading CRLFs) exceeds VX_HTTP_MAX_HEAD
 * or has more than VX_HTTP_MAX_HEADERS fields, reported as soon as the bytes
 * show it. Transfer-Encoding must be exactly one "chunked" (501 for any other
 * coding, 400 when chunked is not last or an element is empty). *req is
 * garbage after an error, except keep_alive (false). */
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
    size_t line_bytes; /* of the current chunk-size line (at most 4 KiB with extensions) */
} vx_http_chunked;

/* Decode buf[0..len) in place: data bytes are moved to the front of buf and
 * their count stored in *out. Returns bytes of input consumed, or
 * VX_HTTP_ERROR (*why set). *done becomes true after the last chunk and its
 * trailers; the bytes after that are not consumed. Each call decodes its own
 * buf (the caller appends *out bytes to what it has). Trailers: at most
 * 16 KiB. On an error, *out still counts the data decoded before it; after
 * an error every call fails. */
ssize_t vx__http_chunked_decode(vx_http_chunked *d, char *buf, size_t len, size_t *out, bool *done,
                                const char **why);

/* Case-insensitive header lookup; NULL when absent. */
const vx_http_header *vx__http_find_header(const vx_http_request *req, const char *name);
/* Percent-decode (and '+' to space when form) src into dst (may be src);
 * returns the length or -1 on a bad escape. */
ssize_t vx__http_url_decode(char *dst, const char *src, size_t n, bool form);
/* The value of key in a query string (raw, not decoded); false if absent. */
bool vx__http_query_get(vx_http_slice query, const char *key, vx_http_slice *value);

/* Test hooks: cap the scanner at level (0 scalar, 1 SSE4.2, 2 AVX2) and return
 * the level now in use (capped by the CPU); force_scalar(false) restores the best. */
int vx__http_simd_cap(int level);
void vx__http_force_scalar(bool on);

#endif
