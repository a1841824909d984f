// Host tensors used while loading weights, and shape helpers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vitrt {

using Shape = std::vector<std::int64_t>;

std::string shape_str(const Shape& s);  // "[768, 3, 16, 16]"
// Product of dims; throws when a dim is negative or the product overflows `limit`.
std::int64_t checked_numel(const Shape& s, std::int64_t limit, const std::string& what);

enum class DType { f32, f16, bf16, f64 };
const char* dtype_name(DType t);
int dtype_size(DType t);

// An fp32 tensor owned on the host.
struct HostTensor {
  Shape shape;
  std::vector<float> data;
  std::int64_t numel() const { return static_cast<std::int64_t>(data.size()); }
};

// Converts `count` elements of `dtype` at `src` (little-endian, any alignment) to fp32.
void convert_to_f32(DType dtype, const void* src, std::int64_t count, float* dst);

}  // namespace vitrt
