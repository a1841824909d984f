// A Session runs one Model for one caller. Construction plans everything (buffers for the largest
// batch, backend primitives per planned batch size, resampled position embeddings); run() allocates
// nothing.
//
//   vitrt::SessionOptions opt;
//   opt.batch_sizes = {1, 8};
//   opt.precision = vitrt::Precision::bf16;
//   vitrt::Session session(model, opt);
//   std::vector<float> logits(8 * session.output_elements_per_image());
//   session.run(images.data(), 8, logits.data());   // images: float32 NCHW, normalized
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vitrt/model.h"

namespace vitrt {

enum class Precision { fp32, tf32, fp16, bf16 };
const char* to_string(Precision p);
Precision parse_precision(const std::string& s);  // throws on unknown names

struct Device {
  enum class Kind { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1"
  std::string to_string() const;
};

struct SessionOptions {
  // Batch sizes planned exactly; run() accepts any batch up to the largest, padding to the next
  // planned size when the batch is not one of them.
  std::vector<int> batch_sizes = {1};
  int img_size = 0;  // 0: the model's; otherwise position embeddings are resampled (bicubic)
  Precision precision = Precision::fp32;
  Device device;
  int threads = 0;  // CPU threads; 0 = all hardware threads
  bool cuda_graphs = true;  // CUDA: capture the forward once per batch size and replay it
  // CUDA: run on this cudaStream_t. Null: a stream of the session's own, taken from a per-device pool and
  // handed to the next session when this one ends (on an H200, a process in which a third stream had
  // run a forward was ~5% slower at small batches; sessions made one after another now share one).
  // Sessions alive at the same time each get their own stream, and on an H200 two are already enough at
  // batch 1: vit_base b1 0.408 ms instead of 0.378 while the other session sits idle (b8: within 1%).
  // Sessions that never run at the same time can pass one stream here and avoid that; sessions that do
  // run at the same time (from several threads) need streams of their own.
  void* cuda_stream = nullptr;
  // CUDA tuning cache written by `vitrt tune`: a path; "" = $VITRT_TUNE_CACHE if set, else
  // $XDG_CACHE_HOME/vitrt/tune-cache.json (~/.cache when unset); "off" = heuristics only.
  std::string tune_cache;
  // Time the candidates (cuBLASLt algorithms, split-K variants, attention tile configurations) of
  // every shape the cache lacks for this GPU while planning, and add the winners to the cache file.
  bool tune = false;
  // fp16/bf16 sessions keep the residual stream (the running sum of every block's output) in fp32.
  // true keeps it in the 16-bit activation type, as PyTorch's fp16/bf16 models do: ~5% faster at large
  // batches on an H200, with PyTorch's accuracy instead of about half its error (docs/verification.md).
  // Ignored by fp32/tf32 sessions and by models whose output is the token features.
  bool residual_16bit = false;
};

// One tuned shape: the heuristic's (default) time and the winner's, in microseconds.
struct TuneResult {
  std::string shape;   // the cache key, e.g. "gemm rows=50432 in=768 out=2304 bf16->bf16 ..."
  std::string choice;  // the winner, e.g. "algo 66 tile 256x128 stages 4 split-k 1 ..."
  double default_us = 0, tuned_us = 0;
  int candidates = 0;
  bool from_cache = false;  // already in the cache file: not timed again
};

// Number of CUDA GPUs this build can use (0 without the CUDA backend or without a driver/GPU).
int cuda_device_count();

class Backend;

class Session {
 public:
  Session(std::shared_ptr<const Model> model, SessionOptions options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // images: [batch, in_chans, S, S] float32; out: [batch, output_rows, output_dim] float32.
  void run(const float* images, int batch, float* out);

  // Times the forward alone (input already on the device, no copies): `warmup` untimed runs, then
  // one time per run in ms (CUDA: events around each run on the session stream; CPU: a steady clock).
  std::vector<double> benchmark(const float* images, int batch, int warmup, int iters);

  const Model& model() const { return *model_; }
  int max_batch() const;
  int img_size() const { return img_size_; }
  Precision precision() const { return precision_; }  // effective precision after fallbacks
  std::int64_t input_elements_per_image() const;
  std::int64_t output_elements_per_image() const;
  std::size_t arena_bytes() const;
  std::size_t device_bytes() const;  // device memory held (weights, arena, workspace); 0 on the CPU
  std::string device_name() const;
  // Tuning: the cache file in use ("" when none) and, for each GEMM / attention shape of the plan, what
  // was chosen (timed now when tuning, else from the cache).
  std::string tune_cache_path() const;
  std::vector<TuneResult> tune_results() const;

 private:
  struct Plan;
  // Checks the batch, uploads the images; returns the planned batch size that will run them.
  int stage_input(const float* images, int batch);
  // One forward of the staged input; returns the output buffer (backend memory).
  const float* forward(int planned, int batch);

  std::shared_ptr<const Model> model_;
  SessionOptions options_;
  int img_size_ = 0;
  Precision precision_ = Precision::fp32;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Plan> plan_;
};

// Where notices go (precision fallbacks, synthetic weights, ...). Default (and after passing an
// empty function): stderr with "vitrt: ".
void set_log_handler(std::function<void(std::string_view)> handler);
void log_notice(std::string_view message);

}  // namespace vitrt
