// LayerNorm: one warp per row, fp32 two-pass statistics (the row stays in L1 between passes).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/layernorm.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kRowsPerBlock = 4;

template <typename T>
__global__ void layernorm_kernel(LayerNormParams p) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.rows) return;
  const float* x = p.src + row * p.src_ld;
  float sum = 0.0f;
  for (int i = lane; i < p.dim; i += 32) sum += x[i];
  const float mean = warp_sum(sum) / p.dim;
  float sq = 0.0f;
  for (int i = lane; i < p.dim; i += 32) {
    const float d = x[i] - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(warp_sum(sq) / p.dim + p.eps);
  // Every lane has read its whole share of the row before any lane writes (in-place safe): the
  // warp_sum above is a full-warp exchange.
  T* y = static_cast<T*>(p.dst) + row * p.dst_ld;
  for (int i = lane; i < p.dim; i += 32) y[i] = from_f32<T>((x[i] - mean) * inv * p.weight[i] + p.bias[i]);
}

}  // namespace

void layernorm(const LayerNormParams& p, cudaStream_t s) {
  if (p.rows == 0) return;
  const auto blocks = static_cast<unsigned>((p.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  switch (p.dst_dt) {
    case DT::f32: layernorm_kernel<float><<<blocks, kRowsPerBlock * 32, 0, s>>>(p); break;
    case DT::f16: layernorm_kernel<__half><<<blocks, kRowsPerBlock * 32, 0, s>>>(p); break;
    case DT::bf16: layernorm_kernel<__nv_bfloat16><<<blocks, kRowsPerBlock * 32, 0, s>>>(p); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
