// ref_eltwise.h — naive double-precision references of the elementwise/layout ops and the MSE/L1 losses,
// written from their definitions in nn/ops.h (plain loops, no shortcuts), plus a central finite-difference
// helper. Used only by the tests.
#ifndef VQZ_TESTS_REF_ELTWISE_H
#define VQZ_TESTS_REF_ELTWISE_H

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace ref {

using vec = std::vector<double>;

inline vec to_d(const std::vector<float> &v) { return vec(v.begin(), v.end()); }
inline std::vector<float> to_f(const vec &v) { return std::vector<float>(v.begin(), v.end()); }

inline vec silu(const vec &x)
{
    vec y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = x[i] / (1.0 + std::exp(-x[i]));
    return y;
}

inline vec elu(const vec &x, double alpha)
{
    vec y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = x[i] > 0 ? x[i] : alpha * std::expm1(x[i]);
    return y;
}

inline vec leaky_relu(const vec &x, double slope)
{
    vec y(x.size());
    for (size_t i = 0; i < x.size(); i++)
        y[i] = x[i] > 0 ? x[i] : slope * x[i];
    return y;
}

// x is [N, C, L]; y = x + sin^2(a_c x) / (a_c + 1e-9). With round_arg the product a_c x is rounded to
// float first, as the float implementation (and PyTorch) forms it.
inline vec snake(const vec &x, const vec &alpha, int64_t N, int64_t C, int64_t L, bool round_arg = false)
{
    vec y(x.size());
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t l = 0; l < L; l++) {
                size_t i = (size_t)((n * C + c) * L + l);
                double z = alpha[c] * x[i];
                if (round_arg)
                    z = (double)((float)alpha[c] * (float)x[i]);
                double s = std::sin(z);
                y[i] = x[i] + s * s / (alpha[c] + 1e-9);
            }
    return y;
}

inline vec upsample2x(const vec &x, int64_t NC, int64_t H, int64_t W)
{
    vec y((size_t)(NC * 4 * H * W));
    for (int64_t p = 0; p < NC; p++)
        for (int64_t oh = 0; oh < 2 * H; oh++)
            for (int64_t ow = 0; ow < 2 * W; ow++)
                y[(size_t)((p * 2 * H + oh) * 2 * W + ow)] = x[(size_t)((p * H + oh / 2) * W + ow / 2)];
    return y;
}

// [N, C r^2, H, W] -> [N, C, H r, W r] as torch.nn.functional.pixel_shuffle
inline vec pixel_shuffle(const vec &x, int64_t N, int64_t C, int64_t H, int64_t W, int r)
{
    vec y(x.size());
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int i = 0; i < r; i++)
                        for (int j = 0; j < r; j++) {
                            int64_t ci = c * r * r + i * r + j;
                            y[(size_t)(((n * C + c) * H * r + h * r + i) * W * r + w * r + j)] =
                                x[(size_t)(((n * C * r * r + ci) * H + h) * W + w)];
                        }
    return y;
}

inline vec concat(const vec &a, const vec &b, int64_t N, int64_t Ca, int64_t Cb, int64_t L)
{
    vec y;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t i = 0; i < Ca * L; i++)
            y.push_back(a[(size_t)(n * Ca * L + i)]);
        for (int64_t i = 0; i < Cb * L; i++)
            y.push_back(b[(size_t)(n * Cb * L + i)]);
    }
    return y;
}

inline vec slice(const vec &x, int64_t N, int64_t C, int64_t L, int64_t c0, int64_t Cy)
{
    vec y;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = c0; c < c0 + Cy; c++)
            for (int64_t l = 0; l < L; l++)
                y.push_back(x[(size_t)((n * C + c) * L + l)]);
    return y;
}

// v is [O, K]; w[o, k] = g[o] v[o, k] / ||v[o, :]||
inline vec weight_norm(const vec &v, const vec &g, int64_t O, int64_t K)
{
    vec w(v.size());
    for (int64_t o = 0; o < O; o++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++)
            s += v[(size_t)(o * K + k)] * v[(size_t)(o * K + k)];
        for (int64_t k = 0; k < K; k++)
            w[(size_t)(o * K + k)] = g[(size_t)o] * v[(size_t)(o * K + k)] / std::sqrt(s);
    }
    return w;
}

inline double mse(const vec &x, const vec &y)
{
    double s = 0;
    for (size_t i = 0; i < x.size(); i++)
        s += (x[i] - y[i]) * (x[i] - y[i]);
    return s / (double)x.size();
}

inline double l1(const vec &x, const vec &y)
{
    double s = 0;
    for (size_t i = 0; i < x.size(); i++)
        s += std::fabs(x[i] - y[i]);
    return s / (double)x.size();
}

inline double dot(const vec &a, const vec &b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); i++)
        s += a[i] * b[i];
    return s;
}

// Central differences of the scalar f at x, step h, for the listed indices (all when idx is empty).
inline vec fd_grad(const std::function<double(const vec &)> &f, vec x, double h,
                   const std::vector<size_t> &idx = {})
{
    vec g(x.size(), 0.0);
    auto one = [&](size_t i) {
        double x0 = x[i];
        x[i] = x0 + h;
        double fp = f(x);
        x[i] = x0 - h;
        double fm = f(x);
        x[i] = x0;
        g[i] = (fp - fm) / (2 * h);
    };
    if (idx.empty())
        for (size_t i = 0; i < x.size(); i++)
            one(i);
    else
        for (size_t i : idx)
            one(i);
    return g;
}

} // namespace ref

#endif
