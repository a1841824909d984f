// The element-wise activations on fp32 values, shared by the activation kernel and the GEMM epilogues
// of our own kernels, so a fused epilogue computes exactly what the separate pass does.
#pragma once

#include <cuda_runtime.h>

namespace vitrt::cuda {

// Exact GELU, x * Phi(x) with the erf form (timm's nn.GELU default).
__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
// QuickGELU, x * sigmoid(1.702 x) (CLIP-style models).
__device__ __forceinline__ float quick_gelu(float v) { return v / (1.0f + __expf(-1.702f * v)); }

template <bool kQuick>
__device__ __forceinline__ float activate(float v) {
  return kQuick ? quick_gelu(v) : gelu_erf(v);
}

// GELU for TF32 GEMM epilogues, where erff's two branches (both taken in most warps) cost about as
// many instructions as the GEMM's main loop issues: x * Phi(x) with erfc from Abramowitz & Stegun
// 7.1.26 (absolute error below 1.5e-7, far under a TF32 product's ~1e-3), branch-free. With
// q = erfc(|x| / sqrt 2): GELU(x) = x - x q / 2 for x >= 0 and x q / 2 below (no cancellation in the
// negative tail, where 1 + erf(x / sqrt 2) loses digits).
__device__ __forceinline__ float gelu_erf_epilogue(float x) {
  float t, e;
  // t = 1 / (1 + p |x| / sqrt 2), e = exp(-x^2 / 2) = 2^(-x^2 log2(e) / 2), on the special-function unit.
  asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(t) : "f"(fmaf(0.231641900f, fabsf(x), 1.0f)));
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e) : "f"(x * x * -0.721347520f));
  float q = fmaf(t, 1.061405429f, -1.453152027f);
  q = fmaf(t, q, 1.421413741f);
  q = fmaf(t, q, -0.284496736f);
  q = fmaf(t, q, 0.254829592f);
  const float h = 0.5f * x * (q * t * e);  // x erfc(|x| / sqrt 2) / 2
  return x >= 0.0f ? x - h : h;
}

}  // namespace vitrt::cuda
