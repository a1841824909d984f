// Fused multi-head attention kernel launcher.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// Multi-head attention straight from the qkv GEMM output [B, N, 3, H, D] into [B, N, H * D]:
// online softmax over key tiles (no N x N matrix in memory), fp32 accumulation, any head dim <= 128.
struct AttentionParams {
  const void* qkv;
  void* out;
  int batch, tokens, heads, head_dim;
  float scale;
  DT dt;
};
void attention(const AttentionParams& p, cudaStream_t s);
bool attention_supports(int head_dim);

}  // namespace vitrt::cuda
