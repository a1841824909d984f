// Token pooling and DeiT head averaging.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// Same semantics as the CPU ops of the same names (backend/backend.h).
void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst,
                 cudaStream_t s);
void average(const float* a, const float* b, std::int64_t n, float* dst, cudaStream_t s);

}  // namespace vitrt::cuda
