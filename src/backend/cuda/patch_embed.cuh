// Patch unfolding and token assembly around the patch-embedding GEMM.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// Same semantics as the CPU ops of the same names (backend/backend.h).
void patchify(const PatchifyArgs& a, cudaStream_t s);
void tokens(const TokensArgs& a, cudaStream_t s);
// tokens() plus a.norm into a.normed, gamma / beta being a.norm's weights on the device.
void tokens_norm(const TokensArgs& a, const float* gamma, const float* beta, cudaStream_t s);

}  // namespace vitrt::cuda
