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
  const float z = fabsf(x) * 0.70710678118654752f;
  const float t = __fdividef(1.0f, fmaf(0.3275911f, z, 1.0f));
  float q = fmaf(t, 1.061405429f, -1.453152027f);
  q = fmaf(t, q, 1.421413741f);
  q = fmaf(t, q, -0.284496736f);
  q = fmaf(t, q, 0.254829592f);
  q = q * t * __expf(-z * z);
  return x >= 0.0f ? fmaf(-0.5f * x, q, x) : 0.5f * x * q;
}

}  // namespace vitrt::cuda
