/* status.c — status code names and the per-thread error detail message. */
#include "common/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DETAIL_MAX 512

static _Thread_local char g_detail[DETAIL_MAX];

const char *vqz_strerror(vqz_status s)
{
    switch (s) {
    case VQZ_OK: return "success";
    case VQZ_ERR_INVALID_ARG: return "invalid argument";
    case VQZ_ERR_NOMEM: return "out of memory";
    case VQZ_ERR_IO: return "I/O error";
    case VQZ_ERR_FORMAT: return "malformed data";
    case VQZ_ERR_SIGNATURE: return "bad signature (not a vqz file, or damaged in transfer)";
    case VQZ_ERR_VERSION: return "unsupported format version";
    case VQZ_ERR_TRUNCATED: return "truncated data";
    case VQZ_ERR_CHECKSUM: return "checksum mismatch";
    case VQZ_ERR_LIMIT: return "size exceeds limits";
    case VQZ_ERR_INDEX_RANGE: return "codebook index out of range";
    case VQZ_ERR_MODEL_MISMATCH: return "model mismatch";
    case VQZ_ERR_SHAPE: return "shape mismatch";
    case VQZ_ERR_NONFINITE: return "non-finite value (NaN or Inf)";
    case VQZ_ERR_NO_CUDA: return "no CUDA device";
    case VQZ_ERR_CUDA: return "CUDA error";
    case VQZ_ERR_UNSUPPORTED: return "unsupported";
    case VQZ_ERR_CANCELLED: return "cancelled";
    case VQZ_ERR_INTERNAL: return "internal error";
    case VQZ_ERR_NOT_FOUND: return "not found";
    case VQZ_ERR_MISSING: return "missing data";
    }
    return "unknown status code";
}

const char *vqz_last_error(void)
{
    return g_detail;
}

vqz_status vqz_fail(vqz_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_detail, sizeof g_detail, fmt, ap);
    va_end(ap);
    return s;
}

void vqz_error_prefix(const char *fmt, ...)
{
    char prefix[DETAIL_MAX];
    char old[DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_detail, sizeof old);
    size_t n = strlen(prefix);
    memcpy(g_detail, prefix, n + 1);
    /* keep as much of the old message as fits after the prefix */
    strncat(g_detail, old, sizeof g_detail - n - 1);
}

void vqz_error_clear(void)
{
    g_detail[0] = '\0';
}
