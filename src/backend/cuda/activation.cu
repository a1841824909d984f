// In-place exact GELU (erf, as timm's nn.GELU) and QuickGELU (x * sigmoid(1.702 x)) after a GEMM
// whose bias epilogue ran in cuBLASLt.
// Blocks stride over rows and threads over the columns of a row, so no element index is ever divided;
// rows of a multiple of 4 elements at a 4-element-aligned start take one vector access per 4 elements.
#include "backend/cuda/activation.cuh"

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/launch.cuh"

namespace vitrt::cuda {
namespace {

// The pass's activation on T outputs. GELU: erff's form for fp32; for 16-bit outputs gelu_erf_ex2, the
// function the 16-bit GEMM's epilogue computes (gemm_ws.cuh), exact to 5e-7 absolute and 9e-6 relative,
// far below 16-bit rounding. erff's branches take about 30 instructions an element, which made the pass
// compute-bound: at vit_base's fc1, 155 M elements at batch 256, about 4.4 G instructions.
template <typename T, bool kQuick>
__device__ __forceinline__ float act(float v) {
  if constexpr (kQuick) return quick_gelu(v);
  else if constexpr (std::is_same_v<T, float>) return gelu_erf(v);
  else return gelu_erf_ex2(v);
}

template <typename T, bool kQuick, bool kVec4>
__global__ void activation_kernel(ActivationParams p) {
  wait_prior_grid();
  T* x = static_cast<T*>(p.x);
  const std::int64_t units = kVec4 ? p.cols / 4 : p.cols;
  for (std::int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    T* row = x + r * p.ld;
    for (std::int64_t c = threadIdx.x; c < units; c += blockDim.x) {
      if constexpr (kVec4) {
        const float4 v = load4(row, static_cast<int>(c));
        store4(row + 4 * c, act<T, kQuick>(v.x), act<T, kQuick>(v.y), act<T, kQuick>(v.z), act<T, kQuick>(v.w));
      } else {
        row[c] = from_f32<T>(act<T, kQuick>(to_f32(row[c])));
      }
    }
  }
}

template <typename T, bool kQuick>
void launch(const ActivationParams& p, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(p.rows, 65535));
  const bool vec4 = p.cols % 4 == 0 && p.ld % 4 == 0 && reinterpret_cast<std::uintptr_t>(p.x) % (4 * sizeof(T)) == 0;
  if (vec4) launch_dependent(Pdl::gemm, activation_kernel<T, kQuick, true>, blocks, 256, 0, s, p);
  else launch_dependent(Pdl::gemm, activation_kernel<T, kQuick, false>, blocks, 256, 0, s, p);
}

}  // namespace

void activation(const ActivationParams& p, cudaStream_t s) {
  if (p.rows * p.cols == 0 || p.act == Epilogue::none) return;
  with_storage_type(p.dt, [&](auto t) {
    if (p.act == Epilogue::quick_gelu) launch<decltype(t), true>(p, s);
    else launch<decltype(t), false>(p, s);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda
