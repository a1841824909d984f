// Experiment (docs/performance.md, session 26): can a GEMM of ours match cuBLASLt's on the large-batch
// GEMMs of a ViT block, so that LayerNorm, GELU and the residual could later be fused into it? Session
// 14's kernel (one producer warp, two consumer warpgroups on one 128 x 256 tile, no register split) ran
// 1.3-3.5x slower. This one is laid out as cuBLASLt's and CUTLASS's Hopper kernels are:
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
//   residual add (D += result) from registers or by TMA reductions from shared memory.
// The driver times every variant against the tuned cuBLASLt algorithm (LinearOp, as `vitrt tune` picks
// it) on the same buffers and checks the outputs agree (bf16: within 2% + 0.02). Measurement only: the
// library does not use this kernel (it was slower than cuBLASLt on every ViT shape, run331-336).
//   gemm_ws [rows 50432] [embed 768] [mlp 3072] [case name prefix] [variant index]
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

// residual_tma: the residual add through shared memory, the tile added to D by TMA reductions (each
// consumer stages 32 columns at a time in one of two 16 KB buffers, 128-byte swizzled), so the SMs read
// none of D.
enum class Epi { bias, gelu, residual, residual_tma };
constexpr int kEpiChunk = 128 * 32 * 4;  // 128 rows x 32 fp32 columns
template <Epi E>
__host__ __device__ constexpr int epi_bytes() {
  return E == Epi::residual_tma ? 2 * 2 * kEpiChunk : 0;  // two buffers per consumer warpgroup
}

// A consumer's tile: MI slabs of 64 rows by 256 / MI columns (128 accumulators per thread either way).
// Ping-pong: a block tile is one consumer's. Cooperative (Coop): both consumers share a block tile of
// twice the rows and the same columns (B read once for both), each taking half the rows.
template <int MI, bool Coop>
struct Tile {
  static constexpr int tm = 64 * MI, tn = 256 / MI, bm = Coop ? 2 * tm : tm, a_bytes = bm * 128,
                       stage = a_bytes + tn * 128;
};
template <int MI, bool Coop, int S, Epi E>
constexpr int smem_bytes() {
  // alignment slack, stages, epilogue buffers, full / empty / turn barriers
  return 1024 + S * Tile<MI, Coop>::stage + epi_bytes<E>() + (2 * S + 2) * 8;
}

struct WsArgs {
  CUtensorMap a_map, w_map, d_map;  // d_map: residual_tma only (fp32 D, boxes of 32 columns x 128 rows)
  const __nv_bfloat16* bias;
  void* d;  // bf16 [rows, n], or fp32 with the residual add
  std::int64_t rows;
  int n, k, n_tiles, tiles;
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
// Arrives on the mbarrier at shared address `bar` in block `rank` of the cluster (this block included).
__device__ __forceinline__ void mbar_arrive_cluster(unsigned bar, unsigned rank) {
  asm volatile(
      "{\n.reg .b32 r;\nmapa.shared::cluster.u32 r, %0, %1;\nmbarrier.arrive.release.cluster.shared::cluster.b64 _, [r];\n}\n" ::"r"(
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
template <int MI, bool Coop, int S, Epi E, int CL>
__device__ __forceinline__ void consume(const WsArgs& p, unsigned base, unsigned full0, unsigned empty0, unsigned turn0,
                                        int cl, int clusters, unsigned rank) {
  using T = Tile<MI, Coop>;
  static_assert(MI == 2, "64 x 256 slabs (one m64n256 accumulator) ran 1.3-2x slower than 128 x 128 (run332)");
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  const int ktiles = p.k / kBK;

  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
  const int c = wg - 1, warp = (tid % 128) / 32, lane = tid % 32;
  const bool leader = tid % 128 == 0;
  auto release = [](unsigned bar) {  // this stage, in every block of the cluster
    if constexpr (CL > 1) {
      for (unsigned r = 0; r < CL; ++r) mbar_arrive_cluster(bar, r);
    } else {
      mbar_arrive(bar);
    }
  };
  constexpr int kStep = Coop ? 1 : 2;  // block tiles between this consumer's tiles
  int i = Coop ? 0 : c;                // this block's tile index (the producer's order)
  for (int tile = cl + i * clusters; tile < p.tiles; tile += kStep * clusters, i += kStep) {
    const int n0 = (tile % p.n_tiles * CL + static_cast<int>(rank)) * T::tn,
              m0 = tile / p.n_tiles * T::bm + (Coop ? c * T::tm : 0);
    if (!Coop && i > 0) mbar_wait(turn0 + 8 * c, static_cast<unsigned>(((i - 1) / 2) & 1));  // the other's main loop is issued
    float d[MI][T::tn / 8][4];
    const int it0 = i * ktiles;
    for (int kt = 0; kt < ktiles; ++kt) {
      const int it = it0 + kt, s = it % S;
      mbar_wait(full0 + 8 * s, static_cast<unsigned>((it / S) & 1));
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

    if constexpr (E == Epi::residual_tma) {
      // 32 columns at a time: bias added, written swizzled into buffer q % 2, added to D by one TMA
      // reduction (rows past the end are not written). A buffer is rewritten once its previous
      // reduction has read it (the leader waits, then the warpgroup's named barrier).
      const unsigned ebuf = base + static_cast<unsigned>(S * T::stage + c * 2 * kEpiChunk);
      const unsigned bar_id = 1 + static_cast<unsigned>(c);
#pragma unroll
      for (int q = 0; q < T::tn / 32; ++q) {
        const unsigned buf = ebuf + static_cast<unsigned>((q % 2) * kEpiChunk);
        if (leader) {
          if (q == 0) bulk_wait_read();
          else asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory");
        }
        asm volatile("bar.sync %0, 128;\n" ::"r"(bar_id) : "memory");
#pragma unroll
        for (int r = 0; r < MI; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) {
              const int j = 4 * q + jj, row = r * 64 + warp * 16 + lane / 4 + 8 * h, col = 8 * jj + 2 * (lane % 4);
              asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(buf + sw128_f32(row, col)),
                           "f"(d[r][j][2 * h] + bias[j].x), "f"(d[r][j][2 * h + 1] + bias[j].y)
                           : "memory");
            }
        fence_proxy_async();
        asm volatile("bar.sync %0, 128;\n" ::"r"(bar_id) : "memory");
        if (leader) {
          tma_add_2d(&p.d_map, buf, n0 + 32 * q, m0);
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
        if constexpr (E == Epi::residual) {
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
            if constexpr (E == Epi::gelu) {
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
  if (E == Epi::residual_tma && leader) bulk_wait_read();  // shared memory outlives the reductions' reads
}
#endif

// CL: blocks per cluster along N (1 or 2). With 2, the two blocks take neighbouring column tiles of the
// same rows, and each copies half of the A tile into both (TMA multicast): A's L2 reads are halved. A
// stage is then free only once the consumers of both blocks are done with it (empty counts both).
template <int MI, bool Coop, int S, Epi E, int CL>
__global__ void __launch_bounds__(kThreads, 1) gemm_ws_kernel(const __grid_constant__ WsArgs p) {
#ifdef VITRT_WGMMA_DEVICE
  using T = Tile<MI, Coop>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), full0 = base + S * T::stage + epi_bytes<E>(), empty0 = full0 + 8 * S,
                 turn0 = empty0 + 8 * S;
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  const int ktiles = p.k / kBK;
  if (tid == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(full0 + 8 * s, 1);
      mbar_init(empty0 + 8 * s, (Coop ? 2 : 1) * CL);
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
      int it = 0;
      constexpr int kARows = T::bm / CL;  // rows of A this block copies (into every block of the cluster)
      for (int tile = cl; tile < p.tiles; tile += clusters) {
        const int n0 = (tile % p.n_tiles * CL + static_cast<int>(rank)) * T::tn, m0 = tile / p.n_tiles * T::bm;
        for (int kt = 0; kt < ktiles; ++kt, ++it) {
          const int s = it % S;
          if (it >= S) mbar_wait(empty0 + 8 * s, static_cast<unsigned>((it / S - 1) & 1));
          const unsigned full = full0 + 8 * s, dst = base + static_cast<unsigned>(s * T::stage);
          mbar_arrive_expect(full, T::stage);
          const unsigned a_dst = dst + rank * kARows * 128;
          if constexpr (CL > 1)
            tma_load_2d_multicast(a_dst, &p.a_map, kt * kBK, m0 + static_cast<int>(rank) * kARows, full, (1u << CL) - 1);
          else
            tma_load_2d(a_dst, &p.a_map, kt * kBK, m0, full);  // rows past the end arrive as zeros
          tma_load_2d(dst + T::a_bytes, &p.w_map, kt * kBK, n0, full);
        }
      }
    }
  } else {
    consume<MI, Coop, S, E, CL>(p, base, full0, empty0, turn0, cl, clusters, rank);
  }
  // No block leaves while its peer may still copy into it or arrive on its barriers.
  if constexpr (CL > 1) cluster_sync_all();
#else
  (void)p;
#endif
}


struct Variant {
  int mi, stages;
  bool coop;
  int cl;
  int bm() const { return coop ? 128 * mi : 64 * mi; }
  int bn() const { return 256 / mi; }
};
constexpr Variant kVariants[] = {{2, 6, false, 1}, {2, 6, false, 2}, {2, 4, true, 1}, {2, 4, true, 2}};

template <int MI, bool Coop, int S, Epi E, int CL>
void launch_one(const WsArgs& args, int sms, cudaStream_t s) {
  constexpr auto kernel = gemm_ws_kernel<MI, Coop, S, E, CL>;
  constexpr int bytes = smem_bytes<MI, Coop, S, E>();
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
    std::printf("  (%s: %d clusters of %d resident)\n", Coop ? "coop" : "ping-pong", n, CL);
    return n;
  }();
  cfg.gridDim = dim3(static_cast<unsigned>(std::min(resident, args.tiles) * CL));
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args));
}

template <Epi E>
void launch_epi(Variant v, const WsArgs& args, int sms, cudaStream_t s) {
  VITRT_CHECK(v.mi == 2, "gemm_ws: only 64-row slabs x 2 are compiled");
  constexpr int kLess = E == Epi::residual_tma ? 1 : 0;  // a stage fewer makes room for the epilogue's buffers
  if (v.coop) {
    if (v.cl == 2) launch_one<2, true, 4 - kLess, E, 2>(args, sms, s);
    else launch_one<2, true, 4 - kLess, E, 1>(args, sms, s);
  } else {
    if (v.cl == 2) launch_one<2, false, 6 - kLess, E, 2>(args, sms, s);
    else launch_one<2, false, 6 - kLess, E, 1>(args, sms, s);
  }
}

// D = A W^T + bias (+ GELU, or added to D): A [rows, k] bf16, W [n, k] bf16, bias [n] bf16.
void gemm_ws(Variant v, Epi e, const void* a, const void* w, const void* bias, void* d, std::int64_t rows, int n,
             int k, int sms, cudaStream_t s) {
  const int tm = v.bm(), tn = v.bn();
  VITRT_CHECK(n % (tn * v.cl) == 0 && k % kBK == 0, "gemm_ws: n must be a multiple of ", tn * v.cl, " and k of ", kBK);
  WsArgs args{matrix_tensor_map(a, DT::bf16, rows, k, k, tm / v.cl),
              matrix_tensor_map(w, DT::bf16, n, k, k, tn),
              e == Epi::residual_tma ? matrix_tensor_map(d, DT::f32, rows, n, n, 64 * v.mi) : CUtensorMap{},
              static_cast<const __nv_bfloat16*>(bias),
              d,
              rows,
              n,
              k,
              n / tn / v.cl,
              static_cast<int>((rows + tm - 1) / tm) * (n / tn / v.cl)};
  switch (e) {
    case Epi::bias: launch_epi<Epi::bias>(v, args, sms, s); break;
    case Epi::gelu: launch_epi<Epi::gelu>(v, args, sms, s); break;
    case Epi::residual: launch_epi<Epi::residual>(v, args, sms, s); break;
    case Epi::residual_tma: launch_epi<Epi::residual_tma>(v, args, sms, s); break;
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

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t rows = argc > 1 ? std::atoll(argv[1]) : 50432;
  const int embed = argc > 2 ? std::atoi(argv[2]) : 768, mlp = argc > 3 ? std::atoi(argv[3]) : 3072;
  const std::string only_case = argc > 4 ? argv[4] : "";  // for a profiler: one case, one variant
  const int only_variant = argc > 5 ? std::atoi(argv[5]) : -1;
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
  void* const workspace = lr.workspace;
  constexpr std::size_t kWorkspace = bench::LtRig::kWorkspace;
  TuneCache cache(tune_device_key(props), "/tmp/vitrt_gemm_ws_tune.json", true);
  std::printf("gemm_ws against tuned cuBLASLt, %lld rows, %s; us: flushed (as tuned) / back to back (20 per event pair)\n",
              static_cast<long long>(rows), props.name);

  const Case cases[] = {{"qkv", embed, 3 * embed, Epi::bias},
                        {"proj + residual", embed, embed, Epi::residual},
                        {"fc1 + GELU", embed, mlp, Epi::gelu},
                        {"fc1 bias only", embed, mlp, Epi::bias},
                        {"fc2 + residual", mlp, embed, Epi::residual},
                        {"proj + residual by TMA add", embed, embed, Epi::residual_tma},
                        {"fc2 + residual by TMA add", mlp, embed, Epi::residual_tma}};
  unsigned seed = 1;
  int failures = 0;
  for (const Case& c : cases) {
    if (std::string(c.name).rfind(only_case, 0) != 0) continue;
    const bool res = c.epi == Epi::residual || c.epi == Epi::residual_tma;
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
                        c.epi == Epi::gelu ? Epilogue::gelu_erf : Epilogue::none, res};
    const GemmContext ctx{&cache, workspace, kWorkspace, s, sms, arch, flush, false};
    LinearOp op(lt, la, w, bias_lt, Precision::bf16, ctx);
    auto run_lt = [&] {
      op.execute(lt, la, workspace, s);
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
      std::printf("  ours %s %dx%d, %d stages, cluster %d: %.1f / %.1f us (%.0f TFLOP/s), ours / cuBLASLt %.3f / %.3f; max |diff| %.3g "
                  "(outputs up to %.3g), %zu outside 2%%\n",
                  v.coop ? "coop" : "ping-pong", v.bm(), v.bn(), v.stages - (c.epi == Epi::residual_tma ? 1 : 0), v.cl, ws_flushed, ws_b2b, flop / ws_b2b * 1e-6, ws_flushed / lt_flushed,
                  ws_b2b / lt_b2b, worst, scale, bad);
      if (bad) ++failures;
    }
    for (void* p : {a, w, bias, d0, d_lt, d_ws}) CUDA_CHECK(cudaFree(p));
    if (res) CUDA_CHECK(cudaFree(bias_lt));
  }
  std::printf("\n%s\n", failures ? "MISMATCH against cuBLASLt" : "all outputs agree with cuBLASLt");
  return failures ? 1 : 0;
}
