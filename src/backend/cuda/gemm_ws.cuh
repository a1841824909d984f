// Our own 16-bit GEMM for large row counts on Hopper (wgmma + TMA, warp-specialized and persistent;
// gemm_ws_kernel.cuh), with the bias and optionally timm's exact GELU in its epilogue:
// D[M, N] = act(A[M, K] W[N, K]^T + bias), A, W, bias and D all fp16 or all bf16.
// cuBLASLt's GELU epilogue is the tanh form of GELU (docs/verification.md), so an exact GELU otherwise
// costs a pass over fc1's output; this kernel computes it in the epilogue (gelu_erf_ex2). Without an
// activation its main loop is level with cuBLASLt's best algorithm on vit_base's qkv and fc1 (0.97-1.03,
// session 27). The tuner times it against cuBLASLt per shape (linear.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace vitrt::cuda {

struct GemmWsParams {
  const void* a = nullptr;  // [rows, in], row stride lda
  std::int64_t lda = 0;
  const void* w = nullptr;     // [out, in], contiguous (a Linear layer's weight)
  const void* bias = nullptr;  // [out], required
  void* d = nullptr;           // [rows, out], row stride ldd
  std::int64_t ldd = 0;
  std::int64_t rows = 0;
  int in = 0, out = 0;
  DT dt = DT::bf16;              // of a and w, and of bias and d unless accumulate: f16 or bf16
  bool accumulate = false;       // D += A W^T + bias with D and bias in fp32 (the residual variants)
  Epilogue act = Epilogue::none;  // none or gelu_erf
  bool gelu_tanh = false;         // with gelu_erf: the tanh form instead, as cuBLASLt's epilogue (kGemmWsPingPong64)
  // Copy W's first stages before waiting for the kernel before (a dependent launch): they then overlap its
  // tail where it lets its dependents start early (our kernels do), and wait behind the rest where not.
  bool w_first = false;
  int sm_count = 0;               // the grid: one persistent block per SM (0: asks the device)
  int variant = 0;                // one of gemm_ws_variants(); 0 = none applies
};

// Variants (both persistent, one block of 384 threads per SM, epilogue stored by TMA from one 16 KB
// buffer per consumer warpgroup):
// kGemmWsCoop = both consumer warpgroups on one 256 x 128 tile, 4 stages of 64 K-columns;
// kGemmWsPingPong = each consumer warpgroup on its own 128 x 128 tile, in turns (one's epilogue under
// the other's main loop), 6 stages.
// kGemmWsPingPong64 = ping-pong on 64 x 128 tiles, 8 stages, for few rows (more tiles to spread over the
// SMs; session 45); the only variant that also takes the tanh form of GELU (GemmWsParams::gelu_tanh).
constexpr int kGemmWsCoop = 1, kGemmWsPingPong = 2, kGemmWsPingPong64 = 3;
// The residual variants (accumulate, no activation): ping-pong 128 x 128 tiles, 5 stages, two epilogue
// buffers per consumer, the result added to D by TMA adds, with K cut in `parts` runs of k-tiles
// (split-K: variant kGemmWsResidualSplit + parts, parts 1 to kGemmWsMaxParts and at most in / 64). Each
// part adds into D on its own, in no fixed order, so with more than one part D's fp32 sums may differ in
// their last bits from run to run. For few rows, where the output has fewer 128 x 128 tiles than the GPU
// has SMs (docs/performance.md, session 44).
// kGemmWsResidualSplit64 + parts: the same on 64 x 128 tiles (6 stages).
constexpr int kGemmWsResidualSplit = 10, kGemmWsResidualSplit64 = 30, kGemmWsMaxParts = 16;

// The variants that take this GEMM on a device of compute capability `arch` (major * 10 + minor);
// empty when none does (not an sm_90a build or device, not 16-bit, K not a multiple of 64, N not a
// multiple of 128, rows or strides not 16-byte aligned, no bias, or an activation other than GELU, or
// with accumulate any activation, or GELU's tanh form on a variant other than kGemmWsPingPong64).
std::vector<int> gemm_ws_variants(const GemmWsParams& p, int arch);
bool gemm_ws_takes(const GemmWsParams& p, int arch, int variant);  // no allocation
std::string gemm_ws_variant_name(int variant);
// The work items a launch of `variant` has: output tiles times the parts of K.
std::int64_t gemm_ws_work_items(const GemmWsParams& p, int variant);
// Launches p.variant (checked against gemm_ws_variants).
void gemm_ws(const GemmWsParams& p, int arch, cudaStream_t s);

}  // namespace vitrt::cuda
