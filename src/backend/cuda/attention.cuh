// Fused multi-head attention kernel launcher.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
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
  int variant = 0;  // kernel variant (see below); 0 = the default for the shape
  int arch = 0;     // the device's compute capability, major * 10 + minor (90 = Hopper)
  int queries = 0;  // > 0: only the first `queries` tokens of each image need output rows (AttentionArgs)
  // fp32 activations in a tf32 session (not an fp32 one): the 3xTF32 kernels take P V in 2xTF32 instead
  // of 3xTF32, and the 3xBF16 kernel applies (fp32 sessions keep 3xTF32 throughout).
  bool tf32_session = false;
};
// The query tokens per image that the kernels must cover: grids span these, in whole query tiles.
__host__ __device__ inline int query_tokens(const AttentionParams& p) {
  return p.queries > 0 && p.queries < p.tokens ? p.queries : p.tokens;
}
// Variants: 1, 2, 4, 8 = the mma kernel with that many warps per block (16 queries each);
// kAttentionWgmma1 / kAttentionWgmma2 = the wgmma kernel with 1 or 2 warpgroups (64 queries each);
// kAttentionWgmmaSplit2 / kAttentionWgmmaSplit4 = one warpgroup per block, the key tiles of each query
// tile split over a cluster of 2 or 4 blocks (small batches); kAttentionWgmmaRow / kAttentionWgmmaRow2 /
// kAttentionWgmmaRowHead = the wgmma kernel that takes every key at once (one softmax pass) for up to
// kAttentionRowMaxTokens tokens, with one / two / every query tile of a (batch, head) per block;
// kAttentionWgmmaWs / kAttentionWgmmaWs128 = two warpgroups taking turns at the tensor cores, fed by a TMA
// producer warp with K/V tiles of 64 / 128 keys (attention_wgmma_ws.cu); kAttentionWgmmaWsKeys = the same
// code with 64-key tiles, both warpgroups on the same 64 query rows, each with half of the keys, copying
// its own K/V tiles (no producer warp; small batches of long sequences).
constexpr int kAttentionWgmma1 = 101, kAttentionWgmma2 = 102, kAttentionWgmmaRow = 103, kAttentionWgmmaRowHead = 104,
              kAttentionWgmmaSplit2 = 105, kAttentionWgmmaSplit4 = 106, kAttentionWgmmaRow2 = 107,
              kAttentionWgmmaWs = 108, kAttentionWgmmaWs128 = 111, kAttentionWgmmaWsKeys = 112;
// kAttentionOneQuery = one query token per image (queries == 1, a class-token model's last block): a cluster
// of 4 blocks per (image, head), each a quarter of the keys, on CUDA cores (attention_query.cu); fp16/bf16,
// head dim 16, 32, 64 or 128, compute capability 9.0 (sm_90a builds).
constexpr int kAttentionOneQuery = 113;
constexpr int kAttentionRowMaxTokens = 256;
// fp32 activations: kAttentionTf32Wgmma = the 3xTF32 kernel on wgmma (head dim 64, sm_90a); 0 = on mma.sync.
// tf32 sessions only: kAttentionTf32Bf16x3 = the 3xBF16 kernel (attention_bf16x3.cu), 2 warpgroups per
// block, K/V tiles double-buffered; kAttentionTf32Bf16x3Head2 / kAttentionTf32Bf16x3Head4 = the same with
// K/V resident, one block of 2 or 4 warpgroups per (batch, head), up to kAttentionRowMaxTokens tokens.
constexpr int kAttentionTf32Wgmma = 201, kAttentionTf32Bf16x3 = 203, kAttentionTf32Bf16x3Head2 = 204,
              kAttentionTf32Bf16x3Head4 = 205;
inline bool is_bf16x3_variant(int v) {
  return v == kAttentionTf32Bf16x3 || v == kAttentionTf32Bf16x3Head2 || v == kAttentionTf32Bf16x3Head4;
}
inline bool is_wgmma_variant(int v) {
  return v == kAttentionWgmma1 || v == kAttentionWgmma2 || v == kAttentionWgmmaRow || v == kAttentionWgmmaRow2 ||
         v == kAttentionWgmmaRowHead || v == kAttentionWgmmaSplit2 || v == kAttentionWgmmaSplit4 || v == kAttentionWgmmaWs ||
         v == kAttentionWgmmaWs128 || v == kAttentionWgmmaWsKeys;
}
std::string attention_variant_name(int variant);
// Dispatches to the wgmma kernel (attention_wgmma.cu) for fp16/bf16 with head dim 64 on Hopper when the
// variant asks for it, else the register-resident tensor-core kernel (attention_mma.cu) for fp16/bf16
// with head_dim % 16 == 0, else the WMMA kernel (attention_wmma.cu) for head_dim % 8 == 0; fp32 with
// head_dim % 16 == 0 takes the 3xTF32 tensor-core kernel (attention_tf32.cu; on wgmma for head dim 64
// on Hopper, variant kAttentionTf32Wgmma; in tf32 sessions there also the 3xBF16 kernel,
// attention_bf16x3.cu); the rest the SIMT kernel (attention.cu).
void attention(AttentionParams p, cudaStream_t s);
bool attention_supports(int head_dim);
// Kernel variants the tuner may time for this shape ({0} when only one kernel applies), and the one
// taken without tuning.
std::vector<int> attention_variants(const AttentionParams& p);
int attention_default_variant(const AttentionParams& p, int sm_count);
bool attention_wmma_supports(const AttentionParams& p);
void attention_wmma(const AttentionParams& p, cudaStream_t s);
bool attention_mma_supports(const AttentionParams& p);
bool attention_wgmma_supports(const AttentionParams& p);
void attention_wgmma(const AttentionParams& p, cudaStream_t s);
void attention_wgmma_ws(const AttentionParams& p, cudaStream_t s);  // from attention_wgmma(), after its checks
bool attention_tf32_supports(const AttentionParams& p);
bool attention_tf32_wgmma_supports(const AttentionParams& p);
void attention_tf32(const AttentionParams& p, cudaStream_t s);
bool attention_bf16x3_supports(const AttentionParams& p);
void attention_bf16x3(const AttentionParams& p, cudaStream_t s);
void attention_mma(const AttentionParams& p, cudaStream_t s);
bool attention_query_supports(const AttentionParams& p);
void attention_query(const AttentionParams& p, cudaStream_t s);

}  // namespace vitrt::cuda
