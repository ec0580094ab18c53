// ref_conv.h — naive loop references for the convolution and dense ops (tests only): forward in any
// precision (accumulating in double) and the analytic backward, used against the oneDNN/OpenBLAS ops.
#ifndef VQZ_TESTS_REF_CONV_H
#define VQZ_TESTS_REF_CONV_H

#include <cstdint>
#include <vector>

// A 2-D convolution problem; 1-D convolutions use ih = kh = 1, pt = pb = 0, sh = dh = 1.
// mode: 0 zero, 1 replicate, 2 reflect padding (the values of vqz_pad_mode).
struct RefConv {
    int n, ci, ih, iw, co, kh, kw;
    int sh, sw, dh, dw;
    int pt, pb, pl, pr;
    int mode;
    int oh() const { return (ih + pt + pb - dh * (kh - 1) - 1) / sh + 1; }
    int ow() const { return (iw + pl + pr - dw * (kw - 1) - 1) / sw + 1; }
    size_t x_size() const { return (size_t)n * ci * ih * iw; }
    size_t w_size() const { return (size_t)co * ci * kh * kw; }
    size_t y_size() const { return (size_t)n * co * oh() * ow(); }
};

// Index read for padded coordinate i on an axis of length len, or -1 for a zero pad.
inline int ref_pad_index(int i, int len, int mode)
{
    if (i >= 0 && i < len)
        return i;
    if (mode == 0)
        return -1;
    if (mode == 1)
        return i < 0 ? 0 : len - 1;
    return i < 0 ? -i : 2 * (len - 1) - i;
}

// y[n,co,oy,ox] = b[co] + sum x[n,ci,pad(oy sh + ky dh - pt), pad(ox sw + kx dw - pl)] w[co,ci,ky,kx]
template <class T>
std::vector<T> ref_conv_fwd(const RefConv &g, const std::vector<T> &x, const std::vector<T> &w, const T *b)
{
    int oh = g.oh(), ow = g.ow();
    std::vector<T> y(g.y_size());
    for (int n = 0; n < g.n; n++)
        for (int o = 0; o < g.co; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = b ? (double)b[o] : 0.0;
                    for (int c = 0; c < g.ci; c++)
                        for (int ky = 0; ky < g.kh; ky++) {
                            int iy = ref_pad_index(oy * g.sh + ky * g.dh - g.pt, g.ih, g.mode);
                            if (iy < 0)
                                continue;
                            for (int kx = 0; kx < g.kw; kx++) {
                                int ix = ref_pad_index(ox * g.sw + kx * g.dw - g.pl, g.iw, g.mode);
                                if (ix < 0)
                                    continue;
                                acc += (double)x[(((size_t)n * g.ci + c) * g.ih + iy) * g.iw + ix] *
                                       (double)w[(((size_t)o * g.ci + c) * g.kh + ky) * g.kw + kx];
                            }
                        }
                    y[(((size_t)n * g.co + o) * oh + oy) * ow + ox] = (T)acc;
                }
    return y;
}

// The adjoint of ref_conv_fwd: dx (overwritten), dw and db (overwritten), all in double.
inline void ref_conv_bwd(const RefConv &g, const std::vector<double> &x, const std::vector<double> &w,
                         const std::vector<double> &dy, std::vector<double> &dx, std::vector<double> &dw,
                         std::vector<double> &db)
{
    int oh = g.oh(), ow = g.ow();
    dx.assign(g.x_size(), 0.0);
    dw.assign(g.w_size(), 0.0);
    db.assign(g.co, 0.0);
    for (int n = 0; n < g.n; n++)
        for (int o = 0; o < g.co; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double d = dy[(((size_t)n * g.co + o) * oh + oy) * ow + ox];
                    db[o] += d;
                    for (int c = 0; c < g.ci; c++)
                        for (int ky = 0; ky < g.kh; ky++) {
                            int iy = ref_pad_index(oy * g.sh + ky * g.dh - g.pt, g.ih, g.mode);
                            if (iy < 0)
                                continue;
                            for (int kx = 0; kx < g.kw; kx++) {
                                int ix = ref_pad_index(ox * g.sw + kx * g.dw - g.pl, g.iw, g.mode);
                                if (ix < 0)
                                    continue;
                                size_t xi = (((size_t)n * g.ci + c) * g.ih + iy) * g.iw + ix;
                                size_t wi = (((size_t)o * g.ci + c) * g.kh + ky) * g.kw + kx;
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                            }
                        }
                }
}

// Transposed 1-D convolution (PyTorch conv_transpose1d with its padding as crops): x[n,ci,t],
// w[ci,co,k] (IOK); the full output position t s + k is written to y at t s + k - crop_left.
struct RefConvTr {
    int n, ci, t, co, k, s, cl, cr;
    int to() const { return (t - 1) * s + k - cl - cr; }
    size_t x_size() const { return (size_t)n * ci * t; }
    size_t w_size() const { return (size_t)ci * co * k; }
    size_t y_size() const { return (size_t)n * co * to(); }
};

template <class T>
std::vector<T> ref_convtr_fwd(const RefConvTr &g, const std::vector<T> &x, const std::vector<T> &w, const T *b)
{
    int to = g.to();
    std::vector<double> acc(g.y_size(), 0.0);
    for (int n = 0; n < g.n; n++)
        for (int o = 0; o < g.co; o++)
            for (int p = 0; p < to; p++)
                acc[((size_t)n * g.co + o) * to + p] = b ? (double)b[o] : 0.0;
    for (int n = 0; n < g.n; n++)
        for (int c = 0; c < g.ci; c++)
            for (int i = 0; i < g.t; i++)
                for (int o = 0; o < g.co; o++)
                    for (int kk = 0; kk < g.k; kk++) {
                        int p = i * g.s + kk - g.cl;
                        if (p < 0 || p >= to)
                            continue;
                        acc[((size_t)n * g.co + o) * to + p] += (double)x[((size_t)n * g.ci + c) * g.t + i] *
                                                                (double)w[((size_t)c * g.co + o) * g.k + kk];
                    }
    return std::vector<T>(acc.begin(), acc.end());
}

inline void ref_convtr_bwd(const RefConvTr &g, const std::vector<double> &x, const std::vector<double> &w,
                           const std::vector<double> &dy, std::vector<double> &dx, std::vector<double> &dw,
                           std::vector<double> &db)
{
    int to = g.to();
    dx.assign(g.x_size(), 0.0);
    dw.assign(g.w_size(), 0.0);
    db.assign(g.co, 0.0);
    for (int n = 0; n < g.n; n++)
        for (int o = 0; o < g.co; o++)
            for (int p = 0; p < to; p++)
                db[o] += dy[((size_t)n * g.co + o) * to + p];
    for (int n = 0; n < g.n; n++)
        for (int c = 0; c < g.ci; c++)
            for (int i = 0; i < g.t; i++)
                for (int o = 0; o < g.co; o++)
                    for (int kk = 0; kk < g.k; kk++) {
                        int p = i * g.s + kk - g.cl;
                        if (p < 0 || p >= to)
                            continue;
                        double d = dy[((size_t)n * g.co + o) * to + p];
                        size_t xi = ((size_t)n * g.ci + c) * g.t + i, wi = ((size_t)c * g.co + o) * g.k + kk;
                        dx[xi] += d * w[wi];
                        dw[wi] += d * x[xi];
                    }
}

// Dense layer y[m,n] = sum_k x[m,k] w[n,k] + b[n].
template <class T>
std::vector<T> ref_linear_fwd(int m, int n, int k, const std::vector<T> &x, const std::vector<T> &w, const T *b)
{
    std::vector<T> y((size_t)m * n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = b ? (double)b[j] : 0.0;
            for (int l = 0; l < k; l++)
                acc += (double)x[(size_t)i * k + l] * (double)w[(size_t)j * k + l];
            y[(size_t)i * n + j] = (T)acc;
        }
    return y;
}

#endif
