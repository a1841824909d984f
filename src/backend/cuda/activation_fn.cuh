// The element-wise activations on fp32 values, shared by the activation pass and our GEMMs' epilogues:
// erff's exact GELU and QuickGELU, two cheaper exact GELUs for epilogues (and the 16-bit pass), and
// the tanh form of GELU for the 16-bit GEMM's epilogue.
#pragma once

#include <cuda_runtime.h>

#include "backend/backend.h"  // Epilogue

namespace vitrt::cuda {

// Exact GELU, x * Phi(x) with the erf form (timm's nn.GELU default).
__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
// QuickGELU, x * sigmoid(1.702 x) (CLIP-style models).
__device__ __forceinline__ float quick_gelu(float v) { return v / (1.0f + __expf(-1.702f * v)); }
// The activation an epilogue names, chosen at run time (none: v itself); erff's exact GELU.
__device__ __forceinline__ float activate(Epilogue act, float v) {
  return act == Epilogue::gelu_erf ? gelu_erf(v) : act == Epilogue::quick_gelu ? quick_gelu(v) : v;
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

// Exact GELU, x Phi(x), with one special-function op, for the 16-bit GEMM's epilogue
// (gemm_ws_kernel.cuh). With a = min(|x|, 6), log2(erfc(a / sqrt 2) / 2) is a degree-7 polynomial
// (least squares on [0, 6]; float32 Horner error 1.3e-5, so erfc to 9e-6 relative), and
// GELU(x) = max(x, 0) - a erfc(a / sqrt 2) / 2 on both sides of 0. Against the exact function: 5e-7
// absolute everywhere, 9e-6 relative for |x| <= 6 (below -6 the output is ~-6e-9 instead of smaller
// still). gelu_erf_epilogue is 1.5e-7 absolute but up to 1.7e-3 relative in the negative tail, and
// spends a reciprocal and an exp2 where this spends one exp2 (fc1's epilogue at vit_base b256: 431-438
// against 404-414 us, run340-341).
__device__ __forceinline__ float gelu_erf_ex2(float x) {
  const float a = fminf(fabsf(x), 6.0f);
  float p = fmaf(a, -1.94483573e-06f, 6.38587080e-05f);
  p = fmaf(a, p, -9.48855362e-04f);
  p = fmaf(a, p, 8.58230516e-03f);
  p = fmaf(a, p, -5.41181564e-02f);
  p = fmaf(a, p, -4.58297640e-01f);
  p = fmaf(a, p, -1.15132451e+00f);
  p = fmaf(a, p, -0.99998695f);
  float e;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e) : "f"(p));
  return fmaf(-a, e, fmaxf(x, 0.0f));
}

// The tanh form of GELU, 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), which cuBLASLt's GELU epilogue
// computes (docs/verification.md, session 27), as x / (1 + exp(-2 z)) with z the tanh's argument: one exp2
// and one reciprocal, relative error ~1e-6 against the formula. For our 16-bit GEMM's epilogue where it
// stands in for cuBLASLt's. Below x ~ -9 the result is 0 (the exponent is clamped to 2^126).
__device__ __forceinline__ float gelu_tanh(float x) {
  float e, r;
  // -2 z log2(e) = -2 sqrt(2 / pi) log2(e) x (1 + 0.044715 x^2)
  const float t = fminf(-2.30220819f * x * fmaf(0.044715f * x, x, 1.0f), 126.0f);
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e) : "f"(t));
  asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(1.0f + e));
  return x * r;
}

}  // namespace vitrt::cuda
