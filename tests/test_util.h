// Shared helpers for the tests: random data, poisoning, normalized errors.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vitrt::test {

// Runs f and returns the vitrt::Error message it throws, or "<no error>".
std::string error_of(const std::function<void()>& f);

std::vector<float> randn(std::size_t n, std::uint64_t seed, float scale = 1.0f);
// max |a - b| / max |b|; +inf when a holds a NaN.
double max_rel_error(const float* a, const double* ref, std::size_t n);
double max_rel_error(const float* a, const float* ref, std::size_t n);
std::vector<std::uint16_t> to_bf16(const std::vector<float>& v);
std::vector<float> from_bf16(const std::vector<std::uint16_t>& v);
std::vector<std::uint16_t> to_fp16(const std::vector<float>& v);
std::vector<float> from_fp16(const std::vector<std::uint16_t>& v);
// Skips the calling test (with a visible message) when no CUDA GPU can be used.
bool have_gpu();
bool cpu_supports_bf16();
// tests/golden, or $VITRT_GOLDEN_DIR when set (a copy of the tree at another path).
std::string golden_dir();
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

}  // namespace vitrt::test
