#include "backend/cuda/kernel_attrs.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "core/env.h"

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

int resident_blocks(const void* kernel, int threads, int smem_bytes) {
  int device = 0, sms = 0, per_sm = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem_bytes));
  VITRT_CHECK(per_sm >= 1, "a persistent kernel of ", threads, " threads and ", smem_bytes,
              " bytes of shared memory per block does not fit an SM of device ", device);
  return sms * per_sm;
}

namespace {
thread_local bool thread_allows = true;
constexpr unsigned bit(Pdl group) { return static_cast<unsigned>(group); }
}  // namespace

void allow_dependent_launch(bool on) { thread_allows = on; }

bool dependent_launch(Pdl group) {
  if (!thread_allows) return false;
  static const unsigned allowed = [] {
    const char* env = std::getenv("VITRT_PDL");
    // Unset: norm and gemm; attention was measured slower (docs/performance.md, session 13).
    if (!env) return bit(Pdl::norm) | bit(Pdl::gemm);
    unsigned mask = 0;
    for (const std::string_view name : comma_items(env))
      mask |= name == "norm"        ? bit(Pdl::norm)
              : name == "attention" ? bit(Pdl::attention)
              : name == "gemm"      ? bit(Pdl::gemm)
                                    : 0u;
    return mask;
  }();
  if (!(allowed & bit(group))) return false;
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
