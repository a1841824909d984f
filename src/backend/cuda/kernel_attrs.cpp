#include "backend/cuda/kernel_attrs.h"

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {

void allow_dynamic_smem(const void* kernel, int bytes) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, int> allowed;  // (kernel, device) -> bytes allowed
  const std::lock_guard lock(mutex);
  int& have = allowed[{kernel, device}];
  if (have >= bytes) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  have = bytes;
}

}  // namespace vitrt::cuda
