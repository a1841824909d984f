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
template <typename T, int V>
__device__ __forceinline__ void normalize_row(const float4 (&v)[V], int dim, float eps, const float* gamma,
                                              const float* beta, T* y, bool tf32_out = false) {
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
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float4* b4 = reinterpret_cast<const float4*>(beta);
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int k = lane + 32 * i;
    const float4 g = g4[k], b = b4[k];
    float4 o = make_float4((v[i].x - mean) * inv * g.x + b.x, (v[i].y - mean) * inv * g.y + b.y,
                           (v[i].z - mean) * inv * g.z + b.z, (v[i].w - mean) * inv * g.w + b.w);
    if constexpr (std::is_same_v<T, float>) {
      if (tf32_out) o = make_float4(round_tf32(o.x), round_tf32(o.y), round_tf32(o.z), round_tf32(o.w));
    }
    store4<T>(y + 4 * k, o.x, o.y, o.z, o.w);
  }
}

}  // namespace vitrt::cuda
