// Per-op device times of one transformer block of a ViT at a given batch, on any backend, timed the
// backend's way (CUDA events on the session stream; a steady clock on the CPU). The numbers behind
// docs/performance.md.
//   build/bench/op_times cuda bf16 256 [embed 768] [tokens 197] [heads 12] [mlp 3072]
//   (VITRT_OP_TUNE=1 tunes, for this process, the shapes missing from the tuning cache)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/env.h"
#include "core/half.h"

using namespace vitrt;

namespace {

std::vector<float> random(size_t n, float scale) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s cpu|cuda fp32|tf32|fp16|bf16 BATCH [EMBED TOKENS HEADS MLP]\n", argv[0]);
    return 2;
  }
  const std::string device = argv[1];
  const Precision prec = parse_precision(argv[2]);
  const int B = std::atoi(argv[3]);
  const int E = argc > 4 ? std::atoi(argv[4]) : 768, N = argc > 5 ? std::atoi(argv[5]) : 197;
  const int H = argc > 6 ? std::atoi(argv[6]) : 12, M = argc > 7 ? std::atoi(argv[7]) : 4 * E;
  // VITRT_OP_* switches: 0 or 1, off when unset.
  const auto on = [](const char* name) { return env_integer(name, 0, 1, "0 or 1").value_or(0) == 1; };
  // VITRT_OP_REPS: timed runs per op (default 30); many runs show the sustained (power-limited) rate.
  const int reps =
      static_cast<int>(env_integer("VITRT_OP_REPS", 1, 1000000, "a run count in [1, 1000000]").value_or(30));
  std::unique_ptr<Backend> be;
#ifdef VITRT_HAVE_CUDA
  // VITRT_OP_TUNE=1: tune the shapes missing from the tuning cache ($VITRT_TUNE_CACHE) as `vitrt tune` does,
  // for this process only (the file is not written).
  if (device == "cuda") be = make_cuda_backend(0, nullptr, false, "", on("VITRT_OP_TUNE"));
#endif
  if (!be) be = make_cpu_backend(0);
  be->resolve_precision(prec);
  const DT adt = be->act_dt();
  const std::int64_t rows = std::int64_t{B} * N;
  // Inputs are random in their storage type: constants or zeros run measurably faster on the tensor cores.
  auto buf = [&](std::size_t n, DT dt) {
    void* p = be->allocate(n * dt_size(dt));
    std::vector<float> h = random(n, 0.5f);
    if (dt == DT::f32) {
      be->upload(p, h.data(), n * 4);
    } else {
      std::vector<std::uint16_t> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = dt == DT::bf16 ? float_to_bf16(h[i]) : float_to_fp16(h[i]);
      be->upload(p, v.data(), n * 2);
    }
    return p;
  };
  // The residual stream as a session keeps it: fp32, or the activation type with VITRT_OP_RESIDUAL16=1.
  const DT xdt = on("VITRT_OP_RESIDUAL16") ? adt : DT::f32;
  void* x = buf(rows * E, xdt);
  void* h = buf(rows * E, adt);
  void* qkv = buf(rows * 3 * E, adt);
  void* attn = buf(rows * E, adt);
  void* mlp = buf(rows * M, adt);
  const auto wq = random(3 * E * E, 0.02f), wp = random(E * E, 0.02f), w1 = random(E * M, 0.02f), w2 = random(M * E, 0.02f);
  const auto bq = random(3 * E, 0.02f), bp = random(E, 0.02f), b1 = random(M, 0.02f), b2 = random(E, 0.02f);
  const auto g = random(E, 1.0f), gb = random(E, 0.1f);
  LinearWeights lq{wq.data(), bq.data(), 3 * E, E}, lp{wp.data(), bp.data(), E, E}, l1{w1.data(), b1.data(), M, E},
      l2{w2.data(), b2.data(), E, M};
  NormWeights nw{g.data(), gb.data()};
  struct Op {
    const char* name;
    double flops, bytes;
    std::function<void()> run;
    bool in_total = true;  // counted in the block total
  };
  const double as = static_cast<double>(dt_size(adt)), xs = static_cast<double>(dt_size(xdt)), r = static_cast<double>(rows);
  std::vector<Op> ops = {
      {"layernorm (x -> h)", 0, r * E * (xs + as), [&] { be->layernorm({rows, E, x, E, h, E, adt, &nw, 1e-6f, xdt}); }},
      {"qkv linear", 2 * r * E * 3 * E, 0, [&] { be->linear({&lq, rows, h, E, adt, qkv, 3 * E, adt}); }},
      {"attention", 4.0 * B * N * N * E, 0, [&] { be->attention({B, N, H, E / H, qkv, attn, adt}); }},
      {"proj linear + residual", 2 * r * E * E, 0, [&] { be->linear({&lp, rows, attn, E, adt, x, E, xdt, Epilogue::none, true}); }},
      {"fc1 linear + GELU", 2 * r * E * M, 0, [&] { be->linear({&l1, rows, h, E, adt, mlp, M, adt, Epilogue::gelu_erf}); }},
      {"fc2 linear + residual", 2 * r * M * E, 0, [&] { be->linear({&l2, rows, mlp, M, adt, x, E, xdt, Epilogue::none, true}); }},
  };
  // VITRT_OP_FC1_BIAS=1: also time fc1 with the bias epilogue alone (what the fused GELU costs); not in
  // the block total.
  if (on("VITRT_OP_FC1_BIAS")) {
    ops.push_back({"fc1 linear, bias only (not in the total)", 2 * r * E * M, 0,
                   [&] { be->linear({&l1, rows, h, E, adt, mlp, M, adt, Epilogue::none}); }, false});
  }
  // VITRT_OP_RESIDUAL_BIAS=1: also time proj and fc2 with the bias epilogue alone, written in the activation
  // type (what the fused residual add costs in the GEMM); not in the block total.
  if (on("VITRT_OP_RESIDUAL_BIAS")) {
    ops.push_back({"proj linear, bias only (not in the total)", 2 * r * E * E, 0,
                   [&] { be->linear({&lp, rows, attn, E, adt, h, E, adt, Epilogue::none}); }, false});
    ops.push_back({"fc2 linear, bias only (not in the total)", 2 * r * M * E, 0,
                   [&] { be->linear({&l2, rows, mlp, M, adt, h, E, adt, Epilogue::none}); }, false});
  }
  std::printf("one block, %s %s (residual %s), batch %d, embed %d, tokens %d, heads %d, mlp %d (%s)\n\n", device.c_str(),
              argv[2], dt_name(xdt), B, E, N, H, M,
              be->device_name().c_str());
  std::printf("| op | ms (median) | TFLOP/s | GB/s |\n|---|---:|---:|---:|\n");
  double total = 0, first_ms = 0;
  for (auto& op : ops) {
    be->begin_plan(1);
    op.run();
    be->end_plan();
    auto ms = be->time_runs([&] { be->begin_run(1); op.run(); be->end_run(); }, 5, reps);
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    if (op.in_total) total += med;
    if (first_ms == 0) first_ms = med;
    std::printf("| %s | %.4f | %s | %s |\n", op.name, med,
                op.flops > 0 ? std::to_string(op.flops / med / 1e9).substr(0, 6).c_str() : "",
                op.bytes > 0 ? std::to_string(op.bytes / med / 1e6).substr(0, 7).c_str() : "");
  }
  std::printf("| block total (two layernorms) | %.4f | | |\n", total + first_ms);
  return 0;
}
