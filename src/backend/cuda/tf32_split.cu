// tf32_split over arrays: 4 values per thread where the three arrays are 16-byte aligned.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/tf32.cuh"

namespace vitrt::cuda {
namespace {

template <bool kVec4>
__global__ void tf32_split_kernel(const float* x, float* big, float* small, std::int64_t n) {
  const std::int64_t units = kVec4 ? n / 4 : n;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < units;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (kVec4) {
      const float4 v = reinterpret_cast<const float4*>(x)[i];
      uint4 b, s;
      split(v.x, b.x, s.x);
      split(v.y, b.y, s.y);
      split(v.z, b.z, s.z);
      split(v.w, b.w, s.w);
      reinterpret_cast<uint4*>(big)[i] = b;
      reinterpret_cast<uint4*>(small)[i] = s;
    } else {
      std::uint32_t b, s;
      split(x[i], b, s);
      big[i] = __uint_as_float(b);
      small[i] = __uint_as_float(s);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void tf32_split(const float* x, float* big, float* small, std::int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  const bool vec4 = n % 4 == 0 && aligned16(x) && aligned16(big) && aligned16(small);
  const std::int64_t units = vec4 ? n / 4 : n;
  const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>((units + 255) / 256, 8192));
  if (vec4) tf32_split_kernel<true><<<blocks, 256, 0, s>>>(x, big, small, n);
  else tf32_split_kernel<false><<<blocks, 256, 0, s>>>(x, big, small, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
