/* audio_io.h — audio file input and output for the codec: a streaming reader over libsndfile (every
 * format it reads, files or stdin), a streaming WAV/FLAC writer with atomic output, whole-file helpers. */
#ifndef VQZ_CODEC_AUDIO_IO_H
#define VQZ_CODEC_AUDIO_IO_H

#include <stdint.h>

#include "common/status.h"

/* Limits checked by the reader and the writer: more channels or a rate outside the range is
 * VQZ_ERR_LIMIT, so a corrupt header cannot make us allocate absurd buffers. */
#define VQZ_AUDIO_MAX_CHANNELS 64
#define VQZ_AUDIO_MIN_RATE 1000
#define VQZ_AUDIO_MAX_RATE 768000

/* Sample encodings for vqz_audio_write_all's bits argument besides 8/16/24/32-bit integer PCM. */
#define VQZ_AUDIO_BITS_F32 (-32) /* 32-bit IEEE float */
#define VQZ_AUDIO_BITS_F64 (-64) /* 64-bit IEEE float */

/* What a file holds (reader) or what to write (writer). */
typedef struct {
    int sample_rate;  /* Hz */
    int channels;     /* 1..VQZ_AUDIO_MAX_CHANNELS */
    int64_t frames;   /* frames (samples per channel); -1 when unknown, as for any non-seekable input; for
                       * MP3 libsndfile's count from the file's headers */
    int major_format; /* libsndfile container, sf_info.format & SF_FORMAT_TYPEMASK (SF_FORMAT_WAV, ...) */
    int subtype;      /* libsndfile encoding, sf_info.format & SF_FORMAT_SUBMASK (SF_FORMAT_PCM_24, ...) */
    int bits;         /* bits per sample that hold the decoded samples exactly (8, 16, 20, 24, 32, 64);
                       * 0 for lossy or companded encodings (Vorbis, Opus, MP3, u-law, ADPCM, ...) */
    int is_float;     /* 1 for IEEE float samples (bits 32 or 64) */
    int truncated;    /* reader: 1 when the WAV header declares more data than the file holds (libsndfile
                       * then reads what is there; see vqz_audio_reader_open) */
    char description[128]; /* e.g. "WAV 48000 Hz stereo 24-bit", "Ogg Vorbis 44100 Hz mono" */
} vqz_audio_info;

/* ---- reader ---------------------------------------------------------------------------------- */

typedef struct vqz_audio_reader vqz_audio_reader;

/* Open path for reading; "-" reads stdin. Every format libsndfile reads: WAV/WAVEX/RF64/W64 (8/16/24/32-bit
 * integer, 32/64-bit float, u-law, ADPCM...), AIFF, AU, CAF, FLAC, Ogg Vorbis, Ogg Opus, MP3 (libsndfile
 * >= 1.1 built with mpg123), and the rest of its list.
 * stdin: when stdin is a redirected regular file every format works; on a pipe libsndfile reads WAV, AIFF,
 * AU, Ogg Vorbis/Opus and MP3, but not FLAC (its FLAC decoder loses the bytes used to detect the format;
 * the error message says so). On a pipe info.frames is -1.
 * A WAV whose header declares more data than the file holds (a truncated file) opens: libsndfile reads
 * the frames present, info.frames counts those, and info.truncated is set so a tool can warn.
 * Errors: VQZ_ERR_IO (cannot open), VQZ_ERR_FORMAT ("x.flac: unsupported or corrupt audio (libsndfile: ...)"),
 * VQZ_ERR_LIMIT (channels or sample rate beyond the limits above), VQZ_ERR_NOMEM. */
vqz_status vqz_audio_reader_open(const char *path, vqz_audio_reader **out);

/* The stream's description, valid from open on. */
vqz_status vqz_audio_reader_info(const vqz_audio_reader *r, vqz_audio_info *info);

/* Read up to frames frames as INTERLEAVED float (buf[i * channels + c], buf holds frames * channels
 * floats), integer PCM scaled by 1 / 2^(bits-1) so that 16- and 24-bit samples arrive exactly. *got is the
 * number read; it is below frames only at the end of the stream (then 0 on later calls).
 * Errors: VQZ_ERR_TRUNCATED when the stream ends early with a decoder error and the header's frame count
 * is known, VQZ_ERR_FORMAT for other decoder errors; both name the file and libsndfile's reason. */
vqz_status vqz_audio_reader_read(vqz_audio_reader *r, float *buf, int64_t frames, int64_t *got);

/* Close and free; NULL is a no-op. stdin itself is left open. */
void vqz_audio_reader_close(vqz_audio_reader *r);

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct vqz_audio_writer vqz_audio_writer;

/* Open path for writing. The container comes from the name: ".wav" (WAVEX when channels > 2) or ".flac"
 * (case-insensitive); any other name is VQZ_ERR_INVALID_ARG. "-" writes a WAV stream to stdout.
 * From want: sample_rate, channels, and the encoding in bits/is_float:
 *   WAV:  8 (unsigned PCM), 16, 24, 32 (integer PCM), 32 + is_float (float), 64 + is_float (double);
 *   FLAC: 8, 16, 24 (at most 8 channels, VQZ_ERR_UNSUPPORTED otherwise);
 *   bits 0 (as reported for lossy inputs) means 16-bit PCM; other depths up to 32 (12-bit DWVW, 20-bit ALAC
 *   inputs) are written in the next larger size.
 * want->frames, when >= 0, is used only for stdout: the stream's header then carries exact sizes and
 * exactly that many frames must be written; -1 writes the streaming sizes 0xFFFFFFFF (read by libsndfile,
 * sox and ffmpeg until the end of the stream). libsndfile cannot write WAV to a pipe, so the stdout stream
 * is written by this module, straight to file descriptor 1 (flush stdio first); when the reading end of a
 * pipe closes, the process gets SIGPIPE unless it ignores it, and then the write fails with VQZ_ERR_IO.
 * Files go to a temporary ".NAME.XXXXXX" in the target's folder, renamed over the target only by
 * vqz_audio_writer_close(w, 1) after a complete, error-free write; an existing target is never touched
 * before that. WAV files are limited to 4 GiB of data (VQZ_ERR_LIMIT, use .flac). */
vqz_status vqz_audio_writer_open(const char *path, const vqz_audio_info *want, vqz_audio_writer **out);

/* Write frames frames of INTERLEAVED float (buf[i * channels + c]). Integer outputs take x * 2^(bits-1)
 * rounded to nearest and clipped to the integer range (the inverse of the reader's scaling, so a read
 * then written 16- or 24-bit file is bit-exact); NaN or infinity is VQZ_ERR_NONFINITE. After any error
 * the writer is failed: later writes fail and close(w, 1) does not commit. */
vqz_status vqz_audio_writer_write(vqz_audio_writer *w, const float *buf, int64_t frames);

/* Number of samples clipped so far (integer outputs), so a tool can warn. */
int64_t vqz_audio_writer_clipped(const vqz_audio_writer *w);

/* Finish and free the writer (NULL is a no-op and returns VQZ_OK). commit=1: complete the file (header,
 * fsync) and rename it over the target; returns the first error met by the writer, in which case nothing is
 * renamed. commit=0: discard. In every case but a successful commit the temporary file is removed.
 * For stdout there is nothing to rename or remove: commit=1 checks that want->frames (if given) were
 * written. */
vqz_status vqz_audio_writer_close(vqz_audio_writer *w, int commit);

/* ---- whole files ----------------------------------------------------------------------------- */

/* A whole clip in memory, PLANAR: channel c is data[c * info.frames ... (c + 1) * info.frames - 1]. */
typedef struct {
    vqz_audio_info info; /* info.frames is the number of frames held */
    float *data;
} vqz_audio;

/* A zeroed clip (description empty, bits 0). Errors: VQZ_ERR_LIMIT, VQZ_ERR_INVALID_ARG, VQZ_ERR_NOMEM. */
vqz_status vqz_audio_create(int channels, int64_t frames, int sample_rate, vqz_audio **out);

/* Read the whole of path ("-" = stdin) with the reader above; info.frames is the count actually read. */
vqz_status vqz_audio_read_all(const char *path, vqz_audio **out);

/* Write a whole clip with the writer above and commit it. bits: 1..32 (integer PCM, as for the writer),
 * VQZ_AUDIO_BITS_F32 or VQZ_AUDIO_BITS_F64 (float), or 0 for a's own info.bits/info.is_float (16-bit when
 * those are 0). */
vqz_status vqz_audio_write_all(const char *path, const vqz_audio *a, int bits);

void vqz_audio_free(vqz_audio *a);

#endif
