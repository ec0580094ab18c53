/* bundle.h — weight bundles (spec/bundle.md): a validating safetensors loader with lookup by name and
 * shape (F16/BF16 converted to F32), metadata, the bundle SHA-256, and an atomic writer. */
#ifndef VQZ_FORMAT_BUNDLE_H
#define VQZ_FORMAT_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define VQZ_BUNDLE_MAX_DIMS 8
#define VQZ_BUNDLE_MAX_HEADER (16u << 20) /* bytes of JSON header; cJSON needs ~32x that in the worst case */
#define VQZ_BUNDLE_MAX_FILE ((uint64_t)1 << 36)
#define VQZ_BUNDLE_FORMAT "vqz-bundle-1" /* value of the "format" metadata key */

/* safetensors dtypes. Only F32, F16 and BF16 can be loaded as weights; the others are validated (their
 * sizes count in the offset checks) and reported as VQZ_ERR_UNSUPPORTED when asked for. */
typedef enum {
    VQZ_DTYPE_F32 = 0,
    VQZ_DTYPE_F16,
    VQZ_DTYPE_BF16,
    VQZ_DTYPE_F64,
    VQZ_DTYPE_I64,
    VQZ_DTYPE_I32,
    VQZ_DTYPE_I16,
    VQZ_DTYPE_I8,
    VQZ_DTYPE_U64,
    VQZ_DTYPE_U32,
    VQZ_DTYPE_U16,
    VQZ_DTYPE_U8,
    VQZ_DTYPE_BOOL,
    VQZ_DTYPE_F8_E4M3,
    VQZ_DTYPE_F8_E5M2,
    VQZ_DTYPE_COUNT
} vqz_dtype;

/* "F32", "BF16", ... as written in the header. */
const char *vqz_dtype_name(vqz_dtype t);
/* Bytes per element. */
int vqz_dtype_size(vqz_dtype t);

typedef struct {
    const char *name; /* valid while the bundle is open */
    vqz_dtype dtype;
    int ndim;
    int64_t shape[VQZ_BUNDLE_MAX_DIMS];
    uint64_t numel;
    uint64_t offset; /* of the first byte, from the start of the file */
    uint64_t nbytes;
} vqz_tensor_info;

typedef struct vqz_bundle vqz_bundle;

/* Read and validate a bundle; the whole file is read (and hashed) once. */
vqz_status vqz_bundle_open_file(const char *path, vqz_bundle **out);
/* Validate a bundle held in memory; data must outlive the handle. */
vqz_status vqz_bundle_open_memory(const uint8_t *data, size_t size, vqz_bundle **out);
void vqz_bundle_free(vqz_bundle *b);

/* Tensors in data order. */
int vqz_bundle_tensor_count(const vqz_bundle *b);
vqz_status vqz_bundle_tensor_at(const vqz_bundle *b, int i, vqz_tensor_info *info);
/* VQZ_ERR_NOT_FOUND (naming the tensor and the file) when absent. */
vqz_status vqz_bundle_find(const vqz_bundle *b, const char *name, vqz_tensor_info *info);
/* Copy tensor `name` as F32 into out[numel] after checking its shape against shape[ndim]:
 * VQZ_ERR_NOT_FOUND, VQZ_ERR_SHAPE (both shapes in the message), VQZ_ERR_UNSUPPORTED (dtype),
 * VQZ_ERR_NONFINITE (name and element index of the first NaN/Inf). */
vqz_status vqz_bundle_get_f32(const vqz_bundle *b, const char *name, int ndim, const int64_t *shape, float *out);

/* Metadata (`__metadata__`, string to string), in header order. */
int vqz_bundle_meta_count(const vqz_bundle *b);
vqz_status vqz_bundle_meta_at(const vqz_bundle *b, int i, const char **key, const char **value);
/* VQZ_ERR_NOT_FOUND naming the key and the file when absent. */
vqz_status vqz_bundle_meta_get(const vqz_bundle *b, const char *key, const char **value);
/* Check the keys every vqz model bundle has (spec/bundle.md §4): "format" = VQZ_BUNDLE_FORMAT, "name", and
 * "config" holding a JSON object with a "kind" string. VQZ_ERR_VERSION for another bundle format. */
vqz_status vqz_bundle_check_vqz(const vqz_bundle *b);

/* SHA-256 of the whole file, the identity .vqz files record. */
void vqz_bundle_sha256(const vqz_bundle *b, uint8_t out[32]);

/* ---------------------------------------------------------------------------------------------- */
/* Writer. Tensors are written in the order added; the float data is borrowed (it must stay valid until
 * the write) and stored as `store_as` (F32, F16 or BF16, round to nearest even). */
typedef struct vqz_bundle_writer vqz_bundle_writer;

vqz_status vqz_bundle_writer_create(vqz_bundle_writer **out);
void vqz_bundle_writer_free(vqz_bundle_writer *w);
vqz_status vqz_bundle_writer_add(vqz_bundle_writer *w, const char *name, int ndim, const int64_t *shape,
                                 const float *data, vqz_dtype store_as);
/* Set (or replace) a metadata entry; both strings are copied. */
vqz_status vqz_bundle_writer_set_meta(vqz_bundle_writer *w, const char *key, const char *value);
/* Size of the serialised bundle. */
vqz_status vqz_bundle_writer_size(const vqz_bundle_writer *w, uint64_t *size);
/* Serialise into buf[cap]; sha256 (may be NULL) receives the bundle hash. */
vqz_status vqz_bundle_writer_write_buffer(const vqz_bundle_writer *w, uint8_t *buf, size_t cap, uint8_t sha256[32]);
/* Serialise to a temporary file in path's folder, renamed to path when complete. */
vqz_status vqz_bundle_writer_write_file(const vqz_bundle_writer *w, const char *path, uint8_t sha256[32]);

/* Half-precision conversions used by the loader and writer (exposed for tests). */
float vqz_f16_to_f32(uint16_t h);
float vqz_bf16_to_f32(uint16_t h);
uint16_t vqz_f32_to_f16(float f);
uint16_t vqz_f32_to_bf16(float f);

#endif
