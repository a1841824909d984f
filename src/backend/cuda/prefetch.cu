// L2 prefetch of weight ranges: bulk prefetch requests (compute capability 9.0 onwards) or one
// prefetch per 128-byte line before that.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/prefetch.cuh"

namespace vitrt::cuda {
namespace {

constexpr std::size_t kChunk = 16u << 10;  // bytes per request and thread
constexpr int kThreads = 64;               // one block per MiB of weights

__global__ void prefetch_l2_kernel(PrefetchRanges r) {
  std::size_t chunk = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  for (int i = 0; i < r.count; ++i) {
    const std::size_t chunks = (r.range[i].bytes + kChunk - 1) / kChunk;
    if (chunk >= chunks) {
      chunk -= chunks;
      continue;
    }
    const char* p = static_cast<const char*>(r.range[i].ptr) + chunk * kChunk;
    const std::size_t left = r.range[i].bytes - chunk * kChunk;
    const auto bytes = static_cast<unsigned>((left < kChunk ? left : kChunk) & ~std::size_t{15});
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (bytes) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
#else
    for (unsigned o = 0; o < bytes; o += 128) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + o));
#endif
    return;
  }
}

}  // namespace

void prefetch_l2(const PrefetchRanges& r, cudaStream_t s) {
  std::size_t chunks = 0;
  for (int i = 0; i < r.count; ++i) chunks += (r.range[i].bytes + kChunk - 1) / kChunk;
  if (chunks == 0) return;
  const auto blocks = static_cast<unsigned>((chunks + kThreads - 1) / kThreads);
  prefetch_l2_kernel<<<blocks, kThreads, 0, s>>>(r);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
