#include "core/tensor.h"

#include <cstring>
#include <limits>
#include <sstream>

#include "core/check.h"
#include "core/half.h"

namespace vitrt {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

std::int64_t checked_numel(const Shape& s, std::int64_t limit, const std::string& what) {
  std::int64_t n = 1;
  for (auto d : s) {
    VITRT_CHECK(d >= 0, what, ": negative dimension in shape ", shape_str(s));
    VITRT_CHECK(d == 0 || n <= limit / d, what, ": shape ", shape_str(s), " is too large");
    n *= d;
  }
  return n;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::f64: return "float64";
  }
  return "?";
}

int dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::f64: return 8;
  }
  return 0;
}

void convert_to_f32(DType dtype, const void* src, std::int64_t count, float* dst) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  const size_t n = static_cast<size_t>(count);
  switch (dtype) {
    case DType::f32:
      std::memcpy(dst, bytes, n * 4);
      return;
    case DType::f64:
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, bytes + 8 * i, 8);
        dst[i] = static_cast<float>(v);
      }
      return;
    case DType::f16:
    case DType::bf16:
      for (size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = dtype == DType::f16 ? fp16_to_float(h) : bf16_to_float(h);
      }
      return;
  }
}

}  // namespace vitrt
