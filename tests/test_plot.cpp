// test_plot.cpp — training-log charts (codec/plot.h): a realistic log is plotted and the PNG read back to
// check the grid layout, where each panel's line lies (falling losses high on the left, low on the right;
// sparse columns joined; noisy columns drawn light with a dark average), log axes, and refused inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "testutil.h"

extern "C" {
#include "codec/image_io.h"
#include "codec/plot.h"
#include "common/status.h"
}

namespace {

// A training log as the trainer writes it: 3000 rows, a noisy falling loss, a smoother falling recon term,
// a validation PSNR logged every 10th row (rising), and a rising codebook perplexity.
std::string training_log()
{
    vqz_rng r;
    vqz_rng_seed(&r, 11);
    std::ostringstream s;
    s << "step,time_s,lr,loss,recon,val_psnr,perplexity_l0\n";
    char line[256];
    for (int i = 0; i < 3000; i++) {
        int step = (i + 1) * 10;
        double lr = 3e-4 * std::fmin(1.0, step / 2000.0) * 0.5 * (1 + std::cos(M_PI * step / 30000.0));
        double loss = (2.0 * std::exp(-step / 5000.0) + 0.05) * std::exp(0.15 * vqz_rng_normal(&r));
        double recon = 0.8 * std::exp(-step / 7000.0) + 0.03 + 0.005 * vqz_rng_normal(&r);
        double ppl = 100 + 800 * (1 - std::exp(-step / 6000.0)) + 20 * vqz_rng_normal(&r);
        char psnr[32] = "";
        if (i % 10 == 9)
            std::snprintf(psnr, sizeof psnr, "%.3f", 20 + 12 * (1 - std::exp(-step / 8000.0)));
        std::snprintf(line, sizeof line, "%d,%.2f,%.3e,%.6f,%.6f,%s,%.2f\n", step, step * 0.05, lr, loss, recon, psnr,
                      ppl);
        s << line;
    }
    return s.str();
}

// The layout documented in codec/plot.c: panel i's framed plot area, and the inset of the data inside it.
const int kAreaW = 446, kAreaH = 242, kInset = 4;
int area_left(int panel) { return 20 + 600 * (panel % 2) + 100; }
int area_top(int panel) { return 20 + 320 * (panel / 2) + 28; }
int image_height(int panels) { return 20 + 320 * ((panels + 1) / 2); }

struct Chart {
    vqz_image *img = nullptr;
    ~Chart() { vqz_image_free(img); }
    const uint16_t *px(int x, int y) const { return img->samples + ((size_t)y * img->width + x) * 3; }
    // Colour (not grey) in the pixel: only data lines have it.
    int sat(int x, int y) const
    {
        const uint16_t *p = px(x, y);
        int hi = std::max(p[0], std::max(p[1], p[2])), lo = std::min(p[0], std::min(p[1], p[2]));
        return hi - lo;
    }
    bool white(int x, int y) const
    {
        const uint16_t *p = px(x, y);
        return p[0] == 255 && p[1] == 255 && p[2] == 255;
    }
    bool strong(int x, int y) const { return sat(x, y) >= 100; } // the main (dark) line
    bool light(int x, int y) const // the light raw line under a moving average
    {
        const uint16_t *p = px(x, y);
        return sat(x, y) >= 20 && sat(x, y) < 80 && std::min(p[0], std::min(p[1], p[2])) >= 140;
    }
    // Mean row (relative to the plot area's top) of the main line's pixels in area columns [c0, c1), or -1.
    double line_row(int panel, int c0, int c1) const
    {
        double sum = 0;
        int n = 0;
        for (int x = area_left(panel) + c0; x < area_left(panel) + c1; x++)
            for (int y = area_top(panel); y < area_top(panel) + kAreaH; y++)
                if (strong(x, y)) {
                    sum += y - area_top(panel);
                    n++;
                }
        return n ? sum / n : -1;
    }
    // Pixels with colour inside / outside every listed panel's plot area.
    long coloured_in(int panel) const
    {
        long n = 0;
        for (int y = area_top(panel); y < area_top(panel) + kAreaH; y++)
            for (int x = area_left(panel); x < area_left(panel) + kAreaW; x++)
                n += sat(x, y) >= 20;
        return n;
    }
    long coloured_outside(int panels) const
    {
        long n = 0;
        for (int y = 0; y < img->height; y++)
            for (int x = 0; x < img->width; x++) {
                bool inside = false;
                for (int p = 0; p < panels; p++)
                    inside |= x >= area_left(p) && x < area_left(p) + kAreaW && y >= area_top(p) &&
                              y < area_top(p) + kAreaH;
                n += !inside && sat(x, y) >= 20;
            }
        return n;
    }
};

void read_chart(const std::string &path, Chart &c)
{
    REQUIRE(vqz_image_read_file(path.c_str(), &c.img) == VQZ_OK);
    REQUIRE(c.img->channels == 3);
    REQUIRE(c.img->bit_depth == 8);
}

// The area column where step s lies when the x axis spans [lo, hi].
int step_column(double s, double lo, double hi)
{
    return (int)std::lrint(kInset + (s - lo) / (hi - lo) * (kAreaW - 1 - 2 * kInset));
}

} // namespace

TEST_CASE("plot_log draws the named columns in a two-column grid with their lines where they belong", "[plot]")
{
    TempDir d;
    spit(d.at("train.csv"), training_log());
    const char *cols[] = {"loss", "val_psnr", "perplexity_l0"};
    REQUIRE(vqz_plot_log(d.at("train.csv").c_str(), d.at("chart.png").c_str(), cols, 3) == VQZ_OK);
    REQUIRE(dir_names(d.path) == std::vector<std::string>({"chart.png", "train.csv"})); // no temporary file left

    Chart c;
    read_chart(d.at("chart.png"), c);
    REQUIRE(c.img->width == 1200);
    REQUIRE(c.img->height == image_height(3));

    long dark = 0;
    for (int y = 0; y < c.img->height; y++)
        for (int x = 0; x < c.img->width; x++)
            dark += c.px(x, y)[0] < 128 && c.sat(x, y) < 20; // frame and text
    CHECK(dark > 2000);
    // Lines only inside the three plot areas, and each area has one.
    CHECK(c.coloured_outside(3) == 0);
    for (int p = 0; p < 3; p++)
        CHECK(c.coloured_in(p) > 1000);
    // The fourth slot of the grid is left empty.
    long drawn = 0;
    for (int y = 20 + 320; y < c.img->height; y++)
        for (int x = 620; x < 1200; x++)
            drawn += !c.white(x, y);
    CHECK(drawn == 0);

    // loss falls: its line is high (small row) on the left and low on the right of its panel.
    double left = c.line_row(0, 6, 30), right = c.line_row(0, kAreaW - 30, kAreaW - 6);
    INFO("loss rows: left " << left << ", right " << right);
    REQUIRE(left >= 0);
    REQUIRE(right >= 0);
    CHECK(left < 0.25 * kAreaH);
    CHECK(right > 0.75 * kAreaH);
    // val_psnr rises, and its rows logged every 10 steps are joined into one line across the whole panel.
    left = c.line_row(1, 10, 30);
    right = c.line_row(1, kAreaW - 30, kAreaW - 10);
    INFO("val_psnr rows: left " << left << ", right " << right);
    CHECK(left > 0.75 * kAreaH);
    CHECK(right < 0.25 * kAreaH);
    int gaps = 0;
    for (int x = step_column(100, 10, 30000) + 1; x < kAreaW - kInset - 1; x++)
        gaps += c.line_row(1, x, x + 1) < 0;
    CHECK(gaps == 0);
    // perplexity rises too.
    CHECK(c.line_row(2, 6, 30) > c.line_row(2, kAreaW - 30, kAreaW - 6) + 0.4 * kAreaH);

    // The noisy loss (3000 points, more than the panel's columns) is drawn light with a dark moving average
    // over it: per pixel column the light line spreads much wider than the average.
    double spread_light = 0, spread_dark = 0;
    int n_cols = 0;
    for (int x = area_left(0) + 20; x < area_left(0) + kAreaW - 20; x++) {
        int l0 = kAreaH, l1 = -1, d0 = kAreaH, d1 = -1;
        for (int y = area_top(0); y < area_top(0) + kAreaH; y++) {
            int r = y - area_top(0);
            if (c.light(x, y))
                l0 = std::min(l0, r), l1 = std::max(l1, r);
            if (c.strong(x, y))
                d0 = std::min(d0, r), d1 = std::max(d1, r);
        }
        if (l1 < 0 || d1 < 0)
            continue;
        spread_light += l1 - l0;
        spread_dark += d1 - d0;
        n_cols++;
    }
    INFO("columns " << n_cols << ", mean spread light " << spread_light / n_cols << ", dark " << spread_dark / n_cols);
    CHECK(n_cols > kAreaW / 2);
    CHECK(spread_light > 3 * spread_dark);
    // The average spans ~60 points (9 pixel columns), so it bends gently: its mean second difference from
    // column to column is far below the raw points' (~10 px of noise each).
    std::vector<double> rows;
    for (int x = 20; x < kAreaW - 20; x++)
        rows.push_back(c.line_row(0, x, x + 1));
    double bend = 0;
    for (size_t i = 1; i + 1 < rows.size(); i++)
        bend += std::fabs(rows[i + 1] - 2 * rows[i] + rows[i - 1]);
    bend /= rows.size() - 2;
    INFO("mean second difference of the average " << bend << " px");
    CHECK(bend < 1.0);
}

TEST_CASE("plot_log without named columns plots all but step, time_s and lr, in file order", "[plot]")
{
    TempDir d;
    spit(d.at("train.csv"), training_log());
    REQUIRE(vqz_plot_log(d.at("train.csv").c_str(), d.at("all.png").c_str(), nullptr, 0) == VQZ_OK);
    Chart c;
    read_chart(d.at("all.png"), c);
    REQUIRE(c.img->width == 1200);
    REQUIRE(c.img->height == image_height(4)); // loss, recon, val_psnr, perplexity_l0
    CHECK(c.coloured_outside(4) == 0);
    const bool falls[4] = {true, true, false, false};
    for (int p = 0; p < 4; p++) {
        double left = c.line_row(p, 10, 30), right = c.line_row(p, kAreaW - 30, kAreaW - 10);
        INFO("panel " << p << ": rows left " << left << ", right " << right);
        REQUIRE(left >= 0);
        REQUIRE(right >= 0);
        CHECK((falls[p] ? right - left : left - right) > 0.4 * kAreaH);
    }

    // Five columns to plot: a third row whose right slot stays empty.
    spit(d.at("five.csv"), "step,lr,a,b,c,d,e\n0,1,1,2,3,4,5\n1,1,2,3,4,5,6\n2,1,3,4,5,6,7\n");
    REQUIRE(vqz_plot_log(d.at("five.csv").c_str(), d.at("five.png").c_str(), nullptr, 0) == VQZ_OK);
    Chart f;
    read_chart(d.at("five.png"), f);
    REQUIRE(f.img->height == image_height(5));
    for (int p = 0; p < 5; p++)
        CHECK(f.coloured_in(p) > 100);
    CHECK(f.coloured_outside(5) == 0);
    long drawn = 0;
    for (int y = 20 + 2 * 320; y < f.img->height; y++)
        for (int x = 620; x < 1200; x++)
            drawn += !f.white(x, y);
    CHECK(drawn == 0);
}

TEST_CASE("plot_log puts losses spanning decades on a log axis and other columns on a linear one", "[plot]")
{
    // 1 down to 0.001 exponentially: a straight line on a log axis, a curve hugging the bottom on a linear one.
    std::ostringstream s;
    s << "step,loss,metric,recon_zero\n";
    for (int i = 0; i <= 400; i++) {
        double v = std::pow(10.0, -3.0 * i / 400);
        s << i << "," << v << "," << v << "," << (i == 400 ? 0.0 : v) << "\n";
    }
    TempDir d;
    spit(d.at("log.csv"), s.str());
    REQUIRE(vqz_plot_log(d.at("log.csv").c_str(), d.at("log.png").c_str(), nullptr, 0) == VQZ_OK);
    Chart c;
    read_chart(d.at("log.png"), c);
    REQUIRE(c.img->height == image_height(3));

    auto row_at = [&](int panel, double step) {
        int x = step_column(step, 0, 400);
        return c.line_row(panel, x - 1, x + 2);
    };
    for (int p = 0; p < 3; p++) {
        double r50 = row_at(p, 50), r200 = row_at(p, 200), r350 = row_at(p, 350);
        INFO("panel " << p << ": rows at steps 50, 200, 350: " << r50 << ", " << r200 << ", " << r350);
        REQUIRE(r50 >= 0);
        REQUIRE(r200 >= 0);
        REQUIRE(r350 >= 0);
        REQUIRE(r350 - r50 > 0.2 * kAreaH);
        double where = (r200 - r50) / (r350 - r50); // 0.5 on a straight line
        if (p == 0)
            CHECK(std::fabs(where - 0.5) < 0.02); // "loss": log axis
        else
            CHECK(where > 0.85); // "metric" (not a loss name) and a loss with a zero: linear
    }
}

TEST_CASE("plot_log draws empty panels for a log with no rows yet and skips an unfinished last line", "[plot]")
{
    TempDir d;
    spit(d.at("new.csv"), "step,time_s,lr,loss,recon\n");
    REQUIRE(vqz_plot_log(d.at("new.csv").c_str(), d.at("new.png").c_str(), nullptr, 0) == VQZ_OK);
    Chart c;
    read_chart(d.at("new.png"), c);
    REQUIRE(c.img->height == image_height(2));
    CHECK(c.coloured_in(0) == 0);
    CHECK(c.coloured_in(1) == 0);

    // A log being written: the last line has no newline yet and is cut short; it is left out.
    spit(d.at("growing.csv"), "step,loss\n1,0.5\n2,0.4\n3,0.3\n4,0.");
    REQUIRE(vqz_plot_log(d.at("growing.csv").c_str(), d.at("g.png").c_str(), nullptr, 0) == VQZ_OK);
    spit(d.at("growing.csv"), "step,loss\n1,0.5\n2,0.4\n3,0.3\n4");
    REQUIRE(vqz_plot_log(d.at("growing.csv").c_str(), d.at("g.png").c_str(), nullptr, 0) == VQZ_OK);
    // The same line with its newline is an error.
    spit(d.at("short.csv"), "step,loss\n1,0.5\n2,0.4\n3,0.3\n4\n");
    REQUIRE(vqz_plot_log(d.at("short.csv").c_str(), d.at("g.png").c_str(), nullptr, 0) == VQZ_ERR_FORMAT);
    CHECK(std::string(vqz_last_error()).find("line 5 has 1 cells, the header has 2") != std::string::npos);
}

TEST_CASE("plot_log refuses unknown columns and malformed logs and leaves an existing chart untouched", "[plot]")
{
    TempDir d;
    const std::string csv = d.at("train.csv"), png = d.at("chart.png");
    spit(csv, training_log());
    spit(png, "the previous chart");

    const char *unknown[] = {"loss", "psnr"};
    REQUIRE(vqz_plot_log(csv.c_str(), png.c_str(), unknown, 2) == VQZ_ERR_NOT_FOUND);
    std::string msg = vqz_last_error();
    INFO(msg);
    CHECK(msg.find("\"psnr\"") != std::string::npos);
    CHECK(msg.find("val_psnr") != std::string::npos); // the columns there are listed
    CHECK(slurp(png) == "the previous chart");

    struct Bad {
        const char *text;
        vqz_status status;
        const char *says;
    } bad[] = {
        {"step,loss,recon\n1,0.5,0.2\n2,0.4,0.1\n3,0.3,oops\n", VQZ_ERR_FORMAT, "line 4, column 3 (recon): \"oops\""},
        {"step,loss,recon\n1,0.5,0.2\n2,0.4,0.1x\n", VQZ_ERR_FORMAT, "line 3, column 3 (recon)"},
        {"step,loss,recon\n1,0.5,0.2\n2,0.4,0.1,7\n3,0.3,0.1\n", VQZ_ERR_FORMAT, "line 3 has 4 cells, the header has 3"},
        {"step,loss,recon\n1,0.5\n", VQZ_ERR_FORMAT, "line 2 has 2 cells"},
        {"step,loss,loss\n1,0.5,0.2\n", VQZ_ERR_FORMAT, "\"loss\" appears twice (columns 2 and 3)"},
        {"step,,recon\n1,0.5,0.2\n", VQZ_ERR_FORMAT, "line 1, column 2: empty column name"},
        {"", VQZ_ERR_FORMAT, "no header row"},
        {"step,loss\n1,0\x00""5\n", VQZ_ERR_FORMAT, "NUL byte"},
        {"iteration,loss\n1,0.5\n", VQZ_ERR_NOT_FOUND, "no column named \"step\""},
        {"step,time_s,lr\n1,0.5,0.1\n", VQZ_ERR_NOT_FOUND, "nothing to plot"},
    };
    for (const Bad &b : bad) {
        // The NUL case needs its length spelled out.
        std::string text = std::strcmp(b.says, "NUL byte") == 0 ? std::string("step,loss\n1,0\0005\n", 16) : b.text;
        spit(csv, text);
        vqz_status s = vqz_plot_log(csv.c_str(), png.c_str(), nullptr, 0);
        msg = vqz_last_error();
        INFO(b.says << " -> " << msg);
        CHECK(s == b.status);
        CHECK(msg.find(b.says) != std::string::npos);
        CHECK(msg.find(csv) != std::string::npos); // the message names the file
        CHECK(slurp(png) == "the previous chart");
    }
    CHECK(dir_names(d.path) == std::vector<std::string>({"chart.png", "train.csv"}));

    // Too many columns for a log.
    std::string wide = "step";
    for (int i = 0; i < 1000; i++)
        wide += ",c" + std::to_string(i);
    spit(csv, wide + "\n");
    CHECK(vqz_plot_log(csv.c_str(), png.c_str(), nullptr, 0) == VQZ_ERR_LIMIT);
    // More than 64 columns to plot.
    wide = "step";
    for (int i = 0; i < 65; i++)
        wide += ",c" + std::to_string(i);
    spit(csv, wide + "\n");
    CHECK(vqz_plot_log(csv.c_str(), png.c_str(), nullptr, 0) == VQZ_ERR_LIMIT);
    CHECK(slurp(png) == "the previous chart");

    CHECK(vqz_plot_log(d.at("missing.csv").c_str(), png.c_str(), nullptr, 0) == VQZ_ERR_IO);
    CHECK(vqz_plot_log(csv.c_str(), png.c_str(), nullptr, -1) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_plot_log(csv.c_str(), png.c_str(), nullptr, 2) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_plot_log(nullptr, png.c_str(), nullptr, 0) == VQZ_ERR_INVALID_ARG);
    // An output folder that does not exist: an I/O error from the PNG writer.
    spit(csv, "step,loss\n1,0.5\n");
    CHECK(vqz_plot_log(csv.c_str(), d.at("no/such/dir.png").c_str(), nullptr, 0) == VQZ_ERR_IO);
    CHECK(slurp(png) == "the previous chart");
}
