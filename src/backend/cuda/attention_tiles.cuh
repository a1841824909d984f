// Pieces shared by the register-resident tensor-core attention kernels (attention_mma.cu for 16-bit
// activations, attention_tf32.cu for fp32): the cp.async double-buffered K/V tile pipeline and the
// online softmax on mma accumulator fragments (each thread holds rows g and g + 8 of a warp's 16 query
// rows, columns 2t and 2t + 1 of every 8-wide tile).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "backend/cuda/cp_async.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {

// 2^x on the special-function unit, flushing denormal results to zero (probabilities that small do
// not change the P V product).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Shared-memory tile layouts for load_kv_tile, as element offsets of (row, column).
// Rows padded to LD elements (ldmatrix / fragment reads without bank conflicts).
template <int LD>
struct PaddedRows {
  static __device__ __forceinline__ int offset(int r, int c) { return r * LD + c; }
};
// Rows of 64 16-bit elements (128 bytes) with the 128-byte swizzle that wgmma's shared-memory
// descriptors read: 16-byte chunk j of row r lives at chunk j ^ (r % 8). The tile starts 1024-aligned.
struct Swizzle128 {
  static __device__ __forceinline__ int offset(int r, int c) { return r * 64 + ((((c >> 3) ^ r) & 7) << 3); }
};

// Starts copying K/V rows [tile * BK, +BK) of one (batch, head) into shared tiles k_dst / v_dst
// (element offsets by Layout), zeros past the last key. `base` points at the head's Q columns of
// token 0 in the qkv layout [N, 3, H, D]; K is E elements further, V 2E. Each thread copies the same
// chunks of every tile (compile-time trip count, offsets kept in registers).
template <typename T, int D, int BK, typename Layout, int Threads>
__device__ __forceinline__ void load_kv_tile(const T* base, std::size_t stride, int E, int N, int tile, T* k_dst,
                                             T* v_dst) {
  constexpr int kPerChunk = 16 / sizeof(T), kChunks = BK * (D / kPerChunk);
  constexpr int kPerThread = (kChunks + Threads - 1) / Threads;
  const int k0 = tile * BK;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = threadIdx.x + j * Threads;
    if (kChunks % Threads != 0 && i >= kChunks) break;
    const int r = i / (D / kPerChunk), c = (i % (D / kPerChunk)) * kPerChunk;
    const bool ok = k0 + r < N;
    const T* row = base + static_cast<std::size_t>(ok ? k0 + r : 0) * stride;
    cp_async16(k_dst + Layout::offset(r, c), row + E + c, ok);
    cp_async16(v_dst + Layout::offset(r, c), row + 2 * E + c, ok);
  }
  cp_async_commit();
}

// The double-buffered tile loop: load(tile, stage) starts tile's copy into stage; body(tile, stage)
// runs once that stage has landed, while the next tile loads into the other stage. AsyncReaders: the
// body reads the tiles through the async proxy (wgmma), so each thread fences its copies into it.
// landed(tile, stage), if given, runs on each thread once its own copies of the tile have arrived and
// before the barrier that makes the tile visible to the block: it may rewrite what this thread copied.
template <bool AsyncReaders = false, typename Load, typename Landed, typename Body>
__device__ __forceinline__ void kv_tile_loop(int tiles, Load&& load, Landed&& landed, Body&& body) {
  load(0, 0);
  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + 1 < tiles) {
      load(tile + 1, (tile + 1) & 1);  // that stage was released by the barrier ending the last tile
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    landed(tile, tile & 1);
    if constexpr (AsyncReaders) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    body(tile, tile & 1);
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
}
template <bool AsyncReaders = false, typename Load, typename Body>
__device__ __forceinline__ void kv_tile_loop(int tiles, Load&& load, Body&& body) {
  kv_tile_loop<AsyncReaders>(tiles, load, [](int, int) {}, body);
}

// Online softmax state of one thread's two query rows. Scores stay raw: the scale is folded into the
// exponent, exp((s - m) * scale) = 2^(s * sl - m * sl) with sl = scale * log2(e).
struct OnlineSoftmax {
  float sl;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  float ms0 = 0.0f, ms1 = 0.0f;  // running maxima times sl

  __device__ explicit OnlineSoftmax(float scale) : sl(scale * 1.4426950408889634f) {}

  // Masks the keys >= valid of a tile of scores s and returns its maxima over this thread's quad for
  // both rows.
  template <int KT>
  static __device__ __forceinline__ void tile_max(float (&s)[KT][4], int valid, int t, float& mx0, float& mx1) {
    if (valid < 8 * KT) {  // only the last tile has keys past the end
#pragma unroll
      for (int nt = 0; nt < KT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (nt * 8 + 2 * t + (e & 1) >= valid) s[nt][e] = -INFINITY;
    }
    // Four independent partial maxima per row: a chain of KT dependent max instructions would leave the
    // warp waiting on each (the maximum is exact, so the order does not change the result).
    float a0[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, a1[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < KT; ++nt) {
      a0[nt % 4] = fmaxf(a0[nt % 4], fmaxf(s[nt][0], s[nt][1]));
      a1[nt % 4] = fmaxf(a1[nt % 4], fmaxf(s[nt][2], s[nt][3]));
    }
    mx0 = fmaxf(fmaxf(a0[0], a0[1]), fmaxf(a0[2], a0[3]));
    mx1 = fmaxf(fmaxf(a1[0], a1[1]), fmaxf(a1[2], a1[3]));
    for (int off = 1; off < 4; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
  }

  // For a new tile of scores s (keys >= valid are masked): updates the running maxima, rescales the
  // running sums, and returns the factors c0, c1 by which the output accumulators must be rescaled.
  template <int KT>
  __device__ __forceinline__ void next_tile_factors(float (&s)[KT][4], int valid, int t, float& c0, float& c1) {
    float mx0, mx1;
    tile_max(s, valid, t, mx0, mx1);
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    c0 = exp2_approx((m0 - mn0) * sl);  // 0 on the first tile
    c1 = exp2_approx((m1 - mn1) * sl);
    m0 = mn0;
    m1 = mn1;
    ms0 = mn0 * sl;
    ms1 = mn1 * sl;
    l0 *= c0;
    l1 *= c1;
  }

  // Scales accumulator fragments o: rows g by c0, rows g + 8 by c1.
  template <int OT>
  static __device__ __forceinline__ void rescale(float (&o)[OT][4], float c0, float c1) {
#pragma unroll
    for (int nt = 0; nt < OT; ++nt) {
      o[nt][0] *= c0;
      o[nt][1] *= c0;
      o[nt][2] *= c1;
      o[nt][3] *= c1;
    }
  }

  // The same, rescaling the output accumulators o at once (and l, row sums kept as an accumulator
  // fragment by the caller, if given).
  template <int KT, int OT, int LT = 1>
  __device__ __forceinline__ void next_tile(float (&s)[KT][4], float (&o)[OT][4], int valid, int t,
                                            float (*l)[LT][4] = nullptr) {
    float c0, c1;
    next_tile_factors(s, valid, t, c0, c1);
    rescale(o, c0, c1);
    if (l != nullptr) rescale(*l, c0, c1);
  }

  // The scores of every key at once (one pass, nothing to rescale): sets the maxima from s. Only the
  // last 16 keys (two 8-key tiles) may lie past the end (valid > 8 * KT - 16): only those are masked.
  template <int KT>
  __device__ __forceinline__ void only_tile(float (&s)[KT][4], int valid, int t) {
#pragma unroll
    for (int nt = KT >= 2 ? KT - 2 : 0; nt < KT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (nt * 8 + 2 * t + (e & 1) >= valid) s[nt][e] = -INFINITY;
    tile_max(s, 8 * KT, t, m0, m1);
    ms0 = m0 * sl;
    ms1 = m1 * sl;
  }

  // Folds in the state of the same two rows over other keys (maxima pm0, pm1; this thread's share of
  // their sums pl0, pl1), as next_tile folds in a tile; a0, a1 scale this state's O and b0, b1 the other's.
  __device__ __forceinline__ void merge(float pm0, float pm1, float pl0, float pl1, float& a0, float& a1, float& b0,
                                        float& b1) {
    const float mn0 = fmaxf(m0, pm0), mn1 = fmaxf(m1, pm1);
    a0 = exp2_approx((m0 - mn0) * sl);
    b0 = exp2_approx((pm0 - mn0) * sl);
    a1 = exp2_approx((m1 - mn1) * sl);
    b1 = exp2_approx((pm1 - mn1) * sl);
    m0 = mn0;
    m1 = mn1;
    ms0 = mn0 * sl;
    ms1 = mn1 * sl;
    l0 = l0 * a0 + pl0 * b0;
    l1 = l1 * a1 + pl1 * b1;
  }

  // Probability of a score fragment element e (0, 1: row g; 2, 3: row g + 8).
  __device__ __forceinline__ float prob(float s, int e) const { return exp2_approx(fmaf(s, sl, -(e < 2 ? ms0 : ms1))); }

  // 1 / row sum for both rows, once every tile has been added to l0 / l1 (reduced over the quad).
  __device__ __forceinline__ void finish(float& inv0, float& inv1) {
    for (int off = 1; off < 4; off <<= 1) {
      l0 += __shfl_xor_sync(0xffffffffu, l0, off);
      l1 += __shfl_xor_sync(0xffffffffu, l1, off);
    }
    inv0 = 1.0f / l0;
    inv1 = 1.0f / l1;
  }
};

// --- 16-bit fragments (attention_mma.cu, attention_wgmma.cu): m16n8k16 / m64nNk16 register layouts, where
// each thread holds rows g and g + 8 of a warp's 16 rows.

// Two fp32 values -> one register of two 16-bit values (first in the low half, one cvt instruction).
template <typename T>
__device__ __forceinline__ std::uint32_t pack(float lo, float hi);
template <>
__device__ __forceinline__ std::uint32_t pack<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return reinterpret_cast<const std::uint32_t&>(v);
}
template <>
__device__ __forceinline__ std::uint32_t pack<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return reinterpret_cast<const std::uint32_t&>(v);
}

__device__ __forceinline__ std::uint32_t ld32(const void* p) { return *static_cast<const std::uint32_t*>(p); }

// Q rows r0, r1 (zeros past N) as A fragments, one set of 4 registers per 16-wide slice of the head dim.
template <typename T, int D>
__device__ __forceinline__ void load_q_fragments(const T* base, std::size_t stride, int N, int r0, int r1, int t,
                                                 std::uint32_t (&qf)[D / 16][4]) {
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
    const int c = ks * 16 + 2 * t;
    qf[ks][0] = r0 < N ? ld32(base + r0 * stride + c) : 0u;
    qf[ks][1] = r1 < N ? ld32(base + r1 * stride + c) : 0u;
    qf[ks][2] = r0 < N ? ld32(base + r0 * stride + c + 8) : 0u;
    qf[ks][3] = r1 < N ? ld32(base + r1 * stride + c + 8) : 0u;
  }
}

// The scores of 16 keys (two 8-key accumulator tiles sa, sb) -> probabilities packed as the A fragment
// of P V. The row sums take them unrounded (summing the rounded values cost 32 integer instructions per
// tile and thread for a difference far below the 16-bit rounding of P V itself). Sum = false leaves
// the sums to the caller (the online-softmax wgmma kernel takes them on the tensor cores, from P as
// rounded).
template <typename T, bool Sum = true>
__device__ __forceinline__ void probs_to_a_fragment(OnlineSoftmax& sm, float* sa, float* sb, std::uint32_t (&pf)[4]) {
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    sa[e] = sm.prob(sa[e], e);
    sb[e] = sm.prob(sb[e], e);
  }
  pf[0] = pack<T>(sa[0], sa[1]);
  pf[1] = pack<T>(sa[2], sa[3]);
  pf[2] = pack<T>(sb[0], sb[1]);
  pf[3] = pack<T>(sb[2], sb[3]);
  if constexpr (Sum) {
    sm.l0 += sa[0] + sa[1] + sb[0] + sb[1];
    sm.l1 += sa[2] + sa[3] + sb[2] + sb[3];
  }
}

// Output rows r0, r1 (those < N) of head h: accumulators times 1 / row sum, into [rows, E] starting at
// token row0. T = float (the 3xTF32 kernels) stores each pair as a float2, 16-bit types packed.
template <typename T, int D>
__device__ __forceinline__ void store_rows(void* out_v, const float (&o)[D / 8][4], float i0, float i1, std::size_t row0,
                                           int h, int E, int N, int r0, int r1, int t) {
  T* out = static_cast<T*>(out_v) + static_cast<std::size_t>(h) * D;
  const auto put = [&](std::size_t at, float a, float b) {
    if constexpr (std::is_same_v<T, float>) *reinterpret_cast<float2*>(out + at) = make_float2(a, b);
    else *reinterpret_cast<std::uint32_t*>(out + at) = pack<T>(a, b);
  };
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) {
    const int c = nt * 8 + 2 * t;
    if (r0 < N) put((row0 + r0) * E + c, o[nt][0] * i0, o[nt][1] * i0);
    if (r1 < N) put((row0 + r1) * E + c, o[nt][2] * i1, o[nt][3] * i1);
  }
}

#ifdef VITRT_WGMMA_DEVICE
// stmatrix: four 8 x 8 blocks of 16-bit values from accumulator-layout registers (r_i holds row lane / 4,
// columns 2 (lane % 4) and + 1 of block i) into shared memory; lanes 8i..8i+7 give block i's row addresses.
__device__ __forceinline__ void stmatrix_x4(unsigned addr, std::uint32_t r0, std::uint32_t r1, std::uint32_t r2,
                                            std::uint32_t r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}

// (wgmma kernels, head dim 64.) A warp's 16 rows of a 64-row output tile (o times 1 / row sum, this thread holding rows g and g + 8
// of the warp's, columns 2t, 2t + 1 of each 8-wide tile) written as whole rows: packed into the 8 KB
// tile `stage` (128 bytes per row, 16-byte chunk c of row r at c ^ (r % 8), no bank conflicts either
// way), then read back 16 bytes per thread, 8 threads per row, and stored to out + at + row * E for the
// rows < live. Stores of 4 bytes straight from the fragments filled half of each 32-byte sector.
template <typename T>
__device__ __forceinline__ void store_rows_staged(void* out_v, const float (&o)[8][4], float i0, float i1, T* stage,
                                                  std::size_t at, int E, int live, int warp, int lane) {
  const unsigned st = smem_addr(stage);
  const int m = lane >> 3, row = warp * 16 + (m & 1) * 8 + (lane & 7);  // the block row this lane addresses
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int c = 2 * j + (m >> 1);
    stmatrix_x4(st + row * 128 + ((c ^ (row & 7)) << 4), pack<T>(o[2 * j][0] * i0, o[2 * j][1] * i0),
                pack<T>(o[2 * j][2] * i1, o[2 * j][3] * i1), pack<T>(o[2 * j + 1][0] * i0, o[2 * j + 1][1] * i0),
                pack<T>(o[2 * j + 1][2] * i1, o[2 * j + 1][3] * i1));
  }
  __syncwarp();
  T* out = static_cast<T*>(out_v) + at;
  const unsigned char* tile = reinterpret_cast<const unsigned char*>(stage);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int i = lane + 32 * k, r = warp * 16 + i / 8, c = i % 8;
    const uint4 v = *reinterpret_cast<const uint4*>(tile + r * 128 + ((c ^ (r & 7)) << 4));
    if (r < live) *reinterpret_cast<uint4*>(out + static_cast<std::size_t>(r) * E + c * 8) = v;
  }
}
#endif

// Host side: calls f(std::integral_constant<int, D>{}) for the head dims the tensor-core kernels are
// instantiated for (multiples of 16 up to 128); false for any other.
template <typename F>
bool with_head_dim16(int d, F&& f) {
  switch (d) {
    case 16: f(std::integral_constant<int, 16>{}); return true;
    case 32: f(std::integral_constant<int, 32>{}); return true;
    case 48: f(std::integral_constant<int, 48>{}); return true;
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 80: f(std::integral_constant<int, 80>{}); return true;
    case 96: f(std::integral_constant<int, 96>{}); return true;
    case 112: f(std::integral_constant<int, 112>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    default: return false;
  }
}

}  // namespace vitrt::cuda
