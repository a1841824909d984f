#include "backend/cuda/kernel_attrs.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>
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

bool dependent_launch() {
  static const bool allowed = [] {
    const char* env = std::getenv("VITRT_PDL");
    return !(env && std::string_view(env) == "0");
  }();
  if (!allowed) return false;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<int, bool> capable;  // device -> compute capability >= 9.0
  const std::lock_guard lock(mutex);
  const auto it = capable.find(device);
  if (it != capable.end()) return it->second;
  int major = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return capable[device] = major >= 9;
}

}  // namespace vitrt::cuda
