// In-place activation kernel launcher (exact GELU, QuickGELU).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// x = act(x) in place over a [rows, cols] matrix with row stride ld (GELU erf or QuickGELU).
struct ActivationParams {
  void* x;
  std::int64_t rows, cols, ld;
  DT dt;
  Epilogue act;
};
void activation(const ActivationParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
