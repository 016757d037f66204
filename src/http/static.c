/* Static files: a name under a root directory (no escaping it), Content-Type
 * by extension, Last-Modified / If-Modified-Since, one byte range. The file
 * is opened and stat()ed on every request, so changes on disk show at once. */
#include "http/server.h"
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"wasm", "application/wasm"},
    {"xml", "application/xml"},
    {"pdf", "application/pdf"},
};

static const char *content_type(const char *name) {
    const char *dot = strrchr(name, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

/* No empty name, no absolute path, no "." or ".." segment. */
static bool safe_name(const char *name) {
    if (!*name || *name == '/')
        return false;
    for (const char *s = name; *s;) {
        size_t n = strcspn(s, "/");
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n;
        if (*s)
            s++;
    }
    return true;
}

/* "bytes=a-b" | "bytes=a-" | "bytes=-n" against size: 1 with [*from, *to],
 * 0 to ignore the header (malformed or several ranges), -1 unsatisfiable. */
static int parse_range(const char *v, size_t n, uint64_t size, uint64_t *from, uint64_t *to) {
    if (n < 7 || memcmp(v, "bytes=", 6) != 0 || memchr(v, ',', n))
        return 0;
    char tmp[64];
    if (n - 6 >= sizeof tmp)
        return 0;
    memcpy(tmp, v + 6, n - 6);
    tmp[n - 6] = 0;
    char *dash = strchr(tmp, '-'), *end;
    if (!dash)
        return 0;
    *dash = 0;
    if (!tmp[0]) { /* suffix: the last n bytes */
        unsigned long long k = strtoull(dash + 1, &end, 10);
        if (!dash[1] || *end || dash[1] == '-')
            return 0;
        if (k == 0 || size == 0)
            return -1;
        *from = k >= size ? 0 : size - k;
        *to = size - 1;
        return 1;
    }
    unsigned long long a = strtoull(tmp, &end, 10);
    if (*end || tmp[0] == '-')
        return 0;
    unsigned long long b = size ? size - 1 : 0;
    if (dash[1]) {
        b = strtoull(dash + 1, &end, 10);
        if (*end || dash[1] == '-')
            return 0;
        if (b < a)
            return 0;
        if (b >= size)
            b = size - 1;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = b;
    return 1;
}

static int serve(vx_http_req *r, int fd, const struct stat *st, const char *name) {
    char lm[32], headers[512];
    vx__http_fmt_date(lm, st->st_mtime);
    size_t n, rn;
    const char *rv = vx_http_req_header(r, "Range", &rn);
    const char *ims = vx_http_req_header(r, "If-Modified-Since", &n);
    if (ims && !rv) {
        int64_t t = vx__http_parse_date(ims, n);
        if (t >= 0 && st->st_mtime <= t) {
            close(fd);
            snprintf(headers, sizeof headers, "Last-Modified: %s\r\n", lm);
            return vx_http_respond(r, 304, headers, NULL, 0);
        }
    }
    uint64_t size = (uint64_t)st->st_size, from = 0, to = size ? size - 1 : 0;
    int range = rv ? parse_range(rv, rn, size, &from, &to) : 0;
    if (range < 0) {
        close(fd);
        snprintf(headers, sizeof headers, "Content-Range: bytes */%llu\r\n",
                 (unsigned long long)size);
        return vx_http_respond(r, 416, headers, NULL, 0);
    }
    int used = snprintf(headers, sizeof headers,
                        "Content-Type: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                        content_type(name), lm);
    uint64_t len = size;
    if (range > 0) {
        snprintf(headers + used, sizeof headers - (size_t)used,
                 "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)from,
                 (unsigned long long)to, (unsigned long long)size);
        len = to - from + 1;
    }
    int rc = vx_http_begin(r, range > 0 ? 206 : 200, headers, (int64_t)len);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return vx_http_send_fd(r, fd, (off_t)from, len);
}

/* O_NONBLOCK: a FIFO put under the root opens at once (and is refused as
 * not a regular file) instead of blocking the loop thread for a writer. */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* The fallback for kernels without openat2 (before 5.6, or a sandbox that
 * filters it): one component at a time, refusing every symbolic link — an
 * O_PATH|O_NOFOLLOW open of a link is the link itself, which O_DIRECTORY
 * refuses, and O_NOFOLLOW refuses it as the last component. Stricter than
 * RESOLVE_BENEATH (links inside the root are refused too), never looser.
 * name has passed safe_name: no "." or ".." segment, not absolute. */
int vx__http_open_walk(int root_fd, const char *name) {
    for (int dir = root_fd;;) {
        size_t n = strcspn(name, "/");
        bool last = !name[n];
        char part[NAME_MAX + 1];
        int fd = -1;
        if (n == 0 || n > NAME_MAX) {
            errno = n ? ENAMETOOLONG : ENOENT;
        } else {
            memcpy(part, name, n);
            part[n] = 0;
            fd = openat(dir, part,
                        last ? OPEN_FLAGS | O_NOFOLLOW
                             : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int err = errno;
        if (dir != root_fd)
            close(dir);
        errno = err;
        if (fd < 0 || last)
            return fd;
        dir = fd;
        name += n + 1;
    }
}

/* name's file beneath root_fd, never outside it: the kernel checks every
 * component, symbolic links included, in the same call that opens (no window
 * between a check and the open, as realpath-then-open had). */
int vx__http_open_beneath(int root_fd, const char *name) {
    struct open_how how = {.flags = OPEN_FLAGS, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, root_fd, name, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS)
        return vx__http_open_walk(root_fd, name);
    return (int)fd;
}

int vx_http_static(vx_http_req *r, int root_fd, const char *name) {
    if (!safe_name(name) || strlen(name) != strcspn(name, "\r\n"))
        return vx_http_respond(r, 400, "Content-Type: text/plain\r\n", "400 Bad Request\n", 16);
    struct stat st;
    int fd = vx__http_open_beneath(root_fd, name);
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return vx_http_respond(r, 404, "Content-Type: text/plain\r\n", "404 Not Found\n", 14);
    return serve(r, fd, &st, name);
}
