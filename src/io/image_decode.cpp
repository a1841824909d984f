// JPEG (libjpeg-turbo) and PNG (libpng) decoding to 8-bit RGB, converting as PIL's convert("RGB").
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/check.h"
#include "io/mapped_file.h"
#include "vitrt/image.h"

namespace vitrt {
namespace {

// PIL refuses images above twice its MAX_IMAGE_PIXELS as decompression bombs; so do we.
constexpr std::uint64_t kMaxPixels = 178956970;

void check_size(std::uint64_t w, std::uint64_t h, const std::string& name) {
  VITRT_CHECK(w > 0 && h > 0, name, ": image has zero size");
  VITRT_CHECK(w * h <= kMaxPixels, name, ": image of ", w, "x", h, " pixels exceeds the limit of ", kMaxPixels);
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings are not printed; a premature end of data fails the decode, as PIL does by default.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = true;
}

// PIL decodes CMYK JPEGs as Adobe-inverted ("CMYK;I") and converts with
// rgb = (255 - k') - c' * (255 - k') / 255, where x' = 255 - x.
inline std::uint8_t cmyk_channel(int c_raw, int k_raw) {
  const int c = 255 - c_raw, nk = k_raw;  // nk = 255 - (255 - k_raw)
  const int tmp = c * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// The libjpeg calls of decode_jpeg, into the caller's img and row. libjpeg's errors longjmp back to the
// setjmp here, so this function keeps no object with a destructor of its own and nothing it changes after
// the setjmp is read after the jump (such locals would be indeterminate): it returns false, with the
// message in err. A size over the limits throws instead.
bool read_jpeg(jpeg_decompress_struct& cinfo, JpegError& err, std::span<const std::uint8_t> bytes,
               const std::string& name, Image& img, std::vector<std::uint8_t>& row) {
  if (setjmp(err.jump)) return false;
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  check_size(cinfo.image_width, cinfo.image_height, name);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  const bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  img.width = static_cast<int>(cinfo.output_width);
  img.height = static_cast<int>(cinfo.output_height);
  const int comps = cinfo.output_components;
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  row.resize(static_cast<size_t>(img.width) * comps);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[1] = {row.data()};
    const auto y = cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, rows, 1);
    std::uint8_t* out = img.rgb.data() + static_cast<size_t>(y) * img.width * 3;
    for (int x = 0; x < img.width; ++x) {
      const std::uint8_t* p = row.data() + static_cast<size_t>(x) * comps;
      if (comps == 3) {
        out[3 * x] = p[0], out[3 * x + 1] = p[1], out[3 * x + 2] = p[2];
      } else if (comps == 1) {
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = p[0];
      } else {
        for (int ch = 0; ch < 3; ++ch) out[3 * x + ch] = cmyk_channel(p[ch], p[3]);
      }
    }
    if (err.truncated) break;
  }
  if (!err.truncated) jpeg_finish_decompress(&cinfo);
  return true;
}

Image decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name) {
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_on_error;
  err.mgr.emit_message = jpeg_on_message;
  // Destroyed on every way out, a throw included (safe before creation: cinfo.mem is null).
  const struct Destroy {
    jpeg_decompress_struct* c;
    ~Destroy() { jpeg_destroy_decompress(c); }
  } destroy{&cinfo};
  Image img;
  std::vector<std::uint8_t> row;
  const bool read = read_jpeg(cinfo, err, bytes, name, img, row);
  VITRT_CHECK(read, name, ": corrupt JPEG (", err.message, ")");
  VITRT_CHECK(!err.truncated, name, ": truncated JPEG (premature end of data)");
  return img;
}

struct PngReader {
  std::span<const std::uint8_t> bytes;
  size_t pos = 0;
  char message[256] = {};
};

void png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->bytes.size() - r->pos) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(out, r->bytes.data() + r->pos, n);
  r->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof(r->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

// The libpng calls of decode_png, into the caller's img and rows; as read_jpeg: libpng's errors longjmp back
// here, and it returns false (the message in the reader). A size over the limits throws instead.
bool read_png(png_structp png, png_infop info, const std::string& name, Image& img,
              std::vector<png_bytep>& rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  const auto w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  check_size(w, h, name);
  const int color = png_get_color_type(png, info);
  // PIL: palettes expand to their colours (transparency ignored), 16-bit keeps the high byte,
  // alpha is dropped without compositing, grayscale is replicated.
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  VITRT_CHECK(png_get_rowbytes(png, info) == static_cast<size_t>(w) * 3, name, ": unexpected PNG row layout");
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.rgb.data() + static_cast<size_t>(y) * w * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  return true;
}

Image decode_png(std::span<const std::uint8_t> bytes, const std::string& name) {
  PngReader reader{bytes};
  struct Read {  // destroyed on every way out, a throw included
    png_structp png = nullptr;
    png_infop info = nullptr;
    ~Read() { png_destroy_read_struct(&png, &info, nullptr); }
  } r;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_on_error, png_on_warning);
  VITRT_CHECK(r.png, name, ": libpng initialisation failed");
  r.info = png_create_info_struct(r.png);
  VITRT_CHECK(r.info, name, ": libpng initialisation failed");
  png_set_read_fn(r.png, &reader, png_on_read);
  png_set_user_limits(r.png, 1u << 20, 1u << 20);
  Image img;
  std::vector<png_bytep> rows;
  const bool read = read_png(r.png, r.info, name, img, rows);
  VITRT_CHECK(read, name, ": corrupt PNG (", reader.message, ")");
  return img;
}

}  // namespace

Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name) {
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) return decode_jpeg(bytes, name);
  if (bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0) return decode_png(bytes, name);
  VITRT_FAIL(name, ": not a JPEG or PNG image");
}

Image load_image(const std::string& path) {
  MappedFile f(path);
  return decode_image(f.bytes(), path);
}

}  // namespace vitrt
