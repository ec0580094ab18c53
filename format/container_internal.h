/* container_internal.h — what the .vqz reader and writer share: byte offsets of the header fields,
 * header encoding, size bounds and the zstd helpers. Not for use outside format/. */
#ifndef VQZ_FORMAT_CONTAINER_INTERNAL_H
#define VQZ_FORMAT_CONTAINER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "format/container.h"

/* Byte offsets in the fixed header (spec §3). */
enum {
    OFF_SIGNATURE = 0,
    OFF_MAJOR = 8,
    OFF_MINOR = 10,
    OFF_HEADER_SIZE = 12,
    OFF_FIXED_SIZE = 16,
    OFF_MEDIA_KIND = 18,
    OFF_LEVELS = 19,
    OFF_SECTIONS = 20,
    OFF_NAME_LEN = 22,
    OFF_RESERVED0 = 23,
    OFF_GRID_PLANES = 24,
    OFF_GRID_HEIGHT = 28,
    OFF_GRID_WIDTH = 32,
    OFF_CHUNK_HEIGHT = 36,
    OFF_CHUNK_WIDTH = 40,
    OFF_STRIDE = 44,
    OFF_MODEL_SHA = 48,
    OFF_GEOMETRY = 80,
    OFF_RESERVED1 = 104,
    /* image geometry */
    OFF_IMG_WIDTH = 80,
    OFF_IMG_HEIGHT = 84,
    OFF_IMG_CHANNELS = 88,
    OFF_IMG_DEPTH = 89,
    OFF_IMG_COLOUR = 90,
    OFF_IMG_RESERVED = 91,
    /* audio geometry */
    OFF_AUD_RATE = 80,
    OFF_AUD_MODEL_RATE = 84,
    OFF_AUD_SAMPLES = 88,
    OFF_AUD_CHANNELS = 96,
    OFF_AUD_DEPTH = 98,
    OFF_AUD_RESERVED = 99,
};

/* Section flag: a reader that does not know the section's type must not decode the file. */
#define VQZ_SECTION_CRITICAL 1u
/* Alpha section body: raw size (8 bytes) then one zstd frame. */
#define VQZ_ALPHA_PREFIX 8

/* Largest compressed size accepted for raw_size bytes (spec §6.3). */
static inline uint64_t vqz_comp_bound(uint64_t raw_size)
{
    return raw_size + raw_size / 128 + 1024;
}

/* A section as listed in the section table. */
typedef struct {
    uint16_t type, flags;
    uint32_t crc32;
    uint64_t size;
} vqz_section_entry;

/* Header bytes for h with the given section and frame tables; out must hold vqz_encoded_header_size. */
uint64_t vqz_encoded_header_size(const vqz_header *h, uint32_t nsections);
void vqz_encode_header(const vqz_header *h, const vqz_section_entry *sections, uint32_t nsections,
                       const vqz_frame_info *frames, uint8_t *out);

/* Compress src[n] as one zstd frame, starting a new block at each segment boundary. *out is malloc'ed. */
vqz_status vqz_zstd_compress(void *cctx, int level, const uint8_t *src, size_t n, const size_t *seg, int nseg,
                             uint8_t **out, size_t *out_n);
/* Decompress exactly one zstd frame src[comp] into exactly dst[raw] bytes. */
vqz_status vqz_zstd_decompress(void *dctx, const uint8_t *src, size_t comp, uint8_t *dst, size_t raw);
/* VQZ_OK when frame[n] is exactly one zstd frame (magic, no trailing bytes) of raw bytes when declared. */
vqz_status vqz_zstd_check_frame(const uint8_t *frame, size_t n, uint64_t raw);

/* Copy frame bytes of a reader into a writer (used by vqz_container_write_levels). */
vqz_status vqz_container_writer_put_section_raw(vqz_container_writer *w, const vqz_section_entry *e,
                                                const uint8_t *body);

#endif
