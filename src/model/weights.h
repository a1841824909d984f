// Canonical fp32 weights of a ViT in timm layout. Every pointer refers into `tensors`, which the
// struct owns. LayerScale gammas are folded into attn.proj / mlp.fc2 at build time:
//   x + gamma * (h W^T + b)  ==  x + h (diag(gamma) W)^T + gamma * b
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "vitrt/config.h"
#include "vitrt/model.h"

namespace vitrt {

struct LinearWeights {
  const float* weight = nullptr;  // [out, in], row-major (PyTorch layout)
  const float* bias = nullptr;    // [out], never null (zeros when the checkpoint has none)
  int out = 0, in = 0;
};

struct NormWeights {
  const float* weight = nullptr;  // [dim]
  const float* bias = nullptr;    // [dim]
};

struct BlockWeights {
  NormWeights norm1, norm2;
  LinearWeights qkv, proj, fc1, fc2;
};

struct ModelWeights {
  std::map<std::string, HostTensor> tensors;  // canonical timm names

  LinearWeights patch;            // [embed_dim, in_chans * patch * patch], (c, ky, kx) order
  const float* cls_token = nullptr;   // [dim] or null
  const float* dist_token = nullptr;  // [dim] or null
  const float* reg_tokens = nullptr;  // [reg, dim] or null
  const float* pos_embed = nullptr;   // [pos_prefix + grid*grid, dim]
  int pos_prefix = 0;                 // prefix rows in pos_embed (0 when no_embed_class)
  int pos_grid = 0;                   // checkpoint's patch grid side
  NormWeights norm_pre, norm, fc_norm;  // null weight when absent
  std::vector<BlockWeights> blocks;
  LinearWeights head, head_dist;  // null weight when absent
};

// Checks every tensor of `tensors` against `config` (names, shapes), folds LayerScale and fills the
// pointers. Unknown or missing tensors are errors naming `source`.
std::shared_ptr<const ModelWeights> build_weights(const ViTConfig& config, std::map<std::string, HostTensor> tensors,
                                                  const std::string& source);

// Infers what the weights determine (dims, depth, patch, tokens, norms, heads' widths) starting from
// `base` (a built-in or file config) or from timm defaults when `base` is null.
ViTConfig infer_config(const std::map<std::string, HostTensor>& tensors, const ViTConfig* base,
                       const std::string& source);

// Deterministic random weights in timm layout for `config` (truncated-normal-like, std 0.02).
std::map<std::string, HostTensor> synthetic_tensors(const ViTConfig& config, std::uint64_t seed);

}  // namespace vitrt
