#include "backend/cuda/tuning.h"

#include <cublasLt.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "core/env.h"

namespace vitrt::cuda {

std::string tune_device_key(const cudaDeviceProp& p) {
  int runtime = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  return std::string(p.name) + " | sm_" + std::to_string(p.major) + std::to_string(p.minor) + " | CUDA " +
         std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10) + " | cuBLASLt " +
         std::to_string(cublasLtGetVersion());
}

double time_us(const std::function<bool()>& run, cudaStream_t stream, const L2Flush& flush) {
  if (!run() || !run()) {  // warm-up; a candidate that does not launch is skipped
    cudaGetLastError();
    return -1;
  }
  cudaEvent_t e[2];
  CUDA_CHECK(cudaEventCreate(&e[0]));
  CUDA_CHECK(cudaEventCreate(&e[1]));
  auto elapsed_us = [&] {
    float ms = 0;
    CUDA_CHECK(cudaEventSynchronize(e[1]));
    CUDA_CHECK(cudaEventElapsedTime(&ms, e[0], e[1]));
    return 1000.0 * ms;
  };
  auto flush_l2 = [&] {
    if (flush.buffer) CUDA_CHECK(cudaMemsetAsync(flush.buffer, 0, flush.bytes, stream));
  };
  flush_l2();
  CUDA_CHECK(cudaEventRecord(e[0], stream));
  run();
  CUDA_CHECK(cudaEventRecord(e[1], stream));
  const double probe = elapsed_us();
  // About 2 ms of work per candidate, 3 to 25 timed runs, median.
  const int reps = std::clamp(static_cast<int>(2000.0 / std::max(probe, 1.0)), 3, 25);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    flush_l2();
    CUDA_CHECK(cudaEventRecord(e[0], stream));
    run();
    CUDA_CHECK(cudaEventRecord(e[1], stream));
    t.push_back(elapsed_us());
  }
  cudaEventDestroy(e[0]);
  cudaEventDestroy(e[1]);
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  return t[reps / 2];
}

CandidateTimes time_candidates(std::size_t n, const std::function<bool(std::size_t)>& run, cudaStream_t stream,
                               const L2Flush& flush) {
  CandidateTimes t;
  for (std::size_t i = 0; i < n; ++i) {
    t.us.push_back(time_us([&] { return run(i); }, stream, flush));
    if (t.us.back() > 0 && (t.best < 0 || t.us.back() < t.us[static_cast<std::size_t>(t.best)]))
      t.best = static_cast<int>(i);
  }
  return t;
}

int fastest(const CandidateTimes& t, std::size_t lo, std::size_t hi) {
  int best = -1;
  for (std::size_t i = lo; i < hi && i < t.us.size(); ++i)
    if (t.us[i] >= 0 && (best < 0 || t.us[i] < t.us[static_cast<std::size_t>(best)]))
      best = static_cast<int>(i);
  return best;
}

std::vector<std::size_t> near_ties(const CandidateTimes& t, std::size_t best, std::size_t n) {
  static const long long pct =
      env_integer("VITRT_TUNE_FORWARD_PCT", 0, 1000, "a percentage").value_or(kForwardCheckPct);
  static const double window = 1.0 + static_cast<double>(pct) / 100;
  static const auto most = static_cast<std::size_t>(
      env_integer("VITRT_TUNE_FORWARD_ALTS", 0, 1000, "a count of alternatives").value_or(kForwardCheckAlts));
  std::vector<std::size_t> near;
  for (std::size_t i = 0; i < n; ++i)
    if (i != best && t.us[i] > 0 && t.us[i] <= window * t.us[best]) near.push_back(i);
  std::sort(near.begin(), near.end(), [&](std::size_t x, std::size_t y) { return t.us[x] < t.us[y]; });
  if (near.size() > most) near.resize(most);
  return near;
}

}  // namespace vitrt::cuda
