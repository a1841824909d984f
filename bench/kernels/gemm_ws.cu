// Experiment (docs/performance.md, sessions 26-27): can a GEMM of ours match cuBLASLt's on the
// large-batch GEMMs of a ViT block, so that LayerNorm, GELU and the residual could later be fused into
// it? Session 14's kernel (one producer warp, two consumer warpgroups on one 128 x 256 tile, no register
// split) ran 1.3-3.5x slower. This one is laid out as cuBLASLt's and CUTLASS's Hopper kernels are:
// - 384 threads: a producer warpgroup that gives up registers (setmaxnreg 40; one thread issues every
//   TMA copy) and two consumer warpgroups that take them (setmaxnreg 232);
// - persistent, one block per SM, output tiles in turn (N fastest);
// - "ping-pong": each consumer warpgroup owns a whole 128 x 128 output tile (two m64n128 wgmma
//   accumulators), and the two take turns on the main loop, so that one's epilogue runs under the
//   other's main loop. Both read one ring of S stages that the producer fills in tile order; a pair of
//   mbarriers (turn) lets a warpgroup start its tile's main loop only once the other has waited on all
//   of the previous tile's stages, which also keeps a stage's parity from aliasing an older phase;
// - or "coop": both consumers on one 256 x 128 tile, 128 rows each, sharing B's copy;
// - optionally clusters of two blocks along N that share A's copy (TMA multicast);
// - the epilogue from the accumulators: + bias, then the exact GELU into bf16, or bf16 out, or the fp32
//   residual add (D += result), stored from registers or through shared memory by TMA (*_tma).
// The driver times every variant against the tuned cuBLASLt algorithm (LinearOp, as `vitrt tune` picks
// it) on the same buffers and checks the outputs agree (bf16: within 2% + 0.02). Measurement only: the
// library does not use this kernel. Session 27 (run338-341): with TMA stores the cooperative variant is
// level with cuBLASLt on qkv and fc1 without GELU (0.97-1.03); with the exact GELU it is 1.08-1.10x of
// cuBLASLt's tanh-form GELU (gelu_probe), and the residual GEMMs 1.04-1.10x.
//   gemm_ws [rows 50432] [embed 768] [mlp 3072] [case name prefix] [variant index, -1: all] [stamps]
//   gemm_ws 0 0 0 gelu_probe     (which GELU cuBLASLt's epilogue computes)
#include <cublasLt.h>
#include <cuda.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/tuning.h"
#include "backend/cuda/wgmma.cuh"
#include "gap_kernels.h"

using namespace vitrt;
using namespace vitrt::cuda;

namespace {

constexpr int kThreads = 384;  // producer warpgroup + two consumer warpgroups
constexpr int kBK = 64;        // K columns per stage (128 bytes of bf16, one swizzle row)

// The *_tma epilogues go through shared memory: each consumer writes 128 rows x 128 bytes of its tile
// at a time (32 fp32 or 64 bf16 columns, 128-byte swizzled) into one of NB 16 KB buffers, and one TMA
// copy stores it (bias, gelu) or adds it to D (residual: the SMs read none of D). The others store
// from the accumulator registers.
// gelu_ex2_tma: gelu_tma with GELU from one exp2 (gelu_erf_ex2) instead of gelu_erf_epilogue's rcp and exp2.
enum class Epi { bias, gelu, residual, residual_tma, bias_tma, gelu_tma, gelu_ex2_tma };
__host__ __device__ constexpr bool epi_tma(Epi e) {
  return e == Epi::residual_tma || e == Epi::bias_tma || e == Epi::gelu_tma || e == Epi::gelu_ex2_tma;
}
__host__ __device__ constexpr bool epi_f32(Epi e) { return e == Epi::residual || e == Epi::residual_tma; }
__host__ __device__ constexpr bool epi_gelu(Epi e) { return e == Epi::gelu || e == Epi::gelu_tma || e == Epi::gelu_ex2_tma; }
constexpr int kEpiChunk = 128 * 128;  // 128 rows x 128 bytes
__host__ __device__ constexpr int epi_bytes(Epi e, int nb) {
  return epi_tma(e) ? 2 * nb * kEpiChunk : 0;  // nb buffers per consumer warpgroup
}

// A consumer's tile: MI slabs of 64 rows by 256 / MI columns (128 accumulators per thread either way).
// Ping-pong: a block tile is one consumer's. Cooperative (Coop): both consumers share a block tile of
// twice the rows and the same columns (B read once for both), each taking half the rows.
template <int MI, bool Coop>
struct Tile {
  static constexpr int tm = 64 * MI, tn = 256 / MI, bm = Coop ? 2 * tm : tm, a_bytes = bm * 128,
                       stage = a_bytes + tn * 128;
};
constexpr int smem_bytes(bool coop, int stages, Epi e, int nb) {
  // alignment slack, stages, epilogue buffers, full / empty / turn barriers
  return 1024 + stages * (coop ? Tile<2, true>::stage : Tile<2, false>::stage) + epi_bytes(e, nb) + (2 * stages + 2) * 8;
}
// As many stages as fit beside the epilogue's buffers, up to 6 (ping-pong) or 4 (coop).
constexpr int fit_stages(bool coop, Epi e, int nb) {
  int stages = coop ? 4 : 6;
  while (smem_bytes(coop, stages, e, nb) > 227 * 1024) --stages;
  return stages;
}

struct WsArgs {
  CUtensorMap a_map, w_map, d_map;  // d_map: *_tma only (D, boxes of 128 bytes of columns x 128 rows)
  const __nv_bfloat16* bias;
  void* d;  // bf16 [rows, n], or fp32 with the residual add
  std::int64_t rows;
  int n, k, n_tiles, tiles;
  // Clusters of two (CL = 2) only. share: 2 = A copied once per cluster by multicast (a stage is free
  // once both blocks' consumers are done with it); 1 = each block copies all of its A, stages still
  // freed by both blocks; 0 = each block copies its A and frees its own stages (only the launch is a
  // cluster's). 1 and 0 isolate what the multicast and the coupling each cost.
  int share;
  // Optional (nullptr: off): per-block clock64 sums, 4 per block: the producer's waits for a free
  // stage, the consumers' waits for a full stage, their waits for their turn, the block's whole time.
  unsigned long long* stamps;
};

#ifdef VITRT_WGMMA_DEVICE
// D[64 x 128] (+)= A[64 x 16] B[16 x 128], both K-major from shared memory.
__device__ __forceinline__ void mma_n128(float (&d)[16][4], std::uint64_t a, std::uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " VITRT_GEMM_LIST64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
               : VITRT_GEMM_D64(0)
               : "l"(a), "l"(b), "r"(accumulate));
}
#endif

#ifdef VITRT_WGMMA_DEVICE
// Exact GELU, x Phi(x), with one special-function op. With a = min(|x|, 6), log2(erfc(a / sqrt 2) / 2)
// is a degree-7 polynomial (least squares on [0, 6]; float32 Horner error 1.3e-5, so erfc to 9e-6
// relative), and GELU(x) = max(x, 0) - a erfc(a / sqrt 2) / 2 on both sides of 0. Against the exact
// function: 5e-7 absolute everywhere, 9e-6 relative for |x| <= 6 (below -6 the output is ~-6e-9 instead
// of smaller still). gelu_erf_epilogue is 1.5e-7 absolute but up to 1.7e-3 relative in the negative
// tail, and spends a reciprocal and an exp2 where this spends one exp2 (fc1's epilogue: 431-438 against
// 404-414 µs at vit_base b256, run340-341).
__device__ __forceinline__ float gelu_erf_ex2(float x) {
  const float a = fminf(fabsf(x), 6.0f);
  float p = fmaf(a, -1.94483573e-06f, 6.38587080e-05f);
  p = fmaf(a, p, -9.48855362e-04f);
  p = fmaf(a, p, 8.58230516e-03f);
  p = fmaf(a, p, -5.41181564e-02f);
  p = fmaf(a, p, -4.58297640e-01f);
  p = fmaf(a, p, -1.15132451e+00f);
  p = fmaf(a, p, -0.99998695f);
  float e;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e) : "f"(p));
  return fmaf(-a, e, fmaxf(x, 0.0f));
}
#endif

#ifdef VITRT_WGMMA_DEVICE
// Byte offset of the 16-bit element (row r, column c) in a 128-byte-swizzled tile whose rows hold 64
// elements (chunk j of 8 elements of row r lives at chunk j ^ (r % 8)).
__device__ __forceinline__ unsigned sw128_b16(int r, int c) {
  return static_cast<unsigned>(r * 128 + ((((c >> 3) ^ r) & 7) << 4) + (c & 7) * 2);
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
#endif

#ifdef VITRT_WGMMA_DEVICE
// The consumer warpgroups' part of gemm_ws_kernel (the main loop and the epilogue).
template <int MI, bool Coop, int S, Epi E, int CL, int NB>
__device__ __forceinline__ void consume(const WsArgs& p, unsigned base, unsigned full0, unsigned empty0, unsigned turn0,
                                        int cl, int clusters, unsigned rank) {
  using T = Tile<MI, Coop>;
  static_assert(MI == 2, "64 x 256 slabs (one m64n256 accumulator) ran 1.3-2x slower than 128 x 128 (run332)");
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
  unsigned long long wait_full = 0, wait_turn = 0;
  constexpr int kStep = Coop ? 1 : 2;  // block tiles between this consumer's tiles
  int i = Coop ? 0 : c;                // this block's tile index (the producer's order)
  for (int tile = cl + i * clusters; tile < p.tiles; tile += kStep * clusters, i += kStep) {
    const int n0 = (tile % p.n_tiles * CL + static_cast<int>(rank)) * T::tn,
              m0 = tile / p.n_tiles * T::bm + (Coop ? c * T::tm : 0);
    if (!Coop && i > 0) {  // the other's main loop is issued
      const long long t0 = clock64();
      mbar_wait(turn0 + 8 * c, static_cast<unsigned>(((i - 1) / 2) & 1));
      wait_turn += static_cast<unsigned long long>(clock64() - t0);
    }
    float d[MI][T::tn / 8][4];
    const int it0 = i * ktiles;
    for (int kt = 0; kt < ktiles; ++kt) {
      const int it = it0 + kt, s = it % S;
      {
        const long long t0 = clock64();
        mbar_wait(full0 + 8 * s, static_cast<unsigned>((it / S) & 1));
        wait_full += static_cast<unsigned long long>(clock64() - t0);
      }
      const unsigned stage = base + static_cast<unsigned>(s * T::stage);
      const Sw128Desc bd(stage + T::a_bytes);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k)
#pragma unroll
        for (int r = 0; r < MI; ++r) {
          const Sw128Desc ad(stage + static_cast<unsigned>(((Coop ? c * MI : 0) + r) * 64 * 128));
          mma_n128(d[r], ad.at(k * 32), bd.at(k * 32), kt > 0 || k > 0);
        }
      wgmma_commit();
      wgmma_wait<1>();  // the previous k-tile's wgmmas are done: release its stage
      if (kt > 0 && leader) release(empty0 + 8 * ((it - 1) % S));
    }
    if (!Coop && leader) mbar_arrive(turn0 + 8 * (1 - c));
    // The bias of this thread's columns n0 + 8 j + 2 (lane % 4), + 1, read while the last wgmmas run.
    const int col0 = n0 + 2 * (lane % 4);
    float2 bias[T::tn / 8];
#pragma unroll
    for (int j = 0; j < T::tn / 8; ++j)
      bias[j] = __bfloat1622float2(__ldg(reinterpret_cast<const __nv_bfloat162*>(p.bias + col0 + 8 * j)));
    wgmma_wait<0>();
#pragma unroll
    for (int r = 0; r < MI; ++r) fence_regs(d[r]);
    if (leader) release(empty0 + 8 * ((it0 + ktiles - 1) % S));

    if constexpr (epi_tma(E)) {
      // 128 bytes of columns at a time: bias (and GELU) applied, written swizzled into buffer q % NB, then
      // stored or added to D by one TMA copy (rows past the end are not written). A buffer is rewritten
      // once the copy before it has read it (the leader waits, then the warpgroup's named barrier).
      constexpr int kCols = epi_f32(E) ? 32 : 64;
      const unsigned ebuf = base + static_cast<unsigned>(S * T::stage + c * NB * kEpiChunk);
      const unsigned bar_id = 1 + static_cast<unsigned>(c);
#pragma unroll
      for (int q = 0; q < T::tn / kCols; ++q) {
        const unsigned buf = ebuf + static_cast<unsigned>((q % NB) * kEpiChunk);
        if (leader) asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(NB - 1) : "memory");
        asm volatile("bar.sync %0, 128;\n" ::"r"(bar_id) : "memory");
#pragma unroll
        for (int r = 0; r < MI; ++r)
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
                if constexpr (E == Epi::gelu_ex2_tma) {
                  v0 = gelu_erf_ex2(v0);
                  v1 = gelu_erf_ex2(v1);
                } else if constexpr (epi_gelu(E)) {
                  v0 = gelu_erf_epilogue(v0);
                  v1 = gelu_erf_epilogue(v1);
                }
                const __nv_bfloat162 b2 = __floats2bfloat162_rn(v0, v1);
                asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(buf + sw128_b16(row, col)),
                             "r"(*reinterpret_cast<const unsigned*>(&b2))
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
    // Epilogue: rows row0 and row0 + 8 of each slab. The residual's reads go out in groups of 8 before
    // their writes (a write may alias a later read, so the compiler would not move the reads up itself).
#pragma unroll
    for (int r = 0; r < MI; ++r) {
      const std::int64_t row0 = m0 + r * 64 + warp * 16 + lane / 4;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const std::int64_t row = row0 + 8 * h;
        if (row >= p.rows) continue;
        if constexpr (epi_f32(E)) {
          float2* const out = reinterpret_cast<float2*>(static_cast<float*>(p.d) + row * p.n + col0);
          constexpr int kGroup = 8;
#pragma unroll
          for (int j0 = 0; j0 < T::tn / 8; j0 += kGroup) {
            float2 o[kGroup];
#pragma unroll
            for (int j = 0; j < kGroup; ++j) o[j] = out[4 * (j0 + j)];
#pragma unroll
            for (int j = 0; j < kGroup; ++j)
              out[4 * (j0 + j)] = make_float2(o[j].x + d[r][j0 + j][2 * h] + bias[j0 + j].x,
                                              o[j].y + d[r][j0 + j][2 * h + 1] + bias[j0 + j].y);
          }
        } else {
          __nv_bfloat162* const out = reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.d) + row * p.n + col0);
#pragma unroll
          for (int j = 0; j < T::tn / 8; ++j) {
            float v0 = d[r][j][2 * h] + bias[j].x, v1 = d[r][j][2 * h + 1] + bias[j].y;
            if constexpr (epi_gelu(E)) {
              v0 = gelu_erf_epilogue(v0);
              v1 = gelu_erf_epilogue(v1);
            }
            out[4 * j] = __floats2bfloat162_rn(v0, v1);
          }
        }
      }
    }
    }
  }
  if (epi_tma(E) && leader) bulk_wait_read();  // shared memory outlives the copies' reads
  if (p.stamps != nullptr && leader) {
    atomicAdd(p.stamps + 4 * blockIdx.x + 1, wait_full);
    atomicAdd(p.stamps + 4 * blockIdx.x + 2, wait_turn);
  }
}
#endif

// CL: blocks per cluster along N (1 or 2). With 2, the two blocks take neighbouring column tiles of the
// same rows, and each copies half of the A tile into both (TMA multicast): A's L2 reads are halved. A
// stage is then free only once the consumers of both blocks are done with it (empty counts both).
template <int MI, bool Coop, int S, Epi E, int CL, int NB>
__global__ void __launch_bounds__(kThreads, 1) gemm_ws_kernel(const __grid_constant__ WsArgs p) {
#ifdef VITRT_WGMMA_DEVICE
  using T = Tile<MI, Coop>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), full0 = base + S * T::stage + epi_bytes(E, NB), empty0 = full0 + 8 * S,
                 turn0 = empty0 + 8 * S;
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  const int ktiles = p.k / kBK;
  const long long start = clock64();
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
  // This block's place: cluster `cl` of `clusters`; its tiles are the cluster's tiles (p.tiles of them,
  // p.n_tiles along N, each CL column tiles wide), this block taking column tile CL t + rank.
  const int cl = static_cast<int>(blockIdx.x) / CL, clusters = static_cast<int>(gridDim.x) / CL;

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (tid == 0) {
      unsigned long long wait_empty = 0;
      int it = 0;
      constexpr int kARows = T::bm / CL;  // rows of A this block copies (into every block of the cluster)
      for (int tile = cl; tile < p.tiles; tile += clusters) {
        const int n0 = (tile % p.n_tiles * CL + static_cast<int>(rank)) * T::tn, m0 = tile / p.n_tiles * T::bm;
        for (int kt = 0; kt < ktiles; ++kt, ++it) {
          const int s = it % S;
          if (it >= S) {
            const long long t0 = clock64();
            mbar_wait(empty0 + 8 * s, static_cast<unsigned>((it / S - 1) & 1));
            wait_empty += static_cast<unsigned long long>(clock64() - t0);
          }
          const unsigned full = full0 + 8 * s, dst = base + static_cast<unsigned>(s * T::stage);
          mbar_arrive_expect(full, T::stage);
          const unsigned a_dst = dst + rank * kARows * 128;
          if (CL > 1 && p.share == 2) {
            tma_load_2d_multicast(a_dst, &p.a_map, kt * kBK, m0 + static_cast<int>(rank) * kARows, full, (1u << CL) - 1);
          } else {
            for (int r = 0; r < CL; ++r)  // rows past the end arrive as zeros
              tma_load_2d(dst + static_cast<unsigned>(r * kARows * 128), &p.a_map, kt * kBK, m0 + r * kARows, full);
          }
          tma_load_2d(dst + T::a_bytes, &p.w_map, kt * kBK, n0, full);
        }
      }
      if (p.stamps != nullptr) atomicAdd(p.stamps + 4 * blockIdx.x, wait_empty);
    }
  } else {
    consume<MI, Coop, S, E, CL, NB>(p, base, full0, empty0, turn0, cl, clusters, rank);
  }
  // No block leaves while its peer may still copy into it or arrive on its barriers.
  if constexpr (CL > 1) cluster_sync_all();
  if (p.stamps != nullptr && tid == 0) atomicAdd(p.stamps + 4 * blockIdx.x + 3, static_cast<unsigned long long>(clock64() - start));
#else
  (void)p;
#endif
}


struct Variant {
  bool coop;
  int cl;
  int share;  // WsArgs::share (clusters of two only)
  int nb;     // the *_tma epilogues' buffers per consumer (the other epilogues run only with 2)
  int bm() const { return coop ? 256 : 128; }
  int bn() const { return 128; }
};
// The last four are diagnostics for the clusters' cost: no multicast, with and without the coupled stages.
constexpr Variant kVariants[] = {{false, 1, 0, 2}, {false, 2, 2, 2}, {true, 1, 0, 2}, {true, 2, 2, 2},
                                 {false, 1, 0, 1}, {false, 2, 2, 1}, {true, 1, 0, 1}, {true, 2, 2, 1},
                                 {false, 2, 0, 2}, {false, 2, 1, 2}, {true, 2, 0, 2}, {true, 2, 1, 2}};

template <bool Coop, Epi E, int CL, int NB>
void launch_one(const WsArgs& args, int sms, cudaStream_t s) {
  constexpr int S = fit_stages(Coop, E, NB);
  constexpr auto kernel = gemm_ws_kernel<2, Coop, S, E, CL, NB>;
  constexpr int bytes = smem_bytes(Coop, S, E, NB);
  allow_dynamic_smem(kernel, bytes);
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = CL;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = bytes;
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  // One wave: as many clusters as fit at once (not every SM can join a cluster of two when the GPCs'
  // SM counts are odd; a second wave of persistent blocks would double the time).
  static const int resident = [&] {
    cfg.gridDim = dim3(static_cast<unsigned>(sms / CL * CL));
    int n = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveClusters(&n, kernel, &cfg));
    std::printf("  (%s, %d stages, %d epilogue buffers: %d clusters of %d resident)\n", Coop ? "coop" : "ping-pong", S,
                epi_tma(E) ? NB : 0, n, CL);
    return n;
  }();
  cfg.gridDim = dim3(static_cast<unsigned>(std::min(resident, args.tiles) * CL));
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args));
}

template <Epi E, int NB>
void launch_nb(Variant v, const WsArgs& args, int sms, cudaStream_t s) {
  if (v.coop) {
    if (v.cl == 2) launch_one<true, E, 2, NB>(args, sms, s);
    else launch_one<true, E, 1, NB>(args, sms, s);
  } else {
    if (v.cl == 2) launch_one<false, E, 2, NB>(args, sms, s);
    else launch_one<false, E, 1, NB>(args, sms, s);
  }
}
template <Epi E>
void launch_epi(Variant v, const WsArgs& args, int sms, cudaStream_t s) {
  if constexpr (epi_tma(E)) {
    if (v.nb == 1) return launch_nb<E, 1>(v, args, sms, s);
  }
  launch_nb<E, 2>(v, args, sms, s);
}

// D = A W^T + bias (+ GELU, or added to D): A [rows, k] bf16, W [n, k] bf16, bias [n] bf16.
void gemm_ws(Variant v, Epi e, const void* a, const void* w, const void* bias, void* d, std::int64_t rows, int n,
             int k, int sms, cudaStream_t s, unsigned long long* stamps = nullptr) {
  const int tm = v.bm(), tn = v.bn();
  VITRT_CHECK(n % (tn * v.cl) == 0 && k % kBK == 0, "gemm_ws: n must be a multiple of ", tn * v.cl, " and k of ", kBK);
  WsArgs args{matrix_tensor_map(a, DT::bf16, rows, k, k, tm / v.cl),
              matrix_tensor_map(w, DT::bf16, n, k, k, tn),
              epi_tma(e) ? matrix_tensor_map(d, epi_f32(e) ? DT::f32 : DT::bf16, rows, n, n, 128) : CUtensorMap{},
              static_cast<const __nv_bfloat16*>(bias),
              d,
              rows,
              n,
              k,
              n / tn / v.cl,
              static_cast<int>((rows + tm - 1) / tm) * (n / tn / v.cl),
              v.share,
              stamps};
  switch (e) {
    case Epi::bias: launch_epi<Epi::bias>(v, args, sms, s); break;
    case Epi::gelu: launch_epi<Epi::gelu>(v, args, sms, s); break;
    case Epi::residual: launch_epi<Epi::residual>(v, args, sms, s); break;
    case Epi::residual_tma: launch_epi<Epi::residual_tma>(v, args, sms, s); break;
    case Epi::bias_tma: launch_epi<Epi::bias_tma>(v, args, sms, s); break;
    case Epi::gelu_tma: launch_epi<Epi::gelu_tma>(v, args, sms, s); break;
    case Epi::gelu_ex2_tma: launch_epi<Epi::gelu_ex2_tma>(v, args, sms, s); break;
  }
}

std::vector<float> to_host(const void* p, std::size_t n, DT dt) {
  std::vector<float> out(n);
  if (dt == DT::f32) {
    CUDA_CHECK(cudaMemcpy(out.data(), p, n * 4, cudaMemcpyDeviceToHost));
    return out;
  }
  std::vector<__nv_bfloat16> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
  for (std::size_t i = 0; i < n; ++i) out[i] = __bfloat162float(h[i]);
  return out;
}

struct Case {
  const char* name;
  int in, out;
  Epi epi;
};

// Which GELU cuBLASLt's GELU_BIAS epilogue computes: W = 0, so D = GELU(bias) rounded to bf16, for 4,096
// bf16 inputs in [-8, 8). Each output is compared with the exact GELU (erf form) and with the tanh form,
// both rounded to bf16 on the host.
int gelu_probe(const GemmContext& ctx, cublasLtHandle_t lt) {
  constexpr int kRows = 64, kIn = 64, kOut = 4096;
  std::vector<__nv_bfloat16> hb(kOut), hw(static_cast<std::size_t>(kOut) * kIn, __float2bfloat16(0.0f));
  for (int i = 0; i < kOut; ++i) hb[static_cast<std::size_t>(i)] = __float2bfloat16(-8.0f + 16.0f * static_cast<float>(i) / kOut);
  void* a = bench::device_random(static_cast<std::size_t>(kRows) * kIn, DT::bf16, 1.f, 7);
  void *w = nullptr, *bias = nullptr, *d = nullptr;
  CUDA_CHECK(cudaMalloc(&w, hw.size() * 2));
  CUDA_CHECK(cudaMalloc(&bias, hb.size() * 2));
  CUDA_CHECK(cudaMalloc(&d, static_cast<std::size_t>(kRows) * kOut * 2));
  CUDA_CHECK(cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(bias, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice));
  const LinearWeights lw{nullptr, nullptr, kOut, kIn};
  const LinearArgs la{&lw, kRows, a, kIn, DT::bf16, d, kOut, DT::bf16, Epilogue::gelu_erf, false};
  LinearOp op(lt, la, w, bias, Precision::bf16, ctx);
  op.execute(lt, la, ctx.workspace, ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  const std::vector<float> got = to_host(d, static_cast<std::size_t>(kOut), DT::bf16);  // the first row
  int exact = 0, tanh_form = 0;
  double worst_exact = 0, worst_abs = 0, worst_abs_rounded = 0, worst_x = 0;
  for (int i = 0; i < kOut; ++i) {
    const double x = __bfloat162float(hb[static_cast<std::size_t>(i)]);
    const double e = 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    const double t = 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    const float g = got[static_cast<std::size_t>(i)];
    exact += g == __bfloat162float(__float2bfloat16(static_cast<float>(e)));
    tanh_form += g == __bfloat162float(__float2bfloat16(static_cast<float>(t)));
    worst_exact = std::max(worst_exact, std::fabs(g - e) / std::max(std::fabs(e), 1e-30));
    if (x <= -2.0 && std::fabs(g - e) > worst_abs) {  // the tail, where the outputs are small
      worst_abs = std::fabs(g - e);
      worst_x = x;
    }
    if (x <= -2.0)
      worst_abs_rounded = std::max(worst_abs_rounded, std::fabs(__bfloat162float(__float2bfloat16(static_cast<float>(e))) - e));
    if (i % 256 == 0)
      std::printf("  x %8.4f: cuBLASLt %.6g, exact %.6g, tanh form %.6g\n", x, static_cast<double>(g), e, t);
  }
  std::printf("cuBLASLt GELU_BIAS (bf16 out) on %d inputs in [-8, 8): equal to the exact GELU rounded to bf16: %d, "
              "to the tanh form rounded: %d; largest relative difference from the exact value %.3g, for x <= -2 the largest "
              "absolute difference is %.3g (at x = %.4f; rounding the exact value to bf16 alone: up to %.3g)\n",
              kOut, exact, tanh_form, worst_exact, worst_abs, worst_x, worst_abs_rounded);
  for (void* q : {a, w, bias, d}) CUDA_CHECK(cudaFree(q));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t rows = argc > 1 ? std::atoll(argv[1]) : 50432;
  const int embed = argc > 2 ? std::atoi(argv[2]) : 768, mlp = argc > 3 ? std::atoi(argv[3]) : 3072;
  const std::string only_case = argc > 4 ? argv[4] : "";  // for a profiler: one case, one variant
  const int only_variant = argc > 5 ? std::atoi(argv[5]) : -1;
  const bool stamps = argc > 6 && std::string(argv[6]) == "stamps";  // one more run per variant, clocked
  cudaDeviceProp props{};
  CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
  const int arch = props.major * 10 + props.minor, sms = props.multiProcessorCount;
  if (arch != 90) {
    std::printf("gemm_ws needs sm_90 (this device is sm_%d)\n", arch);
    return 1;
  }
  bench::LtRig lr;
  if (!bench::make_lt_rig(props, lr)) return 1;
  const cudaStream_t s = lr.s;
  const cublasLtHandle_t lt = lr.lt;
  const L2Flush& flush = lr.flush;
  TuneCache cache(tune_device_key(props), "/tmp/vitrt_gemm_ws_tune.json", true);
  if (only_case == "gelu_probe") return gelu_probe(lr.context(&cache, sms, arch), lt);
  std::printf("gemm_ws against tuned cuBLASLt, %lld rows, %s; us: flushed (as tuned) / back to back (20 per event pair)\n",
              static_cast<long long>(rows), props.name);

  const Case cases[] = {{"qkv", embed, 3 * embed, Epi::bias},
                        {"proj + residual", embed, embed, Epi::residual},
                        {"fc1 + GELU", embed, mlp, Epi::gelu},
                        {"fc1 bias only", embed, mlp, Epi::bias},
                        {"fc2 + residual", mlp, embed, Epi::residual},
                        {"proj + residual by TMA add", embed, embed, Epi::residual_tma},
                        {"fc2 + residual by TMA add", mlp, embed, Epi::residual_tma},
                        {"qkv by TMA store", embed, 3 * embed, Epi::bias_tma},
                        {"fc1 + GELU by TMA store", embed, mlp, Epi::gelu_tma},
                        {"fc1 + GELU (one exp2) by TMA store", embed, mlp, Epi::gelu_ex2_tma},
                        {"fc1 bias only by TMA store", embed, mlp, Epi::bias_tma}};
  unsigned seed = 1;
  int failures = 0;
  for (const Case& c : cases) {
    if (std::string(c.name).rfind(only_case, 0) != 0) continue;
    const bool res = epi_f32(c.epi);
    const DT out_dt = res ? DT::f32 : DT::bf16;
    const std::size_t nd = static_cast<std::size_t>(rows) * c.out;
    void* a = bench::device_random(static_cast<std::size_t>(rows) * c.in, DT::bf16, 1.f, seed++);
    void* w = bench::device_random(static_cast<std::size_t>(c.out) * c.in, DT::bf16, 0.03f, seed++);
    void* bias = bench::device_random(static_cast<std::size_t>(c.out), DT::bf16, 0.5f, seed++);
    void* d0 = bench::device_random(nd, out_dt, 1.f, seed++);  // the residual's starting value
    void* d_lt = nullptr;
    void* d_ws = nullptr;
    CUDA_CHECK(cudaMalloc(&d_lt, nd * dt_size(out_dt)));
    CUDA_CHECK(cudaMalloc(&d_ws, nd * dt_size(out_dt)));
    const double flop = 2.0 * static_cast<double>(rows) * c.in * c.out;

    // cuBLASLt with an fp32 bias for the residual case (as the model's fp32 stream has) and the same values.
    void* bias_lt = bias;
    if (res) {
      const std::vector<float> hb = to_host(bias, static_cast<std::size_t>(c.out), DT::bf16);
      CUDA_CHECK(cudaMalloc(&bias_lt, hb.size() * 4));
      CUDA_CHECK(cudaMemcpy(bias_lt, hb.data(), hb.size() * 4, cudaMemcpyHostToDevice));
    }
    const LinearWeights lw{nullptr, nullptr, c.out, c.in};
    const LinearArgs la{&lw, rows, a, c.in, DT::bf16, d_lt, c.out, out_dt,
                        epi_gelu(c.epi) ? Epilogue::gelu_erf : Epilogue::none, res};
    LinearOp op(lt, la, w, bias_lt, Precision::bf16, lr.context(&cache, sms, arch));
    auto run_lt = [&] {
      op.execute(lt, la, lr.workspace, s);
      return true;
    };
    CUDA_CHECK(cudaMemcpy(d_lt, d0, nd * dt_size(out_dt), cudaMemcpyDeviceToDevice));
    run_lt();
    const std::vector<float> ref = to_host(d_lt, nd, out_dt);
    const double lt_flushed = time_us(run_lt, s, flush);
    const double lt_b2b = bench::event_median_us([&] { for (int r = 0; r < 20; ++r) run_lt(); }, s, 7, 2, 20);
    std::printf("\n%s: %lld x %d -> %d\n  cuBLASLt (tuned): %.1f / %.1f us (%.0f TFLOP/s back to back)\n", c.name,
                static_cast<long long>(rows), c.in, c.out, lt_flushed, lt_b2b, flop / lt_b2b * 1e-6);

    for (int vi = 0; vi < static_cast<int>(std::size(kVariants)); ++vi) {
      const Variant v = kVariants[vi];
      if (c.out % (v.bn() * v.cl) != 0 || (only_variant >= 0 && vi != only_variant)) continue;
      if (!epi_tma(c.epi) && v.nb != 2) continue;  // the buffers are the TMA epilogues' only
      auto run_ws = [&] {
        gemm_ws(v, c.epi, a, w, bias, d_ws, rows, c.out, c.in, sms, s);
        return true;
      };
      if (res)
        CUDA_CHECK(cudaMemcpy(d_ws, d0, nd * dt_size(out_dt), cudaMemcpyDeviceToDevice));
      else
        CUDA_CHECK(cudaMemset(d_ws, 0xff, nd * dt_size(out_dt)));  // poison: NaN where nothing is written
      run_ws();
      CUDA_CHECK(cudaStreamSynchronize(s));
      const std::vector<float> got = to_host(d_ws, nd, out_dt);
      double worst = 0, scale = 0;
      std::size_t bad = 0;
      for (std::size_t i = 0; i < nd; ++i) {
        scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
        const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
        if (!(diff <= 0.02 * (1.0 + std::fabs(ref[i])))) ++bad;
        if (!(diff <= worst)) worst = diff;
      }
      const double ws_flushed = time_us(run_ws, s, flush);
      const double ws_b2b = bench::event_median_us([&] { for (int r = 0; r < 20; ++r) run_ws(); }, s, 7, 2, 20);
      std::printf("  ours [%d] %s %dx%d, %d stages, %d epilogue buffers, cluster %d (share %d): %.1f / %.1f us (%.0f TFLOP/s), ours / cuBLASLt %.3f / %.3f; max |diff| %.3g "
                  "(outputs up to %.3g), %zu outside 2%%\n",
                  vi, v.coop ? "coop" : "ping-pong", v.bm(), v.bn(), fit_stages(v.coop, c.epi, v.nb),
                  epi_tma(c.epi) ? v.nb : 0, v.cl, v.share, ws_flushed, ws_b2b, flop / ws_b2b * 1e-6, ws_flushed / lt_flushed,
                  ws_b2b / lt_b2b, worst, scale, bad);
      if (bad) ++failures;
      if (stamps) {  // one launch with the per-block clocks on: where the block's time goes
        const std::size_t ns = 4 * static_cast<std::size_t>(sms);
        unsigned long long* st = nullptr;
        CUDA_CHECK(cudaMalloc(&st, ns * 8));
        CUDA_CHECK(cudaMemset(st, 0, ns * 8));
        gemm_ws(v, c.epi, a, w, bias, d_ws, rows, c.out, c.in, sms, s, st);
        std::vector<unsigned long long> h(ns);
        CUDA_CHECK(cudaMemcpy(h.data(), st, ns * 8, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaFree(st));
        double sum[4] = {0, 0, 0, 0};
        int blocks = 0;
        for (int b = 0; b < sms; ++b) {
          if (h[4 * b + 3] == 0) continue;
          ++blocks;
          for (int q = 0; q < 4; ++q) sum[q] += static_cast<double>(h[4 * b + q]);
        }
        if (blocks > 0) {
          const double total = sum[3] / blocks;
          std::printf("    clocks, mean of %d blocks: %.0f per block; producer waits for a free stage %.1f%%, consumers "
                      "wait for a full stage %.1f%%, for their turn %.1f%% (per consumer)\n",
                      blocks, total, 100 * sum[0] / sum[3], 50 * sum[1] / sum[3], 50 * sum[2] / sum[3]);
        }
      }
    }
    for (void* p : {a, w, bias, d0, d_lt, d_ws}) CUDA_CHECK(cudaFree(p));
    if (res) CUDA_CHECK(cudaFree(bias_lt));
  }
  std::printf("\n%s\n", failures ? "MISMATCH against cuBLASLt" : "all outputs agree with cuBLASLt");
  return failures ? 1 : 0;
}
