// Programmatic dependent launch (compute capability 9.0 onwards). A kernel launched with
// launch_dependent() may be scheduled while the kernel before it in the stream is still finishing (its
// last blocks draining, its writes being flushed), instead of after: the launch latency between two
// kernels overlaps the first one's tail, inside CUDA graphs too. Such a kernel must call
// wait_prior_grid() before it reads or writes global memory; that waits until every kernel before it
// in the stream has completed and its writes are visible. The wait is a no-op in a kernel launched the
// ordinary way, and on devices before 9.0.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"

namespace vitrt::cuda {

__device__ __forceinline__ void wait_prior_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, s>>>(args...), as a dependent launch where dependent_launch(group)
// allows it.
template <typename... Params, typename... Args>
void launch_dependent(Pdl group, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t s,
                      Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = dependent_launch(group) ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace vitrt::cuda
