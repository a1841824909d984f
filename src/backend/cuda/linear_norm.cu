// The fused linear + residual + LayerNorm kernel (linear_norm.cuh). Each block computes a 64 x BN tile
// of x + a W^T + bias with wgmma, two warpgroups of BN / 2 columns each (A and W tiles K-major,
// 128-byte swizzled, 7-8 cp.async stages); the 8 blocks of a cluster cover the n = 8 * BN columns of
// the same 64 rows. Each warpgroup writes its slice of x and reduces its rows' mean and squared
// deviations over its columns; the 16 parts of a row are read through distributed shared memory and
// combined exactly as parallel variance (Chan et al.): mean = mean of the means, M2 = sum of M2 +
// BN / 2 * sum of squared deviations of the means. With S = 2 the cluster holds 16 blocks: the second 8 compute the other
// half of K and hand their accumulators to the first 8 through distributed shared memory.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <mutex>
#include <type_traits>

#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/linear_norm.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kBM = 64, kBK = 64, kCN = 8, kWG = 2, kThreads = kWG * 128;

// Shared memory of a block, after 1024 bytes of alignment slack: the K-tile stages (as many as fit: at
// small batches each block streams its weights from memory, and the bytes in flight set the pace),
// the block's 64 x BN slice of x (rows padded by 4 floats against bank conflicts), its columns of
// bias, gamma and beta, and the statistics (mean, M2) of its rows over each warpgroup's columns.
template <int BN>
struct Smem {
  static constexpr int stages = BN == 96 ? 8 : 7;
  static constexpr int stage = (kBM + BN) * kBK * 2;
  static constexpr int x_ld = BN + 4;
  static constexpr int x = stages * stage;
  static constexpr int cols = x + kBM * x_ld * 4;  // bias, gamma, beta
  static constexpr int stats = cols + 3 * BN * 4;
  static constexpr int bytes = 1024 + stats + kWG * kBM * 8;
};

#ifdef VITRT_WGMMA_DEVICE
// D[64 x 48] += A[64 x 16] B[16 x 48], A and B K-major in shared memory (descriptors a, b).
#define VITRT_WGMMA_SS_N48(TYPE)                                                                             \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"                                                  \
               "wgmma.mma_async.sync.aligned.m64n48k16.f32." TYPE "." TYPE " "                               \
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
               "%20, %21, %22, %23"                                                                          \
               "}, %24, %25, p, 1, 1, 0, 0;\n}\n"                                                            \
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),   \
                 "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),   \
                 "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),   \
                 "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3])    \
               : "l"(a), "l"(b), "r"(1))

// D[64 x 64] += A[64 x 16] B[16 x 64], A and B K-major in shared memory (descriptors a, b).
#define VITRT_WGMMA_SS_N64(TYPE)                                                                             \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                  \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " "                               \
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
               "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                                  \
               "}, %32, %33, p, 1, 1, 0, 0;\n}\n"                                                            \
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),   \
                 "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),   \
                 "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),   \
                 "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),   \
                 "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),   \
                 "+f"(d[7][2]), "+f"(d[7][3])                                                                \
               : "l"(a), "l"(b), "r"(1))

template <typename T, int WN>
__device__ __forceinline__ void wgmma_ss(float (&d)[WN / 8][4], std::uint64_t a, std::uint64_t b) {
  constexpr bool kHalf = std::is_same_v<T, __half>;
  if constexpr (WN == 48) {
    if constexpr (kHalf) VITRT_WGMMA_SS_N48("f16");
    else VITRT_WGMMA_SS_N48("bf16");
  } else {
    static_assert(WN == 64, "warpgroup tile widths 48 and 64");
    if constexpr (kHalf) VITRT_WGMMA_SS_N64("f16");
    else VITRT_WGMMA_SS_N64("bf16");
  }
}

template <typename T>
__device__ __forceinline__ void store2(T* dst, float a, float b) {
  T v[2] = {from_f32<T>(a), from_f32<T>(b)};
  *reinterpret_cast<std::uint32_t*>(dst) = *reinterpret_cast<const std::uint32_t*>(v);
}

// Sum over the 4 threads of a quad (the threads holding one accumulator row).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
#endif  // VITRT_WGMMA_DEVICE

template <typename T, int BN, int S>
__global__ void __launch_bounds__(kThreads) linear_norm_kernel(LinearNormParams p) {
#ifdef VITRT_WGMMA_DEVICE
  namespace cg = cooperative_groups;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  using L = Smem<BN>;
  constexpr int kStages = L::stages;
  float* xs = reinterpret_cast<float*>(smem + L::x);
  float* cols = reinterpret_cast<float*>(smem + L::cols);  // bias, gamma, beta
  float2* stats = reinterpret_cast<float2*>(smem + L::stats);
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int nt = rank % kCN, split = rank / kCN;  // column slice, K part
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.y) * kBM;
  const int n0 = nt * BN, tiles = p.k / kBK / S, kt0 = split * tiles;
  constexpr int WN = BN / kWG;  // each warpgroup's columns
  const int tid = threadIdx.x, wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
  const T* A = static_cast<const T*>(p.a);
  const T* W = static_cast<const T*>(p.w) + static_cast<std::size_t>(n0) * p.k;

  // Starts the copy of K tile i (64 columns of A's 64 rows and of W's BN rows) into stage i % kStages;
  // rows of A past the end are zeros. One commit group per call, empty past the last tile.
  auto load = [&](int i) {
    if (i < tiles) {
      T* sa = reinterpret_cast<T*>(smem + (i % kStages) * L::stage);
      T* sb = sa + kBM * kBK;
      const int k0 = (kt0 + i) * kBK;
#pragma unroll
      for (int j = 0; j < kBM * 8 / kThreads; ++j) {
        const int c = tid + j * kThreads, r = c / 8, col = (c % 8) * 8;
        const bool ok = m0 + r < p.rows;
        cp_async16(sa + Swizzle128::offset(r, col), A + (ok ? m0 + r : 0) * p.lda + k0 + col, ok);
      }
#pragma unroll
      for (int j = 0; j < BN * 8 / kThreads; ++j) {
        const int c = tid + j * kThreads, r = c / 8, col = (c % 8) * 8;
        cp_async16(sb + Swizzle128::offset(r, col), W + static_cast<std::size_t>(r) * p.k + k0 + col, true);
      }
    }
    cp_async_commit();
  };

  // Main loop: tiles land two ahead of the one computed; one wgmma group stays in flight, so the
  // stage refilled at step i (that of tile i - 2) is no longer read.
  // First, in a commit group of its own, what the epilogue reads: x's slice and the column vectors
  // (the K-split blocks of S > 1 only add their accumulators).
  if (split == 0) {
    const float* x = p.x + n0;
#pragma unroll
    for (int j = 0; j < kBM * BN / 4 / kThreads; ++j) {
      const int c = tid + j * kThreads, r = c / (BN / 4), col = (c % (BN / 4)) * 4;
      const bool ok = m0 + r < p.rows;
      cp_async16(xs + r * L::x_ld + col, x + (ok ? m0 + r : 0) * p.ldx + col, ok);
    }
    for (int c = tid; c < 3 * BN / 4; c += kThreads) {
      const int v = c / (BN / 4), col = (c % (BN / 4)) * 4;
      const float* src = v == 0 ? p.bias : v == 1 ? p.gamma : p.beta;
      cp_async16(cols + v * BN + col, src + n0 + col, true);
    }
  }
  cp_async_commit();

  float d[WN / 8][4] = {};
#pragma unroll
  for (int i = 0; i < kStages - 2; ++i) load(i);
  for (int i = 0; i < tiles; ++i) {
    cp_async_wait<kStages - 3>();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    load(i + kStages - 2);
    const unsigned a_addr = smem_addr(smem + (i % kStages) * L::stage);
    const unsigned b_addr = a_addr + kBM * kBK * 2 + wg * WN * kBK * 2;  // this warpgroup's W rows
    std::uint64_t ad[kBK / 16], bd[kBK / 16];
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      ad[ks] = sw128_desc(a_addr + ks * 32);
      bd[ks] = sw128_desc(b_addr + ks * 32);
    }
    pin(ad);
    pin(bd);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) wgmma_ss<T, WN>(d, ad[ks], bd[ks]);
    wgmma_commit();
    wgmma_wait<1>();
  }
  wgmma_wait<0>();
  fence_regs(d);
  cp_async_wait<0>();
  __syncthreads();  // x's slice has landed; the stages are free: they hold the exchanged accumulators

  if constexpr (S > 1) {
    float* slots = reinterpret_cast<float*>(smem);  // [WN / 2][kThreads]
    if (split > 0) {
#pragma unroll
      for (int j = 0; j < WN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) slots[(j * 4 + e) * kThreads + tid] = d[j][e];
    }
    cluster.sync();
    if (split == 0) {
#pragma unroll
      for (int s = 1; s < S; ++s) {
        const float* peer = cluster.map_shared_rank(slots, nt + s * kCN);
#pragma unroll
        for (int j = 0; j < WN / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) d[j][e] += peer[(j * 4 + e) * kThreads + tid];
      }
    }
  }

  // This thread's rows (lo, hi = lo + 8) and columns c0 + 8j + 2t, + 1 (c0 within the block's slice).
  const int row_lo = warp * 16 + g, row_hi = row_lo + 8, c0 = wg * WN;
  const std::int64_t r_lo = m0 + row_lo, r_hi = m0 + row_hi;
  const bool ok_lo = r_lo < p.rows, ok_hi = r_hi < p.rows;
  float mean_lo = 0.0f, mean_hi = 0.0f;
  if (split == 0) {
    float* x_lo = p.x + r_lo * p.ldx + n0 + c0 + 2 * t;
    float* x_hi = p.x + r_hi * p.ldx + n0 + c0 + 2 * t;
    float s_lo = 0.0f, s_hi = 0.0f;
#pragma unroll
    for (int j = 0; j < WN / 8; ++j) {
      const float2 b = *reinterpret_cast<const float2*>(cols + c0 + 8 * j + 2 * t);
      const float2 xl = *reinterpret_cast<const float2*>(xs + row_lo * L::x_ld + c0 + 8 * j + 2 * t);
      const float2 xh = *reinterpret_cast<const float2*>(xs + row_hi * L::x_ld + c0 + 8 * j + 2 * t);
      d[j][0] += b.x + xl.x;
      d[j][1] += b.y + xl.y;
      d[j][2] += b.x + xh.x;
      d[j][3] += b.y + xh.y;
      s_lo += d[j][0] + d[j][1];
      s_hi += d[j][2] + d[j][3];
    }
    mean_lo = quad_sum(s_lo) / WN;
    mean_hi = quad_sum(s_hi) / WN;
    float q_lo = 0.0f, q_hi = 0.0f;
#pragma unroll
    for (int j = 0; j < WN / 8; ++j) {
      const float a0 = d[j][0] - mean_lo, a1 = d[j][1] - mean_lo, b0 = d[j][2] - mean_hi, b1 = d[j][3] - mean_hi;
      q_lo += a0 * a0 + a1 * a1;
      q_hi += b0 * b0 + b1 * b1;
    }
    q_lo = quad_sum(q_lo);
    q_hi = quad_sum(q_hi);
    if (t == 0) {
      stats[wg * kBM + row_lo] = make_float2(mean_lo, q_lo);
      stats[wg * kBM + row_hi] = make_float2(mean_hi, q_hi);
    }
#pragma unroll
    for (int j = 0; j < WN / 8; ++j) {
      if (ok_lo) *reinterpret_cast<float2*>(x_lo + 8 * j) = make_float2(d[j][0], d[j][1]);
      if (ok_hi) *reinterpret_cast<float2*>(x_hi + 8 * j) = make_float2(d[j][2], d[j][3]);
    }
  }
  cluster.sync();  // every block's row statistics are in its shared memory
  float inv_lo = 0.0f, inv_hi = 0.0f;
  if (split == 0) {
    // kCN * kWG parts of WN columns each.
    constexpr int kParts = kCN * kWG;
    float2 part_lo[kParts], part_hi[kParts];
    float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
    for (int c = 0; c < kParts; ++c) {
      const float2* peer = cluster.map_shared_rank(stats, c / kWG) + (c % kWG) * kBM;
      part_lo[c] = peer[row_lo];
      part_hi[c] = peer[row_hi];
      sum_lo += part_lo[c].x;
      sum_hi += part_hi[c].x;
    }
    mean_lo = sum_lo / kParts;
    mean_hi = sum_hi / kParts;
    float m2_lo = 0.0f, m2_hi = 0.0f, dev_lo = 0.0f, dev_hi = 0.0f;
#pragma unroll
    for (int c = 0; c < kParts; ++c) {
      const float a = part_lo[c].x - mean_lo, b = part_hi[c].x - mean_hi;
      m2_lo += part_lo[c].y;
      m2_hi += part_hi[c].y;
      dev_lo += a * a;
      dev_hi += b * b;
    }
    inv_lo = rsqrtf((m2_lo + WN * dev_lo) / (kParts * WN) + p.eps);
    inv_hi = rsqrtf((m2_hi + WN * dev_hi) / (kParts * WN) + p.eps);
  }
  cluster.sync();  // no block leaves while another may still read its statistics
  if (split != 0) return;
  T* h_lo = static_cast<T*>(p.h) + r_lo * p.ldh + n0 + c0 + 2 * t;
  T* h_hi = static_cast<T*>(p.h) + r_hi * p.ldh + n0 + c0 + 2 * t;
#pragma unroll
  for (int j = 0; j < WN / 8; ++j) {
    const float2 gm = *reinterpret_cast<const float2*>(cols + BN + c0 + 8 * j + 2 * t);
    const float2 bt = *reinterpret_cast<const float2*>(cols + 2 * BN + c0 + 8 * j + 2 * t);
    if (ok_lo)
      store2(h_lo + 8 * j, (d[j][0] - mean_lo) * inv_lo * gm.x + bt.x, (d[j][1] - mean_lo) * inv_lo * gm.y + bt.y);
    if (ok_hi)
      store2(h_hi + 8 * j, (d[j][2] - mean_hi) * inv_hi * gm.x + bt.x, (d[j][3] - mean_hi) * inv_hi * gm.y + bt.y);
  }
#else
  (void)p;
#endif
}

// The launch attributes a kernel instance needs, set once: its shared memory above 48 KB, and for
// clusters of 16 blocks the non-portable cluster size.
template <typename T, int BN, int S>
void prepare() {
  static std::once_flag once;
  std::call_once(once, [] {
    CUDA_CHECK(cudaFuncSetAttribute(linear_norm_kernel<T, BN, S>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    Smem<BN>::bytes));
    if (kCN * S > 8)
      CUDA_CHECK(cudaFuncSetAttribute(linear_norm_kernel<T, BN, S>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  });
}

template <typename T, int BN, int S>
cudaLaunchConfig_t config(const LinearNormParams& p, cudaStream_t s, cudaLaunchAttribute& attr) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(kCN * S, static_cast<unsigned>((p.rows + kBM - 1) / kBM), 1);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = Smem<BN>::bytes;
  cfg.stream = s;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = kCN * S;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cfg;
}

// Whether at least one cluster of this instance fits on the device (16-block clusters of 80-100 KB
// blocks need a GPC with 16 free SMs).
template <typename T, int BN, int S>
bool fits(const LinearNormParams& p) {
  prepare<T, BN, S>();
  cudaLaunchAttribute attr{};
  const cudaLaunchConfig_t cfg = config<T, BN, S>(p, nullptr, attr);
  int clusters = 0;
  const cudaError_t e = cudaOccupancyMaxActiveClusters(&clusters, linear_norm_kernel<T, BN, S>, &cfg);
  if (e != cudaSuccess) cudaGetLastError();
  return e == cudaSuccess && clusters > 0;
}

template <typename T, int BN, int S>
void launch(const LinearNormParams& p, cudaStream_t s) {
  prepare<T, BN, S>();
  cudaLaunchAttribute attr{};
  const cudaLaunchConfig_t cfg = config<T, BN, S>(p, s, attr);
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, linear_norm_kernel<T, BN, S>, p));
}

// Calls f(T{}, BN constant) for p's storage type and tile width.
template <typename F>
void dispatch(const LinearNormParams& p, F&& f) {
  const auto by_width = [&](auto t) {
    if (p.n == 768) f(t, std::integral_constant<int, 96>{});
    else f(t, std::integral_constant<int, 128>{});
  };
  if (p.dt == DT::f16) by_width(__half{});
  else by_width(__nv_bfloat16{});
}

}  // namespace

bool linear_norm_supports(const LinearNormParams& p) {
#ifdef VITRT_CUDA_SM90A
  const auto aligned = [](const void* q, std::size_t n) { return reinterpret_cast<std::uintptr_t>(q) % n == 0; };
  return p.arch == 90 && p.dt != DT::f32 && (p.n == 768 || p.n == 1024) && p.k > 0 && p.k % kBK == 0 &&
         p.rows > 0 && p.lda % 8 == 0 && p.ldx % 4 == 0 && p.ldh % 2 == 0 && aligned(p.a, 16) && aligned(p.w, 16) &&
         aligned(p.x, 16) && aligned(p.h, 4) && aligned(p.bias, 16) && aligned(p.gamma, 16) && aligned(p.beta, 16);
#else
  (void)p;
  return false;
#endif
}

std::vector<int> linear_norm_variants(const LinearNormParams& p) {
  std::vector<int> v;
  if (!linear_norm_supports(p)) return v;
  dispatch(p, [&](auto t, auto bn) {
    using T = decltype(t);
    constexpr int BN = decltype(bn)::value;
    if (fits<T, BN, 1>(p)) v.push_back(1);
    if ((p.k / kBK) % 2 == 0 && fits<T, BN, 2>(p)) v.push_back(2);
  });
  return v;
}

void linear_norm(const LinearNormParams& p, cudaStream_t s) {
  VITRT_CHECK(linear_norm_supports(p), "fused linear + LayerNorm: not supported for ", p.rows, "x", p.k, "x", p.n, " ",
              dt_name(p.dt), " on compute capability ", p.arch,
              " (needs sm_90a, fp16/bf16, n of 768 or 1024, k a multiple of 64, aligned rows)");
  VITRT_CHECK(p.variant == 1 || (p.variant == 2 && (p.k / kBK) % 2 == 0), "fused linear + LayerNorm: variant ",
              p.variant, " does not apply to k = ", p.k);
  dispatch(p, [&](auto t, auto bn) {
    using T = decltype(t);
    constexpr int BN = decltype(bn)::value;
    if (p.variant == 2) launch<T, BN, 2>(p, s);
    else launch<T, BN, 1>(p, s);
  });
}

}  // namespace vitrt::cuda
