// Op-level timing harness for the CPU backend at vit_base_patch16_224 shapes (Google Benchmark).
// Correctness is covered by tests/test_ops.cpp; this only times.
//   build/release/bench/bench_cpu_ops --benchmark_filter=bf16
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>

#include "backend/backend.h"

namespace vitrt {
namespace {

constexpr int kBatch = 8, kTokens = 197, kDim = 768, kHeads = 12, kMlp = 3072;

std::vector<float> random(size_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

std::unique_ptr<Backend> backend(Precision p) {
  auto be = make_cpu_backend(0);
  be->resolve_precision(p);
  return be;
}

void linear(benchmark::State& st, Precision p, int in, int out, Epilogue epi, bool acc) {
  auto be = backend(p);
  const DT adt = be->act_dt();
  const std::int64_t rows = std::int64_t{kBatch} * kTokens;
  const auto w = random(static_cast<size_t>(in) * out), b = random(out);
  LinearWeights lw{w.data(), b.data(), out, in};
  void* src = be->allocate(rows * in * dt_size(adt));
  const DT dst_dt = acc ? DT::f32 : adt;
  void* dst = be->allocate(rows * out * dt_size(dst_dt));
  std::memset(src, 0, rows * in * dt_size(adt));
  std::memset(dst, 0, rows * out * dt_size(dst_dt));
  LinearArgs a{&lw, rows, src, in, adt, dst, out, dst_dt, epi, acc};
  be->begin_plan(1);
  be->linear(a);
  be->end_plan();
  for (auto _ : st) {
    be->begin_run(1);
    be->linear(a);
    be->end_run();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * rows * in * out, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  be->release(src);
  be->release(dst);
}

void attention(benchmark::State& st, Precision p) {
  auto be = backend(p);
  const DT adt = be->act_dt();
  const size_t n = static_cast<size_t>(kBatch) * kTokens * kDim;
  void* qkv = be->allocate(3 * n * dt_size(adt));
  void* out = be->allocate(n * dt_size(adt));
  std::memset(qkv, 0, 3 * n * dt_size(adt));
  AttentionArgs a{kBatch, kTokens, kHeads, kDim / kHeads, qkv, out, adt};
  be->begin_plan(1);
  be->attention(a);
  be->end_plan();
  for (auto _ : st) {
    be->begin_run(1);
    be->attention(a);
    be->end_run();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(4.0 * kBatch * kTokens * kTokens * kDim, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  be->release(qkv);
  be->release(out);
}

void layernorm(benchmark::State& st, Precision p) {
  auto be = backend(p);
  const std::int64_t rows = std::int64_t{kBatch} * kTokens;
  const auto x = random(static_cast<size_t>(rows) * kDim), g = random(kDim), b = random(kDim);
  NormWeights nw{g.data(), b.data()};
  void* dst = be->allocate(rows * kDim * 4);
  LayerNormArgs a{rows, kDim, x.data(), kDim, dst, kDim, be->act_dt(), &nw, 1e-6f};
  be->begin_plan(1);
  be->end_plan();
  for (auto _ : st) {
    be->begin_run(1);
    be->layernorm(a);
    be->end_run();
  }
  be->release(dst);
}

#define LINEARS(P, TAG)                                                                                     \
  BENCHMARK_CAPTURE(linear, qkv_##TAG, P, kDim, 3 * kDim, Epilogue::none, false)->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(linear, proj_##TAG, P, kDim, kDim, Epilogue::none, true)->Unit(benchmark::kMillisecond);     \
  BENCHMARK_CAPTURE(linear, fc1_gelu_##TAG, P, kDim, kMlp, Epilogue::gelu_erf, false)->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(linear, fc2_##TAG, P, kMlp, kDim, Epilogue::none, true)->Unit(benchmark::kMillisecond);      \
  BENCHMARK_CAPTURE(attention, TAG, P)->Unit(benchmark::kMillisecond);                                         \
  BENCHMARK_CAPTURE(layernorm, TAG, P)->Unit(benchmark::kMillisecond);

LINEARS(Precision::fp32, fp32)
LINEARS(Precision::bf16, bf16)

}  // namespace
}  // namespace vitrt

BENCHMARK_MAIN();
