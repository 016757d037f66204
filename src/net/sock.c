#include "net/sock.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int parse_unix(vx__addr *a, const char *path) {
    struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (n >= sizeof un->sun_path)
        return -ENAMETOOLONG;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int vx__addr_parse(vx__addr *a, const char *host, uint16_t port, const char *unix_path) {
    memset(a, 0, sizeof *a);
    if (unix_path)
        return parse_unix(a, unix_path);
    if (!host || !*host)
        host = "0.0.0.0";
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    struct sockaddr_in *in4 = (struct sockaddr_in *)&a->ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        a->len = sizeof *in4;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        a->len = sizeof *in6;
        return 0;
    }
    return -EINVAL;
}

int vx__sock_new(vx_loop *loop, const vx__addr *a) {
    VX__COUNT_SYS(loop, OTHER);
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

/* A socket file left by a dead process refuses connections: remove it. A
 * live one answers, and we must not steal its address. */
static int clear_stale_unix(vx_loop *loop, const vx__addr *a) {
    const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return -EADDRINUSE;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    int err = errno;
    close(fd);
    VX__COUNT_SYS(loop, OTHER);
    if (rc == 0)
        return -EADDRINUSE;
    if (err == ECONNREFUSED && unlink(path) < 0)
        return -errno;
    return 0;
}

int vx__sock_listen(vx_loop *loop, const vx__addr *a, int backlog, bool reuseport, bool nodelay) {
    bool is_unix = a->ss.ss_family == AF_UNIX;
    if (is_unix) {
        int rc = clear_stale_unix(loop, a);
        if (rc < 0)
            return rc;
    }
    int fd = vx__sock_new(loop, a);
    if (fd < 0)
        return fd;
    int one = 1, err = 0;
    if (!is_unix && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        err = -errno;
    if (!err && reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        err = -errno;
    /* Not after listen(): connections already in the backlog would lack it. */
    if (!err && nodelay && !is_unix &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        err = -errno;
    if (!err && bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        err = -errno;
    if (!err && listen(fd, backlog > 0 ? backlog : 4096) < 0)
        err = -errno;
    VX__COUNT_SYS(loop, OTHER);
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

bool vx__sock_nodelay(int fd) {
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on;
}

uint16_t vx__sock_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}
