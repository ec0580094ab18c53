/* fuzz_container.c — libFuzzer harness for vqz_fuzz_container (tests/fuzz/targets.h); build with tests/fuzz/Makefile. */
#include <stdlib.h>

#include "tests/fuzz/targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (vqz_fuzz_container(data, size) != 0)
        abort(); /* a wrong result, not just a rejected input */
    return 0;
}
