// LayerNorm kernel launcher.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// dst = LayerNorm(src) * w + b per row, fp32 statistics; src is fp32, dst in dst_dt; src may equal dst.
struct LayerNormParams {
  const float* src;
  std::int64_t src_ld;
  void* dst;
  std::int64_t dst_ld;
  DT dst_dt;
  const float* weight;
  const float* bias;
  std::int64_t rows;
  int dim;
  float eps;
};
void layernorm(const LayerNormParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
