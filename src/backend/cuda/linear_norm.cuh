// Fused linear + residual + LayerNorm on Hopper, for the GEMMs whose output is the residual stream
// (attention proj, fc2) when the next op is a LayerNorm (norm2, the next block's norm1):
//   x[r] += a[r] W^T + bias;   h[r] = LayerNorm(x[r]) * gamma + beta
// in one kernel instead of a cuBLASLt GEMM and a LayerNorm kernel. A thread-block cluster spans the
// whole output row (8 blocks of n / 8 columns, wgmma m64nBN), each block's row statistics go to the
// others through distributed shared memory; variant S > 1 also splits K over S blocks of the cluster.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace vitrt::cuda {

struct LinearNormParams {
  const void* a = nullptr;  // [rows, k] in dt, row stride lda
  std::int64_t lda = 0;
  const void* w = nullptr;  // [n, k] in dt (PyTorch's Linear layout)
  const float* bias = nullptr;  // [n]
  float* x = nullptr;           // [rows, n] fp32 residual stream, row stride ldx, updated in place
  std::int64_t ldx = 0;
  void* h = nullptr;  // [rows, n] in dt, row stride ldh: LayerNorm of the updated x
  std::int64_t ldh = 0;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 1e-6f;
  std::int64_t rows = 0;
  int k = 0, n = 0;
  DT dt = DT::bf16;
  int arch = 0;     // compute capability * 10
  int variant = 1;  // K split over this many blocks of each cluster (1 or 2)
};

// Whether this build and device can run the fused kernel for p (sm_90a, 16-bit, n of 768 or 1024,
// k a multiple of 64, aligned rows).
bool linear_norm_supports(const LinearNormParams& p);
// The variants (K splits) that can run for p on this device; empty when unsupported.
std::vector<int> linear_norm_variants(const LinearNormParams& p);
void linear_norm(const LinearNormParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
