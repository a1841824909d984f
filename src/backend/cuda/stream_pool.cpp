#include "backend/cuda/stream_pool.h"

#include <map>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {
namespace {

struct Pool {
  std::mutex mutex;
  std::map<int, std::vector<cudaStream_t>> idle;  // device -> released streams (never destroyed)
};
Pool& pool() {
  static Pool* p = new Pool;  // outlives static destructors that may still release streams
  return *p;
}

}  // namespace

cudaStream_t acquire_stream() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  {
    Pool& p = pool();
    const std::lock_guard lock(p.mutex);
    std::vector<cudaStream_t>& idle = p.idle[device];
    if (!idle.empty()) {
      cudaStream_t s = idle.back();
      idle.pop_back();
      return s;
    }
  }
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void release_stream(cudaStream_t stream) noexcept {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaStreamSynchronize(stream) != cudaSuccess) {
    cudaGetLastError();
    cudaStreamDestroy(stream);  // a stream in an error state is not handed on
    return;
  }
  Pool& p = pool();
  try {
    const std::lock_guard lock(p.mutex);
    p.idle[device].push_back(stream);
  } catch (...) {
    cudaStreamDestroy(stream);
  }
}

}  // namespace vitrt::cuda
