// Fused attention for fp16/bf16, head dim 64, on Hopper (sm_90a), with the work of a block split by
// role as FlashAttention-3 splits it: one producer warp copies K/V tiles of 64 keys with the tensor
// memory accelerator (TMA) into a ring of kStages stages, and two consumer warpgroups (64 query rows
// each) compute from them. Stages are handed over through mbarriers (full: the copy has landed; empty:
// every consumer warp is done with it), so the consumers never wait on each other at a block barrier.
// One block per SM (126 registers; capped for two, ptxas spills). Per consumer and tile j of keys:
//   its turn     S_j = Q K_j^T and O += P_{j-1} V_{j-1} issued back to back (wgmma, Q and P from
//                registers, K / V from shared memory), then the turn passes to the other warpgroup
//                (named barriers 1 and 2): while one warpgroup's products run on the tensor cores, the
//                other computes its softmax on the special-function and FP32 pipes;
//   softmax      once S_j is in: the online softmax (attention_tiles.cuh), then, once P_{j-1} V_{j-1} is
//                in, O and the row sums (P times ones on the tensor cores) rescaled, P_j packed.
// The online-softmax kernel of attention_wgmma.cu does the same work per tile with both products
// waited for in turn and the two warpgroups meeting at a block barrier twice per tile.
#include <cuda.h>  // CUtensorMap and its enums (the encoder comes from the runtime's driver entry point)
#include <cudaTypedefs.h>
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

constexpr int kD = 64, kBK = 64;              // head dim, keys per tile
constexpr int kStages = 4;                    // K/V tiles in flight
constexpr int kConsumers = 2;                 // warpgroups of 64 query rows
constexpr int kThreads = kConsumers * 128 + 32;  // and the producer warp
constexpr int kTileBytes = kBK * kD * 2;      // one K or V tile: 64 rows of 128 bytes (128-byte swizzle)
// [stage][K, V] tiles, one output staging tile per consumer, 512 bytes of ones (the B operand that sums
// P's rows), the full and empty mbarriers, alignment slack.
constexpr int kSmemBytes = kStages * 2 * kTileBytes + kConsumers * kTileBytes + 512 + 2 * kStages * 8 + 1024;

#ifdef VITRT_WGMMA_DEVICE
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives and announces `bytes` still to come from asynchronous copies that complete on this barrier.
__device__ __forceinline__ void mbar_arrive_expect(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Until the barrier's phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  unsigned done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}
// The box of 64 columns x 64 rows of one image at (col, row, image) of the tensor map into shared
// memory at dst (128-byte swizzled, as the wgmma descriptors read it; rows past the image's last token
// are zeros), completing its bytes on bar.
__device__ __forceinline__ void tma_load_box(unsigned dst, const CUtensorMap* map, int col, int row, int image,
                                             unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(col), "r"(row), "r"(image), "r"(bar)
      : "memory");
}
// Turns at the tensor cores: warpgroup w waits on named barrier 1 + w (256 threads: its own 128 and the
// other warpgroup's arrival), and passes the turn by arriving on the other's.
__device__ __forceinline__ void turn_wait(int wg) { asm volatile("bar.sync %0, 256;\n" ::"r"(1 + wg) : "memory"); }
__device__ __forceinline__ void turn_pass(int wg) { asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - wg) : "memory"); }
#endif

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) attention_wgmma_ws_kernel(const __grid_constant__ CUtensorMap kv,
                                                                         AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  wait_prior_grid();
  extern __shared__ unsigned char smem_raw[];
  T* tiles = reinterpret_cast<T*>(smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024));  // [stage][K, V]
  T* out_stage = tiles + kStages * 2 * kBK * kD;  // [consumer][64 x 64]
  T* ones_s = out_stage + kConsumers * kBK * kD;
  const unsigned bars = smem_addr(ones_s) + 512;  // full[kStages], then empty[kStages]
  const auto full = [&](int j) { return bars + 8 * (j % kStages); };
  const auto empty = [&](int j) { return bars + 8 * (kStages + j % kStages); };
  const auto kv_addr = [&](int j) { return smem_addr(tiles + (j % kStages) * 2 * kBK * kD); };

  const int N = p.tokens, E = p.heads * kD, h = blockIdx.y, b = blockIdx.z;
  const int key_tiles = (N + kBK - 1) / kBK;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full(s), 1);
      mbar_init(empty(s), 4 * kConsumers);  // lane 0 of every consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if (threadIdx.x < 128) reinterpret_cast<std::uint32_t*>(ones_s)[threadIdx.x] = pack<T>(1.0f, 1.0f);
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // the ones are read by wgmma
  __syncthreads();

  if (threadIdx.x >= kConsumers * 128) {
    // The producer: tile j goes into stage j % kStages once every consumer warp has released the tile
    // that stage held (tile j - kStages).
    if (threadIdx.x == kConsumers * 128) {
      for (int j = 0; j < key_tiles; ++j) {
        if (j >= kStages) mbar_wait(empty(j), (j / kStages - 1) & 1);
        mbar_arrive_expect(full(j), 2 * kTileBytes);  // whole boxes, zeros past the end included
        tma_load_box(kv_addr(j), &kv, E + h * kD, j * kBK, b, full(j));
        tma_load_box(kv_addr(j) + kTileBytes, &kv, 2 * E + h * kD, j * kBK, b, full(j));
      }
    }
    return;
  }

  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int q0 = static_cast<int>(blockIdx.x) * 64 * kConsumers + wg * 64;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const T* base = static_cast<const T*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * kD;
  // A warpgroup whose rows all lie past the end (the last block, when the queries end in its first 64
  // rows) computes on zero rows and stores nothing: it still takes its turns.
  std::uint32_t qf[kD / 16][4];
  load_q_fragments<T, kD>(base, stride, N, q0 + warp * 16 + g, q0 + warp * 16 + g + 8, t, qf);
  float o[kD / 8][4] = {};
  float l[1][4] = {};          // row sums of P as rounded for P V, in every column (P times ones)
  std::uint32_t pf[4][4] = {};  // P of the previous tile, the A operand of its P V
  OnlineSoftmax sm(p.scale);
  const std::uint64_t ones_d = plain_desc(smem_addr(ones_s));
  if (wg == 1) turn_pass(1);  // warpgroup 0 takes the first turn

  // Tile j (PS pieces of 16 keys; PP pieces in the tile before, none for j = 0). Its turn: S_j and
  // P_{j-1} V_{j-1}. Then its softmax once S_j is in; O and l rescaled once P_{j-1} V_{j-1} is in (that
  // also frees pf and the stage of tile j - 1).
  const auto step = [&]<int PS, int PP>(int j) {
    float sj[2 * PS][4];
    mbar_wait(full(j), (j / kStages) & 1);
    // Descriptors before the first wgmma: an input defined between two of them serializes them.
    const Sw128Desc k_at(kv_addr(j)), v_at(kv_addr(j + kStages - 1) + kTileBytes);  // V of tile j - 1
    std::uint64_t kd[PS][kD / 16], vd[4];
#pragma unroll
    for (int c = 0; c < PS; ++c)
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) kd[c][ks] = k_at.at(c * 2048 + ks * 32);
#pragma unroll
    for (int c = 0; c < 4; ++c) vd[c] = v_at.at(c * 2048);
    pin(kd);
    pin(vd);
    turn_wait(wg);
    fence_regs(o);
    fence_regs(l);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      if constexpr (PS == 4) {
        wgmma_n64<T, 0>(sj, qf[ks], kd[0][ks], ks);
      } else {
        [&]<int... C>(std::integer_sequence<int, C...>) {
          (wgmma_n16<T, C, 0>(sj, qf[ks], kd[C][ks], ks), ...);
        }(std::make_integer_sequence<int, PS>{});
      }
    }
    wgmma_commit();
    if constexpr (PP > 0) {
#pragma unroll
      for (int kk = 0; kk < PP; ++kk) wgmma_n64<T, 1>(o, pf[kk], vd[kk], 1);
#pragma unroll
      for (int kk = 0; kk < PP; ++kk) wgmma_n8<T>(l[0], pf[kk], ones_d, 1);
      wgmma_commit();
    }
    turn_pass(wg);

    if constexpr (PP > 0) wgmma_wait<1>();
    else wgmma_wait<0>();
    fence_regs(sj);
    float c0, c1;
    sm.next_tile_factors(sj, min(kBK, N - j * kBK), t, c0, c1);  // masks keys past the end
#pragma unroll
    for (int i = 0; i < 2 * PS; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) sj[i][e] = sm.prob(sj[i][e], e);
    if constexpr (PP > 0) {
      wgmma_wait<0>();
      fence_regs(o);
      fence_regs(l);
      if (lane == 0) mbar_arrive(empty(j - 1));
    }
    OnlineSoftmax::rescale(o, c0, c1);
    OnlineSoftmax::rescale(l, c0, c1);
#pragma unroll
    for (int kk = 0; kk < PS; ++kk) {
      pf[kk][0] = pack<T>(sj[2 * kk][0], sj[2 * kk][1]);
      pf[kk][1] = pack<T>(sj[2 * kk][2], sj[2 * kk][3]);
      pf[kk][2] = pack<T>(sj[2 * kk + 1][0], sj[2 * kk + 1][1]);
      pf[kk][3] = pack<T>(sj[2 * kk + 1][2], sj[2 * kk + 1][3]);
    }
  };

  // The last turn: P V of the last tile j (PP pieces). Warpgroup 1 passes no turn after it (nobody
  // waits for one: warpgroup 0's turns all come before).
  const auto finish = [&]<int PP>(int j) {
    const Sw128Desc v_at(kv_addr(j) + kTileBytes);
    std::uint64_t vd[PP];
#pragma unroll
    for (int c = 0; c < PP; ++c) vd[c] = v_at.at(c * 2048);
    pin(vd);
    turn_wait(wg);
    fence_regs(o);
    fence_regs(l);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < PP; ++kk) wgmma_n64<T, 1>(o, pf[kk], vd[kk], 1);
#pragma unroll
    for (int kk = 0; kk < PP; ++kk) wgmma_n8<T>(l[0], pf[kk], ones_d, 1);
    wgmma_commit();
    if (wg == 0) turn_pass(wg);
    wgmma_wait<0>();
    fence_regs(o);
    fence_regs(l);
  };

  // Every tile whole, the last one too (zeros past the end, masked): with a 16-key piece count per
  // tile shape (as attention_wgmma.cu has), ptxas serialized every wgmma of the kernel (C7511).
  step.template operator()<4, 0>(0);
  for (int j = 1; j < key_tiles; ++j) step.template operator()<4, 4>(j);
  finish.template operator()<4>(key_tiles - 1);
  store_rows_staged<T>(p.out, o, 1.0f / l[0][0], 1.0f / l[0][2], out_stage + wg * 64 * kD,
                       (static_cast<std::size_t>(b) * N + q0) * E + static_cast<std::size_t>(h) * kD, E, N - q0, warp,
                       lane);
#else
  (void)kv;
  (void)p;
#endif
}

// cuTensorMapEncodeTiled from the driver, through the runtime (no link against libcuda).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found));
    VITRT_CHECK(found == cudaDriverEntryPointSuccess && f != nullptr,
                "attention: the CUDA driver does not provide cuTensorMapEncodeTiled (needed by the TMA attention kernel)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

template <typename T>
void launch(const AttentionParams& p, cudaStream_t s) {
  // qkv as a 3-D tensor [batch][tokens][3 E] with boxes of 64 columns (one head of K or V) x 64 tokens of
  // one image: rows past an image's last token come back as zeros, not as the next image's.
  const std::uint64_t E = static_cast<std::uint64_t>(p.heads) * kD;
  const cuuint64_t dims[3] = {3 * E, static_cast<cuuint64_t>(p.tokens), static_cast<cuuint64_t>(p.batch)};
  const cuuint64_t strides[2] = {3 * E * sizeof(T), static_cast<cuuint64_t>(p.tokens) * 3 * E * sizeof(T)};
  const cuuint32_t box[3] = {kD, kBK, 1}, element_strides[3] = {1, 1, 1};
  CUtensorMap map;
  const CUresult r = tensor_map_encoder()(
      &map, std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3,
      const_cast<void*>(p.qkv), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
      CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  VITRT_CHECK(r == CUDA_SUCCESS, "attention: cuTensorMapEncodeTiled failed (CUresult ", static_cast<int>(r),
              ") for qkv [", p.batch, ", ", p.tokens, ", ", 3 * E, "]");
  const auto kernel = attention_wgmma_ws_kernel<T>;
  allow_dynamic_smem(kernel, kSmemBytes);
  const dim3 grid((query_tokens(p) + 64 * kConsumers - 1) / (64 * kConsumers), p.heads, p.batch);
  launch_dependent(Pdl::attention, kernel, grid, kThreads, kSmemBytes, s, map, p);
}

}  // namespace

void attention_wgmma_ws(const AttentionParams& p, cudaStream_t s) {
  VITRT_CHECK(attention_wgmma_supports(p), "attention: the TMA wgmma kernel does not take head dim ", p.head_dim, " ",
              dt_name(p.dt), " on compute capability ", p.arch, " (it needs head dim 64, fp16/bf16, sm_90a)");
  VITRT_CHECK(reinterpret_cast<std::uintptr_t>(p.out) % 16 == 0 && reinterpret_cast<std::uintptr_t>(p.qkv) % 16 == 0,
              "attention: the wgmma kernels need 16-byte aligned qkv and output buffers");
  if (p.dt == DT::f16) launch<__half>(p, s);
  else launch<__nv_bfloat16>(p, s);
}

}  // namespace vitrt::cuda
