// Device helpers for Hopper's warpgroup MMA (wgmma, sm_90a), shared by the wgmma attention kernel and
// the fused linear + LayerNorm kernel. VITRT_WGMMA_DEVICE is defined only in the sm_90a device pass;
// elsewhere the kernels that use these helpers compile to empty bodies.
#pragma once

#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VITRT_WGMMA_DEVICE 1
#endif

namespace vitrt::cuda {

#ifdef VITRT_WGMMA_DEVICE
// Shared-memory matrix descriptor for a 128-byte-swizzled operand: start address, leading byte offset
// (unused by these layouts, 1 by convention), stride byte offset 1024 (the next 8 rows), swizzle mode 1.
// A K-major tile of rows of 64 16-bit elements: the 16-wide k slice ks starts 32 * ks bytes further.
__device__ __forceinline__ std::uint64_t sw128_desc(unsigned addr) {
  return static_cast<std::uint64_t>((addr & 0x3FFFF) >> 4) | (std::uint64_t{1} << 16) |
         (std::uint64_t{1024 >> 4} << 32) | (std::uint64_t{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

// Keeps the compiler from moving reads or writes of accumulator registers across wgmma issue / wait.
template <int R>
__device__ __forceinline__ void fence_regs(float (&a)[R][4]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(a[i][e])::"memory");
}

// Materializes descriptor registers at this point of the program (an empty asm that "defines" them).
template <int N>
__device__ __forceinline__ void pin(std::uint64_t (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+l"(d[i]));
}
template <int M, int N>
__device__ __forceinline__ void pin(std::uint64_t (&d)[M][N]) {
#pragma unroll
  for (int i = 0; i < M; ++i) pin(d[i]);
}
#endif  // VITRT_WGMMA_DEVICE

}  // namespace vitrt::cuda
