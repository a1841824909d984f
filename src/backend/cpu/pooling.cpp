#include "backend/cpu/pooling.h"

#include <cstddef>
#include <cstdint>

#include "core/half.h"

namespace vitrt::cpu {

void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst) {
  const std::size_t D = static_cast<std::size_t>(dim);
  const auto at = [&](std::size_t k) {
    return x_dt == DT::bf16 ? bf16_to_float(static_cast<const std::uint16_t*>(x)[k]) : static_cast<const float*>(x)[k];
  };
  for (int b = 0; b < batch; ++b) {
    const std::size_t base = (static_cast<std::size_t>(b) * tokens + first) * D;
    float* d = dst + static_cast<std::size_t>(b) * D;
    for (std::size_t i = 0; i < D; ++i) {
      double s = 0.0;
      for (int t = 0; t < count; ++t) s += at(base + static_cast<std::size_t>(t) * D + i);
      d[i] = static_cast<float>(s / count);
    }
  }
}

void average(const float* a, const float* b, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = 0.5f * (a[i] + b[i]);
}

}  // namespace vitrt::cpu
