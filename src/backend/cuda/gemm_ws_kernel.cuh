// The warp-specialized 16-bit GEMM kernel (Hopper, wgmma + TMA), as a template: the library's 16-bit
// GEMM (gemm_ws.cu) instantiates the configurations it runs, and bench/kernels/gemm_ws.cu the others it
// measures (clusters, the residual epilogues, per-block clocks). D = A W^T + bias, then the exact GELU,
// or added to an fp32 D (the residual); A [rows, K] and W [N, K] in T (fp16 or bf16), K-major.
// Laid out as cuBLASLt's and CUTLASS's Hopper kernels are (docs/performance.md, sessions 26-27):
// - 384 threads: a producer warpgroup that gives up registers (setmaxnreg 40; one thread issues every
//   TMA copy) and two consumer warpgroups that take them (setmaxnreg 232);
// - persistent, one block per SM, output tiles in turn (N fastest);
// - "coop": both consumers on one 256 x 128 tile, 128 rows each, sharing B's copy;
// - or "ping-pong": each consumer warpgroup owns a whole 128 x 128 tile, and the two take turns on the
//   main loop, so one's epilogue runs under the other's main loop. Both read one ring of S stages that
//   the producer fills in tile order; a pair of mbarriers (turn) lets a warpgroup start its tile's main
//   loop only once the other has waited on all of the previous tile's stages, which also keeps a
//   stage's parity from aliasing an older phase;
// - optionally clusters of two blocks along N that share A's copy (TMA multicast);
// - the epilogue from the accumulators: + bias, then GELU into T, or T out, or the fp32 residual add
//   (D += result), stored from registers or through shared memory by TMA (*_tma);
// - optionally split-K (Args::splits > 1, the epilogues that only add: epi_adds): a work item is one output
//   tile over one of `splits` contiguous runs of K's tiles, and each item adds its part into D (the bias
//   with the first part only). For few rows, where there are fewer tiles than SMs. The parts' adds meet
//   in L2 in no fixed order, so D's fp32 sums may differ in the last bits from run to run.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/launch.cuh"    // wait_prior_grid
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda::ws {

constexpr int kThreads = 384;  // producer warpgroup + two consumer warpgroups
constexpr int kBK = 64;        // K columns per stage (128 bytes of 16-bit values, one swizzle row)

// The *_tma epilogues go through shared memory: each consumer writes 128 rows x 128 bytes of its tile
// at a time (32 fp32 or 64 16-bit columns, 128-byte swizzled) into one of NB 16 KB buffers, and one
// TMA copy stores it (bias, gelu) or adds it to D (residual: the SMs read none of D). The others store
// from the accumulator registers. GELU is gelu_erf_ex2 (exact, one exp2).
// residual_red adds into D from the registers by vector reductions (red.global.add.v2.f32), which, like the
// TMA add, lets the parts of a split K add into D without reading it.
// gelu_tanh_tma applies the tanh form of GELU instead (gelu_tanh), which cuBLASLt's GELU epilogue computes.
enum class Epi { bias, residual, residual_tma, bias_tma, gelu_tma, residual_red, gelu_tanh_tma };
__host__ __device__ constexpr bool epi_tma(Epi e) {
  return e == Epi::residual_tma || e == Epi::bias_tma || e == Epi::gelu_tma || e == Epi::gelu_tanh_tma;
}
__host__ __device__ constexpr bool epi_f32(Epi e) {
  return e == Epi::residual || e == Epi::residual_tma || e == Epi::residual_red;
}
// The epilogues that add into D without reading it, so that split-K parts may each add theirs.
__host__ __device__ constexpr bool epi_adds(Epi e) { return e == Epi::residual_tma || e == Epi::residual_red; }
constexpr int kEpiChunk = 128 * 128;  // 128 rows x 128 bytes
__host__ __device__ constexpr int epi_bytes(Epi e, int nb) {
  return epi_tma(e) ? 2 * nb * kEpiChunk : 0;  // nb buffers per consumer warpgroup
}

// A consumer's tile: R slabs (1 or 2) of 64 rows by 128 columns (64 accumulators per thread each).
// Ping-pong: a block tile is one consumer's. Cooperative (Coop): both consumers share a block tile of
// twice the rows and the same columns (B read once for both), each taking half the rows. (One 64 x 256
// slab ran 1.3-2x slower, run332.) R = 1 halves a tile's rows, for few rows (more tiles to spread over
// the SMs).
// A block tile's rows, and a stage's bytes (its rows of A and 128 rows of W, 128 bytes each).
__host__ __device__ constexpr int block_rows(bool coop, int r) { return (coop ? 2 : 1) * 64 * r; }
__host__ __device__ constexpr int stage_bytes(bool coop, int r) { return (block_rows(coop, r) + 128) * 128; }
template <bool Coop, int R = 2>
struct Tile {
  static_assert(R == 1 || R == 2);
  static constexpr int tm = 64 * R, tn = 128, bm = block_rows(Coop, R), a_bytes = bm * 128, stage = stage_bytes(Coop, R);
};
__host__ __device__ constexpr int smem_bytes(bool coop, int r, int stages, Epi e, int nb) {
  // alignment slack, stages, epilogue buffers, full / empty / turn barriers
  return 1024 + stages * stage_bytes(coop, r) + epi_bytes(e, nb) + (2 * stages + 2) * 8;
}
// As many stages as fit beside the epilogue's buffers, up to 6 (ping-pong) or 4 (coop); 8 for
// ping-pong with R = 1, whose stages are 24 KB.
__host__ __device__ constexpr int fit_stages(bool coop, int r, Epi e, int nb) {
  int stages = coop ? 4 : r == 1 ? 8 : 6;
  while (smem_bytes(coop, r, stages, e, nb) > 227 * 1024) --stages;
  return stages;
}

struct Args {
  CUtensorMap a_map, w_map, d_map;  // d_map: *_tma only (D, boxes of 128 bytes of columns x 128 rows)
  const void* bias;                 // [n]: fp32 with the residual epilogues (as D), else T
  void* d;                          // T [rows, ldd], or fp32 with the residual add
  std::int64_t rows, ldd;
  int n, k, n_tiles, tiles;
  int splits;  // K split into this many runs of k-tiles (1: none; more only where epi_adds)
  // Clusters of two (CL = 2) only. share: 2 = A copied once per cluster by multicast (a stage is free
  // once both blocks' consumers are done with it); 1 = each block copies all of its A, stages still
  // freed by both blocks; 0 = each block copies its A and frees its own stages (only the launch is a
  // cluster's). 1 and 0 isolate what the multicast and the coupling each cost.
  int share;
  // Kernels built with Stamps only, kStamps per block: clock64 sums of the producer's waits for a free
  // stage, the consumers' waits for a full stage, their waits for their turn, and the block's time; then
  // %globaltimer (ns) at the block's start and end; then clock64 sums of the wait for the block's first
  // full stage (the pipeline's fill) and of the consumers' epilogues (from the last wgmma's wait to the
  // last copy issued or store made).
  unsigned long long* stamps;
  // Bit 0 lets the next kernel launch at this one's start (griddepcontrol.launch_dependents), so that a
  // dependent launch after it is ready when it ends; bit 1 (unclustered only) copies W's first stages before
  // waiting for the kernel before (A and D are what the kernels before write). Session 45.
  int early;
};

constexpr int kStamps = 8;  // Args::stamps per block

// The arguments for D = A W^T + bias (+ GELU, or added to D): A [rows, k] with row stride lda and W [n, k]
// in `dt`, bias [n] and D [rows, n] with row stride ldd in fp32 for the residual epilogues, else in `dt`.
// Tiles of Tile<Coop, r>, in clusters of `cl` blocks along N, each block copying bm / cl rows of A.
// D's tensor map only where the epilogue stores by TMA. The maps' boxes are 128 bytes of columns x the
// rows a block copies (A), a tile's columns (W) and a consumer's rows (D's epilogue chunks), 128-byte swizzled as
// the kernel stages them. The work items (tiles x splits) must fit an int; `splits` from 1 to k / kBK,
// above 1 only where epi_adds (the caller checks).
inline Args make_args(bool coop, int r, Epi e, int cl, const void* a, std::int64_t lda, const void* w,
                      const void* bias, void* d, std::int64_t ldd, DT dt, std::int64_t rows, int n, int k, int share = 0,
                      unsigned long long* stamps = nullptr, int splits = 1) {
  const int tm = 64 * r, bm = block_rows(coop, r), tn = Tile<true>::tn, n_tiles = n / tn / cl;
  return {matrix_tensor_map(a, dt, rows, k, lda, bm / cl),
          matrix_tensor_map(w, dt, n, k, k, tn),
          epi_tma(e) ? matrix_tensor_map(d, epi_f32(e) ? DT::f32 : dt, rows, n, ldd, tm) : CUtensorMap{},
          bias,
          d,
          rows,
          ldd,
          n,
          k,
          n_tiles,
          static_cast<int>((rows + bm - 1) / bm * n_tiles),
          splits,
          share,
          stamps,
          0};
}

#ifdef VITRT_WGMMA_DEVICE
// Work item `item` of p.tiles x p.splits (the producer's and the consumers' common order): output tile
// `tile` over K's k-tiles [kt0, kt1), its part `split` of K; the first part adds the bias.
struct Item {
  int tile, kt0, kt1;
  bool first;
};
__device__ __forceinline__ Item item_of(const Args& p, int item, int ktiles) {
  const int split = item / p.tiles;
  return {item % p.tiles, split * ktiles / p.splits, (split + 1) * ktiles / p.splits, split == 0};
}

// Two fp32 values rounded to T, packed.
template <typename T>
__device__ __forceinline__ unsigned pack2(float a, float b) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const unsigned*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<const unsigned*>(&h);
  }
}
template <typename T>
__device__ __forceinline__ float2 load2(const T* p) {
  if constexpr (std::is_same_v<T, __half>) return __half22float2(__ldg(reinterpret_cast<const __half2*>(p)));
  else return __bfloat1622float2(__ldg(reinterpret_cast<const __nv_bfloat162*>(p)));
}

// Arrives on the mbarrier at shared address `bar` in block `rank` of the cluster (this block included).
// Release at the block's scope (the default): the consumers only read the stage, and their reads are
// done (wgmma wait) before they arrive. With .release.cluster, the arrival also had to make this thread's
// earlier writes visible to the cluster, and the kernel ran 1.8-3.6x slower (run337).
__device__ __forceinline__ void mbar_arrive_cluster(unsigned bar, unsigned rank) {
  asm volatile(
      "{\n.reg .b32 r;\nmapa.shared::cluster.u32 r, %0, %1;\nmbarrier.arrive.shared::cluster.b64 _, [r];\n}\n" ::"r"(
          bar),
      "r"(rank)
      : "memory");
}
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

// clock64 where Stamps, else 0 (no clock read in the kernels the library runs).
template <bool Stamps>
__device__ __forceinline__ long long stamp() {
  if constexpr (Stamps) return clock64();
  else return 0;
}

// The consumer warpgroups' part of gemm_ws_kernel (the main loop and the epilogue).
template <typename T, bool Coop, int R, int S, Epi E, int CL, int NB, bool Stamps>
__device__ __forceinline__ void consume(const Args& p, unsigned base, unsigned full0, unsigned empty0, unsigned turn0,
                                        int cl, int clusters, unsigned rank) {
  using Tl = Tile<Coop, R>;
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  const int ktiles = p.k / kBK;

  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
  const int c = wg - 1, warp = (tid % 128) / 32, lane = tid % 32;
  const bool leader = tid % 128 == 0;
  const bool couple = CL > 1 && p.share > 0;
  auto release = [couple](unsigned bar) {  // this stage, in every block of the cluster
    if (couple) {
      for (unsigned r = 0; r < CL; ++r) mbar_arrive_cluster(bar, r);
    } else {
      mbar_arrive(bar);
    }
  };
  unsigned long long wait_full = 0, wait_turn = 0, wait_fill = 0, epilogue = 0;
  // The block's items in the producer's order (i); ping-pong consumer c takes those with i % 2 == c.
  // it0 counts the k-tiles of the block's items before item i (the stage ring's position).
  const int items = p.tiles * p.splits;
  int it0 = 0;
  for (int item = cl, i = 0; item < items; item += clusters, ++i) {
    const Item w = item_of(p, item, ktiles);
    const int nk = w.kt1 - w.kt0;
    if (!Coop && i % 2 != c) {
      it0 += nk;
      continue;
    }
    const int n0 = (w.tile % p.n_tiles * CL + static_cast<int>(rank)) * Tl::tn,
              m0 = w.tile / p.n_tiles * Tl::bm + (Coop ? c * Tl::tm : 0);
    if (!Coop && i > 0) {  // the other's main loop is issued
      const long long t0 = stamp<Stamps>();
      mbar_wait(turn0 + 8 * c, static_cast<unsigned>(((i - 1) / 2) & 1));
      wait_turn += static_cast<unsigned long long>(stamp<Stamps>() - t0);
    }
    float d[R][16][4];
    for (int kt = 0; kt < nk; ++kt) {
      const int it = it0 + kt, s = it % S;
      {
        const long long t0 = stamp<Stamps>();
        mbar_wait(full0 + 8 * s, static_cast<unsigned>((it / S) & 1));
        const auto waited = static_cast<unsigned long long>(stamp<Stamps>() - t0);
        wait_full += waited;
        if (it == 0) wait_fill = waited;
      }
      const unsigned stage = base + static_cast<unsigned>(s * Tl::stage);
      const Sw128Desc bd(stage + Tl::a_bytes);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const Sw128Desc ad(stage + static_cast<unsigned>(((Coop ? c * R : 0) + r) * 64 * 128));
          wgmma_ss_n128<T>(d[r], ad.at(k * 32), bd.at(k * 32), kt > 0 || k > 0);
        }
      wgmma_commit();
      wgmma_wait<1>();  // the previous k-tile's wgmmas are done: release its stage
      if (kt > 0 && leader) release(empty0 + 8 * ((it - 1) % S));
    }
    if (!Coop && leader) mbar_arrive(turn0 + 8 * (1 - c));
    // The bias of this thread's columns n0 + 8 j + 2 (lane % 4), + 1, read while the last wgmmas run
    // (the first part of a split tile only).
    const int col0 = n0 + 2 * (lane % 4);
    float2 bias[16];
#pragma unroll
    for (int j = 0; j < 16; ++j)
      bias[j] = !w.first     ? make_float2(0.f, 0.f)
                : epi_f32(E) ? __ldg(reinterpret_cast<const float2*>(static_cast<const float*>(p.bias) + col0 + 8 * j))
                             : load2(static_cast<const T*>(p.bias) + col0 + 8 * j);
    wgmma_wait<0>();
    const long long epi_t0 = stamp<Stamps>();
#pragma unroll
    for (int r = 0; r < R; ++r) fence_regs(d[r]);
    if (leader) release(empty0 + 8 * ((it0 + nk - 1) % S));
    it0 += nk;

    if constexpr (epi_tma(E)) {
      // 128 bytes of columns at a time: bias (and GELU) applied, written swizzled into buffer q % NB, then
      // stored or added to D by one TMA copy (rows past the end are not written). A buffer is rewritten
      // once the copy before it has read it (the leader waits, then the warpgroup's named barrier).
      constexpr int kCols = epi_f32(E) ? 32 : 64;
      const unsigned ebuf = base + static_cast<unsigned>(S * Tl::stage + c * NB * kEpiChunk);
      const unsigned bar_id = 1 + static_cast<unsigned>(c);
#pragma unroll
      for (int q = 0; q < Tl::tn / kCols; ++q) {
        const unsigned buf = ebuf + static_cast<unsigned>((q % NB) * kEpiChunk);
        if (leader) asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(NB - 1) : "memory");
        asm volatile("bar.sync %0, 128;\n" ::"r"(bar_id) : "memory");
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int jj = 0; jj < kCols / 8; ++jj) {
              const int j = kCols / 8 * q + jj, row = r * 64 + warp * 16 + lane / 4 + 8 * h, col = 8 * jj + 2 * (lane % 4);
              float v0 = d[r][j][2 * h] + bias[j].x, v1 = d[r][j][2 * h + 1] + bias[j].y;
              if constexpr (epi_f32(E)) {
                asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(buf + sw128_f32(row, col)), "f"(v0), "f"(v1)
                             : "memory");
              } else {
                if constexpr (E == Epi::gelu_tma) {
                  v0 = gelu_erf_ex2(v0);
                  v1 = gelu_erf_ex2(v1);
                } else if constexpr (E == Epi::gelu_tanh_tma) {
                  v0 = gelu_tanh(v0);
                  v1 = gelu_tanh(v1);
                }
                asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(buf + sw128_b16(row, col)), "r"(pack2<T>(v0, v1))
                             : "memory");
              }
            }
        fence_proxy_async();
        asm volatile("bar.sync %0, 128;\n" ::"r"(bar_id) : "memory");
        if (leader) {
          if constexpr (epi_f32(E)) tma_add_2d(&p.d_map, buf, n0 + kCols * q, m0);
          else tma_store_2d(&p.d_map, buf, n0 + kCols * q, m0);
          bulk_commit();
        }
      }
    } else {
      // Rows row0 and row0 + 8 of each slab. The residual's reads go out in groups of 8 before their
      // writes (a write may alias a later read, so the compiler would not move the reads up itself).
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const std::int64_t row0 = m0 + r * 64 + warp * 16 + lane / 4;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const std::int64_t row = row0 + 8 * h;
          if (row >= p.rows) continue;
          if constexpr (E == Epi::residual_red) {
            float* const out = static_cast<float*>(p.d) + row * p.ldd + col0;
#pragma unroll
            for (int j = 0; j < 16; ++j)
              asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(out + 8 * j),
                           "f"(d[r][j][2 * h] + bias[j].x), "f"(d[r][j][2 * h + 1] + bias[j].y)
                           : "memory");
          } else if constexpr (epi_f32(E)) {
            float2* const out = reinterpret_cast<float2*>(static_cast<float*>(p.d) + row * p.ldd + col0);
            constexpr int kGroup = 8;
#pragma unroll
            for (int j0 = 0; j0 < 16; j0 += kGroup) {
              float2 o[kGroup];
#pragma unroll
              for (int j = 0; j < kGroup; ++j) o[j] = out[4 * (j0 + j)];
#pragma unroll
              for (int j = 0; j < kGroup; ++j)
                out[4 * (j0 + j)] = make_float2(o[j].x + d[r][j0 + j][2 * h] + bias[j0 + j].x,
                                                o[j].y + d[r][j0 + j][2 * h + 1] + bias[j0 + j].y);
            }
          } else {
            unsigned* const out = reinterpret_cast<unsigned*>(static_cast<T*>(p.d) + row * p.ldd + col0);
#pragma unroll
            for (int j = 0; j < 16; ++j)
              out[4 * j] = pack2<T>(d[r][j][2 * h] + bias[j].x, d[r][j][2 * h + 1] + bias[j].y);
          }
        }
      }
    }
    epilogue += static_cast<unsigned long long>(stamp<Stamps>() - epi_t0);
  }
  if (epi_tma(E) && leader) bulk_wait_read();  // shared memory outlives the copies' reads
  if (Stamps && p.stamps != nullptr && leader) {
    atomicAdd(p.stamps + kStamps * blockIdx.x + 1, wait_full);
    atomicAdd(p.stamps + kStamps * blockIdx.x + 2, wait_turn);
    atomicAdd(p.stamps + kStamps * blockIdx.x + 6, wait_fill);
    atomicAdd(p.stamps + kStamps * blockIdx.x + 7, epilogue);
  }
}
#endif  // VITRT_WGMMA_DEVICE

// CL: blocks per cluster along N (1 or 2). With 2, the two blocks take neighbouring column tiles of the
// same rows, and each copies half of the A tile into both (TMA multicast): A's L2 reads are halved. A
// stage is then free only once the consumers of both blocks are done with it (empty counts both).
// Launched as a dependent launch or not: every global access follows wait_prior_grid().
template <typename T, bool Coop, int R, int S, Epi E, int CL, int NB, bool Stamps>
__global__ void __launch_bounds__(kThreads, 1) gemm_ws_kernel(const __grid_constant__ Args p) {
#ifdef VITRT_WGMMA_DEVICE
  using Tl = Tile<Coop, R>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), full0 = base + S * Tl::stage + epi_bytes(E, NB), empty0 = full0 + 8 * S,
                 turn0 = empty0 + 8 * S;
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  const int ktiles = p.k / kBK;
  const long long start = stamp<Stamps>();
  unsigned long long start_ns = 0;
  if constexpr (Stamps) asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(start_ns));
  if (tid == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(full0 + 8 * s, 1);
      mbar_init(empty0 + 8 * s, (Coop ? 2 : 1) * (CL > 1 && p.share > 0 ? CL : 1));
    }
    mbar_init(turn0, 1);
    mbar_init(turn0 + 8, 1);
    mbar_init_fence();
  }
  unsigned rank = 0;
  if constexpr (CL > 1) {
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
    cluster_sync_all();  // the peer's copies and arrivals find this block's barriers initialized
  } else {
    __syncthreads();
  }
  if (p.early & 1) allow_next_grid();
  const bool w_first = CL == 1 && (p.early & 2);
  // A (and D, for its earlier readers) belong to the kernels before this one; with w_first the producer
  // waits after its first copies of W.
  if (!(w_first && wg == 0)) wait_prior_grid();
  // This block's place: cluster `cl` of `clusters`; its tiles are the cluster's tiles (p.tiles of them,
  // p.n_tiles along N, each CL column tiles wide), this block taking column tile CL t + rank.
  const int cl = static_cast<int>(blockIdx.x) / CL, clusters = static_cast<int>(gridDim.x) / CL;

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (tid == 0) {
      unsigned long long wait_empty = 0;
      int it = 0, w_copied = 0;  // w_copied: the first stages whose W went before the wait
      if (w_first && cl < p.tiles * p.splits) {
        const Item w = item_of(p, cl, ktiles);
        const int n0 = w.tile % p.n_tiles * Tl::tn;
        for (int kt = w.kt0; kt < w.kt1 && w_copied < S; ++kt, ++w_copied) {
          const unsigned full = full0 + 8 * w_copied;
          mbar_arrive_expect(full, Tl::stage);
          tma_load_2d(base + static_cast<unsigned>(w_copied * Tl::stage + Tl::a_bytes), &p.w_map, kt * kBK, n0, full);
        }
      }
      if (w_first) wait_prior_grid();
      constexpr int kARows = Tl::bm / CL;  // rows of A this block copies (into every block of the cluster)
      for (int item = cl; item < p.tiles * p.splits; item += clusters) {
        const Item w = item_of(p, item, ktiles);
        const int n0 = (w.tile % p.n_tiles * CL + static_cast<int>(rank)) * Tl::tn, m0 = w.tile / p.n_tiles * Tl::bm;
        for (int kt = w.kt0; kt < w.kt1; ++kt, ++it) {
          const int s = it % S;
          if (it >= S) {
            const long long t0 = stamp<Stamps>();
            mbar_wait(empty0 + 8 * s, static_cast<unsigned>((it / S - 1) & 1));
            wait_empty += static_cast<unsigned long long>(stamp<Stamps>() - t0);
          }
          const unsigned full = full0 + 8 * s, dst = base + static_cast<unsigned>(s * Tl::stage);
          if (it >= w_copied) mbar_arrive_expect(full, Tl::stage);
          const unsigned a_dst = dst + rank * kARows * 128;
          if (CL > 1 && p.share == 2) {
            tma_load_2d_multicast(a_dst, &p.a_map, kt * kBK, m0 + static_cast<int>(rank) * kARows, full, (1u << CL) - 1);
          } else {
            for (int r = 0; r < CL; ++r)  // rows past the end arrive as zeros
              tma_load_2d(dst + static_cast<unsigned>(r * kARows * 128), &p.a_map, kt * kBK, m0 + r * kARows, full);
          }
          if (it >= w_copied) tma_load_2d(dst + Tl::a_bytes, &p.w_map, kt * kBK, n0, full);
        }
      }
      if (Stamps && p.stamps != nullptr) atomicAdd(p.stamps + kStamps * blockIdx.x, wait_empty);
    }
  } else {
    consume<T, Coop, R, S, E, CL, NB, Stamps>(p, base, full0, empty0, turn0, cl, clusters, rank);
  }
  // No block leaves while its peer may still copy into it or arrive on its barriers.
  if constexpr (CL > 1) cluster_sync_all();
  // The block's end is its last warpgroup's (thread 0, the producer, is done once its copies are issued).
  else if constexpr (Stamps) __syncthreads();
  if (Stamps && p.stamps != nullptr && tid == 0) {
    atomicAdd(p.stamps + kStamps * blockIdx.x + 3, static_cast<unsigned long long>(stamp<Stamps>() - start));
    unsigned long long end_ns = 0;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(end_ns));
    p.stamps[kStamps * blockIdx.x + 4] = start_ns;
    p.stamps[kStamps * blockIdx.x + 5] = end_ns;
  }
#else
  (void)p;
#endif
}

}  // namespace vitrt::cuda::ws
