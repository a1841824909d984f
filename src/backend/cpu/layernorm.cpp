#include "backend/cpu/layernorm.h"

#include <cmath>
#include <cstdint>

#include "core/half.h"

namespace vitrt::cpu {

void layernorm(const LayerNormArgs& a) {
  const std::int64_t D = a.dim;
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const float* x = a.src + r * a.src_ld;
    double sum = 0.0;
    for (std::int64_t i = 0; i < D; ++i) sum += x[i];
    const double mean = sum / static_cast<double>(D);
    double sq = 0.0;
    for (std::int64_t i = 0; i < D; ++i) {
      const double d = x[i] - mean;
      sq += d * d;
    }
    const auto m = static_cast<float>(mean);
    const auto inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(D) + a.eps));
    const float* g = a.w->weight;
    const float* b = a.w->bias;
    // Safe in place: the row's statistics are complete before it is overwritten.
    if (a.dst_dt == DT::f32) {
      float* y = static_cast<float*>(a.dst) + r * a.dst_ld;
      for (std::int64_t i = 0; i < D; ++i) y[i] = (x[i] - m) * inv * g[i] + b[i];
    } else {
      auto* y = static_cast<std::uint16_t*>(a.dst) + r * a.dst_ld;
      for (std::int64_t i = 0; i < D; ++i) y[i] = float_to_bf16((x[i] - m) * inv * g[i] + b[i]);
    }
  }
}

}  // namespace vitrt::cpu
