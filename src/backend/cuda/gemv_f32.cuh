// fp32 GEMMs of a few rows (the classifier heads, and the class-token GEMMs of fp32 sessions' last
// block): D[r, n] (+)= sum_k X[r, k] W[n, k] + bias[n] for up to kGemvMaxRows rows, in fp32 FMAs.
//
// Why: at these row counts the work is reading W once (3 MB for vit_base's head), but cuBLASLt's fp32
// kernels for them took 4.9 us at batch 1 and 10.6 us at batch 8 (ncu, session 34), several times what
// the bytes take. One warp per output column reads its row of W with 16-byte loads (the first 1,024
// columns of it before griddepcontrol.wait, so that a dependent launch overlaps them with the kernel
// before), the block copies X into shared memory, and each warp sums its column across its lanes.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace vitrt::cuda {

constexpr int kGemvMaxRows = 16;
constexpr std::size_t kGemvMaxSmem = 96 * 1024;  // X is staged in shared memory: rows * in * 4 bytes at most

struct GemvF32Params {
  const float* x = nullptr;  // [rows, in], row stride ldx
  std::int64_t ldx = 0;
  const float* w = nullptr;     // [out, in], contiguous
  const float* bias = nullptr;  // [out] or null
  float* d = nullptr;           // [rows, out], row stride ldd
  std::int64_t ldd = 0;
  std::int64_t rows = 0;
  int in = 0, out = 0;
  bool accumulate = false;  // d += x w^T + bias (a residual)
};

// Whether gemv_f32 takes these operands: 1 to kGemvMaxRows rows, in and out >= 1, X within
// kGemvMaxSmem. No allocation.
bool gemv_f32_takes(const GemvF32Params& p);
// Launches it (a dependent launch where the gemm group allows it, kernel_attrs.h); checks gemv_f32_takes.
void gemv_f32(const GemvF32Params& p, cudaStream_t s);

}  // namespace vitrt::cuda
