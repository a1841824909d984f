#include "test_util.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "backend/backend.h"
#include "core/half.h"
#include "vitrt/error.h"

namespace vitrt::test {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::vector<float> randn(std::size_t n, std::uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

template <typename R>
double max_rel(const float* a, const R* ref, std::size_t n) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - static_cast<double>(ref[i])));
    den = std::max(den, std::fabs(static_cast<double>(ref[i])));
  }
  return den > 0 ? num / den : num;
}

double max_rel_error(const float* a, const double* ref, std::size_t n) { return max_rel(a, ref, n); }
double max_rel_error(const float* a, const float* ref, std::size_t n) { return max_rel(a, ref, n); }

std::vector<std::uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<std::uint16_t> o(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) o[i] = float_to_bf16(v[i]);
  return o;
}

std::vector<float> from_bf16(const std::vector<std::uint16_t>& v) {
  std::vector<float> o(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_float(v[i]);
  return o;
}

std::vector<std::uint16_t> to_fp16(const std::vector<float>& v) {
  std::vector<std::uint16_t> o(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) o[i] = float_to_fp16(v[i]);
  return o;
}

std::vector<float> from_fp16(const std::vector<std::uint16_t>& v) {
  std::vector<float> o(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) o[i] = fp16_to_float(v[i]);
  return o;
}

std::string golden_dir() {
  const char* env = std::getenv("VITRT_GOLDEN_DIR");
  return env ? env : VITRT_GOLDEN_DIR;
}

bool have_gpu() { return cuda_device_count() > 0; }

bool cpu_supports_bf16() {
  auto be = make_cpu_backend(1);
  set_log_handler([](std::string_view) {});
  const bool ok = be->resolve_precision(Precision::bf16) == Precision::bf16;
  set_log_handler(nullptr);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

}  // namespace vitrt::test
