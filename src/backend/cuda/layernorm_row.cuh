// The LayerNorm of one row that a warp holds in registers, shared by the LayerNorm kernel
// (layernorm.cu) and the token assembly that folds in the first block's norm1 (patch_embed.cu), so
// both write the same bits.
#pragma once

#include <type_traits>

#include "backend/cuda/dtype.cuh"

namespace vitrt::cuda {

// v[i] holds elements 4 * (lane + 32 * i) .. + 3 of the row (dim == 128 * V). Two-pass fp32
// statistics, then y = (v - mean) / sqrt(var + eps) * gamma + beta, stored 4 elements per lane and step.
// tf32_out (fp32 y only): y is stored rounded to TF32, the input of a TF32 GEMM.
// gamma, beta: the lane's elements of the weights, loaded as v's (load_row_params), so that a kernel can
// load them before it waits on the kernel before it.
template <typename T, int V>
__device__ __forceinline__ void normalize_row(const float4 (&v)[V], int dim, float eps, const float4 (&g)[V],
                                              const float4 (&b)[V], T* y, bool tf32_out = false) {
  const int lane = threadIdx.x % 32;
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < V; ++i) sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
  const float mean = warp_sum(sum) / dim;
  float sq = 0.0f;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
    sq += (a * a + b * b) + (c * c + d * d);
  }
  const float inv = rsqrtf(warp_sum(sq) / dim + eps);
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int k = lane + 32 * i;
    float4 o = make_float4((v[i].x - mean) * inv * g[i].x + b[i].x, (v[i].y - mean) * inv * g[i].y + b[i].y,
                           (v[i].z - mean) * inv * g[i].z + b[i].z, (v[i].w - mean) * inv * g[i].w + b[i].w);
    if constexpr (std::is_same_v<T, float>) {
      if (tf32_out) o = make_float4(round_tf32(o.x), round_tf32(o.y), round_tf32(o.z), round_tf32(o.w));
    }
    store4<T>(y + 4 * k, o.x, o.y, o.z, o.w);
  }
}

// This lane's float4s of a row of weights (gamma or beta), in normalize_row's layout.
template <int V>
__device__ __forceinline__ void load_row_params(const float* w, float4 (&out)[V]) {
  const int lane = threadIdx.x % 32;
  const float4* w4 = reinterpret_cast<const float4*>(w);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = w4[lane + 32 * i];
}

template <typename T, int V>
__device__ __forceinline__ void normalize_row(const float4 (&v)[V], int dim, float eps, const float* gamma,
                                              const float* beta, T* y, bool tf32_out = false) {
  float4 g[V], b[V];
  load_row_params(gamma, g);
  load_row_params(beta, b);
  normalize_row<T, V>(v, dim, eps, g, b, y, tf32_out);
}

}  // namespace vitrt::cuda
