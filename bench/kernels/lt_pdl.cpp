// Experiment (docs/performance.md, session 32): can cuBLASLt's GEMMs take part in dependent launches?
// Session 15 found that the nvjet kernels the tuner picks do not wait on the kernel before them (no
// griddepcontrol.wait), so a programmatic graph edge into them would race; 2,764 other kernels in the
// library do wait. This tool, for one GEMM shape:
//   1. tries cuBLASLt's heuristic candidates (up to 256) and every algorithm id x tile x stage count x
//      cluster shape (five) it accepts with default options, names the
//      kernel each one launches (from a captured graph) and times it alone, back to back;
//   2. finds out which of them wait, by running each behind a late writer on a programmatic edge: a kernel
//      that lets the GEMM launch at once and rewrites its input (and its residual) 30 µs later. Only a
//      GEMM that waits gives the bits of the same GEMM run in plain stream order;
//   3. times chains of LayerNorm -> GEMM pairs (our LayerNorm, a dependent launch that lets the next
//      kernel launch at once; one weight copy per pair, together more than L2 holds) in a CUDA graph: the
//      tuner's pick with plain edges against the fastest waiting kernels with plain and programmatic edges;
//   4. where VITRT_SMALL_GEMM admits the row count, the same chain on our small GEMM (gemm_small.cuh), which
//      copies its weight before it waits.
//   lt_pdl ROWS IN OUT [bias|gelu|residual] [waiting kernels to chain, 4; 0: steps 1-3 for the pick only]
// LT_PDL_NORM=0 leaves the LayerNorm out of every chain (GEMMs only), so that the difference between the
// two runs is what a LayerNorm costs in the chain.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/layernorm.cuh"
#include "backend/cuda/linear.h"
#include "backend/cuda/tuning.h"
#include "gap_kernels.h"

using namespace vitrt;
using namespace vitrt::cuda;

namespace {

// A captured graph, instantiated; `programmatic` turns the edges into cuBLASLt's kernels (every kernel
// that is not ours) into programmatic ones.
struct Graph {
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::vector<std::string> names;  // the kernel nodes, in the order the graph lists them
  int changed = 0;
  Graph(cudaStream_t s, const std::function<void()>& work, bool programmatic) {
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    work();
    CUDA_CHECK(cudaStreamEndCapture(s, &g));
    std::size_t n = 0;
    CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
    std::vector<cudaGraphNode_t> nodes(n);
    CUDA_CHECK(cudaGraphGetNodes(g, nodes.data(), &n));
    for (cudaGraphNode_t node : nodes) {
      cudaGraphNodeType t{};
      CUDA_CHECK(cudaGraphNodeGetType(node, &t));
      if (t == cudaGraphNodeTypeKernel) names.push_back(bench::kernel_node_name(node));
    }
    if (programmatic)
      changed = bench::make_edges_programmatic(g, [](const std::string& name) {
        return name.find("vitrt") == std::string::npos && name.find("late_copy") == std::string::npos;
      });
    CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  }
  ~Graph() {
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
};

std::vector<unsigned char> to_host(const void* p, std::size_t bytes) {
  std::vector<unsigned char> h(bytes);
  CUDA_CHECK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  bench::LtShape sh;
  bench::LtRig lr;
  if (!bench::lt_setup(argc, argv, "chained", 4, sh, lr)) return argc < 4 ? 2 : 1;
  const auto& [rows, in, out, epi, res, chained, props, arch, sms, out_dt, act] = sh;
  const std::size_t a_bytes = static_cast<std::size_t>(rows) * in * 2;
  const std::size_t d_bytes = static_cast<std::size_t>(rows) * out * dt_size(out_dt);
  const std::size_t w_bytes = static_cast<std::size_t>(out) * in * 2;
  // One weight copy per chained pair, together 1.5x L2, so each GEMM reads its weight from memory as the
  // forward's layers do.
  const int pairs = static_cast<int>(std::clamp<std::size_t>(
      (3 * static_cast<std::size_t>(props.l2CacheSize) / 2 + w_bytes - 1) / w_bytes, 24, 240));
  void* x = bench::device_random(static_cast<std::size_t>(rows) * in, DT::f32, 1.f, 1);
  void* ln_w = bench::device_random(static_cast<std::size_t>(in), DT::f32, 0.2f, 2);
  void* ln_b = bench::device_random(static_cast<std::size_t>(in), DT::f32, 0.2f, 3);
  void* a = bench::device_random(static_cast<std::size_t>(rows) * in, DT::bf16, 1.f, 4);
  void* a_new = bench::device_random(static_cast<std::size_t>(rows) * in, DT::bf16, 1.f, 5);
  void* a_old = bench::device_random(static_cast<std::size_t>(rows) * in, DT::bf16, 1.f, 6);
  void* bias = bench::device_random(static_cast<std::size_t>(out), out_dt, 0.5f, 7);
  void* d = bench::device_random(static_cast<std::size_t>(rows) * out, out_dt, 1.f, 8);
  void* d0 = bench::device_random(static_cast<std::size_t>(rows) * out, out_dt, 1.f, 9);
  std::vector<void*> ws;
  for (int i = 0; i < pairs; ++i)
    ws.push_back(bench::device_random(static_cast<std::size_t>(out) * in, DT::bf16, 0.03f, 100 + i));

  TuneCache cache(tune_device_key(props), "/tmp/vitrt_lt_pdl_tune.json", true);
  const LinearWeights lw{nullptr, nullptr, out, in};
  const LinearArgs la{&lw, rows, a, in, DT::bf16, d, out, out_dt, act, res};
  std::vector<std::unique_ptr<LinearOp>> ops;
  for (int i = 0; i < pairs; ++i)
    ops.push_back(std::make_unique<LinearOp>(lr.lt, la, ws[static_cast<std::size_t>(i)], bias,
                                             Precision::bf16, lr.context(&cache, sms, arch)));
  LinearOp& op = *ops[0];
  const double flop = 2.0 * static_cast<double>(rows) * in * out;
  auto b2b = [&] { return bench::b2b_us(op, la, lr); };
  // The kernels o launches, by name.
  auto kernel_names = [&](const LinearOp& o) {
    Graph g(
        lr.s, [&] { o.execute(lr.lt, la, lr.workspace, lr.s); }, false);
    std::string all;
    for (const std::string& n : g.names) all += (all.empty() ? "" : " + ") + n;
    return all;
  };
  // 1: op's kernel waits behind the late writer (the bits of a plain run), 0: it does not, -1: no kernel
  // edge to test.
  auto waits = [&]() -> int {
    CUDA_CHECK(cudaMemcpy(a, a_new, a_bytes, cudaMemcpyDeviceToDevice));
    if (res) CUDA_CHECK(cudaMemcpy(d, d0, d_bytes, cudaMemcpyDeviceToDevice));
    op.execute(lr.lt, la, lr.workspace, lr.s);
    CUDA_CHECK(cudaStreamSynchronize(lr.s));
    const std::vector<unsigned char> ref = to_host(d, d_bytes);
    Graph g(
        lr.s,
        [&] {
          bench::launch_late_copy(a, a_new, a_bytes, res ? d : nullptr, d0, res ? d_bytes : 0, 30000, lr.s);
          op.execute(lr.lt, la, lr.workspace, lr.s);
        },
        true);
    if (g.changed == 0) return -1;
    for (int trial = 0; trial < 3; ++trial) {
      CUDA_CHECK(cudaMemcpy(a, a_old, a_bytes, cudaMemcpyDeviceToDevice));
      CUDA_CHECK(cudaMemset(d, 0, d_bytes));
      CUDA_CHECK(cudaGraphLaunch(g.exec, lr.s));
      CUDA_CHECK(cudaStreamSynchronize(lr.s));
      if (to_host(d, d_bytes) != ref) return 0;
    }
    return 1;
  };
  // µs per LayerNorm -> GEMM pair in a graph of `pairs` of them, each GEMM on its own weight copy.
  const LayerNormParams lnp{
      x,    in, a,    in, DT::bf16, static_cast<const float*>(ln_w), static_cast<const float*>(ln_b),
      rows, in, 1e-6f};
  // gemm(i) launches pair i's GEMM.
  const char* norm_env = std::getenv("LT_PDL_NORM");
  const bool with_norm = norm_env == nullptr || std::strcmp(norm_env, "0") != 0;
  if (!with_norm) std::printf("LT_PDL_NORM=0: chains of GEMMs alone, no LayerNorm\n");
  auto chain = [&](const std::function<void(std::size_t)>& gemm, bool programmatic, int* changed) {
    Graph g(
        lr.s,
        [&] {
          for (std::size_t i = 0; i < ws.size(); ++i) {
            if (with_norm) layernorm(lnp, lr.s);
            gemm(i);
          }
        },
        programmatic);
    if (changed) *changed = g.changed;
    return bench::event_median_us([&] { CUDA_CHECK(cudaGraphLaunch(g.exec, lr.s)); }, lr.s, 15, 3, pairs);
  };
  auto chain_of = [&](const std::vector<std::unique_ptr<LinearOp>>& chain_ops, bool programmatic,
                      int* changed) {
    return chain([&](std::size_t i) { chain_ops[i]->execute(lr.lt, la, lr.workspace, lr.s); }, programmatic,
                 changed);
  };
  auto chain_us = [&](bool programmatic, int* changed) { return chain_of(ops, programmatic, changed); };
  auto use_everywhere = [&](const nlohmann::json& cfg) {
    for (auto& o : ops)
      if (!o->use_algo(lr.lt, cfg, bench::LtRig::kWorkspace)) return false;
    return true;
  };

  const nlohmann::json picked = op.algo_json();
  // Steps 1-3 of the header for the waiting kernels (the pick chained first and last).
  auto sweep_and_chain = [&] {
    struct Timed {
      double us;
      nlohmann::json algo;
      std::string kernel;
      int waits;
    };
    std::vector<Timed> timed;
    std::vector<std::string> seen;
    // Times a configuration once cuBLASLt accepts it and it runs; each configuration once.
    auto try_config = [&](const nlohmann::json& cfg) {
      if (!bench::lt_try(op, la, lr, cfg)) return;
      const std::string key = op.algo_json().dump();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) return;
      seen.push_back(key);
      const std::string kernel = kernel_names(op);
      timed.push_back({b2b(), op.algo_json(), kernel, waits()});
    };
    const std::vector<nlohmann::json> heuristic = op.heuristic_algos(lr.lt, 256, bench::LtRig::kWorkspace);
    std::printf("cuBLASLt's heuristic lists %zu candidates\n", heuristic.size());
    for (const nlohmann::json& cfg : heuristic) try_config(cfg);
    int n_ids = 0;
    const std::vector<nlohmann::json> configs =
        bench::lt_configs(lr.lt, res ? CUDA_R_32F : CUDA_R_16BF, n_ids);
    for (const nlohmann::json& cfg : configs) try_config(cfg);
    const std::size_t tried = heuristic.size() + configs.size();
    std::sort(timed.begin(), timed.end(), [](const Timed& p, const Timed& q) { return p.us < q.us; });
    int n_wait = 0;
    for (const Timed& t : timed) n_wait += t.waits == 1;
    std::printf("%d algorithm ids, %zu configurations tried, %zu accepted, %d of them wait\n", n_ids, tried,
                timed.size(), n_wait);
    std::printf("  fastest alone (us back to back, waits):\n");
    for (std::size_t i = 0; i < timed.size() && i < 8; ++i)
      std::printf("    %.1f  %d  %s  %s\n", timed[i].us, timed[i].waits, timed[i].kernel.c_str(),
                  timed[i].algo.dump().c_str());
    std::printf("  fastest that wait:\n");
    std::vector<const Timed*> to_chain;
    int listed = 0;
    for (const Timed& t : timed) {
      if (t.waits != 1) continue;
      if (listed++ < std::max(chained, 8))
        std::printf("    %.1f  %s  %s\n", t.us, t.kernel.c_str(), t.algo.dump().c_str());
      if (static_cast<int>(to_chain.size()) < chained) to_chain.push_back(&t);
    }

    std::printf("chains of %d LayerNorm -> GEMM pairs in one graph, us per pair (median of 15 launches):\n",
                pairs);
    use_everywhere(picked);
    int changed = 0;
    std::printf("  the pick, plain edges: %.2f\n", chain_us(false, nullptr));
    for (const Timed* t : to_chain) {
      if (!use_everywhere(t->algo)) continue;
      const double plain = chain_us(false, nullptr);
      const double prog = chain_us(true, &changed);
      std::printf("  %s: plain %.2f, programmatic %.2f (%d edges)\n", t->kernel.c_str(), plain, prog,
                  changed);
    }
    use_everywhere(picked);
    std::printf("  the pick again, plain edges: %.2f\n", chain_us(false, nullptr));
  };

  const std::string picked_kernel = kernel_names(op);
  const double pick_b2b = b2b();
  std::printf("%lld x %d -> %d, %s, %s: the tuner's pick %s (%s): %.1f us back to back (%.0f TFLOP/s)\n",
              static_cast<long long>(rows), in, out, epi.c_str(), props.name, op.algo_name().c_str(),
              picked_kernel.c_str(), pick_b2b, flop / pick_b2b * 1e-6);
  std::printf("  the pick waits behind a late writer: %d (1 yes, 0 no)\n", waits());
  if (chained > 0)
    sweep_and_chain();
  else
    std::printf("chains of %d LayerNorm -> GEMM pairs, the pick, plain edges: %.2f us per pair\n", pairs,
                chain_us(false, nullptr));

  // Our small GEMM (gemm_small.cuh, sessions 21-23) in the same chain: a dependent launch that copies its
  // weight before it waits. It runs where VITRT_SMALL_GEMM admits the row count.
  if (rows <= small_gemm_max_rows()) {
    TuneCache small_cache(tune_device_key(props), "/tmp/vitrt_lt_pdl_small_tune.json", true);
    GemmContext ctx = lr.context(&small_cache, sms, arch);
    ctx.dependent = true;
    std::vector<std::unique_ptr<LinearOp>> small_ops;
    for (int i = 0; i < pairs; ++i)
      small_ops.push_back(
          std::make_unique<LinearOp>(lr.lt, la, ws[static_cast<std::size_t>(i)], bias, Precision::bf16, ctx));
    if (!small_ops[0]->small_kernel()) {
      std::printf("our small GEMM does not take this GEMM\n");
    } else {
      std::printf("our small GEMM (%s): chain %.2f us per pair; the pick, plain edges, again: %.2f\n",
                  kernel_names(*small_ops[0]).c_str(), chain_of(small_ops, false, nullptr),
                  chain_us(false, nullptr));
    }
    // Every variant of it, in the same chain.
    GemmSmallParams sp{a, in, ws[0], bias, d, out, rows, in, out, DT::bf16, out_dt, act, res};
    for (const int v : gemm_small_variants(sp, arch)) {
      sp.variant = v;
      const double us = chain(
          [&](std::size_t i) {
            sp.w = ws[i];
            gemm_small(sp, arch, lr.s);
          },
          false, nullptr);
      std::printf("  small GEMM %s: chain %.2f us per pair\n", gemm_small_variant_name(v).c_str(), us);
    }
  }
  for (void* p : {x, ln_w, ln_b, a, a_new, a_old, bias, d, d0}) CUDA_CHECK(cudaFree(p));
  for (void* p : ws) CUDA_CHECK(cudaFree(p));
  return 0;
}
