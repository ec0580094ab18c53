/* stream.h — audio stream packets (spec/vqz-format.md §11): the stream header packet, and data packets
 * holding the packed, zstd-compressed indices of a run of latent frames; a writer and a checked parser. */
#ifndef VQZ_FORMAT_STREAM_H
#define VQZ_FORMAT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "format/container.h"

#define VQZ_STREAM_MAJOR 1
#define VQZ_STREAM_MINOR 0
#define VQZ_STREAM_FIXED_SIZE 80      /* fixed part of a version 1.0 stream header packet */
#define VQZ_STREAM_DATA_HEADER 32     /* data packet bytes before the zstd frame */
#define VQZ_STREAM_MAX_CHANNELS 64
#define VQZ_STREAM_MAX_FRAMES 65535   /* latent frames in one data packet */
#define VQZ_STREAM_MAX_INDICES (1u << 24) /* levels x channels x frames of one data packet */
#define VQZ_STREAM_MAX_SAMPLES ((uint64_t)1 << 48)
#define VQZ_STREAM_FLAG_END 1u        /* data packet flag: the last packet of the stream */

/* The stream header packet's signature: 0x89 'V' 'Q' 'S' CR LF 0x1A LF, and the data packets' magic. */
extern const uint8_t vqz_stream_signature[8];
extern const uint8_t vqz_stream_data_magic[4];

typedef enum { VQZ_STREAM_PACKET_HEADER = 1, VQZ_STREAM_PACKET_DATA = 2 } vqz_stream_packet_kind;

/* Everything a stream header packet says. */
typedef struct {
    uint16_t version_major, version_minor; /* as read; the writer writes VQZ_STREAM_MAJOR/MINOR */
    int levels;                            /* q, levels carried: 1..32 */
    uint32_t K[VQZ_MAX_LEVELS];            /* codebook size of each level, 2..65536 */
    int channels;                          /* 1..64 */
    uint32_t sample_rate;                  /* of the input signal, Hz */
    uint32_t model_rate;                   /* at which the model codes it, Hz */
    uint32_t stride;                       /* model-rate samples per latent frame */
    uint32_t packet_frames;                /* most latent frames in one data packet, 1..65535 */
    uint8_t model_sha256[32];
    char model_name[VQZ_MODEL_NAME_MAX + 1];
} vqz_stream_header;

/* A data packet's header fields, and (when parsed) where its zstd frame lies. */
typedef struct {
    uint32_t sequence;      /* 1 for the first data packet, then +1 each */
    uint64_t first_frame;   /* index of its first latent frame */
    uint32_t frame_count;   /* 0..packet_frames (0 only in the last packet) */
    int levels;             /* levels it carries, 1..q */
    int end;                /* the last packet of the stream */
    uint64_t total_samples; /* end: the stream's length per channel at sample_rate; else 0 */
    size_t raw_size;        /* parsed: bytes of the packed indices */
    size_t comp_size;       /* parsed: bytes of the zstd frame, which starts at VQZ_STREAM_DATA_HEADER */
} vqz_stream_packet;

/* Which packet p[n] is, from its first bytes. VQZ_ERR_TRUNCATED when n is too short to tell,
 * VQZ_ERR_SIGNATURE when it is neither (the message recognises a .vqz file). */
vqz_status vqz_stream_packet_kind_of(const uint8_t *p, size_t n, vqz_stream_packet_kind *kind);

/* Bytes of the packet starting at p, from its size field: splits a byte stream of packets laid end to
 * end. VQZ_ERR_TRUNCATED when n does not reach the size field. */
vqz_status vqz_stream_packet_size(const uint8_t *p, size_t n, size_t *size);

/* Bytes of the packed indices of a data packet with `levels` levels of `frames` frames. */
uint64_t vqz_stream_raw_size(const vqz_stream_header *h, int levels, uint64_t frames);

/* Header packet: checks h (VQZ_ERR_INVALID_ARG naming the field) and writes it into *out (malloc'ed). */
vqz_status vqz_stream_header_write(const vqz_stream_header *h, uint8_t **out, size_t *n);
/* Parses and checks a header packet (spec §11.6 order): p must be exactly one packet. */
vqz_status vqz_stream_header_read(const uint8_t *p, size_t n, vqz_stream_header *h);

/* zstd contexts and scratch of a packet writer or reader. */
typedef struct vqz_stream_coder vqz_stream_coder;
/* zstd_level 0: the format default (VQZ_DEFAULT_ZSTD_LEVEL). */
vqz_status vqz_stream_coder_create(int zstd_level, vqz_stream_coder **out);
void vqz_stream_coder_free(vqz_stream_coder *c);

/* Data packet from pk's fields (raw_size, comp_size ignored) and idx[l][c * frame_count + j], the indices
 * of level l < pk->levels, channel c, frame first_frame + j. *out is malloc'ed. */
vqz_status vqz_stream_packet_write(vqz_stream_coder *c, const vqz_stream_header *h, const vqz_stream_packet *pk,
                                   const uint16_t *const *idx, uint8_t **out, size_t *n);

/* Checks a data packet's framing, sizes, CRC-32 and fields against the stream header without
 * decompressing it. packet_no (the packet's position in the stream, the header being 0) names it in
 * messages: "stream packet 3: CRC-32 mismatch (stored ..., computed ...)". */
vqz_status vqz_stream_packet_parse(const vqz_stream_header *h, uint64_t packet_no, const uint8_t *p, size_t n,
                                   vqz_stream_packet *pk);
/* The indices of a parsed packet: idx[(l * channels + c) * frame_count + j], n = levels x channels x
 * frame_count. VQZ_ERR_FORMAT for a damaged zstd frame, VQZ_ERR_INDEX_RANGE for an index >= K. */
vqz_status vqz_stream_packet_indices(vqz_stream_coder *c, const vqz_stream_header *h, uint64_t packet_no,
                                     const uint8_t *p, const vqz_stream_packet *pk, uint16_t *idx, size_t n);

#endif
