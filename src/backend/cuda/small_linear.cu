// One warp per output column: the warp streams that column's weight row once (coalesced, 16-byte
// loads when the row allows) and dots it with up to R input rows staged in shared memory, then reduces
// across its lanes. Rows beyond R take further passes.
#include "backend/cuda/small_linear.cuh"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxRows = 16;
constexpr int kSmemFloats = 48 * 1024 / 4;  // the default dynamic shared-memory limit

template <int R, bool Vec>
__global__ void __launch_bounds__(kWarps * 32) small_linear_kernel(SmallLinearParams p, int row0) {
  extern __shared__ float4 xs4[];  // [R][in] fp32
  float* xs = reinterpret_cast<float*>(xs4);
  const int rows = min(R, p.rows - row0), in = p.in;
  for (int i = threadIdx.x; i < R * in; i += blockDim.x) {
    const int r = i / in, k = i % in;
    xs[i] = r < rows ? p.x[(row0 + r) * p.x_ld + k] : 0.0f;
  }
  __syncthreads();
  const int lane = threadIdx.x % 32;
  for (int n = blockIdx.x * kWarps + threadIdx.x / 32; n < p.out; n += gridDim.x * kWarps) {
    const float* w = p.w + static_cast<std::int64_t>(n) * in;
    float acc[R] = {};
    if constexpr (Vec) {
      for (int k4 = lane; k4 < in / 4; k4 += 32) {
        const float4 wv = reinterpret_cast<const float4*>(w)[k4];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float4 xv = reinterpret_cast<const float4*>(xs + r * in)[k4];
          acc[r] = fmaf(xv.x, wv.x, fmaf(xv.y, wv.y, fmaf(xv.z, wv.z, fmaf(xv.w, wv.w, acc[r]))));
        }
      }
    } else {
      for (int k = lane; k < in; k += 32) {
        const float wk = w[k];
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] = fmaf(xs[r * in + k], wk, acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float v = warp_sum(acc[r]);
      if (lane == r && r < rows) {
        float* y = p.y + (row0 + r) * p.y_ld + n;
        *y = (p.accumulate ? *y : 0.0f) + v + p.bias[n];
      }
    }
  }
}

template <int R>
void launch(const SmallLinearParams& p, bool vec, int row0, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((p.out + kWarps - 1) / kWarps);
  const std::size_t smem = static_cast<std::size_t>(R) * p.in * sizeof(float);
  if (vec) small_linear_kernel<R, true><<<blocks, kWarps * 32, smem, s>>>(p, row0);
  else small_linear_kernel<R, false><<<blocks, kWarps * 32, smem, s>>>(p, row0);
}

}  // namespace

bool small_linear_supports(std::int64_t rows, std::int64_t in) {
  return rows >= 1 && rows <= kMaxRows && in >= 1 && in <= kSmemFloats;
}

void small_linear(const SmallLinearParams& p, cudaStream_t s) {
  VITRT_CHECK(small_linear_supports(p.rows, p.in) && p.out >= 1, "small_linear: ", p.rows, " rows of ", p.in,
              " inputs are not supported");
  // 16-byte loads need 4-element rows and 16-byte aligned weights (the smem row starts follow from in).
  const bool vec = p.in % 4 == 0 && reinterpret_cast<std::uintptr_t>(p.w) % 16 == 0;
  // As many rows per pass as shared memory holds (at most 8): one pass for a batch of up to 8.
  const int per_pass = p.in <= kSmemFloats / 8 ? 8 : p.in <= kSmemFloats / 4 ? 4 : p.in <= kSmemFloats / 2 ? 2 : 1;
  for (int row0 = 0; row0 < p.rows; row0 += per_pass) {
    switch (per_pass) {
      case 8: launch<8>(p, vec, row0, s); break;
      case 4: launch<4>(p, vec, row0, s); break;
      case 2: launch<2>(p, vec, row0, s); break;
      default: launch<1>(p, vec, row0, s); break;
    }
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace vitrt::cuda
