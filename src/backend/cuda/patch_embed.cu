// Patch unfolding (conv with stride = kernel as a GEMM) and token assembly with position embedding.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/layernorm.cuh"
#include "backend/cuda/layernorm_row.cuh"
#include "backend/cuda/patch_embed.cuh"

namespace vitrt::cuda {
namespace {

// One thread per patch row segment: the `patch` consecutive pixels (kx) of one image row (py * P + ky)
// of one channel, which are `patch` consecutive columns of one row of cols. Consecutive threads take
// consecutive segments of one row of cols (ky, then the channel), so a warp writes whole rows. The index
// arithmetic is done once per segment in 32 bits (it was eight 64-bit divisions per element, which made
// the kernel bound by integer math: 136 us at vit_large b32, where its bytes take ~20, docs/performance.md
// session 34), and every load of a segment (of up to 32 pixels) comes before its first store. kVec:
// 16-byte loads and 4-element stores (patches of 4 to 32 pixels in steps of 4, so image rows are whole
// float4s too; 16-byte aligned images).
template <typename T, bool kVec>
__global__ void patchify_kernel(PatchifyArgs a, unsigned segments) {
  constexpr int kMaxPatch = 32;  // pixels per register row (kVec: the largest patch it takes)
  const unsigned g = static_cast<unsigned>(a.img / a.patch), P = static_cast<unsigned>(a.patch),
                 C = static_cast<unsigned>(a.chans), K = C * P * P;
  for (unsigned it = blockIdx.x * blockDim.x + threadIdx.x; it < segments; it += gridDim.x * blockDim.x) {
    unsigned t = it;
    const unsigned ky = t % P;
    t /= P;
    const unsigned c = t % C;
    t /= C;
    const unsigned px = t % g;
    t /= g;
    const unsigned py = t % g, b = t / g;
    const std::int64_t row = (static_cast<std::int64_t>(b) * g + py) * g + px;
    T* dst = static_cast<T*>(a.cols) + row * K + (c * P + ky) * P;
    const bool valid = static_cast<int>(b) < a.valid;  // batch padding comes out as zeros
    const float* src =
        a.images + ((static_cast<std::int64_t>(b) * C + c) * a.img + py * P + ky) * a.img + px * P;
    if constexpr (kVec) {
      float4 v[kMaxPatch / 4];
#pragma unroll
      for (int j = 0; j < kMaxPatch / 4; ++j)
        if (j < static_cast<int>(P / 4)) v[j] = valid ? load4(src, j) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int j = 0; j < kMaxPatch / 4; ++j)
        if (j < static_cast<int>(P / 4)) store4<T>(dst + 4 * j, v[j].x, v[j].y, v[j].z, v[j].w);
    } else {
      for (int j0 = 0; j0 < static_cast<int>(P); j0 += kMaxPatch) {  // patches above 32 pixels: in pieces
        const int n = min(kMaxPatch, static_cast<int>(P) - j0);
        float v[kMaxPatch];
#pragma unroll
        for (int j = 0; j < kMaxPatch; ++j)
          if (j < n) v[j] = valid ? src[j0 + j] : 0.0f;
#pragma unroll
        for (int j = 0; j < kMaxPatch; ++j)
          if (j < n) dst[j0 + j] = from_f32<T>(v[j]);
      }
    }
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
    for (int i = 0; i < V; ++i)
      p[i] = in_range && pos ? load4(pos, lane + 32 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
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
  VITRT_CHECK(a.patch >= 1 && a.img % a.patch == 0, "patchify: patch size ", a.patch,
              " does not tile images of ", a.img, " pixels");
  const std::int64_t g = a.img / a.patch;
  const std::int64_t segments = static_cast<std::int64_t>(a.batch) * g * g * a.chans * a.patch;
  VITRT_CHECK(segments < (std::int64_t{1} << 31), "patchify: ", a.batch, " images of ", a.img, " x ", a.img,
              " pixels are more than the kernel indexes in 32 bits");
  if (segments == 0) return;
  const bool vec =
      a.patch % 4 == 0 && a.patch <= 32 && aligned(a.images, 16) && aligned(a.cols, 16);  // img % patch == 0
  with_storage_type(a.dt, [&](auto t) {
    using T = decltype(t);
    if (vec)
      patchify_kernel<T, true><<<blocks_for(segments), 256, 0, s>>>(a, static_cast<unsigned>(segments));
    else
      patchify_kernel<T, false><<<blocks_for(segments), 256, 0, s>>>(a, static_cast<unsigned>(segments));
  });
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
