// LayerNorm kernel launcher.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// dst = LayerNorm(src) * w + b per row, fp32 statistics; src in src_dt, dst in dst_dt; src may equal dst.
struct LayerNormParams {
  const void* src;
  std::int64_t src_ld;
  void* dst;
  std::int64_t dst_ld;
  DT dst_dt;
  const float* weight;
  const float* bias;
  std::int64_t rows;
  int dim;
  float eps;
  DT src_dt = DT::f32;
  bool tf32_out = false;  // fp32 dst only: stored rounded to TF32 (the input of a TF32 GEMM)
};
void layernorm(const LayerNormParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
