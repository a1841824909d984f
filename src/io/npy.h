// NumPy .npy parsing and writing (little-endian float32/float16/float64, C order).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_file.h"

namespace vitrt {

// Parses one .npy image; the returned tensor's data points into `bytes`.
RawTensor parse_npy(std::span<const std::uint8_t> bytes, const std::string& name, const std::string& file);

// Reads a whole .npy file as fp32.
HostTensor read_npy(const std::string& path);
// Writes a float32 C-order .npy file.
void write_npy(const std::string& path, const Shape& shape, const float* data);

}  // namespace vitrt
