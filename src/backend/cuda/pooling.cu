// Mean over a token range per image (a range of one picks a token), and averaging two heads.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/pooling.cuh"

namespace vitrt::cuda {
namespace {

template <typename T>
__global__ void mean_tokens_kernel(const T* x, int batch, int tokens, int dim, int first, int count, float* dst) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::int64_t>(batch) * dim) return;
  const std::int64_t b = i / dim;
  const int e = static_cast<int>(i % dim);
  const T* base = x + (b * tokens + first) * dim + e;
  float s = 0.0f;
  for (int t = 0; t < count; ++t) s += to_f32(base[static_cast<std::int64_t>(t) * dim]);
  dst[i] = s / count;
}

__global__ void average_kernel(const float* a, const float* b, std::int64_t n, float* dst) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = 0.5f * (a[i] + b[i]);
}

}  // namespace

void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst,
                 cudaStream_t s) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * dim;
  const auto blocks = static_cast<unsigned>((n + 255) / 256);
  with_storage_type(x_dt, [&](auto t) {
    using T = decltype(t);
    mean_tokens_kernel<<<blocks, 256, 0, s>>>(static_cast<const T*>(x), batch, tokens, dim, first, count, dst);
  });
  CUDA_CHECK_LAUNCH();
}

void average(const float* a, const float* b, std::int64_t n, float* dst, cudaStream_t s) {
  average_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, s>>>(a, b, n, dst);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
