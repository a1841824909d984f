// In-place exact GELU (erf, as timm's nn.GELU) and QuickGELU (x * sigmoid(1.702 x)) after a GEMM
// whose bias epilogue ran in cuBLASLt.
#include "backend/cuda/activation.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"

namespace vitrt::cuda {
namespace {

template <typename T, bool kQuick>
__global__ void activation_kernel(ActivationParams p) {
  T* x = static_cast<T*>(p.x);
  const std::int64_t n = p.rows * p.cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    T* e = x + (i / p.cols) * p.ld + i % p.cols;
    const float v = to_f32(*e);
    const float y = kQuick ? v / (1.0f + __expf(-1.702f * v)) : 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    *e = from_f32<T>(y);
  }
}

template <typename T>
void launch(const ActivationParams& p, cudaStream_t s) {
  const std::int64_t n = p.rows * p.cols;
  const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>((n + 255) / 256, 65535));
  if (p.act == Epilogue::quick_gelu) activation_kernel<T, true><<<blocks, 256, 0, s>>>(p);
  else activation_kernel<T, false><<<blocks, 256, 0, s>>>(p);
}

}  // namespace

void activation(const ActivationParams& p, cudaStream_t s) {
  if (p.rows * p.cols == 0 || p.act == Epilogue::none) return;
  with_storage_type(p.dt, [&](auto t) { launch<decltype(t)>(p, s); });
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
