// One table-driven test per op across backends and precisions, against float64 references at odd
// shapes (197 and 577 tokens, head dims 64 and 80, batch 3), with fresh random data and outputs
// poisoned with NaN before every run.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#ifdef VITRT_HAVE_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/activation.cuh"
#include "backend/cuda/attention.cuh"
#include "backend/cuda/gemm_small.cuh"
#include "backend/cuda/gemm_tf32.cuh"
#include "backend/cuda/gemm_ws.cuh"
#include "backend/cuda/tuning_fill.cuh"
#endif
#include "core/half.h"
#include "test_util.h"
#include "vitrt/error.h"

namespace vitrt {
namespace {

using test::randn;

#ifdef VITRT_HAVE_CUDA
// Device 0's compute capability (major * 10 + minor), and its SM count through `sm_count`; throws (and
// so fails the test) if the properties cannot be read.
int device0_arch(int* sm_count = nullptr) {
  cudaDeviceProp props{};
  const cudaError_t e = cudaGetDeviceProperties(&props, 0);
  if (e != cudaSuccess) throw std::runtime_error(std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(e));
  if (sm_count) *sm_count = props.multiProcessorCount;
  return props.major * 10 + props.minor;
}
#endif

struct BackendCase {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  Precision precision;
};

void PrintTo(const BackendCase& c, std::ostream* os) { *os << c.name; }

std::vector<BackendCase> backends() {
  std::vector<BackendCase> b = {{"cpu_fp32", [] { return make_cpu_backend(0); }, Precision::fp32},
                                {"cpu_bf16", [] { return make_cpu_backend(0); }, Precision::bf16}};
#ifdef VITRT_HAVE_CUDA
  for (auto [name, p] : {std::pair{"cuda_fp32", Precision::fp32}, std::pair{"cuda_tf32", Precision::tf32},
                         std::pair{"cuda_fp16", Precision::fp16}, std::pair{"cuda_bf16", Precision::bf16}})
    b.push_back({name, [] { return make_cuda_backend(0, nullptr, true, "off"); }, p});
#endif
  return b;
}

// Normalized max error allowed per precision (outputs rounded to 16 bits dominate there).
double tolerance(Precision p) {
  switch (p) {
    case Precision::fp32: return 2e-5;
    case Precision::tf32: return 3e-3;
    case Precision::fp16: return 5e-3;
    case Precision::bf16: return 2e-2;
  }
  return 0;
}

// An epilogue's activation in float64: timm's exact GELU, or QuickGELU; none leaves s as it is.
double activation_reference(Epilogue e, double s) {
  if (e == Epilogue::gelu_erf) return 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
  if (e == Epilogue::quick_gelu) return s / (1.0 + std::exp(-1.702 * s));
  return s;
}

// act(X W^T + b) (+ resid) in float64: X is rows x in with row stride ldx, W out x in; resid (rows x out) is
// added when given.
std::vector<double> linear_reference(const std::vector<float>& x, std::int64_t rows, int in, std::int64_t ldx,
                                     const std::vector<float>& w, const std::vector<float>& b, Epilogue e,
                                     const std::vector<float>* resid) {
  const int out = static_cast<int>(b.size());
  std::vector<double> ref(static_cast<size_t>(rows) * out);
  for (std::int64_t r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      double s = b[o];
      for (int k = 0; k < in; ++k)
        s += static_cast<double>(x[static_cast<size_t>(r * ldx + k)]) * w[static_cast<size_t>(o) * in + k];
      s = activation_reference(e, s);
      if (resid) s += (*resid)[static_cast<size_t>(r) * out + o];
      ref[static_cast<size_t>(r) * out + o] = s;
    }
  return ref;
}

// The rows x out elements of an output read back with row stride ldd (rows + 1 rows were allocated,
// poisoned with NaN), and in `outside` how many elements around them (padding columns, the row past the
// end) are no longer NaN. (The CUDA tests' only.)
[[maybe_unused]] std::vector<float> output_inside(const std::vector<float>& all, std::int64_t rows, int out, std::int64_t ldd,
                                 std::size_t& outside) {
  std::vector<float> y(static_cast<size_t>(rows) * out);
  outside = 0;
  for (std::int64_t r = 0; r <= rows; ++r)
    for (std::int64_t col = 0; col < ldd; ++col) {
      const float e = all[r * ldd + col];
      if (r < rows && col < out) y[r * out + col] = e;
      else outside += !std::isnan(e);
    }
  return y;
}

// A backend buffer filled from host floats in `dt`, read back as floats.
class Buffer {
 public:
  Buffer(Backend& be, std::size_t n, DT dt) : be_(be), n_(n), dt_(dt), p_(be.allocate(n * dt_size(dt))) {}
  ~Buffer() { be_.release(p_); }
  void set(const std::vector<float>& v) {
    if (dt_ == DT::f32) {
      be_.upload(p_, v.data(), n_ * 4);
    } else {
      auto h = dt_ == DT::bf16 ? test::to_bf16(v) : test::to_fp16(v);
      be_.upload(p_, h.data(), n_ * 2);
    }
  }
  void poison() { set(std::vector<float>(n_, std::numeric_limits<float>::quiet_NaN())); }
  std::vector<float> get() const {
    if (dt_ == DT::f32) {
      std::vector<float> v(n_);
      be_.download(v.data(), p_, n_ * 4);
      return v;
    }
    std::vector<std::uint16_t> h(n_);
    be_.download(h.data(), p_, n_ * 2);
    return dt_ == DT::bf16 ? test::from_bf16(h) : test::from_fp16(h);
  }
  // The values the backend really sees (rounded to dt).
  std::vector<float> rounded(const std::vector<float>& v) const {
    if (dt_ == DT::f32) return v;
    return dt_ == DT::bf16 ? test::from_bf16(test::to_bf16(v)) : test::from_fp16(test::to_fp16(v));
  }
  void* data() const { return p_; }
  float* f32() const { return static_cast<float*>(p_); }

 private:
  Backend& be_;
  std::size_t n_;
  DT dt_;
  void* p_;
};

// Plans one op call (batch key 1) then replays it.
template <typename F>
void plan_and_run(Backend& be, F&& op) {
  be.begin_plan(1);
  op();
  be.end_plan();
  be.begin_run(1);
  op();
  be.end_run();
}

// softmax(Q K^T / sqrt(d)) V in float64 from the qkv layout [B, N, 3, H, D] into [B, N, H * D].
std::vector<double> attention_reference(const std::vector<float>& q, int B, int tokens, int heads, int head_dim) {
  const int E = heads * head_dim;
  std::vector<double> ref(static_cast<size_t>(B) * tokens * E), p(tokens);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  auto at = [&](int b, int t, int s, int h, int d) { return static_cast<double>(q[((static_cast<size_t>(b) * tokens + t) * 3 + s) * E + h * head_dim + d]); };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < tokens; ++i) {
        double mx = -1e300, sum = 0;
        for (int j = 0; j < tokens; ++j) {
          double s = 0;
          for (int d = 0; d < head_dim; ++d) s += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        for (int j = 0; j < tokens; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int d = 0; d < head_dim; ++d) {
          double o = 0;
          for (int j = 0; j < tokens; ++j) o += p[j] / sum * at(b, j, 2, h, d);
          ref[(static_cast<size_t>(b) * tokens + i) * E + h * head_dim + d] = o;
        }
      }
  return ref;
}

class OpTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    if (GetParam().name.starts_with("cuda") && !test::have_gpu()) {
      GTEST_SKIP() << GetParam().name << ": no CUDA GPU on this machine";
    }
    fresh();
    if (be_->resolve_precision(GetParam().precision) != GetParam().precision) {
      GTEST_SKIP() << GetParam().name << ": precision not supported on this machine";
    }
  }
  // A new backend per case: backends cache weights by address and size scratch from the first plan.
  void fresh() {
    be_ = GetParam().make();
    set_log_handler([](std::string_view) {});
    be_->resolve_precision(GetParam().precision);
    set_log_handler(nullptr);
  }
  std::unique_ptr<Backend> be_;
};

struct LinearCase {
  std::int64_t rows;
  int in, out;
  Epilogue epi;
  bool accumulate;
  bool resid16 = false;  // accumulate into a residual in the activation type (16-bit sessions)
};

TEST_P(OpTest, Linear) {
  const DT adt = be_->act_dt();
  std::uint64_t seed = 1;
  for (const LinearCase& c : std::vector<LinearCase>{{3 * 197, 64, 80, Epilogue::none, false},
                                                     {3 * 577, 80, 240, Epilogue::gelu_erf, false},
                                                     {3 * 197, 768, 96, Epilogue::quick_gelu, false},
                                                     {3 * 197, 64, 75, Epilogue::quick_gelu, false},
                                                     {3 * 197, 96, 64, Epilogue::none, true},
                                                     {3 * 197, 96, 64, Epilogue::none, true, true},
                                                     {1, 80, 1000, Epilogue::none, false},
                                                     // shapes the small-batch GEMM takes (in plans of batch 8 up)
                                                     {197, 768, 384, Epilogue::gelu_erf, false},
                                                     {3 * 197, 128, 192, Epilogue::none, true},
                                                     {5, 256, 128, Epilogue::none, true, true}}) {
    SCOPED_TRACE(::testing::Message() << "rows " << c.rows << " in " << c.in << " out " << c.out);
    fresh();
    const auto w = randn(static_cast<size_t>(c.in) * c.out, seed++, 1.0f / std::sqrt(static_cast<float>(c.in)));
    const auto b = randn(c.out, seed++, 0.1f);
    LinearWeights lw{w.data(), b.data(), c.out, c.in};
    const DT dst_dt = c.accumulate && !c.resid16 ? DT::f32 : adt;
    Buffer src(*be_, c.rows * c.in, adt), dst(*be_, c.rows * c.out, dst_dt);
    const auto x = src.rounded(randn(c.rows * c.in, seed++));
    const auto resid = dst.rounded(randn(c.rows * c.out, seed++));
    src.set(x);
    if (c.accumulate) dst.set(resid);
    else dst.poison();
    // The backend may round weights to its precision; the reference uses them as given.
    const auto wr = src.rounded(w);
    LinearArgs a{&lw, c.rows, src.data(), c.in, adt, dst.data(), c.out, dst_dt, c.epi, c.accumulate};
    plan_and_run(*be_, [&] { be_->linear(a); });
    const auto ref = linear_reference(x, c.rows, c.in, c.in, wr, b, c.epi, c.accumulate ? &resid : nullptr);
    const auto y = dst.get();
    EXPECT_LE(test::max_rel_error(y.data(), ref.data(), ref.size()), tolerance(GetParam().precision));
  }
}

// GEMMs of a few rows. On CUDA our gemv kernel takes fp32 GEMMs kept in full fp32 (the classifier heads) up
// to 16 rows, and 16-bit ones (the last block's class-token GEMMs) with the activation and the residual in
// its epilogue up to VITRT_GEMV_ROWS rows (4 by default; the 8- and 16-row cases reach it with 16). Cases:
// 16-byte and element-wise loads (in not a multiple of 4 or 8, padded rows), rows of W past the part loaded
// before the wait (1,028 / 2,056 fp32 and 4,112 / 2,050 16-bit columns), both residual types, and shapes it
// does not take (17 rows; X over its shared memory). full: fp32 X, output and GEMM in every session; else
// X in the session's activation type.
TEST_P(OpTest, FewRowsLinear) {
  const DT adt = be_->act_dt();
  std::uint64_t seed = 700;
  struct Case {
    bool full;
    std::int64_t rows;
    int in, out;
    Epilogue epi;
    bool accumulate;
    bool resid16;
    int pad;  // extra elements per row of X
  };
  const Epilogue none = Epilogue::none, gelu = Epilogue::gelu_erf, quick = Epilogue::quick_gelu;
  for (const Case& c : std::vector<Case>{{true, 1, 768, 1000, none, false, false, 0},
                                         {true, 3, 100, 37, none, false, false, 0},
                                         {true, 8, 1028, 64, none, true, false, 0},
                                         {true, 16, 768, 1000, none, false, false, 4},
                                         {true, 5, 768, 9, none, true, false, 0},
                                         {true, 2, 1030, 10, none, false, false, 2},
                                         {true, 2, 2056, 2048, none, true, false, 0},
                                         {true, 17, 64, 33, none, false, false, 0},
                                         {false, 1, 768, 3072, gelu, false, false, 0},
                                         {false, 1, 3072, 768, none, true, false, 0},
                                         {false, 4, 4104, 64, none, true, false, 0},
                                         {false, 4, 1024, 100, quick, false, false, 8},
                                         {false, 8, 1024, 100, none, true, true, 0},
                                         {false, 16, 768, 33, gelu, false, false, 0},
                                         {false, 3, 100, 37, none, true, true, 0},
                                         {false, 2, 1030, 10, none, false, false, 2},
                                         {false, 2, 4112, 2048, none, true, false, 0},
                                         {false, 1, 2050, 2048, gelu, false, false, 0},
                                         {false, 17, 64, 40, gelu, false, false, 0},
                                         {false, 16, 4096, 24, none, true, false, 0}}) {
    SCOPED_TRACE(::testing::Message() << (c.full ? "full fp32, " : "") << "rows " << c.rows << " in " << c.in
                                      << " out " << c.out << " pad " << c.pad);
    fresh();
    const auto w =
        randn(static_cast<size_t>(c.in) * c.out, seed++, 1.0f / std::sqrt(static_cast<float>(c.in)));
    const auto b = randn(c.out, seed++, 0.1f);
    LinearWeights lw{w.data(), b.data(), c.out, c.in};
    const DT src_dt = c.full ? DT::f32 : adt;
    const DT dst_dt = c.full || (c.accumulate && !c.resid16) ? DT::f32 : adt;
    const std::int64_t ldx = c.in + c.pad;
    Buffer src(*be_, static_cast<size_t>(c.rows * ldx), src_dt);
    Buffer dst(*be_, static_cast<size_t>(c.rows) * c.out, dst_dt);
    const auto x = src.rounded(randn(static_cast<size_t>(c.rows * ldx), seed++));
    const auto resid = dst.rounded(randn(static_cast<size_t>(c.rows) * c.out, seed++));
    src.set(x);
    if (c.accumulate) dst.set(resid);
    else dst.poison();
    const auto wr = src.rounded(w);  // the backend may round weights to its precision
    const LinearArgs a{&lw, c.rows, src.data(), ldx, src_dt, dst.data(), c.out, dst_dt, c.epi, c.accumulate,
                       c.full};
    plan_and_run(*be_, [&] { be_->linear(a); });
    const auto ref = linear_reference(x, c.rows, c.in, ldx, wr, b, c.epi, c.accumulate ? &resid : nullptr);
    const auto y = dst.get();
    EXPECT_LE(test::max_rel_error(y.data(), ref.data(), ref.size()),
              tolerance(c.full ? Precision::fp32 : GetParam().precision));
  }
}

TEST_P(OpTest, Attention) {
  const DT adt = be_->act_dt();
  std::uint64_t seed = 100;
  // On CUDA: head dim 64 takes the wgmma kernels on Hopper (16-bit: every key at once up to 256 tokens,
  // online softmax beyond, as for 577; fp32: the 3xTF32 wgmma kernel), 80 the register-resident mma.sync
  // kernels (16-bit and 3xTF32), 40 the WMMA kernel (16-bit), 40 and 20 in fp32 and 20 in 16-bit the
  // SIMT kernel.
  // queries > 0: only the first queries tokens of each image are compared (the last block of a
  // class-token model asks for 1); every token is still a key.
  for (auto [tokens, head_dim, heads, queries] : std::vector<std::tuple<int, int, int, int>>{
           {197, 64, 3, 0}, {577, 80, 2, 0}, {197, 80, 2, 0}, {5, 64, 1, 0}, {197, 40, 2, 0}, {33, 20, 3, 0},
           {197, 64, 3, 1}, {577, 80, 2, 70}, {197, 40, 2, 1}, {33, 20, 3, 17}, {577, 64, 2, 0}, {577, 64, 2, 1}}) {
    SCOPED_TRACE(::testing::Message() << "tokens " << tokens << " head_dim " << head_dim << " queries " << queries);
    fresh();
    const int B = 3, E = heads * head_dim;
    const size_t n_qkv = static_cast<size_t>(B) * tokens * 3 * E, n_out = static_cast<size_t>(B) * tokens * E;
    Buffer qkv(*be_, n_qkv, adt), out(*be_, n_out, adt);
    const auto q = qkv.rounded(randn(n_qkv, seed++, 1.5f));
    qkv.set(q);
    out.poison();
    AttentionArgs a{B, tokens, heads, head_dim, qkv.data(), out.data(), adt, queries};
    plan_and_run(*be_, [&] { be_->attention(a); });
    auto ref = attention_reference(q, B, tokens, heads, head_dim);
    auto y = out.get();
    if (queries > 0) {  // keep each image's first `queries` rows
      const size_t keep = static_cast<size_t>(queries) * E;
      std::vector<double> r;
      std::vector<float> o;
      for (int b = 0; b < B; ++b) {
        const size_t at = static_cast<size_t>(b) * tokens * E;
        r.insert(r.end(), ref.begin() + at, ref.begin() + at + keep);
        o.insert(o.end(), y.begin() + at, y.begin() + at + keep);
      }
      ref = std::move(r);
      y = std::move(o);
    }
    EXPECT_LE(test::max_rel_error(y.data(), ref.data(), ref.size()), tolerance(GetParam().precision));
  }
}

TEST_P(OpTest, LayerNorm) {
  const DT adt = be_->act_dt();
  std::uint64_t seed = 200;
  // src16: the input is a residual stream in the activation type (normed into that type, or into fp32
  // out of place, as the head does).
  for (auto [rows, dim, in_place, src16] : std::vector<std::tuple<int, int, bool, bool>>{
           {3 * 197, 768, false, false}, {3 * 577, 80, false, false}, {7, 64, true, false}, {5, 1024, true, false},
           {197, 384, false, false}, {3 * 197, 768, false, true}, {5, 1024, true, true}, {3 * 577, 80, true, true},
           // widths 128 * 11 and 128 * 9 (ViT-g, SigLIP so400m) take the register-row kernel; 3,072 the
           // generic one, and so do 192 (DeiT-Tiny) and 200 (a partial chunk of 8 per lane)
           {33, 1408, false, false}, {197, 1152, true, true}, {7, 3072, false, false}, {197, 192, true, false},
           {2 * 197, 192, false, true}, {9, 200, true, false}}) {
    if (src16 && adt == DT::f32) continue;
    SCOPED_TRACE(::testing::Message() << "rows " << rows << " dim " << dim << (in_place ? " in place" : "")
                                      << (src16 ? " 16-bit input" : ""));
    fresh();  // backends keep weight copies keyed by host pointer, and freed vectors' addresses recur
    auto x = randn(static_cast<size_t>(rows) * dim, seed++, 2.0f);
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < dim; ++i) x[static_cast<size_t>(r) * dim + i] += 5.0f;  // a large mean
    const auto g = randn(dim, seed++, 0.5f), bias = randn(dim, seed++, 0.5f);
    NormWeights nw{g.data(), bias.data()};
    const DT src_dt = src16 ? adt : DT::f32;
    const DT dst_dt = in_place ? src_dt : src16 ? DT::f32 : adt;
    Buffer src(*be_, x.size(), src_dt), dst(*be_, x.size(), dst_dt);
    x = src.rounded(x);
    src.set(x);
    dst.poison();
    void* out = in_place ? src.data() : dst.data();
    LayerNormArgs a{rows, dim, src.data(), dim, out, dim, dst_dt, &nw, 1e-6f, src_dt};
    plan_and_run(*be_, [&] { be_->layernorm(a); });
    std::vector<double> ref(x.size());
    for (int r = 0; r < rows; ++r) {
      double m = 0, v = 0;
      for (int i = 0; i < dim; ++i) m += x[static_cast<size_t>(r) * dim + i];
      m /= dim;
      for (int i = 0; i < dim; ++i) v += std::pow(x[static_cast<size_t>(r) * dim + i] - m, 2);
      v /= dim;
      for (int i = 0; i < dim; ++i)
        ref[static_cast<size_t>(r) * dim + i] = (x[static_cast<size_t>(r) * dim + i] - m) / std::sqrt(v + 1e-6) * g[i] + bias[i];
    }
    const auto y = in_place ? src.get() : dst.get();
    EXPECT_LE(test::max_rel_error(y.data(), ref.data(), ref.size()), tolerance(dst_dt == DT::f32 ? Precision::fp32 : GetParam().precision));
  }
}

// Our fused TF32 GEMM (fc1 after norm2 in tf32 sessions) reads both operands as the nearest TF32
// values, where its tensor cores would otherwise truncate them: the LayerNorm that writes its input
// stores it rounded to TF32, and it reads its weight rounded once at plan time. A LayerNorm whose
// output goes to a cuBLASLt GEMM, and every other session, keeps the exact values.
TEST_P(OpTest, Tf32OperandsOfTheFusedGemm) {
  if (!GetParam().name.starts_with("cuda")) GTEST_SKIP() << "CUDA only: the fused TF32 GEMM";
#ifdef VITRT_HAVE_CUDA
  const DT adt = be_->act_dt();
  const std::int64_t rows = 8192;  // 64 x 17 tiles of 128 x 128: enough for untuned sessions to take it
  const int K = 128, N = 2176;
  const auto x = randn(static_cast<size_t>(rows) * K, 250, 3.0f);
  const auto g = randn(K, 251, 0.5f), beta = randn(K, 252, 0.5f);
  const auto w = randn(static_cast<size_t>(N) * K, 253, 0.1f), bias = randn(N, 254, 0.1f);
  const NormWeights nw{g.data(), beta.data()};
  const LinearWeights lw{w.data(), bias.data(), N, K};
  const size_t nx = x.size(), ny = static_cast<size_t>(rows) * N;
  Buffer src(*be_, nx, DT::f32), plain(*be_, nx, adt), to_lt(*be_, nx, adt), to_own(*be_, nx, adt), z(*be_, ny, adt),
      y(*be_, ny, adt);
  src.set(x);
  for (Buffer* b : {&plain, &to_lt, &to_own, &z, &y}) b->poison();
  const auto norm = [&](Buffer& dst, bool gemm_input) {
    LayerNormArgs a{rows, K, src.data(), K, dst.data(), K, adt, &nw, 1e-6f, DT::f32};
    a.gemm_input = gemm_input;
    be_->layernorm(a);
  };
  plan_and_run(*be_, [&] {
    norm(plain, false);
    norm(to_lt, true);
    be_->linear({&lw, rows, to_lt.data(), K, adt, z.data(), N, adt});  // no activation: cuBLASLt
    norm(to_own, true);
    be_->linear({&lw, rows, to_own.data(), K, adt, y.data(), N, adt, Epilogue::gelu_erf});
  });
  // Whether the untuned session took our kernel for the second GEMM.
  int sm_count = 0;
  const int arch = device0_arch(&sm_count);
  cuda::GemmTf32Params q;
  q.a = to_own.f32();
  q.lda = K;
  q.w = y.f32();  // any 16-byte aligned pointer: the session's copy of W is
  q.bias = y.f32();
  q.d = y.f32();
  q.ldd = N;
  q.rows = rows;
  q.in = K;
  q.out = N;
  const bool own = GetParam().precision == Precision::tf32 &&
                   cuda::gemm_tf32_default_variant(q, arch, sm_count) > 0;
  std::printf("[ info ] %s: fused TF32 GEMM %s\n", GetParam().name.c_str(), own ? "taken" : "not taken");
  const auto p = plain.get(), hl = to_lt.get(), ho = to_own.get();
  std::size_t lt_differ = 0, own_differ = 0, changed = 0;
  for (std::size_t i = 0; i < nx; ++i) {
    ASSERT_FALSE(std::isnan(p[i])) << i;
    const float want = own ? round_to_tf32(p[i]) : p[i];
    lt_differ += std::memcmp(&p[i], &hl[i], sizeof(float)) != 0;
    own_differ += std::memcmp(&want, &ho[i], sizeof(float)) != 0;
    changed += want != p[i];
  }
  EXPECT_EQ(lt_differ, 0u);
  EXPECT_EQ(own_differ, 0u);
  if (!own) return;
  EXPECT_GT(changed, nx / 2);  // the rounding really happened
  // Our GEMM against float64 on the TF32-rounded operands, every 61st row: fp32 accumulation error only
  // (truncated weights would be ~1e-4 off).
  const auto yv = y.get();
  double worst = 0, largest = 0;
  for (std::int64_t r = 0; r < rows; r += 61)
    for (int n = 0; n < N; ++n) {
      double acc = bias[n];
      for (int k = 0; k < K; ++k)
        acc += static_cast<double>(ho[static_cast<size_t>(r) * K + k]) * round_to_tf32(w[static_cast<size_t>(n) * K + k]);
      const double ref = 0.5 * acc * std::erfc(-acc / std::sqrt(2.0));
      largest = std::max(largest, std::abs(ref));
      worst = std::max(worst, std::abs(ref - yv[static_cast<size_t>(r) * N + n]));
    }
  std::printf("[ info ] fused TF32 GEMM on rounded operands: max error %.3g of the largest output\n", worst / largest);
  EXPECT_LE(worst, 1e-5 * largest);

  // Once planning is over, the exact copy of W stays while a cuBLASLt GEMM reads it (the first linear
  // above); where only our kernel reads W, it is freed, and the GEMM gives the same result from its
  // rounded copy.
  const std::size_t both = be_->device_bytes();
  be_->end_planning();
  EXPECT_EQ(be_->device_bytes(), both);
  auto be2 = GetParam().make();
  be2->resolve_precision(GetParam().precision);
  Buffer a2(*be2, nx, adt), y2(*be2, ny, adt);
  a2.set(ho);
  y2.poison();
  const LinearArgs fc{&lw, rows, a2.data(), K, adt, y2.data(), N, adt, Epilogue::gelu_erf};
  be2->begin_plan(1);
  be2->linear(fc);
  be2->end_plan();
  const std::size_t held = be2->device_bytes();
  be2->end_planning();
  EXPECT_EQ(held - be2->device_bytes(), static_cast<std::size_t>(N) * K * 4);
  be2->begin_run(1);
  be2->linear(fc);
  be2->end_run();
  EXPECT_EQ(y2.get(), yv);
#endif
}

TEST_P(OpTest, PatchifyTokensAndPooling) {
  const DT adt = be_->act_dt();
  // Patches of 16, 8 and 32 take CUDA's 16-byte path, 14 (ViT-H/14's size) its scalar one, 40 the scalar
  // one in two pieces.
  for (auto [S, P] : std::vector<std::pair<int, int>>{{48, 16}, {42, 14}, {40, 8}, {64, 32}, {80, 40}}) {
    SCOPED_TRACE(::testing::Message() << "image " << S << " patch " << P);
    const int B = 3, C = 3, g = S / P, patches = g * g;
    const auto img = test::randn(static_cast<size_t>(B) * C * S * S, 300 + P);
    const int K = C * P * P;
    Buffer images(*be_, img.size(), DT::f32), cols(*be_, static_cast<size_t>(B) * patches * K, adt);
    images.set(img);
    cols.poison();
    // valid = 2: the third image is batch padding and must come out as zeros.
    plan_and_run(*be_, [&] { be_->patchify({B, 2, C, S, P, images.f32(), cols.data(), adt}); });
    const auto got = cols.get();
    for (int b = 0; b < B; ++b)
      for (int py = 0; py < g; ++py)
        for (int px = 0; px < g; ++px)
          for (int c = 0; c < C; ++c)
            for (int ky = 0; ky < P; ++ky)
              for (int kx = 0; kx < P; ++kx) {
                const float want = b < 2 ? cols.rounded({img[((static_cast<size_t>(b) * C + c) * S + py * P + ky) * S + px * P + kx]})[0] : 0.0f;
                const float have = got[(static_cast<size_t>(b) * patches + py * g + px) * K + (c * P + ky) * P + kx];
                ASSERT_EQ(want, have) << "b " << b << " patch " << py << "," << px;
              }
  }
  const int B = 3, g = 3, patches = g * g, E = 8, prefix = 2, N = prefix + patches;
  // The residual stream x in fp32 and, in 16-bit sessions, in the activation type.
  for (const DT xdt : {DT::f32, adt}) {
    for (bool covers : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "x " << dt_name(xdt) << (covers ? " pos covers prefix" : ""));
      const auto rows = test::randn(static_cast<size_t>(B) * patches * E, 301);
      const auto pre = test::randn(static_cast<size_t>(prefix) * E, 302);
      const auto pos = test::randn(static_cast<size_t>(covers ? N : patches) * E, 303);
      Buffer prow(*be_, rows.size(), DT::f32), x(*be_, static_cast<size_t>(B) * N * E, xdt),
          pooled(*be_, static_cast<size_t>(B) * E, DT::f32);
      prow.set(rows);
      x.poison();
      pooled.poison();
      plan_and_run(*be_, [&] {
        be_->tokens({B, patches, E, prow.f32(), pre.data(), prefix, pos.data(), covers, x.data(), xdt});
        be_->mean_tokens(x.data(), xdt, B, N, E, prefix, patches, pooled.f32());
      });
      const auto xv = x.get(), pv = pooled.get();
      for (int b = 0; b < B; ++b)
        for (int e = 0; e < E; ++e) {
          double mean = 0;
          for (int t = 0; t < N; ++t) {
            const double base = t < prefix ? pre[static_cast<size_t>(t) * E + e] : rows[(static_cast<size_t>(b) * patches + t - prefix) * E + e];
            const double p = covers ? pos[static_cast<size_t>(t) * E + e] : t < prefix ? 0.0 : pos[static_cast<size_t>(t - prefix) * E + e];
            const float want = x.rounded({static_cast<float>(base + p)})[0];  // the stream's rounding of the sum
            EXPECT_NEAR(xv[(static_cast<size_t>(b) * N + t) * E + e], want, 1e-6);
            if (t >= prefix) mean += xv[(static_cast<size_t>(b) * N + t) * E + e];
          }
          EXPECT_NEAR(pv[static_cast<size_t>(b) * E + e], mean / patches, 1e-5);
        }
    }
  }
}

// Token assembly with the first block's norm1 folded in (the forward does this when there is no
// norm_pre) gives exactly what tokens followed by LayerNorm give: x and the normed rows bit for bit.
// 768 wide takes CUDA's fused kernel with its weights loaded before it waits, 2,048 the same kernel with
// them loaded after, 80 wide its two-kernel fallback.
TEST_P(OpTest, TokensWithNorm) {
  const DT adt = be_->act_dt();
  const int B = 3, patches = 196, prefix = 1, N = prefix + patches;
  std::uint64_t seed = 310;
  for (const int E : {768, 2048, 80}) {
    for (const DT xdt : {DT::f32, adt}) {
      for (const bool covers : {true, false}) {
        SCOPED_TRACE(::testing::Message() << "E " << E << " x " << dt_name(xdt) << (covers ? " pos covers prefix" : ""));
        fresh();
        const size_t n = static_cast<size_t>(B) * N * E;
        const auto rows = test::randn(static_cast<size_t>(B) * patches * E, seed++);
        const auto pre = test::randn(static_cast<size_t>(prefix) * E, seed++);
        const auto pos = test::randn(static_cast<size_t>(covers ? N : patches) * E, seed++);
        auto gamma = test::randn(E, seed++, 0.2f);
        for (float& v : gamma) v += 1.0f;
        const auto beta = test::randn(E, seed++, 0.1f);
        const NormWeights nw{gamma.data(), beta.data()};
        Buffer prow(*be_, rows.size(), DT::f32), x1(*be_, n, xdt), h1(*be_, n, adt), x2(*be_, n, xdt), h2(*be_, n, adt);
        prow.set(rows);
        for (Buffer* b : {&x1, &h1, &x2, &h2}) b->poison();
        TokensArgs plain{B, patches, E, prow.f32(), pre.data(), prefix, pos.data(), covers, x2.data(), xdt};
        TokensArgs fused = plain;
        fused.x = x1.data();
        fused.norm = &nw;
        fused.eps = 1e-6f;
        fused.normed = h1.data();
        fused.normed_dt = adt;
        plan_and_run(*be_, [&] {
          be_->tokens(fused);
          be_->tokens(plain);
          be_->layernorm({static_cast<std::int64_t>(B) * N, E, x2.data(), E, h2.data(), E, adt, &nw, 1e-6f, xdt});
        });
        const auto xa = x1.get(), xb = x2.get(), ha = h1.get(), hb = h2.get();
        EXPECT_EQ(std::memcmp(xa.data(), xb.data(), n * sizeof(float)), 0);
        EXPECT_EQ(std::memcmp(ha.data(), hb.data(), n * sizeof(float)), 0);
        EXPECT_FALSE(std::isnan(ha[0]) || std::isnan(ha[n - 1]));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, OpTest, ::testing::ValuesIn(backends()),
                         [](const auto& tp) { return tp.param.name; });

// Host rounding to TF32 matches cvt.rna.tf32.f32: nearest, ties away from zero, specials kept.
TEST(Half, RoundToTf32) {
  const auto bits = [](float f) { return std::bit_cast<std::uint32_t>(f); };
  const float tie = 1.0f + std::ldexp(1.0f, -11), up = 1.0f + std::ldexp(1.0f, -10);
  EXPECT_EQ(round_to_tf32(tie), up);
  EXPECT_EQ(round_to_tf32(-tie), -up);
  EXPECT_EQ(round_to_tf32(std::nextafter(tie, 0.0f)), 1.0f);
  EXPECT_EQ(round_to_tf32(up), up);
  EXPECT_EQ(bits(round_to_tf32(std::bit_cast<float>(1u))), 0u);  // subnormals: TF32's step is 2^-136
  EXPECT_EQ(bits(round_to_tf32(std::bit_cast<float>(0x1000u))), 0x2000u);
  EXPECT_EQ(bits(round_to_tf32(std::nextafter(2.0f, 0.0f))), bits(2.0f));  // carries into the exponent
  EXPECT_TRUE(std::isinf(round_to_tf32(std::numeric_limits<float>::max())));
  EXPECT_TRUE(std::isinf(round_to_tf32(-std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(std::isnan(round_to_tf32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(round_to_tf32(std::bit_cast<float>(0x7fffffffu))));
  EXPECT_TRUE(std::isnan(round_to_tf32(std::bit_cast<float>(0x7f800001u))));
  for (const float f : test::randn(1000, 77, 10.0f)) EXPECT_EQ(bits(round_to_tf32(f)) & 0x1fffu, 0u) << f;
}

#ifdef VITRT_HAVE_CUDA
// One attention shape for the CUDA kernels: qkv [B, tokens, 3, H, D] with fresh random values (as stored in
// dt), an output buffer, the float64 reference of every row, and the kernel's parameters over the buffers.
struct AttentionCase {
  AttentionCase(Backend& be, DT dt, int B, int tokens, int heads, int head_dim, std::uint64_t seed, int arch)
      : E(heads * head_dim),
        qkv(be, static_cast<size_t>(B) * tokens * 3 * E, dt),
        out(be, static_cast<size_t>(B) * tokens * E, dt),
        p{qkv.data(), out.data(), B, tokens, heads, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim)), dt} {
    const auto q = qkv.rounded(randn(static_cast<size_t>(B) * tokens * 3 * E, seed, 1.5f));
    qkv.set(q);
    ref = attention_reference(q, B, tokens, heads, head_dim);
    p.arch = arch;
  }
  int E;
  Buffer qkv, out;
  cuda::AttentionParams p;
  std::vector<double> ref;
};

// Which attention kernel a shape gets without tuning, and what the tuner may choose from: host logic,
// so it runs without a GPU too.
TEST(CudaAttention, VariantsAndDefaults) {
  cuda::AttentionParams p{nullptr, nullptr, 1, 197, 12, 64, 0.125f, DT::bf16};
  p.arch = 90;
  const bool hopper_build = cuda::attention_wgmma_supports(p);  // sm_90a compiled in
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaRow : 2);
  p.batch = 16;
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaRow2 : 4);
  p.tokens = 577;  // more keys than the all-at-once kernel takes: the TMA kernel, 128-key tiles from one
                   // work item (128 query rows) per SM
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaWs128 : 4);
  p.batch = 1;  // 120 items of 64 rows (10 query tiles, 12 heads) for 132 SMs: each key half to a warpgroup
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaWsKeys : 2);
  p.heads = 16;  // 160 items of 64 rows: the whole keys per warpgroup
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaWs : 4);
  p.heads = 6;  // 60: up to half the SMs, the keys over a cluster of 2 blocks
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaSplit2 : 2);
  p.heads = 3;  // 30: up to a quarter, over 4
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaSplit4 : 2);
  p.queries = 1;  // the class token alone, 16 heads: 16 tiles, the one-query kernel
  p.heads = 16;
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionOneQuery : 1);
  p.batch = 2;  // 32 tiles: still a quarter of the SMs
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionOneQuery : 1);
  p.head_dim = 80;  // a head dim neither it nor the wgmma kernels take: the one-warp mma kernel
  EXPECT_EQ(cuda::attention_default_variant(p, 132), 1);
  p.head_dim = 64;
  p.batch = 4;  // 64 tiles
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaSplit2 : 1);
  p.batch = 8;  // 128 tiles: the class-token rule below
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmma1 : 1);
  p.queries = 0;
  p.batch = 1;
  p.heads = 12;
  if (hopper_build) {
    // Asked for where it cannot give each warpgroup a whole key tile (a cache or caller naming it for a
    // short sequence): a clear error before anything runs.
    cuda::AttentionParams short_p = p;
    short_p.tokens = 128;
    short_p.variant = cuda::kAttentionWgmmaWsKeys;
    try {
      cuda::attention(short_p, nullptr);
      ADD_FAILURE() << "split keys at 128 tokens did not throw";
    } catch (const vitrt::Error& e) {
      EXPECT_NE(std::string(e.what()).find("needs more than 128 tokens"), std::string::npos) << e.what();
    }
  }
  p.batch = 16;
  p.queries = 1;  // one query tile: not the TMA kernel (its two warpgroups share 128 rows)
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmma1 : 1);
  p.queries = 0;
  p.tokens = 197;
  p.batch = 256;
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmmaRowHead : 4);
  auto v = cuda::attention_variants(p);
  EXPECT_EQ(v.size(), hopper_build ? 10u : 4u);  // 4 key tiles: split over 2 blocks, not 4; all keys at once
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaRow), hopper_build ? 1 : 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaRowHead), hopper_build ? 1 : 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaRow2), hopper_build ? 1 : 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaWs), 0);
  p.tokens = 257;
  v = cuda::attention_variants(p);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaRow), 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaWs), hopper_build ? 1 : 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaWs128), hopper_build ? 1 : 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmmaWsKeys), hopper_build ? 1 : 0);
  p.tokens = 197;
  // Query 0 only: one warp per block once there are enough (batch, head) pairs.
  p.queries = 1;
  EXPECT_EQ(cuda::attention_default_variant(p, 132), 1);
  p.batch = 16;
  EXPECT_EQ(cuda::attention_default_variant(p, 132), hopper_build ? cuda::kAttentionWgmma1 : 1);
  p.queries = 0;
  p.batch = 256;
  // Not Hopper, other head dims, fp32: never the wgmma kernel.
  for (auto [arch, dim, dt] : std::vector<std::tuple<int, int, DT>>{{80, 64, DT::bf16}, {89, 64, DT::f16}, {90, 80, DT::bf16},
                                                                    {90, 128, DT::f16}}) {
    p.arch = arch;
    p.head_dim = dim;
    p.dt = dt;
    EXPECT_FALSE(cuda::attention_wgmma_supports(p)) << arch << " " << dim;
    v = cuda::attention_variants(p);
    EXPECT_EQ(std::count(v.begin(), v.end(), cuda::kAttentionWgmma2), 0);
    EXPECT_EQ(cuda::attention_default_variant(p, 132), 4);
  }
  p.dt = DT::f32;
  EXPECT_EQ(cuda::attention_variants(p), std::vector<int>{0});
  // fp32 activations, head dim 64 on Hopper: the 3xTF32 kernels, and in tf32 sessions the 3xBF16 ones.
  p.head_dim = 64;
  const std::vector<int> fp32_variants = hopper_build ? std::vector<int>{0, cuda::kAttentionTf32Wgmma} : std::vector<int>{0};
  EXPECT_EQ(cuda::attention_variants(p), fp32_variants);
  p.tf32_session = true;
  std::vector<int> tf32_variants = fp32_variants;
  if (hopper_build) {
    tf32_variants.insert(tf32_variants.end(), {cuda::kAttentionTf32Bf16x3, cuda::kAttentionTf32Bf16x3Head2, cuda::kAttentionTf32Bf16x3Head4});
  }
  EXPECT_EQ(cuda::attention_variants(p), tf32_variants);
  if (hopper_build) {
    p.batch = 4;
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Wgmma);
    p.batch = 8;
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Bf16x3Head4);
    p.batch = 16;
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Bf16x3Head2);
    p.batch = 64;
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Bf16x3Head2);
    p.queries = 1;  // one query tile: the 3xTF32 kernel
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Wgmma);
    p.queries = 0;
    p.tokens = 577;  // beyond the resident kernels
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Wgmma);
    p.tf32_session = false;  // fp32 sessions: never 3xBF16
    p.tokens = 197;
    EXPECT_EQ(cuda::attention_default_variant(p, 132), cuda::kAttentionTf32Wgmma);
  }
  EXPECT_EQ(cuda::attention_variant_name(4), "mma, 4 warps per block");
  EXPECT_EQ(cuda::attention_variant_name(cuda::kAttentionWgmma2), "wgmma, 2 warpgroups per block");
  // The wgmma kernels copy 16 bytes at a time in (qkv) and out (whole output rows): buffers that are not
  // 16-byte aligned are refused with a message, before anything is launched.
  if (hopper_build) {
    const std::uintptr_t base = std::uintptr_t{1} << 20;
    for (auto [qkv_off, out_off] : std::vector<std::pair<int, int>>{{0, 8}, {4, 0}}) {
      cuda::AttentionParams m{reinterpret_cast<const void*>(base + qkv_off), reinterpret_cast<void*>(base + out_off), 1, 197,
                              12, 64, 0.125f, DT::bf16};
      m.arch = 90;
      for (int variant : {cuda::kAttentionWgmmaRow, cuda::kAttentionWgmma2}) {
        m.variant = variant;
        try {
          cuda::attention_wgmma(m, nullptr);
          ADD_FAILURE() << "variant " << variant << " took misaligned buffers";
        } catch (const vitrt::Error& e) {
          EXPECT_NE(std::string(e.what()).find("16-byte aligned"), std::string::npos) << e.what();
        }
      }
    }
  }
}

// Every tile configuration of a tensor-core attention kernel (what `vitrt tune` chooses between)
// computes each row the same way: the variants of one kernel must agree bit for bit, and every variant
// with the reference. On Hopper the wgmma kernel's variants (head dim 64) are among them.
// Runs p into `out`, NaN-poisoned first, and returns in y what it holds afterwards. Fatal failures stay
// the caller's through ASSERT_NO_FATAL_FAILURE.
void run_attention_poisoned(const cuda::AttentionParams& p, Buffer& out, std::vector<float>& y) {
  out.poison();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the poison went through the backend's stream
  cuda::attention(p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  y = out.get();
}

// Runs p again for the first query token per image only (a class-token model's last block) into the
// poisoned `out`, and expects each image's row 0 bit for bit as in `full`, the same kernel's full run.
void expect_query0_rows(cuda::AttentionParams p, Buffer& out, const std::vector<float>& full) {
  p.queries = 1;
  std::vector<float> y1;
  ASSERT_NO_FATAL_FAILURE(run_attention_poisoned(p, out, y1));
  const size_t E = static_cast<size_t>(p.heads) * p.head_dim;
  for (int b = 0; b < p.batch; ++b) {
    const size_t at = static_cast<size_t>(b) * p.tokens * E;
    EXPECT_EQ(std::memcmp(full.data() + at, y1.data() + at, E * sizeof(float)), 0) << "image " << b;
  }
}

TEST(CudaAttention, EveryVariantGivesTheSameRows) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  const int arch = device0_arch();
  std::uint64_t seed = 300;
  for (Precision prec : {Precision::fp16, Precision::bf16}) {
    be->resolve_precision(prec);
    const DT dt = be->act_dt();
    for (auto [tokens, head_dim, heads, B] : std::vector<std::tuple<int, int, int, int>>{
             {197, 64, 3, 2}, {577, 80, 2, 1}, {577, 64, 2, 1}, {5, 64, 1, 3}, {128, 64, 2, 2}, {65, 64, 3, 1},
             {197, 128, 2, 1}, {50, 32, 4, 2}, {129, 96, 1, 1},
             // last query tiles with 16, 1 and 17 live rows
             {208, 64, 2, 1}, {144, 64, 1, 2}, {193, 64, 1, 1}, {209, 64, 1, 1},
             // more than 256 tokens: the TMA kernel (2 images: rows past the first one's end must read as zeros;
             // 577 and 259 end with 1 and 3 keys after the last whole tile)
             {300, 64, 3, 2}, {320, 64, 1, 2}, {577, 64, 1, 3}, {259, 64, 2, 2},
             // more work items than an H200 has SMs (200), so that blocks take several in turn; 128-key tiles
             // whose last one has 65 live keys
             {577, 64, 8, 5}}) {
      SCOPED_TRACE(::testing::Message() << dt_name(dt) << " tokens " << tokens << " head_dim " << head_dim);
      AttentionCase c(*be, dt, B, tokens, heads, head_dim, seed++, arch);
      auto& [E, qkv, out, p, ref] = c;
      const auto variants = cuda::attention_variants(p);
      ASSERT_GE(variants.size(), 2u);
      if (arch == 90 && head_dim == 64) {
        EXPECT_EQ(std::count(variants.begin(), variants.end(), cuda::kAttentionWgmma2), 1);
      }
      // Per kernel: mma, wgmma, and each split of the key tiles (its own summation order).
      std::map<int, std::vector<float>> first;
      const auto kernel_of = [](int v) {
        if (v == cuda::kAttentionWgmmaSplit2 || v == cuda::kAttentionWgmmaSplit4 ||
            v == cuda::kAttentionWgmmaWs || v == cuda::kAttentionWgmmaWs128 ||
            v == cuda::kAttentionWgmmaWsKeys) {
          return v;
        }
        if (v == cuda::kAttentionWgmmaRow || v == cuda::kAttentionWgmmaRow2 || v == cuda::kAttentionWgmmaRowHead) {
          return cuda::kAttentionWgmmaRow;
        }
        return cuda::is_wgmma_variant(v) ? 1 : 0;
      };
      for (int v : variants) {
        SCOPED_TRACE(::testing::Message() << "variant " << v);
        p.variant = v;
        std::vector<float> y;
        ASSERT_NO_FATAL_FAILURE(run_attention_poisoned(p, out, y));
        EXPECT_LE(test::max_rel_error(y.data(), ref.data(), ref.size()), tolerance(prec));
        auto& f = first[kernel_of(v)];
        if (f.empty()) f = y;
        else EXPECT_EQ(std::memcmp(f.data(), y.data(), y.size() * sizeof(float)), 0);
        // Only the first query token per image (a class-token model's last block): the same row.
        expect_query0_rows(p, out, y);
      }
    }
  }
}

// The one-query kernel (a class-token model's last block): token 0's row of each image against float64, at
// odd token counts, fewer tokens than the cluster's 4 blocks (blocks with no keys), several images and the
// head dims it takes; every other row stays as it was (poisoned). Head dim 80 is not offered it.
TEST(CudaAttention, OneQueryKernel) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  const int arch = device0_arch();
  cuda::AttentionParams probe{nullptr, nullptr, 1, 577, 16, 64, 0.125f, DT::bf16};
  probe.arch = arch;
  probe.queries = 1;
  if (!cuda::attention_query_supports(probe)) {
    GTEST_SKIP() << "the one-query kernel needs compute capability 9.0 and a build with sm_90a";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  std::uint64_t seed = 700;
  for (Precision prec : {Precision::fp16, Precision::bf16}) {
    be->resolve_precision(prec);
    const DT dt = be->act_dt();
    for (auto [tokens, head_dim, heads, B] : std::vector<std::tuple<int, int, int, int>>{
             {577, 64, 16, 1}, {577, 64, 3, 2}, {197, 64, 12, 1}, {197, 32, 4, 3}, {5, 64, 2, 2}, {3, 128, 2, 1},
             {1, 64, 1, 2}, {259, 128, 2, 2}, {65, 16, 3, 1}, {1025, 64, 2, 1}}) {
      SCOPED_TRACE(::testing::Message() << dt_name(dt) << " tokens " << tokens << " head_dim " << head_dim << " heads "
                                        << heads << " images " << B);
      AttentionCase c(*be, dt, B, tokens, heads, head_dim, seed++, arch);
      auto& [E, qkv, out, p, ref] = c;
      p.queries = 1;
      const auto variants = cuda::attention_variants(p);
      ASSERT_EQ(std::count(variants.begin(), variants.end(), cuda::kAttentionOneQuery), 1);
      p.variant = cuda::kAttentionOneQuery;
      std::vector<float> y;
      ASSERT_NO_FATAL_FAILURE(run_attention_poisoned(p, out, y));
      for (int b = 0; b < B; ++b) {
        const size_t at = static_cast<size_t>(b) * tokens * E;
        EXPECT_LE(test::max_rel_error(y.data() + at, ref.data() + at, E), tolerance(prec)) << "image " << b;
        if (tokens > 1) {
          EXPECT_TRUE(std::all_of(y.begin() + at + E, y.begin() + at + 2 * E, [](float v) { return std::isnan(v); }))
              << "image " << b << ": row 1 was written";
        }
      }
    }
  }
  cuda::AttentionParams p{nullptr, nullptr, 1, 577, 16, 80, 0.1f, DT::bf16};
  p.arch = arch;
  p.queries = 1;
  const auto variants = cuda::attention_variants(p);
  EXPECT_EQ(std::count(variants.begin(), variants.end(), cuda::kAttentionOneQuery), 0);
  p.variant = cuda::kAttentionOneQuery;
  try {
    cuda::attention_query(p, nullptr);
    ADD_FAILURE() << "head dim 80 was taken";
  } catch (const vitrt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("head dim 16, 32, 64 or 128"), std::string::npos) << e.what();
  }
}

// fp32 activations: the 3xTF32 kernels (mma.sync, and wgmma for head dim 64 on Hopper), with P V in
// 3xTF32 (fp32 sessions) and 2xTF32 (tf32 sessions), and in tf32 sessions on Hopper the 3xBF16 kernel,
// against the float64 reference: 3xTF32 at the fp32 tolerance, 2xTF32 P V within V's TF32 rounding
// (2^-11 relative per value, averaged over the keys), 3xBF16 within its parts' (about 2^-16 per
// product); the class-token query alone gives the same row as the full run.
TEST(CudaAttention, Fp32KernelsAndPvPrecisions) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  be->resolve_precision(Precision::fp32);
  const int arch = device0_arch();
  std::uint64_t seed = 400;
  for (auto [tokens, head_dim, heads, B] : std::vector<std::tuple<int, int, int, int>>{
           {197, 64, 3, 2}, {577, 64, 2, 1}, {5, 64, 1, 3}, {65, 64, 3, 1}, {90, 64, 1, 1}, {104, 64, 2, 2}, {197, 80, 2, 1}}) {
    AttentionCase c(*be, DT::f32, B, tokens, heads, head_dim, seed++, arch);
    auto& [E, qkv, out, p, ref] = c;
    for (const bool tf32_session : {false, true}) {
      p.tf32_session = tf32_session;
      const auto variants = cuda::attention_variants(p);
      const bool hopper64 = arch == 90 && head_dim == 64 && cuda::attention_tf32_wgmma_supports(p);
      EXPECT_EQ(std::count(variants.begin(), variants.end(), cuda::kAttentionTf32Wgmma), hopper64 ? 1 : 0);
      EXPECT_EQ(std::count(variants.begin(), variants.end(), cuda::kAttentionTf32Bf16x3), hopper64 && tf32_session ? 1 : 0);
      for (int v : {cuda::kAttentionTf32Bf16x3Head2, cuda::kAttentionTf32Bf16x3Head4}) {
        EXPECT_EQ(std::count(variants.begin(), variants.end(), v), hopper64 && tf32_session && tokens <= 256 ? 1 : 0);
      }
      for (int v : variants) {
        const bool bf16x3 = cuda::is_bf16x3_variant(v);
        SCOPED_TRACE(::testing::Message() << "tokens " << tokens << " head_dim " << head_dim << " variant " << v
                                          << (bf16x3 ? " 3xBF16" : tf32_session ? " P V 2xTF32" : " P V 3xTF32"));
        p.variant = v;
        std::vector<float> y;
        ASSERT_NO_FATAL_FAILURE(run_attention_poisoned(p, out, y));
        const double err = test::max_rel_error(y.data(), ref.data(), ref.size());
        if (bf16x3) {
          std::printf("[ info ] 3xBF16 variant %d, %d tokens: max error %.3g of the largest output\n", v, tokens, err);
        }
        EXPECT_LE(err, bf16x3 ? 1e-4 : tf32_session ? 1e-3 : tolerance(Precision::fp32));
        expect_query0_rows(p, out, y);
      }
    }
  }
  // Outside tf32 sessions the 3xBF16 kernel refuses to run.
  cuda::AttentionParams p{nullptr, nullptr, 1, 197, 1, 64, 0.125f, DT::f32};
  p.arch = arch;
  p.variant = cuda::kAttentionTf32Bf16x3;
  EXPECT_THROW(cuda::attention(p, nullptr), vitrt::Error);
}

// The activation pass (after cuBLASLt's GEMMs) at rows longer than one sweep of a block (so each thread
// goes round more than once), rows whose length or stride is not a multiple of 16 bytes (one element per
// access), padded strides, every storage type, GELU and QuickGELU. The padding between rows must stay
// NaN, and each output must be the float64 reference within fp32's or one 16-bit step's error.
TEST(CudaActivation, PassAtEveryAlignment) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  struct Case {
    std::int64_t rows, cols, ld;
  };
  std::uint64_t seed = 1400;
  for (DT dt : {DT::f32, DT::f16, DT::bf16})
    for (Epilogue act : {Epilogue::gelu_erf, Epilogue::quick_gelu})
      for (const Case& c : std::vector<Case>{{3, 5000, 5000}, {5, 4100, 4104}, {7, 3000, 3004}, {2, 37, 40}}) {
        SCOPED_TRACE(::testing::Message() << dt_name(dt) << (act == Epilogue::gelu_erf ? " GELU " : " QuickGELU ")
                                          << c.rows << " x " << c.cols << " stride " << c.ld);
        const std::size_t n = static_cast<std::size_t>(c.rows * c.ld);
        Buffer buf(*be, n, dt);
        auto x = buf.rounded(randn(n, seed++, 3.0f));
        for (std::int64_t r = 0; r < c.rows; ++r)
          for (std::int64_t col = c.cols; col < c.ld; ++col) x[r * c.ld + col] = std::numeric_limits<float>::quiet_NaN();
        buf.set(x);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the backend uploads on its own stream
        cuda::activation({buf.data(), c.rows, c.cols, c.ld, dt, act}, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const auto y = buf.get();
        double worst = 0;
        for (std::int64_t r = 0; r < c.rows; ++r)
          for (std::int64_t col = 0; col < c.ld; ++col) {
            const std::size_t i = static_cast<std::size_t>(r * c.ld + col);
            if (col >= c.cols) {
              ASSERT_TRUE(std::isnan(y[i])) << "padding written at row " << r << ", column " << col;
              continue;
            }
            const double e = activation_reference(act, x[i]);
            // fp32: 2e-6, relative above 1 (erff's 1 + erf cancels in the negative tail, as PyTorch's
            // does); 16-bit: one step of the output's type at |e|.
            const double allowed = dt == DT::f32 ? 2e-6 * std::max(std::fabs(e), 1.0)
                                                 : std::ldexp(1.0, std::ilogb(std::max(std::fabs(e), 1e-4)) -
                                                                       (dt == DT::f16 ? 10 : 7));
            worst = std::max(worst, std::fabs(y[i] - e) / allowed);
          }
        EXPECT_LE(worst, 1.0);
      }
}

// The data tuning times kernels on: every byte written (tails of 1-3 bytes too), every 16-bit word
// finite and of ordinary size as fp16 and as bf16, every 4-byte group as fp32, signs mixed, and the same
// bytes for the same seed only.
TEST(CudaTuning, FillLooksLikeActivations) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  for (std::size_t bytes :
       {std::size_t{1}, std::size_t{6}, std::size_t{7}, std::size_t{4096}, std::size_t{1000003}}) {
    SCOPED_TRACE(::testing::Message() << bytes << " bytes");
    void* d = nullptr;
    ASSERT_EQ(cudaMalloc(&d, bytes), cudaSuccess);
    const auto fill = [&](std::uint32_t seed) {
      EXPECT_EQ(cudaMemset(d, 0xff, bytes), cudaSuccess);  // NaN in every type
      cuda::fill_tuning_data(d, bytes, seed, nullptr);
      std::vector<unsigned char> h(bytes);
      EXPECT_EQ(cudaMemcpy(h.data(), d, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
      return h;
    };
    const std::vector<unsigned char> h = fill(5);
    std::size_t negative = 0;
    for (std::size_t i = 1; i < bytes; i += 2) {  // the high byte of each 16-bit word: sign | 01111 | 2 bits
      ASSERT_EQ(h[i] & 0x7c, 0x3c) << "byte " << i << " is 0x" << std::hex << int{h[i]};
      negative += h[i] >> 7;
    }
    for (std::size_t i = 0; i + 1 < bytes; i += 2) {
      std::uint16_t w = 0;
      std::memcpy(&w, &h[i], 2);
      const float f16 = std::fabs(fp16_to_float(w)), b16 = std::fabs(bf16_to_float(w));
      ASSERT_TRUE(f16 >= 1.0f && f16 < 2.0f) << "word at byte " << i << " as fp16: " << f16;
      ASSERT_TRUE(b16 >= 0x1p-7f && b16 < 2.0f) << "word at byte " << i << " as bf16: " << b16;
    }
    for (std::size_t i = 0; i + 3 < bytes; i += 4) {
      float f = 0;
      std::memcpy(&f, &h[i], 4);
      ASSERT_TRUE(std::fabs(f) >= 0x1p-7f && std::fabs(f) < 2.0f) << "fp32 at byte " << i << ": " << f;
    }
    if (bytes % 2) {  // a low byte: random, so this checks only that it was written (0xff is unlikely)
      EXPECT_NE(h[bytes - 1], 0xff) << "the last byte was not written";
    }
    if (bytes > 4096) {
      const double words = static_cast<double>(bytes / 2);
      EXPECT_NEAR(static_cast<double>(negative) / words, 0.5, 0.01);
      EXPECT_EQ(fill(5), h);
      EXPECT_NE(fill(6), h);
    }
    ASSERT_EQ(cudaFree(d), cudaSuccess);
  }
}

// Which shapes our TF32 GEMM takes, and what untuned sessions run (host logic only, no GPU needed).
TEST(CudaGemm, VariantsAndDefaults) {
  const auto at = [](std::uintptr_t a) { return reinterpret_cast<float*>(a); };
  cuda::GemmTf32Params p;  // vit_base's fc1 at batch 64
  p.a = at(1 << 20);
  p.lda = 768;
  p.w = at(2 << 20);
  p.bias = at(3 << 20);
  p.d = at(4 << 20);
  p.ldd = 3072;
  p.rows = 64 * 197;
  p.in = 768;
  p.out = 3072;
  const bool hopper_build = !cuda::gemm_tf32_variants(p, 90).empty();  // sm_90a compiled in
  EXPECT_EQ(cuda::gemm_tf32_variants(p, 90),
            hopper_build ? std::vector<int>({cuda::kGemmTf32N256, cuda::kGemmTf32N128x2, cuda::kGemmTf32M64N256x2,
                                             cuda::kGemmTf32M64N128x3})
                         : std::vector<int>{});
  EXPECT_EQ(cuda::gemm_tf32_default_variant(p, 90, 132), hopper_build ? cuda::kGemmTf32N128x2 : 0);
  p.rows = 16 * 197;  // 600 tiles, under 8 per SM: cuBLASLt and the pass
  EXPECT_EQ(cuda::gemm_tf32_default_variant(p, 90, 132), 0);
  EXPECT_TRUE(cuda::gemm_tf32_variants(p, 80).empty());
  const auto refused = [&](auto change) {
    cuda::GemmTf32Params q = p;
    change(q);
    return cuda::gemm_tf32_variants(q, 90).empty() && cuda::gemm_tf32_default_variant(q, 90, 132) == 0;
  };
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.in = 80; }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.out = 200; }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.lda = 770; }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.ldd = 3073; }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.a = at((1 << 20) + 8); }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.bias = nullptr; }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.act = Epilogue::none; }));
  EXPECT_TRUE(refused([&](cuda::GemmTf32Params& q) { q.rows = 0; }));
  p.out = 384;  // N a multiple of 128 only: the 256-wide tiles drop out
  EXPECT_EQ(cuda::gemm_tf32_variants(p, 90).size(), hopper_build ? 2u : 0u);
}

// The warp-specialized GEMM's launch on these operands (its variant still to set).
// GELU's tanh form (cuBLASLt's GELU epilogue, and our 16-bit GEMM's where it stands in for it).
double gelu_tanh_reference(double s) {
  return 0.5 * s * (1.0 + std::tanh(std::sqrt(2.0 / 3.14159265358979323846) * (s + 0.044715 * s * s * s)));
}

cuda::GemmWsParams ws_launch(const void* x, std::int64_t lda, const void* w, const void* bias, void* d,
                             std::int64_t ldd, std::int64_t rows, int in, int out, DT dt, Epilogue act, int sm_count) {
  cuda::GemmWsParams p;
  p.a = x;
  p.lda = lda;
  p.w = w;
  p.bias = bias;
  p.d = d;
  p.ldd = ldd;
  p.rows = rows;
  p.in = in;
  p.out = out;
  p.dt = dt;
  p.act = act;
  p.sm_count = sm_count;
  return p;
}

// Which shapes our warp-specialized 16-bit GEMM takes (host logic only, no GPU needed).
TEST(CudaGemm, WarpSpecializedVariants) {
  const auto at = [](std::uintptr_t a) { return reinterpret_cast<void*>(a); };
  // vit_base's fc1 at batch 256
  cuda::GemmWsParams p = ws_launch(at(1 << 20), 768, at(2 << 20), at(3 << 20), at(4 << 20), 3072, 256 * 197, 768, 3072,
                                   DT::bf16, Epilogue::gelu_erf, 0);
  const bool hopper_build = !cuda::gemm_ws_variants(p, 90).empty();  // sm_90a compiled in
  EXPECT_EQ(cuda::gemm_ws_variants(p, 90),
            hopper_build ? std::vector<int>({cuda::kGemmWsCoop, cuda::kGemmWsPingPong, cuda::kGemmWsPingPong64})
                         : std::vector<int>{});
  EXPECT_TRUE(cuda::gemm_ws_variants(p, 80).empty());
  EXPECT_FALSE(cuda::gemm_ws_takes(p, 90, 4));
  EXPECT_EQ(cuda::gemm_ws_work_items(p, cuda::kGemmWsCoop), 197 * 24);  // 256-row tiles
  EXPECT_EQ(cuda::gemm_ws_work_items(p, cuda::kGemmWsPingPong64), 788 * 24);
  // GELU's tanh form: the 64-row tiles only.
  p.gelu_tanh = true;
  EXPECT_EQ(cuda::gemm_ws_variants(p, 90),
            hopper_build ? std::vector<int>({cuda::kGemmWsPingPong64}) : std::vector<int>{});
  EXPECT_EQ(cuda::gemm_ws_variant_name(cuda::kGemmWsPingPong64), "vitrt gemm 64x128 ping-pong, 8 stages");
  p.gelu_tanh = false;
  const auto refused = [&](auto change) {
    cuda::GemmWsParams q = p;
    change(q);
    return cuda::gemm_ws_variants(q, 90).empty();
  };
  if (hopper_build) {
    EXPECT_FALSE(refused([&](cuda::GemmWsParams& q) { q.dt = DT::f16; }));
    EXPECT_FALSE(refused([&](cuda::GemmWsParams& q) { q.act = Epilogue::none; }));
    EXPECT_FALSE(refused([&](cuda::GemmWsParams& q) { q.rows = 1; }));
    EXPECT_FALSE(refused([&](cuda::GemmWsParams& q) { q.lda = 776; }));
  }
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.dt = DT::f32; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.act = Epilogue::quick_gelu; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.in = 800; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.out = 200; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.lda = 770; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.ldd = 3076; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.a = at((1 << 20) + 8); }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.d = at((4 << 20) + 8); }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.bias = nullptr; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.bias = at((3 << 20) + 2); }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.rows = 0; }));
  // The residual variants: D and bias in fp32, no activation, 1 to 8 parts of K and at most K / 64.
  p.accumulate = true;
  EXPECT_TRUE(cuda::gemm_ws_variants(p, 90).empty());  // GELU
  p.act = Epilogue::none;
  p.in = 192;
  p.lda = 192;
  p.ldd = 3076;  // fp32 rows: a multiple of 4 keeps them 16-byte aligned
  EXPECT_EQ(cuda::gemm_ws_variants(p, 90),
            hopper_build ? std::vector<int>({cuda::kGemmWsResidualSplit + 1, cuda::kGemmWsResidualSplit + 2,
                                             cuda::kGemmWsResidualSplit + 3, cuda::kGemmWsResidualSplit64 + 1,
                                             cuda::kGemmWsResidualSplit64 + 2, cuda::kGemmWsResidualSplit64 + 3})
                         : std::vector<int>{});
  EXPECT_EQ(cuda::gemm_ws_variant_name(cuda::kGemmWsResidualSplit + 3),
            "vitrt gemm 128x128 ping-pong, residual added by TMA, K in 3 parts");
  EXPECT_EQ(cuda::gemm_ws_variant_name(cuda::kGemmWsResidualSplit64 + 1),
            "vitrt gemm 64x128 ping-pong, residual added by TMA, K in 1 part");
  EXPECT_EQ(cuda::gemm_ws_work_items(p, cuda::kGemmWsResidualSplit + 3), 394 * 24 * 3);
  EXPECT_EQ(cuda::gemm_ws_work_items(p, cuda::kGemmWsResidualSplit64 + 2), 788 * 24 * 2);
  EXPECT_FALSE(cuda::gemm_ws_takes(p, 90, cuda::kGemmWsResidualSplit + 4));
  EXPECT_FALSE(cuda::gemm_ws_takes(p, 90, cuda::kGemmWsResidualSplit64 + 4));
  EXPECT_FALSE(cuda::gemm_ws_takes(p, 90, cuda::kGemmWsResidualSplit));
  EXPECT_FALSE(cuda::gemm_ws_takes(p, 90, cuda::kGemmWsResidualSplit64));
  EXPECT_FALSE(cuda::gemm_ws_takes(p, 90, cuda::kGemmWsCoop));  // the bias-only variants do not accumulate
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.ldd = 3074; }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.bias = at((3 << 20) + 4); }));
  EXPECT_TRUE(refused([&](cuda::GemmWsParams& q) { q.act = Epilogue::gelu_erf; }));
}

TEST(CudaGemm, SmallVariantsAndDefaults) {
  const auto at = [](std::uintptr_t a) { return reinterpret_cast<void*>(a); };
  cuda::GemmSmallParams p;  // vit_base's qkv at batch 1
  p.a = at(1 << 20);
  p.lda = 768;
  p.w = at(2 << 20);
  p.bias = at(3 << 20);
  p.d = at(4 << 20);
  p.ldd = 2304;
  p.rows = 197;
  p.in = 768;
  p.out = 2304;
  const bool hopper_build = !cuda::gemm_small_variants(p, 90).empty();  // sm_90a compiled in
  using cuda::gemm_small_variant;
  // 768 = 12 k-tiles: splits 1, 2, 4 (not 8); 64 x 128 and 128 x 128 tiles need a split to fit in shared
  // memory (12 x 24 or 32 KiB unsplit); 80, 104 and 208 do not divide 2304 (the last tile is partial).
  const std::vector<int> qkv_b1 = {gemm_small_variant(64, 64, 1, 1),   gemm_small_variant(64, 64, 1, 2),
                                   gemm_small_variant(64, 64, 1, 4),   gemm_small_variant(64, 128, 1, 2),
                                   gemm_small_variant(64, 128, 1, 4),  gemm_small_variant(128, 128, 1, 2),
                                   gemm_small_variant(128, 128, 1, 4), gemm_small_variant(64, 80, 4, 1),
                                   gemm_small_variant(64, 48, 4, 2),   gemm_small_variant(64, 96, 4, 2),
                                   gemm_small_variant(64, 208, 4, 2),  gemm_small_variant(128, 104, 2, 2),
                                   gemm_small_variant(128, 96, 2, 4),  gemm_small_variant(64, 96, 2, 4),
                                   gemm_small_variant(64, 80, 1, 1),   gemm_small_variant(64, 32, 4, 1)};
  EXPECT_EQ(cuda::gemm_small_variants(p, 90), hopper_build ? qkv_b1 : std::vector<int>{});
  EXPECT_EQ(cuda::gemm_small_default_variant(p, 90, 132) != 0, hopper_build);
  EXPECT_TRUE(cuda::gemm_small_variants(p, 80).empty());
  EXPECT_EQ(gemm_small_variant(64, 80, 4, 1), 108041);
  EXPECT_EQ(cuda::gemm_small_variant_name(gemm_small_variant(128, 128, 1, 4)), "vitrt small gemm 128x128, split-k 4");
  EXPECT_EQ(cuda::gemm_small_variant_name(gemm_small_variant(64, 80, 4, 1)),
            "vitrt small gemm 64x80, W shared by 4, split-k 1");
  EXPECT_FALSE(cuda::gemm_small_takes(p, 90, gemm_small_variant(64, 72, 4, 1)));  // a shape not built
  EXPECT_FALSE(cuda::gemm_small_takes(p, 90, 111));                              // session 21's numbering
  const auto refused = [&](auto change) {
    cuda::GemmSmallParams q = p;
    change(q);
    return cuda::gemm_small_variants(q, 90).empty() && cuda::gemm_small_default_variant(q, 90, 132) == 0;
  };
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.in = 80; }));   // K not a multiple of 64
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.out = 196; }));  // N not a multiple of 8
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.lda = 770; }));  // rows not 16-byte aligned
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.ldd = 2306; }));
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.a = at((1 << 20) + 8); }));
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.bias = nullptr; }));
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.in_dt = DT::f32; }));
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.out_dt = DT::f16; }));  // bf16 in, fp16 out
  EXPECT_TRUE(refused([&](cuda::GemmSmallParams& q) { q.rows = 0; }));
  p.in = 64 * 48;  // fc2's K: only splits that leave each block at most 13 (64 x 64) k-tiles fit
  p.lda = p.in;
  for (int v : cuda::gemm_small_variants(p, 90)) EXPECT_GE(v % 10, 4) << v;
  EXPECT_EQ(cuda::gemm_small_variants(p, 90).empty(), !hopper_build);
  const std::vector<int> fc2 = cuda::gemm_small_variants(p, 90);
  p.out = 200;  // N a multiple of 8 only: the same variants, with a partial last tile
  EXPECT_EQ(cuda::gemm_small_variants(p, 90), fc2);
}

#ifdef VITRT_HAVE_CUDA
// Runs a GEMM kernel twice on the output `out` (rows + 1 rows of stride ldd), `reset` before each run:
// the second run must give the same bits, and nothing around the rows x cols output (padding columns,
// the row past the end; left NaN by `reset`) may be written. Returns the first run's max normalized
// error against ref (NaN if a CUDA call failed).
double run_twice(Buffer& out, const std::function<void()>& reset, const std::function<void()>& launch,
                 std::int64_t rows, int cols, std::int64_t ldd, const std::vector<double>& ref) {
  std::vector<float> first;
  double err = 0;
  for (int run = 0; run < 2; ++run) {
    reset();
    // The backend uploads on its own stream; the kernels here run on the default stream.
    if (cudaDeviceSynchronize() != cudaSuccess) break;
    launch();
    if (cudaDeviceSynchronize() != cudaSuccess) break;
    const auto all = out.get();
    if (run == 1) {
      EXPECT_EQ(std::memcmp(all.data(), first.data(), all.size() * sizeof(float)), 0) << "a second run differs";
      return err;
    }
    first = all;
    std::size_t touched = 0;
    const std::vector<float> y = output_inside(all, rows, cols, ldd, touched);
    EXPECT_EQ(touched, 0u) << "elements written outside the output";
    err = test::max_rel_error(y.data(), ref.data(), ref.size());
  }
  ADD_FAILURE() << "CUDA error: " << cudaGetErrorString(cudaGetLastError());
  return std::numeric_limits<double>::quiet_NaN();
}
#endif

// The small-batch GEMM (16-bit sessions, Hopper), every variant, against float64 references on the
// 16-bit operands: vit_base's qkv / proj / fc1 / fc2 shapes at 197 rows, a few rows, N = 200 (partial
// last tiles), padded strides, every epilogue, fp32 and 16-bit outputs, with and without a residual.
// Unsplit variants write through a TMA store or add where the output rows are 16-byte aligned and the
// residual (if any) is fp32, else directly: both paths occur (the last case's rows are 280 bytes).
// Outputs are poisoned (or hold the residual) before each run; the padding columns and the row past the
// end must stay untouched, and a second run must give the same bits (the split-K sum has a fixed order).
TEST(CudaGemm, SmallGemm) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  const int arch = device0_arch();
  struct Case {
    std::int64_t rows;
    int in, out, lda_pad, ldd_pad;
    DT in_dt, out_dt;
    Epilogue act;
    bool accumulate;
  };
  std::uint64_t seed = 950;
  bool ran = false;
  for (const Case& c : std::vector<Case>{{197, 768, 2304, 0, 0, DT::bf16, DT::bf16, Epilogue::none, false},
                                         {197, 768, 768, 0, 0, DT::bf16, DT::f32, Epilogue::none, true},
                                         {197, 768, 3072, 0, 0, DT::bf16, DT::bf16, Epilogue::gelu_erf, false},
                                         {197, 3072, 768, 0, 0, DT::bf16, DT::f32, Epilogue::none, true},
                                         {5, 512, 256, 8, 4, DT::f16, DT::f16, Epilogue::quick_gelu, true},
                                         {1, 128, 128, 0, 4, DT::f16, DT::f32, Epilogue::gelu_erf, false},
                                         {577, 256, 192, 24, 0, DT::bf16, DT::bf16, Epilogue::none, true},
                                         {37, 512, 200, 0, 4, DT::bf16, DT::f32, Epilogue::gelu_erf, true},
                                         {64, 256, 136, 0, 4, DT::bf16, DT::bf16, Epilogue::none, false}}) {
    const std::int64_t lda = c.in + c.lda_pad, ldd = c.out + c.ldd_pad;
    Buffer xa(*be, static_cast<size_t>(c.rows * lda), c.in_dt), wa(*be, static_cast<size_t>(c.out) * c.in, c.in_dt),
        ba(*be, c.out, c.out_dt), da(*be, static_cast<size_t>((c.rows + 1) * ldd), c.out_dt);
    const auto x = xa.rounded(randn(static_cast<size_t>(c.rows * lda), seed++));
    const auto w = wa.rounded(randn(static_cast<size_t>(c.out) * c.in, seed++, 1.0f / std::sqrt(static_cast<float>(c.in))));
    const auto b = ba.rounded(randn(c.out, seed++, 0.1f));
    // The residual (or NaN where the output is not read): rows past the end and padding stay NaN.
    auto resid = da.rounded(randn(static_cast<size_t>((c.rows + 1) * ldd), seed++));
    for (std::int64_t r = 0; r <= c.rows; ++r)
      for (std::int64_t col = 0; col < ldd; ++col)
        if (!c.accumulate || r == c.rows || col >= c.out) resid[r * ldd + col] = std::numeric_limits<float>::quiet_NaN();
    xa.set(x);
    wa.set(w);
    ba.set(b);
    cuda::GemmSmallParams p;
    p.a = xa.data();
    p.lda = lda;
    p.w = wa.data();
    p.bias = ba.data();
    p.d = da.data();
    p.ldd = ldd;
    p.rows = c.rows;
    p.in = c.in;
    p.out = c.out;
    p.in_dt = c.in_dt;
    p.out_dt = c.out_dt;
    p.act = c.act;
    p.accumulate = c.accumulate;
    const auto variants = cuda::gemm_small_variants(p, arch);
    if (variants.empty()) continue;
    ran = true;
    std::vector<double> ref(static_cast<size_t>(c.rows) * c.out);
    for (std::int64_t r = 0; r < c.rows; ++r)
      for (int o = 0; o < c.out; ++o) {
        double s = b[o];
        for (int k = 0; k < c.in; ++k) s += static_cast<double>(x[r * lda + k]) * w[static_cast<size_t>(o) * c.in + k];
        s = activation_reference(c.act, s);
        if (c.accumulate) s += resid[r * ldd + o];
        ref[r * c.out + o] = s;
      }
    const double tol = c.out_dt == DT::f32 ? 1e-4 : tolerance(c.out_dt == DT::bf16 ? Precision::bf16 : Precision::fp16);
    for (int v : variants) {
      SCOPED_TRACE(::testing::Message() << cuda::gemm_small_variant_name(v) << ", rows " << c.rows << " in " << c.in
                                        << " out " << c.out);
      p.variant = v;
      const double err = run_twice(
          da, [&] { da.set(resid); }, [&] { cuda::gemm_small(p, arch, nullptr); }, c.rows, c.out, ldd, ref);
      std::printf("[ info ] %s, %lld x %d x %d %s -> %s: max error %.3g\n", cuda::gemm_small_variant_name(v).c_str(),
                  static_cast<long long>(c.rows), c.in, c.out, dt_name(c.in_dt), dt_name(c.out_dt), err);
      EXPECT_LE(err, tol);
    }
  }
  if (!ran) GTEST_SKIP() << "the small GEMM needs an sm_90a build on a Hopper GPU";
  cuda::GemmSmallParams bad;  // a variant that does not take the shape refuses to run
  bad.rows = 4;
  bad.in = 96;
  bad.out = 128;
  bad.variant = cuda::gemm_small_variant(64, 64, 1, 1);
  EXPECT_THROW(cuda::gemm_small(bad, arch, nullptr), vitrt::Error);
}

// Our TF32 GEMM with the activation in its epilogue (tf32 sessions, Hopper), every variant, against
// float64 references: K = 768 as vit_base's fc1 with 3 x 197 rows, and odd row counts,
// padded row strides and QuickGELU. Outputs are poisoned before each run; the padding columns and the
// row past the end must stay untouched. The error is also reported against the same product on TF32
// operands (truncated and rounded), which tells which of the two the tensor cores computed.
TEST(CudaGemm, Tf32FusedActivation) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  const int arch = device0_arch();
  struct Case {
    std::int64_t rows;
    int in, out, lda_pad, ldd_pad;
    Epilogue act;
  };
  auto tf32 = [](float x, bool round) {
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    u = ((round ? u + 0x1000u : u) & 0xffffe000u);
    float y;
    std::memcpy(&y, &u, 4);
    return y;
  };
  std::uint64_t seed = 900;
  bool ran = false;
  for (const Case& c : std::vector<Case>{{3 * 197, 768, 768, 0, 0, Epilogue::gelu_erf},
                                         {3 * 577, 96, 384, 4, 2, Epilogue::quick_gelu},
                                         {1, 64, 256, 0, 0, Epilogue::gelu_erf},
                                         {197, 32, 128, 36, 6, Epilogue::gelu_erf}}) {
    const std::int64_t lda = c.in + c.lda_pad, ldd = c.out + c.ldd_pad;
    const auto x = randn(static_cast<size_t>(c.rows * lda), seed++);
    const auto w = randn(static_cast<size_t>(c.out) * c.in, seed++, 1.0f / std::sqrt(static_cast<float>(c.in)));
    const auto b = randn(c.out, seed++, 0.1f);
    Buffer xa(*be, x.size(), DT::f32), wa(*be, w.size(), DT::f32), ba(*be, b.size(), DT::f32),
        da(*be, static_cast<size_t>((c.rows + 1) * ldd), DT::f32);
    xa.set(x);
    wa.set(w);
    ba.set(b);
    cuda::GemmTf32Params p;
    p.a = xa.f32();
    p.lda = lda;
    p.w = wa.f32();
    p.bias = ba.f32();
    p.d = da.f32();
    p.ldd = ldd;
    p.rows = c.rows;
    p.in = c.in;
    p.out = c.out;
    p.act = c.act;
    const auto variants = cuda::gemm_tf32_variants(p, arch);
    if (variants.empty()) continue;
    ran = true;
    EXPECT_EQ(variants.size(), c.out % 256 == 0 ? 4u : 2u);
    // References: exact, and on truncated / rounded TF32 operands.
    std::vector<double> ref[3];
    for (int m = 0; m < 3; ++m) {
      ref[m].resize(static_cast<size_t>(c.rows) * c.out);
      for (std::int64_t r = 0; r < c.rows; ++r)
        for (int o = 0; o < c.out; ++o) {
          double s = b[o];
          for (int k = 0; k < c.in; ++k) {
            float xv = x[r * lda + k], wv = w[static_cast<size_t>(o) * c.in + k];
            if (m > 0) {
              xv = tf32(xv, m == 2);
              wv = tf32(wv, m == 2);
            }
            s += static_cast<double>(xv) * wv;
          }
          ref[m][r * c.out + o] = activation_reference(c.act, s);
        }
    }
    for (int v : variants) {
      SCOPED_TRACE(::testing::Message() << cuda::gemm_tf32_variant_name(v) << ", rows " << c.rows << " in " << c.in
                                        << " out " << c.out);
      p.variant = v;
      da.poison();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      cuda::gemm_tf32(p, arch, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto all = da.get();
      std::size_t touched = 0;
      const std::vector<float> y = output_inside(all, c.rows, c.out, ldd, touched);
      EXPECT_EQ(touched, 0u) << "elements written outside the output";
      const double err = test::max_rel_error(y.data(), ref[0].data(), ref[0].size()),
                   err_trunc = test::max_rel_error(y.data(), ref[1].data(), ref[1].size()),
                   err_round = test::max_rel_error(y.data(), ref[2].data(), ref[2].size());
      std::printf("[ info ] %s, %lld x %d x %d: max error %.3g; against TF32 operands truncated %.3g, rounded %.3g\n",
                  cuda::gemm_tf32_variant_name(v).c_str(), static_cast<long long>(c.rows), c.in, c.out, err, err_trunc,
                  err_round);
      EXPECT_LE(err, tolerance(Precision::tf32));
      // The tensor cores take the TF32 bits of fp32 operands (truncation), as cuBLASLt's TF32 GEMMs do;
      // accumulation and the epilogue add only fp32-level error to that.
      EXPECT_LE(err_trunc, 1e-5);
    }
  }
  if (!ran) GTEST_SKIP() << "the TF32 GEMM needs an sm_90a build on a Hopper GPU";
  // A variant that does not take the shape refuses to run.
  cuda::GemmTf32Params bad;
  bad.rows = 4;
  bad.in = 33;
  bad.out = 128;
  bad.variant = cuda::kGemmTf32N128x2;
  EXPECT_THROW(cuda::gemm_tf32(bad, arch, nullptr), vitrt::Error);
}

// Our warp-specialized 16-bit GEMM (gemm_ws.cuh), every variant, against float64 references on the
// rounded operands: vit_base's qkv and fc1 shapes at 197 and 3 x 197 rows, 577 rows with head-dim-80
// widths (K = 320), one row, padded row strides, fp16 and bf16, bias only, the exact GELU and its tanh
// form (the 64-row tiles only). Outputs
// (rows + 1 rows, padding included) are poisoned before each run; nothing outside the output may be
// written, and a second run must give the same bits. Each variant also with W's first stages copied
// before the dependent-launch wait (GemmWsParams::w_first).
TEST(CudaGemm, WarpSpecialized) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  int sm_count = 0;
  const int arch = device0_arch(&sm_count);
  struct Case {
    std::int64_t rows;
    int in, out, lda_pad, ldd_pad;
    DT dt;
    Epilogue act;
    bool tanh = false;  // GELU's tanh form
  };
  std::uint64_t seed = 1200;
  bool ran = false;
  for (const Case& c : std::vector<Case>{{197, 768, 2304, 0, 0, DT::bf16, Epilogue::none},
                                         {3 * 197, 768, 3072, 0, 0, DT::bf16, Epilogue::gelu_erf},
                                         {577, 320, 640, 8, 24, DT::f16, Epilogue::gelu_erf},
                                         {577, 320, 960, 0, 8, DT::bf16, Epilogue::none},
                                         {1, 64, 128, 0, 0, DT::f16, Epilogue::none},
                                         {1000, 128, 384, 64, 0, DT::f16, Epilogue::gelu_erf},
                                         {197, 768, 3072, 0, 0, DT::bf16, Epilogue::gelu_erf, true},
                                         {577, 320, 640, 8, 24, DT::f16, Epilogue::gelu_erf, true}}) {
    const std::int64_t lda = c.in + c.lda_pad, ldd = c.out + c.ldd_pad;
    Buffer xa(*be, static_cast<size_t>(c.rows * lda), c.dt), wa(*be, static_cast<size_t>(c.out) * c.in, c.dt),
        ba(*be, c.out, c.dt), da(*be, static_cast<size_t>((c.rows + 1) * ldd), c.dt);
    const auto x = xa.rounded(randn(static_cast<size_t>(c.rows * lda), seed++));
    const auto w = wa.rounded(randn(static_cast<size_t>(c.out) * c.in, seed++, 1.0f / std::sqrt(static_cast<float>(c.in))));
    const auto b = ba.rounded(randn(c.out, seed++, 0.5f));
    xa.set(x);
    wa.set(w);
    ba.set(b);
    cuda::GemmWsParams p = ws_launch(xa.data(), lda, wa.data(), ba.data(), da.data(), ldd, c.rows, c.in, c.out, c.dt, c.act, sm_count);
    p.gelu_tanh = c.tanh;
    const auto variants = cuda::gemm_ws_variants(p, arch);
    if (variants.empty()) continue;
    ran = true;
    EXPECT_EQ(variants, c.tanh ? std::vector<int>({cuda::kGemmWsPingPong64})
                               : std::vector<int>({cuda::kGemmWsCoop, cuda::kGemmWsPingPong, cuda::kGemmWsPingPong64}));
    std::vector<double> ref = linear_reference(x, c.rows, c.in, lda, w, b, c.tanh ? Epilogue::none : c.act, nullptr);
    if (c.tanh)
      for (double& v : ref) v = gelu_tanh_reference(v);
    for (int v : variants)
      for (const bool w_first : {false, true}) {
        SCOPED_TRACE(::testing::Message() << cuda::gemm_ws_variant_name(v) << (w_first ? ", W first" : "") << ", rows "
                                          << c.rows << " in " << c.in << " out " << c.out << " " << dt_name(c.dt));
        p.variant = v;
        p.w_first = w_first;
        const double err =
            run_twice(da, [&] { da.poison(); }, [&] { cuda::gemm_ws(p, arch, nullptr); }, c.rows, c.out, ldd, ref);
        std::printf("[ info ] %s%s, %lld x %d x %d %s%s: max error %.3g\n", cuda::gemm_ws_variant_name(v).c_str(),
                    w_first ? ", W first" : "", static_cast<long long>(c.rows), c.in, c.out, dt_name(c.dt),
                    c.act != Epilogue::gelu_erf ? "" : c.tanh ? " + GELU (tanh form)" : " + GELU", err);
        EXPECT_LE(err, tolerance(c.dt == DT::bf16 ? Precision::bf16 : Precision::fp16));
      }
  }
  if (!ran) GTEST_SKIP() << "the warp-specialized GEMM needs an sm_90a build on a Hopper GPU";
  cuda::GemmWsParams bad;  // a variant that does not take the shape refuses to run
  bad.rows = 4;
  bad.in = 96;
  bad.out = 128;
  bad.variant = cuda::kGemmWsCoop;
  EXPECT_THROW(cuda::gemm_ws(bad, arch, nullptr), vitrt::Error);
}

// The same GEMM's residual variants (D += A W^T + bias, D and bias fp32), 128- and 64-row tiles, K whole
// and split in up to 16 parts, against float64 references on the rounded operands: vit_base's fc2 at 197 rows, vit_large's proj
// at 577 rows with padded strides, 37 rows (one partial tile), fp16 and bf16. D holds the residual, with
// NaN in the padding columns and the row past the end, which must stay untouched. Split parts add into D
// in no fixed order, so a second run is compared with the reference, not with the first run's bits; it
// copies W's first stages before the dependent-launch wait (GemmWsParams::w_first).
TEST(CudaGemm, WarpSpecializedResidualSplitK) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  int sm_count = 0;
  const int arch = device0_arch(&sm_count);
  struct Case {
    std::int64_t rows;
    int in, out, lda_pad, ldd_pad;
    DT dt;
  };
  std::uint64_t seed = 1400;
  bool ran = false;
  for (const Case& c : std::vector<Case>{{197, 3072, 768, 0, 0, DT::bf16},
                                         {577, 1024, 1024, 8, 4, DT::f16},
                                         {37, 640, 256, 0, 0, DT::bf16}}) {
    const std::int64_t lda = c.in + c.lda_pad, ldd = c.out + c.ldd_pad;
    Buffer xa(*be, static_cast<size_t>(c.rows * lda), c.dt), wa(*be, static_cast<size_t>(c.out) * c.in, c.dt),
        ba(*be, c.out, DT::f32), da(*be, static_cast<size_t>((c.rows + 1) * ldd), DT::f32);
    const auto x = xa.rounded(randn(static_cast<size_t>(c.rows * lda), seed++));
    const auto w = wa.rounded(randn(static_cast<size_t>(c.out) * c.in, seed++, 1.0f / std::sqrt(static_cast<float>(c.in))));
    const auto b = randn(c.out, seed++, 0.5f);
    const auto resid = randn(static_cast<size_t>(c.rows) * c.out, seed++);
    xa.set(x);
    wa.set(w);
    ba.set(b);
    std::vector<float> d0(static_cast<size_t>((c.rows + 1) * ldd), std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t r = 0; r < c.rows; ++r)
      for (int o = 0; o < c.out; ++o) d0[r * ldd + o] = resid[r * c.out + o];
    cuda::GemmWsParams p = ws_launch(xa.data(), lda, wa.data(), ba.data(), da.data(), ldd, c.rows, c.in, c.out, c.dt,
                                     Epilogue::none, sm_count);
    p.accumulate = true;
    const auto variants = cuda::gemm_ws_variants(p, arch);
    if (variants.empty()) continue;
    ran = true;
    std::vector<int> expected;
    for (const int first : {cuda::kGemmWsResidualSplit, cuda::kGemmWsResidualSplit64})
      for (int parts = 1; parts <= std::min(cuda::kGemmWsMaxParts, c.in / 64); ++parts) expected.push_back(first + parts);
    EXPECT_EQ(variants, expected);
    const std::vector<double> ref = linear_reference(x, c.rows, c.in, lda, w, b, Epilogue::none, &resid);
    for (int v : variants) {
      SCOPED_TRACE(::testing::Message() << cuda::gemm_ws_variant_name(v) << ", rows " << c.rows << " in " << c.in
                                        << " out " << c.out << " " << dt_name(c.dt));
      p.variant = v;
      double worst = 0;
      for (int run = 0; run < 2; ++run) {
        p.w_first = run == 1;  // W's first stages before the dependent-launch wait, or after
        da.set(d0);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the backend uploads on its own stream
        cuda::gemm_ws(p, arch, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::size_t touched = 0;
        const std::vector<float> y = output_inside(da.get(), c.rows, c.out, ldd, touched);
        EXPECT_EQ(touched, 0u) << "elements written outside the output";
        worst = std::max(worst, test::max_rel_error(y.data(), ref.data(), ref.size()));
      }
      std::printf("[ info ] %s, %lld x %d x %d %s: max error %.3g\n", cuda::gemm_ws_variant_name(v).c_str(),
                  static_cast<long long>(c.rows), c.in, c.out, dt_name(c.dt), worst);
      EXPECT_LE(worst, 1e-4);  // fp32 sums of exact products: far inside fp16's bound
    }
  }
  if (!ran) GTEST_SKIP() << "the warp-specialized GEMM needs an sm_90a build on a Hopper GPU";
  cuda::GemmWsParams bad;  // more parts than K has tiles of 64
  bad.rows = 4;
  bad.in = 128;
  bad.out = 128;
  bad.accumulate = true;
  bad.variant = cuda::kGemmWsResidualSplit + 3;
  EXPECT_THROW(cuda::gemm_ws(bad, arch, nullptr), vitrt::Error);
}

// The GELU in that GEMM's epilogue is timm's exact (erf) form, or with GemmWsParams::gelu_tanh the tanh
// form (the 64-row tiles): with W = 0 the output is GELU(bias), here for 4,096 fp16 inputs in [-8, 8).
// Each output must be its form's value within one fp16 step (the two forms are 4.9e-4 apart at x = -2.7,
// about 60 steps there, so each also tells the forms apart), and 0 <= GELU(x) <= x for x > 0, GELU(x) < 0
// for x < 0 down to where fp16 underflows.
TEST(CudaGemm, WarpSpecializedGeluForms) {
  if (!test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  auto be = make_cuda_backend(0, nullptr, false, "off");
  int sm_count = 0;
  const int arch = device0_arch(&sm_count);
  constexpr int kRows = 128, kIn = 64, kOut = 4096;
  Buffer xa(*be, static_cast<size_t>(kRows) * kIn, DT::f16), wa(*be, static_cast<size_t>(kOut) * kIn, DT::f16),
      ba(*be, kOut, DT::f16), da(*be, static_cast<size_t>(kRows) * kOut, DT::f16);
  std::vector<float> xs(kOut);
  for (int i = 0; i < kOut; ++i) xs[i] = -8.0f + 16.0f * static_cast<float>(i) / kOut;
  const auto bias = ba.rounded(xs);
  xa.set(randn(static_cast<size_t>(kRows) * kIn, 1300));
  wa.set(std::vector<float>(static_cast<size_t>(kOut) * kIn, 0.0f));
  ba.set(bias);
  cuda::GemmWsParams p = ws_launch(xa.data(), kIn, wa.data(), ba.data(), da.data(), kOut, kRows, kIn, kOut, DT::f16, Epilogue::gelu_erf, sm_count);
  if (cuda::gemm_ws_variants(p, arch).empty()) GTEST_SKIP() << "the warp-specialized GEMM needs an sm_90a build on a Hopper GPU";
  for (const bool tanh_form : {false, true}) {
    p.gelu_tanh = tanh_form;
    const auto reference = [tanh_form](double x) {
      return tanh_form ? gelu_tanh_reference(x) : activation_reference(Epilogue::gelu_erf, x);
    };
    for (int v : cuda::gemm_ws_variants(p, arch)) {
      SCOPED_TRACE(cuda::gemm_ws_variant_name(v) + (tanh_form ? ", tanh form" : ", exact form"));
      p.variant = v;
      da.poison();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the backend uploads on its own stream
      cuda::gemm_ws(p, arch, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto y = da.get();
      int worst_i = 0;
      double worst_steps = 0;
      for (int r = 0; r < kRows; r += 37)
        for (int i = 0; i < kOut; ++i) {
          const double x = bias[i], e = reference(x), g = y[static_cast<size_t>(r) * kOut + i];
          // One fp16 step at |e|: 2^(exponent - 10), and at least the subnormal spacing 2^-24.
          const double step = std::max(std::ldexp(1.0, std::ilogb(std::max(std::fabs(e), 1e-30)) - 10), std::ldexp(1.0, -24));
          const double steps = std::fabs(g - e) / step;
          if (!(steps <= worst_steps)) {
            worst_steps = steps;
            worst_i = i;
          }
          if (x > 0) {
            EXPECT_TRUE(g >= 0 && g <= x) << "x = " << x << ": " << g;
          } else if (x < 0 && e < -std::ldexp(1.0, -24)) {
            EXPECT_LT(g, 0.0) << "x = " << x;
          }
        }
      std::printf("[ info ] %s: GELU (%s form) within %.2f fp16 steps of its value (worst at x = %g)\n",
                  cuda::gemm_ws_variant_name(v).c_str(), tanh_form ? "tanh" : "exact", worst_steps,
                  static_cast<double>(bias[worst_i]));
      EXPECT_LE(worst_steps, 1.0) << "at x = " << bias[worst_i];
    }
  }
}
#endif

}  // namespace
}  // namespace vitrt
