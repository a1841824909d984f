#include "core/resample.h"

#include <cmath>

namespace vitrt {
namespace {

double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

}  // namespace

ResampleCoeffs resample_coeffs(int in_size, int out_size, Interpolation filter) {
  const double base_support = filter == Interpolation::bicubic ? 2.0 : 1.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = base_support * filterscale;
  ResampleCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.start.resize(out_size);
  c.count.resize(out_size);
  c.weight.assign(static_cast<size_t>(out_size) * c.ksize, 0.0);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    // Truncation toward zero, as C's (int) cast in PIL.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* w = &c.weight[static_cast<size_t>(o) * c.ksize];
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double t = (x + xmin - center + 0.5) / filterscale;
      w[x] = filter == Interpolation::bicubic ? bicubic(t) : bilinear(t);
      total += w[x];
    }
    if (total != 0.0)
      for (int x = 0; x < xmax; ++x) w[x] /= total;
    c.start[o] = xmin;
    c.count[o] = xmax;
  }
  return c;
}

void resample_planes(const float* src, int channels, int in_h, int in_w, float* dst, int out_h, int out_w,
                     Interpolation filter) {
  const auto ch = resample_coeffs(in_w, out_w, filter);
  const auto cv = resample_coeffs(in_h, out_h, filter);
  std::vector<double> tmp(static_cast<size_t>(in_h) * out_w);
  for (int c = 0; c < channels; ++c) {
    const float* s = src + static_cast<size_t>(c) * in_h * in_w;
    for (int y = 0; y < in_h; ++y) {
      for (int x = 0; x < out_w; ++x) {
        const double* w = &ch.weight[static_cast<size_t>(x) * ch.ksize];
        const float* row = s + static_cast<size_t>(y) * in_w + ch.start[x];
        double acc = 0.0;
        for (int t = 0; t < ch.count[x]; ++t) acc += w[t] * row[t];
        tmp[static_cast<size_t>(y) * out_w + x] = acc;
      }
    }
    float* d = dst + static_cast<size_t>(c) * out_h * out_w;
    for (int y = 0; y < out_h; ++y) {
      const double* w = &cv.weight[static_cast<size_t>(y) * cv.ksize];
      for (int x = 0; x < out_w; ++x) {
        double acc = 0.0;
        for (int t = 0; t < cv.count[y]; ++t) acc += w[t] * tmp[static_cast<size_t>(cv.start[y] + t) * out_w + x];
        d[static_cast<size_t>(y) * out_w + x] = static_cast<float>(acc);
      }
    }
  }
}

}  // namespace vitrt
