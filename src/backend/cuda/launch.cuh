// Programmatic dependent launch (compute capability 9.0 and newer). A kernel launched with
// launch_early() may be scheduled while the kernel before it in the stream is still finishing, which
// hides most of the launch gap between the two; such a kernel must call wait_for_previous_kernel()
// before it touches global memory. Captured into a CUDA graph the pair becomes a programmatic edge.
// On older GPUs the attribute has no effect and the wait compiles to nothing. VITRT_CUDA_PDL=0 turns
// it off (plain launches), for comparisons.
#pragma once

#include <cstdlib>
#include <cstring>
#include <utility>

#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {

__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

inline bool early_launch_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("VITRT_CUDA_PDL");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

template <typename... Params, typename... Args>
void launch_early(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t s,
                  Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = early_launch_enabled() ? 1 : 0;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace vitrt::cuda
