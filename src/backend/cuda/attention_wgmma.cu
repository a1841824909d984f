// Fused attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a), for fp16/bf16 with
// head dim 64 (every ViT-Ti/S/B/L model). Each warpgroup (4 warps) owns 64 query rows; one or two
// warpgroups share each K/V tile. Per tile of 64 keys:
//   S = Q K^T   wgmma m64n64k16 (m64n16k16 pieces for the last, partial tile), Q from registers, K from
//               shared memory (K-major, 128-byte swizzle);
//   softmax     the online softmax of attention_tiles.cuh on the accumulator fragments, which have the
//               layout of mma.sync's, so the probabilities pack straight into the A fragments of
//   O += P V    wgmma m64n64k16, P from registers, V from shared memory read transposed (MN-major).
// K/V tiles are double-buffered with cp.async into the swizzled layout that the wgmma shared-memory
// descriptors describe. A second kernel (attention_wgmma_row_kernel) takes sequences of up to 256 keys
// whole, with a one-pass softmax. Without an sm_90a build the kernel body is empty and attention_wgmma_supports()
// says no, so nothing launches it.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>
#include <utility>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kD = 64, kBK = 64;                           // head dim, keys per tile
constexpr int kTileElems = kBK * kD;                       // one K or V tile: 64 rows of 128 bytes
// Two stages of K and V, 512 bytes of ones (the B operand that sums P's rows on the tensor cores), and
// alignment slack.
constexpr int kSmemBytes = 2 * 2 * kTileElems * 2 + 512 + 1024;


// S > 1 (one warpgroup per block): the S blocks of a thread-block cluster share one query tile and
// split its key tiles S ways; each keeps its own running max, sum and O, and the cluster's first block
// merges the others' through distributed shared memory before it writes the rows. More blocks, each
// with a shorter chain of tiles: for batches too small to fill the GPU.
template <typename T, int WG, int S = 1>
__global__ void __launch_bounds__(WG * 128) attention_wgmma_kernel(AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  wait_prior_grid();
  allow_next_grid();  // the next kernel may start its own preparation (gemm_small.cuh)
  static_assert(S == 1 || WG == 1, "split key tiles take one warpgroup per block");
  extern __shared__ unsigned char smem_raw[];
  // [stage][K, V][64 x 64], 1024-aligned (the swizzle pattern repeats every 8 rows of 128 bytes).
  T* tiles = reinterpret_cast<T*>(smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024));

  const int N = p.tokens, E = p.heads * kD;
  const int split = static_cast<int>(blockIdx.x) % S;  // this block's share of the key tiles
  const int h = blockIdx.y, b = blockIdx.z, q0 = static_cast<int>(blockIdx.x) / S * 64 * WG;
  const int all_tiles = (N + kBK - 1) / kBK, per_split = (all_tiles + S - 1) / S;
  const int first_tile = split * per_split, my_tiles = max(0, min(per_split, all_tiles - first_tile));
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const T* base = static_cast<const T*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * kD;
  const int r0 = q0 + wg * 64 + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows
  T* ones_s = tiles + 4 * kTileElems;
  if (threadIdx.x < 128) reinterpret_cast<std::uint32_t*>(ones_s)[threadIdx.x] = pack<T>(1.0f, 1.0f);
  const bool wg_active = q0 + wg * 64 < query_tokens(p);    // uniform over the warpgroup

  std::uint32_t qf[kD / 16][4];  // Q as the register A operand of S = Q K^T
  load_q_fragments<T, kD>(base, stride, N, r0, r1, t, qf);
  float o[kD / 8][4] = {};
  float l[1][4] = {};  // each row's sum of P as rounded for P V, in every column (P times ones)
  OnlineSoftmax sm(p.scale);
  if (my_tiles > 0) kv_tile_loop<true>(
      my_tiles,
      [&](int i, int stage) {
        T* k_dst = tiles + stage * 2 * kTileElems;
        load_kv_tile<T, kD, kBK, Swizzle128, WG * 128>(base, stride, E, N, first_tile + i, k_dst, k_dst + kTileElems);
      },
      [&](int i, int stage) {
        const int tile = first_tile + i;
        if (!wg_active) return;
        const unsigned k_addr = smem_addr(tiles + stage * 2 * kTileElems), v_addr = k_addr + kTileElems * 2;
        const int valid = min(kBK, N - tile * kBK);
        with_pieces(valid, [&](auto pieces) {
          constexpr int P = decltype(pieces)::value;
          // Descriptors first: an input register defined between two wgmmas of one stage makes ptxas
          // serialize them. K rows are keys (the N side), 128 bytes of head dim each: the 16-wide slice ks
          // of the head dim starts 32 bytes further into the swizzled rows; 16 keys further is 2048 bytes.
          const Sw128Desc k_at(k_addr), v_at(v_addr);
          std::uint64_t kd[P][kD / 16], vd[P];
#pragma unroll
          for (int c = 0; c < P; ++c) {
            vd[c] = v_at.at(c * 2048);
#pragma unroll
            for (int ks = 0; ks < kD / 16; ++ks) kd[c][ks] = k_at.at(c * 2048 + ks * 32);
          }
          pin(kd);
          pin(vd);
          // S = Q K^T for the P pieces of 16 keys.
          float s[2 * P][4];
          wgmma_fence();
#pragma unroll
          for (int ks = 0; ks < kD / 16; ++ks) {
            if constexpr (P == 4) {
              wgmma_n64<T, 0>(s, qf[ks], kd[0][ks], ks);
            } else {
              [&]<int... C>(std::integer_sequence<int, C...>) {
                (wgmma_n16<T, C, 0>(s, qf[ks], kd[C][ks], ks), ...);
              }(std::make_integer_sequence<int, P>{});
            }
          }
          wgmma_commit();
          wgmma_wait<0>();
          fence_regs(s);
          sm.next_tile(s, o, valid, t, &l);  // masks keys >= valid
          std::uint32_t pf[P][4];
#pragma unroll
          for (int kk = 0; kk < P; ++kk) probs_to_a_fragment<T, false>(sm, s[2 * kk], s[2 * kk + 1], pf[kk]);
          // O += P V, 16 keys per instruction: V rows are keys (the K side of this product), stored MN-major;
          // and the row sums, P times a 16 x 8 block of ones.
          const std::uint64_t ones_d = plain_desc(smem_addr(ones_s));
          fence_regs(o);
          fence_regs(l);
          wgmma_fence();
#pragma unroll
          for (int kk = 0; kk < P; ++kk) wgmma_n64<T, 1>(o, pf[kk], vd[kk], 1);
#pragma unroll
          for (int kk = 0; kk < P; ++kk) wgmma_n8<T>(l[0], pf[kk], ones_d, 1);
          wgmma_commit();
          wgmma_wait<0>();
          fence_regs(o);
          fence_regs(l);
        });
      });
  if (!wg_active) return;  // uniform over a cluster: its blocks share the query tile
  sm.l0 = l[0][0];  // the whole row's sum in every thread of the quad (row g)
  sm.l1 = l[0][2];  // (row g + 8)
  if constexpr (S > 1) {
    // Each thread's state (maxima, partial sums, O fragments) goes to its own slots of this block's
    // shared memory (the K/V tiles are free: kv_tile_loop ends on a barrier); block 0 of the cluster
    // reads the same thread's slots in the other blocks and merges them as the online softmax merges
    // two tiles.
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    constexpr int kSlots = 4 + kD / 2;  // m0, m1, l0, l1 and 32 O values per thread
    static_assert(kSlots * 128 * 4 <= 4 * kTileElems * 2, "exchange slots fit in the K/V tiles");
    float* mine = reinterpret_cast<float*>(tiles);
    const int tid = threadIdx.x;
    mine[0 * 128 + tid] = sm.m0;
    mine[1 * 128 + tid] = sm.m1;
    mine[2 * 128 + tid] = sm.l0;
    mine[3 * 128 + tid] = sm.l1;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) mine[(4 + nt * 4 + e) * 128 + tid] = o[nt][e];
    cluster.sync();
    if (cluster.block_rank() == 0) {
#pragma unroll
      for (int r = 1; r < S; ++r) {
        const float* peer = cluster.map_shared_rank(mine, r);
        float a0, a1, b0, b1;
        sm.merge(peer[0 * 128 + tid], peer[1 * 128 + tid], peer[2 * 128 + tid], peer[3 * 128 + tid], a0, a1, b0, b1);
#pragma unroll
        for (int nt = 0; nt < kD / 8; ++nt) {
          o[nt][0] = o[nt][0] * a0 + peer[(4 + nt * 4 + 0) * 128 + tid] * b0;
          o[nt][1] = o[nt][1] * a0 + peer[(4 + nt * 4 + 1) * 128 + tid] * b0;
          o[nt][2] = o[nt][2] * a1 + peer[(4 + nt * 4 + 2) * 128 + tid] * b1;
          o[nt][3] = o[nt][3] * a1 + peer[(4 + nt * 4 + 3) * 128 + tid] * b1;
        }
      }
    }
    cluster.sync();  // the others' shared memory stays valid until block 0 has read it
    if (cluster.block_rank() != 0) return;
  }
  // The warpgroup's rows leave through its own 8 KB of the K/V tiles (free: kv_tile_loop ends on a
  // barrier; in a cluster, block 0's exchange slots have been read).
  const int row0 = q0 + wg * 64;
  store_rows_staged<T>(p.out, o, 1.0f / sm.l0, 1.0f / sm.l1, tiles + wg * 64 * kD,
                       (static_cast<std::size_t>(b) * N + row0) * E + static_cast<std::size_t>(h) * kD, E, N - row0, warp,
                       lane);
#else
  (void)p;
#endif
}

// Every key of the sequence at once (N <= 256, Q = ceil(N / 16) pieces of 16 keys), one warpgroup per
// block. K and V land in shared memory whole (two copy groups, so S = Q K^T starts once K is in) and
// stay there while the block takes `tiles` query tiles of 64 rows in turn (1, 2, or every tile of the
// (batch, head): one K/V load per head instead of one per tile). Per query tile, S for all keys is one
// batch of wgmmas into 8 Q registers per thread and the softmax is one pass: one maximum, one
// exponential per score, nothing to rescale. O += P V is issued per 64 keys as their probabilities are
// ready, so the tensor cores run while the next ones are computed. Q tiles come through shared memory
// too (the A operand of S = Q K^T), each copied while the tile before it is computed. Warps whose 16
// rows are all past the end (in the last query tile) feed P = 0 (kUniform below). Output rows leave
// through shared memory as whole rows.
template <typename T, int Q>
__global__ void __launch_bounds__(128, Q >= 10 && Q <= 13 ? 3 : 1) attention_wgmma_row_kernel(AttentionParams p, int tiles) {
#ifdef VITRT_WGMMA_DEVICE
  wait_prior_grid();
  allow_next_grid();  // the next kernel may start its own preparation (gemm_small.cuh)
  constexpr int F = Q / 4, R = Q % 4, KT = 2 * Q;  // full 64-key tiles, pieces after them, 8-key tiles
  // 145-208 keys (vit_base's 197 among them): warps whose rows all lie past the end take P = 2^(s sl -
  // inf) = 0 through the same instructions as the others instead of a branch per 16-key piece (its
  // zeroing and reconvergence on every tile cost more than those 3 warps' work in the last query tile);
  // 168 registers, 3 blocks per SM. Longer sequences keep the branch (the uniform form needs 246-255).
  constexpr bool kUniform = Q >= 10 && Q <= 13;
  constexpr int G = F + (R > 0 ? 1 : 0);            // groups of P V products
  extern __shared__ unsigned char smem_raw[];
  T* k_s = reinterpret_cast<T*>(smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024));
  T* v_s = k_s + Q * 16 * kD;  // Q * 2048 bytes further: still 1024-aligned
  T* q_s = v_s + Q * 16 * kD;  // two 64-row Q tiles

  const int N = p.tokens, E = p.heads * kD;
  const int h = blockIdx.y, b = blockIdx.z, first = static_cast<int>(blockIdx.x) * tiles;
  const int last = min(first + tiles, (query_tokens(p) + 63) / 64);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const T* base = static_cast<const T*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * kD;

  // Rows [r0, r0 + rows) of one of Q, K, V (column col of the qkv row) into a swizzled tile, zeros past
  // the last token; one copy group.
  const auto copy_rows = [&](int r0, int col, T* dst, auto rows) {
#pragma unroll
    for (int j = 0; j < decltype(rows)::value / 16; ++j) {
      const int i = threadIdx.x + j * 128, r = i / 8, c = (i % 8) * 8;
      const bool ok = r0 + r < N;
      cp_async16(dst + Swizzle128::offset(r, c), base + static_cast<std::size_t>(ok ? r0 + r : 0) * stride + col + c, ok);
    }
    cp_async_commit();
  };
  // K, the first Q tile, then V: S = Q K^T waits for the first two groups only.
  copy_rows(0, E, k_s, std::integral_constant<int, Q * 16>{});
  copy_rows(first * 64, 0, q_s + (first & 1) * 64 * kD, std::integral_constant<int, 64>{});
  copy_rows(0, 2 * E, v_s, std::integral_constant<int, Q * 16>{});
  // Whether V has been waited for. The same as qt > first, but testing qt == first below made ptxas
  // allocate 8 more registers (164 instead of 156 at 197 tokens).
  bool v_landed = false;
  for (int qt = first; qt < last; ++qt) {
    const int q0 = qt * 64;
    const bool rows_live = q0 + warp * 16 < N;  // uniform over the warp
    // The descriptors are made inside the loop (from an address the compiler cannot hoist): kept live
    // across it they would cost 58 registers.
    unsigned k_addr, v_addr, q_addr;
    asm volatile("mov.u32 %0, %1;\n" : "=r"(k_addr) : "r"(smem_addr(k_s)));
    asm volatile("mov.u32 %0, %1;\n" : "=r"(v_addr) : "r"(smem_addr(v_s)));
    asm volatile("mov.u32 %0, %1;\n" : "=r"(q_addr) : "r"(smem_addr(q_s + (qt & 1) * 64 * kD)));
    const Sw128Desc k_at(k_addr), v_at(v_addr), q_at(q_addr);
    std::uint64_t kd[F + R][kD / 16];  // per full tile, then per remaining piece; per 16 of the head dim
#pragma unroll
    for (int i = 0; i < F + R; ++i)
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) kd[i][ks] = k_at.at((i < F ? i * 8192 : F * 8192 + (i - F) * 2048) + ks * 32);
    std::uint64_t qd[kD / 16];
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) qd[ks] = q_at.at(ks * 32);
    // This tile's Q (and on the first tile K) has landed in every thread's share; the other Q buffer
    // was last read by the previous tile's S and the output rows staged in it after that.
    if (qt == first) cp_async_wait<1>();
    else cp_async_wait<0>();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    if (qt + 1 < last) copy_rows((qt + 1) * 64, 0, q_s + ((qt + 1) & 1) * 64 * kD, std::integral_constant<int, 64>{});
    pin(kd);
    pin(qd);

    // S = Q K^T over all Q pieces.
    float s[KT][4];
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
#pragma unroll
      for (int f = 0; f < F; ++f) wgmma_ss_n64<T>(reinterpret_cast<float(&)[8][4]>(s[8 * f]), qd[ks], kd[f][ks], ks);
      [&]<int... C>(std::integer_sequence<int, C...>) {
        (wgmma_ss_n16<T, 4 * F + C>(s, qd[ks], kd[F + C][ks], ks), ...);
      }(std::make_integer_sequence<int, R>{});
    }
    wgmma_commit();
    if (!v_landed) {  // V, while S runs (the next Q tile's copy may still be on its way)
      if (qt + 1 < last) cp_async_wait<1>();
      else cp_async_wait<0>();
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      __syncthreads();
      v_landed = true;
    }
    std::uint64_t vd[Q];
#pragma unroll
    for (int c = 0; c < Q; ++c) vd[c] = v_at.at(c * 2048);
    pin(vd);
    wgmma_wait<0>();
    fence_regs(s);

    OnlineSoftmax sm(p.scale);
    if (rows_live) {
      sm.only_tile(s, N, t);
    } else if constexpr (kUniform) {
      sm.ms0 = INFINITY;
      sm.ms1 = INFINITY;
    }
    float o[kD / 8][4] = {};
    // O += P V, one group of up to 4 pieces (64 keys) at a time. The row sums stay on the FP32 pipe
    // here (unrounded P). Taken on the tensor cores from P as rounded, as the online-softmax kernel
    // does, they gave vit_base bf16 a top-1 agreement of 98.83% on verify_torch.py's 512 inputs, below
    // its 99% bound, for the same relative error (0.00634; docs/performance.md, session 16).
    [&]<int... Gi>(std::integer_sequence<int, Gi...>) {
      (
          [&] {
            constexpr int P = Gi < F ? 4 : R, k0 = 4 * Gi;
            std::uint32_t pf[P][4];
            if constexpr (kUniform) {
              // The empty asm statements keep each group's and each piece's work in program order:
              // scheduled freely, the kernel took 175-226 registers.
              fence_regs(reinterpret_cast<float(&)[2 * P][4]>(s[2 * k0]));
#pragma unroll
              for (int kk = 0; kk < P; ++kk) {
                probs_to_a_fragment<T>(sm, s[2 * (k0 + kk)], s[2 * (k0 + kk) + 1], pf[kk]);
                asm volatile("" : "+f"(sm.l0), "+f"(sm.l1), "+r"(pf[kk][0]), "+r"(pf[kk][1]), "+r"(pf[kk][2]), "+r"(pf[kk][3]));
              }
            } else {
#pragma unroll
              for (int kk = 0; kk < P; ++kk) {
                if (rows_live) {
                  probs_to_a_fragment<T>(sm, s[2 * (k0 + kk)], s[2 * (k0 + kk) + 1], pf[kk]);
                } else {
#pragma unroll
                  for (int e = 0; e < 4; ++e) pf[kk][e] = 0u;
                }
              }
            }
            fence_regs(o);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < P; ++kk) wgmma_n64<T, 1>(o, pf[kk], vd[k0 + kk], 1);
            wgmma_commit();
          }(),
          ...);
    }(std::make_integer_sequence<int, G>{});
    wgmma_wait<0>();
    fence_regs(o);
    if (rows_live) {
      // The rows go through this tile's Q buffer (S has read it), so that the stores are whole rows.
      float i0, i1;
      sm.finish(i0, i1);
      store_rows_staged<T>(p.out, o, i0, i1, q_s + (qt & 1) * 64 * kD,
                           (static_cast<std::size_t>(b) * N + q0) * E + static_cast<std::size_t>(h) * kD, E, N - q0, warp,
                           lane);
    }
  }
#else
  (void)p;
  (void)tiles;
#endif
}

template <typename T, int WG>
void launch_wg(const AttentionParams& p, cudaStream_t s) {
  const dim3 grid((query_tokens(p) + 64 * WG - 1) / (64 * WG), p.heads, p.batch);
  launch_dependent(Pdl::attention, attention_wgmma_kernel<T, WG>, grid, WG * 128, kSmemBytes, s, p);
}

// S blocks per query tile in clusters of S (distributed shared memory needs them co-scheduled).
template <typename T, int S>
void launch_split(const AttentionParams& p, cudaStream_t s) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3((query_tokens(p) + 63) / 64 * S, p.heads, p.batch);
  cfg.blockDim = dim3(128);
  cfg.dynamicSmemBytes = kSmemBytes;
  cfg.stream = s;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = S;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, attention_wgmma_kernel<T, 1, S>, p));
}

template <typename T, int Q>
void launch_row_q(const AttentionParams& p, cudaStream_t s) {
  constexpr int bytes = (Q * 16 * 2 + 2 * 64) * kD * 2 + 1024;  // K, V, two Q tiles, alignment slack
  allow_dynamic_smem(attention_wgmma_row_kernel<T, Q>, bytes);
  const int query_tiles = (query_tokens(p) + 63) / 64;
  const int tiles = p.variant == kAttentionWgmmaRowHead ? query_tiles : p.variant == kAttentionWgmmaRow2 ? 2 : 1;
  const dim3 grid((query_tiles + tiles - 1) / tiles, p.heads, p.batch);
  launch_dependent(Pdl::attention, attention_wgmma_row_kernel<T, Q>, grid, 128, bytes, s, p, tiles);
}

template <typename T, int... Qm1>
void launch_row(const AttentionParams& p, cudaStream_t s, std::integer_sequence<int, Qm1...>) {
  const int q = (p.tokens + 15) / 16;
  VITRT_CHECK(q >= 1 && q <= kAttentionRowMaxTokens / 16, "attention: the all-keys wgmma kernel takes at most ", kAttentionRowMaxTokens,
              " tokens, not ", p.tokens);
  (void)((q == Qm1 + 1 && (launch_row_q<T, Qm1 + 1>(p, s), true)) || ...);
}

template <typename T>
void launch(const AttentionParams& p, cudaStream_t s) {
  switch (p.variant) {
    case kAttentionWgmma1: launch_wg<T, 1>(p, s); break;
    case kAttentionWgmmaSplit2: launch_split<T, 2>(p, s); break;
    case kAttentionWgmmaSplit4: launch_split<T, 4>(p, s); break;
    case kAttentionWgmmaWs:
    case kAttentionWgmmaWs128:
    case kAttentionWgmmaWsKeys: attention_wgmma_ws(p, s); break;
    case kAttentionWgmmaRow:
    case kAttentionWgmmaRow2:
    case kAttentionWgmmaRowHead: launch_row<T>(p, s, std::make_integer_sequence<int, kAttentionRowMaxTokens / 16>{}); break;
    default: launch_wg<T, 2>(p, s); break;
  }
}

}  // namespace

bool attention_wgmma_supports(const AttentionParams& p) {
#ifdef VITRT_CUDA_SM90A
  return p.dt != DT::f32 && p.head_dim == kD && p.arch == 90;
#else
  (void)p;
  return false;
#endif
}

void attention_wgmma(const AttentionParams& p, cudaStream_t s) {
  VITRT_CHECK(attention_wgmma_supports(p), "attention: the wgmma kernel does not take head dim ", p.head_dim, " ",
              dt_name(p.dt), " on compute capability ", p.arch, " (it needs head dim 64, fp16/bf16, sm_90a)");
  // 16-byte copies in (cp.async) and out (whole output rows).
  VITRT_CHECK(reinterpret_cast<std::uintptr_t>(p.out) % 16 == 0 && reinterpret_cast<std::uintptr_t>(p.qkv) % 16 == 0,
              "attention: the wgmma kernels need 16-byte aligned qkv and output buffers");
  if (p.dt == DT::f16) launch<__half>(p, s);
  else launch<__nv_bfloat16>(p, s);
}

}  // namespace vitrt::cuda
