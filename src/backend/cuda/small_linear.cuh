// Full-fp32 linear layer for a handful of rows: the classifier head (batch rows, 768-1280 inputs, 1000
// outputs), which stays in fp32 in every session. cuBLASLt's fp32 kernels take 13-15 us for these
// shapes on an H200 (the tuner's times for the vit_base head at batches 8 and 64); reading the 3 MB of
// weights takes under 1 us.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vitrt::cuda {

// y[r, :] (+)= x[r, :] @ w^T + bias for r < rows; w is [out, in] row-major; strides in elements.
struct SmallLinearParams {
  const float* x;
  std::int64_t x_ld;
  const float* w;
  const float* bias;
  float* y;
  std::int64_t y_ld;
  int rows, in, out;
  bool accumulate;
};

// Whether small_linear takes the shape: up to 16 rows and 12,288 inputs.
bool small_linear_supports(std::int64_t rows, std::int64_t in);
void small_linear(const SmallLinearParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
