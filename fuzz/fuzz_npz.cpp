// libFuzzer target for the npz parser: any input must either parse or throw vitrt::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/tensor_file.h"
#include "vitrt/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)vitrt::parse_npz(std::span<const std::uint8_t>(data, size), "fuzz");
  } catch (const vitrt::Error&) {
  }
  return 0;
}
