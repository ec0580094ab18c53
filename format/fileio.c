/* fileio.c — output that never lies and never clobbers: a temporary file in the target folder, written,
 * synced and renamed over the target only when complete (DESIGN.md §7). */
#include "format/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

vqz_status vqz_write_file_atomic(const char *path, const uint8_t *buf, size_t n)
{
    size_t plen = strlen(path);
    char *tmp = (char *)malloc(plen + 16);
    VQZ_FAIL_IF(!tmp, VQZ_ERR_NOMEM, "%s: out of memory", path);
    /* Same folder as the target so the rename is atomic; a leading dot keeps it out of listings. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    memcpy(tmp, path, dir_len);
    snprintf(tmp + dir_len, plen - dir_len + 16, ".%s.XXXXXX", path + dir_len);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        vqz_status s = vqz_fail(VQZ_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    vqz_status s = VQZ_OK;
    size_t done = 0;
    while (done < n && s == VQZ_OK) {
        ssize_t r = write(fd, buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            s = vqz_fail(VQZ_ERR_IO, "%s: write failed: %s", path, r < 0 ? strerror(errno) : "no progress");
        else
            done += (size_t)r;
    }
    if (s == VQZ_OK && fchmod(fd, 0644) != 0)
        s = vqz_fail(VQZ_ERR_IO, "%s: cannot set permissions: %s", path, strerror(errno));
    if (s == VQZ_OK && fsync(fd) != 0)
        s = vqz_fail(VQZ_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && s == VQZ_OK)
        s = vqz_fail(VQZ_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (s == VQZ_OK && rename(tmp, path) != 0)
        s = vqz_fail(VQZ_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (s != VQZ_OK)
        unlink(tmp);
    free(tmp);
    return s;
}
