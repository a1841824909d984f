#include "vitrt/session.h"

#include <algorithm>
#include <set>

#include "backend/backend.h"
#include "core/arena.h"
#include "core/check.h"
#include "core/resample.h"
#include "model/forward.h"

namespace vitrt {

const char* to_string(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::fp16: return "fp16";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

Precision parse_precision(const std::string& s) {
  for (auto p : {Precision::fp32, Precision::tf32, Precision::fp16, Precision::bf16})
    if (s == to_string(p)) return p;
  VITRT_FAIL("unknown precision '", s, "'; expected fp32, tf32, fp16 or bf16");
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return {Kind::cpu, 0};
  if (s == "cuda") return {Kind::cuda, 0};
  if (s.starts_with("cuda:") && s.size() > 5 && s.size() < 9 &&
      std::all_of(s.begin() + 5, s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    return {Kind::cuda, std::stoi(s.substr(5))};
  VITRT_FAIL("unknown device '", s, "'; expected cpu, cuda or cuda:N");
}

std::string Device::to_string() const { return kind == Kind::cpu ? "cpu" : "cuda:" + std::to_string(index); }

#ifndef VITRT_HAVE_CUDA
int cuda_device_count() { return 0; }
#endif

struct Session::Plan {
  std::vector<int> batches;  // ascending
  void* arena = nullptr;
  std::size_t arena_bytes = 0;
  Activations act;
  std::vector<float> prefix, pos;
  ForwardConstants constants;
};

namespace {

// Position embedding for the session grid: prefix rows kept, the grid resampled bicubically with
// antialiasing (timm's resample_abs_pos_embed).
std::vector<float> session_pos_embed(const ViTConfig& c, const ModelWeights& w, int grid) {
  const int E = c.embed_dim, prefix = w.pos_prefix, old_grid = w.pos_grid;
  std::vector<float> pos(static_cast<size_t>(prefix + grid * grid) * E);
  std::copy(w.pos_embed, w.pos_embed + static_cast<size_t>(prefix) * E, pos.begin());
  const float* src = w.pos_embed + static_cast<size_t>(prefix) * E;
  float* dst = pos.data() + static_cast<size_t>(prefix) * E;
  if (grid == old_grid) {
    std::copy(src, src + static_cast<size_t>(grid) * grid * E, dst);
    return pos;
  }
  // [tokens, E] <-> [E, g, g] planes.
  std::vector<float> planes(static_cast<size_t>(E) * old_grid * old_grid), out(static_cast<size_t>(E) * grid * grid);
  for (int t = 0; t < old_grid * old_grid; ++t)
    for (int e = 0; e < E; ++e) planes[static_cast<size_t>(e) * old_grid * old_grid + t] = src[static_cast<size_t>(t) * E + e];
  resample_planes(planes.data(), E, old_grid, old_grid, out.data(), grid, grid, Interpolation::bicubic);
  for (int t = 0; t < grid * grid; ++t)
    for (int e = 0; e < E; ++e) dst[static_cast<size_t>(t) * E + e] = out[static_cast<size_t>(e) * grid * grid + t];
  return pos;
}

}  // namespace

Session::Session(std::shared_ptr<const Model> model, SessionOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  VITRT_CHECK(model_, "Session needs a model");
  const ViTConfig& c = model_->config();
  const ModelWeights& w = model_->weights();
  VITRT_CHECK(!options_.batch_sizes.empty(), "no batch sizes to plan");
  for (int b : options_.batch_sizes)
    VITRT_CHECK(b >= 1 && b <= 65536, "batch size ", b, " is out of range (1..65536)");
  img_size_ = options_.img_size > 0 ? options_.img_size : c.img_size;
  VITRT_CHECK(img_size_ % c.patch_size == 0 && img_size_ <= 8192, "image size ", img_size_,
              " is not a multiple of the patch size ", c.patch_size, " (or exceeds 8192)");
  VITRT_CHECK(options_.threads >= 0, "thread count must be >= 0, got ", options_.threads);

  if (options_.device.kind == Device::Kind::cuda) {
#ifdef VITRT_HAVE_CUDA
    backend_ = make_cuda_backend(options_.device.index, options_.cuda_stream, options_.cuda_graphs,
                                 options_.tune_cache, options_.tune);
#else
    VITRT_FAIL("device ", options_.device.to_string(), " requested, but this build of vitrt has no CUDA backend");
#endif
  } else {
    VITRT_CHECK(!options_.tune, "tuning applies to CUDA devices; ", options_.device.to_string(), " has nothing to tune");
    backend_ = make_cpu_backend(options_.threads);
  }
  precision_ = backend_->resolve_precision(options_.precision);

  plan_ = std::make_unique<Plan>();
  auto& p = *plan_;
  std::set<int> sizes(options_.batch_sizes.begin(), options_.batch_sizes.end());
  p.batches.assign(sizes.begin(), sizes.end());
  const int grid = img_size_ / c.patch_size;
  p.pos = session_pos_embed(c, w, grid);
  for (const float* t : {w.cls_token, w.dist_token})
    if (t) p.prefix.insert(p.prefix.end(), t, t + c.embed_dim);
  if (w.reg_tokens) p.prefix.insert(p.prefix.end(), w.reg_tokens, w.reg_tokens + static_cast<size_t>(c.reg_tokens) * c.embed_dim);

  // One arena for the largest batch.
  const std::size_t B = static_cast<std::size_t>(p.batches.back());
  const std::size_t patches = static_cast<std::size_t>(grid) * grid, N = patches + c.num_prefix_tokens();
  const std::size_t E = c.embed_dim, M = c.mlp_dim, K = static_cast<std::size_t>(c.in_chans) * c.patch_size * c.patch_size;
  const std::size_t as = dt_size(backend_->act_dt());
  // The residual stream in fp32, or in the activation type when asked (unless it is the output).
  const bool features_out = c.num_classes == 0 && c.global_pool == Pooling::none;
  const DT residual_dt = options_.residual_16bit && !features_out ? backend_->act_dt() : DT::f32;
  const std::size_t xs = dt_size(residual_dt);
  const std::size_t classes = std::max(c.num_classes, 1);
  // Buffers and the forward steps in which they are live (model/forward.h); the arena overlaps
  // buffers that are never live at the same time.
  struct Slice {
    void** ptr;
    BufferLife life;
  };
  const std::vector<Slice> slices = {
      {reinterpret_cast<void**>(&p.act.images), {B * c.in_chans * img_size_ * img_size_ * 4, kStepStage, kStepHead}},
      {&p.act.cols, {B * patches * K * as, kStepPatchify, kStepPatchGemm}},
      {reinterpret_cast<void**>(&p.act.patches), {B * patches * E * 4, kStepPatchGemm, kStepTokens}},
      {&p.act.x, {B * N * E * xs, kStepTokens, kStepHead}},
      {&p.act.h, {B * N * E * as, kStepTokens, kStepFc1}},  // the tokens step may write norm1
      {&p.act.qkv, {B * N * 3 * E * as, kStepQkv, kStepAttention}},
      {&p.act.attn, {B * N * E * as, kStepAttention, kStepProj}},
      {&p.act.mlp, {B * N * M * as, kStepFc1, kStepFc2}},
      {reinterpret_cast<void**>(&p.act.pooled), {B * E * 4, kStepHead, kStepHead}},
      {reinterpret_cast<void**>(&p.act.pooled_dist), {B * E * 4, kStepHead, kStepHead}},
      {reinterpret_cast<void**>(&p.act.logits), {B * c.output_rows() * classes * 4, kStepHead, kStepHead}},
      {reinterpret_cast<void**>(&p.act.logits_dist), {B * classes * 4, kStepHead, kStepHead}},
  };
  std::vector<BufferLife> lives;
  for (const Slice& s : slices) lives.push_back(s.life);
  // 256-byte aligned slices: cuBLASLt picks algorithms assuming that alignment.
  const ArenaLayout layout = plan_arena(lives, 256);
  p.arena = backend_->allocate(layout.total);
  p.arena_bytes = layout.total;
  for (std::size_t i = 0; i < slices.size(); ++i) *slices[i].ptr = static_cast<char*>(p.arena) + layout.offsets[i];
  p.constants = {&c, &w, img_size_, p.prefix.data(), p.pos.data(), residual_dt};
  // Largest batch first: backends size shared scratch from the first plan.
  for (auto it = p.batches.rbegin(); it != p.batches.rend(); ++it) {
    backend_->begin_plan(*it);
    vit_forward(*backend_, p.constants, p.act, *it, *it);
    backend_->end_plan();
  }
  // A tuning session settles the tuner's near-ties by timing whole forwards (on the buffers' tuning data).
  if (options_.tune)
    for (int b : p.batches)
      backend_->refine_tuning(b, [&](int iters) {
        std::vector<double> ms = backend_->time_runs([&] { forward(b, b); }, iters > 1 ? 3 : 2, iters);
        std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
        return ms[ms.size() / 2];
      });
  backend_->end_planning();
}

Session::~Session() {
  if (plan_ && plan_->arena) {
    void* arena = plan_->arena;
    plan_.reset();
    backend_->release(arena);
  }
}

int Session::max_batch() const { return plan_->batches.back(); }
std::size_t Session::arena_bytes() const { return plan_->arena_bytes; }
std::size_t Session::device_bytes() const { return backend_->device_bytes(); }
std::string Session::device_name() const { return backend_->device_name(); }
std::string Session::tune_cache_path() const { return backend_->tune_cache_path(); }
std::vector<TuneResult> Session::tune_results() const { return backend_->tune_results(); }

std::int64_t Session::input_elements_per_image() const {
  return static_cast<std::int64_t>(model_->config().in_chans) * img_size_ * img_size_;
}

std::int64_t Session::output_elements_per_image() const {
  const auto& c = model_->config();
  const int grid = img_size_ / c.patch_size;
  const std::int64_t rows = c.global_pool == Pooling::none ? grid * grid + c.num_prefix_tokens() : 1;
  return rows * c.output_dim();
}

int Session::stage_input(const float* images, int batch) {
  auto& p = *plan_;
  VITRT_CHECK(batch >= 1 && batch <= max_batch(), "batch ", batch, " is outside the planned range 1..", max_batch());
  VITRT_CHECK(images, "Session: null input pointer");
  backend_->upload(p.act.images, images, static_cast<std::size_t>(batch) * input_elements_per_image() * sizeof(float));
  return *std::lower_bound(p.batches.begin(), p.batches.end(), batch);
}

const float* Session::forward(int planned, int batch) {
  backend_->begin_run(planned);
  try {
    const float* result = vit_forward(*backend_, plan_->constants, plan_->act, planned, batch);
    backend_->end_run();
    return result;
  } catch (const Error& e) {
    const std::string context = backend_->abort_run();
    if (context.empty()) throw;
    throw Error(std::string(e.what()) + " (" + context + ")");
  } catch (...) {
    backend_->abort_run();
    throw;
  }
}

void Session::run(const float* images, int batch, float* out) {
  VITRT_CHECK(out, "Session::run: null output pointer");
  const int planned = stage_input(images, batch);
  const float* result = forward(planned, batch);
  backend_->download(out, result, static_cast<std::size_t>(batch) * output_elements_per_image() * sizeof(float));
}

std::vector<double> Session::benchmark(const float* images, int batch, int warmup, int iters) {
  VITRT_CHECK(warmup >= 0 && iters >= 1, "benchmark needs iters >= 1 and warmup >= 0");
  const int planned = stage_input(images, batch);
  return backend_->time_runs([&] { forward(planned, batch); }, warmup, iters);
}

}  // namespace vitrt
