// Device helpers for copies by the tensor memory accelerator (TMA, sm_90) into shared memory and the
// mbarriers they complete on, shared by the kernels that copy with TMA (attention_wgmma_ws.cu,
// gemm_tf32.cu). The tensor maps come from tensor_map.h on the host.
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

namespace vitrt::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// After the mbarriers of a block are initialized, before any thread or copy uses them.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives and announces `bytes` still to come from asynchronous copies that complete on this barrier.
__device__ __forceinline__ void mbar_arrive_expect(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Until the barrier's phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// The box of the 2-D tensor map at (column x, row y) into shared memory at dst, completing its bytes on bar.
__device__ __forceinline__ void tma_load_2d(unsigned dst, const CUtensorMap* map, int x, int y, unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(x), "r"(y), "r"(bar)
      : "memory");
}
// The box of the 3-D tensor map at (col, row, image) into shared memory at dst (laid out as the map's
// swizzle says; elements past the tensor's bounds are zeros), completing its bytes on bar.
__device__ __forceinline__ void tma_load_box(unsigned dst, const CUtensorMap* map, int col, int row, int image,
                                             unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(col), "r"(row), "r"(image), "r"(bar)
      : "memory");
}
// Orders this thread's generic-proxy accesses to shared memory before later async-proxy ones (a TMA
// copy into the same bytes, a wgmma reading them).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#endif

}  // namespace vitrt::cuda
