/* container.h — the .vqz container (normative description: spec/vqz-format.md): header, sections
 * (metadata, alpha plane), and the layered index payload. A reader with random access (header alone, one
 * level, one chunk), a writer, the lower-rate byte copy, and the statistics vqz-info prints. */
#ifndef VQZ_FORMAT_CONTAINER_H
#define VQZ_FORMAT_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "format/arith.h"

#define VQZ_FORMAT_MAJOR 1
#define VQZ_FORMAT_MINOR 1 /* the newest minor version this library reads and writes */
#define VQZ_SIGNATURE_SIZE 8
#define VQZ_FIXED_HEADER_SIZE 128 /* fixed part of a version 1.0 header */
#define VQZ_MAX_LEVELS 32
#define VQZ_MIN_K 2
#define VQZ_MAX_K 65536
#define VQZ_MODEL_NAME_MAX 255
#define VQZ_FRAME_ENTRY_SIZE 12   /* one frame-table entry */
#define VQZ_SECTION_ENTRY_SIZE 16 /* one section-table entry */

/* The 8 signature bytes: 0x89 'V' 'Q' 'Z' CR LF 0x1A LF (the PNG design: a high-bit byte, CR LF, ^Z). */
extern const uint8_t vqz_signature[VQZ_SIGNATURE_SIZE];

typedef enum { VQZ_MEDIA_IMAGE = 1, VQZ_MEDIA_AUDIO = 2 } vqz_media_kind;

typedef enum { VQZ_COLOUR_UNSPECIFIED = 0, VQZ_COLOUR_SRGB = 1, VQZ_COLOUR_LINEAR = 2 } vqz_colour_space;

/* Section types (spec §5). VQZ_SECTION_PRIOR (empty, critical) marks a file with modelled frames (§6.5). */
enum { VQZ_SECTION_METADATA = 1, VQZ_SECTION_ALPHA = 2, VQZ_SECTION_PRIOR = 3 };

typedef struct {
    uint32_t width, height;
    uint8_t channels;     /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    uint8_t bit_depth;    /* 8 or 16 bits per sample */
    uint8_t colour_space; /* vqz_colour_space */
} vqz_image_geometry;

typedef struct {
    uint32_t sample_rate;  /* of the original signal, Hz */
    uint32_t model_rate;   /* at which the model codes it, Hz */
    uint64_t sample_count; /* per channel, at sample_rate */
    uint16_t channels;
    uint8_t bit_depth;     /* of the original samples: 0 (unspecified), 8, 16, 24 or 32 */
} vqz_audio_geometry;

/* Everything the header says, decoded. Only the geometry of media_kind is meaningful. */
typedef struct {
    uint16_t version_major, version_minor; /* as read; the writer writes VQZ_FORMAT_MAJOR/MINOR */
    uint8_t media_kind;                    /* vqz_media_kind */
    uint8_t levels;                        /* L, 1..32 */
    uint32_t K[VQZ_MAX_LEVELS];            /* codebook size of each level, 2..65536 */
    uint32_t grid_planes, grid_height, grid_width; /* latent index grid of one level */
    uint32_t chunk_height, chunk_width;    /* chunk (tile) size in latent cells; edge chunks are smaller */
    uint32_t stride;                       /* input pixels or model-rate samples per latent cell */
    char model_name[VQZ_MODEL_NAME_MAX + 1];
    uint8_t model_sha256[32];
    vqz_image_geometry image;
    vqz_audio_geometry audio;
} vqz_header;

/* A chunk's place in the grid: rows [y, y+h), columns [x, x+w), every plane. */
typedef struct {
    uint32_t y, x, h, w;
} vqz_chunk_rect;

/* Reader limits, checked before any allocation. vqz_limits_default gives the values of spec §7. */
typedef struct {
    uint64_t max_header_bytes;   /* whole header, tables included */
    uint64_t max_level_indices;  /* planes x height x width */
    uint64_t max_chunk_indices;  /* planes x chunk height x chunk width */
    uint64_t max_metadata_bytes;
    uint64_t max_alpha_bytes;    /* uncompressed alpha plane */
    uint64_t max_image_pixels;   /* width x height */
} vqz_limits;

void vqz_limits_default(vqz_limits *lim);

/* Derived geometry. */
uint32_t vqz_header_chunks_x(const vqz_header *h);
uint32_t vqz_header_chunks_y(const vqz_header *h);
uint32_t vqz_header_chunk_count(const vqz_header *h);
/* Rectangle of chunk c (row-major over the chunk grid); c must be < chunk count. */
vqz_chunk_rect vqz_header_chunk_rect(const vqz_header *h, uint32_t c);
/* Indices in chunk c (planes x h x w) and in one whole level (planes x height x width). */
uint64_t vqz_header_chunk_indices(const vqz_header *h, uint32_t c);
uint64_t vqz_header_level_indices(const vqz_header *h);
/* Check a header against the format rules and limits (what the writer and reader both enforce). */
vqz_status vqz_header_validate(const vqz_header *h, const vqz_limits *lim);

/* ---------------------------------------------------------------------------------------------- */
/* Reader. Opening reads and verifies the header only; levels, chunks and sections are read on demand. */
typedef struct vqz_container vqz_container;

typedef struct {
    uint64_t offset;    /* from the start of the file */
    uint32_t comp_size; /* zstd frame bytes */
    uint32_t raw_size;  /* packed index bytes */
    uint32_t crc32;     /* CRC-32 of the zstd frame bytes */
} vqz_frame_info;

/* Open a file. lim may be NULL for the defaults. On failure *out is NULL and the message names the file. */
vqz_status vqz_container_open_file(const char *path, const vqz_limits *lim, vqz_container **out);
/* Open a buffer; data must outlive the handle (it is not copied). */
vqz_status vqz_container_open_memory(const uint8_t *data, size_t size, const vqz_limits *lim,
                                     vqz_container **out);
void vqz_container_free(vqz_container *c);

const vqz_header *vqz_container_header(const vqz_container *c);
/* File size, and the size the header declares for the complete file. */
uint64_t vqz_container_file_size(const vqz_container *c);
uint64_t vqz_container_full_size(const vqz_container *c);
/* Number of leading levels whose frames all lie within the file (L for a complete file). */
int vqz_container_levels_available(const vqz_container *c);
/* Location and sizes of frame (level, chunk), from the header alone. */
vqz_status vqz_container_frame_info(const vqz_container *c, int level, uint32_t chunk, vqz_frame_info *info);

/* Read chunk `chunk` of level `level` into idx[n], n = vqz_header_chunk_indices (plane, row, column
 * order). VQZ_ERR_MISSING when the file ends before the frame starts, VQZ_ERR_TRUNCATED when it ends
 * inside it, VQZ_ERR_CHECKSUM / VQZ_ERR_FORMAT / VQZ_ERR_INDEX_RANGE naming the frame otherwise. */
vqz_status vqz_container_read_chunk(vqz_container *c, int level, uint32_t chunk, uint16_t *idx, size_t n);
/* Give the reader the model's prior of a level (borrowed: it must outlive the handle's reads), needed for
 * the level's modelled frames that start from the prior (spec §6.5); without it they fail with
 * VQZ_ERR_UNSUPPORTED. VQZ_ERR_INVALID_ARG when the prior's K is not the level's. */
vqz_status vqz_container_set_prior(vqz_container *c, int level, const vqz_prior *prior);
/* 1 when the file has modelled frames (its modelled-frames section is present). */
int vqz_container_uses_prior(const vqz_container *c);
/* *modelled = 1 when frame (level, chunk) is a modelled frame, 0 for a zstd frame: its first four bytes
 * alone are read (no checksum; read the chunk for that). VQZ_ERR_TRUNCATED when the file cuts it. */
vqz_status vqz_container_frame_modelled(vqz_container *c, int level, uint32_t chunk, int *modelled);
/* Read a whole level into grid[n], n = vqz_header_level_indices, laid out [plane][row][column]. */
vqz_status vqz_container_read_level(vqz_container *c, int level, uint16_t *grid, size_t n);
/* The stored zstd frame of (level, chunk), checksum verified, into buf[cap] (cap >= comp_size). */
vqz_status vqz_container_read_frame(vqz_container *c, int level, uint32_t chunk, uint8_t *buf, size_t cap);

/* Metadata text (UTF-8, not NUL-terminated inside the file). VQZ_ERR_MISSING when the file has none.
 * *text points into the handle, valid until vqz_container_free; it is NUL-terminated for convenience. */
vqz_status vqz_container_metadata(vqz_container *c, const char **text, size_t *len);
/* 1 when the file has an alpha plane (then its size is width x height x bit_depth/8). */
int vqz_container_has_alpha(const vqz_container *c);
uint64_t vqz_container_alpha_size(const vqz_container *c);
/* Alpha plane, row-major, little-endian samples of bit_depth bits, into out[n], n = alpha size. */
vqz_status vqz_container_read_alpha(vqz_container *c, uint8_t *out, size_t n);

/* VQZ_ERR_MODEL_MISMATCH (message naming both models and their hashes) unless the file was made with
 * the model `name` whose bundle has SHA-256 `sha256`. */
vqz_status vqz_container_check_model(const vqz_container *c, const char *name, const uint8_t sha256[32]);

/* Write a copy of the first `levels` levels of c to path (1 <= levels <= available levels): a new
 * header, then the sections and the payload prefix copied byte for byte. */
vqz_status vqz_container_write_levels(vqz_container *c, int levels, const char *path);

/* ---------------------------------------------------------------------------------------------- */
/* Writer. Give it a header, the optional metadata and alpha plane, and every (level, chunk) frame. */
typedef struct vqz_container_writer vqz_container_writer;

vqz_status vqz_container_writer_create(const vqz_header *h, vqz_container_writer **out);
void vqz_container_writer_free(vqz_container_writer *w);
/* zstd compression level for the frames added afterwards (default VQZ_DEFAULT_ZSTD_LEVEL). */
#define VQZ_DEFAULT_ZSTD_LEVEL 19
vqz_status vqz_container_writer_set_zstd_level(vqz_container_writer *w, int level);
/* Metadata text, UTF-8 (validated), at most the default metadata limit. Copied. */
vqz_status vqz_container_writer_set_metadata(vqz_container_writer *w, const char *utf8, size_t len);
/* Alpha plane for an image with alpha (required then): width x height samples. Copied, compressed. */
vqz_status vqz_container_writer_set_alpha(vqz_container_writer *w, const uint8_t *plane, size_t n);
/* Pack and compress the indices of one chunk (n = chunk index count; each < K of the level). */
vqz_status vqz_container_writer_put_chunk(vqz_container_writer *w, int level, uint32_t chunk,
                                          const uint16_t *idx, size_t n);
/* Every chunk of a level from the whole grid [plane][row][column] (n = level index count). */
vqz_status vqz_container_writer_put_level(vqz_container_writer *w, int level, const uint16_t *grid, size_t n);
/* 1 (the default): chunks may be written as modelled frames (spec §6.5), which makes a version 1.1 file;
 * 0: zstd frames only, a file that every version 1.0 reader decodes. Applies to chunks given afterwards. */
void vqz_container_writer_set_modelled(vqz_container_writer *w, int allow);
/* The model's prior for `level` (borrowed: it must outlive the writer; NULL: none). The writer codes each
 * chunk both as a zstd frame and as a modelled frame (spec §6.5; from the prior when it helps) and keeps
 * the smaller. */
vqz_status vqz_container_writer_set_prior(vqz_container_writer *w, int level, const vqz_prior *prior);
/* Store an already compressed frame as is (checked: one zstd frame or a modelled frame, size limits; not decoded). */
vqz_status vqz_container_writer_put_frame(vqz_container_writer *w, int level, uint32_t chunk,
                                          const uint8_t *frame, size_t n, uint32_t raw_size);
/* Size of the complete file; fails with VQZ_ERR_INVALID_ARG naming the first frame not yet given. */
vqz_status vqz_container_writer_size(const vqz_container_writer *w, uint64_t *size);
/* Serialise into buf[cap] (cap >= size). */
vqz_status vqz_container_writer_write_buffer(const vqz_container_writer *w, uint8_t *buf, size_t cap);
/* Serialise to a temporary file in path's folder, then rename it to path; nothing is left on failure. */
vqz_status vqz_container_writer_write_file(const vqz_container_writer *w, const char *path);

/* ---------------------------------------------------------------------------------------------- */
/* Statistics for vqz-info (format/info.c). */
typedef struct {
    uint64_t indices;     /* in the level, all chunks */
    uint64_t comp_bytes;  /* zstd frames of the level */
    uint64_t raw_bytes;   /* packed indices before zstd */
    uint64_t table_bytes; /* frame-table entries of the level in the header */
    double entropy_bits;  /* empirical 0th-order entropy of the level's indices, bits per index */
    uint32_t distinct;    /* distinct index values used */
    uint32_t modelled;    /* frames of the level coded as modelled frames (the others are zstd frames) */
} vqz_level_stats;

/* Empirical 0th-order entropy (bits per index) of n indices < K, and the number of distinct values. */
vqz_status vqz_index_entropy(const uint16_t *idx, size_t n, uint32_t K, double *bits, uint32_t *distinct);
/* Statistics of one level (reads and decodes it: fails like vqz_container_read_level). */
vqz_status vqz_container_level_stats(vqz_container *c, int level, vqz_level_stats *st);
/* "image" / "audio" / "unknown"; "unspecified" / "sRGB" / "linear" / "unknown". */
const char *vqz_media_kind_name(int kind);
const char *vqz_colour_space_name(int cs);

#endif
