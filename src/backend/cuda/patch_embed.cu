// Patch unfolding (conv with stride = kernel as a GEMM) and token assembly with position embedding.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/patch_embed.cuh"

namespace vitrt::cuda {
namespace {

template <typename T>
__global__ void patchify_kernel(PatchifyArgs a) {
  const int g = a.img / a.patch, P = a.patch, K = a.chans * P * P;
  const std::int64_t n = static_cast<std::int64_t>(a.batch) * g * g * K;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = i / K;
    const int k = static_cast<int>(i % K);
    const std::int64_t b = row / (g * g);
    const int py = static_cast<int>(row % (g * g)) / g, px = static_cast<int>(row % (g * g)) % g;
    const int c = k / (P * P), ky = (k / P) % P, kx = k % P;
    const float v = b < a.valid ? a.images[((b * a.chans + c) * a.img + py * P + ky) * a.img + px * P + kx] : 0.0f;
    static_cast<T*>(a.cols)[i] = from_f32<T>(v);
  }
}

template <typename T>
__global__ void tokens_kernel(TokensArgs a) {
  const int N = a.num_prefix + a.patches;
  const std::int64_t n = static_cast<std::int64_t>(a.batch) * N * a.dim;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const int e = static_cast<int>(i % a.dim);
    const std::int64_t bt = i / a.dim, b = bt / N;
    const int t = static_cast<int>(bt % N);
    float v = t < a.num_prefix ? a.prefix[t * a.dim + e] : a.patch_rows[(b * a.patches + t - a.num_prefix) * a.dim + e];
    if (a.pos_covers_prefix) v += a.pos[static_cast<std::int64_t>(t) * a.dim + e];
    else if (t >= a.num_prefix) v += a.pos[static_cast<std::int64_t>(t - a.num_prefix) * a.dim + e];
    static_cast<T*>(a.x)[i] = from_f32<T>(v);
  }
}

unsigned blocks_for(std::int64_t n) { return static_cast<unsigned>(std::min<std::int64_t>((n + 255) / 256, 65535)); }

}  // namespace

void patchify(const PatchifyArgs& a, cudaStream_t s) {
  const std::int64_t n = static_cast<std::int64_t>(a.batch) * (a.img / a.patch) * (a.img / a.patch) * a.chans * a.patch * a.patch;
  with_storage_type(a.dt, [&](auto t) { patchify_kernel<decltype(t)><<<blocks_for(n), 256, 0, s>>>(a); });
  CUDA_CHECK_LAUNCH();
}

void tokens(const TokensArgs& a, cudaStream_t s) {
  const std::int64_t n = static_cast<std::int64_t>(a.batch) * (a.num_prefix + a.patches) * a.dim;
  with_storage_type(a.x_dt, [&](auto t) { tokens_kernel<decltype(t)><<<blocks_for(n), 256, 0, s>>>(a); });
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
