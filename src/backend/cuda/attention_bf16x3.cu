// Fused attention for fp32 activations in tf32 sessions, on Hopper (sm_90a, head dim 64), as three
// bf16 products per matrix product ("3xBF16"). Every fp32 operand x is split into hi = bf16(x) and
// lo = bf16(x - hi) (x - hi is exact in fp32), so hi + lo is x to about 2^-17; a * b is then
// hi*lo + lo*hi + hi*hi on bf16 wgmma with fp32 accumulation (lo*lo, about 2^-16 of the product, is
// dropped). The result is near 2^-16 relative per product: far below one TF32 rounding (2^-11), which
// is what a tf32 session's GEMMs cost, and above the 3xTF32 kernels' (fp32 sessions keep those). On
// random data its error is 0.7-1.4e-5 of the largest output (the 2xTF32 P V of the 3xTF32 kernel in tf32
// sessions: up to 1e-3).
// Against the 3xTF32 wgmma kernel (attention_tf32.cu) for the same work:
//   - three bf16 products take the tensor time of 1.5 TF32 ones (S was 3, P V 2);
//   - 16-bit B operands may be MN-major, so V is used as it lands (no transposition);
//   - tiles of 64 keys instead of 32.
// Per 64 query rows (a warpgroup) and tile of 64 keys (attend_tile):
//   S       = Q K^T: 3 x 4 wgmma m64n64k16 (m64n16k16 pieces for a last, partial tile), Q's parts
//           from registers, K's from shared memory (K-major, 128-byte swizzle);
//   softmax the online softmax of attention_tiles.cuh on the accumulators; P split as Q was;
//   O      += P V: 3 x 4 wgmma m64n64k16, V's parts read MN-major.
// Shared memory per tile: K hi, K lo, V hi, V lo, each 64 key rows of 64 bf16 (128 bytes), swizzled.
// The fp32 values of row r, head-dim columns 8c .. 8c + 7 (32 bytes, copied by two neighbouring lanes)
// land in swizzle chunk (r, c) of the hi part (columns 8c .. 8c + 3) and of the lo part (8c + 4 ..
// 8c + 7); after a __syncwarp both lanes write their values' hi parts into the hi chunk and lo parts
// into the lo chunk, so no data crosses a warp and the copy takes no staging buffer.
// Two kernels (tuner variants, docs/performance.md "Session 11"):
//   resident  (kAttentionTf32Bf16x3Head2 / Head4, up to 256 tokens): one block per (batch, head)
//             copies and splits the whole K/V sequence once, then its 2 or 4 warpgroups take the query
//             tiles with no block barrier; at 197 tokens 31% faster than the 3xTF32 kernel at batch
//             256, 25% at batch 64;
//   tiled     (kAttentionTf32Bf16x3, any length): 2 warpgroups per block share K/V tiles
//             double-buffered with cp.async, one tile split per step (kv_tile_loop); faster than the
//             3xTF32 kernel at 577 tokens, batch 64.
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kD = 64, kBK = 64;        // head dim, keys per tile
constexpr int kPart = kBK * kD * 2;     // one bf16 part of a K or V tile: 64 rows of 128 bytes
constexpr int kStage = 4 * kPart;       // K hi, K lo, V hi, V lo
constexpr int kSmemBytes = 2 * kStage + 1024;  // two stages, plus alignment slack

#ifdef VITRT_WGMMA_DEVICE
// (a, b) -> hi = bf16x2(a, b) rounded to nearest, lo = bf16x2 of the remainders (a first, in the low half).
__device__ __forceinline__ void split2(float a, float b, std::uint32_t& hi, std::uint32_t& lo) {
  hi = pack<bf16>(a, b);
  lo = pack<bf16>(a - __uint_as_float(hi << 16), b - __uint_as_float(hi & 0xffff0000u));
}

// The fp32 chunks (16 bytes) of K and V rows: chunk i is row i / 16, quarter i % 16 of its 256 bytes
// (lanes 2m and 2m + 1 take one 32-byte column group). Its destination in a part (byte offset), and
// whether that is the lo part.
__device__ __forceinline__ unsigned chunk_offset(int i) {
  const int r = i / 16, c = (i % 16) / 2;
  return static_cast<unsigned>(r * 128 + (((c ^ r) & 7) << 4));
}
__device__ __forceinline__ bool chunk_to_lo(int i) { return (i & 1) != 0; }

// Starts copying chunk i of K and V rows [k0, ...) (zeros past the last key) into parts of `part` bytes
// (K hi, K lo, V hi, V lo from `dst`).
__device__ __forceinline__ void copy_chunk(const float* base, std::size_t stride, int E, int N, int k0, int i,
                                           unsigned char* dst, unsigned part) {
  const int r = i / 16;
  const bool ok = k0 + r < N;
  const float* src = base + static_cast<std::size_t>(ok ? k0 + r : 0) * stride + (i % 16) * 4;
  unsigned char* at = dst + chunk_offset(i) + (chunk_to_lo(i) ? part : 0);
  cp_async16(at, src + E, ok);                 // K
  cp_async16(at + 2 * part, src + 2 * E, ok);  // V
}

// Splits, in place, this thread's landed chunks i = first + threadIdx.x + j * Threads < end (see the
// top), of K (operand 0) and V (1). Four chunks per __syncwarp: both lanes of a pair read their values
// before either writes. The trip count must be the same over each warp. Rolled: the batches as a loop
// (fewer registers live where the caller holds many).
template <int Threads, int Count, bool Rolled = false>
__device__ __forceinline__ void split_chunks(unsigned char* dst, unsigned part, int first, int end) {
  constexpr int kBatch = 4;
#pragma unroll(Rolled ? 1 : 2 * Count)
  for (int j0 = 0; j0 < 2 * Count; j0 += kBatch) {
    std::uint32_t hi[kBatch][2], lo[kBatch][2];
#pragma unroll
    for (int jj = 0; jj < kBatch; ++jj) {
      const int j = j0 + jj, i = first + threadIdx.x + (j / 2) * Threads;  // even j: K, odd: V
      if (j >= 2 * Count || i >= end) break;
      const float4 x =
          *reinterpret_cast<const float4*>(dst + chunk_offset(i) + (chunk_to_lo(i) ? part : 0) + (j % 2) * 2 * part);
      split2(x.x, x.y, hi[jj][0], lo[jj][0]);
      split2(x.z, x.w, hi[jj][1], lo[jj][1]);
    }
    __syncwarp();
#pragma unroll
    for (int jj = 0; jj < kBatch; ++jj) {
      const int j = j0 + jj, i = first + threadIdx.x + (j / 2) * Threads;
      if (j >= 2 * Count || i >= end) break;
      unsigned char* at = dst + chunk_offset(i) + (chunk_to_lo(i) ? 8 : 0) + (j % 2) * 2 * part;
      *reinterpret_cast<uint2*>(at) = make_uint2(hi[jj][0], hi[jj][1]);
      *reinterpret_cast<uint2*>(at + part) = make_uint2(lo[jj][0], lo[jj][1]);
    }
  }
}

// Q rows r0, r1 (zeros past N) as the hi and lo A fragments of m64nNk16 (per 16 head-dim columns:
// (g, 2t..2t+1), (g + 8, 2t..), (g, 2t + 8..), (g + 8, 2t + 8..)).
__device__ __forceinline__ void load_q_parts(const float* base, std::size_t stride, int N, int r0, int r1, int t,
                                             std::uint32_t (&qh)[kD / 16][4], std::uint32_t (&ql)[kD / 16][4]) {
  const auto get = [&](int r, int c) {
    return r < N ? *reinterpret_cast<const float2*>(base + r * stride + c) : make_float2(0.0f, 0.0f);
  };
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) {
    const int c = ks * 16 + 2 * t;
    const float2 v[4] = {get(r0, c), get(r1, c), get(r0, c + 8), get(r1, c + 8)};
#pragma unroll
    for (int e = 0; e < 4; ++e) split2(v[e].x, v[e].y, qh[ks][e], ql[ks][e]);
  }
}

// Descriptors of B per wgmma_pieces call: one m64n64k16 for a full tile, else one per 16 columns.
template <int P>
constexpr int kDescs = P == 4 ? 1 : P;

// d (+)= A B for the P pieces of 16 columns of B (one m64n64k16 when P = 4).
template <int P, int TransB>
__device__ __forceinline__ void wgmma_pieces(float (&d)[2 * P][4], const std::uint32_t (&a)[4],
                                             const std::uint64_t (&b)[kDescs<P>], int accumulate) {
  if constexpr (P == 4) {
    wgmma_n64<bf16, TransB>(reinterpret_cast<float(&)[8][4]>(d), a, b[0], accumulate);
  } else {
    [&]<int... C>(std::integer_sequence<int, C...>) {
      (wgmma_n16<bf16, C, TransB>(d, a, b[C], accumulate), ...);
    }(std::make_integer_sequence<int, P>{});
  }
}

// Descriptors of a tile's parts (K hi, K lo, V hi, V lo, `part` bytes apart from k_addr) for P pieces of
// 16 keys. K: 16 keys further is 2048 bytes, 16 head-dim columns 32 bytes. They are made and pinned
// before the wgmmas that use them: an input register defined between two wgmmas makes ptxas serialize them.
template <int P>
struct KDescs {
  std::uint64_t hi[kD / 16][kDescs<P>], lo[kD / 16][kDescs<P>];
  __device__ __forceinline__ KDescs(unsigned k_addr, unsigned part) {
    const Sw128Desc kh(k_addr), kl(k_addr + part);
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks)
#pragma unroll
      for (int c = 0; c < kDescs<P>; ++c) {
        hi[ks][c] = kh.at(c * 2048 + ks * 32);
        lo[ks][c] = kl.at(c * 2048 + ks * 32);
      }
    pin(hi);
    pin(lo);
  }
};
template <int P>
struct VDescs {
  std::uint64_t hi[P], lo[P];
  __device__ __forceinline__ VDescs(unsigned k_addr, unsigned part) {
    const Sw128Desc vh(k_addr + 2 * part), vl(k_addr + 3 * part);
#pragma unroll
    for (int c = 0; c < P; ++c) {
      hi[c] = vh.at(c * 2048);
      lo[c] = vl.at(c * 2048);
    }
    pin(hi);
    pin(lo);
  }
};

// S = Q K^T = Qh Kl + Ql Kh + Qh Kh (the small products first; the first overwrites s).
template <int P>
__device__ __forceinline__ void issue_s(float (&s)[2 * P][4], const KDescs<P>& k, const std::uint32_t (&qh)[kD / 16][4],
                                        const std::uint32_t (&ql)[kD / 16][4]) {
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) wgmma_pieces<P, 0>(s, qh[ks], k.lo[ks], ks);
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) wgmma_pieces<P, 0>(s, ql[ks], k.hi[ks], 1);
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) wgmma_pieces<P, 0>(s, qh[ks], k.hi[ks], 1);
}

// O += P V = Ph Vl + Pl Vh + Ph Vh, 16 keys per instruction (V rows are keys, read MN-major).
template <int P, int R>
__device__ __forceinline__ void issue_pv(float (&o)[kD / 8][4], const std::uint32_t (&ph)[R][4],
                                         const std::uint32_t (&pl)[R][4], const VDescs<P>& v) {
#pragma unroll
  for (int kk = 0; kk < P; ++kk) wgmma_n64<bf16, 1>(o, ph[kk], v.lo[kk], 1);
#pragma unroll
  for (int kk = 0; kk < P; ++kk) wgmma_n64<bf16, 1>(o, pl[kk], v.hi[kk], 1);
#pragma unroll
  for (int kk = 0; kk < P; ++kk) wgmma_n64<bf16, 1>(o, ph[kk], v.hi[kk], 1);
}

// The scores of P pieces (after the softmax's maxima are set) -> probabilities, added to the row sums,
// and split into the hi / lo A fragments of P V, 16 keys each (rows g, g + 8; keys 2t, 2t + 1 and
// 8 + 2t, 9 + 2t).
template <int P, int R>
__device__ __forceinline__ void probs_to_parts(OnlineSoftmax& sm, float (&s)[2 * P][4], std::uint32_t (&ph)[R][4],
                                               std::uint32_t (&pl)[R][4]) {
#pragma unroll
  for (int kk = 0; kk < P; ++kk) {
    float* sa = s[2 * kk];
    float* sb = s[2 * kk + 1];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      sa[e] = sm.prob(sa[e], e);
      sb[e] = sm.prob(sb[e], e);
    }
    sm.l0 += sa[0] + sa[1] + sb[0] + sb[1];
    sm.l1 += sa[2] + sa[3] + sb[2] + sb[3];
    split2(sa[0], sa[1], ph[kk][0], pl[kk][0]);
    split2(sa[2], sa[3], ph[kk][1], pl[kk][1]);
    split2(sb[0], sb[1], ph[kk][2], pl[kk][2]);
    split2(sb[2], sb[3], ph[kk][3], pl[kk][3]);
  }
}

// One tile of `valid` (1..64) keys whose parts start at shared address k_addr: S = Q K^T, the online
// softmax, O += P V for this warpgroup's 64 query rows, one after the other.
__device__ __forceinline__ void attend_tile(unsigned k_addr, unsigned part, int valid, int t,
                                            const std::uint32_t (&qh)[kD / 16][4], const std::uint32_t (&ql)[kD / 16][4],
                                            float (&o)[kD / 8][4], OnlineSoftmax& sm) {
  with_pieces(valid, [&](auto pieces) {
    constexpr int P = decltype(pieces)::value;
    const KDescs<P> k(k_addr, part);
    float s[2 * P][4];
    wgmma_fence();
    issue_s(s, k, qh, ql);
    wgmma_commit();
    const VDescs<P> v(k_addr, part);
    wgmma_wait<0>();
    fence_regs(s);
    std::uint32_t ph[P][4], pl[P][4];
    sm.next_tile(s, o, valid, t);  // masks keys >= valid
    probs_to_parts<P>(sm, s, ph, pl);
    fence_regs(o);
    wgmma_fence();
    issue_pv<P>(o, ph, pl, v);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(o);
  });
}

// Every key of a resident K/V sequence (N keys, parts `part` bytes apart from k_addr), tile by tile.
__device__ __forceinline__ void attend_keys(unsigned k_addr, unsigned part, int N, int t,
                                            const std::uint32_t (&qh)[kD / 16][4], const std::uint32_t (&ql)[kD / 16][4],
                                            float (&o)[kD / 8][4], OnlineSoftmax& sm) {
  for (int kt = 0; kt * kBK < N; ++kt) {
    attend_tile(k_addr + static_cast<unsigned>(kt) * (kBK * 128), part, min(kBK, N - kt * kBK), t, qh, ql, o, sm);
  }
}
#endif  // VITRT_WGMMA_DEVICE

// The tiled kernel: WG warpgroups per block (64 query rows each) share the K/V tiles, double-buffered.
template <int WG>
__global__ void __launch_bounds__(WG * 128, 2) attention_bf16x3_kernel(AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  wait_prior_grid();
  constexpr int kThreads = WG * 128, kChunks = kBK * (kD / 4);  // fp32 chunks per K or V tile
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const tiles = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);  // [stage][kStage]

  const int N = p.tokens, E = p.heads * kD;
  const int h = blockIdx.y, b = blockIdx.z, q0 = static_cast<int>(blockIdx.x) * 64 * WG;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const float* base =
      static_cast<const float*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * kD;
  const int r0 = q0 + wg * 64 + warp * 16 + g, r1 = r0 + 8;
  const bool wg_active = q0 + wg * 64 < query_tokens(p);  // uniform over the warpgroup

  std::uint32_t qh[kD / 16][4], ql[kD / 16][4];
  load_q_parts(base, stride, N, r0, r1, t, qh, ql);
  float o[kD / 8][4] = {};
  OnlineSoftmax sm(p.scale);
  kv_tile_loop<true>(
      (N + kBK - 1) / kBK,
      [&](int tile, int stage) {
#pragma unroll
        for (int j = 0; j < kChunks / kThreads; ++j) {
          copy_chunk(base, stride, E, N, tile * kBK, threadIdx.x + j * kThreads, tiles + stage * kStage, kPart);
        }
        cp_async_commit();
      },
      [&](int, int stage) { split_chunks<kThreads, kChunks / kThreads, true>(tiles + stage * kStage, kPart, 0, kChunks); },
      [&](int tile, int stage) {
        if (!wg_active) return;
        const unsigned k_addr = smem_addr(tiles + stage * kStage);
        const int valid = min(kBK, N - tile * kBK);
        attend_tile(k_addr, kPart, valid, t, qh, ql, o, sm);
      });
  if (!wg_active) return;
  float i0, i1;
  sm.finish(i0, i1);
  store_rows<float, kD>(p.out, o, i0, i1, static_cast<std::size_t>(b) * N, h, E, N, r0, r1, t);
#else
  (void)p;
#endif
}

// The whole K/V sequence resident (up to kResidentMaxKeys keys): one block per (batch, head) copies and
// splits K and V once, then its WG warpgroups take the head's query tiles in turn (wg, wg + WG, ...).
// No block barrier follows the copy, so the warpgroups drift apart and one's softmax can overlap
// another's wgmma. Parts of ceil(N / 16) * 16 key rows; a tile of 64 keys starts 8192 bytes further.
constexpr int kResidentMaxKeys = kAttentionRowMaxTokens;  // the bound attention_variants offers 204 / 205 under
static_assert(kResidentMaxKeys % 16 == 0);
constexpr unsigned resident_part_bytes(int tokens) { return static_cast<unsigned>((tokens + 15) / 16 * 16 * 128); }
constexpr int resident_smem_bytes(int tokens) { return static_cast<int>(4 * resident_part_bytes(tokens)) + 1024; }

template <int WG>
__global__ void __launch_bounds__(WG * 128, WG == 2 ? 2 : 1) attention_bf16x3_resident_kernel(AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  wait_prior_grid();
  constexpr int kThreads = WG * 128;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const parts = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);

  const int N = p.tokens, E = p.heads * kD;
  const int h = blockIdx.y, b = blockIdx.z;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const float* base =
      static_cast<const float*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * kD;
  const unsigned part = resident_part_bytes(N);
  const int chunks = (N + 15) / 16 * 16 * (kD / 4);  // fp32 chunks of K (and of V)
  for (int i = threadIdx.x; i < chunks; i += kThreads) copy_chunk(base, stride, E, N, 0, i, parts, part);
  cp_async_commit();

  const int query_tiles = (query_tokens(p) + 63) / 64;
  std::uint32_t qh[kD / 16][4], ql[kD / 16][4];
  int qt = wg;
  if (qt < query_tiles) load_q_parts(base, stride, N, qt * 64 + warp * 16 + g, qt * 64 + warp * 16 + g + 8, t, qh, ql);
  cp_async_wait<0>();
  split_chunks<kThreads, kResidentMaxKeys * (kD / 4) / kThreads>(parts, part, 0, chunks);
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();
  const unsigned k_addr = smem_addr(parts);
  for (; qt < query_tiles; qt += WG) {
    const int r0 = qt * 64 + warp * 16 + g, r1 = r0 + 8;
    float o[kD / 8][4] = {};
    OnlineSoftmax sm(p.scale);
    attend_keys(k_addr, part, N, t, qh, ql, o, sm);
    if (qt + WG < query_tiles) load_q_parts(base, stride, N, r0 + 64 * WG, r1 + 64 * WG, t, qh, ql);
    float i0, i1;
    sm.finish(i0, i1);
    store_rows<float, kD>(p.out, o, i0, i1, static_cast<std::size_t>(b) * N, h, E, N, r0, r1, t);
  }
#else
  (void)p;
#endif
}

template <int WG>
void launch_resident(const AttentionParams& p, cudaStream_t s) {
  VITRT_CHECK(p.tokens <= kResidentMaxKeys, "attention: the resident 3xBF16 kernel takes at most ", kResidentMaxKeys,
              " tokens, not ", p.tokens);
  const int bytes = resident_smem_bytes(p.tokens);
  allow_dynamic_smem(attention_bf16x3_resident_kernel<WG>, resident_smem_bytes(kResidentMaxKeys));
  launch_dependent(Pdl::attention, attention_bf16x3_resident_kernel<WG>, dim3(1, p.heads, p.batch), WG * 128, bytes, s, p);
}

template <int WG>
void launch_wg(const AttentionParams& p, cudaStream_t s) {
  allow_dynamic_smem(attention_bf16x3_kernel<WG>, kSmemBytes);
  const dim3 grid((query_tokens(p) + 64 * WG - 1) / (64 * WG), p.heads, p.batch);
  launch_dependent(Pdl::attention, attention_bf16x3_kernel<WG>, grid, WG * 128, kSmemBytes, s, p);
}

}  // namespace

bool attention_bf16x3_supports(const AttentionParams& p) {
#ifdef VITRT_CUDA_SM90A
  return p.dt == DT::f32 && p.tf32_session && p.head_dim == kD && p.arch == 90;
#else
  (void)p;
  return false;
#endif
}

void attention_bf16x3(const AttentionParams& p, cudaStream_t s) {
  VITRT_CHECK(attention_bf16x3_supports(p), "attention: the 3xBF16 kernel does not take head dim ", p.head_dim, " ",
              dt_name(p.dt), p.tf32_session ? "" : " outside tf32 sessions", " on compute capability ", p.arch,
              " (it needs head dim 64, fp32 activations in a tf32 session, sm_90a)");
  switch (p.variant) {
    case kAttentionTf32Bf16x3Head2: launch_resident<2>(p, s); break;
    case kAttentionTf32Bf16x3Head4: launch_resident<4>(p, s); break;
    default: launch_wg<2>(p, s); break;
  }
}

}  // namespace vitrt::cuda
