// CUDA side of tuning: the GPU identity that keys the tuning cache, and timing of candidates.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>
#include <vector>

#include "runtime/tune_cache.h"

namespace vitrt::cuda {

// "NVIDIA H200 | sm_90 | CUDA 13.0 | cuBLASLt 130100"
std::string tune_device_key(const cudaDeviceProp& props);

// Median device time in microseconds of `run` on `stream` (warm-up first); a negative value when
// `run` returns false (candidate not runnable). Before each timed run the L2 cache is flushed by
// writing `flush` (at least twice the L2 size), so weights come from memory as they do in a forward
// that streams every layer's weights once (small batches are bound by exactly that).
struct L2Flush {
  void* buffer = nullptr;
  std::size_t bytes = 0;
};
double time_us(const std::function<bool()>& run, cudaStream_t stream, const L2Flush& flush);

// time_us of candidates 0..n-1 (`run(i)` launches candidate i): every time (negative: did not run)
// and the index of the fastest, the first on ties (-1 when none ran).
struct CandidateTimes {
  std::vector<double> us;
  int best = -1;
};
CandidateTimes time_candidates(std::size_t n, const std::function<bool(std::size_t)>& run, cudaStream_t stream,
                               const L2Flush& flush);

// Of candidates lo..hi-1, the one that ran fastest (the first on ties); -1 when none of them ran.
int fastest(const CandidateTimes& t, std::size_t lo, std::size_t hi);

// The alternatives of candidate `best` for the forward check (CudaBackend::refine_tuning): of candidates
// 0..n-1 other than `best`, those that ran within 15% of its time, fastest first, at most 8.
// VITRT_TUNE_FORWARD_PCT and VITRT_TUNE_FORWARD_ALTS move the two (for measurements).
// Why 15% / 8 and not session 29's 3% / 3: flushed and alone, a GEMM's time misses what the forward
// sees, and the forward kept picks up to 13% slower alone (vit_large fc1 at 577 rows, proj at 197 rows
// 5-7%). Two tunings each, three alternating rounds (session 41, run477-478): vit_base b1 0.376-0.380 ms
// against 0.383-0.385 with 3% / 3 (every candidate: 0.376-0.377), b2-b32 and vit_large b1 / b8 level;
// tuning vit_base's nine batches took 15.4 s against 8.7-9.6.
constexpr int kForwardCheckPct = 15;
constexpr int kForwardCheckAlts = 8;
std::vector<std::size_t> near_ties(const CandidateTimes& t, std::size_t best, std::size_t n);

}  // namespace vitrt::cuda
