/* Byte buffers of a connection.
 *  vx__buf:  the unconsumed input of one connection (NULL while there is none,
 *            so an idle connection holds no input memory).
 *  vx__outq: queued output, a list of chunks; small writes are coalesced into
 *            the tail chunk, and one writev sends the whole queue. Standard-size
 *            chunks are recycled through a per-loop cache. */
#ifndef VX_CORE_BUF_H
#define VX_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct vx__buf {
    char *data;
    uint32_t len, cap;
} vx__buf;

/* Ensure room for `extra` more bytes; 0 or -ENOMEM (or -E2BIG past 4 GiB). */
int vx__buf_reserve(vx__buf *b, size_t extra);
int vx__buf_append(vx__buf *b, const void *p, size_t n);
/* Drop the first n bytes; frees the memory when nothing is left. */
void vx__buf_consume(vx__buf *b, size_t n);
void vx__buf_free(vx__buf *b);

#define VX__CHUNK_SIZE (16 * 1024)

typedef struct vx__chunk {
    struct vx__chunk *next;
    uint32_t off, len, cap; /* unsent bytes are data[off..len) */
    char data[];
} vx__chunk;

typedef struct vx__chunk_cache {
    vx__chunk *free;
    uint32_t count, max;
} vx__chunk_cache;

typedef struct vx__outq {
    vx__chunk *head, *tail;
    size_t bytes;
} vx__outq;

int vx__outq_append(vx__outq *q, vx__chunk_cache *cc, const void *p, size_t n);
/* Fill iov with the queued bytes; returns the number of entries (<= max). */
int vx__outq_iov(const vx__outq *q, struct iovec *iov, int max);
/* The kernel took n bytes. */
void vx__outq_consume(vx__outq *q, vx__chunk_cache *cc, size_t n);
void vx__outq_clear(vx__outq *q, vx__chunk_cache *cc);
void vx__chunk_cache_free(vx__chunk_cache *cc);

#endif
