// Weights asked into the L2 cache ahead of the GEMMs that read them, by a long kernel of ours that runs
// before those GEMMs (at batch 1 the attention kernel: its blocks are busy computing while DRAM idles).
// Session 15 had the LayerNorms issue such requests, and each of those short kernels then ran until its
// requests were served (+18% at vit_large b1); an attention kernel runs long enough to cover them.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace vitrt::cuda {

constexpr int kMaxL2Ranges = 6;

// Device memory ranges (16-byte aligned; a tail of less than 16 bytes is left out). Plain data, so that
// kernels take it by value inside their parameters.
struct L2Prefetch {
  const void* ptr[kMaxL2Ranges] = {};
  std::size_t bytes[kMaxL2Ranges] = {};
  int count = 0;
};

// The bulk requests block `block` of `blocks` makes: f(range, offset, bytes) for each, at most 64 KiB,
// 16-byte aligned, together covering its share of the ranges laid end to end (the shares split them
// evenly, in 16-byte units; a range's tail of less than 16 bytes is left out).
template <typename F>
__host__ __device__ void l2_requests(const L2Prefetch& r, std::size_t block, std::size_t blocks, F&& f) {
  constexpr std::size_t kChunk = 64u << 10;
  std::size_t units = 0;
  for (int i = 0; i < r.count; ++i) units += r.bytes[i] / 16;
  const std::size_t per = (units + blocks - 1) / blocks;
  std::size_t begin = block * per, end = begin + per < units ? begin + per : units;  // in 16-byte units
  std::size_t base = 0;
  for (int i = 0; i < r.count && begin < end; ++i) {
    const std::size_t n = r.bytes[i] / 16, lo = begin - base, hi = end - base < n ? end - base : n;
    for (std::size_t o = lo * 16; o < hi * 16; o += kChunk) f(i, o, hi * 16 - o < kChunk ? hi * 16 - o : kChunk);
    base += n;
    if (begin < base) begin = base;
  }
}

#ifdef __CUDACC__
// Called by every thread of a grid; thread 0 of each block issues its block's requests (l2_requests). A
// hint: it reads nothing a kernel writes and orders nothing, so a dependent launch may call it before
// wait_prior_grid(). A no-op before compute capability 9.0.
__device__ __forceinline__ void prefetch_l2(const L2Prefetch& r) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (r.count == 0 || threadIdx.x + threadIdx.y + threadIdx.z != 0) return;
  const std::size_t blocks = static_cast<std::size_t>(gridDim.x) * gridDim.y * gridDim.z;
  const std::size_t block =
      blockIdx.x + static_cast<std::size_t>(gridDim.x) * (blockIdx.y + static_cast<std::size_t>(gridDim.y) * blockIdx.z);
  l2_requests(r, block, blocks, [&](int i, std::size_t offset, std::size_t bytes) {
    const char* p = static_cast<const char*>(r.ptr[i]) + offset;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(static_cast<unsigned>(bytes)) : "memory");
  });
#else
  (void)r;
#endif
}
#endif

}  // namespace vitrt::cuda
