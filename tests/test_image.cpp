// Image decoding errors and resize/crop geometry. Pixel agreement with PIL/torchvision is checked
// by tests/scripts/preprocess_check.py.
#include <gtest/gtest.h>

#include "test_util.h"
#include "vitrt/vitrt.h"

namespace vitrt {
namespace {

using test::error_of;

TEST(ImageDecode, RejectsGarbageAndTruncation) {
  const std::vector<std::uint8_t> junk = {'G', 'I', 'F', '8', '9', 'a', 0, 0};
  EXPECT_NE(error_of([&] { decode_image(junk, "x.gif"); }).find("x.gif: not a JPEG or PNG image"), std::string::npos);
  const std::vector<std::uint8_t> jpeg_head = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F'};
  EXPECT_NE(error_of([&] { decode_image(jpeg_head, "t.jpg"); }).find("t.jpg: corrupt JPEG"), std::string::npos);
  const std::vector<std::uint8_t> png_head = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  EXPECT_NE(error_of([&] { decode_image(png_head, "t.png"); }).find("t.png: corrupt PNG"), std::string::npos);
  EXPECT_NE(error_of([&] { load_image("/nonexistent/cat.jpg"); }).find("/nonexistent/cat.jpg: cannot open"), std::string::npos);
}

// A PNG whose header is valid and whose pixel data is not: libpng's error comes after the pixel buffers
// exist (found by the image fuzzer, which saw them leak before session 42's fix; fuzz/corpus/image).
TEST(ImageDecode, CorruptPixelDataAfterAValidHeader) {
  const std::string path = std::string(VITRT_FUZZ_CORPUS_DIR) + "/image/corrupt-idat.png";
  const std::string bytes = test::read_file(path);
  ASSERT_EQ(bytes.size(), 71u) << path;
  const std::vector<std::uint8_t> png(bytes.begin(), bytes.end());
  EXPECT_NE(error_of([&] { decode_image(png, "c.png"); }).find("c.png: corrupt PNG ("), std::string::npos);
}

TEST(ImageResize, ConstantImagesStayConstant) {
  Image img{37, 23, std::vector<std::uint8_t>(37 * 23 * 3)};
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i % 3 == 0 ? 200 : i % 3 == 1 ? 17 : 99);
  for (auto f : {Interpolation::bilinear, Interpolation::bicubic})
    for (auto [w, h] : std::vector<std::pair<int, int>>{{11, 5}, {80, 61}, {37, 9}}) {
      const Image r = resize(img, w, h, f);
      ASSERT_EQ(r.rgb.size(), static_cast<size_t>(w) * h * 3);
      for (size_t i = 0; i < r.rgb.size(); ++i) ASSERT_EQ(r.rgb[i], img.rgb[i % 3]) << w << "x" << h;
    }
}

TEST(ImageResize, ShorterSideAndCenterCrop) {
  Image img{300, 200, std::vector<std::uint8_t>(300 * 200 * 3, 7)};
  PreprocessConfig p;
  p.input_size = 224;
  p.crop_pct = 0.875;  // shorter side -> 256, longer int(256 * 300 / 200) = 384
  const Image out = resize_and_crop(img, p);
  EXPECT_EQ(out.width, 224);
  EXPECT_EQ(out.height, 224);
  EXPECT_NE(error_of([&] { center_crop(img, 301, 10); }).find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace vitrt
