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

}  // namespace vitrt::cuda
