// Fused multi-head attention kernel launcher.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

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
  int variant = 0;  // tensor-core kernel: warps per block (1, 2, 4 or 8); 0 = its default
};
// Dispatches to the register-resident tensor-core kernel (attention_mma.cu) for fp16/bf16 with
// head_dim % 16 == 0, else the WMMA kernel (attention_wmma.cu) for head_dim % 8 == 0; fp32 with
// head_dim % 16 == 0 takes the 3xTF32 tensor-core kernel (attention_tf32.cu); the rest the
// SIMT kernel (attention.cu).
void attention(const AttentionParams& p, cudaStream_t s);
bool attention_supports(int head_dim);
// Kernel variants the tuner may time for this shape ({0} when only one kernel applies), and the one
// taken without tuning.
std::vector<int> attention_variants(const AttentionParams& p);
int attention_default_variant(const AttentionParams& p, int sm_count);
bool attention_wmma_supports(const AttentionParams& p);
void attention_wmma(const AttentionParams& p, cudaStream_t s);
bool attention_mma_supports(const AttentionParams& p);
bool attention_tf32_supports(const AttentionParams& p);
void attention_tf32(const AttentionParams& p, cudaStream_t s);
void attention_mma(const AttentionParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
