// fp32 GEMMs of a few rows (gemv_f32.cuh): one warp per output column, 8 warps per block.
//
// A lane holds float4s lane, lane + 32, ... of its column's row of W (kPre of them loaded before the
// wait: rows of up to 32 * 4 * kPre = 1,024 columns in one go); rows longer than that continue in a
// loop. After the wait the block copies X into shared memory, every thread's loads in flight at once,
// then each warp takes X from there (each warp reading X from global memory row by row took 8.9 us at
// vit_base's head, 8 rows, against 5.8 this way; run436-437). Without 16-byte alignment (in or a row stride
// not a multiple of 4, or unaligned pointers) the same runs one float per lane. The sums of the 32
// lanes go through warp_sum; lane r writes row r.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/gemv_f32.cuh"
#include "backend/cuda/launch.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kWarps = 8;  // output columns per block
constexpr int kPre = 8;    // float4s (or floats) of W per lane loaded before the wait
constexpr int kCopy = 8;   // V units of X per thread and round of the copy into shared memory

// Element (or float4) i of a row, as V (float or float4).
template <typename V>
__device__ __forceinline__ V at(const float* row, int i) {
  return reinterpret_cast<const V*>(row)[i];
}
__device__ __forceinline__ float dot(float a, float b) { return a * b; }
__device__ __forceinline__ float dot(float4 a, float4 b) {
  return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

// R: rows rounded up to a power of two (rows <= R); V: float4 (16-byte path) or float.
template <int R, typename V>
__global__ void __launch_bounds__(kWarps * 32) gemv_f32_kernel(GemvF32Params p) {
  constexpr int kPer = sizeof(V) / sizeof(float);  // floats per V
  extern __shared__ float4 x_smem[];               // X, rows of `in` floats
  float* xs = reinterpret_cast<float*>(x_smem);
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  const bool live = n < p.out;  // warps past the last column still copy X and reach the barrier
  const int units = p.in / kPer;
  const int rows = static_cast<int>(p.rows);  // 1 .. kGemvMaxRows (gemv_f32_takes)
  const float* wr = p.w + static_cast<std::int64_t>(live ? n : 0) * p.in;
  V wv[kPre];
#pragma unroll
  for (int j = 0; j < kPre; ++j)
    if (lane + 32 * j < units) wv[j] = at<V>(wr, lane + 32 * j);
  const float b = live && p.bias ? p.bias[n] : 0.0f;
  wait_prior_grid();  // X (and D, when accumulating) come from the kernels before this one
  allow_next_grid();
  // X into shared memory: kCopy loads per thread in flight, then their stores.
  const int total = rows * units;
  for (int i0 = threadIdx.x; i0 < total; i0 += kCopy * kWarps * 32) {
    V v[kCopy];
#pragma unroll
    for (int c = 0; c < kCopy; ++c) {
      const int i = i0 + c * kWarps * 32;
      if (i < total) v[c] = at<V>(p.x + static_cast<std::int64_t>(i / units) * p.ldx, i % units);
    }
#pragma unroll
    for (int c = 0; c < kCopy; ++c) {
      const int i = i0 + c * kWarps * 32;
      if (i < total) reinterpret_cast<V*>(xs)[i] = v[c];
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
    const float* xr = xs + r * p.in;
#pragma unroll
    for (int j = 0; j < kPre; ++j)
      if (lane + 32 * j < units) acc[r] += dot(wv[j], at<V>(xr, lane + 32 * j));
  }
  for (int i = lane + 32 * kPre; i < units; i += 32) {  // columns past the prefetched ones
    const V w = at<V>(wr, i);
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < rows) acc[r] += dot(w, at<V>(xs + r * p.in, i));
  }
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = warp_sum(acc[r]);
  // Lane r writes row r: acc[lane] through a compile-time index.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (lane == r && r < rows) {
      float* dst = p.d + r * p.ldd + n;
      *dst = (p.accumulate ? *dst : 0.0f) + acc[r] + b;
    }
  }
}

template <int R, typename V>
void launch_rows(const GemvF32Params& p, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((p.out + kWarps - 1) / kWarps);
  const std::size_t smem = static_cast<std::size_t>(p.rows) * p.in * sizeof(float);
  allow_dynamic_smem(gemv_f32_kernel<R, V>, static_cast<int>(kGemvMaxSmem));
  launch_dependent(Pdl::gemm, gemv_f32_kernel<R, V>, blocks, kWarps * 32, smem, s, p);
}

template <typename V>
void launch(const GemvF32Params& p, cudaStream_t s) {
  if (p.rows <= 1) launch_rows<1, V>(p, s);
  else if (p.rows <= 2) launch_rows<2, V>(p, s);
  else if (p.rows <= 4) launch_rows<4, V>(p, s);
  else if (p.rows <= 8) launch_rows<8, V>(p, s);
  else launch_rows<16, V>(p, s);
}

}  // namespace

bool gemv_f32_takes(const GemvF32Params& p) {
  return p.rows >= 1 && p.rows <= kGemvMaxRows && p.in >= 1 && p.out >= 1 && p.x && p.w && p.d &&
         p.ldx >= p.in && p.ldd >= p.out &&
         static_cast<std::size_t>(p.rows) * static_cast<std::size_t>(p.in) * sizeof(float) <= kGemvMaxSmem;
}

void gemv_f32(const GemvF32Params& p, cudaStream_t s) {
  VITRT_CHECK(gemv_f32_takes(p), "gemv_f32: ", p.rows, " rows of ", p.in, " -> ", p.out, " (ld ", p.ldx, ", ",
              p.ldd, ") is not a GEMM it takes (1 to ", kGemvMaxRows, " rows whose X fits ", kGemvMaxSmem,
              " bytes of shared memory)");
  const bool vec = p.in % 4 == 0 && p.ldx % 4 == 0 && aligned(p.x, 16) && aligned(p.w, 16);
  if (vec) launch<float4>(p, s);
  else launch<float>(p, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
