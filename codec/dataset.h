/* dataset.h — training media for the trainer: a recursive scan of folders for every image and audio format
 * the codec reads, decoded once into an in-memory cache (huge images downscaled, audio mixed to mono at the
 * model's rate), deterministic random crops and clips with augmentation, and a loader thread that prepares
 * the next batch while the current one trains. */
#ifndef VQZ_CODEC_DATASET_H
#define VQZ_CODEC_DATASET_H

#include <stdint.h>

#include "common/status.h"

typedef enum { VQZ_DATA_IMAGE = 1, VQZ_DATA_AUDIO = 2 } vqz_data_kind;

typedef struct {
    vqz_data_kind kind;
    int sample_rate;       /* audio: the model's rate; files are resampled to it */
    int64_t max_pixels;    /* images: halved (2×2 box filter) until at most this many pixels; 0 = 2,000,000 */
    int min_side;          /* images: files whose smaller side (after downscaling) is below this are skipped */
    int64_t cache_bytes;   /* stop adding files once the cache holds this much; 0 = no limit */
    uint64_t seed;         /* order in which files are considered when cache_bytes truncates the set */
    int threads;           /* decoding threads; 0 = as many as OpenMP gives */
    /* Called for each file that fails to decode (once per file) and for progress lines; may be NULL.
     * The library never prints. */
    void (*log)(void *user, const char *line);
    void *log_user;
} vqz_dataset_opts;

typedef struct vqz_dataset vqz_dataset;

/* Scan the folders (recursively; symlinks followed, each file once) and decode every file with a known
 * extension (.png .jpg .jpeg for images; .wav .flac .ogg .oga .opus .aif .aiff for audio, case-insensitive)
 * into the cache. Files that fail to decode are reported through o->log and skipped. The set of files kept
 * and their order are independent of o->threads. VQZ_ERR_NOT_FOUND (naming the folders) when nothing
 * usable was found; VQZ_ERR_IO when a folder cannot be opened. */
vqz_status vqz_dataset_load(const char *const *dirs, int n_dirs, const vqz_dataset_opts *o, vqz_dataset **out);
void vqz_dataset_free(vqz_dataset *d);

/* Files held, files skipped (failed to decode or too small), and the amount held: megapixels (after
 * downscaling) or seconds. */
int64_t vqz_dataset_count(const vqz_dataset *d);
int64_t vqz_dataset_skipped(const vqz_dataset *d);
double vqz_dataset_amount(const vqz_dataset *d);
/* Path of file i (0 <= i < count), for messages. */
const char *vqz_dataset_path(const vqz_dataset *d, int64_t i);

/* Batch number b of a run seeded with seed: n random crops written to x, a pure function of
 * (dataset, seed, b, n, crop) so a resumed run sees the batches it would have seen.
 *  - images: x is [n, 3, crop, crop], RGB in [-1, 1] (p / 127.5 - 1); a file is drawn with probability
 *    proportional to its pixel count, the crop position uniformly, and the crop is mirrored left-right with
 *    probability 1/2; files smaller than crop are never drawn (VQZ_ERR_SHAPE when none is large enough).
 *  - audio: x is [n, 1, crop] samples; a file is drawn with probability proportional to its length, the clip
 *    start uniformly (files shorter than the clip are placed at a random offset in silence); a clip whose RMS
 *    is below -60 dBFS is redrawn (up to 4 times); then a gain uniform in [-10, +4] dB is applied, reduced if
 *    needed so the peak stays at or below 0.99. */
vqz_status vqz_dataset_batch(const vqz_dataset *d, uint64_t seed, int64_t b, int n, int crop, float *x);

/* A fixed, unaugmented crop of file i for validation: the central crop × crop pixels of an image
 * ([1, 3, crop, crop]; VQZ_ERR_SHAPE when the file is smaller), or crop samples from the middle of an audio
 * file ([1, 1, crop], zero-padded when the file is shorter). */
vqz_status vqz_dataset_fixed(const vqz_dataset *d, int64_t i, int crop, float *x);

/* Background loader: one thread computing vqz_dataset_batch(d, seed, b, n, crop) for b = first, first+1, …
 * one batch ahead of the consumer. The dataset must outlive it. */
typedef struct vqz_loader vqz_loader;
vqz_status vqz_loader_start(const vqz_dataset *d, uint64_t seed, int64_t first, int n, int crop, vqz_loader **out);
/* Wait for the next batch; *x ([n, ...] as above) stays valid until the next call or vqz_loader_stop. Errors
 * of the batch function are returned here. */
vqz_status vqz_loader_next(vqz_loader *l, const float **x);
/* Stop the thread and free everything; NULL is a no-op. */
void vqz_loader_stop(vqz_loader *l);

#endif
