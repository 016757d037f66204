/* Counters: plain increments on the loop thread, read as a copy. */
#include "core/loop.h"
#include <stdio.h>

static const char *const sys_names[] = {
#define X(k, s) s,
    VX_SYSCALL_KINDS(X)
#undef X
};
static const char *const err_names[] = {
#define X(k, s) s,
    VX_ERROR_KINDS(X)
#undef X
};

void vx_loop_stats(const vx_loop *loop, vx_stats *out) { *out = loop->stats; }

uint64_t vx_stats_syscalls(const vx_stats *s) {
    uint64_t sum = 0;
    for (int i = 0; i < VX_SYS__COUNT; i++)
        sum += s->syscalls[i];
    return sum;
}

const char *vx_syscall_kind_name(int kind) {
    return kind >= 0 && kind < VX_SYS__COUNT ? sys_names[kind] : "?";
}

const char *vx_error_kind_name(int kind) {
    return kind >= 0 && kind < VX_ERRK__COUNT ? err_names[kind] : "?";
}

#define APPEND(...)                                                                                \
    do {                                                                                           \
        int n_ = snprintf(buf + used, used < len ? len - used : 0, __VA_ARGS__);                   \
        if (n_ > 0)                                                                                \
            used += (size_t)n_;                                                                    \
    } while (0)

int vx_stats_format(const vx_loop *loop, char *buf, size_t len) {
    const vx_stats *s = &loop->stats;
    size_t used = 0;
    APPEND("backend=%s wakeups=%llu events=%llu accepts=%llu conns=%llu bytes_in=%llu "
           "bytes_out=%llu syscalls=%llu",
           vx_loop_backend(loop), (unsigned long long)s->wakeups, (unsigned long long)s->events,
           (unsigned long long)s->accepts, (unsigned long long)s->conns_live,
           (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
           (unsigned long long)vx_stats_syscalls(s));
    if (s->file_reads)
        APPEND(" file_reads=%llu file_bytes=%llu", (unsigned long long)s->file_reads,
               (unsigned long long)s->file_bytes);
    for (int i = 0; i < VX_SYS__COUNT; i++)
        if (s->syscalls[i])
            APPEND(" sys_%s=%llu", sys_names[i], (unsigned long long)s->syscalls[i]);
    for (int i = 0; i < VX_ERRK__COUNT; i++)
        if (s->errors[i])
            APPEND(" err_%s=%llu", err_names[i], (unsigned long long)s->errors[i]);
    return (int)VX__MIN(used, len ? len - 1 : 0);
}
