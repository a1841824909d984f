// libFuzzer target for image decoding and preprocessing: any input must either decode or throw
// vitrt::Error; a decoded image goes through timm's eval resize, crop and normalization.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vitrt/config.h"
#include "vitrt/error.h"
#include "vitrt/image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const vitrt::Image img = vitrt::decode_image(std::span<const std::uint8_t>(data, size), "fuzz");
    vitrt::PreprocessConfig cfg;
    cfg.input_size = 32;  // small: the decode is what is under test
    std::vector<float> out(3 * 32 * 32);
    vitrt::preprocess(img, cfg, out.data());
  } catch (const vitrt::Error&) {
  }
  return 0;
}
