// Raw tensors parsed from a checkpoint file, before any renaming or conversion.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace vitrt {

struct RawTensor {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::span<const std::uint8_t> data;  // exactly numel * dtype_size bytes
  std::int64_t numel() const;
};

struct TensorFile {
  std::string path;
  std::string format;  // "safetensors" or "npz"
  std::vector<RawTensor> tensors;
  std::map<std::string, std::string> metadata;
  // Keep the bytes the spans point into alive.
  std::shared_ptr<MappedFile> mapping;
  std::vector<std::vector<std::uint8_t>> owned;

  const RawTensor* find(const std::string& name) const;
};

// Upper bound on elements of one tensor: far above any ViT, far below size_t overflow.
inline constexpr std::int64_t kMaxTensorElements = std::int64_t{1} << 40;

// Parsers take the whole file's bytes; `file` is used in messages. Every length, offset and size is
// checked against the buffer before use.
TensorFile parse_safetensors(std::span<const std::uint8_t> bytes, const std::string& file);
TensorFile parse_npz(std::span<const std::uint8_t> bytes, const std::string& file);

// Maps the file and dispatches on its magic bytes.
TensorFile open_tensor_file(const std::string& path);

}  // namespace vitrt
