// Weights into the L2 cache ahead of the GEMMs that read them. At small batches a GEMM reads each
// weight once, from DRAM, with few blocks in flight: most of its bytes are weight bytes, and their
// latency is on the critical path. One of our kernels that runs earlier (a LayerNorm) issues the
// requests: no extra kernel or graph node.
#pragma once

#include <cstddef>

namespace vitrt::cuda {

struct PrefetchRange {
  const void* ptr = nullptr;
  std::size_t bytes = 0;
};

constexpr int kMaxPrefetchRanges = 4;

struct PrefetchRanges {
  PrefetchRange range[kMaxPrefetchRanges];
  int count = 0;
  bool lines = false;  // one prefetch per 128-byte line instead of bulk requests
};

#ifdef __CUDACC__
// Called by every thread of a grid: asks the L2 to fetch every range (device memory, 16-byte aligned;
// a tail of less than 16 bytes may be left out), 16 KiB per request and thread. A hint: it orders
// nothing and returns once the requests are issued; the data need not depend on earlier kernels, so
// a dependent launch may call it before wait_prior_grid().
__device__ __forceinline__ void prefetch_l2(const PrefetchRanges& r) {
  constexpr std::size_t kChunk = 16u << 10;
  const std::size_t threads = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  std::size_t total = 0;
  for (int i = 0; i < r.count; ++i) total += (r.range[i].bytes + kChunk - 1) / kChunk;
  for (std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < total; c += threads) {
    int i = 0;
    std::size_t k = c;  // chunk k of range i
    while ((r.range[i].bytes + kChunk - 1) / kChunk <= k) k -= (r.range[i++].bytes + kChunk - 1) / kChunk;
    const char* p = static_cast<const char*>(r.range[i].ptr) + k * kChunk;
    const std::size_t left = r.range[i].bytes - k * kChunk;
    const auto bytes = static_cast<unsigned>((left < kChunk ? left : kChunk) & ~std::size_t{15});
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (r.lines) {
      for (unsigned o = 0; o < bytes; o += 128) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + o));
    } else if (bytes) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
#else
    for (unsigned o = 0; o < bytes; o += 128) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + o));
#endif
  }
}
#endif

}  // namespace vitrt::cuda
