// Our own TF32 GEMM for fp32 activations on Hopper (wgmma, sm_90a), with the bias and an activation
// (exact erf GELU or QuickGELU) in its epilogue: D[M, N] = act(A[M, K] W[N, K]^T + bias).
// cuBLASLt's GELU epilogue is the tanh form, so an fp32-output GEMM with timm's exact GELU otherwise
// needs a separate pass over its output (reading and writing M x N fp32 values: at batch 64 of
// vit_base, 0.31 GB per block). The tuner times this kernel against cuBLASLt + that pass (linear.cpp).
// The tensor cores read the fp32 operands from shared memory and use their TF32 bits (truncation), so
// the CUDA backend hands this kernel a weight copy rounded to the nearest TF32 and, from the LayerNorm
// before it, an input rounded the same way (cuda_backend.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace vitrt::cuda {

struct GemmTf32Params {
  const float* a = nullptr;  // [rows, in], row stride lda
  std::int64_t lda = 0;
  const float* w = nullptr;  // [out, in], contiguous (a Linear layer's weight)
  const float* bias = nullptr;  // [out], required
  float* d = nullptr;           // [rows, out], row stride ldd
  std::int64_t ldd = 0;
  std::int64_t rows = 0;
  int in = 0, out = 0;
  Epilogue act = Epilogue::gelu_erf;  // gelu_erf or quick_gelu
  int variant = 0;                    // one of gemm_tf32_variants(); 0 = none applies
};

// Variants (tile of BM rows x BN columns, S shared-memory stages of 32 K-columns, blocks per SM; with
// several blocks per SM one block's epilogue overlaps another's main loop):
// kGemmTf32N256 = 128 x 256, 4 stages, 1 block; kGemmTf32N128x2 = 128 x 128, 3 stages, 2 blocks;
// kGemmTf32M64N256x2 = 64 x 256, 2 stages, 2 blocks; kGemmTf32M64N128x3 = 64 x 128, 3 stages, 3 blocks.
constexpr int kGemmTf32N256 = 1, kGemmTf32N128x2 = 3, kGemmTf32M64N256x2 = 4, kGemmTf32M64N128x3 = 5;

// The variants that take this GEMM on a device of compute capability `arch` (major * 10 + minor);
// empty when none does (not sm_90a, K not a multiple of 32, N not a multiple of 128, misaligned rows,
// or an activation other than GELU / QuickGELU).
std::vector<int> gemm_tf32_variants(const GemmTf32Params& p, int arch);
bool gemm_tf32_takes(const GemmTf32Params& p, int arch, int variant);  // no allocation
std::string gemm_tf32_variant_name(int variant);
// The variant an untuned session takes (0: cuBLASLt + the activation pass). Measured on the H200 at
// vit_base's fc1 (768 -> 3072): 128 x 128 with 2 blocks per SM beat cuBLASLt + the pass from 6,304 rows
// (4.5 waves of tiles) up, by 4-6%, and lost at 3,152 rows; smaller GEMMs keep cuBLASLt.
int gemm_tf32_default_variant(const GemmTf32Params& p, int arch, int sm_count);
// Launches p.variant (checked against gemm_tf32_variants).
void gemm_tf32(const GemmTf32Params& p, int arch, cudaStream_t s);

}  // namespace vitrt::cuda
