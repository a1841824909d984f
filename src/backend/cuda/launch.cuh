// Programmatic dependent launch (compute capability 9.0 onwards). A kernel launched with
// launch_dependent() may be scheduled while the kernel before it in the stream is still finishing (its
// last blocks draining, its writes being flushed), instead of after: the launch latency between two
// kernels overlaps the first one's tail, inside CUDA graphs too; sooner still when the kernel before it
// calls allow_next_grid(). Such a kernel must call wait_prior_grid() before it reads or writes global
// memory that earlier kernels write; that waits until every kernel before it in the stream has
// completed and its writes are visible. The wait is a no-op in a kernel launched the ordinary way, and
// on devices before 9.0.
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

// Lets the kernel after this one in the stream launch now, if it is a dependent launch: its blocks
// may then run up to their own wait_prior_grid() (copying what does not depend on this kernel, such as
// weights) while this one finishes. Takes effect once every block of this grid has called it or
// exited. A no-op before compute capability 9.0.
__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, s>>>(args...) in thread-block clusters of `cluster` blocks (1 x 1 x 1:
// none), as a dependent launch where dependent_launch(group) allows it.
template <typename... Params, typename... Args>
void launch_dependent_cluster(Pdl group, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
                              cudaStream_t s, dim3 cluster, Args&&... args) {
  cudaLaunchAttribute attrs[2]{};
  unsigned n = 0;
  if (dependent_launch(group)) {
    attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster.x * cluster.y * cluster.z > 1) {
    attrs[n].id = cudaLaunchAttributeClusterDimension;
    attrs[n].val.clusterDim.x = cluster.x;
    attrs[n].val.clusterDim.y = cluster.y;
    attrs[n++].val.clusterDim.z = cluster.z;
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = attrs;
  cfg.numAttrs = n;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// kernel<<<grid, block, smem, s>>>(args...), as a dependent launch where dependent_launch(group)
// allows it.
template <typename... Params, typename... Args>
void launch_dependent(Pdl group, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t s,
                      Args&&... args) {
  launch_dependent_cluster(group, kernel, grid, block, smem, s, dim3(1, 1, 1), std::forward<Args>(args)...);
}

}  // namespace vitrt::cuda
