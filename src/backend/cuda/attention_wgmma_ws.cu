// Fused attention for fp16/bf16, head dim 64, on Hopper (sm_90a), with the work of a block split by
// role as FlashAttention-3 splits it: one producer warp copies K/V tiles of BK keys (64 or 128) with the
// tensor memory accelerator (TMA) into a ring of kStages stages, and two consumer warpgroups (64 query rows
// each) compute from them. Stages are handed over through mbarriers (full: the copy has landed; empty:
// every consumer warp is done with it), so the consumers never wait on each other at a block barrier.
// Persistent: one block per SM takes work items (128 query rows of one image and head) in turn, and the
// producer brings each item's Q tiles too, running ahead across items. Per consumer and tile j of keys:
//   its turn     S_j = Q K_j^T and O += P_{j-1} V_{j-1} issued back to back (wgmma, Q and K / V from
//                shared memory, P from registers), then the turn passes to the other warpgroup
//                (named barriers 1 and 2): while one warpgroup's products run on the tensor cores, the
//                other computes its softmax on the special-function and FP32 pipes;
//   softmax      once S_j is in: the online softmax (attention_tiles.cuh), then, once P_{j-1} V_{j-1} is
//                in, O and the row sums (P times ones on the tensor cores) rescaled, P_j packed.
// The online-softmax kernel of attention_wgmma.cu does the same work per tile with both products
// waited for in turn and the two warpgroups meeting at a block barrier twice per tile.
// Split keys (kAttentionWgmmaWsKeys, for few work items: vit_base_patch16_384 at batch 1 has 60 of 128
// rows for 132 SMs): an item is 64 query rows, and the two warpgroups take the same rows, each half of the
// key tiles, in the same turns. Each loads its own ring of three stages (thread 0 of the warpgroup; no
// producer warp, so that two blocks of 8 warps fit an SM at 128 registers). The second leaves its O in
// the stage of its last tile, once all its warps are done reading that stage (named barrier 5), and its
// maxima and row sums in shared memory (named barrier 3); the first merges them, frees both (the stage
// through its empty barrier, the rest on barrier 4) and stores the rows. Twice the items, half the chain
// each.
#include <cuda.h>  // CUtensorMap
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kD = 64;                        // head dim
constexpr int stages(bool split) { return split ? 6 : 4; }  // K/V tiles in flight (split: 3 per consumer)
constexpr int kConsumers = 2;                 // warpgroups of 64 query rows
// The consumers and the producer warp; split keys: the consumers alone (each loads its own ring).
constexpr int threads(bool split) { return kConsumers * 128 + (split ? 0 : 32); }
constexpr int kQBytes = 64 * kD * 2;          // one Q tile: 64 rows of 128 bytes (128-byte swizzle)
// Query tiles of 64 rows per item: one per consumer, or one for both (split keys); in two sets (this
// item's and the next one's), or one (split keys, to fit two blocks per SM).
constexpr int q_tiles(bool split) { return split ? 1 : kConsumers; }
constexpr int q_sets(bool split) { return split ? 1 : 2; }
// The split-keys merge, besides O in a stage: per thread of the second warpgroup (m0, m1, l0, l1).
constexpr int kMergeBytes = 128 * 16;
// One K or V tile of BK keys, and the shared memory: [stage][K, V] tiles (split keys: stages 0-2 the first
// warpgroup's ring, 3-5 the second's), the Q tiles (which also stage the output rows), 512 bytes of ones
// (the B operand that sums P's rows), the mbarriers (128 bytes), 8 bytes per consumer thread
// (order_before_wait), the merge (split keys), alignment slack: 100 KB with 64-key tiles, 164 KB with
// 128, 110 KB split.
constexpr int kv_bytes(int bk) { return bk * kD * 2; }
constexpr int smem_bytes(int bk, bool split) {
  return stages(split) * 2 * kv_bytes(bk) + q_sets(split) * q_tiles(split) * kQBytes + 512 + 128 +
         kConsumers * 128 * 8 + (split ? kMergeBytes : 0) + 1024;
}

#ifdef VITRT_WGMMA_DEVICE
// Up to this many keys after the last whole tile (577 = 9 x 64 + 1) are taken on the FP32 pipe, one at
// a time, instead of as a whole tile (tensor-core work and exponentials for all its keys). With 128-key
// tiles 577 = 4 x 128 + 65: the last tile is a masked one.
constexpr int kTailKeys = 4;

// Two 16-bit values (low half first) as floats.
template <typename T>
__device__ __forceinline__ float2 unpack2(std::uint32_t v) {
  if constexpr (std::is_same_v<T, __half>) return __half22float2(reinterpret_cast<const __half2&>(v));
  else return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xFFFF0000u));
}
// The dot product of two runs of 8 16-bit values.
template <typename T>
__device__ __forceinline__ float dot8(uint4 a, uint4 b, float acc) {
  const std::uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 x = unpack2<T>(av[k]), y = unpack2<T>(bv[k]);
    acc = fmaf(x.x, y.x, acc);
    acc = fmaf(x.y, y.y, acc);
  }
  return acc;
}
// Turns at the tensor cores: warpgroup w waits on named barrier 1 + w (256 threads: its own 128 and the
// other warpgroup's arrival), and passes the turn by arriving on the other's.
// (Immediate barrier numbers: with a register operand ptxas reserves all 16 of a block's barriers.)
__device__ __forceinline__ void turn_wait(int wg) {
  if (wg == 0) asm volatile("bar.sync 1, 256;\n" ::: "memory");
  else asm volatile("bar.sync 2, 256;\n" ::: "memory");
}
__device__ __forceinline__ void turn_pass(int wg) {
  if (wg == 0) asm volatile("bar.arrive 2, 256;\n" ::: "memory");
  else asm volatile("bar.arrive 1, 256;\n" ::: "memory");
}
// Split keys: the second warpgroup's part is in shared memory (3), the first has read it (4).
__device__ __forceinline__ void merge_ready_arrive() { asm volatile("bar.arrive 3, 256;\n" ::: "memory"); }
__device__ __forceinline__ void merge_ready_wait() { asm volatile("bar.sync 3, 256;\n" ::: "memory"); }
__device__ __forceinline__ void merge_free_arrive() { asm volatile("bar.arrive 4, 256;\n" ::: "memory"); }
__device__ __forceinline__ void merge_free_wait() { asm volatile("bar.sync 4, 256;\n" ::: "memory"); }
// Split keys: the second warpgroup alone (its 128 threads) is done with the stage that takes its O (5).
__device__ __forceinline__ void wg1_sync() { asm volatile("bar.sync 5, 128;\n" ::: "memory"); }
// ptxas places the wait for the previous tile's P V (wgmma.wait_group 0) wherever it likes before the
// first use of O; in the 64-key kernel it put it right after S arrived, ahead of the whole softmax, so
// every warpgroup waited for its own P V before exponentiating (ncu: 10% of the tile loop's stall
// samples on that one wait). A shared store, to this thread's own scratch slot that nothing reads, of
// the tile's last probabilities is a memory operation ptxas keeps ahead of the wait, and it cannot be
// issued before those exponentials: it anchors the wait after the softmax's maxima and most of its work
// (ncu, runs 271 and 273: the wait's stall samples 2,433 -> 194; tuner, runs 272-274: 0-1% faster).
__device__ __forceinline__ void order_before_wait(unsigned scratch, float a, float b) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(scratch), "f"(a), "f"(b) : "memory");
}
#endif

#ifdef VITRT_WGMMA_DEVICE
// kv_map: boxes of BK tokens (K and V tiles); q_map: boxes of 64 (Q tiles).
template <typename T, int BK, bool Split>
__device__ __forceinline__ void attention_ws(const CUtensorMap* kv_map, const CUtensorMap* q_map, const AttentionParams& p) {
  constexpr int kKvBytes = kv_bytes(BK);
  constexpr int kQTiles = q_tiles(Split), kQSets = q_sets(Split), kStages = stages(Split);
  constexpr int kRing = Split ? kStages / kConsumers : kStages;  // stages per ring (one ring per consumer if split)
  constexpr int kReaders = Split ? 4 : 4 * kConsumers;           // consumer warps that read a K/V or Q tile
  wait_prior_grid();
  extern __shared__ unsigned char smem_raw[];
  T* kv_s = reinterpret_cast<T*>(smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024));  // [stage][K, V]
  T* q_s = kv_s + kStages * 2 * BK * kD;         // [item % kQSets][query tile][64 x 64]
  T* ones_s = q_s + kQSets * kQTiles * 64 * kD;
  // K/V full[kStages], empty[kStages], Q full[kQSets], empty[kQSets]: at most 16 in 128 bytes.
  static_assert(2 * kStages + 2 * kQSets <= 16, "the mbarriers take 128 bytes");
  const unsigned bars = smem_addr(ones_s) + 512;
  const unsigned scratch = bars + 128 + 8 * threadIdx.x;  // consumer threads (order_before_wait)
  float4* ml_s = reinterpret_cast<float4*>(reinterpret_cast<unsigned char*>(ones_s) + 512 + 128 + kConsumers * 128 * 8);
  // Tile i of ring r (r = 0 unless split).
  const auto stage = [&](int r, int i) { return r * kRing + i % kRing; };
  const auto kv_full = [&](int r, int i) { return bars + 8 * stage(r, i); };
  const auto kv_empty = [&](int r, int i) { return bars + 8 * (kStages + stage(r, i)); };
  const auto kv_phase = [&](int i) { return static_cast<unsigned>(i / kRing) & 1; };
  const auto q_full = [&](int n) { return bars + 8 * (2 * kStages + n % kQSets); };
  const auto q_empty = [&](int n) { return bars + 8 * (2 * kStages + kQSets + n % kQSets); };
  const auto q_phase = [&](int n) { return static_cast<unsigned>(n / kQSets) & 1; };
  const auto kv_tile = [&](int r, int i) { return kv_s + stage(r, i) * 2 * BK * kD; };  // K, then V
  const auto q_tile = [&](int n, int wg) { return q_s + (n % kQSets * kQTiles + (Split ? 0 : wg)) * 64 * kD; };
  const auto kv_addr = [&](int r, int i) { return smem_addr(kv_tile(r, i)); };
  const auto q_addr = [&](int n, int wg) { return smem_addr(q_tile(n, wg)); };

  // Work items: kQTiles query tiles of 64 rows (128 rows; split keys 64) of one (image, head), query
  // blocks fastest, so that the blocks working at one time share K/V in L2; block x takes items x,
  // x + gridDim.x, ...
  const int N = p.tokens, E = p.heads * kD, key_tiles = (N + BK - 1) / BK;
  const int q_blocks = (query_tokens(p) + 64 * kQTiles - 1) / (64 * kQTiles);
  const int items = q_blocks * p.heads * p.batch;
  // Keys after the last whole tile, if few enough for tail() (taken by the consumer of the last tile).
  const int tail_keys = N > BK && N % BK <= kTailKeys ? N % BK : 0, tensor_tiles = key_tiles - (tail_keys > 0 ? 1 : 0);
  // Split keys: the first consumer takes key tiles [0, half), the second [half, key_tiles).
  const int half = Split ? (tensor_tiles + 1) / 2 : key_tiles;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) {
      mbar_init(bars + 8 * i, 1);
      mbar_init(bars + 8 * (kStages + i), kReaders);  // lane 0 of every consumer warp that reads it
    }
    for (int n = 0; n < kQSets; ++n) {
      mbar_init(q_full(n), 1);
      mbar_init(q_empty(n), Split ? 4 : 4 * kConsumers);  // the warps that store the rows
    }
    mbar_init_fence();
  }
  if (threadIdx.x < 128) reinterpret_cast<std::uint32_t*>(ones_s)[threadIdx.x] = pack<T>(1.0f, 1.0f);
  fence_proxy_async();  // the ones are read by wgmma
  __syncthreads();

  // Tile g of ring r's sequence (key tile j of image b, head h) into its stage, once every reader has
  // released tile g - kRing; the Q tiles of item n (query block qb) into set n % kQSets, once item
  // n - kQSets has released it.
  const auto load_kv = [&](int r, int g, int j, int b, int h) {
    if (g >= kRing) mbar_wait(kv_empty(r, g), kv_phase(g - kRing));
    mbar_arrive_expect(kv_full(r, g), 2 * kKvBytes);  // whole boxes, zeros past the end included
    tma_load_box(kv_addr(r, g), kv_map, E + h * kD, j * BK, b, kv_full(r, g));
    tma_load_box(kv_addr(r, g) + kKvBytes, kv_map, 2 * E + h * kD, j * BK, b, kv_full(r, g));
  };
  const auto load_q = [&](int n, int qb, int b, int h) {
    if (n >= kQSets) mbar_wait(q_empty(n), q_phase(n - kQSets));
    mbar_arrive_expect(q_full(n), kQTiles * kQBytes);
    for (int k = 0; k < kQTiles; ++k) tma_load_box(q_addr(n, k), q_map, h * kD, (qb * kQTiles + k) * 64, b, q_full(n));
  };
  if constexpr (!Split) {
    if (threadIdx.x >= kConsumers * 128) {
      // The producer warp: per item its Q tiles, then its K/V tiles, running ahead across items.
      if (threadIdx.x == kConsumers * 128) {
        for (int item = blockIdx.x, n = 0, g = 0; item < items; item += gridDim.x, ++n) {
          const int qb = item % q_blocks, h = item / q_blocks % p.heads, b = item / q_blocks / p.heads;
          load_q(n, qb, b, h);
          for (int j = 0; j < key_tiles; ++j) load_kv(0, g++, j, b, h);
        }
      }
      return;
    }
  }

  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, t = lane % 4;
  const int ring = Split ? wg : 0;
  const std::uint64_t ones_d = plain_desc(smem_addr(ones_s));
  float o[kD / 8][4];
  float l[1][4];                // row sums of P as rounded for P V, in every column (P times ones)
  std::uint32_t pf[BK / 16][4] = {};  // P of the previous tile, the A operand of its P V
  OnlineSoftmax sm(p.scale);
  if (wg == 1) turn_pass(1);  // warpgroup 0 takes the first turn

  // O += P V and l += P ones for the previous tile's P (pf), V at the descriptors vd; not committed.
  const auto issue_pv = [&](const std::uint64_t (&vd)[BK / 16]) {
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) wgmma_n64<T, 1>(o, pf[kk], vd[kk], 1);
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) wgmma_n8<T>(l[0], pf[kk], ones_d, 1);
  };

  // Tile i of this consumer's ring (tile j of its item's keys, n the item's index in the block's sequence).
  // Its turn: S_j = Q K_j^T and (First: none) P_{j-1} V_{j-1}. Then its softmax once S_j is in; O and l
  // rescaled once P_{j-1} V_{j-1} is in (that also frees pf and the stage of tile i - 1).
  const auto step = [&]<bool First>(int i, int j, int n) {
    float s[BK / 8][4];
    mbar_wait(kv_full(ring, i), kv_phase(i));
    // Descriptors before the first wgmma: an input defined between two of them serializes them. K's
    // blocks of 64 keys lie 8 KB apart (64 rows of 128 bytes), V's pieces of 16 keys 2 KB apart.
    const Sw128Desc q_at(q_addr(n, wg)), k_at(kv_addr(ring, i)), v_at(kv_addr(ring, i + kRing - 1) + kKvBytes);  // V of i - 1
    std::uint64_t qd[kD / 16], kd[BK / 64][kD / 16], vd[BK / 16];
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      qd[ks] = q_at.at(ks * 32);
#pragma unroll
      for (int kb = 0; kb < BK / 64; ++kb) kd[kb][ks] = k_at.at(kb * 8192 + ks * 32);
    }
#pragma unroll
    for (int c = 0; c < BK / 16; ++c) vd[c] = v_at.at(c * 2048);
    pin(qd);
    pin(kd);
    pin(vd);
    turn_wait(wg);
    fence_regs(o);
    fence_regs(l);
    wgmma_fence();
    // S in blocks of 64 keys: each block's 8 accumulator tiles are a float[8][4] of s.
#pragma unroll
    for (int kb = 0; kb < BK / 64; ++kb)
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks)
        wgmma_ss_n64<T>(reinterpret_cast<float(&)[8][4]>(s[8 * kb]), qd[ks], kd[kb][ks], ks);
    wgmma_commit();
    if constexpr (!First) {
      issue_pv(vd);
      wgmma_commit();
    }
    turn_pass(wg);

    if constexpr (!First) wgmma_wait<1>();
    else wgmma_wait<0>();
    fence_regs(s);
    float c0, c1;
    sm.next_tile_factors(s, min(BK, N - j * BK), t, c0, c1);  // masks keys past the end
#pragma unroll
    for (int r = 0; r < BK / 8; ++r)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[r][e] = sm.prob(s[r][e], e);
    if constexpr (!First) {
      order_before_wait(scratch, s[BK / 8 - 1][1], s[BK / 8 - 1][3]);
      wgmma_wait<0>();
      fence_regs(o);
      fence_regs(l);
      if (lane == 0) mbar_arrive(kv_empty(ring, i - 1));
    }
    OnlineSoftmax::rescale(o, c0, c1);
    OnlineSoftmax::rescale(l, c0, c1);
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      pf[kk][0] = pack<T>(s[2 * kk][0], s[2 * kk][1]);
      pf[kk][1] = pack<T>(s[2 * kk][2], s[2 * kk][3]);
      pf[kk][2] = pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pf[kk][3] = pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
  };

  // The item's last turn: P V of its last tile, i of the ring; then its stage goes back to the producer
  // (if release).
  const auto finish = [&](int i, bool release) {
    const Sw128Desc v_at(kv_addr(ring, i) + kKvBytes);
    std::uint64_t vd[BK / 16];
#pragma unroll
    for (int c = 0; c < BK / 16; ++c) vd[c] = v_at.at(c * 2048);
    pin(vd);
    turn_wait(wg);
    fence_regs(o);
    fence_regs(l);
    wgmma_fence();
    issue_pv(vd);
    wgmma_commit();
    turn_pass(wg);
    wgmma_wait<0>();
    fence_regs(o);
    fence_regs(l);
    if (release && lane == 0) mbar_arrive(kv_empty(ring, i));
  };

  // The first `count` keys (<= kTailKeys) of the K/V tile i of the ring (the item's last, partial tile),
  // on the FP32 pipe: each quad of threads takes the dot products of its two query rows a quarter each (Q
  // and K from shared memory, 128-byte swizzled), then the online-softmax update of O and l, key by key.
  const auto tail = [&](int i, int n, int count, bool release) {
    mbar_wait(kv_full(ring, i), kv_phase(i));
    const unsigned char* q_t = reinterpret_cast<const unsigned char*>(q_tile(n, wg));
    const unsigned char* k_t = reinterpret_cast<const unsigned char*>(kv_tile(ring, i));
    const unsigned char* v_t = k_t + kKvBytes;
    const int r0 = warp * 16 + lane / 4, r1 = r0 + 8;
    for (int k = 0; k < count; ++k) {
      float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
      for (int h2 = 0; h2 < 2; ++h2) {
        const int c = 2 * t + h2;  // 16-byte chunk of the head dim
        const uint4 kk = *reinterpret_cast<const uint4*>(k_t + k * 128 + ((c ^ (k & 7)) << 4));
        s0 = dot8<T>(*reinterpret_cast<const uint4*>(q_t + r0 * 128 + ((c ^ (r0 & 7)) << 4)), kk, s0);
        s1 = dot8<T>(*reinterpret_cast<const uint4*>(q_t + r1 * 128 + ((c ^ (r1 & 7)) << 4)), kk, s1);
      }
      for (int off = 1; off < 4; off <<= 1) {
        s0 += __shfl_xor_sync(0xffffffffu, s0, off);
        s1 += __shfl_xor_sync(0xffffffffu, s1, off);
      }
      const float mn0 = fmaxf(sm.m0, s0), mn1 = fmaxf(sm.m1, s1);
      const float c0 = exp2_approx((sm.m0 - mn0) * sm.sl), c1 = exp2_approx((sm.m1 - mn1) * sm.sl);
      const float p0 = exp2_approx((s0 - mn0) * sm.sl), p1 = exp2_approx((s1 - mn1) * sm.sl);
      sm.m0 = mn0;
      sm.m1 = mn1;
#pragma unroll
      for (int nt = 0; nt < kD / 8; ++nt) {
        const float2 v = unpack2<T>(*reinterpret_cast<const std::uint32_t*>(v_t + k * 128 + ((nt ^ (k & 7)) << 4) + 4 * t));
        o[nt][0] = fmaf(o[nt][0], c0, p0 * v.x);
        o[nt][1] = fmaf(o[nt][1], c0, p0 * v.y);
        o[nt][2] = fmaf(o[nt][2], c1, p1 * v.x);
        o[nt][3] = fmaf(o[nt][3], c1, p1 * v.y);
      }
      l[0][0] = fmaf(l[0][0], c0, p0);
      l[0][2] = fmaf(l[0][2], c1, p1);
    }
    __syncwarp();  // every lane's reads of the stage are done
    if (release && lane == 0) mbar_arrive(kv_empty(ring, i));
  };

  // This consumer's key tiles of an item: [j0, j1), the tail too if it takes the last one. Split keys: the
  // second consumer has at least one (the launcher checks), and keeps the stage of its last one for its O.
  const int j0 = Split && wg == 1 ? half : 0, j1 = Split && wg == 0 ? half : tensor_tiles;
  const bool takes_tail = tail_keys > 0 && (!Split || wg == 1), holds_last = Split && wg == 1;
  // Turns per item: a step per tile and the finish. Split keys: the second consumer, with one tile fewer
  // or as many, passes the turn it does not need so that the two keep alternating.
  const int idle_turns = Split ? half - (j1 - j0) : 0;
  const int second_tiles = key_tiles - half;  // split keys: the second consumer's tiles per item
  // Split keys: thread 0 of each consumer loads its ring (the first consumer's, the Q tile too), the first
  // kRing tiles of an item as it starts, then tile j + kRing - 2 before the step of tile j, into the stage
  // that tile j - 2 released in the step before.
  const bool loader = Split && threadIdx.x % 128 == 0;
  const int ring_tiles = wg == 0 ? half : second_tiles;
  int i = 0;
  for (int item = blockIdx.x, n = 0; item < items; item += gridDim.x, ++n) {
    const int qb = item % q_blocks, h = item / q_blocks % p.heads, b = item / q_blocks / p.heads;
    const int q0 = (qb * kQTiles + (Split ? 0 : wg)) * 64;  // this warpgroup's rows (it may have none: zeros, no stores)
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[nt][e] = 0.0f;
#pragma unroll
    for (int e = 0; e < 4; ++e) l[0][e] = 0.0f;
    sm.m0 = sm.m1 = -INFINITY;
    if (loader) {
      if (wg == 0) load_q(n, qb, b, h);
      for (int k = 0; k < min(kRing, ring_tiles); ++k) load_kv(ring, i + k, j0 + k, b, h);
    }
    mbar_wait(q_full(n), q_phase(n));
    // Every tile whole, the last one too (zeros past the end, masked): with a 16-key piece count per
    // tile shape (as attention_wgmma.cu has), ptxas serialized every wgmma of the kernel (C7511).
    step.template operator()<true>(i++, j0, n);
    for (int j = j0 + 1; j < j1; ++j) {
      if (loader && j - j0 >= 2 && j - j0 - 2 + kRing < ring_tiles) load_kv(ring, i - 2 + kRing, j - 2 + kRing, b, h);
      step.template operator()<false>(i++, j, n);
    }
    finish(i - 1, !(holds_last && !takes_tail));
    for (int k = 0; k < idle_turns; ++k) {
      turn_wait(wg);
      turn_pass(wg);
    }
    if (takes_tail) tail(i++, n, tail_keys, !holds_last);
    if constexpr (Split) {
      // The second consumer's O goes through the stage of its last tile (16 KB: a float4 per thread and
      // 8 columns), its maxima and row sums through ml_s; the first takes them in and frees both.
      float4* o_s = reinterpret_cast<float4*>(kv_tile(1, (n + 1) * second_tiles - 1));
      if (wg == 1) {
        // Each warp writes O over the whole stage, so every warp of this warpgroup must be done reading
        // it first: tail() reads its first K and V rows warp by warp, and each warp has waited only for
        // its own share of the last P V. Without this barrier a warp that got ahead overwrote K and V
        // rows another warp was still reading in tail() (compute-sanitizer racecheck, run489: wrong rows
        // at 259 and 577 tokens).
        wg1_sync();
        if (n > 0) merge_free_wait();
#pragma unroll
        for (int nt = 0; nt < kD / 8; ++nt)
          o_s[nt * 128 + threadIdx.x % 128] = make_float4(o[nt][0], o[nt][1], o[nt][2], o[nt][3]);
        ml_s[threadIdx.x % 128] = make_float4(sm.m0, sm.m1, l[0][0], l[0][2]);
        fence_proxy_async();  // these writes before the TMA write that refills the stage
        merge_ready_arrive();
        continue;
      }
      merge_ready_wait();
      const float4 ml = ml_s[threadIdx.x];
      float a0, a1, b0, b1;
      sm.merge(ml.x, ml.y, 0.0f, 0.0f, a0, a1, b0, b1);
#pragma unroll
      for (int nt = 0; nt < kD / 8; ++nt) {
        const float4 v = o_s[nt * 128 + threadIdx.x];
        o[nt][0] = fmaf(o[nt][0], a0, v.x * b0);
        o[nt][1] = fmaf(o[nt][1], a0, v.y * b0);
        o[nt][2] = fmaf(o[nt][2], a1, v.z * b1);
        o[nt][3] = fmaf(o[nt][3], a1, v.w * b1);
      }
      l[0][0] = fmaf(l[0][0], a0, ml.z * b0);
      l[0][2] = fmaf(l[0][2], a1, ml.w * b1);
      merge_free_arrive();
      // The stage goes back to the second consumer's loader (these 4 arrivals stand for its warps'), the
      // generic reads and writes ordered before the TMA write that refills it.
      fence_proxy_async();
      __syncwarp();
      if (lane == 0) mbar_arrive(kv_empty(1, (n + 1) * second_tiles - 1));
    }
    // The rows leave through this warpgroup's Q tile of the item (each warp through its own 16 rows, which
    // only it read: the products that read them through the async proxy are complete; split keys: the
    // second consumer's reads, before its arrival on barrier 3); then the slot goes back to the producer,
    // its generic writes ordered before the next TMA write.
    __syncwarp();
    store_rows_staged<T>(p.out, o, 1.0f / l[0][0], 1.0f / l[0][2], q_tile(n, wg),
                         (static_cast<std::size_t>(b) * N + q0) * E + static_cast<std::size_t>(h) * kD, E, N - q0, warp,
                         lane);
    fence_proxy_async();
    __syncwarp();
    if (lane == 0) mbar_arrive(q_empty(n));
  }
  if (wg == 0) turn_wait(0);  // warpgroup 1's last pass (each warpgroup passes after every turn)
  if (Split && wg == 1 && blockIdx.x < items) merge_free_wait();  // the first consumer's last arrival
}
#endif

// One block per SM (133 registers with 64-key tiles, 168 with 128). Capped at 112 registers for two blocks
// per SM (a few spills), the 64-key kernel was 2-5% slower at 577 tokens (run256).
template <typename T, int BK>
__global__ void __launch_bounds__(threads(false), 1) attention_wgmma_ws_kernel(const __grid_constant__ CUtensorMap kv_map,
                                                                         const __grid_constant__ CUtensorMap q_map,
                                                                         AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  attention_ws<T, BK, false>(&kv_map, &q_map, p);
#else
  (void)kv_map;
  (void)q_map;
  (void)p;
#endif
}
// Split keys: two blocks per SM, so at most 128 registers (no spills). __maxnreg__ rather than a minimum
// of blocks in __launch_bounds__ (the two do not go together): with a producer warp, 9 warps per block,
// that minimum made ptxas stop at 96 registers (an SM's quarter holds 5 of the 18 warps).
template <typename T>
__global__ void __maxnreg__(128)
    attention_wgmma_ws_keys_kernel(const __grid_constant__ CUtensorMap kv_map, const __grid_constant__ CUtensorMap q_map,
                                   AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  attention_ws<T, 64, true>(&kv_map, &q_map, p);
#else
  (void)kv_map;
  (void)q_map;
  (void)p;
#endif
}

template <typename T, int BK, bool Split>
void launch(const AttentionParams& p, cudaStream_t s) {
  static_assert(!Split || BK == 64, "split keys: two blocks per SM need 64-key tiles");
  VITRT_CHECK(!Split || p.tokens > 2 * BK, "attention: the split-keys TMA kernel needs more than ", 2 * BK,
              " tokens (a whole key tile for each warpgroup), not ", p.tokens);
  const bool f16 = std::is_same_v<T, __half>;
  const CUtensorMap kv_map = qkv_tensor_map(p.qkv, f16, p.batch, p.tokens, p.heads, kD, BK);
  const CUtensorMap q_map = BK == 64 ? kv_map : qkv_tensor_map(p.qkv, f16, p.batch, p.tokens, p.heads, kD, 64);
  const auto kernel = [] {
    if constexpr (Split) return attention_wgmma_ws_keys_kernel<T>;
    else return attention_wgmma_ws_kernel<T, BK>;
  }();
  constexpr int smem = smem_bytes(BK, Split), rows = 64 * q_tiles(Split);
  allow_dynamic_smem(kernel, smem);
  const long items = static_cast<long>((query_tokens(p) + rows - 1) / rows) * p.heads * p.batch;
  VITRT_CHECK(items <= std::numeric_limits<int>::max(), "attention: ", items, " work items (", rows,
              " query rows x heads x images) are more than the TMA kernel counts");
  // Persistent: as many blocks as fit the GPU at once (at most one per item).
  constexpr int block = threads(Split);
  const auto blocks = static_cast<unsigned>(std::min<long>(items, resident_blocks(kernel, block, smem)));
  launch_dependent(Pdl::attention, kernel, dim3(blocks), block, smem, s, kv_map, q_map, p);
}

}  // namespace

// Reached through attention_wgmma(), which has checked the shape, type, device and alignment.
void attention_wgmma_ws(const AttentionParams& p, cudaStream_t s) {
  const auto run = [&](auto t) {
    using T = decltype(t);
    if (p.variant == kAttentionWgmmaWs128) launch<T, 128, false>(p, s);
    else if (p.variant == kAttentionWgmmaWsKeys) launch<T, 64, true>(p, s);
    else launch<T, 64, false>(p, s);
  };
  if (p.dt == DT::f16) run(__half{});
  else run(__nv_bfloat16{});
}

}  // namespace vitrt::cuda
