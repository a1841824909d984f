#include "backend/cuda/tensor_map.h"

#include <cuda_runtime.h>

#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found));
    VITRT_CHECK(found == cudaDriverEntryPointSuccess && f != nullptr,
                "the CUDA driver does not provide cuTensorMapEncodeTiled (needed by the TMA kernels: the tf32 GEMM, "
                "long-sequence attention)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace vitrt::cuda
