// test_cli.cpp — vqz-enc, vqz-dec and vqz-info run as programs: naming, no clobbering, exit codes and
// one-line messages for damaged files and wrong or missing models, --levels, vqz-info text and JSON;
// and samples/api-example.c built against the installed library through pkg-config.
// The tools are looked for in $VQZ_BIN_DIR, else beside this test binary (BUILD/tests/../bin).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <cjson/cJSON.h>
#include <sndfile.h>

#include "testutil.h"

extern "C" {
#include "codec/image_io.h"
#include "codec/model.h"
#include "common/status.h"
}

namespace {

// Writes a small random-weight image model bundle (as tests/test_codec_image.cpp does).
void make_model(const std::string &path, const std::string &name, uint64_t seed)
{
    vqz_net_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = VQZ_NET_IMAGE;
    c.in_channels = 3;
    c.n_stages = 2;
    c.channels[0] = 8;
    c.channels[1] = 12;
    c.channels[2] = 16;
    c.strides[0] = c.strides[1] = 2;
    c.res_blocks = 1;
    c.latent_dim = 8;
    c.levels = 4;
    c.codebook_size = 300;
    c.res_scale = 0.5f;
    c.activation = VQZ_ACT_SILU;
    vqz_net *net = nullptr;
    REQUIRE(vqz_net_create(&c, &net) == VQZ_OK);
    REQUIRE(vqz_net_init(net, seed) == VQZ_OK);
    REQUIRE(vqz_net_save_bundle(net, name.c_str(), nullptr, path.c_str(), nullptr) == VQZ_OK);
    vqz_net_free(net);
}

// Writes a small audio model bundle (the layout tests/test_codec_audio.cpp uses).
void make_audio_model(const std::string &path, const std::string &name, uint64_t seed)
{
    vqz_net_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = VQZ_NET_AUDIO;
    c.in_channels = 1;
    c.n_stages = 2;
    c.channels[0] = 4;
    c.channels[1] = 8;
    c.channels[2] = 16;
    c.strides[0] = 2;
    c.strides[1] = 4;
    c.res_blocks = 1;
    c.latent_dim = 4;
    c.levels = 3;
    c.codebook_size = 64;
    c.res_scale = 1.0f;
    c.activation = VQZ_ACT_ELU;
    c.weight_norm = 1;
    c.sample_rate = 24000;
    vqz_net *net = nullptr;
    REQUIRE(vqz_net_create(&c, &net) == VQZ_OK);
    REQUIRE(vqz_net_init(net, seed) == VQZ_OK);
    REQUIRE(vqz_net_save_bundle(net, name.c_str(), nullptr, path.c_str(), nullptr) == VQZ_OK);
    vqz_net_free(net);
}

// Two tones, 16-bit stereo WAV at 44.1 kHz.
void write_tone(const std::string &path, int frames)
{
    SF_INFO info;
    std::memset(&info, 0, sizeof info);
    info.samplerate = 44100;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE *f = sf_open(path.c_str(), SFM_WRITE, &info);
    REQUIRE(f != nullptr);
    std::vector<short> pcm(2 * (size_t)frames);
    for (int i = 0; i < frames; i++) {
        pcm[2 * i] = (short)(8000 * std::sin(2 * M_PI * 440 * i / 44100.0));
        pcm[2 * i + 1] = (short)(6000 * std::sin(2 * M_PI * 660 * i / 44100.0));
    }
    REQUIRE(sf_writef_short(f, pcm.data(), frames) == frames);
    REQUIRE(sf_close(f) == 0);
}

// Rate, channels, frames and major format of an audio file.
SF_INFO audio_info(const std::string &path)
{
    SF_INFO info;
    std::memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open(path.c_str(), SFM_READ, &info);
    REQUIRE(f != nullptr);
    sf_close(f);
    return info;
}

struct Run {
    int rc;
    std::string out, err;
};

// The tools, a scratch folder, and a model folder on $VQZ_MODEL_PATH holding "vqz-image-v1" (the
// default image model's name, so that plain `vqz-enc x.png` finds it) and "other-image".
struct Cli {
    std::string bin;
    bool ready = false;
    TempDir work, models, capture;

    Cli()
    {
        bin = vqz_test_bin_dir();
        for (const char *t : {"vqz-enc", "vqz-dec", "vqz-info"})
            if (access((bin + "/" + t).c_str(), X_OK) != 0) {
                vqz_test_skip("the tools are not built (" + bin + "/" + t + "); run make first");
                return;
            }
        make_model(models.at("vqz-image-v1.safetensors"), "vqz-image-v1", 1);
        make_model(models.at("other-image.safetensors"), "other-image", 2);
        setenv("VQZ_MODEL_PATH", models.path.c_str(), 1);
        ready = true;
    }
    ~Cli() { unsetenv("VQZ_MODEL_PATH"); }

    // Runs a shell command line, capturing stdout, stderr and the exit status.
    Run sh(const std::string &cmd) const
    {
        std::string o = capture.at("stdout"), e = capture.at("stderr");
        int st = std::system((cmd + " >'" + o + "' 2>'" + e + "'").c_str());
        Run r;
        r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        r.out = slurp(o);
        r.err = slurp(e);
        return r;
    }
    // One tool with arguments; one CPU thread keeps runs quick and steady on a shared machine.
    Run tool(const std::string &name, const std::string &args) const
    {
        std::string threads = name == "vqz-info" ? "" : " --threads 1";
        return sh(bin + "/" + name + threads + " " + args);
    }
    std::string photo(const std::string &name) const
    {
        std::string p = work.at(name);
        spit(p, slurp(vqz_test_path("../samples/images/chelsea.png")));
        return p;
    }
};

std::string q(const std::string &s) { return "'" + s + "'"; }

// One line on stderr, "PROG: FILE: ..." naming the file.
void require_one_line(const Run &r, const std::string &prog, const std::string &file)
{
    INFO("stderr: " << r.err);
    REQUIRE(!r.err.empty());
    REQUIRE(r.err.find('\n') == r.err.size() - 1);
    REQUIRE(r.err.rfind(prog + ": " + file + ": ", 0) == 0);
}

} // namespace

TEST_CASE("vqz-enc and vqz-dec round-trip a photo with the default model from the search path", "[cli]")
{
    Cli cli;
    if (!cli.ready)
        return;
    std::string src = cli.photo("chelsea.png"), enc = cli.work.at("chelsea.vqz");
    std::string original = slurp(src);

    Run r = cli.tool("vqz-enc", q(src));
    INFO("stderr: " << r.err);
    REQUIRE(r.rc == 0);
    REQUIRE(slurp(src) == original); // inputs are kept
    long long size = (long long)slurp(enc).size();
    REQUIRE(size > 100);
    // the summary: one line with the names, the byte count, the rate and the levels
    REQUIRE(r.err.find('\n') == r.err.size() - 1);
    REQUIRE(r.err.rfind(src + " -> " + enc + ": " + std::to_string(size) + " bytes, ", 0) == 0);
    char bpp[32];
    std::snprintf(bpp, sizeof bpp, "%.3f bpp", size * 8.0 / (451.0 * 300.0));
    REQUIRE(r.err.find(bpp) != std::string::npos);
    REQUIRE(r.err.find("4 levels") != std::string::npos);

    // encoding again refuses to overwrite, naming the output, and leaves it alone
    std::string enc_bytes = slurp(enc);
    r = cli.tool("vqz-enc", q(src));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-enc", enc);
    REQUIRE(r.err.find("-f") != std::string::npos);
    REQUIRE(slurp(enc) == enc_bytes);

    // decoding: chelsea.png is the source, so the default output name is refused too
    r = cli.tool("vqz-dec", q(enc));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-dec", src);
    REQUIRE(slurp(src) == original);

    std::string dec = cli.work.at("dec.png");
    r = cli.tool("vqz-dec", "-o " + q(dec) + " " + q(enc));
    INFO("stderr: " << r.err);
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.rfind(enc + " -> " + dec + ": 451x300, 3 channels, 4 of 4 levels", 0) == 0);
    vqz_image *a = nullptr, *b = nullptr;
    REQUIRE(vqz_image_read_file(src.c_str(), &a) == VQZ_OK);
    REQUIRE(vqz_image_read_file(dec.c_str(), &b) == VQZ_OK);
    REQUIRE(b->width == a->width);
    REQUIRE(b->height == a->height);
    REQUIRE(b->channels == a->channels);
    REQUIRE(b->bit_depth == a->bit_depth);
    vqz_image_free(a);
    vqz_image_free(b);

    // -f overwrites with the same decode; -o - writes the same PNG to stdout; -Q prints nothing
    r = cli.tool("vqz-dec", "-f -Q " + q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.empty());
    REQUIRE(slurp(src) == slurp(dec));
    r = cli.tool("vqz-dec", "-o - " + q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(r.out == slurp(dec));

    // --levels: fewer levels decoded equal a file written with fewer levels
    std::string l2 = cli.work.at("l2.png"), two = cli.work.at("two.vqz"), two_png = cli.work.at("two.png");
    r = cli.tool("vqz-dec", "--levels 2 -o " + q(l2) + " " + q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.find("2 of 4 levels") != std::string::npos);
    REQUIRE(slurp(l2) != slurp(dec));
    r = cli.tool("vqz-enc", "-q 2 -o " + q(two) + " " + q(cli.photo("again.png"))); // src was overwritten
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.find("2 levels") != std::string::npos);
    REQUIRE((long long)slurp(two).size() < size);
    r = cli.tool("vqz-dec", q(two));
    REQUIRE(r.rc == 0);
    REQUIRE(slurp(two_png) == slurp(l2));

    // several inputs, --rm deletes them once their outputs are complete; the summary per file
    std::string c1 = cli.photo("c1.png"), c2 = cli.photo("c2.png");
    r = cli.tool("vqz-enc", "--rm -m vqz-image-v1 " + q(c1) + " " + q(c2));
    INFO("stderr: " << r.err);
    REQUIRE(r.rc == 0);
    REQUIRE(!file_exists(c1));
    REQUIRE(!file_exists(c2));
    REQUIRE(slurp(cli.work.at("c1.vqz")) == enc_bytes);
    REQUIRE(slurp(cli.work.at("c2.vqz")) == enc_bytes);
    REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 2);
}

TEST_CASE("vqz-enc and vqz-dec refuse bad usage with exit status 1 and write nothing", "[cli]")
{
    Cli cli;
    if (!cli.ready)
        return;
    std::string a = cli.photo("a.png"), b = cli.photo("b.png");
    std::vector<std::string> before = dir_names(cli.work.path);

    Run r = cli.tool("vqz-enc", "-o " + q(cli.work.at("x.vqz")) + " " + q(a) + " " + q(b));
    REQUIRE(r.rc == 1);
    REQUIRE(r.err.find("-o") != std::string::npos);
    r = cli.tool("vqz-enc", "-");
    REQUIRE(r.rc == 1);
    REQUIRE(r.err.find("standard input") != std::string::npos);
    r = cli.tool("vqz-enc", "--no-such-option " + q(a));
    REQUIRE(r.rc == 1);
    REQUIRE(r.err.find("--no-such-option") != std::string::npos);
    r = cli.tool("vqz-enc", "-q zero " + q(a));
    REQUIRE(r.rc == 1);
    REQUIRE(r.err.find("zero") != std::string::npos);
    r = cli.tool("vqz-enc", "-q 9 " + q(a)); // the model has 4 levels
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-enc", a);
    r = cli.tool("vqz-enc", "--device gpu " + q(a));
    REQUIRE(r.rc == 1);
    r = cli.tool("vqz-enc", "");
    REQUIRE(r.rc == 1);
    r = cli.tool("vqz-dec", "-o " + q(cli.work.at("x.png")) + " " + q(a) + " " + q(b));
    REQUIRE(r.rc == 1);
    REQUIRE(dir_names(cli.work.path) == before);

    // an unsupported input (text) is refused as such; a missing one is an I/O error
    std::string txt = cli.work.at("notes.txt");
    spit(txt, "this is not a picture\n");
    r = cli.tool("vqz-enc", q(txt));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-enc", txt);
    REQUIRE(r.err.find("unsupported") != std::string::npos);
    REQUIRE(!file_exists(cli.work.at("notes.vqz")));
    r = cli.tool("vqz-enc", q(cli.work.at("missing.png")));
    REQUIRE(r.rc == 2);
    require_one_line(r, "vqz-enc", cli.work.at("missing.png"));

    // a failing input does not stop the next one; the exit status is the first failure's
    r = cli.tool("vqz-enc", q(txt) + " " + q(cli.work.at("missing.png")) + " " + q(a));
    REQUIRE(r.rc == 1);
    REQUIRE(file_exists(cli.work.at("a.vqz")));
    REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 3);

    // vqz-dec on something that is not a .vqz file
    r = cli.tool("vqz-dec", "-o " + q(cli.work.at("y.png")) + " " + q(a));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-dec", a);
    REQUIRE(r.err.find("signature") != std::string::npos);
    REQUIRE(!file_exists(cli.work.at("y.png")));
}

TEST_CASE("damaged files and wrong or missing models: exit status, one line naming the file, nothing "
          "clobbered",
          "[cli]")
{
    Cli cli;
    if (!cli.ready)
        return;
    std::string src = cli.photo("chelsea.png"), enc = cli.work.at("chelsea.vqz");
    REQUIRE(cli.tool("vqz-enc", q(src)).rc == 0);
    std::string bytes = slurp(enc);
    std::string out = cli.work.at("existing.png");
    spit(out, "keep me");

    auto check_untouched = [&](const std::vector<std::string> &before) {
        REQUIRE(slurp(out) == "keep me");
        REQUIRE(dir_names(cli.work.path) == before); // no partial or temporary file left
    };

    // truncated inside the first level: exit 1, even with -f the existing output stays
    std::string cut = cli.work.at("cut.vqz");
    spit(cut, bytes.substr(0, 300));
    std::vector<std::string> before = dir_names(cli.work.path);
    Run r = cli.tool("vqz-dec", "-f -o " + q(out) + " " + q(cut));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-dec", cut);
    REQUIRE(r.err.find("truncated") != std::string::npos);
    check_untouched(before);
    r = cli.tool("vqz-dec", q(cut)); // and no cut.png appears
    REQUIRE(r.rc == 1);
    check_untouched(before);

    // a flipped payload byte: the frame checksum, exit 1
    std::string bad = cli.work.at("bad.vqz");
    std::string flipped = bytes;
    flipped[flipped.size() - 10] ^= 0x40;
    spit(bad, flipped);
    before = dir_names(cli.work.path);
    r = cli.tool("vqz-dec", "-f -o " + q(out) + " " + q(bad));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-dec", bad);
    REQUIRE(r.err.find("checksum mismatch: level") != std::string::npos);
    check_untouched(before);

    // another model given with -m: exit 3, both models named
    r = cli.tool("vqz-dec", "-f -m other-image -o " + q(out) + " " + q(enc));
    REQUIRE(r.rc == 3);
    require_one_line(r, "vqz-dec", enc);
    REQUIRE(r.err.find("vqz-image-v1") != std::string::npos);
    REQUIRE(r.err.find("other-image") != std::string::npos);
    check_untouched(before);
    // the same model given by path is fine
    r = cli.tool("vqz-dec", "-m " + q(cli.models.at("vqz-image-v1.safetensors")) + " -o " +
                                q(cli.work.at("bypath.png")) + " " + q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(file_exists(cli.work.at("bypath.png")));
    REQUIRE(std::remove(cli.work.at("bypath.png").c_str()) == 0);

    // the file's model is nowhere on the search path: exit 3, the model named
    TempDir empty;
    r = cli.sh("VQZ_MODEL_PATH=" + q(empty.path) + " " + cli.bin + "/vqz-dec --threads 1 -f -o " + q(out) + " " +
               q(enc));
    REQUIRE(r.rc == 3);
    require_one_line(r, "vqz-dec", enc);
    REQUIRE(r.err.find("'vqz-image-v1'") != std::string::npos);
    REQUIRE(r.err.find("not found") != std::string::npos);
    check_untouched(before);
    // a bundle of that name with another hash is not taken for it
    TempDir impostor;
    make_model(impostor.at("vqz-image-v1.safetensors"), "vqz-image-v1", 99);
    r = cli.sh("VQZ_MODEL_PATH=" + q(impostor.path) + " " + cli.bin + "/vqz-dec --threads 1 -f -o " + q(out) + " " +
               q(enc));
    REQUIRE(r.rc == 3);
    check_untouched(before);
    // and vqz-enc with a model that does not exist
    r = cli.tool("vqz-enc", "-m no-such-model -o " + q(cli.work.at("z.vqz")) + " " + q(src));
    REQUIRE(r.rc == 3);
    REQUIRE(r.err.find("no-such-model") != std::string::npos);
    REQUIRE(r.err.find('\n') == r.err.size() - 1);
    check_untouched(before);

    // a file cut after level 2 still decodes, with 2 levels, and vqz-info says so
    std::string cut2 = cli.work.at("cut2.vqz");
    char *json = nullptr;
    REQUIRE(vqz_file_describe_json(enc.c_str(), &json) == VQZ_OK);
    cJSON *doc = cJSON_Parse(json);
    vqz_free(json);
    REQUIRE(doc != nullptr);
    double l3 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "level_stats"), 2), "bytes")->valuedouble;
    double l4 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "level_stats"), 3), "bytes")->valuedouble;
    cJSON_Delete(doc);
    spit(cut2, bytes.substr(0, bytes.size() - (size_t)(l3 + l4)));
    r = cli.tool("vqz-dec", "-o " + q(cli.work.at("cut2.png")) + " " + q(cut2));
    INFO("stderr: " << r.err);
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.find("2 of 4 levels") != std::string::npos);
    r = cli.tool("vqz-info", q(cut2));
    REQUIRE(r.rc == 0);
    REQUIRE(r.out.find("2 of 4 present") != std::string::npos);
}

TEST_CASE("vqz-info prints the header and per-level sizes as text and as JSON", "[cli]")
{
    Cli cli;
    if (!cli.ready)
        return;
    std::string src = cli.photo("chelsea.png"), enc = cli.work.at("chelsea.vqz");
    REQUIRE(cli.tool("vqz-enc", q(src)).rc == 0);
    long long size = (long long)slurp(enc).size();

    Run r = cli.tool("vqz-info", q(enc));
    INFO("stdout: " << r.out << "stderr: " << r.err);
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.empty());
    REQUIRE(r.out.find("vqz-image-v1") != std::string::npos);
    REQUIRE(r.out.find("451 x 300, 3 channels, 8-bit") != std::string::npos);
    REQUIRE(r.out.find("4 of 4 present") != std::string::npos);
    REQUIRE(r.out.find(std::to_string(size) + " bytes") != std::string::npos);
    REQUIRE(r.out.find("H bits/idx") != std::string::npos);
    REQUIRE(r.out.find("source.format") != std::string::npos);

    r = cli.tool("vqz-info", "--json " + q(enc));
    REQUIRE(r.rc == 0);
    cJSON *doc = cJSON_Parse(r.out.c_str());
    REQUIRE(doc != nullptr);
    REQUIRE(std::string(cJSON_GetObjectItem(doc, "model")->valuestring) == "vqz-image-v1");
    REQUIRE(std::string(cJSON_GetObjectItem(doc, "kind")->valuestring) == "image");
    REQUIRE(cJSON_GetObjectItem(doc, "levels")->valueint == 4);
    REQUIRE(cJSON_GetObjectItem(doc, "file_bytes")->valuedouble == (double)size);
    REQUIRE(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "image"), "width")->valueint == 451);
    const cJSON *levels = cJSON_GetObjectItem(doc, "level_stats");
    REQUIRE(cJSON_GetArraySize(levels) == 4);
    double spent = 0;
    for (int l = 0; l < 4; l++) {
        const cJSON *e = cJSON_GetArrayItem(levels, l);
        REQUIRE(cJSON_GetObjectItem(e, "indices")->valuedouble == 113.0 * 75.0);
        double h = cJSON_GetObjectItem(e, "entropy_bits_per_index")->valuedouble;
        REQUIRE(h > 0);
        REQUIRE(h <= std::log2(300.0) + 1e-9);
        spent += cJSON_GetObjectItem(e, "bytes")->valuedouble;
    }
    REQUIRE(spent < size);
    // the text table shows the same per-level bytes
    char row[64];
    std::snprintf(row, sizeof row, "%10.0f", cJSON_GetObjectItem(cJSON_GetArrayItem(levels, 0), "bytes")->valuedouble);
    cJSON_Delete(doc);
    REQUIRE(cli.tool("vqz-info", q(enc)).out.find(row) != std::string::npos);

    // several files: an array; a bad one is reported, the others still described, exit 1
    std::string notvqz = cli.work.at("notes.vqz");
    spit(notvqz, "hello");
    r = cli.tool("vqz-info", "--json " + q(enc) + " " + q(notvqz) + " " + q(enc));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-info", notvqz);
    doc = cJSON_Parse(r.out.c_str());
    REQUIRE(cJSON_IsArray(doc));
    REQUIRE(cJSON_GetArraySize(doc) == 2);
    cJSON_Delete(doc);
}

TEST_CASE("audio: a file and a stdin stream to .vqz, back to WAV, FLAC and a WAV stream on stdout", "[cli]")
{
    Cli cli;
    if (!cli.ready)
        return;
    make_audio_model(cli.models.at("vqz-audio-v1.safetensors"), "vqz-audio-v1", 3);
    std::string wav = cli.work.at("tone.wav"), enc = cli.work.at("tone.vqz");
    const int frames = 22050;
    write_tone(wav, frames);
    {
        vqz_model *m = nullptr;
        REQUIRE(vqz_model_load(cli.models.at("vqz-audio-v1.safetensors").c_str(), &m) == VQZ_OK);
        vqz_status s = vqz_encode_file(m, nullptr, wav.c_str(), cli.work.at("probe.vqz").c_str(), nullptr);
        vqz_model_free(m);
        if (s == VQZ_ERR_UNSUPPORTED) {
            vqz_test_skip("audio coding is not in this library yet");
            return;
        }
        REQUIRE(s == VQZ_OK);
    }

    // the default audio model is found by the input's kind; the summary gives the rate in kbps
    Run r = cli.tool("vqz-enc", q(wav));
    INFO("stderr: " << r.err);
    REQUIRE(r.rc == 0);
    long long size = (long long)slurp(enc).size();
    REQUIRE(r.err.rfind(wav + " -> " + enc + ": " + std::to_string(size) + " bytes, ", 0) == 0);
    char kbps[32];
    std::snprintf(kbps, sizeof kbps, "%.2f kbps", size * 8.0 / (frames / 44100.0) / 1000.0);
    REQUIRE(r.err.find(kbps) != std::string::npos);
    REQUIRE(r.err.find("3 levels") != std::string::npos);

    // stdin needs -o; with it, the same file
    std::string st = cli.work.at("stream.vqz");
    r = cli.sh("cat " + q(wav) + " | " + cli.bin + "/vqz-enc --threads 1 - -o " + q(st));
    INFO("stderr: " << r.err);
    REQUIRE(r.rc == 0);
    vqz_file_info fi;
    REQUIRE(vqz_file_probe(st.c_str(), &fi) == VQZ_OK);
    REQUIRE(fi.kind == VQZ_KIND_AUDIO);
    REQUIRE(std::string(fi.model_name) == "vqz-audio-v1");

    // tone.wav exists: refused; -o gives a WAV with the original layout
    r = cli.tool("vqz-dec", q(enc));
    REQUIRE(r.rc == 1);
    require_one_line(r, "vqz-dec", wav);
    std::string out = cli.work.at("out.wav");
    r = cli.tool("vqz-dec", "-o " + q(out) + " " + q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(r.err.find("2 channels at 44100 Hz, 3 of 3 levels") != std::string::npos);
    SF_INFO info = audio_info(out);
    REQUIRE(info.samplerate == 44100);
    REQUIRE(info.channels == 2);
    REQUIRE(info.frames == frames);
    REQUIRE((info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_WAV);

    // FLAC by the name, at another rate; a WAV stream on stdout; a name that is neither is refused
    std::string flac = cli.work.at("out16.flac");
    r = cli.tool("vqz-dec", "--rate 16000 -o " + q(flac) + " " + q(enc));
    REQUIRE(r.rc == 0);
    info = audio_info(flac);
    REQUIRE((info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC);
    REQUIRE(info.samplerate == 16000);
    REQUIRE(std::llabs((long long)info.frames - frames * 16000LL / 44100) <= 1);
    r = cli.tool("vqz-dec", "-o - " + q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(r.out.compare(0, 4, "RIFF") == 0);
    REQUIRE(r.out.size() >= 44 + 4 * (size_t)frames);
    r = cli.tool("vqz-dec", "-o " + q(cli.work.at("out.mp4")) + " " + q(enc));
    REQUIRE(r.rc == 1);
    REQUIRE(!file_exists(cli.work.at("out.mp4")));

    // an image model given for audio is refused as the wrong model
    r = cli.tool("vqz-enc", "-m other-image -o " + q(cli.work.at("x.vqz")) + " " + q(wav));
    REQUIRE(r.rc == 3);
    require_one_line(r, "vqz-enc", wav);
    REQUIRE(!file_exists(cli.work.at("x.vqz")));

    r = cli.tool("vqz-info", q(enc));
    REQUIRE(r.rc == 0);
    REQUIRE(r.out.find("44100 Hz (model 24000 Hz), 2 channels") != std::string::npos);
}

TEST_CASE("--help and --version exit 0; the man pages are clean roff", "[cli]")
{
    Cli cli;
    if (!cli.ready)
        return;
    for (const char *t : {"vqz-enc", "vqz-dec", "vqz-info"}) {
        INFO(t);
        Run r = cli.sh(cli.bin + "/" + t + " --help");
        REQUIRE(r.rc == 0);
        REQUIRE(r.out.rfind(std::string("Usage: ") + t, 0) == 0);
        REQUIRE(r.err.empty());
        r = cli.sh(cli.bin + "/" + t + " --version");
        REQUIRE(r.rc == 0);
        REQUIRE(r.out == std::string(t) + " " + vqz_version() + "\n");
    }
    if (std::system("command -v groff >/dev/null 2>&1") != 0) {
        vqz_test_skip("groff is not installed: man pages not checked");
        return;
    }
    for (const char *t : {"vqz-enc", "vqz-dec", "vqz-info"}) {
        INFO(t);
        std::string page = vqz_test_path(std::string("../tools/") + t + ".1");
        Run r = cli.sh("groff -man -ww -z " + q(page));
        REQUIRE(r.rc == 0);
        REQUIRE(r.err.empty()); // no roff warnings
        for (const char *section : {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT",
                                    "EXAMPLES", "SEE ALSO"})
            REQUIRE(slurp(page).find(std::string(".SH ") + section + "\n") != std::string::npos);
    }
}

TEST_CASE("the API example builds against the installed library with pkg-config and round-trips", "[cli]")
{
#if defined(__SANITIZE_ADDRESS__)
    vqz_test_skip("sanitizer build: the example would link the installed library without the sanitizer runtime");
    return;
#endif
    if (std::system("command -v make >/dev/null && command -v cc >/dev/null && command -v pkg-config >/dev/null") !=
            0 ||
        !file_exists("Makefile") || !file_exists("samples/api-example.c")) {
        vqz_test_skip("needs make, cc, pkg-config and the source tree as the working directory");
        return;
    }
    // install the build this test binary belongs to, with its CUDA setting, so nothing is rebuilt
    std::string build = vqz_test_build_dir();
    char cwd[4096];
    REQUIRE(getcwd(cwd, sizeof cwd) != nullptr);
    if (build.rfind(std::string(cwd) + "/", 0) == 0)
        build = build.substr(std::strlen(cwd) + 1);
    std::string cuda = std::string(vqz_version()).find("cuda") != std::string::npos ? "1" : "0";
    TempDir t;
    std::string prefix = t.at("prefix"), log = t.at("make.log");
    std::string cmd = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s install BUILD=" + q(build) + " CUDA=" + cuda +
                      " PREFIX=" + q(prefix) + " >" + q(log) + " 2>&1";
    int st = std::system(cmd.c_str());
    INFO("make install: " << slurp(log));
    REQUIRE(WIFEXITED(st));
    REQUIRE(WEXITSTATUS(st) == 0);
    for (const char *f : {"include/vqz.h", "lib/libvqz.a", "lib/libvqz.so", "lib/pkgconfig/vqz.pc", "bin/vqz-enc",
                          "bin/vqz-dec", "bin/vqz-info"})
        REQUIRE(file_exists(prefix + "/" + f));
    for (const char *page : {"vqz-enc.1", "vqz-dec.1", "vqz-info.1"}) // the issue asks make install for them
        CHECK(file_exists(prefix + "/share/man/man1/" + page));

    // the installed vqz.pc must point at the prefix it was installed to
    std::string pc = "PKG_CONFIG_PATH=" + q(prefix + "/lib/pkgconfig") + " pkg-config";
    TempDir cap;
    std::string var = cap.at("var");
    REQUIRE(std::system((pc + " --variable=prefix vqz >" + q(var)).c_str()) == 0);
    INFO("installed vqz.pc: " << slurp(prefix + "/lib/pkgconfig/vqz.pc"));
    CHECK(slurp(var) == prefix + "\n");

    // build the example exactly as its comment says, against the installed header and library
    std::string exe = t.at("api-example"), cc_log = t.at("cc.log");
    cmd = "cc samples/api-example.c $(" + pc + " --cflags --libs vqz) -lm -o " + q(exe) + " >" + q(cc_log) + " 2>&1";
    st = std::system(cmd.c_str());
    INFO("cc: " << slurp(cc_log));
    REQUIRE(st == 0);

    // only vqz_* symbols are exported from the shared library
    std::string syms = t.at("syms");
    REQUIRE(std::system(("nm -D --defined-only " + q(prefix + "/lib/libvqz.so") + " | awk '{print $3}' >" + q(syms))
                            .c_str()) == 0);
    std::string names = slurp(syms);
    REQUIRE(names.find("vqz_image_encode\n") != std::string::npos);
    size_t pos = 0;
    while (pos < names.size()) {
        size_t nl = names.find('\n', pos);
        std::string name = names.substr(pos, nl - pos);
        INFO("exported symbol " << name);
        REQUIRE(name.rfind("vqz_", 0) == 0);
        pos = nl + 1;
    }

    // run it with a tiny model, on the installed shared library
    std::string model = t.at("tiny.safetensors"), out = t.at("out.txt");
    make_model(model, "tiny-image", 7);
    st = std::system(("LD_LIBRARY_PATH=" + q(prefix + "/lib") + " " + q(exe) + " " + q(model) + " >" + q(out) + " 2>&1")
                         .c_str());
    std::string text = slurp(out);
    INFO("api-example: " << text);
    REQUIRE(st == 0);
    REQUIRE(text.find("model tiny-image, 4 levels of 300 codewords") != std::string::npos);
    for (int l = 1; l <= 4; l++)
        REQUIRE(text.find("levels " + std::to_string(l) + ": ") != std::string::npos);
    REQUIRE(text.find(" bytes, ") != std::string::npos);
    REQUIRE(text.find("PSNR") != std::string::npos);
}
