// Experiment (docs/performance.md, session 30): does cuBLASLt hold a faster algorithm for one of our GEMMs
// than the tuner's pick? The tuner times the heuristic's candidates (up to 24) and split-K variants of
// them. This sweeps every algorithm id cuBLASLt lists for the types, each with every tile size it
// supports, at every stage count it lists (and the automatic one), in each of five cluster shapes (auto,
// 1x1, 2x1, 1x2, 4x1), and times all that the GEMM accepts back to back, the best again and flushed.
// Session 30 (run389-390, run394): of ~27,000 configurations cuBLASLt accepted 577-857 per shape. The one
// that beat the tuner's pick beyond the spread between two timings was the 128 x 128 tile in clusters of
// two on fc1 with GELU (5-7%, 4,616 and 50,432 rows), which the tuner now also times (linear.cpp). At
// vit_large b8 the pick was the nvjet 256 x 144 tile that PyTorch's compiled model runs too (run388).
//   lt_sweep ROWS IN OUT [bias|gelu|residual] [top 12]
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/tuning.h"
#include "gap_kernels.h"

using namespace vitrt;
using namespace vitrt::cuda;

int main(int argc, char** argv) {
  bench::LtShape sh;
  bench::LtRig lr;
  if (!bench::lt_setup(argc, argv, "top", 12, sh, lr)) return argc < 4 ? 2 : 1;
  const auto& [rows, in, out, epi, res, top, props, arch, sms, out_dt, act] = sh;
  void* a = bench::device_random(static_cast<std::size_t>(rows) * in, DT::bf16, 1.f, 1);
  void* w = bench::device_random(static_cast<std::size_t>(out) * in, DT::bf16, 0.03f, 2);
  void* bias = bench::device_random(static_cast<std::size_t>(out), out_dt, 0.5f, 3);
  void* d = bench::device_random(static_cast<std::size_t>(rows) * out, out_dt, 1.f, 4);
  TuneCache cache(tune_device_key(props), "/tmp/vitrt_lt_sweep_tune.json", true);
  const LinearWeights lw{nullptr, nullptr, out, in};
  const LinearArgs la{&lw, rows, a, in, DT::bf16, d, out, out_dt, act, res};
  LinearOp op(lr.lt, la, w, bias, Precision::bf16, lr.context(&cache, sms, arch));
  const double flop = 2.0 * static_cast<double>(rows) * in * out;
  auto b2b = [&] { return bench::b2b_us(op, la, lr); };
  auto flushed = [&] {
    return time_us(
        [&] {
          op.execute(lr.lt, la, lr.workspace, lr.s);
          return true;
        },
        lr.s, lr.flush);
  };
  const nlohmann::json picked = op.algo_json();
  const std::string picked_name = op.algo_name();
  const double pick_b2b = b2b(), pick_flushed = flushed();
  std::printf(
      "%lld x %d -> %d, %s, %s: the tuner's pick %s: %.1f us back to back (%.0f TFLOP/s), %.1f flushed\n",
      static_cast<long long>(rows), in, out, epi.c_str(), props.name, picked_name.c_str(), pick_b2b,
      flop / pick_b2b * 1e-6, pick_flushed);

  int n_ids = 0;
  const std::vector<nlohmann::json> configs = bench::lt_configs(lr.lt, res ? CUDA_R_32F : CUDA_R_16BF, n_ids);
  struct Timed {
    double us;
    nlohmann::json algo;
    std::string name;
  };
  std::vector<Timed> timed;
  const std::size_t tried = configs.size();
  for (const nlohmann::json& cfg : configs)
    if (bench::lt_try(op, la, lr, cfg)) timed.push_back({b2b(), op.algo_json(), op.algo_name()});
  std::sort(timed.begin(), timed.end(), [](const Timed& x, const Timed& y) { return x.us < y.us; });
  std::printf("%d algorithm ids, %zu configurations tried, %zu accepted\n", n_ids, tried, timed.size());
  for (std::size_t i = 0; i < timed.size() && static_cast<int>(i) < top; ++i) {
    op.use_algo(lr.lt, timed[i].algo, bench::LtRig::kWorkspace);
    const double again = b2b(), fl = flushed();
    std::printf("  %-70s %.1f us back to back (again %.1f, %.0f TFLOP/s), %.1f flushed; / pick %.3f\n",
                timed[i].name.c_str(), timed[i].us, again, flop / again * 1e-6, fl, again / pick_b2b);
  }
  op.use_algo(lr.lt, picked, bench::LtRig::kWorkspace);
  std::printf("  the pick again: %.1f us back to back\n", b2b());
  for (void* p : {a, w, bias, d}) CUDA_CHECK(cudaFree(p));
  return 0;
}
