// Fused attention, SIMT version (fp32, and head dims the tensor-core kernel does not take): a block of 4 warps takes 16 queries of one (batch, head); key/value
// tiles of 32 keys are staged in shared memory (K transposed, so each lane reads its own key's
// column without bank conflicts); each lane scores one key, the warp keeps the online-softmax
// running max and sum per query, and each lane accumulates head_dim / 32 output columns.
// Q, K and V are read in place from the qkv GEMM output [B, N, 3, H, D].
#include <cstdlib>
#include <string>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kWarps = 4, kQueriesPerWarp = 4, kBlockQueries = kWarps * kQueriesPerWarp, kKeyTile = 32;

// DPL: head-dim columns per lane (head_dim <= 32 * DPL).
template <typename T, int DPL>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionParams p) {
  constexpr int kMaxD = 32 * DPL;
  __shared__ float q_s[kBlockQueries][kMaxD];
  __shared__ float kt_s[kMaxD][kKeyTile + 1];
  __shared__ float v_s[kKeyTile][kMaxD];
  __shared__ float p_s[kBlockQueries][kKeyTile];

  const int N = p.tokens, D = p.head_dim, E = p.heads * D;
  const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * kBlockQueries;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* qkv = static_cast<const T*>(p.qkv);
  const std::size_t row_stride = 3 * static_cast<std::size_t>(E);
  const T* base = qkv + static_cast<std::size_t>(b) * N * row_stride + static_cast<std::size_t>(h) * D;

  for (int i = threadIdx.x; i < kBlockQueries * D; i += blockDim.x) {
    const int r = i / D, d = i % D, q = q0 + r;
    q_s[r][d] = q < N ? to_f32(base[q * row_stride + d]) * p.scale : 0.0f;
  }
  float m[kQueriesPerWarp], l[kQueriesPerWarp], acc[kQueriesPerWarp][DPL];
#pragma unroll
  for (int i = 0; i < kQueriesPerWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < DPL; ++c) acc[i][c] = 0.0f;
  }

  for (int k0 = 0; k0 < N; k0 += kKeyTile) {
    __syncthreads();  // previous tile fully consumed (and q_s written on the first pass)
    for (int i = threadIdx.x; i < kKeyTile * D; i += blockDim.x) {
      const int j = i / D, d = i % D, key = k0 + j;
      const bool ok = key < N;
      kt_s[d][j] = ok ? to_f32(base[key * row_stride + E + d]) : 0.0f;
      v_s[j][d] = ok ? to_f32(base[key * row_stride + 2 * E + d]) : 0.0f;
    }
    __syncthreads();
    const bool key_ok = k0 + lane < N;
#pragma unroll
    for (int i = 0; i < kQueriesPerWarp; ++i) {
      const int r = warp * kQueriesPerWarp + i;
      float s = 0.0f;
      for (int d = 0; d < D; ++d) s = fmaf(q_s[r][d], kt_s[d][lane], s);
      s = key_ok ? s : -INFINITY;
      const float m_new = fmaxf(m[i], warp_max(s));
      const float pj = key_ok ? __expf(s - m_new) : 0.0f;
      const float corr = __expf(m[i] - m_new);  // 0 on the first tile (m = -inf)
      l[i] = l[i] * corr + warp_sum(pj);
      m[i] = m_new;
      p_s[r][lane] = pj;
      __syncwarp();
#pragma unroll
      for (int c = 0; c < DPL; ++c) {
        const int d = lane + 32 * c;
        if (d < D) {
          float a = acc[i][c] * corr;
          for (int j = 0; j < kKeyTile; ++j) a = fmaf(p_s[r][j], v_s[j][d], a);
          acc[i][c] = a;
        }
      }
      __syncwarp();
    }
  }

  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int i = 0; i < kQueriesPerWarp; ++i) {
    const int q = q0 + warp * kQueriesPerWarp + i;
    if (q >= N) continue;
    const float inv = 1.0f / l[i];
#pragma unroll
    for (int c = 0; c < DPL; ++c) {
      const int d = lane + 32 * c;
      if (d < D) out[(static_cast<std::size_t>(b) * N + q) * E + static_cast<std::size_t>(h) * D + d] = from_f32<T>(acc[i][c] * inv);
    }
  }
}

template <typename T>
void launch(const AttentionParams& p, cudaStream_t s) {
  const dim3 grid((query_tokens(p) + kBlockQueries - 1) / kBlockQueries, p.heads, p.batch);
  const dim3 block(kWarps * 32);
  switch ((p.head_dim + 31) / 32) {
    case 1: attention_kernel<T, 1><<<grid, block, 0, s>>>(p); break;
    case 2: attention_kernel<T, 2><<<grid, block, 0, s>>>(p); break;
    case 3: attention_kernel<T, 3><<<grid, block, 0, s>>>(p); break;
    case 4: attention_kernel<T, 4><<<grid, block, 0, s>>>(p); break;
    default: VITRT_FAIL("attention: head dim ", p.head_dim, " is not supported (at most 128)");
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_supports(int head_dim) { return head_dim >= 1 && head_dim <= 128; }

std::vector<int> attention_variants(const AttentionParams& p) {
  if (attention_bf16x3_supports(p)) {
    std::vector<int> v{0, kAttentionTf32Wgmma, kAttentionTf32Bf16x3};
    if (p.tokens <= kAttentionRowMaxTokens) v.insert(v.end(), {kAttentionTf32Bf16x3Head2, kAttentionTf32Bf16x3Head4});
    return v;
  }
  if (attention_tf32_wgmma_supports(p)) return {0, kAttentionTf32Wgmma};
  if (!attention_mma_supports(p)) return {0};
  std::vector<int> v{1, 2, 4, 8};
  if (attention_query_supports(p)) v.push_back(kAttentionOneQuery);
  if (!attention_wgmma_supports(p)) return v;
  v.insert(v.end(), {kAttentionWgmma1, kAttentionWgmma2});
  if (p.tokens <= kAttentionRowMaxTokens) {
    v.push_back(kAttentionWgmmaRow);
    // Only where they make other blocks than kAttentionWgmmaRow and each other.
    const int query_tiles = (query_tokens(p) + 63) / 64;
    if (query_tiles > 2) v.push_back(kAttentionWgmmaRow2);
    if (query_tiles > 1) v.push_back(kAttentionWgmmaRowHead);
  }
  // Splitting the key tiles: while each block still gets at least 2 of them.
  const int key_tiles = (p.tokens + 63) / 64;
  if (key_tiles >= 4) v.push_back(kAttentionWgmmaSplit2);
  if (key_tiles >= 8) v.push_back(kAttentionWgmmaSplit4);
  if (p.tokens > kAttentionRowMaxTokens) v.insert(v.end(), {kAttentionWgmmaWs, kAttentionWgmmaWs128, kAttentionWgmmaWsKeys});
  return v;
}

std::string attention_variant_name(int variant) {
  switch (variant) {
    case 0: return "the general kernel for the type and head dim";
    case kAttentionTf32Wgmma: return "3xTF32 on wgmma";
    case kAttentionTf32Bf16x3: return "3xBF16 on wgmma, 2 warpgroups per block";
    case kAttentionTf32Bf16x3Head2: return "3xBF16 on wgmma, K/V resident, 2 warpgroups per head";
    case kAttentionTf32Bf16x3Head4: return "3xBF16 on wgmma, K/V resident, 4 warpgroups per head";
    case kAttentionWgmma1: return "wgmma, 1 warpgroup per block";
    case kAttentionWgmma2: return "wgmma, 2 warpgroups per block";
    case kAttentionWgmmaRow: return "wgmma, every key at once";
    case kAttentionWgmmaRow2: return "wgmma, every key at once, 2 query tiles per block";
    case kAttentionWgmmaRowHead: return "wgmma, every key at once, every query tile of a head per block";
    case kAttentionWgmmaSplit2: return "wgmma, key tiles split over 2 blocks";
    case kAttentionWgmmaSplit4: return "wgmma, key tiles split over 4 blocks";
    case kAttentionWgmmaWs: return "wgmma, 2 warpgroups taking turns, K/V by a TMA producer warp";
    case kAttentionWgmmaWs128: return "wgmma, 2 warpgroups taking turns, K/V by a TMA producer warp, 128-key tiles";
    case kAttentionWgmmaWsKeys:
      return "wgmma, 2 warpgroups taking turns on one query tile, half of the keys each, each copying its own K/V by TMA";
    case kAttentionOneQuery: return "one query, the keys over a cluster of 4 blocks, CUDA cores";
    default: return "mma, " + std::to_string(variant) + " warps per block";
  }
}

int attention_default_variant(const AttentionParams& p, int sm_count) {
  if (attention_bf16x3_supports(p) && query_tokens(p) > 64 && p.tokens <= kAttentionRowMaxTokens) {
    // tf32 sessions, several query tiles: measured on an H200 with 197 tokens, 12 heads (tuner times in
    // docs/benchmarks.md, session 11): the 3xTF32 kernel below half a (batch, head) pair per SM (batches
    // 1-4), the resident 3xBF16 kernel with 4 warpgroups per head below one pair per SM (batch 8), with 2
    // warpgroups from there (batches 16-256).
    const long pairs = static_cast<long>(p.heads) * p.batch;
    return 2 * pairs < sm_count ? kAttentionTf32Wgmma
           : pairs < sm_count   ? kAttentionTf32Bf16x3Head4
                                : kAttentionTf32Bf16x3Head2;
  }
  if (attention_tf32_wgmma_supports(p)) return kAttentionTf32Wgmma;
  if (!attention_mma_supports(p)) return 0;
  if (attention_wgmma_supports(p) && p.tokens > kAttentionRowMaxTokens) {
    // Long sequences, few 64-row query tiles in all (small batches, the class token alone). Measured on
    // an H200 with 577 tokens and 3-16 heads (tuner times in docs/benchmarks.md, session 33): the keys
    // split over a cluster of 4 blocks up to a quarter of the SMs' worth of tiles, over 2 up to half,
    // between the two warpgroups of one block up to one tile per SM (120 tiles: 11 against 13-14 us for
    // the unsplit TMA kernels; 160 lose to them).
    const long tiles = static_cast<long>((query_tokens(p) + 63) / 64) * p.heads * p.batch;
    // One query row per image (the class token) up to a quarter of the SMs' worth of (image, head) pairs: the
    // one-query kernel, measured at 577 tokens and 16 heads, batches 1-2 (session 46): 7.4-7.5 against 9.3 us
    // alone at batch 1 (split over 4 blocks), 8.6 against 10.5-11.1 at batch 2 (over 2), 4.8 against 7.4 us
    // in the forward (ncu).
    if (4 * tiles <= sm_count && attention_query_supports(p)) return kAttentionOneQuery;
    if (4 * tiles <= sm_count && (p.tokens + 63) / 64 >= 8) return kAttentionWgmmaSplit4;
    if (2 * tiles <= sm_count) return kAttentionWgmmaSplit2;
    if (tiles <= sm_count && query_tokens(p) > 64) return kAttentionWgmmaWsKeys;
  }
  if (query_tokens(p) <= 16) {
    // One query tile (a class-token model's last block): measured on an H200 with 197 tokens, 12 heads
    // (tuning log in docs/performance.md), the one-warp mma kernel wins from about 2 (batch, head)
    // pairs per SM; below that, the wgmma kernel with one warpgroup.
    const long pairs = static_cast<long>(p.heads) * p.batch;
    return attention_wgmma_supports(p) && pairs < 2L * sm_count ? kAttentionWgmma1 : 1;
  }
  if (attention_wgmma_supports(p) && p.tokens <= kAttentionRowMaxTokens) {
    // Every key at once. Measured on an H200 with 197 tokens, 12 heads (tuner times in
    // docs/benchmarks.md, session 8): one query tile per block while there are fewer (batch, head) pairs than
    // SMs, two up to about 8 pairs per SM, then every tile of a head per block (one K/V load per head).
    const long pairs = static_cast<long>(p.heads) * p.batch;
    return pairs < sm_count ? kAttentionWgmmaRow : pairs < 8L * sm_count ? kAttentionWgmmaRow2 : kAttentionWgmmaRowHead;
  }
  if (attention_wgmma_supports(p) && query_tokens(p) > 64) {
    // Longer sequences, more than one query tile: the TMA kernel. Measured on an H200 with 577 tokens, 16
    // heads (tuner, run256): 2-8% faster than the best other kernel at batches 1-128. With 128-key tiles
    // (run274) 3-5% faster again from batch 8 (640 work items of 128 rows), 3% slower at batch 1 (80).
    const long items = static_cast<long>((query_tokens(p) + 127) / 128) * p.heads * p.batch;
    return items >= sm_count ? kAttentionWgmmaWs128 : kAttentionWgmmaWs;
  }
  if (attention_wgmma_supports(p)) {
    // Measured on an H200 (docs/performance.md): two warpgroups (128 queries) per block once there are
    // about 4 such blocks per SM, else one (more blocks for small batches).
    const long blocks128 = static_cast<long>((query_tokens(p) + 127) / 128) * p.heads * p.batch;
    return blocks128 >= 4L * sm_count ? kAttentionWgmma2 : kAttentionWgmma1;
  }
  // 64 queries per block, unless that leaves SMs idle (small batches): then 32.
  const long blocks64 = static_cast<long>((query_tokens(p) + 63) / 64) * p.heads * p.batch;
  return blocks64 >= sm_count ? 4 : 2;
}

void attention(AttentionParams p, cudaStream_t s) {
  VITRT_CHECK(p.batch > 0 && p.tokens > 0 && p.heads > 0 && p.heads <= 65535 && p.batch <= 65535,
              "attention: bad shape batch ", p.batch, " tokens ", p.tokens, " heads ", p.heads);
  VITRT_CHECK(p.queries >= 0 && p.queries <= p.tokens, "attention: ", p.queries, " query tokens of ", p.tokens);
  // VITRT_CUDA_ATTENTION=wgmma|mma|wmma|tf32|simt forces a kernel (for timing variants); default: the
  // fastest kernel that supports the shape and type.
  static const std::string forced_env = [] {
    const char* e = std::getenv("VITRT_CUDA_ATTENTION");
    return std::string(e ? e : "");
  }();
  // wgmma forced where it does not apply: the default choice.
  const std::string forced = forced_env == "wgmma" && !attention_wgmma_supports(p) ? "" : forced_env;
  if (p.variant == kAttentionOneQuery) {
    if (forced.empty()) {
      attention_query(p, s);  // checks that it takes the shape and device
      return;
    }
    p.variant = 0;  // another kernel forced: its default tiles
  }
  const bool wgmma_variant = is_wgmma_variant(p.variant);
  if (forced == "wgmma" || (forced.empty() && wgmma_variant)) {
    attention_wgmma(p, s);  // checks that it takes the shape and device
    return;
  }
  if (wgmma_variant) p.variant = 0;  // another kernel forced: its default tiles
  if ((forced.empty() || forced == "mma") && attention_mma_supports(p)) {
    attention_mma(p, s);
    return;
  }
  if ((forced.empty() || forced == "mma" || forced == "wmma") && attention_wmma_supports(p)) {
    attention_wmma(p, s);
    return;
  }
  if ((forced.empty() || forced == "tf32") && attention_tf32_supports(p)) {
    attention_tf32(p, s);
    return;
  }
  with_storage_type(p.dt, [&](auto t) { launch<decltype(t)>(p, s); });
}

}  // namespace vitrt::cuda
