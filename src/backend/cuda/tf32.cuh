// Splitting fp32 values into two TF32 parts (3xTF32: big * big + big * small + small * big keeps
// fp32-level accuracy on TF32 tensor cores), on the device and over whole arrays.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace vitrt::cuda {

#ifdef __CUDACC__
// x rounded to TF32, to nearest with ties away from zero (cvt.rna.tf32.f32, done on the bit pattern:
// ptxas expands the cvt to 5 instructions).
__device__ __forceinline__ std::uint32_t tf32_rna(float x) { return (__float_as_uint(x) + 0x1000u) & 0xffffe000u; }

// x = big + small, both TF32. big = tf32_rna(x); x - big is exact in fp32, and small is it truncated to
// TF32 (it has at most 12 significant bits, so that drops at most one). Not-a-number inputs stay
// not-a-number in small even where big wraps to zero; infinities give big = inf and a not-a-number
// small, as the cvt did.
__device__ __forceinline__ void split(float x, std::uint32_t& big, std::uint32_t& small) {
  big = tf32_rna(x);
  small = __float_as_uint(x - __uint_as_float(big)) & 0xffffe000u;
}
#endif

// big[i], small[i] = split(x[i]) for n values (as floats holding TF32 bit patterns).
void tf32_split(const float* x, float* big, float* small, std::int64_t n, cudaStream_t s);

}  // namespace vitrt::cuda
