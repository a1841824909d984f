// Where the small GEMM's time goes (gemm_small.cuh), against cuBLASLt on the same GEMM: for batch-1
// shapes of a ViT block (197 rows by default), every variant of our kernel and the tuned cuBLASLt
// algorithm, each timed alone (L2 flushed, as the tuner does) and back to back, and one traced launch of each
// variant (cold and warm): per phase of the kernel, the median and the latest block's offset from its
// own entry, plus the spread of block start and end times across the grid (%globaltimer).
//   build/bench/small_gemm_trace [rows 197] [embed 768] [mlp 3072]
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_small.cuh"
#include "backend/cuda/linear.h"
#include "backend/cuda/tuning.h"
#include "gap_kernels.h"

using namespace vitrt;
using namespace vitrt::cuda;

namespace {

struct Case {
  const char* name;
  int in, out;
  Epilogue act;
  bool accumulate;  // fp32 residual output, else a bf16 output
};

// Back to back: `n` launches between two events, median of 5 such runs, per launch. What a chain of
// kernels pays per GEMM without dependent launches (time_us without a flush would add the host's launch
// latency, since the GPU idles between its runs).
double loop_us(const std::function<bool()>& run, cudaStream_t s, int n = 50) {
  return bench::event_median_us(
      [&] {
        for (int i = 0; i < n; ++i) run();
      },
      s, 5, 1, n);  // the first run warms up
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// One traced launch: per phase, the median and largest offset (µs at `ghz`) from each block's entry; the
// spread of entries and exits across the grid from %globaltimer.
void print_trace(const std::vector<std::uint64_t>& t, std::int64_t blocks, double ghz, const char* label) {
  constexpr int S = kSmallGemmTraceSlots;
  std::uint64_t g0 = UINT64_MAX, g_last_start = 0, g_end = 0;
  for (std::int64_t b = 0; b < blocks; ++b) {
    g0 = std::min(g0, t[b * S + kStampGlobalStart]);
    g_last_start = std::max(g_last_start, t[b * S + kStampGlobalStart]);
    g_end = std::max(g_end, t[b * S + kStampGlobalEnd]);
  }
  std::printf("    %s: entries spread %.2f us, first entry to last exit %.2f us; per phase, from the block's entry "
              "(median / max us):",
              label, static_cast<double>(g_last_start - g0) / 1e3, static_cast<double>(g_end - g0) / 1e3);
  static const char* names[] = {"", "", "", "setup", "W issued", "waited", "A issued", "tile 0", "last tile",
                                "math", "partial", "epilogue", "exit"};
  for (int s = kStampSetup; s <= kStampExit; ++s) {
    std::vector<double> v;
    for (std::int64_t b = 0; b < blocks; ++b)
      v.push_back(static_cast<double>(t[b * S + s] - t[b * S + kStampEntry]) / (ghz * 1e3));
    std::printf(" %s %.2f/%.2f;", names[s], median(v), *std::max_element(v.begin(), v.end()));
  }
  std::printf("\n");
}

// The launch-gap experiment: what comes before a kernel (nothing, a memset that evicts L2 and leaves it
// dirty, or a read that evicts it clean), then a one-block primer kernel that asks for `primer_smem`
// bytes of shared memory and stamps its end, then the kernel timed between two events. Per condition,
// the median over 9 runs of the event time and of the gap from the primer's end to the kernel's first
// block entry (`first_entry` returns it, or 0 where the kernel cannot report it).
struct GapRig {
  unsigned long long* stamps = nullptr;  // [0] primer end, [1] probe's first entry
  unsigned* sink = nullptr;
  const L2Flush* flush = nullptr;
  int sms = 0;
  cudaStream_t s = nullptr;
};

void gap_experiment(const GapRig& rig, const char* label, const std::function<void()>& prepare,
                    const std::function<void()>& run, const std::function<unsigned long long()>& first_entry) {
  cudaEvent_t e[2];
  CUDA_CHECK(cudaEventCreate(&e[0]));
  CUDA_CHECK(cudaEventCreate(&e[1]));
  static const char* pre_names[] = {"warm", "memset-flushed", "read-flushed"};
  std::printf("    gap, %s:", label);
  for (int pre = 0; pre < 3; ++pre) {
    for (int primer_smem : {0, 200 * 1024}) {
      std::vector<double> times, gaps;
      for (int r = 0; r < 10; ++r) {
        prepare();
        if (pre == 1) CUDA_CHECK(cudaMemsetAsync(rig.flush->buffer, 0, rig.flush->bytes, rig.s));
        if (pre == 2) bench::launch_read_flush(rig.flush->buffer, rig.flush->bytes, rig.sink, rig.sms, rig.s);
        bench::launch_primer(rig.stamps, primer_smem, rig.s);
        CUDA_CHECK(cudaEventRecord(e[0], rig.s));
        run();
        CUDA_CHECK(cudaEventRecord(e[1], rig.s));
        CUDA_CHECK(cudaEventSynchronize(e[1]));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e[0], e[1]));
        unsigned long long primer_end = 0;
        CUDA_CHECK(cudaMemcpy(&primer_end, rig.stamps, sizeof primer_end, cudaMemcpyDeviceToHost));
        const unsigned long long first = first_entry();
        if (r == 0) continue;  // warm-up
        times.push_back(1000.0 * ms);
        if (first) gaps.push_back(static_cast<double>(static_cast<long long>(first - primer_end)) / 1e3);
      }
      std::printf(" %s/primer %dK: %.2f us", pre_names[pre], primer_smem / 1024, median(times));
      if (!gaps.empty()) std::printf(" (gap %.2f)", median(gaps));
      std::printf(";");
    }
  }
  std::printf("\n");
  CUDA_CHECK(cudaEventDestroy(e[0]));
  CUDA_CHECK(cudaEventDestroy(e[1]));
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t rows = argc > 1 ? std::atoll(argv[1]) : 197;
  const int E = argc > 2 ? std::atoi(argv[2]) : 768, M = argc > 3 ? std::atoi(argv[3]) : 3072;
  cudaDeviceProp props{};
  CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
  const int arch = props.major * 10 + props.minor;
  int clock_khz = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  const double ghz = clock_khz / 1e6;
  bench::LtRig lr;
  if (!bench::make_lt_rig(props, lr)) return 1;
  const cudaStream_t s = lr.s;
  const cublasLtHandle_t lt = lr.lt;
  const L2Flush& flush = lr.flush;
  GapRig rig;
  CUDA_CHECK(cudaMalloc(&rig.stamps, 2 * sizeof(unsigned long long)));
  CUDA_CHECK(cudaMalloc(&rig.sink, sizeof(unsigned)));
  rig.flush = &flush;
  rig.sms = props.multiProcessorCount;
  rig.s = s;
  const bool gaps_only = std::getenv("SMALL_GEMM_GAPS") != nullptr;  // only the gap experiment, default variants
  if (gaps_only) {
    // The floor a chain of kernels pays per kernel in a CUDA graph, whatever the kernels do.
    std::printf("graph of 84 empty kernels, per kernel (us): blocks / shared memory / edges\n");
    for (int blocks : {1, props.multiProcessorCount})
      for (int smem : {0, 200 * 1024})
        for (int pdl : {0, 1, 2})
          std::printf("  %d / %dK / %s: %.2f\n", blocks, smem / 1024,
                      pdl == 0 ? "plain" : pdl == 1 ? "dependent, trigger at end" : "dependent, trigger at start",
                      bench::graph_floor_us(84, blocks, smem, pdl, false, s));
    for (int pdl : {0, 1, 2})
      std::printf("  %d / alternating 200K and 0 / %s: %.2f\n", props.multiProcessorCount,
                  pdl == 0 ? "plain" : pdl == 1 ? "dependent, trigger at end" : "dependent, trigger at start",
                  bench::graph_floor_us(84, props.multiProcessorCount, 200 * 1024, pdl, true, s));
  }
  // The tuner keeps its winners in memory (finish() is never called, so the file is not written).
  TuneCache cache(tune_device_key(props), "/tmp/vitrt_small_gemm_trace_tune.json", true);
  std::printf("small GEMM against cuBLASLt, %lld rows, %s, clock %.2f GHz (stamps converted at that rate)\n",
              static_cast<long long>(rows), props.name, ghz);

  const Case cases[] = {{"qkv", E, 3 * E, Epilogue::none, false},
                        {"proj + residual", E, E, Epilogue::none, true},
                        {"fc1 + GELU", E, M, Epilogue::gelu_erf, false},
                        {"fc2 + residual", M, E, Epilogue::none, true}};
  unsigned seed = 1;
  for (const Case& c : cases) {
    const DT out_dt = c.accumulate ? DT::f32 : DT::bf16;
    void* a = bench::device_random(static_cast<std::size_t>(rows) * c.in, DT::bf16, 1.f, seed++);
    void* w = bench::device_random(static_cast<std::size_t>(c.out) * c.in, DT::bf16, 0.02f, seed++);
    void* bias = bench::device_random(static_cast<std::size_t>(c.out), out_dt, 0.02f, seed++);
    void* d = bench::device_random(static_cast<std::size_t>(rows) * c.out, out_dt, 1.f, seed++);
    std::printf("\n%s: %lld x %d x %d\n", c.name, static_cast<long long>(rows), c.in, c.out);

    // cuBLASLt, tuned the way `vitrt tune` does it (its candidates timed with the L2 flushed).
    const LinearWeights lw{nullptr, nullptr, c.out, c.in};
    const LinearArgs la{&lw, rows, a, c.in, DT::bf16, d, c.out, out_dt, c.act, c.accumulate};
    LinearOp op(lt, la, w, bias, Precision::bf16, lr.context(&cache, props.multiProcessorCount, arch));
    auto run_lt = [&] {
      op.execute(lt, la, lr.workspace, s);
      return true;
    };
    std::printf("  cuBLASLt (tuned): %.2f us flushed, %.2f us back to back\n", time_us(run_lt, s, flush),
                loop_us(run_lt, s));
    gap_experiment(rig, "cuBLASLt", [] {}, [&] { run_lt(); }, [] { return 0ull; });

    GemmSmallParams p;
    p.a = a;
    p.lda = c.in;
    p.w = w;
    p.bias = bias;
    p.d = d;
    p.ldd = c.out;
    p.rows = rows;
    p.in = c.in;
    p.out = c.out;
    p.in_dt = DT::bf16;
    p.out_dt = out_dt;
    p.act = c.act;
    p.accumulate = c.accumulate;
    {
      // The default variant, traced so that its first block's entry is known; and an empty stand-in
      // kernel with as many blocks and 200 KiB of shared memory.
      p.variant = gemm_small_default_variant(p, arch, props.multiProcessorCount);
      const std::int64_t blocks = gemm_small_blocks(p);
      std::uint64_t* trace = nullptr;
      const std::size_t bytes = static_cast<std::size_t>(blocks) * kSmallGemmTraceSlots * 8;
      CUDA_CHECK(cudaMalloc(&trace, bytes));
      std::vector<std::uint64_t> host(static_cast<std::size_t>(blocks) * kSmallGemmTraceSlots);
      p.trace = trace;
      gap_experiment(
          rig, ("ours " + gemm_small_variant_name(p.variant)).c_str(), [] {}, [&] { gemm_small(p, arch, s); },
          [&] {
            CUDA_CHECK(cudaMemcpy(host.data(), trace, bytes, cudaMemcpyDeviceToHost));
            std::uint64_t first = UINT64_MAX;
            for (std::int64_t b = 0; b < blocks; ++b)
              first = std::min(first, host[b * kSmallGemmTraceSlots + kStampGlobalStart]);
            return static_cast<unsigned long long>(first);
          });
      CUDA_CHECK(cudaFree(trace));
      p.trace = nullptr;
      gap_experiment(
          rig, "empty kernel, same blocks, 200 KiB",
          [&] { CUDA_CHECK(cudaMemsetAsync(rig.stamps + 1, 0xff, sizeof(unsigned long long), s)); },
          [&] {
            bench::launch_probe(rig.stamps + 1, static_cast<int>(blocks), 200 * 1024, s);
          },
          [&] {
            unsigned long long first = 0;
            CUDA_CHECK(cudaMemcpy(&first, rig.stamps + 1, sizeof first, cudaMemcpyDeviceToHost));
            return first;
          });
    }
    for (int v : gaps_only ? std::vector<int>{} : gemm_small_variants(p, arch)) {
      p.variant = v;
      p.trace = nullptr;
      auto run = [&] {
        gemm_small(p, arch, s);
        return true;
      };
      const double cold = time_us(run, s, flush), warm = loop_us(run, s);
      const std::int64_t blocks = gemm_small_blocks(p);
      std::printf("  %s (%lld blocks): %.2f us flushed, %.2f us back to back\n", gemm_small_variant_name(v).c_str(),
                  static_cast<long long>(blocks), cold, warm);
      std::uint64_t* trace = nullptr;
      const std::size_t bytes = static_cast<std::size_t>(blocks) * kSmallGemmTraceSlots * 8;
      CUDA_CHECK(cudaMalloc(&trace, bytes));
      std::vector<std::uint64_t> host(static_cast<std::size_t>(blocks) * kSmallGemmTraceSlots);
      p.trace = trace;
      for (bool flushed : {true, false}) {
        if (flushed) CUDA_CHECK(cudaMemsetAsync(flush.buffer, 0, flush.bytes, s));
        gemm_small(p, arch, s);
        CUDA_CHECK(cudaStreamSynchronize(s));
        CUDA_CHECK(cudaMemcpy(host.data(), trace, bytes, cudaMemcpyDeviceToHost));
        print_trace(host, blocks, ghz, flushed ? "flushed" : "warm");
      }
      CUDA_CHECK(cudaFree(trace));
    }
    for (void* ptr : {a, w, bias, d}) CUDA_CHECK(cudaFree(ptr));
  }
  CUDA_CHECK(cudaFree(flush.buffer));
  CUDA_CHECK(cudaFree(rig.stamps));
  CUDA_CHECK(cudaFree(rig.sink));
  CUDA_CHECK(cudaFree(lr.workspace));
  cublasLtDestroy(lt);
  CUDA_CHECK(cudaStreamDestroy(s));
  return 0;
}
