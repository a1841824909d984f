// .npy: "\x93NUMPY", version (major, minor), header length (u16 for v1, u32 for v2/v3), then a Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces.
#include "io/npy.h"

#include <cstring>
#include <fstream>

#include "core/check.h"
#include "io/mapped_file.h"

namespace vitrt {
namespace {

// Returns the text after `key':` up to the matching delimiter, or empty when absent.
std::string dict_value(const std::string& h, const std::string& key) {
  auto k = h.find("'" + key + "'");
  if (k == std::string::npos) return {};
  auto colon = h.find(':', k);
  if (colon == std::string::npos) return {};
  size_t i = colon + 1;
  while (i < h.size() && h[i] == ' ') ++i;
  if (i >= h.size()) return {};
  if (h[i] == '(') {
    auto close = h.find(')', i);
    return close == std::string::npos ? std::string{} : h.substr(i, close - i + 1);
  }
  if (h[i] == '\'') {
    auto close = h.find('\'', i + 1);
    return close == std::string::npos ? std::string{} : h.substr(i + 1, close - i - 1);
  }
  size_t j = i;
  while (j < h.size() && h[j] != ',' && h[j] != '}') ++j;
  return h.substr(i, j - i);
}

Shape parse_shape(const std::string& tuple, const std::string& where) {
  VITRT_CHECK(tuple.size() >= 2 && tuple.front() == '(' && tuple.back() == ')', where, ": bad shape ", tuple);
  Shape shape;
  size_t i = 1;
  while (i < tuple.size() - 1) {
    while (i < tuple.size() - 1 && (tuple[i] == ' ' || tuple[i] == ',')) ++i;
    if (i >= tuple.size() - 1) break;
    std::int64_t v = 0;
    size_t digits = 0;
    while (i < tuple.size() - 1 && tuple[i] >= '0' && tuple[i] <= '9') {
      VITRT_CHECK(v <= kMaxTensorElements, where, ": dimension too large in shape ", tuple);
      v = v * 10 + (tuple[i] - '0');
      ++i;
      ++digits;
    }
    VITRT_CHECK(digits > 0 && shape.size() < 8, where, ": bad shape ", tuple);
    shape.push_back(v);
  }
  return shape;
}

}  // namespace

RawTensor parse_npy(std::span<const std::uint8_t> bytes, const std::string& name, const std::string& file) {
  const std::string where = name.empty() ? file : file + ": " + name;
  VITRT_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, where,
              ": not a .npy array (bad magic)");
  const int major = bytes[6];
  VITRT_CHECK(major >= 1 && major <= 3, where, ": unsupported .npy version ", major);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = bytes[8] | (static_cast<size_t>(bytes[9]) << 8);
    header_start = 10;
  } else {
    VITRT_CHECK(bytes.size() >= 12, where, ": truncated .npy header");
    header_len = bytes[8] | (static_cast<size_t>(bytes[9]) << 8) | (static_cast<size_t>(bytes[10]) << 16) |
                 (static_cast<size_t>(bytes[11]) << 24);
    header_start = 12;
  }
  VITRT_CHECK(header_len <= bytes.size() - header_start, where, ": .npy header length ", header_len,
              " runs past the end (", bytes.size(), " bytes)");
  std::string h(reinterpret_cast<const char*>(bytes.data() + header_start), header_len);
  const auto descr = dict_value(h, "descr");
  const auto fortran = dict_value(h, "fortran_order");
  const auto shape_text = dict_value(h, "shape");
  VITRT_CHECK(!descr.empty() && !fortran.empty() && !shape_text.empty(), where,
              ": .npy header lacks descr, fortran_order or shape: ", h);
  RawTensor t;
  t.name = name;
  if (descr == "<f4") t.dtype = DType::f32;
  else if (descr == "<f2") t.dtype = DType::f16;
  else if (descr == "<f8") t.dtype = DType::f64;
  else VITRT_FAIL(where, ": .npy dtype '", descr, "' is not supported; expected <f4, <f2 or <f8");
  VITRT_CHECK(fortran == "False", where, ": Fortran-order .npy arrays are not supported");
  t.shape = parse_shape(shape_text, where);
  const auto n = checked_numel(t.shape, kMaxTensorElements, where);
  const auto need = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(dtype_size(t.dtype));
  const auto have = bytes.size() - header_start - header_len;
  VITRT_CHECK(need == have, where, ": .npy ", shape_str(t.shape), " ", dtype_name(t.dtype), " needs ", need,
              " data bytes, found ", have);
  t.data = bytes.subspan(header_start + header_len);
  return t;
}

HostTensor read_npy(const std::string& path) {
  MappedFile f(path);
  auto raw = parse_npy(f.bytes(), "", path);
  HostTensor t;
  t.shape = raw.shape;
  t.data.resize(static_cast<size_t>(raw.numel()));
  convert_to_f32(raw.dtype, raw.data.data(), raw.numel(), t.data.data());
  return t;
}

void write_npy(const std::string& path, const Shape& shape, const float* data) {
  std::string tuple;
  for (size_t i = 0; i < shape.size(); ++i) tuple += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) tuple += ",";
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + tuple + "), }";
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::ofstream out(path, std::ios::binary);
  VITRT_CHECK(out.good(), path, ": cannot open for writing");
  const auto len = static_cast<std::uint16_t>(dict.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out << dict;
  const auto n = checked_numel(shape, kMaxTensorElements, path);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * 4));
  VITRT_CHECK(out.good(), path, ": write failed");
}

}  // namespace vitrt
