// Separable resampling coefficients with PIL's antialiased filters (also what PyTorch's
// interpolate(..., antialias=True) computes): bilinear (support 1) and bicubic (a = -0.5, support 2),
// widened by the downscale factor.
#pragma once

#include <vector>

#include "vitrt/config.h"

namespace vitrt {

struct ResampleCoeffs {
  int ksize = 0;               // taps per output (padded with zeros)
  std::vector<int> start;      // first input index per output
  std::vector<int> count;      // taps used per output
  std::vector<double> weight;  // [out][ksize], normalized to sum 1
};

ResampleCoeffs resample_coeffs(int in_size, int out_size, Interpolation filter);

// Resamples [channels, in_h, in_w] float planes to [channels, out_h, out_w], width pass first.
void resample_planes(const float* src, int channels, int in_h, int in_w, float* dst, int out_h, int out_w,
                     Interpolation filter);

}  // namespace vitrt
