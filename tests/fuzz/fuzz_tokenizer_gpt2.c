/* fuzz_tokenizer_gpt2.c — GPT-2 byte-level BPE files: vocab.json, then
 * merges.txt, then (optional) a text to encode, separated by
 * FUZZ_SEPARATOR lines. See tokenizer_check.h for what a loaded tokenizer
 * must satisfy. */
#include "tokenizer_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_part part[3];
    fuzz_split(data, size, part, 3);
    fuzz_write(0, "vocab.json", part[0].data, part[0].size);
    fuzz_write(1, "merges.txt", part[1].data, part[1].size);
    check_tokenizer_dir(part[2].data, part[2].size);
    return 0;
}
