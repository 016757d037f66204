/* Socket addresses and listening sockets. */
#ifndef VX_NET_SOCK_H
#define VX_NET_SOCK_H

#include "core/loop.h"
#include <sys/socket.h>

typedef struct vx__addr {
    struct sockaddr_storage ss;
    socklen_t len;
} vx__addr;

/* Numeric IPv4/IPv6 (optionally [bracketed]), "localhost", or a Unix path. */
int vx__addr_parse(vx__addr *a, const char *host, uint16_t port, const char *unix_path);
/* A non-blocking, close-on-exec socket of a's family. */
int vx__sock_new(vx_loop *loop, const vx__addr *a);
/* Bind and listen; replaces a stale Unix socket file. With nodelay (TCP
 * only) TCP_NODELAY is set before listen(), so every accepted socket inherits
 * it and needs no setsockopt of its own. Returns the fd or -errno. */
int vx__sock_listen(vx_loop *loop, const vx__addr *a, int backlog, bool reuseport, bool nodelay);
/* Whether the TCP socket fd has TCP_NODELAY (false for any other kind). */
bool vx__sock_nodelay(int fd);
uint16_t vx__sock_port(int fd);

#endif
