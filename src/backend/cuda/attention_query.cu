// Attention for one query per image (a class-token model's last block, AttentionParams::queries == 1),
// 16-bit, on CUDA cores. The tile kernels compute a whole 64-row query tile for that one row, and their
// fixed costs dominate (the wgmma kernel split over 4 blocks: 7.3 us at 577 tokens and 16 heads, ncu,
// run534). Here a cluster of kSplits blocks takes one (image, head): each block a quarter of the keys,
// every K and V row of its quarter loaded at once, D / 8 lanes per key (16 bytes each), an online
// softmax per group of lanes, then the groups merged in shared memory and the blocks through
// distributed shared memory by the cluster's first block, which writes the row. The tuner times it
// with the others: at vit_large b1 it takes 4.8 us in the forward (ncu) against 7.4 for the split wgmma
// kernel, and the forward 1.220-1.221 ms against 1.223-1.224 over one tuning cache (run545; run536's
// comparison, each binary with its own tuning, had it the other way, within the spread between tunings).
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.cuh"

namespace vitrt::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kSplits = 4;  // blocks per (image, head): a cluster
constexpr int kWarps = 8;   // per block

// Eight 16-bit values as floats.
template <typename T>
__device__ __forceinline__ void unpack8(uint4 u, float (&f)[8]) {
  const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 v;
    if constexpr (std::is_same_v<T, __half>) {
      __half2 h;
      std::memcpy(&h, &w[i], sizeof(h));
      v = __half22float2(h);
    } else {
      __nv_bfloat162 h;
      std::memcpy(&h, &w[i], sizeof(h));
      v = __bfloat1622float2(h);
    }
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// L = D / 8 lanes per key; 32 / L key groups per warp.
template <typename T, int L>
__global__ void __launch_bounds__(kWarps * 32) attention_query_kernel(AttentionParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kRounds = 8;  // key rows per lane group loaded at once (the rest in further passes)
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr int D = 8 * L, G = 32 / L, kGroups = kWarps * G;
  __shared__ float ml_s[kGroups][2];  // per lane group: running max (log2 domain) and sum
  __shared__ float o_s[kGroups][D];   // and its unnormalized output
  __shared__ float block_s[2 + D];    // the block's max, sum, output
  allow_next_grid();  // the next kernel may load its weights now
  cg::cluster_group cluster = cg::this_cluster();
  const int split = static_cast<int>(cluster.block_rank()), h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = warp * G + lane / L, sub = lane % L;
  const int N = p.tokens, E = p.heads * D;
  const int per = (N + kSplits - 1) / kSplits, k0 = split * per, k1 = min(N, k0 + per);
  const std::int64_t row = 3LL * E;  // elements between tokens in [B, N, 3, H, D]
  const T* base = static_cast<const T*>(p.qkv) + static_cast<std::int64_t>(b) * N * row + static_cast<std::int64_t>(h) * D + 8 * sub;
  wait_prior_grid();  // qkv comes from the GEMM before
  float q[8];
  unpack8<T>(*reinterpret_cast<const uint4*>(base), q);  // token 0's query
#pragma unroll
  for (int i = 0; i < 8; ++i) q[i] *= p.scale * kLog2e;
  float m = -INFINITY, l = 0.0f, o[8] = {};
  for (int c0 = k0; c0 < k1; c0 += kRounds * kGroups) {
    uint4 kv[kRounds], vv[kRounds];
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      const int key = c0 + r * kGroups + group;
      if (key < k1) {
        const T* at = base + static_cast<std::int64_t>(key) * row;
        kv[r] = *reinterpret_cast<const uint4*>(at + E);
        vv[r] = *reinterpret_cast<const uint4*>(at + 2 * E);
      }
    }
    float s[kRounds];
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      float k[8];
      unpack8<T>(kv[r], k);
      float d = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) d = fmaf(q[i], k[i], d);
#pragma unroll
      for (int w = 1; w < L; w *= 2) d += __shfl_xor_sync(0xffffffffu, d, w);
      s[r] = c0 + r * kGroups + group < k1 ? d : -INFINITY;
    }
    float m_new = m;
#pragma unroll
    for (int r = 0; r < kRounds; ++r) m_new = fmaxf(m_new, s[r]);
    if (m_new == -INFINITY) continue;  // no key of this group in this pass
    const float corr = exp2f(m - m_new);  // 0 while m is -inf
    l *= corr;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] *= corr;
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      const float pr = exp2f(s[r] - m_new);  // 0 for keys past the end
      l += pr;
      if (pr > 0.0f) {
        float v[8];
        unpack8<T>(vv[r], v);
#pragma unroll
        for (int i = 0; i < 8; ++i) o[i] = fmaf(pr, v[i], o[i]);
      }
    }
    m = m_new;
  }
  // The block's lane groups merged: each group's (max, sum) and output into shared memory, then thread d
  // folds column d over the groups.
  if (sub == 0) {
    ml_s[group][0] = m;
    ml_s[group][1] = l;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) o_s[group][8 * sub + i] = o[i];
  __syncthreads();
  if (threadIdx.x < D) {
    float mb = -INFINITY;
    for (int g = 0; g < kGroups; ++g) mb = fmaxf(mb, ml_s[g][0]);
    float lb = 0.0f, ob = 0.0f;
    if (mb != -INFINITY)
      for (int g = 0; g < kGroups; ++g) {
        const float w = ml_s[g][0] == -INFINITY ? 0.0f : exp2f(ml_s[g][0] - mb);
        lb = fmaf(w, ml_s[g][1], lb);
        ob = fmaf(w, o_s[g][threadIdx.x], ob);
      }
    block_s[2 + threadIdx.x] = ob;
    if (threadIdx.x == 0) {
      block_s[0] = mb;
      block_s[1] = lb;
    }
  }
  // The cluster's blocks merged by its first block, which writes the row.
  cluster.sync();
  if (split == 0 && threadIdx.x < D) {
    float mc = -INFINITY;
    for (int r = 0; r < kSplits; ++r) mc = fmaxf(mc, cluster.map_shared_rank(block_s, r)[0]);
    float lc = 0.0f, oc = 0.0f;
    for (int r = 0; r < kSplits; ++r) {
      const float* peer = cluster.map_shared_rank(block_s, r);
      const float w = peer[0] == -INFINITY ? 0.0f : exp2f(peer[0] - mc);
      lc = fmaf(w, peer[1], lc);
      oc = fmaf(w, peer[2 + threadIdx.x], oc);
    }
    T* out = static_cast<T*>(p.out) + static_cast<std::int64_t>(b) * N * E + static_cast<std::int64_t>(h) * D;
    const float v = oc / lc;
    if constexpr (std::is_same_v<T, __half>) out[threadIdx.x] = __float2half_rn(v);
    else out[threadIdx.x] = __float2bfloat16_rn(v);
  }
  cluster.sync();  // the others' shared memory stays valid until the first block has read it
#else
  (void)p;
#endif
}

template <typename T, int L>
void launch(const AttentionParams& p, cudaStream_t s) {
  launch_dependent_cluster(Pdl::attention, attention_query_kernel<T, L>, dim3(kSplits, p.heads, p.batch),
                           dim3(kWarps * 32), 0, s, dim3(kSplits, 1, 1), p);
}

template <typename T>
void launch_dim(const AttentionParams& p, cudaStream_t s) {
  switch (p.head_dim) {
    case 16: return launch<T, 2>(p, s);
    case 32: return launch<T, 4>(p, s);
    case 64: return launch<T, 8>(p, s);
    default: return launch<T, 16>(p, s);  // 128
  }
}

}  // namespace

bool attention_query_supports(const AttentionParams& p) {
#ifdef VITRT_CUDA_SM90A  // the kernel's body is compiled for compute capability 9.0 only where this build has sm_90a
  const int D = p.head_dim;
  return p.dt != DT::f32 && p.arch == 90 && query_tokens(p) == 1 && (D == 16 || D == 32 || D == 64 || D == 128) &&
         aligned(p.qkv, 16);
#else
  (void)p;
  return false;
#endif
}

void attention_query(const AttentionParams& p, cudaStream_t s) {
  VITRT_CHECK(attention_query_supports(p), "attention: the one-query kernel does not take ", query_tokens(p),
              " query tokens of ", p.tokens, ", head dim ", p.head_dim, " ", dt_name(p.dt), " on compute capability ",
              p.arch, " (it needs one query token per image, head dim 16, 32, 64 or 128, fp16/bf16, compute "
              "capability 9.0 in a build with sm_90a, 16-byte aligned qkv)");
  if (p.dt == DT::f16) launch_dim<__half>(p, s);
  else launch_dim<__nv_bfloat16>(p, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
