/* Library log lines: one formatted line per event, to stderr or the user's hook. */
#include "core/common.h"
#include <stdarg.h>
#include <stdio.h>

static vx_log_fn log_fn;
static void *log_ud;
static int log_level = VX_LOG_INFO;

void vx_log_set(vx_log_fn fn, void *ud, int level) {
    log_fn = fn;
    log_ud = ud;
    log_level = level;
}

void vx__log(int level, const char *fmt, ...) {
    if (level > log_level)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(level, msg, log_ud);
        return;
    }
    static const char *const names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "vortex %s: %s\n", names[level & 3], msg);
}
