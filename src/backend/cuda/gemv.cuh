// GEMMs of a few rows: D[r, n] (+)= act(sum_k X[r, k] W[n, k] + bias[n]) for up to kGemvMaxRows rows,
// with fp32 FMAs. X and W are fp32, fp16 or bf16 (both the same type); D is fp32 or X's type.
//
// Why: at these row counts the work is reading W once, but cuBLASLt's kernels for them take several times
// what the bytes take: 4.9 us at batch 1 and 10.6 us at batch 8 for vit_base's fp32 head (3 MB; ncu,
// session 34), and 5-8 us each for the 16-bit class-token proj, fc1 and fc2 of the last block at batch 1,
// fc2 with a split-K reduction kernel after it. Here one warp per output column reads its row of W with
// 16-byte loads (the first columns of it before griddepcontrol.wait, so that a dependent launch overlaps
// them with the kernel before), the block copies X into shared memory, and each warp sums its column
// across its lanes.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

constexpr int kGemvMaxRows = 16;
constexpr std::size_t kGemvMaxSmem = 96 * 1024;  // X is staged in shared memory: rows * in elements at most

struct GemvParams {
  const void* a = nullptr;  // X: [rows, in], row stride lda, in_dt
  std::int64_t lda = 0;
  const void* w = nullptr;     // [out, in], contiguous, in_dt
  const void* bias = nullptr;  // [out] in out_dt, or null
  void* d = nullptr;           // [rows, out], row stride ldd, out_dt
  std::int64_t ldd = 0;
  std::int64_t rows = 0;
  int in = 0, out = 0;
  DT in_dt = DT::f32;             // f32, f16 or bf16
  DT out_dt = DT::f32;            // f32 or in_dt
  Epilogue act = Epilogue::none;  // act(acc + bias)
  bool accumulate = false;        // d += act(acc + bias) (a residual), else d = act(acc + bias)
};

// Whether gemv takes these operands: 1 to kGemvMaxRows rows, in and out >= 1, the types above, X within
// kGemvMaxSmem. No allocation.
bool gemv_takes(const GemvParams& p);
// Launches it (a dependent launch where the gemm group allows it, kernel_attrs.h); checks gemv_takes.
void gemv(const GemvParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
