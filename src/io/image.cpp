// PIL-exact antialiased resize for 8-bit RGB (Pillow's ImagingResample: coefficients in double,
// converted to 22-bit fixed point, horizontal pass first into an 8-bit image, then vertical), and the
// torchvision eval transform built on it.
#include <cmath>
#include <cstdint>

#include "core/check.h"
#include "core/resample.h"
#include "vitrt/image.h"

namespace vitrt {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

std::vector<std::int32_t> fixed_point(const ResampleCoeffs& c) {
  std::vector<std::int32_t> k(c.weight.size());
  for (size_t i = 0; i < k.size(); ++i) {
    const double v = c.weight[i] * (1 << kPrecisionBits);
    k[i] = static_cast<std::int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
  }
  return k;
}

inline std::uint8_t clip8(std::int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

Image resize_horizontal(const Image& src, int out_w, Interpolation filter) {
  const auto c = resample_coeffs(src.width, out_w, filter);
  const auto k = fixed_point(c);
  Image dst{out_w, src.height, std::vector<std::uint8_t>(static_cast<size_t>(out_w) * src.height * 3)};
  for (int y = 0; y < src.height; ++y) {
    const std::uint8_t* in = src.rgb.data() + static_cast<size_t>(y) * src.width * 3;
    std::uint8_t* out = dst.rgb.data() + static_cast<size_t>(y) * out_w * 3;
    for (int x = 0; x < out_w; ++x) {
      const std::int32_t* kk = &k[static_cast<size_t>(x) * c.ksize];
      const std::uint8_t* p = in + static_cast<size_t>(c.start[x]) * 3;
      std::int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int t = 0; t < c.count[x]; ++t) {
        s0 += p[3 * t] * kk[t];
        s1 += p[3 * t + 1] * kk[t];
        s2 += p[3 * t + 2] * kk[t];
      }
      out[3 * x] = clip8(s0), out[3 * x + 1] = clip8(s1), out[3 * x + 2] = clip8(s2);
    }
  }
  return dst;
}

Image resize_vertical(const Image& src, int out_h, Interpolation filter) {
  const auto c = resample_coeffs(src.height, out_h, filter);
  const auto k = fixed_point(c);
  const size_t row = static_cast<size_t>(src.width) * 3;
  Image dst{src.width, out_h, std::vector<std::uint8_t>(row * out_h)};
  for (int y = 0; y < out_h; ++y) {
    const std::int32_t* kk = &k[static_cast<size_t>(y) * c.ksize];
    std::uint8_t* out = dst.rgb.data() + static_cast<size_t>(y) * row;
    for (size_t i = 0; i < row; ++i) {
      std::int32_t s = 1 << (kPrecisionBits - 1);
      for (int t = 0; t < c.count[y]; ++t) s += src.rgb[static_cast<size_t>(c.start[y] + t) * row + i] * kk[t];
      out[i] = clip8(s);
    }
  }
  return dst;
}

}  // namespace

Image resize(const Image& src, int width, int height, Interpolation filter) {
  VITRT_CHECK(width > 0 && height > 0 && src.width > 0 && src.height > 0, "resize: bad size ", src.width, "x",
              src.height, " -> ", width, "x", height);
  Image out = src;
  if (width != src.width) out = resize_horizontal(out, width, filter);
  if (height != src.height) out = resize_vertical(out, height, filter);
  return out;
}

Image center_crop(const Image& src, int width, int height) {
  VITRT_CHECK(width <= src.width && height <= src.height, "center crop ", width, "x", height, " is larger than the ",
              src.width, "x", src.height, " image");
  // torchvision: int(round((size - crop) / 2.0)), Python rounding half to even.
  const int top = static_cast<int>(std::nearbyint((src.height - height) / 2.0));
  const int left = static_cast<int>(std::nearbyint((src.width - width) / 2.0));
  Image out{width, height, std::vector<std::uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (int y = 0; y < height; ++y) {
    const auto* in = src.rgb.data() + (static_cast<size_t>(top + y) * src.width + left) * 3;
    std::copy(in, in + static_cast<size_t>(width) * 3, out.rgb.data() + static_cast<size_t>(y) * width * 3);
  }
  return out;
}

Image resize_and_crop(const Image& src, const PreprocessConfig& cfg) {
  const int size = static_cast<int>(std::floor(cfg.input_size / cfg.crop_pct));
  int w = size, h = size;
  if (!cfg.squash) {
    // torchvision Resize(int): the shorter side becomes `size`, the longer int(size * long / short).
    const bool wide = src.width > src.height;
    const int shorter = wide ? src.height : src.width, longer = wide ? src.width : src.height;
    const int scaled = static_cast<int>(static_cast<double>(static_cast<std::int64_t>(size) * longer) / shorter);
    (wide ? w : h) = scaled;
  }
  return center_crop(resize(src, w, h, cfg.interpolation), cfg.input_size, cfg.input_size);
}

void preprocess(const Image& src, const PreprocessConfig& cfg, float* out) {
  const Image img = resize_and_crop(src, cfg);
  const size_t plane = static_cast<size_t>(cfg.input_size) * cfg.input_size;
  for (int ch = 0; ch < 3; ++ch)
    for (size_t i = 0; i < plane; ++i) {
      const float v = static_cast<float>(img.rgb[i * 3 + ch]) / 255.0f;
      out[ch * plane + i] = (v - cfg.mean[ch]) / cfg.std[ch];
    }
}

}  // namespace vitrt
