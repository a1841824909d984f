// Patch unfolding (conv with stride = kernel as a GEMM) and token assembly with position embedding.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/layernorm.cuh"
#include "backend/cuda/layernorm_row.cuh"
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
  wait_prior_grid();
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

// Tokens and the first block's norm1 in one pass: one warp per token row, held in registers as V
// float4s (dim == 128 * V). The norm takes the values as stored in x (rounded to x's type) through the
// LayerNorm kernel's own normalize_row, so h equals what that kernel would write, bit for bit.
// The position embedding, gamma and beta (weights) are loaded before griddepcontrol.wait, and every
// load of the row before the first store of x (a store may alias a later load, so the compiler keeps
// them in order: one round trip per float4 otherwise).
constexpr int kNormRows = 4;  // rows (warps) per block

template <typename TX, typename TN, int V>
__global__ void __launch_bounds__(kNormRows * 32) tokens_norm_kernel(TokensArgs a, const float* gamma,
                                                                     const float* beta) {
  const int N = a.num_prefix + a.patches, D = a.dim;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kNormRows + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const bool in_range = row < static_cast<std::int64_t>(a.batch) * N;
  const std::int64_t b = row / N;
  const int t = static_cast<int>(row % N);
  const float* pos = a.pos_covers_prefix      ? a.pos + static_cast<std::int64_t>(t) * D
                     : t >= a.num_prefix ? a.pos + static_cast<std::int64_t>(t - a.num_prefix) * D
                                         : nullptr;
  // At 2,048 wide, four rows of registers would not fit in 255 (spills): the weights are loaded after
  // the wait there, in the old order.
  constexpr bool kEarly = V <= 12;
  float4 g[V], bt[V], p[V];
  const auto load_pos = [&] {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = in_range && pos ? load4(pos, lane + 32 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
  };
  if constexpr (kEarly) {
    load_row_params(gamma, g);
    load_row_params(beta, bt);
    load_pos();
  }
  wait_prior_grid();
  if (!in_range) return;
  const float* src = t < a.num_prefix ? a.prefix + static_cast<std::int64_t>(t) * D
                                      : a.patch_rows + (b * a.patches + t - a.num_prefix) * D;
  TX* x = static_cast<TX*>(a.x) + row * D;
  const auto stored = [](float f) { return to_f32(from_f32<TX>(f)); };
  float4 s[V];
#pragma unroll
  for (int i = 0; i < V; ++i) s[i] = load4(src, lane + 32 * i);
  if constexpr (!kEarly) load_pos();
  float4 v[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
    if (pos) s[i] = make_float4(s[i].x + p[i].x, s[i].y + p[i].y, s[i].z + p[i].z, s[i].w + p[i].w);
    store4<TX>(x + 4 * (lane + 32 * i), s[i].x, s[i].y, s[i].z, s[i].w);
    v[i] = make_float4(stored(s[i].x), stored(s[i].y), stored(s[i].z), stored(s[i].w));
  }
  if constexpr (kEarly) normalize_row<TN, V>(v, D, a.eps, g, bt, static_cast<TN*>(a.normed) + row * D);
  else normalize_row<TN, V>(v, D, a.eps, gamma, beta, static_cast<TN*>(a.normed) + row * D);
}

// Launches the fused kernel for the widths of the ViT family (384, 768, 1024, 1280, 1536, 2048); false
// for any other, or for a type pair it is not built for.
template <typename TX, typename TN>
bool launch_tokens_norm(const TokensArgs& a, const float* gamma, const float* beta, cudaStream_t s) {
  const std::int64_t rows = static_cast<std::int64_t>(a.batch) * (a.num_prefix + a.patches);
  const auto blocks = static_cast<unsigned>((rows + kNormRows - 1) / kNormRows);
  const unsigned threads = kNormRows * 32;
  switch (a.dim % 128 == 0 ? a.dim / 128 : 0) {
    case 3: launch_dependent(Pdl::norm, tokens_norm_kernel<TX, TN, 3>, blocks, threads, 0, s, a, gamma, beta); return true;
    case 6: launch_dependent(Pdl::norm, tokens_norm_kernel<TX, TN, 6>, blocks, threads, 0, s, a, gamma, beta); return true;
    case 8: launch_dependent(Pdl::norm, tokens_norm_kernel<TX, TN, 8>, blocks, threads, 0, s, a, gamma, beta); return true;
    case 10: launch_dependent(Pdl::norm, tokens_norm_kernel<TX, TN, 10>, blocks, threads, 0, s, a, gamma, beta); return true;
    case 12: launch_dependent(Pdl::norm, tokens_norm_kernel<TX, TN, 12>, blocks, threads, 0, s, a, gamma, beta); return true;
    case 16: launch_dependent(Pdl::norm, tokens_norm_kernel<TX, TN, 16>, blocks, threads, 0, s, a, gamma, beta); return true;
    default: return false;
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
  with_storage_type(a.x_dt, [&](auto t) { launch_dependent(Pdl::norm, tokens_kernel<decltype(t)>, blocks_for(n), 256, 0, s, a); });
  CUDA_CHECK_LAUNCH();
}

void tokens_norm(const TokensArgs& a, const float* gamma, const float* beta, cudaStream_t s) {
  // The fused kernel takes x in fp32 with any normed type, or a 16-bit x normed into its own type (the
  // pairs sessions use); 16-byte loads need 16-byte aligned rows.
  const auto aligned16 = [](const void* q) { return q == nullptr || aligned(q, 16); };  // absent operands pass
  const bool vec = aligned16(a.prefix) && aligned16(a.patch_rows) && aligned16(a.pos) && aligned16(a.x) &&
                   aligned16(a.normed) && aligned16(gamma) && aligned16(beta);
  bool done = false;
  if (vec && a.x_dt == DT::f32) {
    with_storage_type(a.normed_dt, [&](auto n) { done = launch_tokens_norm<float, decltype(n)>(a, gamma, beta, s); });
  } else if (vec && a.x_dt == a.normed_dt) {
    with_storage_type(a.x_dt, [&](auto t) { done = launch_tokens_norm<decltype(t), decltype(t)>(a, gamma, beta, s); });
  }
  if (done) {
    CUDA_CHECK_LAUNCH();
    return;
  }
  tokens(a, s);  // the two kernels, same result
  const std::int64_t rows = static_cast<std::int64_t>(a.batch) * (a.num_prefix + a.patches);
  layernorm({a.x, a.dim, a.normed, a.dim, a.normed_dt, gamma, beta, rows, a.dim, a.eps, a.x_dt}, s);
}

}  // namespace vitrt::cuda
