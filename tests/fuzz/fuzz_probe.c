/* fuzz_probe.c - compiled at configure time to learn whether clang can link
 * libFuzzer and the sanitizers here (Debian: libclang-rt-<ver>-dev). */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}
