// Experiment (docs/performance.md, sessions 26-27): can a GEMM of ours match cuBLASLt's on the
// large-batch GEMMs of a ViT block, so that LayerNorm, GELU and the residual can be fused into it? The
// kernel is the library's (src/backend/cuda/gemm_ws_kernel.cuh, where its layout is described); this
// driver instantiates it in more configurations than the library runs: clusters of two with and without
// A's multicast, the fp32 residual epilogues, two epilogue buffers, and per-block clocks (`stamps`).
// It times every variant against the tuned cuBLASLt algorithm (LinearOp, as `vitrt tune` picks it) on
// the same buffers and checks the outputs agree (bf16: within 2% + 0.02). The GELU case compares our
// exact GELU with what a 16-bit session runs without our kernel: cuBLASLt's GELU epilogue, which is the
// tanh form (gelu_probe), or with VITRT_EXACT_GELU=1 cuBLASLt's bias-only GEMM and the GELU pass.
// Session 27 (run338-342): with TMA stores the cooperative variant is level with cuBLASLt on qkv and fc1
// without GELU (0.97-1.03); with the exact GELU it is 1.08-1.10x of cuBLASLt's tanh-form GELU, and the
// residual GEMMs 1.04-1.10x. Session 28 (run348): 0.75-0.78x of cuBLASLt + the pass at 50,432 rows.
//   gemm_ws [rows 50432] [embed 768] [mlp 3072] [case name prefix] [variant index, -1: all] [stamps]
//   gemm_ws 0 0 0 gelu_probe     (which GELU cuBLASLt's epilogue computes; VITRT_EXACT_GELU=1: the pass)
// GEMM_WS_SPLITS=1,2,3 runs the residual cases that only add (TMA adds, reductions) with K in each of
// those numbers of parts (split-K; for few rows, session 44). GEMM_WS_ZERO_A=1 makes A all zeros (what
// `vitrt tune` timed on before session 29: cuBLASLt 5-7% faster at 50,432 rows, our ping-pong unchanged;
// run366); GEMM_WS_PDL=1 launches our kernels as
// dependent launches, as the library does (no change, run366); GEMM_WS_CLUSTER_ATTR=1 launches the
// unclustered variants with a 1 x 1 x 1 cluster attribute, as sessions 26-28 did (see launch_one).
// Variants 101 and 102 are the library's own launches (gemm_ws.cuh).
#include <cublasLt.h>
#include <cuda.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_ws.cuh"
#include "backend/cuda/gemm_ws_kernel.cuh"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tuning.h"
#include "core/env.h"
#include "gap_kernels.h"

using namespace vitrt;
using namespace vitrt::cuda;
using ws::Epi;

namespace {

struct Variant {
  bool coop;
  int cl;
  int share;  // ws::Args::share (clusters of two only)
  int nb;     // the *_tma epilogues' buffers per consumer (the other epilogues run only with 2)
  int r = 2;  // 64-row slabs per consumer tile (1: 64 x 128 ping-pong tiles, unclustered only)
  int bm() const { return (coop ? 128 : 64) * r; }
  int bn() const { return 128; }
};
// Variants 2 and 6 with TMA epilogues (coop, one or two buffers, no cluster) and 4 (ping-pong, one
// buffer) are the library's. Variants 8-11 are diagnostics for the clusters' cost: no multicast, with
// and without the coupled stages. 12 and 13 are ping-pong on 64 x 128 tiles (for few rows; session 45).
constexpr Variant kVariants[] = {{false, 1, 0, 2},    {false, 2, 2, 2},   {true, 1, 0, 2},  {true, 2, 2, 2},
                                 {false, 1, 0, 1},    {false, 2, 2, 1},   {true, 1, 0, 1},  {true, 2, 2, 1},
                                 {false, 2, 0, 2},    {false, 2, 1, 2},   {true, 2, 0, 2},  {true, 2, 1, 2},
                                 {false, 1, 0, 1, 1}, {false, 1, 0, 2, 1}};

template <bool Coop, Epi E, int CL, int NB, bool Stamps, int R = 2>
void launch_one(const ws::Args& args, int sms, cudaStream_t s) {
  constexpr int S = ws::fit_stages(Coop, R, E, NB);
  constexpr auto kernel = ws::gemm_ws_kernel<__nv_bfloat16, Coop, R, S, E, CL, NB, Stamps>;
  constexpr int bytes = ws::smem_bytes(Coop, R, S, E, NB);
  allow_dynamic_smem(kernel, bytes);
  static const bool pdl = std::getenv("GEMM_WS_PDL") != nullptr;
  cudaLaunchAttribute attr[2]{};
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CL;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.blockDim = dim3(ws::kThreads);
  cfg.dynamicSmemBytes = bytes;
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  // One wave: as many clusters as fit at once (not every SM can join a cluster of two when the GPCs'
  // SM counts are odd; a second wave of persistent blocks would double the time). Blocks that are not in
  // clusters are launched without the cluster attribute, as the library launches them: with a cluster
  // dimension of 1 x 1 x 1 set, ping-pong qkv at 50,432 rows took 297 us instead of 243 (run371; the
  // blocks' own clock counts were the same), which sessions 26-28 measured as ping-pong's own speed.
  static const int resident = [&] {
    cfg.gridDim = dim3(static_cast<unsigned>(sms / CL * CL));
    int n = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveClusters(&n, kernel, &cfg));
    std::printf("  (%s %dx128, %d stages, %d epilogue buffers: %d clusters of %d resident)\n", Coop ? "coop" : "ping-pong",
                (Coop ? 128 : 64) * R, S,
                ws::epi_tma(E) ? NB : 0, n, CL);
    return n;
  }();
  cfg.gridDim = dim3(static_cast<unsigned>(std::min(resident, args.tiles * args.splits) * CL));
  static const bool force_attr = std::getenv("GEMM_WS_CLUSTER_ATTR") != nullptr;
  if (CL == 1 && !force_attr) {  // no cluster attribute at all: see the note above
    cfg.attrs = attr + 1;
    cfg.numAttrs = pdl ? 1 : 0;
  }
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args));
}

template <Epi E, int NB, bool Stamps>
void launch_nb(Variant v, const ws::Args& args, int sms, cudaStream_t s) {
  if (v.coop) {
    if (v.cl == 2) launch_one<true, E, 2, NB, Stamps>(args, sms, s);
    else launch_one<true, E, 1, NB, Stamps>(args, sms, s);
  } else {
    if (v.cl == 2) launch_one<false, E, 2, NB, Stamps>(args, sms, s);
    else if (v.r == 1) launch_one<false, E, 1, NB, Stamps, 1>(args, sms, s);
    else launch_one<false, E, 1, NB, Stamps>(args, sms, s);
  }
}
template <Epi E, bool Stamps>
void launch_epi(Variant v, const ws::Args& args, int sms, cudaStream_t s) {
  if constexpr (ws::epi_tma(E)) {
    if (v.nb == 1) return launch_nb<E, 1, Stamps>(v, args, sms, s);
  }
  launch_nb<E, 2, Stamps>(v, args, sms, s);
}
template <bool Stamps>
void launch_stamps(Variant v, Epi e, const ws::Args& args, int sms, cudaStream_t s) {
  switch (e) {
    case Epi::bias: launch_epi<Epi::bias, Stamps>(v, args, sms, s); break;
    case Epi::residual: launch_epi<Epi::residual, Stamps>(v, args, sms, s); break;
    case Epi::residual_red: launch_epi<Epi::residual_red, Stamps>(v, args, sms, s); break;
    case Epi::residual_tma: launch_epi<Epi::residual_tma, Stamps>(v, args, sms, s); break;
    case Epi::bias_tma: launch_epi<Epi::bias_tma, Stamps>(v, args, sms, s); break;
    case Epi::gelu_tma: launch_epi<Epi::gelu_tma, Stamps>(v, args, sms, s); break;
    case Epi::gelu_tanh_tma: launch_epi<Epi::gelu_tanh_tma, Stamps>(v, args, sms, s); break;
  }
}

// D = A W^T + bias (+ GELU, or added to D): A [rows, k] bf16, W [n, k] bf16, bias [n] bf16 (fp32 with
// the residual epilogues), K split in
// `splits` parts (the adding epilogues only). With `stamps`, the kernel built with per-block clocks runs and
// writes them there.
void gemm_ws(Variant v, Epi e, const void* a, const void* w, const void* bias, void* d, std::int64_t rows, int n,
             int k, int sms, cudaStream_t s, unsigned long long* stamps = nullptr, int splits = 1) {
  const int tn = v.bn();
  VITRT_CHECK(n % (tn * v.cl) == 0 && k % ws::kBK == 0, "gemm_ws: n must be a multiple of ", tn * v.cl, " and k of ",
              ws::kBK);
  VITRT_CHECK(splits >= 1 && splits <= k / ws::kBK && (splits == 1 || ws::epi_adds(e)),
              "gemm_ws: K splits from 1 to k / ", ws::kBK, ", above 1 only with the residual added by TMA or reductions");
  VITRT_CHECK(v.r == 2 || (!v.coop && v.cl == 1), "gemm_ws: 64-row tiles are built for unclustered ping-pong only");
  const ws::Args args =
      ws::make_args(v.coop, v.r, e, v.cl, a, k, w, bias, d, n, DT::bf16, rows, n, k, v.share, stamps, splits);
  if (stamps) launch_stamps<true>(v, e, args, sms, s);
  else launch_stamps<false>(v, e, args, sms, s);
}

std::vector<float> to_host(const void* p, std::size_t n, DT dt) {
  std::vector<float> out(n);
  if (dt == DT::f32) {
    CUDA_CHECK(cudaMemcpy(out.data(), p, n * 4, cudaMemcpyDeviceToHost));
    return out;
  }
  std::vector<__nv_bfloat16> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
  for (std::size_t i = 0; i < n; ++i) out[i] = __bfloat162float(h[i]);
  return out;
}

// How many outputs differ from cuBLASLt's by more than 2% + 0.02 (NaN counts); the largest difference
// and the largest reference output.
std::size_t outside(const std::vector<float>& got, const std::vector<float>& ref, double& worst, double& scale) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (!(diff <= 0.02 * (1.0 + std::fabs(ref[i])))) ++bad;
    if (!(diff <= worst)) worst = diff;
  }
  return bad;
}

// The K splits to run for an epilogue: GEMM_WS_SPLITS (e.g. "1,2,3") for the adding epilogues, those up
// to k / kBK; 1 otherwise.
std::vector<int> ws_splits(Epi e, int k) {
  std::vector<int> v;
  const char* env = std::getenv("GEMM_WS_SPLITS");
  if (ws::epi_adds(e) && env != nullptr)
    for (const std::string_view item : comma_items(env)) {
      const int sp = std::atoi(std::string(item).c_str());
      if (sp >= 1 && sp <= k / ws::kBK) v.push_back(sp);
    }
  if (v.empty()) v.push_back(1);
  return v;
}

// One stamped launch's per-block clocks (ws::kStamps per SM's block): the means as before, and the main loop's
// clocks per k-tile in place (a block's clocks less its fill and epilogues, over its k-tiles), with the
// spread of the blocks' run times and end times. Cluster c of C (blocks of cl) takes items c, c + C, ... of
// tiles * splits, a tile being cl column tiles of 128 (one per block).
void report_stamps(const std::vector<unsigned long long>& h, bool coop, bool flushed, std::int64_t rows, int n, int k,
                   int bm, int cl, int splits) {
  const int sms = static_cast<int>(h.size() / ws::kStamps);
  const int tiles = static_cast<int>((rows + bm - 1) / bm) * (n / 128 / cl), items = tiles * splits,
            ktiles = k / ws::kBK;
  double sum[4] = {0, 0, 0, 0}, fill = 0, epilogue = 0, loop = 0, loop_ktiles = 0;
  unsigned long long first_start = ~0ull;
  std::vector<double> run_us, end_ns;
  std::vector<int> ids;
  for (int b = 0; b < sms; ++b) {
    const unsigned long long* q = &h[static_cast<std::size_t>(ws::kStamps) * b];
    if (q[3] == 0) continue;
    ids.push_back(b);
    first_start = std::min(first_start, q[4]);
  }
  const int blocks = static_cast<int>(ids.size());
  if (blocks == 0) return;
  for (const int b : ids) {
    const unsigned long long* q = &h[static_cast<std::size_t>(ws::kStamps) * b];
    for (int i = 0; i < 4; ++i) sum[i] += static_cast<double>(q[i]);
    const double f = static_cast<double>(q[6]) / (coop ? 2 : 1), e = static_cast<double>(q[7]);
    fill += f;
    epilogue += e;
    int kt = 0, mine = 0;
    for (int item = b / cl; item < items; item += blocks / cl, ++mine) {
      const int split = item / tiles;
      kt += (split + 1) * ktiles / splits - split * ktiles / splits;
    }
    // A cooperative tile's two consumers run their epilogues side by side (half the sum is the block's);
    // a ping-pong consumer's epilogue runs beside the other's main loop, except the block's last (about
    // its share of the sum).
    loop += static_cast<double>(q[3]) - f - (coop ? e / 2 : e / std::max(mine, 1));
    loop_ktiles += kt;
    run_us.push_back(1e-3 * static_cast<double>(q[5] - q[4]));
    end_ns.push_back(1e-3 * static_cast<double>(q[5] - first_start));
  }
  std::sort(run_us.begin(), run_us.end());
  std::sort(end_ns.begin(), end_ns.end());
  const double total = sum[3] / blocks, ghz = total / (1e3 * std::accumulate(run_us.begin(), run_us.end(), 0.0) / blocks);
  const auto pct = [](const std::vector<double>& x, double f) { return x[static_cast<std::size_t>(f * (x.size() - 1))]; };
  std::printf("    %s: %d blocks, %.0f clocks per block (%.2f GHz); producer waits for a free stage %.1f%%, consumers "
              "wait for a full stage %.1f%%, for their turn %.1f%% (per consumer)\n",
              flushed ? "flushed" : "back to back", blocks, total, ghz, 100 * sum[0] / sum[3], 50 * sum[1] / sum[3],
              50 * sum[2] / sum[3]);
  std::printf("      per block: fill %.0f, epilogues %.0f (both consumers' sum); main loop %.0f clocks per k-tile "
              "(%.1f%% of the dense rate's %d for a %d x 128 tile)\n",
              fill / blocks, epilogue / blocks, loop / loop_ktiles, 100.0 * 4 * bm / (loop / loop_ktiles), 4 * bm, bm);
  std::printf("      blocks run %.2f / %.2f / %.2f us (min / median / max), end %.2f / %.2f / %.2f us after the first "
              "start\n",
              run_us.front(), pct(run_us, 0.5), run_us.back(), end_ns.front(), pct(end_ns, 0.5), end_ns.back());
}

struct Case {
  const char* name;
  int in, out;
  Epi epi;
};

// Which GELU a 16-bit LinearOp computes without our kernel (cuBLASLt's GELU_BIAS epilogue; with
// VITRT_EXACT_GELU=1 cuBLASLt's bias-only GEMM and the GELU pass): W = 0, so D = GELU(bias) rounded to bf16,
// for 4,096 bf16 inputs in [-8, 8). Each output is compared with the exact GELU (erf form) and with the tanh form,
// both rounded to bf16 on the host.
int gelu_probe(const GemmContext& ctx, cublasLtHandle_t lt) {
  constexpr int kRows = 64, kIn = 64, kOut = 4096;
  std::vector<__nv_bfloat16> hb(kOut), hw(static_cast<std::size_t>(kOut) * kIn, __float2bfloat16(0.0f));
  for (int i = 0; i < kOut; ++i) hb[static_cast<std::size_t>(i)] = __float2bfloat16(-8.0f + 16.0f * static_cast<float>(i) / kOut);
  void* a = bench::device_random(static_cast<std::size_t>(kRows) * kIn, DT::bf16, 1.f, 7);
  void *w = nullptr, *bias = nullptr, *d = nullptr;
  CUDA_CHECK(cudaMalloc(&w, hw.size() * 2));
  CUDA_CHECK(cudaMalloc(&bias, hb.size() * 2));
  CUDA_CHECK(cudaMalloc(&d, static_cast<std::size_t>(kRows) * kOut * 2));
  CUDA_CHECK(cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(bias, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice));
  const LinearWeights lw{nullptr, nullptr, kOut, kIn};
  const LinearArgs la{&lw, kRows, a, kIn, DT::bf16, d, kOut, DT::bf16, Epilogue::gelu_erf, false};
  LinearOp op(lt, la, w, bias, Precision::bf16, ctx);
  op.execute(lt, la, ctx.workspace, ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  const std::vector<float> got = to_host(d, static_cast<std::size_t>(kOut), DT::bf16);  // the first row
  int exact = 0, tanh_form = 0;
  double worst_exact = 0, worst_abs = 0, worst_abs_rounded = 0, worst_x = 0;
  for (int i = 0; i < kOut; ++i) {
    const double x = __bfloat162float(hb[static_cast<std::size_t>(i)]);
    const double e = 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    const double t = 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    const float g = got[static_cast<std::size_t>(i)];
    exact += g == __bfloat162float(__float2bfloat16(static_cast<float>(e)));
    tanh_form += g == __bfloat162float(__float2bfloat16(static_cast<float>(t)));
    worst_exact = std::max(worst_exact, std::fabs(g - e) / std::max(std::fabs(e), 1e-30));
    if (x <= -2.0 && std::fabs(g - e) > worst_abs) {  // the tail, where the outputs are small
      worst_abs = std::fabs(g - e);
      worst_x = x;
    }
    if (x <= -2.0)
      worst_abs_rounded = std::max(worst_abs_rounded, std::fabs(__bfloat162float(__float2bfloat16(static_cast<float>(e))) - e));
    if (i % 256 == 0)
      std::printf("  x %8.4f: LinearOp %.6g, exact %.6g, tanh form %.6g\n", x, static_cast<double>(g), e, t);
  }
  std::printf("LinearOp's GELU (bf16 out, %s) on %d inputs in [-8, 8): equal to the exact GELU rounded to bf16: %d, "
              "to the tanh form rounded: %d; largest relative difference from the exact value %.3g, for x <= -2 the largest "
              "absolute difference is %.3g (at x = %.4f; rounding the exact value to bf16 alone: up to %.3g)\n",
              exact_gelu_16bit() ? "bias-only GEMM + GELU pass" : "cuBLASLt's GELU_BIAS epilogue", kOut, exact, tanh_form, worst_exact, worst_abs, worst_x, worst_abs_rounded);
  for (void* q : {a, w, bias, d}) CUDA_CHECK(cudaFree(q));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // cuBLASLt is what this compares against: LinearOp must not tune or pick our kernel itself.
  setenv("VITRT_GEMM_WS", "0", 1);
  const std::int64_t rows = argc > 1 ? std::atoll(argv[1]) : 50432;
  const int embed = argc > 2 ? std::atoi(argv[2]) : 768, mlp = argc > 3 ? std::atoi(argv[3]) : 3072;
  const std::string only_case = argc > 4 ? argv[4] : "";  // for a profiler: one case, one variant
  const int only_variant = argc > 5 ? std::atoi(argv[5]) : -1;
  const bool stamps = argc > 6 && std::string(argv[6]) == "stamps";  // one more run per variant, clocked
  cudaDeviceProp props{};
  CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
  const int arch = props.major * 10 + props.minor, sms = props.multiProcessorCount;
  if (arch != 90) {
    std::printf("gemm_ws needs sm_90 (this device is sm_%d)\n", arch);
    return 1;
  }
  bench::LtRig lr;
  if (!bench::make_lt_rig(props, lr)) return 1;
  const cudaStream_t s = lr.s;
  const cublasLtHandle_t lt = lr.lt;
  const L2Flush& flush = lr.flush;
  TuneCache cache(tune_device_key(props), "/tmp/vitrt_gemm_ws_tune.json", true);
  if (only_case == "gelu_probe") return gelu_probe(lr.context(&cache, sms, arch), lt);
  std::printf("gemm_ws against tuned cuBLASLt, %lld rows, %s; us: flushed (as tuned) / back to back (20 per event pair)\n",
              static_cast<long long>(rows), props.name);

  const Case cases[] = {{"qkv", embed, 3 * embed, Epi::bias},
                        {"proj + residual", embed, embed, Epi::residual},
                        {"fc1 bias only", embed, mlp, Epi::bias},
                        {"fc2 + residual", mlp, embed, Epi::residual},
                        {"proj + residual by TMA add", embed, embed, Epi::residual_tma},
                        {"fc2 + residual by TMA add", mlp, embed, Epi::residual_tma},
                        {"proj + residual by reductions", embed, embed, Epi::residual_red},
                        {"fc2 + residual by reductions", mlp, embed, Epi::residual_red},
                        {"qkv by TMA store", embed, 3 * embed, Epi::bias_tma},
                        {"fc1 + exact GELU by TMA store", embed, mlp, Epi::gelu_tma},
                        {"fc1 + tanh GELU by TMA store", embed, mlp, Epi::gelu_tanh_tma},
                        {"fc1 bias only by TMA store", embed, mlp, Epi::bias_tma}};
  unsigned seed = 1;
  int failures = 0;
  for (const Case& c : cases) {
    if (std::string(c.name).rfind(only_case, 0) != 0) continue;
    const bool res = ws::epi_f32(c.epi);
    const DT out_dt = res ? DT::f32 : DT::bf16;
    const std::size_t nd = static_cast<std::size_t>(rows) * c.out;
    void* a = bench::device_random(static_cast<std::size_t>(rows) * c.in, DT::bf16, 1.f, seed++);
    if (std::getenv("GEMM_WS_ZERO_A"))
      CUDA_CHECK(cudaMemset(a, 0, static_cast<std::size_t>(rows) * c.in * 2));
    void* w = bench::device_random(static_cast<std::size_t>(c.out) * c.in, DT::bf16, 0.03f, seed++);
    void* bias = bench::device_random(static_cast<std::size_t>(c.out), DT::bf16, 0.5f, seed++);
    void* d0 = bench::device_random(nd, out_dt, 1.f, seed++);  // the residual's starting value
    void* d_lt = nullptr;
    void* d_ws = nullptr;
    CUDA_CHECK(cudaMalloc(&d_lt, nd * dt_size(out_dt)));
    CUDA_CHECK(cudaMalloc(&d_ws, nd * dt_size(out_dt)));
    const double flop = 2.0 * static_cast<double>(rows) * c.in * c.out;

    // The bias in D's type, the same values: fp32 for the residual cases (as the model's fp32 stream has),
    // for cuBLASLt and ours alike.
    void* bias_d = bias;
    if (res) {
      const std::vector<float> hb = to_host(bias, static_cast<std::size_t>(c.out), DT::bf16);
      CUDA_CHECK(cudaMalloc(&bias_d, hb.size() * 4));
      CUDA_CHECK(cudaMemcpy(bias_d, hb.data(), hb.size() * 4, cudaMemcpyHostToDevice));
    }
    const LinearWeights lw{nullptr, nullptr, c.out, c.in};
    const LinearArgs la{&lw, rows, a, c.in, DT::bf16, d_lt, c.out, out_dt,
                        c.epi == Epi::gelu_tma || c.epi == Epi::gelu_tanh_tma ? Epilogue::gelu_erf : Epilogue::none,
                        res};
    LinearOp op(lt, la, w, bias_d, Precision::bf16, lr.context(&cache, sms, arch));
    auto run_lt = [&] {
      op.execute(lt, la, lr.workspace, s);
      return true;
    };
    CUDA_CHECK(cudaMemcpy(d_lt, d0, nd * dt_size(out_dt), cudaMemcpyDeviceToDevice));
    run_lt();
    const std::vector<float> ref = to_host(d_lt, nd, out_dt);
    const double lt_flushed = time_us(run_lt, s, flush);
    const double lt_b2b = bench::event_median_us([&] { for (int r = 0; r < 20; ++r) run_lt(); }, s, 7, 2, 20);
    std::printf("\n%s: %lld x %d -> %d\n  cuBLASLt (tuned): %.1f / %.1f us (%.0f TFLOP/s back to back)\n", c.name,
                static_cast<long long>(rows), c.in, c.out, lt_flushed, lt_b2b, flop / lt_b2b * 1e-6);

    // One of our launches against cuBLASLt's output, D reset first (the residual's starting value, or
    // poisoned: NaN where nothing is written), then timed flushed and back to back.
    struct Checked {
      std::size_t bad;
      double worst, scale, flushed, b2b;
    };
    const auto check_and_time = [&](const std::function<bool()>& run) {
      if (res)
        CUDA_CHECK(cudaMemcpy(d_ws, d0, nd * dt_size(out_dt), cudaMemcpyDeviceToDevice));
      else
        CUDA_CHECK(cudaMemset(d_ws, 0xff, nd * dt_size(out_dt)));
      run();
      CUDA_CHECK(cudaStreamSynchronize(s));
      Checked r{0, 0, 0, 0, 0};
      r.bad = outside(to_host(d_ws, nd, out_dt), ref, r.worst, r.scale);
      r.flushed = time_us(run, s, flush);
      r.b2b = bench::event_median_us([&] { for (int i = 0; i < 20; ++i) run(); }, s, 7, 2, 20);
      if (r.bad) ++failures;
      return r;
    };

    for (int vi = 0; vi < static_cast<int>(std::size(kVariants)); ++vi) {
      const Variant v = kVariants[vi];
      if (c.out % (v.bn() * v.cl) != 0 || (only_variant >= 0 && vi != only_variant)) continue;
      if (!ws::epi_tma(c.epi) && v.nb != 2) continue;  // the buffers are the TMA epilogues' only
      // K in parts: GEMM_WS_SPLITS (a list, default 1) for the residual cases that only add, else 1.
      for (const int sp : ws_splits(c.epi, c.in)) {
        const Checked r = check_and_time([&] {
          gemm_ws(v, c.epi, a, w, bias_d, d_ws, rows, c.out, c.in, sms, s, nullptr, sp);
          return true;
        });
        std::printf("  ours [%d] %s %dx%d, %d stages, %d epilogue buffers, cluster %d (share %d), K in %d: %.1f / %.1f us (%.0f TFLOP/s), ours / cuBLASLt %.3f / %.3f; max |diff| %.3g "
                    "(outputs up to %.3g), %zu outside 2%%\n",
                    vi, v.coop ? "coop" : "ping-pong", v.bm(), v.bn(), ws::fit_stages(v.coop, v.r, c.epi, v.nb),
                    ws::epi_tma(c.epi) ? v.nb : 0, v.cl, v.share, sp, r.flushed, r.b2b, flop / r.b2b * 1e-6,
                    r.flushed / lt_flushed, r.b2b / lt_b2b, r.worst, r.scale, r.bad);
        if (stamps) {  // launches with the per-block clocks on: where the block's time goes
          const std::size_t ns = ws::kStamps * static_cast<std::size_t>(sms);
          unsigned long long* st = nullptr;
          CUDA_CHECK(cudaMalloc(&st, ns * 8));
          // As timed flushed (L2 flushed before each launch), then back to back (operands left in L2 by
          // the launch before); the last of 10 in a row, so that the clock has settled as it has in the
          // timed medians (a single launch after an idle host sync ran at 1.35-1.64 GHz).
          for (const bool flushed : {true, false}) {
            for (int r = 0; r < 10; ++r) {  // the stamps are zeroed before the 10th
              if (r == 9) CUDA_CHECK(cudaMemsetAsync(st, 0, ns * 8, s));
              if (flushed && flush.buffer) CUDA_CHECK(cudaMemsetAsync(flush.buffer, 0, flush.bytes, s));
              gemm_ws(v, c.epi, a, w, bias_d, d_ws, rows, c.out, c.in, sms, s, st, sp);
            }
            std::vector<unsigned long long> h(ns);
            CUDA_CHECK(cudaMemcpy(h.data(), st, ns * 8, cudaMemcpyDeviceToHost));
            report_stamps(h, v.coop, flushed, rows, c.out, c.in, v.bm(), v.cl, sp);
          }
          CUDA_CHECK(cudaFree(st));
        }
      }
    }
    // The library's own launches of its variants (gemm_ws.cu): dependent launches, its grid.
    if (c.epi == Epi::bias_tma || c.epi == Epi::gelu_tma) {
      GemmWsParams lp;
      lp.a = a;
      lp.lda = c.in;
      lp.w = w;
      lp.bias = bias;
      lp.d = d_ws;
      lp.ldd = c.out;
      lp.rows = rows;
      lp.in = c.in;
      lp.out = c.out;
      lp.act = c.epi == Epi::gelu_tma ? Epilogue::gelu_erf : Epilogue::none;
      lp.sm_count = sms;
      for (int lv : gemm_ws_variants(lp, arch)) {
        if (only_variant >= 0 && only_variant != 100 + lv) continue;
        lp.variant = lv;
        const Checked r = check_and_time([&] {
          vitrt::cuda::gemm_ws(lp, arch, s);
          return true;
        });
        std::printf("  library [%d] %s: %.1f / %.1f us, ours / cuBLASLt %.3f / %.3f; max |diff| %.3g, %zu outside 2%%\n",
                    100 + lv, gemm_ws_variant_name(lv).c_str(), r.flushed, r.b2b, r.flushed / lt_flushed,
                    r.b2b / lt_b2b, r.worst, r.bad);
      }
    }
    for (void* p : {a, w, bias, d0, d_lt, d_ws}) CUDA_CHECK(cudaFree(p));
    if (res) CUDA_CHECK(cudaFree(bias_d));
  }
  std::printf("\n%s\n", failures ? "MISMATCH against cuBLASLt" : "all outputs agree with cuBLASLt");
  return failures ? 1 : 0;
}
