/* vx-http's --dataset: a JSON array of item objects (HttpArena's /json
 * profile), read once at start. The document is validated strictly
 * (RFC 8259: string escapes, number grammar, nesting), because every item is
 * copied verbatim into responses: a loose value would make every answer
 * invalid JSON. Each item must carry numeric "price" and "quantity" (its
 * "total" is price * quantity * m). Errors name the byte and the reason.
 * Included by vx-http.c only. */
#ifndef VX_APP_DATASET_H
#define VX_APP_DATASET_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DATASET_MAX_BYTES (64u << 20)
#define DATASET_MAX_DEPTH 32

/* One item, minified, without its closing brace; plus what "total" needs. */
typedef struct item {
    char *json;
    size_t len;
    double price, quantity;
} item;

typedef struct dataset {
    item *items;
    int n, cap;
} dataset;

/* A cursor over the document; why is the first error. */
typedef struct jcur {
    const char *p, *e, *why;
} jcur;

static bool jfail(jcur *j, const char *why) {
    if (!j->why)
        j->why = why;
    return false;
}

static void jws(jcur *j) {
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jdigits(jcur *j) {
    const char *s = j->p;
    while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static bool jstring(jcur *j) {
    if (j->p >= j->e || *j->p != '"')
        return jfail(j, "string expected");
    for (j->p++; j->p < j->e; j->p++) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20)
            return jfail(j, "control character in a string");
        if (c != '\\')
            continue;
        if (++j->p >= j->e)
            break;
        if (*j->p == 'u') {
            for (int i = 0; i < 4; i++)
                if (++j->p >= j->e || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
                    return jfail(j, "bad \\u escape");
        } else if (!*j->p || !strchr("\"\\/bfnrt", *j->p)) {
            return jfail(j, "bad escape in a string");
        }
    }
    return jfail(j, "string does not end");
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool jnumber(jcur *j) {
    if (j->p < j->e && *j->p == '-')
        j->p++;
    if (j->p < j->e && *j->p == '0')
        j->p++;
    else if (!jdigits(j))
        return jfail(j, "bad value");
    if (j->p < j->e && *j->p == '.' && (j->p++, !jdigits(j)))
        return jfail(j, "bad number: digits expected after '.'");
    if (j->p < j->e && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->e && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!jdigits(j))
            return jfail(j, "bad number: digits expected in the exponent");
    }
    return true;
}

static bool jword(jcur *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->e - j->p) < n || memcmp(j->p, w, n))
        return false;
    j->p += n;
    return true;
}

static bool jvalue(jcur *j, int depth) {
    jws(j);
    if (j->p >= j->e)
        return jfail(j, "value expected");
    if (depth > DATASET_MAX_DEPTH)
        return jfail(j, "nested too deep");
    char c = *j->p;
    if (c == '"')
        return jstring(j);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        jws(j);
        if (j->p < j->e && *j->p == close) {
            j->p++;
            return true;
        }
        for (;;) {
            if (close == '}') {
                jws(j);
                if (!jstring(j))
                    return false;
                jws(j);
                if (j->p >= j->e || *j->p++ != ':')
                    return jfail(j, "':' expected");
            }
            if (!jvalue(j, depth + 1))
                return false;
            jws(j);
            if (j->p < j->e && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->e && *j->p == close) {
                j->p++;
                return true;
            }
            return jfail(j, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    if (jword(j, "true") || jword(j, "false") || jword(j, "null"))
        return true;
    return jnumber(j);
}

/* Copy [s, e) without the whitespace outside strings (valid JSON). */
static char *minify(const char *s, const char *e, size_t *len) {
    char *o = malloc((size_t)(e - s) + 1), *q = o;
    bool in = false;
    for (const char *p = s; o && p < e; p++) {
        if (in) {
            *q++ = *p;
            if (*p == '\\')
                *q++ = *++p;
            else if (*p == '"')
                in = false;
        } else if (*p == '"') {
            in = true;
            *q++ = *p;
        } else if (!strchr(" \t\r\n", *p)) {
            *q++ = *p;
        }
    }
    *len = o ? (size_t)(q - o) : 0;
    return o;
}

/* The number under key at the top level of the (valid) object at j->p. */
static bool object_number(jcur obj, const char *key, double *v) {
    size_t kl = strlen(key);
    obj.p++; /* '{' */
    for (;;) {
        jws(&obj);
        if (obj.p >= obj.e || *obj.p != '"')
            return false;
        const char *k = obj.p + 1;
        jstring(&obj);
        bool hit = (size_t)(obj.p - 1 - k) == kl && !memcmp(k, key, kl);
        jws(&obj);
        obj.p++; /* ':' */
        jws(&obj);
        const char *vs = obj.p;
        jvalue(&obj, 1);
        if (hit) {
            char *end;
            *v = strtod(vs, &end);
            return (*vs == '-' || (*vs >= '0' && *vs <= '9')) && end == obj.p;
        }
        jws(&obj);
        if (obj.p >= obj.e || *obj.p != ',')
            return false;
        obj.p++;
    }
}

static void dataset_free(dataset *d) {
    for (int i = 0; i < d->n; i++)
        free(d->items[i].json);
    free(d->items);
    *d = (dataset){0};
}

/* The items of the document s[0..n); 0, or -EINVAL with *why and *at (byte). */
static int dataset_parse(dataset *d, const char *s, size_t n, const char **why, size_t *at) {
    jcur j = {.p = s, .e = s + n};
    jws(&j);
    bool array = j.p < j.e && *j.p == '[';
    if (jvalue(&j, 0) && (jws(&j), j.p < j.e))
        jfail(&j, "bytes after the document");
    *at = (size_t)(j.p - s);
    if (!j.why && !array) {
        jfail(&j, "not an array of items");
        *at = 0;
    }
    if ((*why = j.why))
        return -EINVAL;
    jcur c = {.p = s, .e = s + n};
    jws(&c);
    c.p++; /* '[' */
    for (;;) {
        jws(&c);
        if (*c.p == ']')
            return 0;
        *at = (size_t)(c.p - s);
        jcur obj = c;
        jvalue(&c, 1);
        obj.e = c.p;
        item it = {0};
        if (*obj.p != '{')
            *why = "an item is not an object";
        else if (!object_number(obj, "price", &it.price))
            *why = "an item without a numeric \"price\"";
        else if (!object_number(obj, "quantity", &it.quantity))
            *why = "an item without a numeric \"quantity\"";
        if (*why)
            break;
        it.json = minify(obj.p, obj.e - 1, &it.len); /* without the '}' */
        if (it.json && d->n == d->cap) {
            int cap = d->cap ? d->cap * 2 : 64;
            item *v = realloc(d->items, (size_t)cap * sizeof *v);
            if (v) {
                d->items = v;
                d->cap = cap;
            }
        }
        if (!it.json || d->n == d->cap) {
            free(it.json);
            dataset_free(d);
            return -ENOMEM;
        }
        d->items[d->n++] = it;
        jws(&c);
        if (*c.p == ',')
            c.p++;
    }
    dataset_free(d);
    return -EINVAL;
}

/* Read and parse path; prints the reason on failure. */
static int dataset_load(dataset *d, const char *path) {
    const char *why = NULL;
    size_t at = 0;
    int rc = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0) {
        rc = -errno;
    } else if ((uint64_t)st.st_size > DATASET_MAX_BYTES) {
        rc = -EFBIG;
        why = "larger than 64 MiB";
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = -ENOMEM;
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = -EIO;
        why = "short read";
    } else {
        buf[st.st_size] = 0; /* strtod stops at the '}' after a number, and at this */
        rc = dataset_parse(d, buf, (size_t)st.st_size, &why, &at);
    }
    if (f)
        fclose(f);
    free(buf);
    if (rc == -EINVAL)
        fprintf(stderr, "vx-http: dataset %s: byte %zu: %s\n", path, at, why);
    else if (rc < 0)
        fprintf(stderr, "vx-http: dataset %s: %s\n", path, why ? why : strerror(-rc));
    return rc;
}

#endif
