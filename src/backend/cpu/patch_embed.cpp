#include "backend/cpu/patch_embed.h"

#include <cstdint>
#include <cstring>

#include "core/half.h"

namespace vitrt::cpu {

void patchify(const PatchifyArgs& a) {
  const int g = a.img / a.patch, P = a.patch, C = a.chans;
  const std::int64_t K = static_cast<std::int64_t>(C) * P * P;
  const std::int64_t patches = static_cast<std::int64_t>(a.batch) * g * g;
#pragma omp parallel for schedule(static)
  for (std::int64_t row = 0; row < patches; ++row) {
    const std::int64_t b = row / (g * g);
    const int py = static_cast<int>(row % (g * g)) / g, px = static_cast<int>(row % (g * g)) % g;
    for (int c = 0; c < C; ++c)
      for (int ky = 0; ky < P; ++ky) {
        const std::int64_t k0 = (static_cast<std::int64_t>(c) * P + ky) * P;
        const float* s = a.images + ((b * C + c) * a.img + py * P + ky) * a.img + px * P;
        if (a.dt == DT::f32) {
          float* d = static_cast<float*>(a.cols) + row * K + k0;
          if (b < a.valid) std::memcpy(d, s, sizeof(float) * static_cast<std::size_t>(P));
          else std::memset(d, 0, sizeof(float) * static_cast<std::size_t>(P));
        } else {
          auto* d = static_cast<std::uint16_t*>(a.cols) + row * K + k0;
          for (int kx = 0; kx < P; ++kx) d[kx] = b < a.valid ? float_to_bf16(s[kx]) : 0;
        }
      }
  }
}

void tokens(const TokensArgs& a) {
  const int N = a.num_prefix + a.patches;
  const std::size_t D = static_cast<std::size_t>(a.dim);
#pragma omp parallel for schedule(static)
  for (std::int64_t bt = 0; bt < static_cast<std::int64_t>(a.batch) * N; ++bt) {
    const std::int64_t b = bt / N;
    const int t = static_cast<int>(bt % N);
    const std::size_t row = static_cast<std::size_t>(bt) * D;
    const float* src = t < a.num_prefix ? a.prefix + static_cast<std::size_t>(t) * D
                                        : a.patch_rows + (static_cast<std::size_t>(b) * a.patches + (t - a.num_prefix)) * D;
    // Prefix tokens get no position when the embedding covers patches only (no_embed_class).
    const float* pos = a.pos_covers_prefix ? a.pos + static_cast<std::size_t>(t) * D
                       : t >= a.num_prefix ? a.pos + static_cast<std::size_t>(t - a.num_prefix) * D
                                           : nullptr;
    if (a.x_dt == DT::bf16) {
      auto* x = static_cast<std::uint16_t*>(a.x) + row;
      for (std::size_t i = 0; i < D; ++i) x[i] = float_to_bf16(src[i] + (pos ? pos[i] : 0.0f));
    } else {
      float* x = static_cast<float*>(a.x) + row;
      for (std::size_t i = 0; i < D; ++i) x[i] = src[i] + (pos ? pos[i] : 0.0f);
    }
  }
}

}  // namespace vitrt::cpu
