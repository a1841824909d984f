// CPU backend: oneDNN matmuls (bias/GELU/residual fused), our attention softmax and LayerNorm,
// OpenMP threads. Primitives are created while planning and replayed in call order.
#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/layernorm.h"
#include "backend/cpu/linear.h"
#include "backend/cpu/patch_embed.h"
#include "backend/cpu/pooling.h"
#include "core/check.h"

namespace vitrt {
namespace {

bool cpu_has_bf16() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

std::string isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx: return "AMX";
    case dnnl::cpu_isa::avx512_core_bf16: return "AVX512-BF16";
    case dnnl::cpu_isa::avx512_core_vnni: return "AVX512-VNNI";
    case dnnl::cpu_isa::avx512_core: return "AVX512";
    case dnnl::cpu_isa::avx2: return "AVX2";
    default: return "generic";
  }
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads)
      : threads_(threads > 0 ? threads : omp_get_num_procs()), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {}

  std::string device_name() const override {
    return "cpu (" + std::to_string(threads_) + " threads, oneDNN " + isa_name() + ")";
  }

  Precision resolve_precision(Precision p) override {
    if (p == Precision::bf16 && cpu_has_bf16()) {
      act_dt_ = DT::bf16;
      return p;
    }
    if (p != Precision::fp32) {
      log_notice(std::string("precision ") + to_string(p) + " is not available on this CPU (" + isa_name() +
                 "); running fp32");
    }
    act_dt_ = DT::f32;
    return Precision::fp32;
  }

  void* allocate(std::size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    VITRT_CHECK(p, "out of host memory: could not allocate ", bytes, " bytes for the session arena");
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, std::size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, std::size_t bytes) override { std::memcpy(dst, src, bytes); }

  void begin_plan(int batch) override {
    planning_ = true;
    current_ = &plans_[batch];
    *current_ = Plan{};
    omp_set_num_threads(threads_);
  }
  void end_plan() override { planning_ = false; }
  void begin_run(int batch) override {
    auto it = plans_.find(batch);
    VITRT_CHECK(it != plans_.end(), "internal: batch ", batch, " was not planned");
    current_ = &it->second;
    linear_index_ = attn_index_ = 0;
    omp_set_num_threads(threads_);
  }
  void end_run() override {
    VITRT_CHECK(linear_index_ == current_->linears.size() && attn_index_ == current_->attentions.size(),
                "internal: forward replay did not match its plan");
  }

  std::vector<double> time_runs(const std::function<void()>& forward, int warmup, int iters) override {
    for (int i = 0; i < warmup; ++i) forward();
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      forward();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return ms;
  }

  void linear(const LinearArgs& a) override {
    if (planning_) {
      current_->linears.push_back(std::make_unique<cpu::LinearOp>(a, weights_, eng_, strm_));
      return;
    }
    current_->linears.at(linear_index_++)->execute(a, strm_);
  }

  void attention(const AttentionArgs& a) override {
    if (planning_) {
      const auto bytes = cpu::AttentionOp::scratch_bytes(a.batch, a.tokens, a.heads, a.dt);
      if (bytes > attn_scratch_bytes_) {
        // Ops planned earlier point into the old scratch: plan the largest batch first.
        VITRT_CHECK(attn_scratch_ == nullptr, "internal: attention scratch grew after planning");
        attn_scratch_ = allocate(bytes);
        attn_scratch_bytes_ = bytes;
      }
      // Every attention of a batch size shares one scratch; planning the largest batch first keeps it.
      current_->attentions.push_back(std::make_unique<cpu::AttentionOp>(a, attn_scratch_, eng_));
      return;
    }
    current_->attentions.at(attn_index_++)->execute(a, strm_);
  }

  void patchify(const PatchifyArgs& a) override {
    if (!planning_) cpu::patchify(a);
  }
  void tokens(const TokensArgs& a) override {
    if (planning_) return;
    cpu::tokens(a);
    if (a.norm) {
      const std::int64_t rows = static_cast<std::int64_t>(a.batch) * (a.num_prefix + a.patches);
      cpu::layernorm({rows, a.dim, a.x, a.dim, a.normed, a.dim, a.normed_dt, a.norm, a.eps, a.x_dt});
    }
  }
  void layernorm(const LayerNormArgs& a) override {
    if (!planning_) cpu::layernorm(a);
  }
  void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst) override {
    if (!planning_) cpu::mean_tokens(x, x_dt, batch, tokens, dim, first, count, dst);
  }
  void average(const float* a, const float* b, std::int64_t n, float* dst) override {
    if (!planning_) cpu::average(a, b, n, dst);
  }

  ~CpuBackend() override {
    plans_.clear();
    if (attn_scratch_) release(attn_scratch_);
  }

 private:
  struct Plan {
    std::vector<std::unique_ptr<cpu::LinearOp>> linears;
    std::vector<std::unique_ptr<cpu::AttentionOp>> attentions;
  };

  int threads_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  cpu::WeightCache weights_;
  std::map<int, Plan> plans_;
  Plan* current_ = nullptr;
  bool planning_ = false;
  std::size_t linear_index_ = 0, attn_index_ = 0;
  void* attn_scratch_ = nullptr;
  std::size_t attn_scratch_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace vitrt
