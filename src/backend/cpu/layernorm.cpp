#include "backend/cpu/layernorm.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/check.h"
#include "core/half.h"

namespace vitrt::cpu {

void layernorm(const LayerNormArgs& a) {
  const std::int64_t D = a.dim;
  VITRT_CHECK(a.src_dt != DT::f16 && a.dst_dt != DT::f16, "CPU LayerNorm: fp16 is not a CPU activation type");
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < a.rows; ++r) {
    // A bf16 residual row is widened first (in place is safe: the row is read whole before writing).
    thread_local std::vector<float> wide;
    const float* x;
    if (a.src_dt == DT::bf16) {
      wide.resize(static_cast<std::size_t>(D));
      const auto* s16 = static_cast<const std::uint16_t*>(a.src) + r * a.src_ld;
      for (std::int64_t i = 0; i < D; ++i) wide[static_cast<std::size_t>(i)] = bf16_to_float(s16[i]);
      x = wide.data();
    } else {
      x = static_cast<const float*>(a.src) + r * a.src_ld;
    }
    // Two passes in fp32 with vector-wide partial sums (mean first, then centred squares), so a
    // large mean does not cancel the variance.
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::int64_t i = 0; i < D; ++i) sum += x[i];
    const float m = sum / static_cast<float>(D);
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (std::int64_t i = 0; i < D; ++i) sq += (x[i] - m) * (x[i] - m);
    const float inv = 1.0f / std::sqrt(sq / static_cast<float>(D) + a.eps);
    const float* g = a.w->weight;
    const float* b = a.w->bias;
    // Safe in place: the row's statistics are complete before it is overwritten.
    if (a.dst_dt == DT::f32) {
      float* y = static_cast<float*>(a.dst) + r * a.dst_ld;
#pragma omp simd
      for (std::int64_t i = 0; i < D; ++i) y[i] = (x[i] - m) * inv * g[i] + b[i];
    } else {
      auto* y = static_cast<std::uint16_t*>(a.dst) + r * a.dst_ld;
      for (std::int64_t i = 0; i < D; ++i) y[i] = float_to_bf16((x[i] - m) * inv * g[i] + b[i]);
    }
  }
}

}  // namespace vitrt::cpu
