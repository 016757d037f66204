/* Internal hooks of the HTTP parser (src/http/parse.c); its API is in vortex.h. */
#ifndef VX_HTTP_PARSE_H
#define VX_HTTP_PARSE_H

#include "vortex.h"

/* Test hooks: cap the scanner at level (0 scalar, 1 SSE4.2, 2 AVX2) and return
 * the level now in use (capped by the CPU); force_scalar(false) restores the best. */
int vx__http_simd_cap(int level);
void vx__http_force_scalar(bool on);
/* tchar (RFC 9110 5.6.2): the bytes of a token; accept.c reads lists with it. */
bool vx__http_is_tchar(int c);

#endif
