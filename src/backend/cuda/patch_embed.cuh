// Patch unfolding and token assembly around the patch-embedding GEMM.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// Same semantics as the CPU ops of the same names (backend/backend.h).
void patchify(const PatchifyArgs& a, cudaStream_t s);
void tokens(const TokensArgs& a, cudaStream_t s);

}  // namespace vitrt::cuda
