// safetensors: u64 little-endian header length, a JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data block the offsets point into.
#include <algorithm>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/tensor_file.h"

namespace vitrt {
namespace {

constexpr std::uint64_t kMaxHeader = 100u << 20;

DType parse_dtype(const std::string& s, const std::string& file, const std::string& name) {
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  if (s == "F64") return DType::f64;
  VITRT_FAIL(file, ": tensor '", name, "' has dtype ", s, "; expected F32, F16 or BF16");
}

std::uint64_t as_u64(const nlohmann::json& v, const std::string& file, const std::string& what) {
  VITRT_CHECK(v.is_number_unsigned(), file, ": ", what, " must be a non-negative integer, found ", v.dump());
  return v.get<std::uint64_t>();
}

}  // namespace

TensorFile parse_safetensors(std::span<const std::uint8_t> bytes, const std::string& file) {
  VITRT_CHECK(bytes.size() >= 8, file, ": too short for a safetensors file (", bytes.size(), " bytes)");
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[static_cast<size_t>(i)];
  VITRT_CHECK(header_len <= kMaxHeader, file, ": safetensors header length ", header_len,
              " exceeds the 100 MiB limit");
  VITRT_CHECK(header_len <= bytes.size() - 8, file, ": safetensors header length ", header_len,
              " runs past the end of the file (", bytes.size(), " bytes)");
  const char* hdr = reinterpret_cast<const char*>(bytes.data() + 8);
  auto data = bytes.subspan(8 + header_len);

  // nlohmann keeps the last of duplicate keys; a checkpoint with two tensors of one name is corrupt.
  std::set<std::string> seen;
  std::string duplicate;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hdr, hdr + header_len, cb);
  } catch (const nlohmann::json::exception& e) {
    VITRT_FAIL(file, ": safetensors header is not valid JSON (", e.what(), ")");
  }
  VITRT_CHECK(duplicate.empty(), file, ": tensor '", duplicate, "' appears twice in the header");
  VITRT_CHECK(header.is_object(), file, ": safetensors header is not a JSON object");

  TensorFile out;
  out.path = file;
  out.format = "safetensors";
  struct Range {
    std::uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      VITRT_CHECK(entry.is_object(), file, ": __metadata__ must be an object");
      for (auto& [k, v] : entry.items()) {
        VITRT_CHECK(v.is_string(), file, ": __metadata__ value for '", k, "' must be a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    VITRT_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                    entry.contains("data_offsets"),
                file, ": tensor '", name, "' needs dtype, shape and data_offsets");
    VITRT_CHECK(entry["dtype"].is_string(), file, ": tensor '", name, "': dtype must be a string");
    RawTensor t;
    t.name = name;
    t.dtype = parse_dtype(entry["dtype"].get<std::string>(), file, name);
    const auto& shape = entry["shape"];
    VITRT_CHECK(shape.is_array() && shape.size() <= 8, file, ": tensor '", name, "': bad shape ", shape.dump());
    for (const auto& d : shape) {
      auto v = as_u64(d, file, "dimension of '" + name + "'");
      VITRT_CHECK(v <= static_cast<std::uint64_t>(kMaxTensorElements), file, ": tensor '", name,
                  "': dimension ", v, " too large");
      t.shape.push_back(static_cast<std::int64_t>(v));
    }
    const auto n = checked_numel(t.shape, kMaxTensorElements, file + ": tensor '" + name + "'");
    const auto& offs = entry["data_offsets"];
    VITRT_CHECK(offs.is_array() && offs.size() == 2, file, ": tensor '", name, "': data_offsets must be [begin, end]");
    const auto begin = as_u64(offs[0], file, "data_offsets of '" + name + "'");
    const auto end = as_u64(offs[1], file, "data_offsets of '" + name + "'");
    VITRT_CHECK(begin <= end && end <= data.size(), file, ": tensor '", name, "': data_offsets [", begin, ", ",
                end, "] outside the ", data.size(), "-byte data block");
    const auto expected = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(dtype_size(t.dtype));
    VITRT_CHECK(end - begin == expected, file, ": tensor '", name, "' ", shape_str(t.shape), " ",
                dtype_name(t.dtype), " needs ", expected, " bytes, data_offsets give ", end - begin);
    t.data = data.subspan(begin, end - begin);
    out.tensors.push_back(std::move(t));
    ranges.push_back({begin, end, out.tensors.size() - 1});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    VITRT_CHECK(ranges[i].begin >= ranges[i - 1].end, file, ": tensors '", out.tensors[ranges[i - 1].index].name, "' and '",
                out.tensors[ranges[i].index].name, "' overlap in the data block");
  }
  return out;
}

}  // namespace vitrt
