/* audio_io.c — audio reading through libsndfile (files and stdin), WAV/FLAC writing through a temporary
 * file renamed on commit (DESIGN.md §7), and a WAV stream written here for stdout. */
#include "codec/audio_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/bytes.h"

/* Frames per block in the whole-file helpers: a small buffer, yet few libsndfile calls. */
#define BLOCK_FRAMES 4096

/* libsndfile's messages end with a period or a newline; the caller adds its own closing parenthesis. */
static void copy_reason(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "unknown error");
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '.' || dst[n - 1] == ' '))
        dst[--n] = '\0';
}

static void encoding_bits(int subtype, int *bits, int *is_float)
{
    *is_float = 0;
    switch (subtype) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
    case SF_FORMAT_DPCM_8: *bits = 8; break;
    case SF_FORMAT_DWVW_12: *bits = 12; break;
    case SF_FORMAT_PCM_16:
    case SF_FORMAT_DPCM_16:
    case SF_FORMAT_DWVW_16:
    case SF_FORMAT_ALAC_16: *bits = 16; break;
    case SF_FORMAT_ALAC_20: *bits = 20; break;
    case SF_FORMAT_PCM_24:
    case SF_FORMAT_DWVW_24:
    case SF_FORMAT_ALAC_24: *bits = 24; break;
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_ALAC_32: *bits = 32; break;
    case SF_FORMAT_FLOAT: *bits = 32; *is_float = 1; break;
    case SF_FORMAT_DOUBLE: *bits = 64; *is_float = 1; break;
    default: *bits = 0; break;
    }
}

static void format_name(int format, char *dst, size_t cap)
{
    SF_FORMAT_INFO fi;
    memset(&fi, 0, sizeof fi);
    fi.format = format;
    if (sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name)
        snprintf(dst, cap, "%s", fi.name);
    else
        snprintf(dst, cap, "format 0x%x", (unsigned)format);
}

/* Short names for what users call these files; libsndfile's own names ("WAV (Microsoft)") otherwise. */
static void describe(vqz_audio_info *in)
{
    char container[40];
    int lossy_named = 0;
    switch (in->major_format) {
    case SF_FORMAT_WAV:
    case SF_FORMAT_WAVEX: snprintf(container, sizeof container, "WAV"); break;
    case SF_FORMAT_RF64: snprintf(container, sizeof container, "RF64"); break;
    case SF_FORMAT_W64: snprintf(container, sizeof container, "W64"); break;
    case SF_FORMAT_AIFF: snprintf(container, sizeof container, "AIFF"); break;
    case SF_FORMAT_AU: snprintf(container, sizeof container, "AU"); break;
    case SF_FORMAT_CAF: snprintf(container, sizeof container, "CAF"); break;
    case SF_FORMAT_FLAC: snprintf(container, sizeof container, "FLAC"); break;
    case SF_FORMAT_OGG:
        lossy_named = in->subtype == SF_FORMAT_VORBIS || in->subtype == SF_FORMAT_OPUS;
        snprintf(container, sizeof container, "%s",
                 in->subtype == SF_FORMAT_VORBIS ? "Ogg Vorbis" : in->subtype == SF_FORMAT_OPUS ? "Ogg Opus" : "Ogg");
        break;
    case SF_FORMAT_MPEG:
        lossy_named = 1;
        snprintf(container, sizeof container, "%s",
                 in->subtype == SF_FORMAT_MPEG_LAYER_III ? "MP3" : in->subtype == SF_FORMAT_MPEG_LAYER_II ? "MP2" : "MP1");
        break;
    default: format_name(in->major_format, container, sizeof container); break;
    }
    char layout[16];
    if (in->channels == 1)
        snprintf(layout, sizeof layout, "mono");
    else if (in->channels == 2)
        snprintf(layout, sizeof layout, "stereo");
    else
        snprintf(layout, sizeof layout, "%d channels", in->channels);
    char encoding[48] = "";
    if (in->bits > 0)
        snprintf(encoding, sizeof encoding, " %d-bit%s", in->bits, in->is_float ? " float" : "");
    else if (!lossy_named) {
        encoding[0] = ' ';
        format_name(in->subtype, encoding + 1, sizeof encoding - 1);
    }
    snprintf(in->description, sizeof in->description, "%s %d Hz %s%s", container, in->sample_rate, layout, encoding);
}

static vqz_status check_geometry(const char *name, int channels, int sample_rate)
{
    VQZ_FAIL_IF(channels < 1, VQZ_ERR_INVALID_ARG, "%s: %d channels", name, channels);
    VQZ_FAIL_IF(channels > VQZ_AUDIO_MAX_CHANNELS, VQZ_ERR_LIMIT, "%s: %d channels (at most %d are accepted)", name,
                channels, VQZ_AUDIO_MAX_CHANNELS);
    VQZ_FAIL_IF(sample_rate < VQZ_AUDIO_MIN_RATE || sample_rate > VQZ_AUDIO_MAX_RATE, VQZ_ERR_LIMIT,
                "%s: sample rate %d Hz outside [%d, %d]", name, sample_rate, VQZ_AUDIO_MIN_RATE, VQZ_AUDIO_MAX_RATE);
    return VQZ_OK;
}

/* ---- reader ---------------------------------------------------------------------------------- */

struct vqz_audio_reader {
    SNDFILE *sf;
    char *name; /* for messages: the path, or "stdin" */
    vqz_audio_info info;
    int64_t frames_read;
    int at_end;
};

/* libsndfile shortens the frame count of a WAV whose data chunk runs past the end of the file and notes
 * it only in its log ("data : 40000 (should be 19956)"). The sizes 0 and 0xFFFFFFFF are the streaming
 * conventions (length unknown when the header was written), not truncation. */
static int wav_header_truncated(SNDFILE *sf)
{
    char log[16384];
    log[0] = '\0';
    sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
    for (const char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "data : ", 7) != 0)
            continue;
        const char *eol = strchr(line, '\n');
        const char *should = strstr(line, "(should be ");
        if (!should || (eol && should > eol))
            continue;
        unsigned long long declared = strtoull(line + 7, NULL, 10);
        if (declared != 0 && declared != 0xFFFFFFFFull)
            return 1;
    }
    return 0;
}

vqz_status vqz_audio_reader_open(const char *path, vqz_audio_reader **out)
{
    VQZ_FAIL_IF(!path || !out, VQZ_ERR_INVALID_ARG, "audio_reader_open: NULL argument");
    *out = NULL;
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "stdin" : path;
    struct stat st;
    int seekable;
    SF_INFO si;
    memset(&si, 0, sizeof si);
    SNDFILE *sf;
    if (is_stdin) {
        seekable = fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode);
        sf = sf_open_fd(STDIN_FILENO, SFM_READ, &si, 0);
    } else {
        VQZ_FAIL_IF(stat(path, &st) != 0, VQZ_ERR_IO, "%s: cannot open: %s", name, strerror(errno));
        VQZ_FAIL_IF(S_ISDIR(st.st_mode), VQZ_ERR_IO, "%s: cannot open: is a directory", name);
        seekable = S_ISREG(st.st_mode);
        sf = sf_open(path, SFM_READ, &si);
    }
    if (!sf) {
        char why[256];
        copy_reason(why, sizeof why, sf_strerror(NULL));
        if (sf_error(NULL) == SF_ERR_SYSTEM)
            return vqz_fail(VQZ_ERR_IO, "%s: cannot open (libsndfile: %s)", name, why);
        if (!seekable)
            return vqz_fail(VQZ_ERR_FORMAT,
                            "%s: unsupported or corrupt audio (libsndfile: %s); from a pipe only WAV, AIFF, AU, Ogg "
                            "and MP3 can be read (FLAC needs a file)", name, why);
        return vqz_fail(VQZ_ERR_FORMAT, "%s: unsupported or corrupt audio (libsndfile: %s)", name, why);
    }
    vqz_status s = check_geometry(name, si.channels, si.samplerate);
    if (s != VQZ_OK) {
        if (s == VQZ_ERR_INVALID_ARG)
            s = VQZ_ERR_FORMAT; /* a header claiming no channels is bad data, not a bad argument */
        sf_close(sf);
        return s;
    }
    vqz_audio_reader *r = (vqz_audio_reader *)calloc(1, sizeof *r);
    char *nm = strdup(name);
    if (!r || !nm) {
        free(r);
        free(nm);
        sf_close(sf);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", name);
    }
    r->sf = sf;
    r->name = nm;
    vqz_audio_info *in = &r->info;
    in->sample_rate = si.samplerate;
    in->channels = si.channels;
    /* On a pipe libsndfile repeats what the header claims (or SF_COUNT_MAX); nothing verifies it. */
    in->frames = (seekable && si.frames >= 0 && si.frames != SF_COUNT_MAX) ? (int64_t)si.frames : -1;
    in->major_format = si.format & SF_FORMAT_TYPEMASK;
    in->subtype = si.format & SF_FORMAT_SUBMASK;
    encoding_bits(in->subtype, &in->bits, &in->is_float);
    if (seekable && (in->major_format == SF_FORMAT_WAV || in->major_format == SF_FORMAT_WAVEX))
        in->truncated = wav_header_truncated(sf);
    describe(in);
    *out = r;
    return VQZ_OK;
}

vqz_status vqz_audio_reader_info(const vqz_audio_reader *r, vqz_audio_info *info)
{
    VQZ_FAIL_IF(!r || !info, VQZ_ERR_INVALID_ARG, "audio_reader_info: NULL argument");
    *info = r->info;
    return VQZ_OK;
}

vqz_status vqz_audio_reader_read(vqz_audio_reader *r, float *buf, int64_t frames, int64_t *got)
{
    if (got)
        *got = 0;
    VQZ_FAIL_IF(!r || !got, VQZ_ERR_INVALID_ARG, "audio_reader_read: NULL argument");
    VQZ_FAIL_IF(frames < 0 || (frames > 0 && !buf), VQZ_ERR_INVALID_ARG, "%s: read of %lld frames into %p", r->name,
                (long long)frames, (void *)buf);
    int64_t done = 0;
    /* libsndfile may return short counts before the end (pipes); only 0 means the stream is over. */
    while (done < frames && !r->at_end) {
        sf_count_t n = sf_readf_float(r->sf, buf + done * r->info.channels, (sf_count_t)(frames - done));
        if (n <= 0)
            r->at_end = 1;
        else
            done += n;
    }
    r->frames_read += done;
    *got = done;
    /* FLAC's header count is exact, and libFLAC may stop at a clean frame boundary of a cut file. */
    if (r->at_end && sf_error(r->sf) == SF_ERR_NO_ERROR && r->info.major_format == SF_FORMAT_FLAC &&
        r->frames_read < r->info.frames)
        return vqz_fail(VQZ_ERR_TRUNCATED, "%s: truncated or corrupt audio: %lld of %lld frames read (the stream ends early)", r->name,
                        (long long)r->frames_read, (long long)r->info.frames);
    if (r->at_end && sf_error(r->sf) != SF_ERR_NO_ERROR) {
        char why[256];
        copy_reason(why, sizeof why, sf_strerror(r->sf));
        if (r->info.frames >= 0 && r->frames_read < r->info.frames)
            return vqz_fail(VQZ_ERR_TRUNCATED, "%s: truncated or corrupt audio: %lld of %lld frames read (libsndfile: %s)",
                            r->name, (long long)r->frames_read, (long long)r->info.frames, why);
        return vqz_fail(VQZ_ERR_FORMAT, "%s: corrupt audio after %lld frames (libsndfile: %s)", r->name,
                        (long long)r->frames_read, why);
    }
    return VQZ_OK;
}

void vqz_audio_reader_close(vqz_audio_reader *r)
{
    if (!r)
        return;
    sf_close(r->sf);
    free(r->name);
    free(r);
}

/* ---- writer ---------------------------------------------------------------------------------- */

#define SCRATCH_SAMPLES 16384

struct vqz_audio_writer {
    char *name; /* target path, or "stdout" */
    char *tmp;  /* temporary file beside the target; NULL for stdout */
    int fd;     /* the temporary file, or STDOUT_FILENO */
    SNDFILE *sf; /* NULL for stdout */
    int to_stdout;
    int major, subtype, bits, is_float, channels;
    int64_t frames_declared; /* stdout: frames promised by the header, -1 for a streaming header */
    int64_t frames_written;
    uint64_t max_data_bytes; /* WAV's 32-bit sizes; UINT64_MAX when unbounded */
    int64_t clipped;
    vqz_status failed; /* first error met, VQZ_OK while healthy */
    char failed_msg[512];
    /* Conversion scratch; writes are cut into blocks of SCRATCH_SAMPLES / channels frames. */
    int32_t ibuf[SCRATCH_SAMPLES];
    double dbuf[SCRATCH_SAMPLES];
    uint8_t bytes[SCRATCH_SAMPLES * 8];
};

static vqz_status writer_failed(vqz_audio_writer *w, vqz_status s)
{
    if (w->failed == VQZ_OK) {
        w->failed = s;
        snprintf(w->failed_msg, sizeof w->failed_msg, "%s", vqz_last_error());
    }
    return s;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* The libsndfile subtype for (container, bits, is_float), or an error naming what the container holds. */
static vqz_status choose_subtype(const char *name, int major, int bits, int is_float, int *subtype, int *bits_out)
{
    if (is_float) {
        VQZ_FAIL_IF(major == SF_FORMAT_FLAC, VQZ_ERR_UNSUPPORTED,
                    "%s: FLAC holds 8-, 16- or 24-bit integer samples, not %d-bit float", name, bits);
        VQZ_FAIL_IF(bits != 32 && bits != 64, VQZ_ERR_INVALID_ARG, "%s: %d-bit float samples (use 32 or 64)", name, bits);
        *bits_out = bits;
        *subtype = bits == 32 ? SF_FORMAT_FLOAT : SF_FORMAT_DOUBLE;
        return VQZ_OK;
    }
    VQZ_FAIL_IF(bits < 0 || bits > 32, VQZ_ERR_INVALID_ARG, "%s: %d-bit integer samples (at most 32)", name, bits);
    /* Depths between the container sizes (12-bit DWVW, 20-bit ALAC inputs) go in the next size up. */
    bits = bits == 0 ? 16 : bits <= 8 ? 8 : bits <= 16 ? 16 : bits <= 24 ? 24 : 32;
    *bits_out = bits;
    if (major == SF_FORMAT_FLAC) {
        VQZ_FAIL_IF(bits == 32, VQZ_ERR_UNSUPPORTED, "%s: FLAC holds 8-, 16- or 24-bit samples, not 32-bit", name);
        *subtype = bits == 8 ? SF_FORMAT_PCM_S8 : bits == 16 ? SF_FORMAT_PCM_16 : SF_FORMAT_PCM_24;
        return VQZ_OK;
    }
    *subtype = bits == 8 ? SF_FORMAT_PCM_U8 : bits == 16 ? SF_FORMAT_PCM_16 : bits == 24 ? SF_FORMAT_PCM_24 : SF_FORMAT_PCM_32;
    return VQZ_OK;
}

static vqz_status write_fd_all(vqz_audio_writer *w, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(w->fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return vqz_fail(VQZ_ERR_IO, "%s: write failed: %s", w->name, r < 0 ? strerror(errno) : "no progress");
        p += r;
        n -= (size_t)r;
    }
    return VQZ_OK;
}

/* The RIFF header of the stdout stream: exact sizes when the frame count is declared, else 0xFFFFFFFF,
 * the streaming convention. WAVE_FORMAT_EXTENSIBLE for more than two channels, as for files. */
static vqz_status write_stream_header(vqz_audio_writer *w, int sample_rate)
{
    int bytes_ps = w->bits / 8;
    uint32_t block = (uint32_t)(bytes_ps * w->channels);
    int extensible = w->channels > 2;
    uint32_t fmt_size = extensible ? 40 : w->is_float ? 18 : 16;
    uint32_t data_size = 0xFFFFFFFFu, riff_size = 0xFFFFFFFFu;
    if (w->frames_declared >= 0) {
        uint64_t d = (uint64_t)w->frames_declared * block;
        VQZ_FAIL_IF(d + (d & 1) + 4 + 8 + fmt_size + 8 > 0xFFFFFFFFull, VQZ_ERR_LIMIT,
                    "%s: %lld frames exceed the 4 GiB a WAV stream can declare", w->name, (long long)w->frames_declared);
        data_size = (uint32_t)d;
        riff_size = (uint32_t)(4 + 8 + fmt_size + 8 + d + (d & 1));
    }
    uint8_t h[68];
    size_t n = 0;
    memcpy(h, "RIFF", 4);
    vqz_put_u32(h + 4, riff_size);
    memcpy(h + 8, "WAVEfmt ", 8);
    vqz_put_u32(h + 16, fmt_size);
    uint16_t tag = extensible ? 0xFFFE : w->is_float ? 3 : 1;
    vqz_put_u16(h + 20, tag);
    vqz_put_u16(h + 22, (uint16_t)w->channels);
    vqz_put_u32(h + 24, (uint32_t)sample_rate);
    vqz_put_u32(h + 28, (uint32_t)sample_rate * block);
    vqz_put_u16(h + 32, (uint16_t)block);
    vqz_put_u16(h + 34, (uint16_t)w->bits);
    n = 36;
    if (extensible) {
        static const uint8_t guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                              0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
        vqz_put_u16(h + 36, 22);
        vqz_put_u16(h + 38, (uint16_t)w->bits);
        /* The speaker masks libsndfile writes in WAVEX files (quad, 5.1, 7.1), so both outputs agree. */
        uint32_t mask = w->channels == 4 ? 0x33u : w->channels == 6 ? 0x3Fu : w->channels == 8 ? 0xFFu : 0u;
        vqz_put_u32(h + 40, mask);
        vqz_put_u16(h + 44, w->is_float ? 3 : 1);
        memcpy(h + 46, guid_tail, sizeof guid_tail);
        n = 60;
    } else if (w->is_float) {
        vqz_put_u16(h + 36, 0);
        n = 38;
    }
    memcpy(h + n, "data", 4);
    vqz_put_u32(h + n + 4, data_size);
    n += 8;
    return write_fd_all(w, h, n);
}

vqz_status vqz_audio_writer_open(const char *path, const vqz_audio_info *want, vqz_audio_writer **out)
{
    VQZ_FAIL_IF(!path || !want || !out, VQZ_ERR_INVALID_ARG, "audio_writer_open: NULL argument");
    *out = NULL;
    int to_stdout = strcmp(path, "-") == 0;
    const char *name = to_stdout ? "stdout" : path;
    int major;
    if (to_stdout || ends_with_ci(path, ".wav"))
        major = SF_FORMAT_WAV;
    else if (ends_with_ci(path, ".flac"))
        major = SF_FORMAT_FLAC;
    else
        return vqz_fail(VQZ_ERR_INVALID_ARG, "%s: cannot tell the audio format from the name (use .wav or .flac)", name);
    VQZ_TRY(check_geometry(name, want->channels, want->sample_rate));
    VQZ_FAIL_IF(major == SF_FORMAT_FLAC && want->channels > 8, VQZ_ERR_UNSUPPORTED,
                "%s: FLAC holds at most 8 channels, not %d (use .wav)", name, want->channels);
    int subtype = 0, bits = 0;
    VQZ_TRY(choose_subtype(name, major, want->bits, want->is_float, &subtype, &bits));
    if (major == SF_FORMAT_WAV && want->channels > 2)
        major = SF_FORMAT_WAVEX; /* the Microsoft rule for more than two channels */

    vqz_audio_writer *w = (vqz_audio_writer *)calloc(1, sizeof *w);
    char *nm = strdup(name);
    if (!w || !nm) {
        free(w);
        free(nm);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", name);
    }
    w->name = nm;
    w->fd = -1;
    w->to_stdout = to_stdout;
    w->major = major;
    w->subtype = subtype;
    w->bits = bits;
    w->is_float = want->is_float != 0;
    w->channels = want->channels;
    w->frames_declared = to_stdout && want->frames >= 0 ? want->frames : -1;
    w->max_data_bytes = UINT64_MAX;
    if (to_stdout) {
        w->fd = STDOUT_FILENO;
        vqz_status s = write_stream_header(w, want->sample_rate);
        if (s != VQZ_OK) {
            free(w->name);
            free(w);
            return s;
        }
        *out = w;
        return VQZ_OK;
    }
    if (major != SF_FORMAT_FLAC)
        w->max_data_bytes = 0xFFFFFFFFull - 4096; /* room for the header chunks within the RIFF size */

    SF_INFO si;
    memset(&si, 0, sizeof si);
    si.samplerate = want->sample_rate;
    si.channels = want->channels;
    si.format = major | subtype;
    if (!sf_format_check(&si)) {
        char fmt[64];
        format_name(subtype, fmt, sizeof fmt);
        vqz_status s = vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: libsndfile cannot write %s %s at %d Hz with %d channels", name,
                                major == SF_FORMAT_FLAC ? "FLAC" : "WAV", fmt, want->sample_rate, want->channels);
        free(w->name);
        free(w);
        return s;
    }
    /* Same folder as the target so the rename is atomic; a leading dot keeps it out of listings. */
    size_t plen = strlen(path);
    w->tmp = (char *)malloc(plen + 16);
    if (!w->tmp) {
        free(w->name);
        free(w);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", name);
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    memcpy(w->tmp, path, dir_len);
    snprintf(w->tmp + dir_len, plen - dir_len + 16, ".%s.XXXXXX", path + dir_len);
    w->fd = mkstemp(w->tmp);
    if (w->fd < 0) {
        vqz_status s = vqz_fail(VQZ_ERR_IO, "%s: cannot create a temporary file: %s", name, strerror(errno));
        free(w->tmp);
        free(w->name);
        free(w);
        return s;
    }
    w->sf = sf_open_fd(w->fd, SFM_WRITE, &si, 0);
    if (!w->sf) {
        char why[256];
        copy_reason(why, sizeof why, sf_strerror(NULL));
        vqz_status s = vqz_fail(sf_error(NULL) == SF_ERR_SYSTEM ? VQZ_ERR_IO : VQZ_ERR_UNSUPPORTED,
                                "%s: cannot start the audio file (libsndfile: %s)", name, why);
        close(w->fd);
        unlink(w->tmp);
        free(w->tmp);
        free(w->name);
        free(w);
        return s;
    }
    *out = w;
    return VQZ_OK;
}

/* Converts n samples to the output's integer range (scaled by 2^(bits-1), rounded, clipped), left-justified
 * in 32 bits as libsndfile's int interface expects; returns the number clipped. */
static int64_t to_pcm32(const float *x, size_t n, int bits, int32_t *dst)
{
    double scale = ldexp(1.0, bits - 1);
    double shift = ldexp(1.0, 32 - bits);
    int64_t clipped = 0;
    for (size_t i = 0; i < n; i++) {
        double v = rint((double)x[i] * scale);
        if (v > scale - 1) {
            v = scale - 1;
            clipped++;
        } else if (v < -scale) {
            v = -scale;
            clipped++;
        }
        dst[i] = (int32_t)(v * shift);
    }
    return clipped;
}

static vqz_status write_block(vqz_audio_writer *w, const float *x, size_t frames)
{
    size_t n = frames * (size_t)w->channels;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return vqz_fail(VQZ_ERR_NONFINITE, "%s: sample %lld of channel %d is %f", w->name,
                            (long long)(w->frames_written + (int64_t)(i / (size_t)w->channels)), (int)(i % (size_t)w->channels),
                            (double)x[i]);
    if (w->to_stdout) {
        uint8_t *b = w->bytes;
        if (w->is_float && w->bits == 32) {
            for (size_t i = 0; i < n; i++) {
                uint32_t u;
                memcpy(&u, &x[i], 4);
                vqz_put_u32(b + 4 * i, u);
            }
        } else if (w->is_float) {
            for (size_t i = 0; i < n; i++) {
                double d = x[i];
                uint64_t u;
                memcpy(&u, &d, 8);
                vqz_put_u64(b + 8 * i, u);
            }
        } else {
            w->clipped += to_pcm32(x, n, w->bits, w->ibuf);
            int bytes_ps = w->bits / 8;
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)w->ibuf[i];
                if (w->bits == 8)
                    b[i] = (uint8_t)((u >> 24) ^ 0x80); /* WAV's 8-bit samples are unsigned */
                else
                    for (int k = 0; k < bytes_ps; k++)
                        b[i * (size_t)bytes_ps + (size_t)k] = (uint8_t)(u >> (32 - 8 * bytes_ps + 8 * k));
            }
        }
        return write_fd_all(w, b, n * (size_t)(w->bits / 8));
    }
    sf_count_t done;
    if (w->subtype == SF_FORMAT_FLOAT) {
        done = sf_writef_float(w->sf, x, (sf_count_t)frames);
    } else if (w->subtype == SF_FORMAT_DOUBLE) {
        for (size_t i = 0; i < n; i++)
            w->dbuf[i] = x[i];
        done = sf_writef_double(w->sf, w->dbuf, (sf_count_t)frames);
    } else {
        /* Not sf_writef_float: libsndfile scales floats by 2^(bits-1) - 1 on write but 1 / 2^(bits-1) on read,
         * so its own round trip is not exact. */
        w->clipped += to_pcm32(x, n, w->bits, w->ibuf);
        done = sf_writef_int(w->sf, w->ibuf, (sf_count_t)frames);
    }
    if (done != (sf_count_t)frames) {
        char why[256];
        copy_reason(why, sizeof why, sf_strerror(w->sf));
        return vqz_fail(VQZ_ERR_IO, "%s: write failed (libsndfile: %s)", w->name, why);
    }
    return VQZ_OK;
}

vqz_status vqz_audio_writer_write(vqz_audio_writer *w, const float *buf, int64_t frames)
{
    VQZ_FAIL_IF(!w, VQZ_ERR_INVALID_ARG, "audio_writer_write: NULL writer");
    if (w->failed != VQZ_OK)
        return vqz_fail(w->failed, "%s", w->failed_msg);
    if (frames < 0 || (frames > 0 && !buf))
        return writer_failed(w, vqz_fail(VQZ_ERR_INVALID_ARG, "%s: write of %lld frames from %p", w->name,
                                         (long long)frames, (const void *)buf));
    if (w->frames_declared >= 0 && frames > w->frames_declared - w->frames_written)
        return writer_failed(w, vqz_fail(VQZ_ERR_INVALID_ARG, "%s: %lld frames written but the header declared %lld",
                                         w->name, (long long)(w->frames_written + frames), (long long)w->frames_declared));
    uint64_t block_bytes = (uint64_t)w->channels * (uint64_t)(w->bits / 8);
    if (w->max_data_bytes != UINT64_MAX &&
        (uint64_t)(w->frames_written + frames) > w->max_data_bytes / block_bytes)
        return writer_failed(w, vqz_fail(VQZ_ERR_LIMIT, "%s: %lld frames exceed the 4 GiB a WAV file holds (use .flac)",
                                         w->name, (long long)(w->frames_written + frames)));
    size_t per_block = SCRATCH_SAMPLES / (size_t)w->channels;
    int64_t done = 0;
    while (done < frames) {
        size_t m = (size_t)(frames - done) < per_block ? (size_t)(frames - done) : per_block;
        vqz_status s = write_block(w, buf + done * w->channels, m);
        if (s != VQZ_OK)
            return writer_failed(w, s);
        done += (int64_t)m;
        w->frames_written += (int64_t)m;
    }
    return VQZ_OK;
}

int64_t vqz_audio_writer_clipped(const vqz_audio_writer *w)
{
    return w ? w->clipped : 0;
}

vqz_status vqz_audio_writer_close(vqz_audio_writer *w, int commit)
{
    if (!w)
        return VQZ_OK;
    vqz_status s = VQZ_OK;
    if (commit && w->failed != VQZ_OK)
        s = vqz_fail(w->failed, "%s", w->failed_msg);
    if (w->to_stdout) {
        if (commit && s == VQZ_OK && w->frames_declared >= 0) {
            if (w->frames_written != w->frames_declared)
                s = vqz_fail(VQZ_ERR_INVALID_ARG, "%s: %lld frames written but the header declared %lld", w->name,
                             (long long)w->frames_written, (long long)w->frames_declared);
            else if (((uint64_t)w->frames_declared * (uint64_t)w->channels * (uint64_t)(w->bits / 8)) & 1) {
                static const uint8_t pad = 0; /* RIFF chunks are padded to even sizes */
                s = write_fd_all(w, &pad, 1);
            }
        }
    } else {
        /* libsndfile starts a FLAC stream at the first write; without one the file would stay empty. */
        if (commit && s == VQZ_OK && w->frames_written == 0)
            sf_command(w->sf, SFC_UPDATE_HEADER_NOW, NULL, 0);
        int sf_rc = sf_close(w->sf);
        if (commit && s == VQZ_OK && sf_rc != 0)
            s = vqz_fail(VQZ_ERR_IO, "%s: cannot finish the audio file (libsndfile: %s)", w->name, sf_error_number(sf_rc));
        if (commit && s == VQZ_OK && fchmod(w->fd, 0644) != 0)
            s = vqz_fail(VQZ_ERR_IO, "%s: cannot set permissions: %s", w->name, strerror(errno));
        if (commit && s == VQZ_OK && fsync(w->fd) != 0)
            s = vqz_fail(VQZ_ERR_IO, "%s: fsync failed: %s", w->name, strerror(errno));
        if (close(w->fd) != 0 && commit && s == VQZ_OK)
            s = vqz_fail(VQZ_ERR_IO, "%s: close failed: %s", w->name, strerror(errno));
        if (commit && s == VQZ_OK && rename(w->tmp, w->name) != 0)
            s = vqz_fail(VQZ_ERR_IO, "%s: cannot rename the temporary file into place: %s", w->name, strerror(errno));
        if (!commit || s != VQZ_OK)
            unlink(w->tmp);
        free(w->tmp);
    }
    free(w->name);
    free(w);
    return s;
}

/* ---- whole files ----------------------------------------------------------------------------- */

vqz_status vqz_audio_create(int channels, int64_t frames, int sample_rate, vqz_audio **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "audio_create: NULL argument");
    *out = NULL;
    VQZ_TRY(check_geometry("audio_create", channels, sample_rate));
    VQZ_FAIL_IF(frames < 0, VQZ_ERR_INVALID_ARG, "audio_create: %lld frames", (long long)frames);
    VQZ_FAIL_IF((uint64_t)frames > SIZE_MAX / sizeof(float) / (size_t)channels, VQZ_ERR_LIMIT,
                "audio_create: %lld frames x %d channels do not fit in memory", (long long)frames, channels);
    vqz_audio *a = (vqz_audio *)calloc(1, sizeof *a);
    float *d = (float *)calloc((size_t)frames * (size_t)channels + 1, sizeof(float));
    if (!a || !d) {
        free(a);
        free(d);
        return vqz_fail(VQZ_ERR_NOMEM, "audio_create: out of memory for %lld frames x %d channels", (long long)frames,
                        channels);
    }
    a->data = d;
    a->info.sample_rate = sample_rate;
    a->info.channels = channels;
    a->info.frames = frames;
    *out = a;
    return VQZ_OK;
}

void vqz_audio_free(vqz_audio *a)
{
    if (!a)
        return;
    free(a->data);
    free(a);
}

/* Planar storage with room for cap frames per channel: channel c at data + c * cap. */
static vqz_status grow_planar(float **data, int64_t *cap, int64_t need, int channels, const char *name)
{
    int64_t new_cap = *cap > 0 ? *cap : 65536;
    while (new_cap < need)
        new_cap *= 2;
    VQZ_FAIL_IF((uint64_t)new_cap > SIZE_MAX / sizeof(float) / (size_t)channels, VQZ_ERR_LIMIT,
                "%s: %lld frames x %d channels do not fit in memory", name, (long long)need, channels);
    float *d = (float *)malloc((size_t)new_cap * (size_t)channels * sizeof(float));
    VQZ_FAIL_IF(!d, VQZ_ERR_NOMEM, "%s: out of memory for %lld frames x %d channels", name, (long long)new_cap, channels);
    if (*data)
        for (int c = 0; c < channels; c++)
            memcpy(d + (size_t)c * (size_t)new_cap, *data + (size_t)c * (size_t)*cap, (size_t)*cap * sizeof(float));
    free(*data);
    *data = d;
    *cap = new_cap;
    return VQZ_OK;
}

vqz_status vqz_audio_read_all(const char *path, vqz_audio **out)
{
    VQZ_FAIL_IF(!path || !out, VQZ_ERR_INVALID_ARG, "audio_read_all: NULL argument");
    *out = NULL;
    vqz_audio_reader *r;
    VQZ_TRY(vqz_audio_reader_open(path, &r));
    vqz_audio_info info = r->info;
    int ch = info.channels;
    float *block = (float *)malloc((size_t)BLOCK_FRAMES * (size_t)ch * sizeof(float));
    vqz_audio *a = (vqz_audio *)calloc(1, sizeof *a);
    float *data = NULL;
    int64_t cap = 0, frames = 0;
    vqz_status s = VQZ_OK;
    if (!block || !a)
        s = vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", r->name);
    /* A header's frame count is a hint, never trusted for a large allocation up front (a FLAC header may
     * claim 2^36 frames in a tiny file). */
    if (s == VQZ_OK && info.frames > 0)
        s = grow_planar(&data, &cap, info.frames < (1 << 22) ? info.frames : (1 << 22), ch, r->name);
    while (s == VQZ_OK) {
        int64_t got = 0;
        s = vqz_audio_reader_read(r, block, BLOCK_FRAMES, &got);
        if (s != VQZ_OK || got == 0)
            break;
        if (frames + got > cap)
            s = grow_planar(&data, &cap, frames + got, ch, r->name);
        if (s != VQZ_OK)
            break;
        for (int64_t i = 0; i < got; i++)
            for (int c = 0; c < ch; c++)
                data[(size_t)c * (size_t)cap + (size_t)(frames + i)] = block[i * ch + c];
        frames += got;
    }
    vqz_audio_reader_close(r);
    free(block);
    if (s != VQZ_OK) {
        free(data);
        free(a);
        return s;
    }
    if (cap != frames) {
        /* Compact to the exact planar layout; channels only move down, so memmove in order is safe. */
        for (int c = 1; c < ch; c++)
            memmove(data + (size_t)c * (size_t)frames, data + (size_t)c * (size_t)cap, (size_t)frames * sizeof(float));
        float *shrunk = (float *)realloc(data, ((size_t)frames * (size_t)ch + 1) * sizeof(float));
        if (shrunk)
            data = shrunk;
    }
    if (!data) {
        data = (float *)calloc(1, sizeof(float));
        if (!data) {
            free(a);
            return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    a->info = info;
    a->info.frames = frames;
    a->data = data;
    *out = a;
    return VQZ_OK;
}

vqz_status vqz_audio_write_all(const char *path, const vqz_audio *a, int bits)
{
    VQZ_FAIL_IF(!path || !a || (!a->data && a->info.frames > 0), VQZ_ERR_INVALID_ARG, "audio_write_all: NULL argument");
    vqz_audio_info want = a->info;
    if (bits == VQZ_AUDIO_BITS_F32 || bits == VQZ_AUDIO_BITS_F64) {
        want.bits = -bits;
        want.is_float = 1;
    } else if (bits > 0 && bits <= 32) {
        want.bits = bits;
        want.is_float = 0;
    } else if (bits != 0) {
        return vqz_fail(VQZ_ERR_INVALID_ARG, "%s: %d bits per sample (use 1..32 or a float code)", path, bits);
    } else if (want.bits == 0) {
        want.is_float = 0;
    }
    int ch = a->info.channels;
    int64_t frames = a->info.frames;
    VQZ_FAIL_IF(frames < 0, VQZ_ERR_INVALID_ARG, "%s: clip of %lld frames", path, (long long)frames);
    vqz_audio_writer *w;
    VQZ_TRY(vqz_audio_writer_open(path, &want, &w));
    float *block = (float *)malloc((size_t)BLOCK_FRAMES * (size_t)ch * sizeof(float));
    vqz_status s = block ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t f0 = 0; s == VQZ_OK && f0 < frames; f0 += BLOCK_FRAMES) {
        int64_t m = frames - f0 < BLOCK_FRAMES ? frames - f0 : BLOCK_FRAMES;
        for (int64_t i = 0; i < m; i++)
            for (int c = 0; c < ch; c++)
                block[i * ch + c] = a->data[(size_t)c * (size_t)frames + (size_t)(f0 + i)];
        s = vqz_audio_writer_write(w, block, m);
    }
    free(block);
    if (s != VQZ_OK) {
        vqz_audio_writer_close(w, 0);
        return s;
    }
    return vqz_audio_writer_close(w, 1);
}
