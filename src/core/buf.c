#include "core/buf.h"
#include "core/common.h"
#include <unistd.h>

int vx__buf_reserve(vx__buf *b, size_t extra) {
    size_t need = (size_t)b->len + extra;
    if (need <= b->cap)
        return 0;
    if (need > UINT32_MAX)
        return -E2BIG;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    char *p = vx__realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = (uint32_t)cap;
    return 0;
}

int vx__buf_append(vx__buf *b, const void *p, size_t n) {
    int rc = vx__buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    return 0;
}

void vx__buf_consume(vx__buf *b, size_t n) {
    if (n >= b->len) {
        vx__buf_free(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= (uint32_t)n;
}

void vx__buf_free(vx__buf *b) {
    vx__free(b->data);
    *b = (vx__buf){0};
}

static vx__chunk *chunk_new(vx__chunk_cache *cc, size_t want) {
    vx__chunk *c;
    if (want <= VX__CHUNK_SIZE && cc->free) {
        c = cc->free;
        cc->free = c->next;
        cc->count--;
    } else {
        size_t cap = want <= VX__CHUNK_SIZE ? VX__CHUNK_SIZE : want;
        c = vx__malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = (uint32_t)cap;
    }
    c->next = NULL;
    c->off = c->len = 0;
    return c;
}

static void chunk_release(vx__chunk_cache *cc, vx__chunk *c) {
    if (c->cap == VX__CHUNK_SIZE && cc->count < cc->max) {
        c->next = cc->free;
        cc->free = c;
        cc->count++;
        return;
    }
    vx__free(c);
}

int vx__outq_append(vx__outq *q, vx__chunk_cache *cc, const void *p, size_t n) {
    const char *src = p;
    size_t room = q->tail ? q->tail->cap - q->tail->len : 0;
    size_t first = VX__MIN(room, n);
    /* Allocate before copying anything, so a failure leaves the queue as it was. */
    vx__chunk *extra = NULL;
    if (n > first) {
        if (n - first > UINT32_MAX)
            return -E2BIG;
        extra = chunk_new(cc, n - first);
        if (!extra)
            return -ENOMEM;
    }
    if (first) {
        memcpy(q->tail->data + q->tail->len, src, first);
        q->tail->len += (uint32_t)first;
    }
    if (extra) {
        memcpy(extra->data, src + first, n - first);
        extra->len = (uint32_t)(n - first);
        if (q->tail)
            q->tail->next = extra;
        else
            q->head = extra;
        q->tail = extra;
    }
    q->bytes += n;
    return 0;
}

char *vx__outq_reserve(vx__outq *q, vx__chunk_cache *cc, size_t n) {
    vx__chunk *t = q->tail;
    if (t && t->cap - t->len >= n)
        return t->data + t->len;
    if (n > UINT32_MAX || !(t = chunk_new(cc, n)))
        return NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    return t->data;
}

void vx__outq_commit(vx__outq *q, size_t n) {
    q->tail->len += (uint32_t)n;
    q->bytes += n;
}

int vx__outq_append_file(vx__outq *q, int fd, uint64_t off, uint64_t len) {
    vx__chunk *f = vx__malloc(sizeof *f);
    if (!f)
        return -ENOMEM;
    *f = (vx__chunk){.fd = fd, .fpos = off, .fleft = len}; /* cap 0: a file segment */
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->bytes += len;
    q->files++;
    return 0;
}

vx__chunk *vx__outq_file(const vx__outq *q) {
    return q->head && vx__chunk_is_file(q->head) ? q->head : NULL;
}

/* Unlink the head chunk; a file segment's fd is closed with it. */
static void pop_head(vx__outq *q, vx__chunk_cache *cc) {
    vx__chunk *c = q->head;
    q->head = c->next;
    if (!q->head)
        q->tail = NULL;
    if (vx__chunk_is_file(c)) {
        close(c->fd);
        q->files--;
        vx__free(c);
        return;
    }
    chunk_release(cc, c);
}

int vx__outq_iov(const vx__outq *q, struct iovec *iov, int max) {
    int n = 0;
    for (const vx__chunk *c = q->head; c && n < max && !vx__chunk_is_file(c); c = c->next) {
        iov[n].iov_base = (char *)c->data + c->off;
        iov[n].iov_len = c->len - c->off;
        n++;
    }
    return n;
}

void vx__outq_consume(vx__outq *q, vx__chunk_cache *cc, size_t n) {
    q->bytes -= n;
    while (n) {
        vx__chunk *c = q->head;
        bool file = vx__chunk_is_file(c);
        uint64_t avail = file ? c->fleft : c->len - c->off;
        if (n < avail) {
            if (file) {
                c->fpos += n;
                c->fleft -= n;
            } else {
                c->off += (uint32_t)n;
            }
            return;
        }
        n -= (size_t)avail;
        pop_head(q, cc);
    }
}

void vx__outq_clear(vx__outq *q, vx__chunk_cache *cc) {
    while (q->head)
        pop_head(q, cc);
    q->bytes = 0;
    q->files = 0; /* also for lists spliced together without their counts */
}

void vx__chunk_cache_free(vx__chunk_cache *cc) {
    while (cc->free) {
        vx__chunk *c = cc->free;
        cc->free = c->next;
        vx__free(c);
    }
    cc->count = 0;
}
