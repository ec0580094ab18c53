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

#ifdef __cplusplus
}
#endif
#endif /* VQZ_H */
