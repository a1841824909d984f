// GEMMs of a few rows (gemv.cuh): one warp per output column, 8 warps per block.
//
// A lane holds units lane, lane + 32, ... of its column's row of W, a unit being 16 bytes (4 fp32 or 8
// 16-bit values) where the operands allow, else one element. P units per lane are loaded before the wait;
// longer rows continue in a loop. After the wait the block copies X into shared memory, every copy in
// flight at once, then each warp takes X from there (each warp reading X from global memory row by row
// took 8.9 us at vit_base's head, 8 rows, against 5.8 this way; run436-437). Each unit's products are
// summed on their own, then added to the row's sum; the 32 lanes' sums go through warp_sum, and lane r
// finishes row r: bias, activation, residual.
//
// Splitting a column's units over 2-8 warps of a block, so that vit_base's class-token proj and fc2 (96
// blocks) and the head (125) cover every SM, was not faster (ncu, run441: fc2 5.4 us either way, proj
// 3.7 -> 4.3, the fp32 head 3.7 -> 5.1, forwards level) and is not built.
#include <cstring>
#include <type_traits>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/launch.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kWarps = 8;  // output columns per block
constexpr int kCopy = 8;   // units of X per thread and round of the copy into shared memory

// A load unit of T: 16 bytes on the 16-byte path (Vec), else one element.
template <typename T, bool Vec>
struct Unit {
  using V = T;
};
template <>
struct Unit<float, true> {
  using V = float4;
};
template <>
struct Unit<__half, true> {
  using V = uint4;
};
template <>
struct Unit<__nv_bfloat16, true> {
  using V = uint4;
};
// Units of W per lane loaded before the wait (P below): the fewest of 2, 4, 8 or 16 that hold a row of W
// (16 at most: 2,048 fp32 or 4,096 16-bit columns, the rest in a loop), 8 elements on the element-wise
// path. Rounding up to the row instead of one size for all keeps the registers down, so that every block
// of vit_base's class-token fc1 (3,072 columns, 384 blocks) is resident at once: with 16 units and 144
// registers one block fitted per SM, and the kernel ran in three waves (8.0 us at batch 1, run439).
constexpr int kPreScalar = 8;
int pre_units(int units_per_row) {
  const int need = (units_per_row + 31) / 32;
  return need <= 2 ? 2 : need <= 4 ? 4 : need <= 8 ? 8 : 16;
}

// Unit i of a row.
template <typename V, typename T>
__device__ __forceinline__ const V& at(const T* row, int i) {
  return reinterpret_cast<const V*>(row)[i];
}

// Two 16-bit values packed in 32 bits, as floats.
template <typename T>
__device__ __forceinline__ float2 pair_f32(unsigned u) {
  if constexpr (std::is_same_v<T, __half>) {
    __half2 h;
    std::memcpy(&h, &u, sizeof(h));
    return __half22float2(h);
  } else {
    __nv_bfloat162 h;
    std::memcpy(&h, &u, sizeof(h));
    return __bfloat1622float2(h);
  }
}

// The dot product of two units, in fp32.
template <typename T, typename V>
__device__ __forceinline__ float dot(V a, V b) {
  if constexpr (std::is_same_v<V, float4>) {
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
  } else if constexpr (std::is_same_v<V, uint4>) {
    const unsigned ua[4] = {a.x, a.y, a.z, a.w}, ub[4] = {b.x, b.y, b.z, b.w};
    float even = 0.0f, odd = 0.0f;  // two chains of four
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 fa = pair_f32<T>(ua[i]), fb = pair_f32<T>(ub[i]);
      even = fmaf(fa.x, fb.x, even);
      odd = fmaf(fa.y, fb.y, odd);
    }
    return even + odd;
  } else {
    return to_f32(a) * to_f32(b);
  }
}

// R: rows rounded up to a power of two (rows <= R); T: the operands' type; Vec: 16-byte units; P: units
// of W per lane loaded before the wait.
template <int R, typename T, bool Vec, int P>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(GemvParams p) {
  using V = typename Unit<T, Vec>::V;
  // The next kernel may launch now: in the last block's chain of few-row kernels (proj, norm2, fc1, fc2,
  // the final norm, the head) each one then loads its W while the ones before it run. Safe because every
  // kernel waits for the one before it (wait_prior_grid) before it touches what that one writes. With
  // this and the LayerNorms' call at their start, vit_large b1 went 2-5 us faster in runs 535-536 (one
  // tuning each) and was level over three tunings in run538: within the spread between tunings.
  allow_next_grid();
  extern __shared__ uint4 x_smem[];  // X, rows of `in` elements
  T* xs = reinterpret_cast<T*>(x_smem);
  const T* x = static_cast<const T*>(p.a);
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  const bool live = n < p.out;  // warps past the last column still copy X and reach the barrier
  const int units = p.in / static_cast<int>(sizeof(V) / sizeof(T));
  const int rows = static_cast<int>(p.rows);  // 1 .. kGemvMaxRows (gemv_takes)
  const bool out_f32 = p.out_dt == DT::f32;
  const T* wr = static_cast<const T*>(p.w) + static_cast<std::int64_t>(live ? n : 0) * p.in;
  V wv[P];
#pragma unroll
  for (int j = 0; j < P; ++j)
    if (lane + 32 * j < units) wv[j] = at<V>(wr, lane + 32 * j);
  float b = 0.0f;
  if (live && p.bias)
    b = out_f32 ? static_cast<const float*>(p.bias)[n] : to_f32(static_cast<const T*>(p.bias)[n]);
  wait_prior_grid();  // X (and D, when accumulating) come from the kernels before this one
  // X into shared memory: on the 16-byte path as asynchronous copies (no registers held for them, so
  // that W's stay the bulk of the kernel's), else kCopy loads per thread in flight, then their stores.
  const int total = rows * units;
  if constexpr (Vec) {
    for (int i = threadIdx.x; i < total; i += kWarps * 32) {
      const T* row = x + static_cast<std::int64_t>(i / units) * p.lda;
      cp_async16(reinterpret_cast<V*>(xs) + i, &at<V>(row, i % units), true);
    }
    cp_async_commit();
    cp_async_wait<0>();
  } else {
    for (int i0 = threadIdx.x; i0 < total; i0 += kCopy * kWarps * 32) {
      V v[kCopy];
#pragma unroll
      for (int c = 0; c < kCopy; ++c) {
        const int i = i0 + c * kWarps * 32;
        if (i < total) v[c] = at<V>(x + static_cast<std::int64_t>(i / units) * p.lda, i % units);
      }
#pragma unroll
      for (int c = 0; c < kCopy; ++c) {
        const int i = i0 + c * kWarps * 32;
        if (i < total) reinterpret_cast<V*>(xs)[i] = v[c];
      }
    }
  }
  __syncthreads();
  if (!live) return;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r >= rows) break;
    const T* xr = xs + r * p.in;
#pragma unroll
    for (int j = 0; j < P; ++j)
      if (lane + 32 * j < units) acc[r] += dot<T>(wv[j], at<V>(xr, lane + 32 * j));
  }
  for (int i = lane + 32 * P; i < units; i += 32) {  // units past the prefetched ones
    const V w = at<V>(wr, i);
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < rows) acc[r] += dot<T>(w, at<V>(xs + r * p.in, i));
  }
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = warp_sum(acc[r]);
  // Lane r finishes row r: acc[lane] through a compile-time index.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (lane == r && r < rows) {
      float v = activate(p.act, acc[r] + b);
      const std::int64_t at_d = r * p.ldd + n;
      if (out_f32) {
        float* dst = static_cast<float*>(p.d) + at_d;
        *dst = p.accumulate ? *dst + v : v;
      } else {
        T* dst = static_cast<T*>(p.d) + at_d;
        if (p.accumulate) v += to_f32(*dst);
        *dst = from_f32<T>(v);
      }
    }
  }
}

template <int R, typename T, bool Vec, int P>
void launch_rows(const GemvParams& p, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((p.out + kWarps - 1) / kWarps);
  const std::size_t smem = static_cast<std::size_t>(p.rows) * p.in * sizeof(T);
  allow_dynamic_smem(gemv_kernel<R, T, Vec, P>, static_cast<int>(kGemvMaxSmem));
  launch_dependent(Pdl::gemm, gemv_kernel<R, T, Vec, P>, blocks, kWarps * 32, smem, s, p);
}

template <typename T, bool Vec, int P>
void launch_pre(const GemvParams& p, cudaStream_t s) {
  if (p.rows <= 1) launch_rows<1, T, Vec, P>(p, s);
  else if (p.rows <= 2) launch_rows<2, T, Vec, P>(p, s);
  else if (p.rows <= 4) launch_rows<4, T, Vec, P>(p, s);
  else if (p.rows <= 8) launch_rows<8, T, Vec, P>(p, s);
  else launch_rows<16, T, Vec, P>(p, s);
}

template <typename T>
void launch(const GemvParams& p, cudaStream_t s) {
  constexpr int per = static_cast<int>(sizeof(typename Unit<T, true>::V) / sizeof(T));
  const bool vec = p.in % per == 0 && p.lda % per == 0 && aligned(p.a, 16) && aligned(p.w, 16);
  if (!vec) return launch_pre<T, false, kPreScalar>(p, s);
  switch (pre_units(p.in / per)) {
    case 2: return launch_pre<T, true, 2>(p, s);
    case 4: return launch_pre<T, true, 4>(p, s);
    case 8: return launch_pre<T, true, 8>(p, s);
    default: return launch_pre<T, true, 16>(p, s);
  }
}

}  // namespace

bool gemv_takes(const GemvParams& p) {
  return p.rows >= 1 && p.rows <= kGemvMaxRows && p.in >= 1 && p.out >= 1 && p.a && p.w && p.d &&
         p.lda >= p.in && p.ldd >= p.out && (p.out_dt == DT::f32 || p.out_dt == p.in_dt) &&
         static_cast<std::size_t>(p.rows) * static_cast<std::size_t>(p.in) * dt_size(p.in_dt) <= kGemvMaxSmem;
}

void gemv(const GemvParams& p, cudaStream_t s) {
  VITRT_CHECK(gemv_takes(p), "gemv: ", p.rows, " rows of ", p.in, " -> ", p.out, " (", dt_name(p.in_dt),
              " -> ", dt_name(p.out_dt), ", ld ", p.lda, ", ", p.ldd, ") is not a GEMM it takes (1 to ",
              kGemvMaxRows, " rows whose X fits ", kGemvMaxSmem,
              " bytes of shared memory, output fp32 or the input type)");
  with_storage_type(p.in_dt, [&](auto t) { launch<decltype(t)>(p, s); });
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
