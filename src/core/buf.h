/* Byte buffers of a connection.
 *  vx__buf:  the unconsumed input of one connection (NULL while there is none,
 *            so an idle connection holds no input memory).
 *  vx__outq: queued output, a list of chunks; small writes are coalesced into
 *            the tail chunk, and one writev sends the whole queue. Standard-size
 *            chunks are recycled through a per-loop cache. */
#ifndef VX_CORE_BUF_H
#define VX_CORE_BUF_H

#include <stdbool.h>
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

/* A chunk is memory (unsent bytes data[off..len)) or, when cap is 0, a file
 * segment: the fleft bytes of fd from offset fpos, sent with sendfile(2). The
 * queue owns a segment's fd (taken from the caller, not dup()ed: a dup would
 * cost a syscall and an fd per response) and closes it once the last byte is
 * consumed or the queue is cleared. */
typedef struct vx__chunk {
    struct vx__chunk *next;
    uint32_t off, len, cap; /* memory: unsent bytes are data[off..len) */
    int fd;                 /* file segment only (cap 0), like fpos and fleft */
    uint64_t fpos, fleft;
    char data[];
} vx__chunk;

static inline bool vx__chunk_is_file(const vx__chunk *c) { return c->cap == 0; }

typedef struct vx__chunk_cache {
    vx__chunk *free;
    uint32_t count, max;
} vx__chunk_cache;

typedef struct vx__outq {
    vx__chunk *head, *tail;
    size_t bytes;   /* memory and file bytes not sent yet */
    uint32_t files; /* file segments queued (each holds an fd) */
} vx__outq;

int vx__outq_append(vx__outq *q, vx__chunk_cache *cc, const void *p, size_t n);
/* Room for n contiguous bytes at the end of the queue (the tail chunk, or a
 * new empty one linked as the tail); NULL on -ENOMEM. Write them, then commit
 * how many were used before anything else touches the queue. */
char *vx__outq_reserve(vx__outq *q, vx__chunk_cache *cc, size_t n);
void vx__outq_commit(vx__outq *q, size_t n);
/* Queue len > 0 bytes of fd from off behind everything queued; the queue owns
 * fd once this returns 0 (-ENOMEM: it stays the caller's). */
int vx__outq_append_file(vx__outq *q, int fd, uint64_t off, uint64_t len);
/* Fill iov with the queued memory bytes up to the first file segment; returns
 * the number of entries (<= max; 0 when a file segment is at the head). */
int vx__outq_iov(const vx__outq *q, struct iovec *iov, int max);
/* The file segment at the head of the queue, or NULL (memory first, or empty). */
vx__chunk *vx__outq_file(const vx__outq *q);
/* The kernel took n bytes (memory or file) from the head. */
void vx__outq_consume(vx__outq *q, vx__chunk_cache *cc, size_t n);
/* Drop everything queued; file segments' fds are closed. */
void vx__outq_clear(vx__outq *q, vx__chunk_cache *cc);
void vx__chunk_cache_free(vx__chunk_cache *cc);

#endif
