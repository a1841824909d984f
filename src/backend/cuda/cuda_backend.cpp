// CUDA backend: cuBLASLt GEMMs planned per batch size, our kernels for attention, LayerNorm and the
// small ops, one stream per session (from a pool: stream_pool.h), and CUDA-graph capture/replay of the
// whole forward per batch size (first run eager, second captured, then replayed).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/activation.cuh"
#include "backend/cuda/attention.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_lock.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/layernorm.cuh"
#include "backend/cuda/linear.h"
#include "backend/cuda/patch_embed.cuh"
#include "backend/cuda/pooling.cuh"
#include "backend/cuda/stream_pool.h"
#include "backend/cuda/tuning.h"
#include "backend/cuda/tuning_fill.cuh"
#include "core/env.h"
#include "core/half.h"

namespace vitrt {
namespace {

constexpr std::size_t kWorkspaceBytes = 32u << 20;
// Smallest batch whose plans use dependent launches (launch.cuh); see begin_run. VITRT_PDL_MIN_BATCH
// overrides it (for measurements).
constexpr int kDependentLaunchMinBatch = 8;
int dependent_launch_min_batch() {
  static const int batch = static_cast<int>(
      env_integer("VITRT_PDL_MIN_BATCH", 1, 1 << 20, "a batch size >= 1").value_or(kDependentLaunchMinBatch));
  return batch;
}

std::string mib(std::size_t bytes) { return std::to_string((bytes + (1u << 19)) >> 20) + " MiB"; }

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, void* stream, bool graphs, const std::string& tune_cache, bool tune)
      : device_(device), graphs_(graphs) {
    const cuda::DeviceExclusive hold;
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    VITRT_CHECK(e == cudaSuccess && count > 0, "cuda:", device, " requested, but there is no usable CUDA GPU: ",
                e == cudaSuccess ? "no device found" : std::string(cudaGetErrorString(e)));
    VITRT_CHECK(device >= 0 && device < count, "cuda:", device, " requested, but ", count, " GPU(s) are present");
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaGetDeviceProperties(&props_, device_));
    VITRT_CHECK(props_.major >= 8, props_.name, " (compute capability ", props_.major, ".", props_.minor,
                ") is not supported: vitrt's CUDA backend needs compute capability 8.0 or newer");
    if (stream) {
      stream_ = static_cast<cudaStream_t>(stream);
    } else {
      stream_ = cuda::acquire_stream();  // reused across sessions made one after another (stream_pool.h)
      own_stream_ = true;
    }
    tuner_ = std::make_unique<TuneCache>(cuda::tune_device_key(props_), tune_cache, tune);
    CUBLAS_CHECK(cublasLtCreate(&lt_));
    workspace_ = allocate(kWorkspaceBytes);
  }

  ~CudaBackend() override {
    abort_run();
    planning_.reset();
    const cuda::DeviceExclusive hold;
    cudaSetDevice(device_);
    for (auto& [b, p] : plans_)
      if (p.graph) cudaGraphExecDestroy(p.graph);
    plans_.clear();
    for (const auto& [ptr, bytes] : owned_) cudaFree(ptr);
    if (lt_) cublasLtDestroy(lt_);
    if (own_stream_) cuda::release_stream(stream_);
  }

  std::string device_name() const override {
    return "cuda:" + std::to_string(device_) + " (" + props_.name + ", sm_" + std::to_string(props_.major) +
           std::to_string(props_.minor) + (graphs_ ? ", CUDA graphs" : "") + ")";
  }

  Precision resolve_precision(Precision p) override {
    precision_ = p;
    act_dt_ = p == Precision::bf16 ? DT::bf16 : p == Precision::fp16 ? DT::f16 : DT::f32;
    return p;
  }

  void* allocate(std::size_t bytes) override {
    const cuda::DeviceExclusive hold;
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      std::size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      VITRT_FAIL("out of GPU memory on cuda:", device_, ": asked for ", mib(bytes), ", ", mib(free_b), " free of ",
                 mib(total_b), " (", cudaGetErrorString(e), ")");
    }
    owned_.emplace(p, bytes);
    // Tuning times kernels on the session's buffers while planning, before any input exists. They start
    // with data that looks like activations (tuning_fill.cuh): on zeros, which they held until session
    // 29, cuBLASLt's large GEMMs ran 5-7% faster than on real data and our ping-pong GEMM did not
    // (run366), so the tuner compared kernels on data no forward sees.
    // On stream_, like every write to the backend's buffers (weights too: device_copy uploads there).
    if (tuner_ && tuner_->tuning()) cuda::fill_tuning_data(p, bytes == 0 ? 256 : bytes, fills_++, stream_);
    return p;
  }
  void release(void* p) override {
    const cuda::DeviceExclusive hold;
    owned_.erase(p);
    cudaFree(p);
  }
  std::size_t device_bytes() const override {
    std::size_t n = 0;
    for (const auto& [ptr, bytes] : owned_) n += bytes;
    return n;
  }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void begin_plan(int batch) override {
    if (!planning_) planning_.emplace();  // until end_plan: weight uploads, tuning
    CUDA_CHECK(cudaSetDevice(device_));
    current_ = &plans_[batch];
    *current_ = Plan{};
    plan_batch_ = batch;
    pending_norm_.reset();
    mode_ = Mode::plan;
  }
  void end_plan() override {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // weight uploads done
    mode_ = Mode::eager;
    planning_.reset();
  }
  void end_planning() override {
    const cuda::DeviceExclusive hold;
    tuner_->finish();
    release_replaced_weights();
    if (flush_.buffer) {  // only needed while tuning
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      release(flush_.buffer);
      flush_ = {};
    }
  }
  // The forward check of tuning. The tuner times each GEMM and attention call alone with L2 flushed;
  // where candidates came within 15% of its pick (cuBLASLt's algorithms, attention variants; near_ties),
  // and for our small GEMM below batch 8 (linear.cpp), the forward can still tell them apart (three
  // tunings of vit_base at batch 1 gave forwards of 0.432-0.443 ms; session 29). In batches whose forward
  // (one run) takes at most 3 ms, each such shape is run with each alternative in turn (every use of that
  // shape in the plan at once), and the whole forward is timed against the current pick, which is timed
  // again after each alternative; an alternative is kept only when it is 0.3% faster than both of those
  // timings. One shape at a time, so each change made before later ones is then checked again against its
  // former choice (below). VITRT_TUNE_FORWARD=0 turns it off;
  // VITRT_TUNE_FORWARD_MAX_MS moves the 3 ms. Above 3 ms the check changed nothing beyond run-to-run spread
  // (vit_base b64-b256, vit_large b8-b64; session 30, run392), so longer forwards are not checked by default.
  void refine_tuning(int batch, const std::function<double(int)>& forward_ms) override {
    static const bool on = env_integer("VITRT_TUNE_FORWARD", 0, 1, "0 or 1").value_or(1) == 1;
    if (!tuner_ || !tuner_->tuning() || !on) return;
    static const double refine_ms = static_cast<double>(
        env_integer("VITRT_TUNE_FORWARD_MAX_MS", 0, 1000000, "milliseconds").value_or(3));
    Plan& plan = plans_.at(batch);
    std::map<std::string, std::vector<cuda::LinearOp*>> gemms;
    for (auto& op : plan.linears)
      if (!op->alternatives().empty()) gemms[op->key()].push_back(op.get());
    std::map<std::string, std::vector<std::size_t>> attentions;  // indices into the plan's attention calls
    for (std::size_t i = 0; i < plan.attention_keys.size(); ++i)
      if (!plan.attention_alternatives[i].empty()) attentions[plan.attention_keys[i]].push_back(i);
    if (gemms.empty() && attentions.empty()) return;
    if (forward_ms(1) > refine_ms) return;  // one forward says whether the batch takes part
    double incumbent_ms = forward_ms(kForwardCheckRuns);
    // Shapes where one of our GEMMs is among the choices first: a kernel of another family moves the
    // forward most, and the check settles one shape at a time. Settled after cuBLASLt's picks elsewhere had
    // moved, our fc2 lost where it wins over the tuner's own picks (session 45: of three tunings of
    // vit_large b1 one kept it, 1.218 ms against 1.250).
    std::vector<std::pair<std::string, std::vector<cuda::LinearOp*>>> order(gemms.begin(), gemms.end());
    std::stable_partition(order.begin(), order.end(), [](const auto& shape) {
      const auto& alts = shape.second.front()->alternatives();
      return std::any_of(alts.begin(), alts.end(), [](const nlohmann::json& c) { return !c.contains("algo"); });
    });
    // The shapes whose choice the check changed, in order: the entry and choice before, and the choice kept.
    struct Change {
      std::string key;
      std::vector<cuda::LinearOp*> ops;
      nlohmann::json entry, before, kept;
    };
    std::vector<Change> changes;
    const auto apply_to = [&](const std::vector<cuda::LinearOp*>& ops, const nlohmann::json& c) {
      bool ok = true;
      for (cuda::LinearOp* op : ops) ok = op->use_choice(lt_, c, kWorkspaceBytes) && ok;
      return ok;
    };
    for (auto& [key, ops] : order) {
      const nlohmann::json* entry = tuner_->find(key);
      if (!entry) continue;
      const nlohmann::json current = ops.front()->choice_json(entry->value("us", 0.0));
      const auto apply = [&, &ops = ops](const nlohmann::json& c) { return apply_to(ops, c); };
      const std::vector<nlohmann::json>& alts = ops.front()->alternatives();
      const nlohmann::json kept = settle(plan, current, alts, apply, forward_ms, incumbent_ms);
      if (kept == current) continue;
      changes.push_back({key, ops, *entry, current, kept});
      record_choice(key, *entry, current, kept, alts, ops.front()->choice_name());
    }
    // A change made before later ones was timed with the shapes after it still on their former choices. Each
    // is tried back on its former choice with every later change in place, and goes back where the forward is
    // then 0.3% faster (run537: our qkv with W first, kept while fc2 was still cuBLASLt's, left vit_large b1 1%
    // slower once our fc2 was kept).
    for (std::size_t i = 0; i + 1 < changes.size(); ++i) {
      const Change& c = changes[i];
      const auto apply = [&](const nlohmann::json& choice) { return apply_to(c.ops, choice); };
      if (settle(plan, c.kept, {c.before}, apply, forward_ms, incumbent_ms) != c.before) continue;
      tuner_->rechoose(c.key, c.entry, c.ops.front()->choice_name() + forward_check_note(c.entry),
                       c.before.value("us", 0.0));
    }
    for (auto& [key, calls] : attentions) {
      const nlohmann::json* entry = tuner_->find(key);
      if (!entry) continue;
      const nlohmann::json current = {{"variant", plan.attention_variants[calls.front()]},
                                      {"us", entry->value("us", 0.0)}};
      const std::vector<nlohmann::json>& alts = plan.attention_alternatives[calls.front()];
      const auto apply = [&](const nlohmann::json& c) {
        for (std::size_t i : calls) plan.attention_variants[i] = c.at("variant").get<int>();
        return true;
      };
      const nlohmann::json kept = settle(plan, current, alts, apply, forward_ms, incumbent_ms);
      if (kept != current) {
        const int v = kept.at("variant").get<int>();
        record_choice(key, *entry, current, kept, alts, cuda::attention_variant_name(v));
      }
    }
  }
  std::string tune_cache_path() const override { return tuner_->path(); }
  std::vector<TuneResult> tune_results() const override { return tuner_->results(); }

  void begin_run(int batch) override {
    CUDA_CHECK(cudaSetDevice(device_));
    auto it = plans_.find(batch);
    VITRT_CHECK(it != plans_.end(), "internal: batch ", batch, " was not planned");
    current_ = &it->second;
    run_batch_ = batch;
    linear_index_ = 0;
    attention_index_ = 0;
    norm_index_ = 0;
    // Dependent launches (launch.cuh; the LayerNorm / token and TF32 GEMM groups unless VITRT_PDL says
    // otherwise), measured on the H200: bf16 -3.6% to +0.8% forward time at batch 8 by run, within ±1%
    // from 16 up, 0 to +0.9% at batches 1 and 2 (docs/performance.md, session 13); below batch 8 only where
    // the forward check chose our small GEMM (Plan::dependent).
    cuda::allow_dependent_launch(current_->dependent(batch));
    if (current_->graph) {
      mode_ = Mode::replay;
    } else if (graphs_ && current_->runs > 0) {
      capture_.emplace();
      const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
      if (e != cudaSuccess) capture_.reset();
      CUDA_CHECK(e);
      mode_ = Mode::capture;
    } else {
      if (current_->runs == 0) first_run_.emplace();  // kernels load on their first launch
      mode_ = Mode::eager;
    }
  }

  void end_run() override {
    if (mode_ == Mode::capture) {
      cudaGraph_t graph = nullptr;
      cudaError_t e = cudaStreamEndCapture(stream_, &graph);
      mode_ = Mode::eager;
      if (e == cudaSuccess) {
        e = cudaGraphInstantiate(&current_->graph, graph, 0);
        cudaGraphDestroy(graph);
      }
      capture_.reset();
      VITRT_CHECK(e == cudaSuccess, "capturing the CUDA graph of the batch-", run_batch_, " forward failed: ",
                  cudaGetErrorString(e));
    }
    first_run_.reset();
    cuda::allow_dependent_launch(true);
    if (mode_ != Mode::replay)
      VITRT_CHECK(linear_index_ == current_->linears.size() && attention_index_ == current_->attention_variants.size() &&
                      norm_index_ == current_->norm_tf32.size(),
                  "internal: forward replay did not match its plan");
    if (current_->graph) CUDA_CHECK(cudaGraphLaunch(current_->graph, stream_));
    ++current_->runs;
    mode_ = Mode::eager;
  }

  std::string abort_run() noexcept override {
    std::string context;
    if (mode_ == Mode::capture) {  // leave the stream usable; the next run captures again
      cudaGraph_t graph = nullptr;
      if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      try {
        context = "while capturing the CUDA graph of the batch-" + std::to_string(run_batch_) +
                  " forward; a device-wide call on another thread (cudaFree, cudaDeviceSynchronize, ...) "
                  "invalidates a capture; the next run captures again";
      } catch (...) {
      }
    }
    capture_.reset();
    first_run_.reset();
    cuda::allow_dependent_launch(true);
    if (mode_ != Mode::plan) mode_ = Mode::eager;
    return context;
  }

  std::vector<double> time_runs(const std::function<void()>& forward, int warmup, int iters) override {
    for (int i = 0; i < warmup; ++i) forward();
    std::vector<cudaEvent_t> ev(2 * static_cast<std::size_t>(iters));
    for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
    for (int i = 0; i < iters; ++i) {
      CUDA_CHECK(cudaEventRecord(ev[2 * i], stream_));
      forward();
      CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], stream_));
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<double> ms(static_cast<std::size_t>(iters));
    for (int i = 0; i < iters; ++i) {
      float t = 0;
      CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
      ms[i] = t;
    }
    for (auto& e : ev) cudaEventDestroy(e);
    return ms;
  }

  void linear(const LinearArgs& a) override {
    if (mode_ == Mode::plan) {
      const std::size_t wn = static_cast<std::size_t>(a.w->out) * a.w->in;
      const void* w = device_copy(a.w->weight, wn, a.src_dt);
      const void* b = device_copy(a.w->bias, static_cast<std::size_t>(a.w->out), a.dst_dt);
      // The L2 flush scratch (twice the L2 size) exists only while tuning: untuned sessions never time.
      const cuda::GemmContext ctx{tuner_.get(),
                                  workspace_,
                                  kWorkspaceBytes,
                                  stream_,
                                  props_.multiProcessorCount,
                                  props_.major * 10 + props_.minor,
                                  tuner_->tuning() ? l2_flush() : cuda::L2Flush{},
                                  plan_batch_ >= dependent_launch_min_batch()};
      auto op = std::make_unique<cuda::LinearOp>(lt_, a, w, b, precision_, ctx);
      // Our TF32 GEMM's tensor cores read only the TF32 bits of fp32 operands (truncation). It gets W
      // rounded to the nearest TF32 once, here, and A rounded by the LayerNorm that writes it, when that
      // was the op just before (fc1 after norm2). cuBLASLt keeps the exact operands.
      if (op->own_kernel()) {
        op->set_own_weight(device_copy(a.w->weight, wn, DT::f32, /*tf32=*/true));
        if (pending_norm_ && pending_norm_->second == a.src) current_->norm_tf32.at(pending_norm_->first) = 1;
      }
      pending_norm_.reset();
      current_->linears.push_back(std::move(op));
      return;
    }
    if (!launching()) return;
    current_->linears.at(linear_index_++)->execute(lt_, a, workspace_, stream_);
  }

  void attention(const AttentionArgs& a) override {
    const float scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
    cuda::AttentionParams p{a.qkv, a.out, a.batch, a.tokens, a.heads, a.head_dim, scale, a.dt};
    p.arch = props_.major * 10 + props_.minor;
    p.queries = a.queries;
    p.tf32_session = precision_ == Precision::tf32;
    if (mode_ == Mode::plan) {
      VITRT_CHECK(cuda::attention_supports(a.head_dim), "CUDA attention: head dim ", a.head_dim,
                  " is not supported (1..128)");
      std::string key;
      std::vector<nlohmann::json> alternatives;
      current_->attention_variants.push_back(plan_attention(p, key, alternatives));
      current_->attention_keys.push_back(std::move(key));
      current_->attention_alternatives.push_back(std::move(alternatives));
      return;
    }
    if (!launching()) return;
    p.variant = current_->attention_variants.at(attention_index_++);
    cuda::attention(p, stream_);
  }

  void layernorm(const LayerNormArgs& a) override {
    const auto* g = static_cast<const float*>(device_copy(a.w->weight, static_cast<std::size_t>(a.dim), DT::f32));
    const auto* b = static_cast<const float*>(device_copy(a.w->bias, static_cast<std::size_t>(a.dim), DT::f32));
    if (mode_ == Mode::plan) {
      // Whether the output is stored rounded to TF32 is settled when the GEMM that reads it is planned.
      current_->norm_tf32.push_back(0);
      if (a.gemm_input && precision_ == Precision::tf32 && a.dst_dt == DT::f32)
        pending_norm_.emplace(current_->norm_tf32.size() - 1, a.dst);
      else
        pending_norm_.reset();
      return;
    }
    if (!launching()) return;
    const bool tf32_out = current_->norm_tf32.at(norm_index_++) != 0;
    cuda::layernorm({a.src, a.src_ld, a.dst, a.dst_ld, a.dst_dt, g, b, a.rows, static_cast<int>(a.dim), a.eps, a.src_dt,
                     tf32_out},
                    stream_);
  }

  void patchify(const PatchifyArgs& a) override {
    if (launching()) cuda::patchify(a, stream_);
  }

  void tokens(const TokensArgs& a) override {
    TokensArgs d = a;
    const int pos_rows = a.pos_covers_prefix ? a.num_prefix + a.patches : a.patches;
    d.prefix = a.num_prefix ? static_cast<const float*>(device_copy(a.prefix, static_cast<std::size_t>(a.num_prefix) * a.dim, DT::f32)) : nullptr;
    d.pos = static_cast<const float*>(device_copy(a.pos, static_cast<std::size_t>(pos_rows) * a.dim, DT::f32));
    if (a.norm) {
      const auto n = static_cast<std::size_t>(a.dim);
      const auto* g = static_cast<const float*>(device_copy(a.norm->weight, n, DT::f32));
      const auto* b = static_cast<const float*>(device_copy(a.norm->bias, n, DT::f32));
      if (launching()) cuda::tokens_norm(d, g, b, stream_);
      return;
    }
    if (launching()) cuda::tokens(d, stream_);
  }

  void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst) override {
    if (launching()) cuda::mean_tokens(x, x_dt, batch, tokens, dim, first, count, dst, stream_);
  }

  void average(const float* a, const float* b, std::int64_t n, float* dst) override {
    if (launching()) cuda::average(a, b, n, dst, stream_);
  }

 private:
  enum class Mode { plan, eager, capture, replay };
  // Kernels are enqueued while running eagerly or capturing a graph; planning and replay enqueue none.
  bool launching() const { return mode_ == Mode::eager || mode_ == Mode::capture; }
  struct Plan {
    std::vector<std::unique_ptr<cuda::LinearOp>> linears;
    std::vector<int> attention_variants;
    std::vector<std::string> attention_keys;                       // per attention call: its tuning key
    std::vector<std::vector<nlohmann::json>> attention_alternatives;  // and the tuner's near-ties there
    std::vector<char> norm_tf32;  // per LayerNorm call: output stored rounded to TF32
    cudaGraphExec_t graph = nullptr;
    int runs = 0;
    // Whether the plan runs with dependent launches: from dependent_launch_min_batch() up, and below it
    // where the forward check chose our small GEMM for a shape (it gains only as a dependent launch), or
    // where one of our warp-specialized GEMM's variants runs: those let the next kernel launch early
    // (session 45: vit_large b1 1.235 -> 1.218 ms with both, 1.229 with dependent launches alone).
    bool dependent(int batch) const {
      return batch >= dependent_launch_min_batch() || std::any_of(linears.begin(), linears.end(), [](const auto& op) {
               return op->small_by_check() || op->ws_kernel();
             });
    }
  };

  // Where our TF32 GEMM took a linear in every plan, the exact fp32 copy of its weight (made for cuBLASLt
  // and for tuning) has no reader left beside the TF32-rounded one: freed (9 MiB per vit_base fc1).
  void release_replaced_weights() {
    std::set<const void*> replaced, read;
    for (const auto& [batch, plan] : plans_)
      for (const auto& op : plan.linears) (op->own_kernel() ? replaced : read).insert(op->exact_weight());
    for (const void* d : read) replaced.erase(d);
    if (replaced.empty()) return;
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // planning's uploads and timings are done with them
    for (auto& [batch, plan] : plans_)
      for (auto& op : plan.linears)
        if (replaced.count(op->exact_weight())) op->forget_exact_weight();
    for (auto it = weights_.begin(); it != weights_.end();) {
      if (!replaced.count(it->second)) {
        ++it;
        continue;
      }
      release(it->second);
      it = weights_.erase(it);
    }
  }

  static constexpr int kForwardCheckRuns = 15;  // forwards in each median of the forward check

  // One shape's forward check (refine_tuning): `apply` switches every use of the shape in the plan to a
  // choice ({"algo": ...} or {"variant": ...}, with its time alone as "us"), false where it does not
  // apply; the plan's graph is captured again on its next run. Returns the choice kept, `current` when no
  // alternative beat it; `incumbent_ms` is the forward's latest time with the choice in place.
  nlohmann::json settle(Plan& plan, const nlohmann::json& current, const std::vector<nlohmann::json>& alts,
                        const std::function<bool(const nlohmann::json&)>& apply,
                        const std::function<double(int)>& forward_ms, double& incumbent_ms) {
    constexpr double kMargin = 0.997;
    const auto use = [&](const nlohmann::json& c) {
      const bool ok = apply(c);
      if (plan.graph) {
        CUDA_CHECK(cudaGraphExecDestroy(plan.graph));
        plan.graph = nullptr;
      }
      return ok;
    };
    nlohmann::json incumbent = current;
    for (const nlohmann::json& alt : alts) {
      const double alt_ms = use(alt) ? forward_ms(kForwardCheckRuns) : -1;
      use(incumbent);
      const double again_ms = forward_ms(kForwardCheckRuns);
      if (alt_ms > 0 && alt_ms < kMargin * std::min(incumbent_ms, again_ms)) {
        incumbent = alt;
        incumbent_ms = alt_ms;
        use(incumbent);
      } else {
        incumbent_ms = again_ms;
      }
    }
    return incumbent;
  }
  // The forward check's choice into the cache entry: its fields replace the pick's, the former pick joins
  // the alternatives, and the entry says "forward_check" (the report: "(forward check)").
  void record_choice(const std::string& key, const nlohmann::json& entry, const nlohmann::json& former,
                     const nlohmann::json& kept, const std::vector<nlohmann::json>& alts,
                     const std::string& name) {
    nlohmann::json changed = entry;
    for (const auto& [field, value] : kept.items()) changed[field] = value;
    // Our small GEMM kept over cuBLASLt (LinearOp::use_choice): "small" names its variant either way.
    if (kept.contains("small"))
      changed["small_chosen"] = true;
    else
      changed.erase("small_chosen");
    // Our warp-specialized GEMM (LinearOp::use_choice): "ws" (and "w_first") name it only while it is the choice.
    if (!kept.contains("ws")) changed.erase("ws");
    if (!kept.contains("w_first")) changed.erase("w_first");
    nlohmann::json others = nlohmann::json::array({former});
    for (const nlohmann::json& alt : alts)
      if (alt != kept) others.push_back(alt);
    changed["alternatives"] = std::move(others);
    changed["forward_check"] = true;
    const std::string choice = name + forward_check_note(changed);
    tuner_->rechoose(key, std::move(changed), choice, kept.value("us", 0.0));
  }

  // Scratch for flushing L2 between timed runs, allocated on first use while tuning.
  cuda::L2Flush l2_flush() {
    if (!flush_.buffer) {
      flush_.bytes = 2 * static_cast<std::size_t>(std::max(props_.l2CacheSize, 1 << 20));
      flush_.buffer = allocate(flush_.bytes);
    }
    return flush_;
  }

  // The attention kernel variant for a shape: from the tuning cache, timed now when tuning, else the
  // default for the shape. Also its tuning key, and the variants the tuner timed within 15% of its pick
  // ({"variant", "us"}, for the forward check; only those that still apply to the shape).
  int plan_attention(cuda::AttentionParams p, std::string& key, std::vector<nlohmann::json>& alternatives) {
    key = "attention batch=" + std::to_string(p.batch) + " tokens=" + std::to_string(p.tokens) +
                            " heads=" + std::to_string(p.heads) + " dim=" + std::to_string(p.head_dim) + " " +
                            dt_name(p.dt) + (p.tf32_session ? " tf32" : "") +
                            (cuda::query_tokens(p) < p.tokens ? " queries=" + std::to_string(p.queries) : "");
    const int fallback = cuda::attention_default_variant(p, props_.multiProcessorCount);
    const std::vector<int> variants = cuda::attention_variants(p);
    if (variants.size() < 2) return fallback;  // nothing to choose
    if (tuner_->tuning() && !tuner_->find(key)) {
      const cuda::CandidateTimes t = cuda::time_candidates(
          variants.size(),
          [&](std::size_t i) {
            p.variant = variants[i];
            cuda::attention(p, stream_);
            return true;
          },
          stream_, l2_flush());
      double default_us = -1;
      nlohmann::json times = nlohmann::json::object();  // every candidate's time, for the record
      for (std::size_t i = 0; i < variants.size(); ++i) {
        if (variants[i] == fallback) default_us = t.us[i];
        times[cuda::attention_variant_name(variants[i])] = t.us[i];
      }
      const int best = t.best < 0 ? fallback : variants[static_cast<std::size_t>(t.best)];
      nlohmann::json entry = {{"variant", best},
                              {"us", t.best < 0 ? -1.0 : t.us[static_cast<std::size_t>(t.best)]},
                              {"default_us", default_us},
                              {"candidates", variants.size()},
                              {"times_us", times}};
      if (t.best >= 0) {
        nlohmann::json alts = nlohmann::json::array();
        for (std::size_t i : cuda::near_ties(t, static_cast<std::size_t>(t.best), variants.size()))
          alts.push_back({{"variant", variants[i]}, {"us", t.us[i]}});
        if (!alts.empty()) entry["alternatives"] = std::move(alts);
      }
      tuner_->put(key, std::move(entry));
    }
    if (const nlohmann::json* e = tuner_->find(key)) {
      const int v = e->value("variant", -1);
      if (std::find(variants.begin(), variants.end(), v) != variants.end()) {
        if (const auto alts = e->find("alternatives"); alts != e->end() && alts->is_array())
          for (const nlohmann::json& alt : *alts)
            if (alt.contains("variant") && alt.at("variant").is_number_integer() &&
                std::find(variants.begin(), variants.end(), alt.at("variant").get<int>()) != variants.end())
              alternatives.push_back(alt);
        tuner_->report({key, cuda::attention_variant_name(v) + forward_check_note(*e),
                        e->value("default_us", 0.0), e->value("us", 0.0), e->value("candidates", 0), true});
        return v;
      }
    }
    tuner_->note_untuned(key);
    return fallback;
  }

  // Device copy of host fp32 data in `dt` (fp32 rounded to TF32 when `tf32`), made once per (pointer,
  // dtype, rounding) while planning. Uploaded on stream_, after the buffer's tuning fill (allocate) and
  // before the kernels that read it; a pageable source is staged before upload() returns.
  const void* device_copy(const float* host, std::size_t n, DT dt, bool tf32 = false) {
    const auto key = std::tuple{static_cast<const void*>(host), dt, tf32 && dt == DT::f32};
    auto it = weights_.find(key);
    if (it != weights_.end()) return it->second;
    VITRT_CHECK(mode_ == Mode::plan, "internal: weights first seen outside planning");
    void* d = allocate(n * dt_size(dt));
    if (dt == DT::f32 && std::get<2>(key)) {
      std::vector<float> h(host, host + n);
      for (float& v : h) v = round_to_tf32(v);
      upload(d, h.data(), n * 4);
    } else if (dt == DT::f32) {
      upload(d, host, n * 4);
    } else {
      std::vector<std::uint16_t> h(n);
      for (std::size_t i = 0; i < n; ++i) h[i] = dt == DT::bf16 ? float_to_bf16(host[i]) : float_to_fp16(host[i]);
      upload(d, h.data(), n * 2);
    }
    weights_.emplace(key, d);
    return d;
  }

  int device_;
  bool graphs_;
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  Precision precision_ = Precision::fp32;
  std::unordered_map<void*, std::size_t> owned_;
  std::map<std::tuple<const void*, DT, bool>, void*> weights_;
  std::map<int, Plan> plans_;
  Plan* current_ = nullptr;
  int run_batch_ = 0;
  Mode mode_ = Mode::eager;
  std::size_t linear_index_ = 0, attention_index_ = 0, norm_index_ = 0;
  int plan_batch_ = 0;  // the batch size begin_plan set up
  // While planning: the last LayerNorm call, if its output (second) may be a TF32 GEMM's input.
  std::optional<std::pair<std::size_t, const void*>> pending_norm_;
  std::unique_ptr<TuneCache> tuner_;
  cuda::L2Flush flush_;
  std::uint32_t fills_ = 0;  // seeds of fill_tuning_data
  // device_lock.h: held while planning a batch size, during each plan's first eager run, and while capturing.
  std::optional<cuda::DeviceExclusive> planning_, first_run_;
  std::optional<cuda::CaptureShared> capture_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, void* stream, bool graphs, const std::string& tune_cache,
                                           bool tune) {
  return std::make_unique<CudaBackend>(device, stream, graphs, tune_cache, tune);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace vitrt
