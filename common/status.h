/* status.h — internal helpers to raise a vqz_status with a detail message (shared by every module). */
#ifndef VQZ_COMMON_STATUS_H
#define VQZ_COMMON_STATUS_H

#include "include/vqz.h"

#if defined(__GNUC__)
#define VQZ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VQZ_PRINTF(a, b)
#endif

/* Record a detail message for the calling thread and return s, so error paths read
 * `return vqz_fail(VQZ_ERR_SHAPE, "conv2d: input has %d channels, weight expects %d", a, b);` */
vqz_status vqz_fail(vqz_status s, const char *fmt, ...) VQZ_PRINTF(2, 3);

/* Prefix the current detail message with context ("model.safetensors: " + old message). */
void vqz_error_prefix(const char *fmt, ...) VQZ_PRINTF(1, 2);

/* Forget the last detail message (called at the start of public entry points). */
void vqz_error_clear(void);

/* Propagate a failing status from a call: VQZ_TRY(vqz_conv2d_fwd(...)); */
#define VQZ_TRY(expr)                     \
    do {                                  \
        vqz_status vqz_try_s_ = (expr);   \
        if (vqz_try_s_ != VQZ_OK)         \
            return vqz_try_s_;            \
    } while (0)

/* Return an error with a message when a condition holds: VQZ_FAIL_IF(n < 0, VQZ_ERR_INVALID_ARG, "n=%d", n); */
#define VQZ_FAIL_IF(cond, status, ...)        \
    do {                                      \
        if (cond)                             \
            return vqz_fail(status, __VA_ARGS__); \
    } while (0)

#endif
