// Our 16-bit GEMM for small batches (gemm_small.cuh): W's slice copied before griddepcontrol.wait,
// A after it, all of K / split in shared memory at once, wgmma m64nNk16 pieces from shared memory, and
// the split-K partial sums added across the cluster through distributed shared memory.
//
// A block of WG consumer warpgroups (no producer warp: thread 0 issues every copy up front, there is
// no stage to recycle) computes rows m0 .. m0 + 64 WG - 1 and columns n0 .. n0 + BN - 1 over the
// block's K range, k-tiles of 64 columns (128 bytes, 128-byte swizzled by the TMA copy, as the wgmma
// descriptors read them). k-tile kt has one mbarrier, which completes when both its W and its A box
// have landed (W's box possibly copied by another block of the cluster, multicast); rows of A and W
// past the end arrive as zeros. The bias slice is staged in shared memory by the block's last threads
// while thread 0 issues the copies (session 23's phase stamps: loading it before the first barrier
// held every block up by ~0.5 us).
// Epilogue, unsplit K: straight from the accumulators (rows g, g + 8 of each warp's 16, columns 2t,
// 2t + 1 of every 8), every residual load issued before the first output. With W shared (MC > 1) a
// block arrives on the cluster barrier once its last k-tile has landed and waits on it only before it
// leaves, so that no block leaves while a copy it issued into another is in flight.
// Epilogue, split K: each thread stores its accumulators into the block's shared memory, row-major
// with a row stride of 8 (mod 32) floats (two wavefronts per warp's 256 bytes). After a cluster
// barrier block (mi, ki) reads rows ki BM / split .. (ki + 1) BM / split - 1 from the split blocks of
// its row tile in rank order, adds the bias and the residual, applies the activation and writes 4
// consecutive outputs per thread; a second cluster barrier keeps every block's shared memory alive
// until the others have read it.
#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <utility>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/gemm_small.cuh"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kBK = 64;               // K columns per k-tile (128 bytes of 16-bit values)
static_assert(kBK * 2 == 128, "matrix_tensor_map reads boxes of 128 bytes of columns");
constexpr int kMaxSmem = 227 * 1024;  // dynamic shared memory a block may have on sm_90
constexpr int kBarrierBytes = 1024;   // mbarriers, one per k-tile (keeps the operands 1024-aligned)
constexpr int kBiasBytes = 1024;      // the block's bias slice in fp32 (up to 256 columns)
constexpr int kMaxCluster = 8;        // portable cluster size

// A variant's shape (gemm_small.cuh): rows per block (64 per consumer warpgroup), columns per block,
// blocks of the cluster along M that share W's copies (multicast), and the split of K.
struct Shape {
  int bm = 0, bn = 0, mc = 0, split = 0;
};
constexpr Shape shape_of(int v) { return {v / 100000 * 64, v / 100 % 1000, v / 10 % 10, v % 10}; }
// Floats per row of the fp32 partial tile: a stride of 8 (mod 32) words puts the 8 rows of a warp's
// 64-bit stores on distinct bank pairs.
constexpr int partial_ld(int bn) { return bn + (40 - bn % 32) % 32; }

// The launch grid: tiles along N (the last may be partial), row tiles rounded up to whole clusters
// (the extra ones read zeros and write nothing), and the split of K.
struct Grid {
  std::int64_t n, m, split;
  std::int64_t blocks() const { return n * m * split; }
};
Grid grid_of(Shape t, std::int64_t rows, int out) {
  const std::int64_t m_tiles = (rows + t.bm - 1) / t.bm;
  return {(out + t.bn - 1) / t.bn, (m_tiles + t.mc - 1) / t.mc * t.mc, t.split};
}

// Operand bytes of one block (all its k-tiles), and its shared memory: alignment slack, barriers, the
// bias slice, and the larger of the operands and the output or partial tile that reuses them.
int operand_bytes(Shape t, int tiles) { return tiles * (t.bm + t.bn) * 128; }
int smem_bytes(Shape t, int tiles) {
  // split-K: the fp32 partial tile; unsplit: the output tile staged for its TMA store
  const int partial = t.split > 1 ? t.bm * partial_ld(t.bn) * 4 : t.bm * t.bn * 4;
  return 1024 + kBarrierBytes + kBiasBytes + std::max(operand_bytes(t, tiles), partial);
}

struct GemmSmallArgs {
  CUtensorMap a_map, w_map, d_map;  // d_map: only with tma_out
  const void* bias;
  void* d;
  std::int64_t ldd, rows;
  int out;    // N
  int tiles;  // k-tiles per block
  int out_f32, act, accumulate;
  int tma_out;  // unsplit K: the tile leaves through shared memory as one TMA store (or add)
  unsigned long long* trace;  // GemmSmallParams::trace
};

#ifdef VITRT_WGMMA_DEVICE
// A stamp of a traced launch (GemmSmallParams::trace), by thread 0.
__device__ __forceinline__ void stamp(const GemmSmallArgs& p, int tid, int slot) {
  if (p.trace == nullptr || tid != 0) return;
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned long long v;
  if (slot == kStampGlobalStart || slot == kStampGlobalEnd)
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(v));
  else if (slot == kStampSm)
    v = [] {
      unsigned sm;
      asm("mov.u32 %0, %%smid;\n" : "=r"(sm));
      return sm;
    }();
  else
    v = clock64();
  p.trace[block * kSmallGemmTraceSlots + slot] = v;
}

__device__ __forceinline__ void cluster_arrive() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_sync() {
  cluster_arrive();
  cluster_wait();
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
__device__ __forceinline__ void finish4(const GemmSmallArgs& p, float4 v, float4 b, std::int64_t row, int col) {
  v.x += b.x;
  v.y += b.y;
  v.z += b.z;
  v.w += b.w;
  TOut* const out = static_cast<TOut*>(p.d) + row * p.ldd + col;
  const auto act = static_cast<Epilogue>(p.act);
  v = make_float4(activate(act, v.x), activate(act, v.y), activate(act, v.z), activate(act, v.w));
  if (p.accumulate) {  // dst += act(...), as LinearArgs says
    const float4 o = load4(out, 0);
    v.x += o.x;
    v.y += o.y;
    v.z += o.z;
    v.w += o.w;
  }
  store4(out, v.x, v.y, v.z, v.w);
}

// Two consecutive outputs (an even column: 8- or 4-byte aligned, as gemm_small_takes checks).
__device__ __forceinline__ float2 load2(const float* src) { return *reinterpret_cast<const float2*>(src); }
template <typename T>
__device__ __forceinline__ float2 load2(const T* src) {
  const unsigned raw = *reinterpret_cast<const unsigned*>(src);
  const T* v = reinterpret_cast<const T*>(&raw);
  return make_float2(to_f32(v[0]), to_f32(v[1]));
}
__device__ __forceinline__ void store2(float* dst, float2 v) { *reinterpret_cast<float2*>(dst) = v; }
template <typename T>
__device__ __forceinline__ void store2(T* dst, float2 v) {
  T h[2] = {from_f32<T>(v.x), from_f32<T>(v.y)};
  *reinterpret_cast<unsigned*>(dst) = *reinterpret_cast<const unsigned*>(h);
}

// act(acc + bias) of the two outputs of a thread's accumulator tile j, row half h (columns 8 j + c0, + 1).
template <int BN>
__device__ __forceinline__ float2 bias_act2(const GemmSmallArgs& p, const float (&d)[BN / 8][4], const float* bias,
                                            int j, int h, int c0) {
  float2 v = make_float2(d[j][2 * h] + bias[8 * j + c0], d[j][2 * h + 1] + bias[8 * j + c0 + 1]);
  const auto act = static_cast<Epilogue>(p.act);
  return make_float2(activate(act, v.x), activate(act, v.y));
}

// The epilogue of an unsplit tile, straight from the accumulators: this thread's rows `row`, row + 8
// and, per 8 columns j, columns n0 + 8 j + c0, + 1 (the wgmma layout). Every residual load is issued
// before the first output is computed.
template <typename TOut, int BN>
__device__ __forceinline__ void finish_direct(const GemmSmallArgs& p, const float (&d)[BN / 8][4], const float* bias,
                                              std::int64_t row, int n0, int c0) {
  TOut* const out = static_cast<TOut*>(p.d);
  bool ok[2];
  ok[0] = row < p.rows;
  ok[1] = row + 8 < p.rows;
  float2 res[BN / 8][2];
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int col = n0 + 8 * j + c0;
      res[j][h] = p.accumulate && ok[h] && col < p.out ? load2(out + (row + 8 * h) * p.ldd + col)
                                                       : make_float2(0.f, 0.f);
    }
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int col = n0 + 8 * j + c0;
      if (!ok[h] || col >= p.out) continue;  // the last tiles may reach past M and N
      float2 v = bias_act2<BN>(p, d, bias, j, h, c0);
      v.x += res[j][h].x;  // zeros unless accumulating (dst += act(...), as LinearArgs says)
      v.y += res[j][h].y;
      store2(out + (row + 8 * h) * p.ldd + col, v);
    }
}

// act(acc + bias) of this thread's outputs (as finish_direct's) into the block's BM x BN output tile in
// shared memory, row-major in the output type (the residual, if any, is added by the TMA add).
template <typename TOut, int BN>
__device__ __forceinline__ void stage_tile(const GemmSmallArgs& p, const float (&d)[BN / 8][4], const float* bias,
                                           TOut* tile, int r0, int c0) {
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float2 v = bias_act2<BN>(p, d, bias, j, h, c0);
      store2(tile + (r0 + 8 * h) * BN + 8 * j + c0, v);
    }
}
#endif  // VITRT_WGMMA_DEVICE

#ifdef VITRT_WGMMA_DEVICE
// acc[0 .. BN / 8) (+)= A B^T for one k16 step of a 64 x BN tile, issued as n64 pieces, then n16, then
// an n8 (BN = 64 a + 16 b + 8 c): every piece's accumulator index is a compile-time constant.
template <typename T, int BN, int... J64, int... J16, int... J8>
__device__ __forceinline__ void mma_pieces(float (&acc)[BN / 8][4], const Sw128Desc& ad, const Sw128Desc& bd,
                                           int k16, int accumulate, std::integer_sequence<int, J64...>,
                                           std::integer_sequence<int, J16...>,
                                           std::integer_sequence<int, J8...>) {
  const std::uint64_t a = ad.at(32 * k16);
  (wgmma_ss_n64_at<T, 8 * J64>(acc, a, bd.at(64 * 128 * J64 + 32 * k16), accumulate), ...);
  constexpr int kAfter64 = BN / 64 * 64;
  (wgmma_ss_n16<T, kAfter64 / 16 + J16>(acc, a, bd.at((kAfter64 + 16 * J16) * 128 + 32 * k16), accumulate),
   ...);
  (wgmma_ss_n8<T, BN / 8 - 1 + J8>(acc, a, bd.at((BN - 8) * 128 + 32 * k16), accumulate), ...);
}
#endif

template <typename T, int WG, int BN, int MC, int Split>
__global__ void __launch_bounds__(WG * 128) gemm_small_kernel(const __grid_constant__ GemmSmallArgs p) {
#ifdef VITRT_WGMMA_DEVICE
  constexpr int kBM = 64 * WG, kLds = partial_ld(BN);
  constexpr unsigned kABytes = kBM * 128, kTile = (kBM + BN) * 128;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned bars = smem_addr(sm), ops = bars + kBarrierBytes + kBiasBytes;
  float4* const bias = reinterpret_cast<float4*>(sm + kBarrierBytes);
  const int tid = static_cast<int>(threadIdx.x), tiles = p.tiles;
  stamp(p, tid, kStampGlobalStart);
  stamp(p, tid, kStampSm);
  stamp(p, tid, kStampEntry);
  // Cluster (1, MC, Split): this block's place among the MC blocks that share W's copies (mi) and among
  // the Split blocks that share the output tile (ki); its cluster rank is mi + MC ki.
  unsigned mi = 0, ki = 0;
  if constexpr (MC > 1) asm volatile("mov.u32 %0, %%cluster_ctaid.y;\n" : "=r"(mi));
  if constexpr (Split > 1) asm volatile("mov.u32 %0, %%cluster_ctaid.z;\n" : "=r"(ki));
  const int n0 = static_cast<int>(blockIdx.x) * BN, m0 = static_cast<int>(blockIdx.y) * kBM;
  const int k0 = static_cast<int>(ki) * tiles * kBK;
  if (tid == 0) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(&p.w_map) : "memory");
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(&p.a_map) : "memory");
    if (Split == 1 && p.tma_out) asm volatile("prefetch.tensormap [%0];\n" ::"l"(&p.d_map) : "memory");
    for (int kt = 0; kt < tiles; ++kt) mbar_init(bars + 8 * kt, 1);
    mbar_init_fence();
  }
  // Copies from the other blocks of the cluster complete on this block's barriers: they must exist first.
  if constexpr (MC > 1)
    cluster_sync();
  else
    __syncthreads();
  stamp(p, tid, kStampSetup);
  // W is constant for the whole forward: its copies start before the kernels this one depends on end.
  // With MC > 1 each of the MC blocks copies every MC-th k-tile of W into all of them.
  if (tid == 0)
    for (int kt = 0; kt < tiles; ++kt) {
      mbar_arrive_expect(bars + 8 * kt, kTile);
      const unsigned dst = ops + kt * kTile + kABytes;
      if constexpr (MC > 1) {
        if (kt % MC == static_cast<int>(mi))
          tma_load_2d_multicast(dst, &p.w_map, k0 + kt * kBK, n0, bars + 8 * kt,
                                static_cast<std::uint16_t>(((1u << MC) - 1) << (MC * ki)));
      } else {
        tma_load_2d(dst, &p.w_map, k0 + kt * kBK, n0, bars + 8 * kt);
      }
    }
  stamp(p, tid, kStampWIssued);
  // The bias is constant too: the last BN / 4 threads (not thread 0, which issues the copies) stage its
  // slice in shared memory before the wait (columns past N: zeros); it is read after a barrier that
  // follows the main loop.
  if (const int i = tid - (WG * 128 - BN / 4); i >= 0) {
    const int col = n0 + 4 * i;
    bias[i] = col >= p.out ? make_float4(0.f, 0.f, 0.f, 0.f)
              : p.out_f32  ? load4(static_cast<const float*>(p.bias), col / 4)
                           : load4(static_cast<const T*>(p.bias), col / 4);
  }
  wait_prior_grid();  // A, and D when accumulating, come from the kernels before this one
  allow_next_grid();
  stamp(p, tid, kStampWaited);
  if (tid == 0)
    for (int kt = 0; kt < tiles; ++kt)
      tma_load_2d(ops + kt * kTile, &p.a_map, k0 + kt * kBK, m0, bars + 8 * kt);
  stamp(p, tid, kStampAIssued);

  const int wg = tid / 128, lane = tid % 32;
  float d[BN / 8][4];
  for (int kt = 0; kt < tiles; ++kt) {
    mbar_wait(bars + 8 * kt, 0);
    if (kt == 0) stamp(p, tid, kStampFirstTile);
    if (kt == tiles - 1) stamp(p, tid, kStampLastTile);
    const unsigned tile = ops + static_cast<unsigned>(kt) * kTile;
    const Sw128Desc ad(tile + static_cast<unsigned>(wg) * 64 * 128), bd(tile + kABytes);
    wgmma_fence();
#pragma unroll
    for (int k16 = 0; k16 < kBK / 16; ++k16)
      mma_pieces<T, BN>(d, ad, bd, k16, kt > 0 || k16 > 0, std::make_integer_sequence<int, BN / 64>{},
                        std::make_integer_sequence<int, BN % 64 / 16>{},
                        std::make_integer_sequence<int, BN % 16 / 8>{});
    wgmma_commit();
  }
  // Every k-tile of this block has landed, so every copy a block of the cluster issued into it is done:
  // once all have arrived here, none has a copy in flight and each may leave (the wait is at the end).
  if constexpr (MC > 1 && Split == 1) cluster_arrive();
  wgmma_wait<0>();
  fence_regs(d);
  stamp(p, tid, kStampMath);
  const int r0 = wg * 64 + (tid % 128) / 32 * 16 + lane / 4, c0 = 2 * (lane % 4);

  if constexpr (Split == 1) {
    __syncthreads();  // the bias slice; every warpgroup's wgmmas are done with the operands
    stamp(p, tid, kStampPartial);
    const float* const bias_f = reinterpret_cast<const float*>(bias);
    if (p.tma_out) {
      // The tile, staged over the operands, leaves as one TMA store (a TMA add onto a residual): per
      // session 23's stamps a thread's scattered 4-8 byte stores took ~2 us for a 64 x 80 tile.
      if (p.out_f32)
        stage_tile<float, BN>(p, d, bias_f, reinterpret_cast<float*>(sm + kBarrierBytes + kBiasBytes), r0, c0);
      else
        stage_tile<T, BN>(p, d, bias_f, reinterpret_cast<T*>(sm + kBarrierBytes + kBiasBytes), r0, c0);
      fence_proxy_async();  // the tile's generic writes, before the TMA unit reads them
      __syncthreads();
      if (tid == 0) {
        if (p.accumulate)
          tma_add_2d(&p.d_map, ops, n0, m0);
        else
          tma_store_2d(&p.d_map, ops, n0, m0);
        bulk_commit();
        bulk_wait_read();  // the shared memory stays until the copy has read it
      }
    } else if (p.out_f32) {
      finish_direct<float, BN>(p, d, bias_f, m0 + r0, n0, c0);
    } else {
      finish_direct<T, BN>(p, d, bias_f, m0 + r0, n0, c0);
    }
    stamp(p, tid, kStampEpilogue);
    if constexpr (MC > 1) cluster_wait();
    stamp(p, tid, kStampExit);
    stamp(p, tid, kStampGlobalEnd);
  } else {
    // Partial sums into this block's shared memory (over the operands: every warpgroup is done with them).
    __syncthreads();
    float* const partial = reinterpret_cast<float*>(sm + kBarrierBytes + kBiasBytes);  // at ops
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      float* const at = partial + r0 * kLds + 8 * j + c0;
      *reinterpret_cast<float2*>(at) = make_float2(d[j][0], d[j][1]);
      *reinterpret_cast<float2*>(at + 8 * kLds) = make_float2(d[j][2], d[j][3]);
    }
    cluster_sync();
    stamp(p, tid, kStampPartial);

    constexpr int kRows = kBM / Split, kChunks = kRows * BN / 4;
    for (int c = tid; c < kChunks; c += WG * 128) {
      const int r = static_cast<int>(ki) * kRows + c / (BN / 4), col = c % (BN / 4) * 4;
      const std::int64_t row = m0 + r;
      if (row >= p.rows || n0 + col >= p.out) continue;  // the last tiles may reach past M and N
      const unsigned at = ops + static_cast<unsigned>((r * kLds + col) * 4);
      float4 v = load_cluster4(at, mi);
#pragma unroll
      for (unsigned q = 1; q < Split; ++q) {  // rank order: the sum does not depend on timing
        const float4 x = load_cluster4(at, mi + MC * q);
        v.x += x.x;
        v.y += x.y;
        v.z += x.z;
        v.w += x.w;
      }
      const float4 b = bias[col / 4];
      if (p.out_f32)
        finish4<float>(p, v, b, row, n0 + col);
      else
        finish4<T>(p, v, b, row, n0 + col);
    }
    stamp(p, tid, kStampEpilogue);
    // The other blocks may still read this one's partial sums (and with MC > 1 no block may leave while
    // copies it issued into the others are in flight, which the first cluster barrier already rules out).
    cluster_sync();
    stamp(p, tid, kStampExit);
    stamp(p, tid, kStampGlobalEnd);
  }
#else
  (void)p;
#endif
}

template <typename T, int WG, int BN, int MC, int Split>
void launch(const GemmSmallParams& p, cudaStream_t s) {
  constexpr Shape t{64 * WG, BN, MC, Split};
  const int tiles = p.in / kBK / Split, bytes = smem_bytes(t, tiles);
  // The TMA store needs 16-byte aligned rows; its add would round a 16-bit residual sum twice (the tile
  // is staged in the output type), so 16-bit residuals keep the direct stores.
  const std::int64_t out_bytes = p.out_dt == DT::f32 ? 4 : 2;
  const bool tma_out = Split == 1 && !(p.accumulate && p.out_dt != DT::f32) && aligned(p.d, 16) &&
                       p.ldd * out_bytes % 16 == 0;
  const GemmSmallArgs args{matrix_tensor_map(p.a, p.in_dt, p.rows, p.in, p.lda, 64 * WG),
                           matrix_tensor_map(p.w, p.in_dt, p.out, p.in, p.in, BN),
                           tma_out ? output_tensor_map(p.d, p.out_dt, p.rows, p.out, p.ldd, 64 * WG, BN) : CUtensorMap{},
                           p.bias,
                           p.d,
                           p.ldd,
                           p.rows,
                           p.out,
                           tiles,
                           p.out_dt == DT::f32,
                           static_cast<int>(p.act),
                           p.accumulate,
                           tma_out,
                           reinterpret_cast<unsigned long long*>(p.trace)};
  const Grid g = grid_of(t, p.rows, p.out);
  const dim3 grid(static_cast<unsigned>(g.n), static_cast<unsigned>(g.m), static_cast<unsigned>(g.split));
  allow_dynamic_smem(gemm_small_kernel<T, WG, BN, MC, Split>, bytes);
  launch_dependent_cluster(Pdl::gemm, gemm_small_kernel<T, WG, BN, MC, Split>, grid, dim3(WG * 128), bytes, s,
                           dim3(1, MC, Split), args);
}

// The variants built: (rows, columns, W shared by, split-K). With one block per SM the H200 holds at
// most 30 clusters of 4 or 15 of 8 at once (120 blocks; ncu, run286), so the batch-1 shapes (197 rows:
// 4 M tiles of 64, 2 of 128) are cut to fit that: qkv 4 x 29 tiles of 64 x 80, fc1 4 x 15 x 2 of
// 64 x 208 or 2 x 30 x 2 of 128 x 104. The rest serve taller or longer-K shapes.
// clang-format off
#define VITRT_SMALL_GEMM_VARIANTS(X)                                                                         \
  X(1, 64, 1, 1) X(1, 64, 1, 2) X(1, 64, 1, 4) X(1, 64, 1, 8) X(1, 128, 1, 2) X(1, 128, 1, 4) X(1, 128, 1, 8) \
  X(2, 128, 1, 2) X(2, 128, 1, 4) X(2, 128, 1, 8) X(1, 80, 4, 1) X(1, 48, 4, 2) X(1, 96, 4, 2) X(1, 208, 4, 2) \
  X(1, 192, 1, 8) X(2, 96, 1, 8) X(2, 104, 2, 2) X(2, 96, 2, 4) X(1, 96, 2, 4) X(1, 80, 1, 1) X(1, 32, 4, 1)
// clang-format on

template <typename T>
void launch_variant(const GemmSmallParams& p, cudaStream_t s) {
  switch (p.variant) {
#define VITRT_CASE(WG, BN, MC, SPLIT)              \
  case gemm_small_variant(64 * WG, BN, MC, SPLIT): \
    launch<T, WG, BN, MC, SPLIT>(p, s);            \
    break;
    VITRT_SMALL_GEMM_VARIANTS(VITRT_CASE)
#undef VITRT_CASE
    default:
      VITRT_CHECK(false, "internal: small GEMM variant ", p.variant, " is not built");
  }
}

constexpr int kVariants[] = {
#define VITRT_ENTRY(WG, BN, MC, SPLIT) gemm_small_variant(64 * WG, BN, MC, SPLIT),
    VITRT_SMALL_GEMM_VARIANTS(VITRT_ENTRY)
#undef VITRT_ENTRY
};

}  // namespace

bool gemm_small_takes(const GemmSmallParams& p, int arch, int variant) {
#ifdef VITRT_CUDA_SM90A
  if (std::find(std::begin(kVariants), std::end(kVariants), variant) == std::end(kVariants)) return false;
  const Shape t = shape_of(variant);
  const int out_bytes = p.out_dt == DT::f32 ? 4 : 2;
  const bool types =
      (p.in_dt == DT::bf16 || p.in_dt == DT::f16) && (p.out_dt == DT::f32 || p.out_dt == p.in_dt);
  const bool shape = arch == 90 && t.mc * t.split <= kMaxCluster && p.rows > 0 &&
                     grid_of(t, p.rows, p.out).m <= 65535 && p.in > 0 &&
                     p.in % (kBK * t.split) == 0 && p.out > 0 && p.out % 8 == 0;
  const bool layout = p.a && p.w && p.d && p.bias && p.lda >= p.in && p.lda % 8 == 0 && aligned(p.a, 16) &&
                      aligned(p.w, 16) && p.ldd >= p.out && p.ldd % 4 == 0 && aligned(p.d, 4 * out_bytes) &&
                      aligned(p.bias, 4 * out_bytes);
  const bool epilogue =
      p.act == Epilogue::none || p.act == Epilogue::gelu_erf || p.act == Epilogue::quick_gelu;
  if (!(types && shape && layout && epilogue)) return false;
  const int tiles = p.in / kBK / t.split;
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
  // A rough time model, in units of one SM's cycles: the waves the grid needs (clusters of up to 8
  // blocks fit in a GPC), and per wave the larger of what one block moves into its shared memory
  // (~64 bytes a cycle) plus its tensor work (~2048 multiply-adds a cycle), and what all blocks read
  // from L2 together (~24 bytes a cycle per SM: the copies of W shared by MC blocks are read once).
  int best = 0;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int v : kVariants) {
    if (!gemm_small_takes(p, arch, v)) continue;
    const Shape t = shape_of(v);
    const int tiles = p.in / kBK / t.split;
    const std::int64_t blocks = grid_of(t, p.rows, p.out).blocks();
    const std::int64_t per_sm = std::max(1, kMaxSmem / smem_bytes(t, tiles));
    // Clusters of 4 or 8 are placed within a GPC: on the H200 at most 120 one-block-per-SM blocks of
    // them are resident at once (ncu, session 22), against 132 SMs.
    const std::int64_t resident = per_sm * (t.mc * t.split >= 4 ? sm_count * 10 / 11 : sm_count);
    const std::int64_t waves = (blocks + resident - 1) / resident;
    const double block_bytes = operand_bytes(t, tiles) + (t.split > 1 ? t.bm * t.bn * 4.0 : 0.0);
    const double block = block_bytes / 64.0 + static_cast<double>(t.bm) * t.bn * tiles * kBK / 2048.0;
    const double l2 =
        (static_cast<double>(blocks) * tiles * (t.bm + static_cast<double>(t.bn) / t.mc) * 128.0) /
        (24.0 * std::min<std::int64_t>(blocks, resident));
    const double cost = static_cast<double>(waves) * std::max(block, l2);
    if (cost < best_cost) {
      best_cost = cost;
      best = v;
    }
  }
  return best;
}

std::int64_t gemm_small_blocks(const GemmSmallParams& p) {
  return grid_of(shape_of(p.variant), p.rows, p.out).blocks();
}

std::string gemm_small_variant_name(int variant) {
  const Shape t = shape_of(variant);
  if (std::find(std::begin(kVariants), std::end(kVariants), variant) == std::end(kVariants))
    return "vitrt small gemm variant " + std::to_string(variant);
  return "vitrt small gemm " + std::to_string(t.bm) + "x" + std::to_string(t.bn) +
         (t.mc > 1 ? ", W shared by " + std::to_string(t.mc) : std::string()) + ", split-k " +
         std::to_string(t.split);
}

void gemm_small(const GemmSmallParams& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_small_takes(p, arch, p.variant), "small GEMM: ", gemm_small_variant_name(p.variant),
              " does not take a ", p.rows, "x", p.in, "x", p.out, " GEMM (", dt_name(p.in_dt), " -> ",
              dt_name(p.out_dt), ") on compute capability ", arch,
              " (it needs sm_90a, 16-bit operands, K a multiple of 64 per split, N a multiple of 8, aligned rows)");
  if (p.in_dt == DT::f16)
    launch_variant<__half>(p, s);
  else
    launch_variant<__nv_bfloat16>(p, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
