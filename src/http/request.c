/* Request accessors: views into the parsed head, the query, the path
 * parameters the route captured, and the buffered body. */
#include "http/server.h"

static const char *slice(vx_http_slice s, size_t *len) {
    if (len)
        *len = s.n;
    return s.p ? s.p : "";
}

const char *vx_http_req_method(const vx_http_req *r, size_t *len) {
    return slice(r->pr.method_name, len);
}

const char *vx_http_req_path(const vx_http_req *r, size_t *len) { return slice(r->pr.path, len); }

const char *vx_http_req_query(const vx_http_req *r, size_t *len) { return slice(r->pr.query, len); }

ssize_t vx_http_req_query_get(const vx_http_req *r, const char *key, char *buf, size_t cap) {
    vx_http_slice v;
    if (!vx_http_query_get(r->pr.query, key, &v))
        return -ENOENT;
    if (v.n >= cap)
        return -ENOSPC;
    ssize_t n = vx_http_url_decode(buf, v.p, v.n, true);
    if (n < 0)
        return -EINVAL;
    buf[n] = 0;
    return n;
}

const char *vx_http_req_header(const vx_http_req *r, const char *name, size_t *len) {
    const vx_http_header *hd = vx_http_find_header(&r->pr, name);
    return hd ? slice(hd->value, len) : NULL;
}

const char *vx_http_req_param(const vx_http_req *r, const char *name, size_t *len) {
    if (!r->route)
        return NULL;
    size_t nl = strlen(name);
    const char *p = r->route->pattern;
    for (int k = 0; k < r->route->nparams; k++) {
        p = strchr(p, '{');
        const char *e = strchr(p, '}');
        if (!e)
            return NULL;
        if ((size_t)(e - p - 1) == nl && !memcmp(p + 1, name, nl))
            return slice(r->params[k], len);
        p = e;
    }
    return NULL;
}

const char *vx_http_req_body(const vx_http_req *r, size_t *len) {
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

int vx_http_req_minor(const vx_http_req *r) { return r->pr.minor; }

vx_conn *vx_http_req_conn(const vx_http_req *r) { return r->c; }

uint64_t vx_http_req_body_received(const vx_http_req *r) { return r->body_rcvd; }

void *vx_http_req_data(const vx_http_req *r) { return r->user; }

void vx_http_req_set_data(vx_http_req *r, void *data) { r->user = data; }
