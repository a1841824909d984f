// Check macros for CUDA runtime and cuBLAS(Lt) calls: throw vitrt::Error with the call and message.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/check.h"

#define CUDA_CHECK(expr)                                                                             \
  do {                                                                                               \
    const cudaError_t vitrt_err_ = (expr);                                                           \
    if (vitrt_err_ != cudaSuccess) [[unlikely]]                                                      \
      VITRT_FAIL("CUDA error ", cudaGetErrorName(vitrt_err_), " (", cudaGetErrorString(vitrt_err_), \
                 ") in ", #expr);                                                                    \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                                      \
  do {                                                                                                          \
    const cublasStatus_t vitrt_st_ = (expr);                                                                    \
    if (vitrt_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                                        \
      VITRT_FAIL("cuBLAS error ", static_cast<int>(vitrt_st_), " (", ::vitrt::cuda::cublas_status_name(vitrt_st_), \
                 ") in ", #expr);                                                                               \
  } while (0)

namespace vitrt::cuda {
// Whether a device pointer is a multiple of `bytes` (what vectorized and TMA accesses need).
inline bool aligned(const void* ptr, std::uintptr_t bytes) { return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0; }

// cuBLASLt alone (without libcublas) has no status-to-string function.
inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown status";
  }
}
}  // namespace vitrt::cuda

// After a kernel launch: launch-configuration errors surface here, execution errors at the next sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
