// In-place exact GELU (erf, as timm's nn.GELU) and QuickGELU (x * sigmoid(1.702 x)) after a GEMM
// whose bias epilogue ran in cuBLASLt.
// Blocks stride over rows and threads over the columns of a row, so no element index is ever divided.
// Rows of a multiple of 16 bytes at a 16-byte-aligned start take one 16-byte access per 8 16-bit (4
// fp32) elements, and each thread issues the loads of up to kUnroll accesses before it computes and
// stores any. Against one 8-byte load, compute and store after another, cuBLASLt's bias-only GEMM + this
// pass on vit_base's fc1 (bf16, tuning's flushed times) went from 11.1 to 10.6 us at batch 1, 21.6 to
// 21.3 at batch 8, 130.8 to 127.8 at batch 64 and 480.1 to 472.3 at batch 256 (run349, run353).
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

constexpr int kThreads = 128, kUnroll = 4;

// The pass's activation on T outputs. GELU: erff's form for fp32; for 16-bit outputs gelu_erf_ex2, the
// function the 16-bit GEMM's epilogue computes (gemm_ws.cuh), exact to 5e-7 absolute and 9e-6 relative,
// far below 16-bit rounding. By its code erff takes about 30 instructions an element (at vit_base's fc1,
// 155 M elements at batch 256: ~4.6 G), enough to make the pass compute-bound; with gelu_erf_ex2 the b8
// forward went from 0.812 to 0.790 ms (run348, run349).
template <typename T, bool kQuick>
__device__ __forceinline__ float act(float v) {
  if constexpr (kQuick) return quick_gelu(v);
  else if constexpr (std::is_same_v<T, float>) return gelu_erf(v);
  else return gelu_erf_ex2(v);
}

// kVec elements per access: 16 bytes' worth, or 1.
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T e[kVec];
};

template <typename T, bool kQuick, int kVec>
__global__ void __launch_bounds__(kThreads) activation_kernel(ActivationParams p) {
  wait_prior_grid();
  T* x = static_cast<T*>(p.x);
  const std::int64_t units = p.cols / kVec;
  for (std::int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    Pack<T, kVec>* row = reinterpret_cast<Pack<T, kVec>*>(x + r * p.ld);
    for (std::int64_t c0 = threadIdx.x; c0 < units; c0 += kUnroll * kThreads) {
      Pack<T, kVec> v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (c0 + u * kThreads < units) v[u] = row[c0 + u * kThreads];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (c0 + u * kThreads >= units) break;
#pragma unroll
        for (int i = 0; i < kVec; ++i) v[u].e[i] = from_f32<T>(act<T, kQuick>(to_f32(v[u].e[i])));
        row[c0 + u * kThreads] = v[u];
      }
    }
  }
}

template <typename T, bool kQuick>
void launch(const ActivationParams& p, cudaStream_t s) {
  constexpr int kVec = 16 / sizeof(T);
  const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(p.rows, 65535));
  const bool vec = p.cols % kVec == 0 && p.ld % kVec == 0 && reinterpret_cast<std::uintptr_t>(p.x) % 16 == 0;
  if (vec) launch_dependent(Pdl::gemm, activation_kernel<T, kQuick, kVec>, blocks, kThreads, 0, s, p);
  else launch_dependent(Pdl::gemm, activation_kernel<T, kQuick, 1>, blocks, kThreads, 0, s, p);
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
