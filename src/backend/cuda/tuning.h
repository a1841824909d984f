// CUDA side of tuning: the GPU identity that keys the tuning cache, and timing of candidates.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>

#include "runtime/tune_cache.h"

namespace vitrt::cuda {

// "NVIDIA H200 | sm_90 | CUDA 13.0 | cuBLASLt 130100"
std::string tune_device_key(const cudaDeviceProp& props);

// Median device time in microseconds of `run` on `stream` (warm-up first); a negative value when
// `run` returns false (candidate not runnable).
double time_us(const std::function<bool()>& run, cudaStream_t stream);

}  // namespace vitrt::cuda
