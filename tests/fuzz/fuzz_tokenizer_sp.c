/* fuzz_tokenizer_sp.c — a SentencePiece tokenizer.model (protobuf
 * ModelProto), then (optional) a text to encode after a FUZZ_SEPARATOR
 * line. See tokenizer_check.h. */
#include "tokenizer_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_part part[2];
    fuzz_split(data, size, part, 2);
    fuzz_write(0, "tokenizer.model", part[0].data, part[0].size);
    check_tokenizer_dir(part[1].data, part[1].size);
    return 0;
}
