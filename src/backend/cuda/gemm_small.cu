// Our 16-bit GEMM for small batches (gemm_small.cuh): W's slice copied before griddepcontrol.wait,
// A after it, all of K / split in shared memory at once, wgmma m64n64k16 from shared memory, and the
// split-K partial sums added across the cluster through distributed shared memory.
//
// A block of WG consumer warpgroups (no producer warp: thread 0 issues every copy up front, there is
// no stage to recycle) computes rows m0 .. m0 + 64 WG - 1 and columns n0 .. n0 + 64 NB - 1 over the
// block's K range, k-tiles of 64 columns (128 bytes, 128-byte swizzled by the TMA copy, as the wgmma
// descriptors read them). k-tile kt has one mbarrier, which completes when both its W and its A box
// have landed; rows of A past the end arrive as zeros.
// Epilogue: each thread stores its accumulators (rows g, g + 8 of its warp's 16, columns 2t, 2t + 1 of
// every 8) into the block's shared memory, row-major with 8 floats of padding per row (two wavefronts
// per warp's 256 bytes). After a cluster barrier block r of the cluster reads rows r BM / split ..
// (r + 1) BM / split - 1 from every block of the cluster in rank order, adds bias (and the residual),
// applies the activation and writes 4 consecutive outputs per thread; a second cluster barrier keeps
// every block's shared memory alive until the others have read it.
#include "backend/cuda/gemm_small.cuh"

#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kBK = 64;                  // K columns per k-tile (128 bytes of 16-bit values)
constexpr int kMaxSmem = 227 * 1024;     // dynamic shared memory a block may have on sm_90
constexpr int kBarrierBytes = 1024;      // mbarriers, one per k-tile (keeps the operands 1024-aligned)

struct Tile {
  int wg, nb;  // consumer warpgroups (64 rows each), 64-column pieces of N
};
constexpr Tile tile_of(int variant) {
  switch ((variant - 100) / 10) {
    case 1: return {1, 1};
    case 2: return {1, 2};
    case 3: return {2, 2};
    default: return {0, 0};
  }
}
constexpr int split_of(int variant) { return (variant - 100) % 10; }

// Operand bytes of one block (all its k-tiles), and its shared memory: alignment slack, barriers, and
// the larger of the operands and the fp32 partial tile that reuses them.
int operand_bytes(Tile t, int tiles) { return tiles * (64 * t.wg + 64 * t.nb) * 128; }
int smem_bytes(Tile t, int tiles) {
  const int partial = 64 * t.wg * (64 * t.nb + 8) * 4;
  return 1024 + kBarrierBytes + std::max(operand_bytes(t, tiles), partial);
}

struct GemmSmallArgs {
  CUtensorMap a_map, w_map;
  const void* bias;
  void* d;
  std::int64_t ldd, rows;
  int tiles;  // k-tiles per block
  int out_f32, act, accumulate;
};

#ifdef VITRT_WGMMA_DEVICE
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// Four floats at shared address `addr` in the shared memory of the cluster's block `rank`.
__device__ __forceinline__ float4 load_cluster4(unsigned addr, unsigned rank) {
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(addr), "r"(rank));
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(remote)
               : "memory");
  return v;
}

template <typename TOut>
__device__ __forceinline__ void finish4(const GemmSmallArgs& p, float4 v, std::int64_t row, int col) {
  const float4 b = load4(static_cast<const TOut*>(p.bias), col / 4);
  v.x += b.x;
  v.y += b.y;
  v.z += b.z;
  v.w += b.w;
  TOut* const out = static_cast<TOut*>(p.d) + row * p.ldd + col;
  if (p.act == static_cast<int>(Epilogue::gelu_erf)) {
    v = make_float4(gelu_erf(v.x), gelu_erf(v.y), gelu_erf(v.z), gelu_erf(v.w));
  } else if (p.act == static_cast<int>(Epilogue::quick_gelu)) {
    v = make_float4(quick_gelu(v.x), quick_gelu(v.y), quick_gelu(v.z), quick_gelu(v.w));
  }
  if (p.accumulate) {  // dst += act(...), as LinearArgs says
    const float4 o = load4(out, 0);
    v.x += o.x;
    v.y += o.y;
    v.z += o.z;
    v.w += o.w;
  }
  store4(out, v.x, v.y, v.z, v.w);
}
#endif  // VITRT_WGMMA_DEVICE

template <typename T, int WG, int NB, int Split>
__global__ void __launch_bounds__(WG * 128) gemm_small_kernel(const __grid_constant__ GemmSmallArgs p) {
#ifdef VITRT_WGMMA_DEVICE
  constexpr int kBM = 64 * WG, kBN = 64 * NB, kLds = kBN + 8;
  constexpr unsigned kABytes = kBM * 128, kTile = (kBM + kBN) * 128;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned bars = smem_addr(sm), ops = bars + kBarrierBytes;
  const int tid = static_cast<int>(threadIdx.x), tiles = p.tiles;
  unsigned rank = 0;
  if constexpr (Split > 1) asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  const int n0 = static_cast<int>(blockIdx.x) * kBN, m0 = static_cast<int>(blockIdx.y) * kBM;
  const int k0 = static_cast<int>(rank) * tiles * kBK;
  if (tid == 0) {
    for (int kt = 0; kt < tiles; ++kt) mbar_init(bars + 8 * kt, 1);
    mbar_init_fence();
  }
  __syncthreads();
  // W is constant for the whole forward: its copies start before the kernels this one depends on end.
  if (tid == 0)
    for (int kt = 0; kt < tiles; ++kt) {
      mbar_arrive_expect(bars + 8 * kt, kTile);
      tma_load_2d(ops + kt * kTile + kABytes, &p.w_map, k0 + kt * kBK, n0, bars + 8 * kt);
    }
  wait_prior_grid();  // A, and D when accumulating, come from the kernels before this one
  allow_next_grid();
  if (tid == 0)
    for (int kt = 0; kt < tiles; ++kt) tma_load_2d(ops + kt * kTile, &p.a_map, k0 + kt * kBK, m0, bars + 8 * kt);

  const int wg = tid / 128, lane = tid % 32;
  float d[NB][8][4];
  for (int kt = 0; kt < tiles; ++kt) {
    mbar_wait(bars + 8 * kt, 0);
    const unsigned tile = ops + static_cast<unsigned>(kt) * kTile;
    const Sw128Desc ad(tile + static_cast<unsigned>(wg) * 64 * 128), bd(tile + kABytes);
    wgmma_fence();
#pragma unroll
    for (int k16 = 0; k16 < kBK / 16; ++k16)
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
        wgmma_ss_n64<T>(d[nb], ad.at(32 * k16), bd.at(64 * 128 * nb + 32 * k16), kt > 0 || k16 > 0);
    wgmma_commit();
  }
  wgmma_wait<0>();
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) fence_regs(d[nb]);

  // Partial sums into this block's shared memory (over the operands: every warpgroup is done with them).
  __syncthreads();
  float* const partial = reinterpret_cast<float*>(sm + kBarrierBytes);
  const int r0 = wg * 64 + (tid % 128) / 32 * 16 + lane / 4, c0 = 2 * (lane % 4);
#pragma unroll
  for (int nb = 0; nb < NB; ++nb)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      float* const at = partial + r0 * kLds + nb * 64 + 8 * j + c0;
      *reinterpret_cast<float2*>(at) = make_float2(d[nb][j][0], d[nb][j][1]);
      *reinterpret_cast<float2*>(at + 8 * kLds) = make_float2(d[nb][j][2], d[nb][j][3]);
    }
  if constexpr (Split > 1) cluster_sync();
  else __syncthreads();

  constexpr int kRows = kBM / Split, kChunks = kRows * kBN / 4;
  for (int c = tid; c < kChunks; c += WG * 128) {
    const int r = static_cast<int>(rank) * kRows + c / (kBN / 4), col = c % (kBN / 4) * 4;
    const std::int64_t row = m0 + r;
    if (row >= p.rows) continue;
    float4 v;
    if constexpr (Split > 1) {
      const unsigned at = ops + static_cast<unsigned>((r * kLds + col) * 4);
      v = load_cluster4(at, 0);
#pragma unroll
      for (unsigned q = 1; q < Split; ++q) {  // rank order: the sum does not depend on timing
        const float4 x = load_cluster4(at, q);
        v.x += x.x;
        v.y += x.y;
        v.z += x.z;
        v.w += x.w;
      }
    } else {
      v = *reinterpret_cast<const float4*>(partial + r * kLds + col);
    }
    if (p.out_f32) finish4<float>(p, v, row, n0 + col);
    else finish4<T>(p, v, row, n0 + col);
  }
  if constexpr (Split > 1) cluster_sync();  // the other blocks may still read this one's partial sums
#else
  (void)p;
#endif
}

template <typename T, int WG, int NB, int Split>
void launch(const GemmSmallParams& p, cudaStream_t s) {
  constexpr Tile t{WG, NB};
  const int tiles = p.in / kBK / Split, bytes = smem_bytes(t, tiles);
  const bool f16 = p.in_dt == DT::f16;
  const GemmSmallArgs args{matrix_tensor_map(p.a, f16, p.rows, p.in, p.lda, 64 * WG),
                           matrix_tensor_map(p.w, f16, p.out, p.in, p.in, 64 * NB),
                           p.bias,
                           p.d,
                           p.ldd,
                           p.rows,
                           tiles,
                           p.out_dt == DT::f32,
                           static_cast<int>(p.act),
                           p.accumulate};
  const dim3 grid(static_cast<unsigned>(p.out / (64 * NB)), static_cast<unsigned>((p.rows + 64 * WG - 1) / (64 * WG)),
                  Split);
  allow_dynamic_smem(gemm_small_kernel<T, WG, NB, Split>, bytes);
  launch_dependent_cluster(Pdl::gemm, gemm_small_kernel<T, WG, NB, Split>, grid, dim3(WG * 128), bytes, s,
                           dim3(1, 1, Split), args);
}

template <typename T, int WG, int NB>
void launch_split(const GemmSmallParams& p, int split, cudaStream_t s) {
  switch (split) {
    case 1: launch<T, WG, NB, 1>(p, s); break;
    case 2: launch<T, WG, NB, 2>(p, s); break;
    case 4: launch<T, WG, NB, 4>(p, s); break;
    default: launch<T, WG, NB, 8>(p, s); break;
  }
}

template <typename T>
void launch_variant(const GemmSmallParams& p, cudaStream_t s) {
  const int split = split_of(p.variant);
  switch (tile_of(p.variant).nb * 10 + tile_of(p.variant).wg) {
    case 11: launch_split<T, 1, 1>(p, split, s); break;
    case 21: launch_split<T, 1, 2>(p, split, s); break;
    default: launch_split<T, 2, 2>(p, split, s); break;
  }
}

constexpr int kVariants[] = {gemm_small_variant(1, 1), gemm_small_variant(1, 2), gemm_small_variant(1, 4),
                             gemm_small_variant(1, 8), gemm_small_variant(2, 1), gemm_small_variant(2, 2),
                             gemm_small_variant(2, 4), gemm_small_variant(2, 8), gemm_small_variant(3, 1),
                             gemm_small_variant(3, 2), gemm_small_variant(3, 4), gemm_small_variant(3, 8)};

}  // namespace

bool gemm_small_takes(const GemmSmallParams& p, int arch, int variant) {
#ifdef VITRT_CUDA_SM90A
  const Tile t = tile_of(variant);
  const int split = split_of(variant);
  if (t.wg == 0 || (split != 1 && split != 2 && split != 4 && split != 8)) return false;
  const int bm = 64 * t.wg, bn = 64 * t.nb;
  const int out_bytes = p.out_dt == DT::f32 ? 4 : 2;
  const bool types = (p.in_dt == DT::bf16 || p.in_dt == DT::f16) && (p.out_dt == DT::f32 || p.out_dt == p.in_dt);
  const bool shape = arch == 90 && p.rows > 0 && (p.rows + bm - 1) / bm <= 65535 && p.in > 0 &&
                     p.in % (kBK * split) == 0 && p.out > 0 && p.out % bn == 0;
  const bool layout = p.a && p.w && p.d && p.bias && p.lda >= p.in && p.lda % 8 == 0 && aligned(p.a, 16) &&
                      aligned(p.w, 16) && p.ldd >= p.out && p.ldd % 4 == 0 && aligned(p.d, 4 * out_bytes) &&
                      aligned(p.bias, 4 * out_bytes);
  const bool epilogue =
      p.act == Epilogue::none || p.act == Epilogue::gelu_erf || p.act == Epilogue::quick_gelu;
  if (!(types && shape && layout && epilogue)) return false;
  const int tiles = p.in / kBK / split;
  return tiles * 8 <= kBarrierBytes && smem_bytes(t, tiles) <= kMaxSmem;
#else
  (void)p;
  (void)arch;
  (void)variant;
  return false;
#endif
}

std::vector<int> gemm_small_variants(const GemmSmallParams& p, int arch) {
  std::vector<int> v;
  for (int variant : kVariants)
    if (gemm_small_takes(p, arch, variant)) v.push_back(variant);
  return v;
}

int gemm_small_default_variant(const GemmSmallParams& p, int arch, int sm_count) {
  int best = 0;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int v : kVariants) {
    if (!gemm_small_takes(p, arch, v)) continue;
    const Tile t = tile_of(v);
    const int split = split_of(v), tiles = p.in / kBK / split;
    const std::int64_t blocks = (p.rows + 64 * t.wg - 1) / (64 * t.wg) * (p.out / (64 * t.nb)) * split;
    const std::int64_t per_sm = std::max(1, kMaxSmem / smem_bytes(t, tiles));
    const std::int64_t waves = (blocks + per_sm * sm_count - 1) / (per_sm * sm_count);
    // Bytes each block reads (its operands, and the partial sums of the other blocks of its cluster).
    const double bytes = operand_bytes(t, tiles) + (split > 1 ? 64.0 * t.wg * 64 * t.nb * 4 : 0.0);
    const double cost = static_cast<double>(waves) * bytes;
    if (cost < best_cost) {
      best_cost = cost;
      best = v;
    }
  }
  return best;
}

std::string gemm_small_variant_name(int variant) {
  const Tile t = tile_of(variant);
  if (t.wg == 0) return "vitrt small gemm variant " + std::to_string(variant);
  return "vitrt small gemm " + std::to_string(64 * t.wg) + "x" + std::to_string(64 * t.nb) + ", split-k " +
         std::to_string(split_of(variant));
}

void gemm_small(const GemmSmallParams& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_small_takes(p, arch, p.variant), "small GEMM: ", gemm_small_variant_name(p.variant),
              " does not take a ", p.rows, "x", p.in, "x", p.out, " GEMM (", dt_name(p.in_dt), " -> ",
              dt_name(p.out_dt), ") on compute capability ", arch,
              " (it needs sm_90a, 16-bit operands, K a multiple of 64 per split, N of the tile width, aligned rows)");
  if (p.in_dt == DT::f16) launch_variant<__half>(p, s);
  else launch_variant<__nv_bfloat16>(p, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
