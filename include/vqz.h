/* vqz.h — the public C API of libvqz, a neural (VQ-VAE) codec for images and audio.
 *
 * Conventions used throughout:
 *  - Every function that can fail returns a vqz_status; VQZ_OK is 0, errors are negative and their
 *    values never change once released. vqz_strerror() names a code; vqz_last_error() gives the
 *    detail (file, offset, field) of the last error raised on the calling thread.
 *  - Whoever creates an object frees it (vqz_x_create / vqz_x_free); freeing NULL is a no-op.
 *  - The library never prints, exits or aborts on bad data.
 */
#ifndef VQZ_H
#define VQZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VQZ_BUILDING_LIBRARY) && defined(__GNUC__)
#define VQZ_API __attribute__((visibility("default")))
#else
#define VQZ_API
#endif

#define VQZ_VERSION_MAJOR 0
#define VQZ_VERSION_MINOR 1
#define VQZ_VERSION_PATCH 0
#define VQZ_VERSION_STRING "0.1.0"

/* Status codes. Values are part of the ABI: append, never renumber. */
typedef enum {
    VQZ_OK = 0,
    VQZ_ERR_INVALID_ARG = -1,     /* a caller-supplied argument is out of its documented range */
    VQZ_ERR_NOMEM = -2,           /* an allocation failed */
    VQZ_ERR_IO = -3,              /* reading or writing a file or stream failed */
    VQZ_ERR_FORMAT = -4,          /* input data is malformed (generic) */
    VQZ_ERR_SIGNATURE = -5,       /* the file does not start with the expected signature */
    VQZ_ERR_VERSION = -6,         /* unknown major format version */
    VQZ_ERR_TRUNCATED = -7,       /* the data ends before a structure it declares */
    VQZ_ERR_CHECKSUM = -8,        /* a CRC or checksum does not match */
    VQZ_ERR_LIMIT = -9,           /* a declared size or dimension exceeds the reader's limits */
    VQZ_ERR_INDEX_RANGE = -10,    /* a codebook index is >= K */
    VQZ_ERR_MODEL_MISMATCH = -11, /* the data was made with another model */
    VQZ_ERR_SHAPE = -12,          /* tensor shapes do not fit together */
    VQZ_ERR_NONFINITE = -13,      /* NaN or Inf met in inputs or weights */
    VQZ_ERR_NO_CUDA = -14,        /* CUDA asked for but not built in, or no device present */
    VQZ_ERR_CUDA = -15,           /* a CUDA / cuBLAS / cuFFT call failed */
    VQZ_ERR_UNSUPPORTED = -16,    /* valid input that this build or version cannot handle */
    VQZ_ERR_CANCELLED = -17,      /* the operation was cancelled by the caller */
    VQZ_ERR_INTERNAL = -18,       /* a bug: an internal invariant failed or a library returned an unexpected error */
    VQZ_ERR_NOT_FOUND = -19,      /* a named model, tensor or key does not exist */
    VQZ_ERR_MISSING = -20         /* an optional part of the data (e.g. a level) is absent */
} vqz_status;

/* Short static description of a status code ("invalid argument"); never NULL. */
VQZ_API const char *vqz_strerror(vqz_status s);

/* Detail message of the last error raised on the calling thread (e.g. "photo.vqz: level 2, chunk 7:
 * frame checksum mismatch"), or "" when none. Valid until the next vqz call on this thread. */
VQZ_API const char *vqz_last_error(void);

/* Library version string, e.g. "0.1.0 (cuda)" or "0.1.0 (cpu only)". */
VQZ_API const char *vqz_version(void);

/* Compute devices. */
typedef enum { VQZ_DEVICE_CPU = 0, VQZ_DEVICE_CUDA = 1, VQZ_DEVICE_AUTO = 2 } vqz_device_kind;

/* Number of CPU threads used by the library; 0 restores the default (VQZ_THREADS, else all cores). */
VQZ_API vqz_status vqz_set_threads(int n);
VQZ_API int vqz_get_threads(void);

/* 1 when the library was built with CUDA and a CUDA device is usable now, else 0. */
VQZ_API int vqz_cuda_available(void);


/* ============================================================================ models */

typedef enum { VQZ_KIND_IMAGE = 1, VQZ_KIND_AUDIO = 2 } vqz_kind;

/* A loaded weight bundle (spec/bundle.md): the network, its name and the SHA-256 that .vqz files
 * record. Immutable once loaded: one model may serve several threads at once. */
typedef struct vqz_model vqz_model;

typedef struct {
    const char *name;       /* valid while the model is loaded */
    vqz_kind kind;
    uint8_t sha256[32];     /* of the bundle file */
    int levels;             /* L, RVQ levels */
    int codebook_size;      /* K */
    int latent_dim;         /* D */
    int stride;             /* input pixels per latent cell (each side) or samples per latent frame */
    int sample_rate;        /* audio models: the rate the model codes at */
    int64_t parameters;     /* number of weights */
} vqz_model_info;

/* Load a bundle from a file or from memory (the memory is copied). */
VQZ_API vqz_status vqz_model_load(const char *path, vqz_model **out);
VQZ_API vqz_status vqz_model_load_memory(const void *data, size_t size, vqz_model **out);
VQZ_API void vqz_model_free(vqz_model *m);
VQZ_API vqz_status vqz_model_describe(const vqz_model *m, vqz_model_info *info);

/* Find a bundle by model name (file NAME.safetensors) and, when sha256 is non-NULL, check its hash
 * (a bundle of that name with another hash is skipped). Searched in order: every folder of
 * $VQZ_MODEL_PATH (':'-separated), the installed share folder (PREFIX/share/vqz/models), the folder of
 * the running program and its ../share/vqz/models, and ./samples/models. Writes the path into
 * path[cap]; VQZ_ERR_NOT_FOUND names the model and the folders searched. */
VQZ_API vqz_status vqz_model_locate(const char *name, const uint8_t *sha256, char *path, size_t cap);

/* Name of the shipped default model for a kind ("vqz-image-v1", "vqz-audio-v1"). */
VQZ_API const char *vqz_default_model_name(vqz_kind kind);

/* ============================================================================ options */

typedef struct {
    vqz_device_kind device; /* default VQZ_DEVICE_AUTO */
    int threads;            /* 0: the library default (vqz_get_threads) */
    int levels;             /* encode: RVQ levels written (1..L); decode: levels decoded; 0 = all */
    double bpp;             /* image encode: the most levels whose file stays within this many bits per
                             * pixel (all bytes counted), at least 1 level; 0 = off */
    double kbps;            /* audio encode: likewise in kbit/s; 0 = off */
    int tile;               /* images: tile side in pixels (rounded up to the model stride); 0 = 256 */
    int chunk_frames;       /* audio: chunk length in latent frames; 0 = 750 (10 s at 75 Hz) */
    int zstd_level;         /* 1..22; 0 = the format default */
    int output_rate;        /* audio decode: 0 = the original rate, else resample to this rate */
    int zstd_only;          /* encode: 1 = zstd frames only, a .vqz 1.0 file for decoders older than 1.1;
                             * 0 = also modelled frames where smaller (spec/vqz-format.md §6.5) */
    const volatile int *cancel; /* when non-NULL and set non-zero, the running call stops with
                                 * VQZ_ERR_CANCELLED and writes nothing */
} vqz_options;

/* Defaults for every field. */
VQZ_API void vqz_options_init(vqz_options *o);

/* ============================================================================ images in memory */

typedef struct {
    uint32_t width, height;
    int channels;           /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    int bit_depth;          /* 8 (uint8_t samples) or 16 (uint16_t samples, host byte order) */
    void *pixels;           /* interleaved, row-major, width * channels samples per row */
} vqz_pixels;

/* Encode pixels to a complete .vqz file in memory; *data is allocated by the library and freed by the
 * caller with vqz_free(). Alpha is stored losslessly. */
VQZ_API vqz_status vqz_image_encode(const vqz_model *m, const vqz_options *o, const vqz_pixels *in,
                                    uint8_t **data, size_t *size);
/* Decode a .vqz image made with model m (VQZ_ERR_MODEL_MISMATCH otherwise) into out, whose pixels the
 * library allocates (free with vqz_free()); out gets the original geometry, channels and bit depth. */
VQZ_API vqz_status vqz_image_decode(const vqz_model *m, const vqz_options *o, const uint8_t *data, size_t size,
                                    vqz_pixels *out);

/* Free memory the library returned. */
VQZ_API void vqz_free(void *p);

/* ============================================================================ files */

typedef struct {
    vqz_kind kind;
    uint64_t in_bytes, out_bytes;
    int levels;             /* RVQ levels written (encode) or decoded (decode) */
    double bpp;             /* images: bits per pixel of the .vqz file, every byte counted */
    double kbps;            /* audio: kbit/s of the .vqz file over the signal's duration */
    uint32_t width, height; /* images */
    uint64_t frames;        /* audio: samples per channel at the original rate */
    int channels, sample_rate;
    double seconds;         /* wall time of the call */
} vqz_report;

/* Encode an image (PNG, JPEG) or audio file (anything libsndfile reads; "-" = audio on stdin) into a
 * .vqz file. The output is written to a temporary file beside `out` and renamed when complete: on any
 * failure nothing is left and an existing `out` is untouched. rep may be NULL. */
VQZ_API vqz_status vqz_encode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                                   vqz_report *rep);
/* Decode a .vqz file into PNG (images; original bit depth and channel layout) or WAV / FLAC (audio, by
 * the extension of out; "-" = a WAV stream on stdout). Same atomic-output guarantee. */
VQZ_API vqz_status vqz_decode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                                   vqz_report *rep);

/* What a .vqz file needs to be decoded: its kind and its model. */
typedef struct {
    vqz_kind kind;
    char model_name[256];
    uint8_t model_sha256[32];
    int levels;             /* levels in the complete file */
    int levels_available;   /* levels present (fewer when the file was cut) */
} vqz_file_info;
VQZ_API vqz_status vqz_file_probe(const char *path, vqz_file_info *info);

/* Everything the header of a .vqz file says, per-level sizes and the index entropy of each level, as
 * a JSON document (what vqz-info prints); free with vqz_free(). */
VQZ_API vqz_status vqz_file_describe_json(const char *path, char **json);

/* ============================================================================ audio streams */
/* Live audio in packets (spec/vqz-format.md §11): a stream header packet, then data packets of at most
 * o->chunk_frames latent frames each (0 = one second's worth: 75 frames for a 24 kHz model of stride 320).
 * Push PCM into an encoder and pull packets; push packets into a decoder and pull PCM. The indices equal
 * those vqz_encode_file writes for the same input, levels and chunk_frames, whatever the push sizes; the
 * decoded PCM equals vqz_decode_file's within float rounding, trimmed to the exact input length.
 *
 * Calls return VQZ_ERR_MISSING when nothing is ready yet (push more), and VQZ_OK with an empty result
 * once the stream is over and everything was pulled. Memory stays bounded whatever the stream's length as
 * long as the caller pulls after each push. A handle is used by one thread at a time; handles are
 * independent, and one model may serve several at once. An error other than a refused argument or packet
 * stops the handle: later calls return it again.
 *
 * Latency (algorithmic, compute time excluded): the encoder emits the packet of frames [c0, c1) once the
 * model-rate signal reaches c1 * stride + encoder_lookahead samples (its halo: the receptive-field radius
 * of spec/models.md §7, rounded up to whole frames); the decoder outputs frame j once frame
 * j + decoder_lookahead has arrived (or the end). So the samples of a frame come out between
 * decoder_lookahead frames + encoder_lookahead samples and that plus P - 1 frames after their end (P the
 * packet's frames), plus the filter delays of the two resamplers when the input rate is not the model's.
 * The "small" and "base" audio presets (stride 320 at 24 kHz, 75 frames/s) have encoder_lookahead 2240
 * samples (93 ms) and decoder_lookahead 7 frames (93 ms): 187 ms with chunk_frames 1, 187 ms to 1.17 s
 * with the default one-second packets. */

typedef struct {
    char model_name[256];
    uint8_t model_sha256[32];
    int sample_rate;        /* of the stream's input signal, Hz */
    int channels;
    int output_rate;        /* decoder: rate of the PCM it gives (sample_rate unless o->output_rate) */
    int model_rate;         /* the rate the model codes at, Hz */
    int stride;             /* model-rate samples per latent frame; frame rate = model_rate / stride */
    int levels;             /* levels the stream carries (data packets may carry fewer) */
    int codebook_size[32];  /* K of each carried level */
    int packet_frames;      /* most latent frames in one data packet */
    int encoder_lookahead;  /* model-rate samples the encoder waits for beyond a packet (0 from probe) */
    int decoder_lookahead;  /* latent frames the decoder waits for beyond its output (0 from probe) */
} vqz_audio_stream_info;

/* What a stream header packet says, without a model (to locate it: vqz_model_locate). */
VQZ_API vqz_status vqz_audio_stream_probe(const uint8_t *packet, size_t size, vqz_audio_stream_info *info);

typedef struct vqz_audio_encoder vqz_audio_encoder;

/* An encoder for `channels` channels (1..64) of PCM at sample_rate Hz (1000..768000). Options used:
 * device, threads, levels (0 = all), kbps (with levels 0: each data packet carries the most levels that
 * keep that packet within kbps over its duration, at least one), chunk_frames (frames per packet),
 * zstd_level, cancel (the flag must outlive the encoder). o may be NULL for the defaults. */
VQZ_API vqz_status vqz_audio_encoder_create(const vqz_model *m, const vqz_options *o, int sample_rate, int channels,
                                            vqz_audio_encoder **out);
/* Interleaved float PCM (pcm[i * channels + c]), nominally in [-1, 1]; any number of frames, 0 included.
 * Encodes every packet whose frames and encoder lookahead have arrived. VQZ_ERR_NONFINITE for a NaN or Inf
 * sample (nothing of this call is taken); VQZ_ERR_INVALID_ARG after finish. */
VQZ_API vqz_status vqz_audio_encoder_push(vqz_audio_encoder *e, const float *pcm, size_t frames);
/* End of input: encodes the rest (the last frame padded with zeros); the last packet has the end-of-stream
 * flag and the exact number of input frames. */
VQZ_API vqz_status vqz_audio_encoder_finish(vqz_audio_encoder *e);
/* The next packet, the stream header first: *data (owned by the encoder) stays valid until the next pull
 * or free. VQZ_ERR_MISSING when none is ready; after the last packet, VQZ_OK with *data NULL, *size 0. */
VQZ_API vqz_status vqz_audio_encoder_pull(vqz_audio_encoder *e, const uint8_t **data, size_t *size);
VQZ_API vqz_status vqz_audio_encoder_info(const vqz_audio_encoder *e, vqz_audio_stream_info *info);
VQZ_API void vqz_audio_encoder_free(vqz_audio_encoder *e);

typedef struct vqz_audio_decoder vqz_audio_decoder;

/* A decoder for streams made with model m. Options used: device, threads, levels (0 = all carried; a
 * span of frames decodes at the fewest levels its packets carry), output_rate (0 = the input's rate),
 * cancel. o may be NULL. */
VQZ_API vqz_status vqz_audio_decoder_create(const vqz_model *m, const vqz_options *o, vqz_audio_decoder **out);
/* One whole packet, in order: the header packet first, then data packets by sequence number. A refused
 * packet (VQZ_ERR_SIGNATURE, VQZ_ERR_VERSION, VQZ_ERR_FORMAT, VQZ_ERR_TRUNCATED, VQZ_ERR_CHECKSUM,
 * VQZ_ERR_LIMIT, VQZ_ERR_INDEX_RANGE, each naming the packet number and field; VQZ_ERR_MODEL_MISMATCH for
 * another model's stream) changes nothing: the intact packet may be pushed again. Out-of-order or
 * missing sequence numbers, and packets after the end, are refused with VQZ_ERR_FORMAT. */
VQZ_API vqz_status vqz_audio_decoder_push(vqz_audio_decoder *d, const uint8_t *packet, size_t size);
/* Copies up to cap_frames decoded interleaved frames (output_rate, the stream's channel count) into pcm.
 * VQZ_ERR_MISSING with *frames 0 when none is ready; after the end, once all was pulled, VQZ_OK with
 * *frames 0. */
VQZ_API vqz_status vqz_audio_decoder_pull(vqz_audio_decoder *d, float *pcm, size_t cap_frames, size_t *frames);
/* The stream's description; VQZ_ERR_MISSING before the header packet. */
VQZ_API vqz_status vqz_audio_decoder_info(const vqz_audio_decoder *d, vqz_audio_stream_info *info);
VQZ_API void vqz_audio_decoder_free(vqz_audio_decoder *d);

/* ===== evaluation ===== */
/* Full-reference quality of a decoded image or sound against its original, with the metrics codec papers
 * report. The exact definitions are in codec/metrics.h; in short: */

typedef struct {
    uint32_t width, height;
    int channels;           /* colour planes compared: 1 (both grey) or 3 (RGB; grey replicated); alpha never */
    int bit_depth_ref, bit_depth_test; /* 8 or 16; samples are compared as v / (2^depth - 1) */
    double mse;             /* mean squared error of the colour samples on [0, 1] */
    double psnr;            /* dB, 10 log10(1 / mse): peak 255 for 8-bit, 65535 for 16-bit; +inf when equal */
    double psnr_y;          /* dB, BT.601 luma of scikit-image's rgb2ycbcr (Y = 16 + 65.481 R + 128.553 G +
                             * 24.966 B, R, G, B in [0, 1]), peak 255 */
    double msssim;          /* MS-SSIM (5 scales, 11x11 Gaussian sigma 1.5), mean over the colour planes */
    double msssim_y;        /* MS-SSIM of the luma plane */
    int msssim_scales;      /* 5: msssim* are MS-SSIM; 1: a side is below 161 px, msssim* hold single-scale
                             * SSIM; 0: a side is below 11 px, msssim* are NaN */
} vqz_image_metrics;

/* Compare two image files (PNG or JPEG). Both must have the same width and height: VQZ_ERR_SHAPE names
 * both sizes otherwise. Read errors are those of the reader and name the file. */
VQZ_API vqz_status vqz_eval_images(const char *ref, const char *test, vqz_image_metrics *out);
/* The same for images in memory. */
VQZ_API vqz_status vqz_eval_pixels(const vqz_pixels *ref, const vqz_pixels *test, vqz_image_metrics *out);

typedef struct {
    int channels;
    int sample_rate;        /* the reference's rate: every metric is computed at it */
    int test_sample_rate;   /* the test's own rate (resampled to sample_rate when it differs) */
    int64_t frames_ref;     /* frames of the reference */
    int64_t frames_test;    /* frames of the test at sample_rate (after any resampling) */
    int64_t frames;         /* frames compared: the shorter of the two */
    int length_mismatch;    /* 1 when frames_ref and frames_test differ by more than 1% of the longer */
    double si_sdr;          /* dB, scale-invariant SDR (zero-mean), mean over channels */
    double snr;             /* dB */
    double mel_distance;    /* log10 mel L1 distance, n_fft 2048, hop 512, 80 Slaney bands; NaN below 1025 frames */
    double mel_distance_dac; /* DAC's 7-resolution mel distance (windows 32..2048), summed; NaN below 1025 frames */
    double stft_distance;   /* multi-resolution STFT distance (512, 1024, 2048); NaN below 2048 frames */
} vqz_audio_metrics;

/* Compare two audio files (anything libsndfile reads) with the same number of channels (VQZ_ERR_SHAPE
 * otherwise). Read errors are those of the reader and name the file. */
VQZ_API vqz_status vqz_eval_audio(const char *ref, const char *test, vqz_audio_metrics *out);
/* The same for PLANAR float signals in memory (channel c of ref is ref[c * ref_frames ...]). */
VQZ_API vqz_status vqz_eval_signals(const float *ref, int64_t ref_frames, int ref_rate, const float *test,
                                    int64_t test_frames, int test_rate, int channels, vqz_audio_metrics *out);

/* ===== training ===== */
/* Train a model (or adapt one) on folders of images or audio, as vqz-train does. The run writes the model
 * bundle to out_path and a checkpoint (the bundle's tensors plus optimizer, EMA and random-generator state)
 * to ckpt_path at every checkpoint, each atomically, so a killed run resumes from its last checkpoint and no
 * file is ever left half-written. A CPU run with fixed threads and seed is reproducible bit for bit, resumed
 * or not. */

typedef struct {
    vqz_kind kind;               /* VQZ_KIND_IMAGE or VQZ_KIND_AUDIO */
    const char *const *data_dirs; /* training folders (searched recursively) */
    int n_data_dirs;
    const char *const *val_dirs; /* validation folders, never trained on; may be empty */
    int n_val_dirs;
    const char *out_path;        /* the model bundle written */
    const char *ckpt_path;       /* NULL: out_path with ".ckpt" appended */
    const char *name;            /* model name recorded in the bundle; NULL: out_path's file name stem */
    const char *config;          /* "small", "base", another preset name, or a JSON file; NULL: the --init model's, else "small" */
    const char *resume_path;     /* continue the run saved in this checkpoint (its settings win) */
    const char *init_path;       /* start from this model's weights (fine-tuning); same architecture */
    const char *log_csv;         /* append one row per logged step; NULL: no log */
    int64_t steps;               /* total steps of the run; 0: 20000, or on resume the checkpoint's */
    int batch;                   /* crops per step; 0: 16 */
    double crop;                 /* crop side in pixels (images; 0: 128) or clip seconds (audio; 0: 1) */
    double lr;                   /* peak learning rate (default 1e-3); warm-up then cosine to lr / 10 */
    int levels;                  /* override the config's L (0: keep) */
    int codebook_size;           /* override the config's K (0: keep) */
    double msssim_weight;        /* images: weight of (1 - MS-SSIM) added to MSE (default 0) */
    double stft_weight;          /* audio: weight of the multi-resolution STFT loss added to L1 (default 1) */
    double dropout;              /* probability of a random level count per step (default 0.5) */
    vqz_device_kind device;      /* default VQZ_DEVICE_AUTO */
    int threads;                 /* 0: the library default */
    uint64_t seed;               /* default 1 */
    int codebook_only;           /* keep encoder and decoder frozen, fit new codebooks (needs init_path) */
    int64_t decoder_steps;       /* codebook_only: after the `steps` of the codebook fit, this many steps that
                                  * fine-tune the decoder alone on the new codebooks (encoder and codebooks
                                  * stay); 0: none. May be given when resuming a codebook-only run, whose
                                  * decoder stage then runs at this call's lr. */
    int prior_only;              /* change no weight: count the codewords init_path's model chooses on the
                                  * data and write it with that entropy-coding prior (spec/bundle.md §3.1) */
    int64_t log_every;           /* steps between progress reports and log rows (default 10) */
    int64_t val_every;           /* steps between validations (default 500) */
    int64_t ckpt_every;          /* steps between checkpoints (default 500) */
    double ckpt_minutes;         /* also checkpoint when this much wall time passed since the last (default 10) */
    int64_t cache_mb;            /* decoded-data cache budget in MiB (default 2048) */
    int64_t gan_from;            /* audio: from this step on, add the adversarial stage (multi-scale STFT
                                  * discriminator, hinge loss, feature matching); 0: never. May be set when
                                  * resuming a run that had none. */
    double gan_weight;           /* weight of the adversarial term (default 1) */
    double feat_weight;          /* weight of the feature-matching term (default 2) */
    const char *store;           /* the model bundle's tensor type: "f32" (default), "f16" or "bf16" (half the
                                  * size; the checkpoint always keeps F32) */
    const volatile int *cancel;  /* when non-NULL and set non-zero, the run stops after the current step as if
                                  * the callback had asked (a checkpoint is written, VQZ_ERR_CANCELLED) */
} vqz_train_options;

/* Fill o with the defaults above (kind image, no folders). */
VQZ_API void vqz_train_options_init(vqz_train_options *o);

typedef enum {
    VQZ_TRAIN_MESSAGE = 0,       /* a line of text (data loading, a skipped file, a checkpoint written) */
    VQZ_TRAIN_STEP = 1,          /* every log_every steps */
    VQZ_TRAIN_VALIDATION = 2     /* after a validation pass */
} vqz_train_event;

typedef struct {
    vqz_train_event event;
    const char *message;         /* VQZ_TRAIN_MESSAGE only */
    int64_t step, steps;         /* steps done, steps of the run */
    double elapsed_s;            /* wall time of the run, all resumed parts included */
    double steps_per_s, samples_per_s, eta_s; /* over the last report interval */
    double lr, loss, recon, commit, aux, grad_norm; /* of the last step; aux: MS-SSIM or STFT term */
    int levels;                  /* L of the model */
    double perplexity[32];       /* per level: on the last step's batch, or over the validation set */
    int dead[32];                /* per level: codewords unused (validation) or restarted (last step) */
    double val_psnr;             /* images: PSNR (dB, 8-bit) at all levels on the validation crops; else NaN */
    double val_mel;              /* audio: DAC mel distance at all levels on the validation clips; else NaN */
    double val_sisdr;            /* audio: SI-SDR (dB); else NaN */
    double gan_d, gan_adv, gan_feat; /* adversarial stage: discriminator loss, generator's adversarial and
                                      * feature-matching terms of the last step; NaN before it starts */
} vqz_train_progress;

/* Return non-zero to stop: the run writes a checkpoint and the bundle, then returns VQZ_ERR_CANCELLED. */
typedef int (*vqz_train_callback)(const vqz_train_progress *p, void *user);

VQZ_API vqz_status vqz_train(const vqz_train_options *o, vqz_train_callback cb, void *user);

/* Render a training log (the CSV vqz_train writes) as loss and metric curves in a PNG. columns may be NULL
 * (n_columns 0) for every column of interest. */
VQZ_API vqz_status vqz_train_plot(const char *csv_path, const char *png_path, const char *const *columns,
                                  int n_columns);

#ifdef __cplusplus
}
#endif
#endif /* VQZ_H */
