// LayerNorm: one warp per row, fp32 two-pass statistics. Rows of a multiple of 128 elements (up to
// 2048) are held in registers as float4s (one read of the row: 16-byte loads of fp32, 8-byte loads of
// 16-bit input; 8/16-byte stores); other rows take the generic kernel (the row stays in L1 between
// passes). TI is the input type (the residual stream), TO the output type.
#include <type_traits>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/layernorm.cuh"
#include "backend/cuda/layernorm_row.cuh"
#include "core/env.h"

namespace vitrt::cuda {
namespace {

constexpr int kRowsPerBlock = 4;

template <typename TI, typename TO>
__global__ void layernorm_kernel(LayerNormParams p) {
  allow_next_grid();  // the next kernel may launch and start its own preparation (gemv.cu, gemm_small.cuh)
  wait_prior_grid();
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.rows) return;
  const TI* x = static_cast<const TI*>(p.src) + row * p.src_ld;
  float sum = 0.0f;
  for (int i = lane; i < p.dim; i += 32) sum += to_f32(x[i]);
  const float mean = warp_sum(sum) / p.dim;
  float sq = 0.0f;
  for (int i = lane; i < p.dim; i += 32) {
    const float d = to_f32(x[i]) - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(warp_sum(sq) / p.dim + p.eps);
  // Every lane has read its whole share of the row before any lane writes (in-place safe): the
  // warp_sum above is a full-warp exchange. The output goes kChunk elements per lane at a time, all
  // their loads (x, gamma, beta) before the first store: a store may alias a later load, so the compiler
  // would otherwise keep one round trip per element.
  constexpr int kChunk = 8;
  TO* y = static_cast<TO*>(p.dst) + row * p.dst_ld;
  for (int i0 = lane; i0 < p.dim; i0 += 32 * kChunk) {
    float xv[kChunk], wv[kChunk], bv[kChunk];
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      const int i = i0 + 32 * c;
      if (i < p.dim) {
        xv[c] = to_f32(x[i]);
        wv[c] = p.weight[i];
        bv[c] = p.bias[i];
      }
    }
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      const int i = i0 + 32 * c;
      if (i >= p.dim) break;
      float o = (xv[c] - mean) * inv * wv[c] + bv[c];
      if constexpr (std::is_same_v<TO, float>) {
        if (p.tf32_out) o = round_tf32(o);
      }
      y[i] = from_f32<TO>(o);
    }
  }
}

// V float4s per lane: dim == 128 * V.
// gamma and beta (weights, constant during a forward) are loaded before griddepcontrol.wait: with a
// dependent launch their loads overlap the kernel before this one, and either way they are in flight
// with the row's, not after its statistics.
template <typename TI, typename T, int V>
__global__ void layernorm_vec_kernel(LayerNormParams p) {
  float4 g[V], b[V];
  load_row_params(p.weight, g);
  load_row_params(p.bias, b);
  allow_next_grid();  // the next kernel may launch and start its own preparation (gemv.cu, gemm_small.cuh)
  wait_prior_grid();
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.rows) return;
  const TI* x = static_cast<const TI*>(p.src) + row * p.src_ld;
  float4 v[V];
#pragma unroll
  for (int i = 0; i < V; ++i) v[i] = load4(x, lane + 32 * i);
  normalize_row<T, V>(v, p.dim, p.eps, g, b, static_cast<T*>(p.dst) + row * p.dst_ld, p.tf32_out);
}

// Measurement only (docs/performance.md, session 32): VITRT_NORM_CARVEOUT=0..100 sets the LayerNorm
// kernels' preferred shared-memory carveout (percent), so that a dependent GEMM needing most of the shared
// memory can share an SM with them. Unset: the driver's default.
using LayerNormKernel = void (*)(LayerNormParams);

LayerNormKernel with_carveout(LayerNormKernel kernel) {
  static const std::optional<long long> carveout = env_integer("VITRT_NORM_CARVEOUT", 0, 100, "a percentage");
  if (carveout)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    static_cast<int>(*carveout)));
  return kernel;
}

// The register-row kernel for rows of 128 * v elements, v in 1 .. sizeof...(V).
template <typename TI, typename T, int... V>
LayerNormKernel vec_kernel(int v, std::integer_sequence<int, V...>) {
  LayerNormKernel kernel = nullptr;
  (void)((v == V + 1 ? (kernel = layernorm_vec_kernel<TI, T, V + 1>, true) : false) || ...);
  return kernel;
}

template <typename TI, typename T>
void launch(const LayerNormParams& p, unsigned blocks, cudaStream_t s) {
  const bool vec = p.dim % 128 == 0 && p.dim <= 2048 && p.src_ld % 4 == 0 && p.dst_ld % 4 == 0 &&
                   aligned(p.src, 4 * sizeof(TI)) && aligned(p.dst, 4 * sizeof(T)) && aligned(p.weight, 16) &&
                   aligned(p.bias, 16);
  LayerNormKernel kernel = layernorm_kernel<TI, T>;
  if (vec) kernel = vec_kernel<TI, T>(p.dim / 128, std::make_integer_sequence<int, 16>{});
  launch_dependent(Pdl::norm, with_carveout(kernel), blocks, kRowsPerBlock * 32, 0, s, p);
}

}  // namespace

void layernorm(const LayerNormParams& p, cudaStream_t s) {
  if (p.rows == 0) return;
  const auto blocks = static_cast<unsigned>((p.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  switch (p.src_dt) {
    case DT::f32: with_storage_type(p.dst_dt, [&](auto t) { launch<float, decltype(t)>(p, blocks, s); }); break;
    // A 16-bit residual stream is normed into its own type, or into fp32 for the head.
    case DT::f16:
      VITRT_CHECK(p.dst_dt != DT::bf16, "LayerNorm: fp16 input, bf16 output is not supported");
      if (p.dst_dt == DT::f32) launch<__half, float>(p, blocks, s);
      else launch<__half, __half>(p, blocks, s);
      break;
    case DT::bf16:
      VITRT_CHECK(p.dst_dt != DT::f16, "LayerNorm: bf16 input, fp16 output is not supported");
      if (p.dst_dt == DT::f32) launch<__nv_bfloat16, float>(p, blocks, s);
      else launch<__nv_bfloat16, __nv_bfloat16>(p, blocks, s);
      break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
