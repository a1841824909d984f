// The ViT forward pass, written once for every backend.
#pragma once

#include "backend/backend.h"
#include "model/weights.h"

namespace vitrt {

// Activation buffers for the largest planned batch (backend memory). Named after timm's
// intermediates so any of them can be dumped and compared.
struct Activations {
  float* images = nullptr;     // [B, C, S, S]
  void* cols = nullptr;        // [B * patches, C * p * p]  act dtype
  float* patches = nullptr;    // [B * patches, E]
  void* x = nullptr;           // [B, N, E] residual stream, in ForwardConstants::residual_dt
  void* h = nullptr;           // [B * N, E] normed, act dtype
  void* qkv = nullptr;         // [B * N, 3E]
  void* attn = nullptr;        // [B * N, E]
  void* mlp = nullptr;         // [B * N, M]
  float* pooled = nullptr;     // [B, E]
  float* pooled_dist = nullptr;  // [B, E]
  float* logits = nullptr;     // [B * rows, classes]
  float* logits_dist = nullptr;  // [B, classes]
};

// The forward's steps in order, for buffer lifetimes: the session arena lets buffers whose steps do
// not overlap share memory (every block repeats kNorm1..kFc2 with the same buffers).
enum ForwardStep : int {
  kStepStage,      // images uploaded (kept for the whole forward: benchmark() reruns one staged input)
  kStepPatchify,   // images -> cols
  kStepPatchGemm,  // cols -> patches
  kStepTokens,     // patches -> x (and h: the first block's norm1)
  kStepNorm1,      // x -> h
  kStepQkv,        // h -> qkv
  kStepAttention,  // qkv -> attn
  kStepProj,       // attn -> x
  kStepNorm2,      // x -> h
  kStepFc1,        // h -> mlp
  kStepFc2,        // mlp -> x
  kStepHead,       // x -> pooled, logits (and the outputs that are read back)
};

// Per-session constants (host memory, stable for the session's life).
struct ForwardConstants {
  const ViTConfig* config = nullptr;
  const ModelWeights* weights = nullptr;
  int img_size = 0;          // session resolution
  const float* prefix = nullptr;  // [num_prefix, E]: cls, dist, registers in timm's order
  const float* pos = nullptr;     // resampled to the session grid
  // The residual stream's type: fp32, or the 16-bit activation type (as PyTorch's fp16/bf16 models
  // keep it). Outputs that are the stream itself (no head, no pooling) need fp32.
  DT residual_dt = DT::f32;
};

// Computes `batch` images (the first `valid` real, the rest padding) and returns the output buffer
// ([batch * output_rows, output_dim], fp32, backend memory).
const float* vit_forward(Backend& be, const ForwardConstants& k, const Activations& a, int batch, int valid);

}  // namespace vitrt
