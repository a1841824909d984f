#include "backend/cuda/tuning_fill.cuh"

#include <algorithm>

#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ std::uint32_t mix(std::uint32_t x) {  // a 32-bit integer hash
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Two 16-bit words from one hash: each keeps its sign (bit 15) and its low 10 bits, with bits 14-10 set
// to 01111. As fp16 that is exponent 15 (+-[1, 2)); as bf16, whose exponent is bits 14-7, 120 to 127
// (+-[2^-7, 2)). An fp32 is a bf16-like high word over a low word of mantissa bits.
__device__ __forceinline__ std::uint32_t words(std::uint32_t h) { return (h & 0x83ff83ffu) | 0x3c003c00u; }

__global__ void __launch_bounds__(kThreads) fill_kernel(std::uint32_t* p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * kThreads)
    p[i] = words(mix(static_cast<std::uint32_t>(i) ^ mix(seed ^ static_cast<std::uint32_t>(i >> 32))));
}

__global__ void fill_tail(unsigned char* p, std::size_t n, std::uint32_t seed) {
  const std::uint32_t w = words(mix(seed ^ 0x9e3779b9u));
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(w >> (8 * (i % 4)));
}

}  // namespace

void fill_tuning_data(void* p, std::size_t bytes, std::uint32_t seed, cudaStream_t s) {
  VITRT_CHECK(reinterpret_cast<std::uintptr_t>(p) % 4 == 0,
              "fill_tuning_data: the buffer must be 4-byte aligned");
  const std::size_t n = bytes / 4;
  if (n > 0) {
    const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + kThreads - 1) / kThreads, 4096));
    fill_kernel<<<blocks, kThreads, 0, s>>>(static_cast<std::uint32_t*>(p), n, seed);
    CUDA_CHECK_LAUNCH();
  }
  if (bytes % 4) {
    fill_tail<<<1, 1, 0, s>>>(static_cast<unsigned char*>(p) + 4 * n, bytes % 4, seed);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace vitrt::cuda
