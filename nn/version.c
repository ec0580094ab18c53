/* version.c — the library's version string, naming the backends compiled in. */
#include "include/vqz.h"

const char *vqz_version(void)
{
#ifdef VQZ_HAVE_CUDA
    return VQZ_VERSION_STRING " (cpu + cuda)";
#else
    return VQZ_VERSION_STRING " (cpu only)";
#endif
}
