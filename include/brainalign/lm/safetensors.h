/* safetensors.h — Hugging Face safetensors checkpoints, read through mmap.
 *
 * File format: 8 bytes little-endian u64 N, then N bytes of JSON header
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *   ..., optional "__metadata__": {string: string}}), then the data area.
 * Offsets are relative to the data area; the tensors must tile it exactly
 * (sorted, no overlap, no hole, ending at the end of the file), as the
 * reference implementation requires.
 *
 * A file is mapped read-only and shared (MAP_SHARED, PROT_READ), so every
 * MPI rank on a node that opens the same checkpoint shares one copy in the
 * page cache. Tensor data pointers point straight into the map and stay
 * valid until the file (or checkpoint) is closed.
 *
 * A checkpoint directory holds either model.safetensors or
 * model.safetensors.index.json ({"weight_map": {tensor: shard file}}) plus
 * its shards; ba_checkpoint_open opens whichever is there and presents one
 * table of tensors.
 *
 * Writing: ba_st_writer streams a file tensor by tensor (any number of
 * chunks per tensor) into a temporary name and renames it on finish. */
#ifndef BRAINALIGN_SAFETENSORS_H
#define BRAINALIGN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"

/* Every dtype of the safetensors format is known (so any real file can be
 * validated); models accept only the float ones they support. */
typedef enum {
    BA_DTYPE_F32 = 0,
    BA_DTYPE_F16,
    BA_DTYPE_BF16,
    BA_DTYPE_F64,
    BA_DTYPE_F8_E4M3,
    BA_DTYPE_F8_E5M2,
    BA_DTYPE_I64,
    BA_DTYPE_I32,
    BA_DTYPE_I16,
    BA_DTYPE_I8,
    BA_DTYPE_U64,
    BA_DTYPE_U32,
    BA_DTYPE_U16,
    BA_DTYPE_U8,
    BA_DTYPE_BOOL,
    BA_DTYPE_COUNT
} ba_dtype;

#define BA_TENSOR_MAX_RANK 8

/* "F32", "BF16", ... */
const char *ba_dtype_name(ba_dtype dtype);
/* Bytes per element. */
size_t ba_dtype_size(ba_dtype dtype);
/* Parse a safetensors dtype name; returns -1 (as int) when unknown. */
int ba_dtype_from_name(const char *name);

typedef struct {
    const char *name;   /* owned by the file/checkpoint                   */
    ba_dtype dtype;
    int rank;
    int64_t shape[BA_TENSOR_MAX_RANK];
    size_t n_elements;
    size_t n_bytes;
    const void *data;   /* into the read-only map; NULL when n_bytes == 0 */
    const char *file;   /* path of the file holding it                     */
} ba_tensor;

/* ---- one file --------------------------------------------------------- */

typedef struct ba_safetensors ba_safetensors;

ba_status ba_safetensors_open(const char *path, ba_safetensors **out, ba_error *err);
void ba_safetensors_close(ba_safetensors *st);

const char *ba_safetensors_path(const ba_safetensors *st);
size_t ba_safetensors_count(const ba_safetensors *st);
/* Tensors in name order. */
const ba_tensor *ba_safetensors_at(const ba_safetensors *st, size_t i);
/* NULL when absent. */
const ba_tensor *ba_safetensors_lookup(const ba_safetensors *st, const char *name);
/* A "__metadata__" value, or NULL. */
const char *ba_safetensors_metadata(const ba_safetensors *st, const char *key);

/* ---- the mappings in use ------------------------------------------------
 * An open file stays mapped (MAP_SHARED) and its descriptor open. If the
 * file is truncated in place while mapped (a re-sync during a job), reading
 * a page past its new end raises SIGBUS. Two defences, used by `features`:
 *  - ba_mapped_files_check, at each window boundary: fstat of every mapped
 *    file, an error naming the file when it is now shorter than its map;
 *    this turns a shrink between windows into an ordinary error (the stage
 *    then deletes its unfinished output);
 *  - ba_mapped_files_guard, for a shrink during a window: a SIGBUS handler
 *    that, for an address inside a mapping, prints the file's name, removes
 *    `cleanup_path` (the unfinished output) and exits with status 1. No
 *    sigsetjmp/siglongjmp: the forward pass reads the map from OpenMP
 *    threads and inside BLAS, where jumping out of a signal handler is
 *    undefined and would leave locks held. A SIGBUS elsewhere keeps its
 *    default action. ba_mapped_files_guard(NULL) restores the previous
 *    handler. The table of mappings is process-wide (a signal handler sees
 *    only globals); open and close files from one thread. */
ba_status ba_mapped_files_check(ba_error *err);
void ba_mapped_files_guard(const char *cleanup_path);

/* ---- a checkpoint directory (single file or shards) -------------------- */

typedef struct ba_checkpoint ba_checkpoint;

ba_status ba_checkpoint_open(const char *dir, ba_checkpoint **out, ba_error *err);
void ba_checkpoint_close(ba_checkpoint *ck);

const char *ba_checkpoint_dir(const ba_checkpoint *ck);
size_t ba_checkpoint_count(const ba_checkpoint *ck);
size_t ba_checkpoint_n_files(const ba_checkpoint *ck);
/* All tensors of all shards, in name order. */
const ba_tensor *ba_checkpoint_at(const ba_checkpoint *ck, size_t i);
/* NULL when absent (no error). */
const ba_tensor *ba_checkpoint_lookup(const ba_checkpoint *ck, const char *name);
/* Fails with a message naming the tensor and the directory when absent. */
ba_status ba_checkpoint_get(const ba_checkpoint *ck, const char *name,
                            const ba_tensor **out, ba_error *err);

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    const char *name;
    ba_dtype dtype;
    int rank;
    int64_t shape[BA_TENSOR_MAX_RANK];
} ba_tensor_spec;

/* Bytes of a tensor described by `spec` (0 if it overflows size_t). */
size_t ba_tensor_spec_bytes(const ba_tensor_spec *spec);

typedef struct ba_st_writer ba_st_writer;

/* Begin writing `path` (under a temporary name) with the tensors `specs`
 * laid out in this order; metadata is n_meta key/value string pairs
 * (meta[2k], meta[2k+1]), may be NULL. */
ba_status ba_st_writer_open(const char *path, const ba_tensor_spec *specs, size_t n_specs,
                            const char *const *meta, size_t n_meta,
                            ba_st_writer **out, ba_error *err);
/* Append raw little-endian bytes of the tensors, in spec order; a tensor
 * may be written in several chunks and a chunk may span tensors. */
ba_status ba_st_writer_write(ba_st_writer *w, const void *bytes, size_t n, ba_error *err);
/* Check every byte was written, flush, rename to the final name, free. */
ba_status ba_st_writer_finish(ba_st_writer *w, ba_error *err);
/* Delete the temporary file and free (safe on NULL). */
void ba_st_writer_abort(ba_st_writer *w);

#endif
