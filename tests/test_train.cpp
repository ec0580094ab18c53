// test_train.cpp — vqz_train and vqz-train on real media (samples/images, samples/audio) with tiny
// architectures: the loss falls, files are valid, resume continues the same run bit for bit, a run killed
// with SIGKILL resumes from an intact checkpoint, codebook-only adaptation leaves the networks alone,
// errors name their cause, and the log renders to PNG.
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "testutil.h"

extern "C" {
#include "codec/audio_io.h"
#include "codec/model.h"
#include "format/bundle.h"
#include "include/vqz.h"
}

namespace {

const char *kTinyImage = R"({"kind":"image","in_channels":3,"channels":[8,16],"strides":[2],"res_blocks":1,
  "latent_dim":8,"levels":3,"codebook_size":32,"res_scale":0.5,"activation":"silu","weight_norm":false})";
const char *kTinyAudio = R"({"kind":"audio","in_channels":1,"channels":[4,8,16],"strides":[4,5],"res_blocks":1,
  "latent_dim":8,"levels":3,"codebook_size":32,"activation":"elu","weight_norm":true,"sample_rate":24000})";

struct Log {
    std::vector<vqz_train_progress> steps, vals;
    std::vector<std::string> messages;
    int64_t stop_at = -1;
};

int collect(const vqz_train_progress *p, void *user)
{
    Log *l = static_cast<Log *>(user);
    if (p->event == VQZ_TRAIN_MESSAGE)
        l->messages.push_back(p->message);
    else if (p->event == VQZ_TRAIN_STEP)
        l->steps.push_back(*p);
    else
        l->vals.push_back(*p);
    return l->stop_at >= 0 && p->event == VQZ_TRAIN_STEP && p->step >= l->stop_at;
}

struct Run {
    TempDir dir;
    std::string images = vqz_test_path("../samples/images");
    std::string audio = vqz_test_path("../samples/audio");
    const char *data[1];
    const char *val[1];
    std::string out, cfg, log;
    vqz_train_options o;

    explicit Run(bool image = true)
    {
        out = dir.at("m.safetensors");
        cfg = dir.at("cfg.json");
        log = dir.at("log.csv");
        spit(cfg, image ? kTinyImage : kTinyAudio);
        vqz_train_options_init(&o);
        data[0] = val[0] = image ? images.c_str() : audio.c_str();
        o.kind = image ? VQZ_KIND_IMAGE : VQZ_KIND_AUDIO;
        o.data_dirs = data;
        o.n_data_dirs = 1;
        o.out_path = out.c_str();
        o.config = cfg.c_str();
        o.steps = 24;
        o.batch = 4;
        o.crop = image ? 32 : 0.2;
        o.lr = 3e-3;
        o.threads = 1;
        o.seed = 7;
        o.log_every = 2;
        o.ckpt_every = 8;
        o.log_csv = log.c_str();
    }
};

std::vector<float> params_of(const std::string &path)
{
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(path.c_str(), &m) == VQZ_OK);
    std::vector<float> p(m->net->params, m->net->params + m->net->n_total);
    vqz_model_free(m);
    return p;
}

std::vector<float> tensor_of(const std::string &path, const char *name)
{
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(path.c_str(), &m) == VQZ_OK);
    int id = vqz_net_find(m->net, name);
    REQUIRE(id >= 0);
    const vqz_param_info &p = m->net->info[id];
    int64_t n = p.shape[0] * p.shape[1] * p.shape[2] * p.shape[3];
    std::vector<float> v(m->net->params + p.offset, m->net->params + p.offset + n);
    vqz_model_free(m);
    return v;
}

std::string meta_of(const std::string &path, const char *key)
{
    vqz_bundle *b = nullptr;
    REQUIRE(vqz_bundle_open_file(path.c_str(), &b) == VQZ_OK);
    const char *v = nullptr;
    std::string r = vqz_bundle_meta_get(b, key, &v) == VQZ_OK ? v : "";
    vqz_bundle_free(b);
    return r;
}

int count_lines(const std::string &s)
{
    int n = 0;
    for (char c : s)
        n += c == '\n';
    return n;
}

// A 16-step tiny image model, and a 6-step codebook-only adaptation of it set up (not run) in `ad`.
struct Adaptation {
    Run base, ad;
    Adaptation()
    {
        base.o.steps = 16;
        REQUIRE(vqz_train(&base.o, nullptr, nullptr) == VQZ_OK);
        ad.o.init_path = base.out.c_str();
        ad.o.codebook_only = 1;
        ad.o.config = nullptr;
        ad.o.steps = 6;
        ad.o.seed = 99;
    }
};

} // namespace

TEST_CASE("image training on real photographs lowers the loss and writes a loadable model", "[train]")
{
    Run r;
    r.o.val_dirs = r.val;
    r.o.n_val_dirs = 1;
    r.o.val_every = 12;
    r.o.steps = 40;
    Log log;
    REQUIRE(vqz_train(&r.o, collect, &log) == VQZ_OK);
    REQUIRE(log.steps.size() == 20);
    double first = 0, last = 0;
    for (int i = 0; i < 4; i++) {
        first += log.steps[(size_t)i].recon;
        last += log.steps[log.steps.size() - 1 - (size_t)i].recon;
    }
    INFO("recon first " << first / 4 << " last " << last / 4);
    CHECK(last < 0.7 * first);
    for (const auto &p : log.steps)
        REQUIRE(std::isfinite(p.loss));
    // validation before training, at 12, 24, 36 and at the end
    REQUIRE(log.vals.size() == 5);
    CHECK(log.vals.back().val_psnr > log.vals.front().val_psnr);
    CHECK(log.vals.back().val_psnr > 15.0);
    for (int l = 0; l < 3; l++)
        CHECK(log.vals.back().perplexity[l] > 4.0);

    // the model is a plain bundle the codec loads, with provenance; the checkpoint is apart
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(r.out.c_str(), &m) == VQZ_OK);
    CHECK(std::string(m->name) == "m");
    vqz_model_free(m);
    CHECK(meta_of(r.out, "vqz.steps") == "40");
    CHECK(file_exists(r.out + ".ckpt"));
    CHECK(vqz_model_load((r.out + ".ckpt").c_str(), &m) != VQZ_OK);

    // the log: header, a row before training, one per report
    std::string csv = slurp(r.log);
    CHECK(csv.rfind("step,time_s,lr,loss,recon,commit,aux,grad_norm,levels_used,samples_per_s,ppl_1,ppl_2,ppl_3,"
                    "restarts,val_psnr,val_ppl_min,val_dead_max\n", 0) == 0);
    CHECK(count_lines(csv) == 1 + 1 + 20);

    // and it encodes a real photograph through the public API
    vqz_model *mm = nullptr;
    REQUIRE(vqz_model_load(r.out.c_str(), &mm) == VQZ_OK);
    vqz_options opt;
    vqz_options_init(&opt);
    opt.threads = 1;
    std::string enc = r.dir.at("c.vqz"), dec = r.dir.at("c.png");
    REQUIRE(vqz_encode_file(mm, &opt, (r.images + "/coffee.png").c_str(), enc.c_str(), nullptr) == VQZ_OK);
    REQUIRE(vqz_decode_file(mm, &opt, enc.c_str(), dec.c_str(), nullptr) == VQZ_OK);
    vqz_image_metrics q;
    REQUIRE(vqz_eval_images((r.images + "/coffee.png").c_str(), dec.c_str(), &q) == VQZ_OK);
    CHECK(q.psnr > 15.0);
    vqz_model_free(mm);
}

TEST_CASE("a stopped run resumed from its checkpoint ends bit for bit where an unbroken run ends", "[train]")
{
    Run a, b;
    Log la;
    REQUIRE(vqz_train(&a.o, collect, &la) == VQZ_OK);

    Log lb;
    lb.stop_at = 10;
    REQUIRE(vqz_train(&b.o, collect, &lb) == VQZ_ERR_CANCELLED);
    CHECK(std::string(vqz_last_error()).find("resume") != std::string::npos);
    CHECK(meta_of(b.out, "vqz.steps") == "10");
    std::string ckpt = b.out + ".ckpt";
    vqz_train_options o = b.o;
    o.resume_path = ckpt.c_str();
    o.config = nullptr; // the checkpoint's settings win
    o.steps = 0;
    Log lc;
    REQUIRE(vqz_train(&o, collect, &lc) == VQZ_OK);
    REQUIRE(!lc.steps.empty());
    CHECK(lc.steps.front().step == 12);
    CHECK(lc.steps.back().step == 24);
    std::vector<float> pa = params_of(a.out), pb = params_of(b.out);
    REQUIRE(pa.size() == pb.size());
    CHECK(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
    // the log of the resumed run reads as one run: rows 2, 4, ..., 24 once each
    std::string csv = slurp(b.log);
    CHECK(count_lines(csv) == 1 + 12);
}

TEST_CASE("audio training on real recordings runs with L1 + STFT losses and validates by mel distance", "[train]")
{
    Run r(false);
    r.o.val_dirs = r.val;
    r.o.n_val_dirs = 1;
    r.o.val_every = 8;
    r.o.steps = 16;
    Log log;
    REQUIRE(vqz_train(&r.o, collect, &log) == VQZ_OK);
    REQUIRE(log.steps.size() == 8);
    for (const auto &p : log.steps) {
        REQUIRE(std::isfinite(p.loss));
        CHECK(p.aux > 0); // the STFT term is on
    }
    REQUIRE(log.vals.size() == 3);
    for (const auto &v : log.vals) {
        CHECK(std::isfinite(v.val_mel));
        CHECK(std::isfinite(v.val_sisdr));
        CHECK(std::isnan(v.val_psnr));
    }
    CHECK(log.vals.back().val_mel < log.vals.front().val_mel);
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(r.out.c_str(), &m) == VQZ_OK);
    vqz_model_free(m);
}

TEST_CASE("audio validation counts codebook usage where there is sound and not in silence or padding", "[train]")
{
    // Validation on a file of digital silence only: no position holds sound, so no codeword counts as used,
    // while the mel distance is still measured. A real recording beside it brings the usage back.
    Run r(false);
    TempDir vdir;
    vqz_audio *quiet = nullptr;
    REQUIRE(vqz_audio_create(1, 48000, 24000, &quiet) == VQZ_OK);
    std::string silent = vdir.at("silence.wav");
    REQUIRE(vqz_audio_write_all(silent.c_str(), quiet, 16) == VQZ_OK);
    vqz_audio_free(quiet);
    const char *vals[1] = {vdir.path.c_str()};
    r.o.val_dirs = vals;
    r.o.n_val_dirs = 1;
    r.o.steps = 4;
    r.o.val_every = 4;
    Log log;
    REQUIRE(vqz_train(&r.o, collect, &log) == VQZ_OK);
    REQUIRE(log.vals.size() == 2);
    for (const auto &v : log.vals) {
        CHECK(std::isfinite(v.val_mel));
        CHECK(v.perplexity[0] == 0);
        CHECK(v.dead[0] == 32);
    }
    Run t(false);
    const char *both[2] = {vdir.path.c_str(), t.audio.c_str()};
    t.o.val_dirs = both;
    t.o.n_val_dirs = 2;
    t.o.steps = 4;
    t.o.val_every = 4;
    Log lt;
    REQUIRE(vqz_train(&t.o, collect, &lt) == VQZ_OK);
    REQUIRE(lt.vals.size() == 2);
    CHECK(lt.vals.back().perplexity[0] > 1);
    CHECK(lt.vals.back().dead[0] < 32);
}

TEST_CASE("the adversarial stage trains a discriminator, checkpoints it and resumes bit for bit", "[train]")
{
    Run a(false), b(false);
    for (Run *r : {&a, &b}) {
        r->o.steps = 8;
        r->o.gan_from = 3;
        r->o.ckpt_every = 100;
    }
    Log la;
    REQUIRE(vqz_train(&a.o, collect, &la) == VQZ_OK);
    REQUIRE(la.steps.size() == 4);
    CHECK(std::isnan(la.steps[0].gan_d)); // step 2: before the stage
    for (size_t i = 1; i < la.steps.size(); i++) {
        CHECK(std::isfinite(la.steps[i].gan_d));
        CHECK(la.steps[i].gan_adv > 0);
        CHECK(la.steps[i].gan_feat > 0);
        // the generator's terms are part of the loss
        CHECK(la.steps[i].loss > la.steps[i].recon + la.steps[i].aux);
    }
    Log lb;
    lb.stop_at = 4;
    REQUIRE(vqz_train(&b.o, collect, &lb) == VQZ_ERR_CANCELLED);
    std::string ckpt = b.out + ".ckpt";
    vqz_bundle *bd = nullptr;
    REQUIRE(vqz_bundle_open_file(ckpt.c_str(), &bd) == VQZ_OK);
    vqz_tensor_info ti;
    CHECK(vqz_bundle_find(bd, "train.disc.adam_m", &ti) == VQZ_OK);
    vqz_bundle_free(bd);
    vqz_train_options o = b.o;
    o.resume_path = ckpt.c_str();
    o.config = nullptr;
    o.steps = 0;
    o.gan_from = 0; // the checkpoint's setting holds
    REQUIRE(vqz_train(&o, nullptr, nullptr) == VQZ_OK);
    std::vector<float> pa = params_of(a.out), pb = params_of(b.out);
    REQUIRE(pa.size() == pb.size());
    CHECK(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
    // image runs have no adversarial stage
    Run im;
    im.o.gan_from = 2;
    CHECK(vqz_train(&im.o, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("a resumed run upgrades a log with fewer columns and refuses a log of another run", "[train]")
{
    Run r(false);
    r.o.steps = 4;
    REQUIRE(vqz_train(&r.o, nullptr, nullptr) == VQZ_OK);
    // the log as an earlier version wrote it: without the three adversarial columns
    std::string csv = slurp(r.log), old;
    size_t pos = 0;
    while (pos < csv.size()) {
        size_t e = csv.find('\n', pos);
        std::string line = csv.substr(pos, e - pos);
        old += line.substr(0, line.size() - (pos == 0 ? std::string(",gan_d,gan_adv,gan_feat").size() : 3)) + "\n";
        pos = e + 1;
    }
    REQUIRE(old.find("gan_d") == std::string::npos);
    spit(r.log, old);
    vqz_train_options o = r.o;
    std::string ckpt = r.out + ".ckpt";
    o.resume_path = ckpt.c_str();
    o.config = nullptr;
    o.steps = 6;
    REQUIRE(vqz_train(&o, nullptr, nullptr) == VQZ_OK);
    std::string now = slurp(r.log);
    CHECK(now.rfind(csv.substr(0, csv.find('\n')), 0) == 0); // the full header again
    CHECK(count_lines(now) == 1 + 2 + 1);
    CHECK(now.find(old.substr(old.find('\n') + 1, old.find('\n', old.find('\n') + 1) - old.find('\n') - 1) + ",,,\n") !=
          std::string::npos);
    // a fresh run never appends to a log that holds another run
    Run again(false);
    again.o.log_csv = r.log.c_str();
    CHECK(vqz_train(&again.o, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
    CHECK(slurp(r.log) == now);
}

TEST_CASE("codebook-only adaptation keeps encoder and decoder, refits the codebooks and names its parent",
          "[train]")
{
    Adaptation a;
    Run &base = a.base, &ad = a.ad;
    INFO(vqz_last_error());
    REQUIRE(vqz_train(&ad.o, nullptr, nullptr) == VQZ_OK);
    CHECK(tensor_of(base.out, "enc.stem.weight") == tensor_of(ad.out, "enc.stem.weight"));
    CHECK(tensor_of(base.out, "dec.out.weight") == tensor_of(ad.out, "dec.out.weight"));
    CHECK(tensor_of(base.out, "rvq.codebooks") != tensor_of(ad.out, "rvq.codebooks"));
    CHECK(meta_of(ad.out, "vqz.parent") == "m");
    CHECK(meta_of(ad.out, "vqz.parent_sha256").size() == 64);
}

TEST_CASE("decoder steps after a codebook fit train the decoder alone and lower its loss", "[train]")
{
    // the fit alone, then the same run resumed with decoder steps
    Adaptation a;
    Run &base = a.base, &ad = a.ad;
    ad.o.dropout = 0; // every step at all levels, so that losses compare
    INFO(vqz_last_error());
    REQUIRE(vqz_train(&ad.o, nullptr, nullptr) == VQZ_OK);
    const std::string fit = ad.dir.at("fit.safetensors");
    REQUIRE(std::rename(ad.out.c_str(), fit.c_str()) == 0);
    std::string ckpt = ad.out + ".ckpt";
    ad.o.init_path = nullptr;
    ad.o.codebook_only = 0; // the checkpoint's settings say so
    ad.o.resume_path = ckpt.c_str();
    ad.o.decoder_steps = 12;
    ad.o.log_every = 1;
    Log log;
    REQUIRE(vqz_train(&ad.o, collect, &log) == VQZ_OK);
    CHECK(tensor_of(fit, "enc.stem.weight") == tensor_of(ad.out, "enc.stem.weight"));
    CHECK(tensor_of(fit, "rvq.codebooks") == tensor_of(ad.out, "rvq.codebooks"));
    CHECK(tensor_of(fit, "dec.out.weight") != tensor_of(ad.out, "dec.out.weight"));
    CHECK(tensor_of(base.out, "dec.out.weight") == tensor_of(fit, "dec.out.weight"));
    CHECK(meta_of(ad.out, "vqz.parent") == "m");
    // steps 7..18 are decoder steps: real losses, the last four lower than the first four
    REQUIRE(log.steps.size() == 12);
    CHECK(log.steps.front().step == 7);
    CHECK(log.steps.back().step == 18);
    double first = 0, last = 0;
    for (size_t i = 0; i < log.steps.size(); i++) {
        REQUIRE(std::isfinite(log.steps[i].loss));
        REQUIRE(log.steps[i].loss > 0);
        if (i < 4)
            first += log.steps[i].loss;
        if (i >= 8)
            last += log.steps[i].loss;
    }
    INFO("mean loss of the first four decoder steps " << first / 4 << ", of the last four " << last / 4);
    CHECK(last < first);

    // decoder steps belong to codebook-only runs
    Run plain;
    plain.o.decoder_steps = 4;
    CHECK(vqz_train(&plain.o, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
    CHECK(std::string(vqz_last_error()).find("codebook-only") != std::string::npos);
}

TEST_CASE("a prior-only run keeps every weight and adds the prior of the data's codewords", "[train]")
{
    Run base;
    base.o.steps = 16;
    REQUIRE(vqz_train(&base.o, nullptr, nullptr) == VQZ_OK);
    // A trained bundle already carries the prior of its EMA statistics.
    vqz_bundle *b = nullptr;
    vqz_tensor_info ti;
    REQUIRE(vqz_bundle_open_file(base.out.c_str(), &b) == VQZ_OK);
    REQUIRE(vqz_bundle_find(b, "rvq.prior", &ti) == VQZ_OK);
    vqz_bundle_free(b);

    Run pr;
    pr.o.init_path = base.out.c_str();
    pr.o.prior_only = 1;
    pr.o.config = nullptr;
    pr.o.log_csv = nullptr;
    pr.o.seed = 3;
    INFO(vqz_last_error());
    REQUIRE(vqz_train(&pr.o, nullptr, nullptr) == VQZ_OK);
    CHECK(params_of(base.out) == params_of(pr.out));
    CHECK(meta_of(pr.out, "vqz.steps") == "16"); // the parent's provenance is kept
    CHECK(meta_of(pr.out, "vqz.prior_vectors") == std::to_string(64 * 32));
    REQUIRE(vqz_bundle_open_file(pr.out.c_str(), &b) == VQZ_OK);
    REQUIRE(vqz_bundle_find(b, "rvq.prior", &ti) == VQZ_OK);
    CHECK(ti.dtype == VQZ_DTYPE_F32);
    CHECK(ti.ndim == 2);
    vqz_bundle_free(b);
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(pr.out.c_str(), &m) == VQZ_OK);
    REQUIRE(m->has_prior);
    CHECK(ti.shape[0] == m->cfg.levels);
    CHECK(ti.shape[1] == m->cfg.codebook_size);
    vqz_model_free(m);

    // The same photograph coded with both: identical pixels (same weights), and the prior never costs more
    // than a few bytes of coder rounding (the writer's choice includes starting without it).
    std::string in = vqz_test_path("../samples/images/coffee.png");
    std::string a = base.dir.at("a.vqz"), c = pr.dir.at("c.vqz"), pa = base.dir.at("a.png"), pc = pr.dir.at("c.png");
    vqz_model *ma = nullptr, *mc = nullptr;
    REQUIRE(vqz_model_load(base.out.c_str(), &ma) == VQZ_OK);
    REQUIRE(vqz_model_load(pr.out.c_str(), &mc) == VQZ_OK);
    REQUIRE(vqz_encode_file(ma, nullptr, in.c_str(), a.c_str(), nullptr) == VQZ_OK);
    REQUIRE(vqz_encode_file(mc, nullptr, in.c_str(), c.c_str(), nullptr) == VQZ_OK);
    REQUIRE(vqz_decode_file(ma, nullptr, a.c_str(), pa.c_str(), nullptr) == VQZ_OK);
    REQUIRE(vqz_decode_file(mc, nullptr, c.c_str(), pc.c_str(), nullptr) == VQZ_OK);
    CHECK(slurp(pa) == slurp(pc));
    CHECK(slurp(c).size() <= slurp(a).size() + 64);
    // A file coded with the prior needs it: the model without it is another model.
    CHECK(vqz_decode_file(ma, nullptr, c.c_str(), pa.c_str(), nullptr) == VQZ_ERR_MODEL_MISMATCH);
    vqz_model_free(ma);
    vqz_model_free(mc);

    Run bad;
    bad.o.prior_only = 1; // without a model to measure
    CHECK(vqz_train(&bad.o, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("a model bundle stored as F16 is half the size and codes like the F32 one", "[train]")
{
    Run r;
    r.o.steps = 4;
    REQUIRE(vqz_train(&r.o, nullptr, nullptr) == VQZ_OK);
    std::string ckpt = r.out + ".ckpt", half = r.dir.at("half.safetensors");
    vqz_train_options o = r.o;
    o.resume_path = ckpt.c_str();
    o.config = nullptr;
    o.out_path = half.c_str();
    o.store = "f16";
    o.log_csv = nullptr;
    o.n_data_dirs = 0; // no data: just write the checkpoint's model
    REQUIRE(vqz_train(&o, nullptr, nullptr) == VQZ_OK);
    CHECK(!file_exists(half + ".ckpt"));
    CHECK(meta_of(half, "vqz.steps") == "4");
    CHECK(meta_of(half, "vqz.data") == meta_of(r.out, "vqz.data"));
    vqz_bundle *b = nullptr;
    REQUIRE(vqz_bundle_open_file(half.c_str(), &b) == VQZ_OK);
    vqz_tensor_info ti;
    REQUIRE(vqz_bundle_find(b, "rvq.codebooks", &ti) == VQZ_OK);
    CHECK(ti.dtype == VQZ_DTYPE_F16);
    vqz_bundle_free(b);
    std::vector<float> p32 = params_of(r.out), p16 = params_of(half);
    REQUIRE(p32.size() == p16.size());
    double worst = 0;
    for (size_t i = 0; i < p32.size(); i++)
        worst = std::fmax(worst, std::fabs(p32[i] - p16[i]) / std::fmax(std::fabs(p32[i]), 1e-3));
    CHECK(worst < 1e-3);
    CHECK(slurp(half).size() < slurp(r.out).size() * 6 / 10);
    o.store = "f8";
    CHECK(vqz_train(&o, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("training errors name their cause", "[train]")
{
    Run r;
    SECTION("missing folder")
    {
        const char *nowhere[] = {"/nonexistent/vqz-data"};
        r.o.data_dirs = nowhere;
        vqz_status s = vqz_train(&r.o, nullptr, nullptr);
        CHECK(s != VQZ_OK);
        CHECK(std::string(vqz_last_error()).find("/nonexistent/vqz-data") != std::string::npos);
    }
    SECTION("audio config for an image run")
    {
        spit(r.cfg, kTinyAudio);
        CHECK(vqz_train(&r.o, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
        CHECK(std::string(vqz_last_error()).find("audio") != std::string::npos);
    }
    SECTION("resume from a file that is not a checkpoint")
    {
        std::string cfg = r.cfg;
        r.o.steps = 2;
        REQUIRE(vqz_train(&r.o, nullptr, nullptr) == VQZ_OK);
        r.o.resume_path = r.out.c_str(); // the model, not the checkpoint
        CHECK(vqz_train(&r.o, nullptr, nullptr) == VQZ_ERR_FORMAT);
        CHECK(std::string(vqz_last_error()).find("not a vqz-train checkpoint") != std::string::npos);
    }
    SECTION("fine-tuning a model of another architecture")
    {
        r.o.steps = 2;
        REQUIRE(vqz_train(&r.o, nullptr, nullptr) == VQZ_OK);
        Run other;
        other.o.init_path = r.out.c_str();
        other.o.levels = 2;
        other.o.config = nullptr; // the parent's architecture, with another L
        CHECK(vqz_train(&other.o, nullptr, nullptr) == VQZ_ERR_MODEL_MISMATCH);
    }
    SECTION("a crop larger than every image")
    {
        r.o.crop = 4096;
        CHECK(vqz_train(&r.o, nullptr, nullptr) != VQZ_OK);
        CHECK(!file_exists(r.out));
    }
}

TEST_CASE("vqz-train killed with SIGKILL resumes from an intact checkpoint; its log plots", "[train][cli]")
{
    std::string bin = vqz_test_bin_dir() + "/vqz-train";
    if (access(bin.c_str(), X_OK) != 0) {
        vqz_test_skip("vqz-train is not built (" + bin + "); run make first");
        return;
    }
    Run r;
    std::string err = r.dir.at("err.txt");
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        FILE *e = std::freopen(err.c_str(), "wb", stderr);
        (void)e;
        execl(bin.c_str(), "vqz-train", "image", "--data", r.images.c_str(), "--out", r.out.c_str(), "--config",
              r.cfg.c_str(), "--steps", "100000", "--batch", "4", "--crop", "32", "--threads", "1", "--ckpt-every",
              "3", "--log", r.log.c_str(), (char *)nullptr);
        _exit(127);
    }
    // wait for two checkpoints, then kill without warning
    std::string ckpt = r.out + ".ckpt";
    for (int i = 0; i < 1200; i++) {
        if (file_exists(ckpt) && slurp(err).find("checkpoint at step 6") != std::string::npos)
            break;
        usleep(50 * 1000);
    }
    REQUIRE(kill(pid, SIGKILL) == 0);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    REQUIRE(WIFSIGNALED(st));
    // no temporary file is left beside the outputs in a way that matters: the checkpoint is a whole bundle
    vqz_bundle *b = nullptr;
    REQUIRE(vqz_bundle_open_file(ckpt.c_str(), &b) == VQZ_OK);
    const char *tr = nullptr;
    REQUIRE(vqz_bundle_meta_get(b, "vqz.train", &tr) == VQZ_OK);
    int64_t at = std::strtoll(std::strstr(tr, "\"step\":") + 7, nullptr, 10);
    vqz_bundle_free(b);
    CHECK(at >= 6);
    CHECK(at % 3 == 0);

    std::string cmd = "'" + bin + "' image --data '" + r.images + "' --out '" + r.out + "' --resume '" + ckpt +
                      "' --steps " + std::to_string(at + 4) + " --threads 1 --log '" + r.log + "' 2>'" + err + "'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(slurp(err).find("resuming at step " + std::to_string(at)) != std::string::npos);
    CHECK(meta_of(r.out, "vqz.steps") == std::to_string(at + 4));

    std::string png = r.dir.at("curves.png");
    REQUIRE(std::system(("'" + bin + "' plot '" + r.log + "' -o '" + png + "' >/dev/null").c_str()) == 0);
    CHECK(slurp(png).substr(1, 3) == "PNG");
    // usage errors exit 1 with a message
    CHECK(WEXITSTATUS(std::system(("'" + bin + "' image --out x.safetensors 2>/dev/null").c_str())) == 1);
    CHECK(WEXITSTATUS(std::system(("'" + bin + "' video 2>/dev/null").c_str())) == 1);
}
