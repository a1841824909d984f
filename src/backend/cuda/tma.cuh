// Device helpers for copies by the tensor memory accelerator (TMA, sm_90) into shared memory and the
// mbarriers they complete on (attention_wgmma_ws.cu, gemm_small.cu, gemm_tf32.cu). The tensor maps come
// from tensor_map.h on the host.
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

namespace vitrt::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
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
// Until the barrier's phase with the given parity has completed. The loop is C++ around one try_wait;
// the tf32 GEMM keeps its own wait (mbar_wait_branch), whose loop is a branch inside the PTX: with that
// form here the TMA attention kernel took 127 registers instead of 133 and ran 3-4% slower at 577
// tokens (run262), and the GEMM's code changes with this one (not measured), so each keeps the form it
// was measured with.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  unsigned done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
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
// The box of the 2-D tensor map at (col, row) into shared memory at dst, completing on bar.
__device__ __forceinline__ void tma_load_2d(unsigned dst, const CUtensorMap* map, int col, int row, unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(col), "r"(row), "r"(bar)
      : "memory");
}
// The same 2-D box into shared memory at dst in every block of the cluster named by `mask` (bit r: the
// block of cluster rank r), completing its bytes on the mbarrier at bar in each of them.
__device__ __forceinline__ void tma_load_2d_multicast(unsigned dst, const CUtensorMap* map, int col, int row,
                                                      unsigned bar, std::uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(col), "r"(row), "r"(bar), "h"(mask)
      : "memory");
}
// The box of the 2-D tensor map at (col, row) from shared memory at src (dense, row-major) into global
// memory (elements past the tensor's bounds are not written); add: added to the global values there (in
// the map's type, each element once) instead of stored. One bulk group per call (bulk_commit).
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, unsigned src, int col, int row) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(
                   reinterpret_cast<std::uint64_t>(map)),
               "r"(src), "r"(col), "r"(row)
               : "memory");
}
__device__ __forceinline__ void tma_add_2d(const CUtensorMap* map, unsigned src, int col, int row) {
  asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(
                   reinterpret_cast<std::uint64_t>(map)),
               "r"(src), "r"(col), "r"(row)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Waits until this thread's committed bulk copies have read their shared memory (the source may then be
// reused or freed; the global writes complete with the grid).
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
// Orders this thread's generic-proxy accesses to shared memory before later async-proxy ones (a TMA
// copy into the same bytes, a wgmma reading them).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#endif

}  // namespace vitrt::cuda
