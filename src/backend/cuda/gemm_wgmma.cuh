// Our own GEMM on Hopper (wgmma, sm_90a) with the epilogue fused: D[M, N] = act(A[M, K] W[N, K]^T + bias),
// or D += A W^T + bias (the residual add). Two input kinds:
// - fp32 operands on TF32 tensor cores, fp32 output, exact GELU or QuickGELU (tf32 sessions' fc1).
//   cuBLASLt's GELU epilogue is the tanh form, so such a GEMM otherwise needs a separate pass over its
//   output (at batch 64 of vit_base, 0.31 GB per block). The tensor cores read the fp32 operands from
//   shared memory and use their TF32 bits (truncation), so the CUDA backend hands this kernel a weight
//   copy rounded to the nearest TF32 and, from the LayerNorm before it, an input rounded the same way
//   (cuda_backend.cpp).
// - bf16 / fp16 operands: output in the input type with the bias and no activation, exact GELU or
//   QuickGELU; or the residual add into an fp32 (or same-type) D. These compete with cuBLASLt's
//   BIAS / GELU_BIAS epilogues and beta = 1 in the tuner; untuned sessions keep cuBLASLt.
// linear.cpp times the variants against cuBLASLt (plus the activation pass where it needs one).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace vitrt::cuda {

struct GemmWgmmaParams {
  const void* a = nullptr;  // [rows, in] in in_dt, row stride lda
  std::int64_t lda = 0;
  const void* w = nullptr;     // [out, in] in in_dt, contiguous (a Linear layer's weight)
  const void* bias = nullptr;  // [out] in out_dt, required
  void* d = nullptr;           // [rows, out] in out_dt, row stride ldd
  std::int64_t ldd = 0;
  std::int64_t rows = 0;
  int in = 0, out = 0;
  DT in_dt = DT::f32;   // f32 (computed in TF32), bf16 or f16
  DT out_dt = DT::f32;  // f32 for TF32; for 16-bit inputs the input type, or f32 with accumulate
  Epilogue act = Epilogue::gelu_erf;
  bool accumulate = false;  // D += A W^T + bias (no activation)
  int sm_count = 0;         // > 0: persistent blocks, one wave of them; 0: a block per output tile
  int variant = 0;          // one of gemm_wgmma_variants(); 0 = none applies
};

// Variants (tile of BM rows x BN columns, S shared-memory stages of 128 bytes of K per row, blocks per
// SM; with several blocks per SM one block's epilogue overlaps another's main loop):
// kGemmN256 = 128 x 256, 4 stages, 1 block; kGemmN128x2 = 128 x 128, 3 stages, 2 blocks;
// kGemmM64N256x2 = 64 x 256, 2 stages, 2 blocks; kGemmM64N128x3 = 64 x 128, 3 stages, 3 blocks.
// (The numbers are stored in tuning caches: keep them.)
constexpr int kGemmN256 = 1, kGemmN128x2 = 3, kGemmM64N256x2 = 4, kGemmM64N128x3 = 5;

// The variants that take this GEMM on a device of compute capability `arch` (major * 10 + minor);
// empty when none does (not sm_90a; K not a multiple of 128 bytes of the input type; N not a multiple
// of 128; misaligned rows; no bias; a type / epilogue combination other than those above).
std::vector<int> gemm_wgmma_variants(const GemmWgmmaParams& p, int arch);
bool gemm_wgmma_takes(const GemmWgmmaParams& p, int arch, int variant);  // no allocation
std::string gemm_wgmma_variant_name(const GemmWgmmaParams& p, int variant);
// The variant an untuned session takes (0: cuBLASLt). TF32 only, measured on the H200 at vit_base's
// fc1 (768 -> 3072): 128 x 128 with 2 blocks per SM beat cuBLASLt + the GELU pass from 6,304 rows (4.5
// waves of tiles) up, by 4-6%, and lost at 3,152 rows; smaller GEMMs keep cuBLASLt. 16-bit GEMMs take
// ours only where the tuner measured it faster.
int gemm_wgmma_default_variant(const GemmWgmmaParams& p, int arch, int sm_count);
// Launches p.variant (checked against gemm_wgmma_variants).
void gemm_wgmma(const GemmWgmmaParams& p, int arch, cudaStream_t s);

}  // namespace vitrt::cuda
