// Image decoding (JPEG, PNG) and the eval preprocessing timm applies to PIL images.
//
//   vitrt::Image img = vitrt::load_image("cat.jpg");
//   std::vector<float> x(3 * 224 * 224);
//   vitrt::preprocess(img, model->config().preprocess, x.data());
//
// Resizing reproduces PIL's antialiased bilinear/bicubic filters (8-bit fixed point, horizontal
// pass first), so results match torchvision on PIL images.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vitrt/config.h"

namespace vitrt {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;  // height * width * 3, row-major, interleaved RGB
};

// Decodes JPEG or PNG (detected from the bytes) and converts to RGB: grayscale is replicated,
// palettes expanded, alpha dropped (as PIL's convert("RGB")), CMYK JPEGs converted as PIL does.
Image load_image(const std::string& path);
Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name);

Image resize(const Image& src, int width, int height, Interpolation filter);
// Crops a (width x height) window at the center, offsets rounded as torchvision's CenterCrop.
Image center_crop(const Image& src, int width, int height);
// Resize the shorter side to floor(input_size / crop_pct) (as torchvision Resize(int)), center crop.
Image resize_and_crop(const Image& src, const PreprocessConfig& cfg);
// Full eval transform into out[3][input_size][input_size], normalized with cfg.mean/std.
void preprocess(const Image& src, const PreprocessConfig& cfg, float* out);

}  // namespace vitrt
