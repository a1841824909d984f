// vitrt reports every failure as a vitrt::Error carrying a one-line message that names what was
// expected and what was found (file, tensor, shape, dtype).
//
//   try { auto model = vitrt::Model::load("vit.safetensors"); }
//   catch (const vitrt::Error& e) { std::cerr << e.what() << "\n"; }
#pragma once

#include <stdexcept>
#include <string>

namespace vitrt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace vitrt
