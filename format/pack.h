/* pack.h — index packing of one payload frame before zstd (spec/vqz-format.md §6): one byte per index
 * when K <= 256; otherwise a packed plane of high bits followed by the low bytes grouped by high value. */
#ifndef VQZ_FORMAT_PACK_H
#define VQZ_FORMAT_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Most segments a packed frame has: the high plane plus one low-byte group per high value. */
#define VQZ_PACK_MAX_SEGMENTS 257

/* Number of high bits per index for codebook size K (0 when K <= 256, else ceil(log2 K) - 8). */
int vqz_pack_high_bits(uint32_t K);

/* Bytes of the packed form of n indices with codebook size K. */
size_t vqz_pack_size(uint32_t K, size_t n);

/* Pack n indices (each < K, checked by the caller) into out[vqz_pack_size(K, n)]. seg_sizes, when not
 * NULL, receives the size of each segment (high plane, then groups 0, 1, ...; empty groups included)
 * and *nseg their count, so the compressor can start a new zstd block (new Huffman table) per group. */
void vqz_pack_indices(const uint16_t *idx, size_t n, uint32_t K, uint8_t *out, size_t *seg_sizes, int *nseg);

/* Unpack raw[raw_size] into n indices. Fails with VQZ_ERR_FORMAT when raw_size is not the packed size or
 * padding bits are set, VQZ_ERR_INDEX_RANGE when an index is >= K (the message gives the position). */
vqz_status vqz_unpack_indices(const uint8_t *raw, size_t raw_size, uint32_t K, uint16_t *idx, size_t n);

#endif
