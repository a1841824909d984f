// The narrow op interface every backend implements. The forward pass (src/model/forward.cpp) calls
// these ops in one fixed order; the first pass for a batch size runs in planning mode, where a
// backend creates its primitives (GEMM descriptors, algorithms, weight layouts) keyed by call order
// and executes nothing. Later passes replay them. Pointers are device pointers of the backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/weights.h"
#include "vitrt/session.h"

namespace vitrt {

enum class DT { f32, bf16, f16 };  // activation storage types
inline std::size_t dt_size(DT t) { return t == DT::f32 ? 4 : 2; }
inline const char* dt_name(DT t) { return t == DT::f32 ? "fp32" : t == DT::bf16 ? "bf16" : "fp16"; }

enum class Epilogue { none, gelu_erf, quick_gelu };

// dst[r, :] (+)= act(src[r, :] @ W^T + b) for r < rows. Row strides in elements.
struct LinearArgs {
  const LinearWeights* w = nullptr;
  std::int64_t rows = 0;
  const void* src = nullptr;
  std::int64_t src_ld = 0;
  DT src_dt = DT::f32;
  void* dst = nullptr;
  std::int64_t dst_ld = 0;
  DT dst_dt = DT::f32;
  Epilogue epilogue = Epilogue::none;
  bool accumulate = false;  // residual: dst += result
  bool full_fp32 = false;   // keep fp32 GEMMs out of TF32 (the small patch-embedding and head GEMMs)
};

// Multi-head self-attention reading timm's qkv layout [batch, tokens, 3, heads, head_dim] and
// writing [batch, tokens, heads * head_dim]. Softmax in fp32; scale = head_dim^-0.5.
// queries > 0: only the first `queries` tokens of each image need their output (every token is still
// a key); the output rows of the other tokens are left unspecified.
struct AttentionArgs {
  int batch = 0, tokens = 0, heads = 0, head_dim = 0;
  const void* qkv = nullptr;
  void* out = nullptr;
  DT dt = DT::f32;
  int queries = 0;
};

// dst[r] = (src[r] - mean) / sqrt(var + eps) * weight + bias, statistics in fp32; src in src_dt
// (the residual stream: fp32, or the 16-bit activation type), dst in dst_dt; src may equal dst.
struct LayerNormArgs {
  std::int64_t rows = 0, dim = 0;
  const void* src = nullptr;
  std::int64_t src_ld = 0;
  void* dst = nullptr;
  std::int64_t dst_ld = 0;
  DT dst_dt = DT::f32;
  const NormWeights* w = nullptr;
  float eps = 1e-6f;
  DT src_dt = DT::f32;
  // The output is read only as the input of the next GEMM (a block's norm1 / norm2). Where that GEMM
  // would truncate fp32 to TF32 (the CUDA backend's own TF32 GEMM), the backend may store the output
  // rounded to the nearest TF32 instead.
  bool gemm_input = false;
};

// Unfolds non-overlapping patches of float32 NCHW images into rows [batch * grid * grid, C * p * p]
// in (c, ky, kx) order. Images [valid, batch) are zeros (batch padding).
struct PatchifyArgs {
  int batch = 0, valid = 0, chans = 0, img = 0, patch = 0;
  const float* images = nullptr;
  void* cols = nullptr;
  DT dt = DT::f32;
};

// x[b] = concat(prefix tokens, patch rows) + pos (timm _pos_embed; with no_embed_class the
// position rows cover the patches only).
struct TokensArgs {
  int batch = 0, patches = 0, dim = 0;
  const float* patch_rows = nullptr;  // [batch * patches, dim]
  const float* prefix = nullptr;      // [num_prefix, dim]: cls, dist, registers
  int num_prefix = 0;
  const float* pos = nullptr;         // [pos_prefix + patches, dim]
  bool pos_covers_prefix = true;
  void* x = nullptr;                  // [batch, num_prefix + patches, dim], in x_dt
  DT x_dt = DT::f32;
  // Optional: also the LayerNorm of every token as stored in x (the first block's norm1) into
  // `normed` [batch * (num_prefix + patches), dim] in normed_dt, saving a pass over x.
  const NormWeights* norm = nullptr;
  float eps = 1e-6f;
  void* normed = nullptr;
  DT normed_dt = DT::f32;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string device_name() const = 0;
  // The precision this backend will really run for `requested` (after fallbacks, with a notice).
  virtual Precision resolve_precision(Precision requested) = 0;
  DT act_dt() const { return act_dt_; }

  // Memory: one arena per session, plus host<->device copies.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* p) = 0;
  // Bytes this backend holds in device memory (weights, arena, workspace); 0 for host backends.
  virtual std::size_t device_bytes() const { return 0; }
  virtual void upload(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void download(void* dst, const void* src, std::size_t bytes) = 0;

  // Planning brackets: ops called between begin_plan and end_plan create their primitives.
  virtual void begin_plan(int batch) = 0;
  virtual void end_plan() = 0;
  // After the last plan (tuning backends write their cache and report untuned shapes here).
  virtual void end_planning() {}
  // Tuning sessions, after the plans: settles the tuner's near-ties in one planned batch by timing whole
  // forwards (`forward_ms(n)`: the median of n timed forwards, in ms) and keeps what the forward finds
  // fastest.
  virtual void refine_tuning(int batch, const std::function<double(int)>& forward_ms) {
    (void)batch;
    (void)forward_ms;
  }
  virtual std::string tune_cache_path() const { return ""; }
  virtual std::vector<TuneResult> tune_results() const { return {}; }
  virtual void begin_run(int batch) = 0;
  virtual void end_run() = 0;
  // After an exception between begin_run and end_run: leave the backend ready for the next run, and
  // say what the failed run was doing when that helps to read the error ("" otherwise).
  virtual std::string abort_run() noexcept { return ""; }
  // Runs `forward` warmup + iters times and returns the time of each timed run in ms, measured the
  // backend's way (device events on its stream, or a host clock).
  virtual std::vector<double> time_runs(const std::function<void()>& forward, int warmup, int iters) = 0;

  virtual void patchify(const PatchifyArgs& a) = 0;
  virtual void linear(const LinearArgs& a) = 0;
  virtual void tokens(const TokensArgs& a) = 0;
  virtual void layernorm(const LayerNormArgs& a) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  // dst[b] = mean over rows [first, first + count) of x[b]  (x: [batch, tokens, dim])
  virtual void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst) = 0;
  // dst = 0.5 * (a + b), n elements (DeiT's averaged heads).
  virtual void average(const float* a, const float* b, std::int64_t n, float* dst) = 0;

 protected:
  DT act_dt_ = DT::f32;
};

std::unique_ptr<Backend> make_cpu_backend(int threads);
#ifdef VITRT_HAVE_CUDA
// `stream`: a caller's cudaStream_t, or null for a stream of the session's own.
// tune_cache / tune: SessionOptions::tune_cache and ::tune.
std::unique_ptr<Backend> make_cuda_backend(int device, void* stream, bool graphs, const std::string& tune_cache = "",
                                           bool tune = false);
#endif

}  // namespace vitrt
