// Loads and stores between fp32 registers and the activation storage types, and the dispatch from
// a DT to its storage type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/backend.h"

namespace vitrt::cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// x rounded to TF32 (to nearest, ties away from zero; NaN and infinities kept): the value a TF32
// tensor-core product uses exactly, where the hardware would otherwise drop the low 13 bits.
// attention_tf32.cu's tf32_rna rounds on the bit pattern instead (fewer instructions in its inner
// loop; a NaN can come out as zero there, which its split() makes up for): not a substitute here.
__device__ __forceinline__ float round_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Four consecutive elements (element 4k onwards) as a float4: one 16-byte load of fp32, one 8-byte load
// of 16-bit values.
template <typename T>
__device__ __forceinline__ float4 load4(const T* src, int k) {
  const uint2 raw = reinterpret_cast<const uint2*>(src)[k];
  const T* v = reinterpret_cast<const T*>(&raw);
  return make_float4(to_f32(v[0]), to_f32(v[1]), to_f32(v[2]), to_f32(v[3]));
}
template <>
__device__ __forceinline__ float4 load4<float>(const float* src, int k) {
  return reinterpret_cast<const float4*>(src)[k];
}

template <typename T>
__device__ __forceinline__ void store4(T* dst, float a, float b, float c, float d);
template <>
__device__ __forceinline__ void store4<float>(float* dst, float a, float b, float c, float d) {
  *reinterpret_cast<float4*>(dst) = make_float4(a, b, c, d);
}
template <typename T>
__device__ __forceinline__ void store4(T* dst, float a, float b, float c, float d) {
  T v[4] = {from_f32<T>(a), from_f32<T>(b), from_f32<T>(c), from_f32<T>(d)};
  *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(v);
}

// Host side: calls f(T{}) with T the device storage type of `dt` (float, __half or __nv_bfloat16).
template <typename F>
void with_storage_type(DT dt, F&& f) {
  switch (dt) {
    case DT::f32: f(float{}); break;
    case DT::f16: f(__half{}); break;
    case DT::bf16: f(__nv_bfloat16{}); break;
  }
}

}  // namespace vitrt::cuda
