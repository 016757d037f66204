/* Names and messages of negative errno values, from one table. */
#include "core/common.h"
#include <limits.h>
#include <stdio.h>

#define VX__ERRNOS(X)                                                                              \
    X(EPERM)                                                                                       \
    X(ENOENT)                                                                                      \
    X(EINTR)                                                                                       \
    X(EIO)                                                                                         \
    X(EBADF) X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(EBUSY) X(EEXIST) X(ENODEV) X(ENOTDIR)       \
        X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(ENOSPC) X(EPIPE) X(ERANGE) X(ENOSYS)             \
            X(ENAMETOOLONG) X(ENOTSOCK) X(EMSGSIZE) X(EPROTONOSUPPORT) X(EOPNOTSUPP)               \
                X(EAFNOSUPPORT) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH)          \
                    X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ETIMEDOUT)   \
                        X(ECONNREFUSED) X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS) X(ECANCELED)    \
                            X(EOVERFLOW) X(EPROTO) X(E2BIG) X(ENODATA)

const char *vx_err_name(int err) {
    if (err == INT_MIN) /* cannot be negated */
        return "EUNKNOWN";
    switch (-err) {
    case 0:
        return "OK";
#define X(e)                                                                                       \
    case e:                                                                                        \
        return #e;
        VX__ERRNOS(X)
#undef X
    default:
        return "EUNKNOWN";
    }
}

const char *vx_strerror(int err) {
    if (err == 0)
        return "success";
    if (err == INT_MIN)
        return "unknown error";
    /* strerror() is not thread-safe in theory; strerrordesc_np is and never fails. */
    const char *s = strerrordesc_np(err < 0 ? -err : err);
    return s ? s : "unknown error";
}
