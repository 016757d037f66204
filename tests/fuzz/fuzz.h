/* What every fuzz target shares: its entry point, and checks that abort with
 * "NAME: what (line N)" so libFuzzer keeps the input. Define FUZZ_NAME first. */
#ifndef VX_FUZZ_H
#define VX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, FUZZ_NAME ": " __VA_ARGS__);                                               \
        fprintf(stderr, " (line %d)\n", __LINE__);                                                 \
        abort();                                                                                   \
    } while (0)
#define FUZZ_ASSERT(c)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            FUZZ_FAIL("%s", #c);                                                                   \
    } while (0)

#endif
