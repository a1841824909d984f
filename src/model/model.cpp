#include <cmath>
#include <cstdio>
#include <mutex>

#include "core/check.h"
#include "vitrt_commit.h"
#include "model/checkpoint.h"
#include "model/weights.h"
#include "vitrt/session.h"
#include "vitrt/vitrt.h"

namespace vitrt {

Model::Model(ViTConfig config, std::shared_ptr<const ModelWeights> weights, std::string source, std::string format,
             std::vector<std::string> labels)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      source_(std::move(source)),
      format_(std::move(format)),
      labels_(std::move(labels)) {}

std::shared_ptr<const Model> Model::load(const std::string& path, const std::string& arch) {
  Checkpoint ck = read_checkpoint(path);
  for (const auto& n : ck.notices) log_notice(n);
  std::optional<ViTConfig> base = ck.config;
  if (!arch.empty()) {
    const ViTConfig* b = find_builtin(arch);
    VITRT_CHECK(b, "unknown architecture '", arch, "'; `vitrt info --list` shows the built-in names");
    base = *b;
  }
  if (!base) {
    log_notice(path + ": no config.json beside the checkpoint and no --model; architecture inferred from the "
                      "weights with timm ViT defaults (GELU, LayerNorm eps 1e-6, mean/std 0.5, bicubic, crop 0.9)");
  }
  ViTConfig config = infer_config(ck.tensors, base ? &*base : nullptr, path);
  if (!base) {
    config.preprocess.mean = {0.5f, 0.5f, 0.5f};
    config.preprocess.std = {0.5f, 0.5f, 0.5f};
  }
  auto weights = build_weights(config, std::move(ck.tensors), path);
  auto labels = std::move(ck.labels);
  if (!labels.empty() && labels.size() != static_cast<size_t>(config.num_classes)) {
    log_notice(path + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(config.num_classes) +
               " classes; ignoring the labels");
    labels.clear();
  }
  return std::make_shared<const Model>(config, std::move(weights), path, ck.format, std::move(labels));
}

std::shared_ptr<const Model> Model::synthetic(const ViTConfig& config, std::uint64_t seed) {
  config.validate();
  auto weights = build_weights(config, synthetic_tensors(config, seed), "synthetic " + config.name);
  return std::make_shared<const Model>(config, std::move(weights), "synthetic", "synthetic",
                                       std::vector<std::string>{});
}

std::shared_ptr<const Model> Model::synthetic(const std::string& arch, std::uint64_t seed) {
  const ViTConfig* b = find_builtin(arch);
  VITRT_CHECK(b, "unknown architecture '", arch, "'; `vitrt info --list` shows the built-in names");
  return synthetic(*b, seed);
}

std::int64_t Model::num_params() const {
  std::int64_t n = 0;
  for (const auto& [name, t] : weights_->tensors) n += t.numel();
  // LayerScale gammas were folded into the projections; count them as timm does.
  if (config_.layer_scale) n += 2LL * config_.depth * config_.embed_dim;
  // Zero biases vitrt adds for bias-free layers are not parameters.
  if (!config_.qkv_bias) n -= 3LL * config_.depth * config_.embed_dim;
  if (!config_.patch_bias) n -= config_.embed_dim;
  return n;
}

double Model::flops_per_image(int img_size) const {
  const auto& c = config_;
  const double S = img_size > 0 ? img_size : c.img_size;
  const double g = std::floor(S / c.patch_size), patches = g * g;
  const double N = patches + c.num_prefix_tokens(), E = c.embed_dim, M = c.mlp_dim;
  const double per_block = 2 * N * E * 3 * E + 2 * N * E * E + 2 * 2 * N * E * M + 2 * 2 * N * N * E;
  const double patch = 2 * patches * E * c.in_chans * c.patch_size * c.patch_size;
  const double head = 2.0 * E * c.num_classes * (c.distilled ? 2 : 1) * (c.global_pool == Pooling::none ? N : 1);
  return patch + c.depth * per_block + head;
}

const std::vector<std::string>& imagenet_labels() {
  static const std::vector<std::string> labels = {
#include "model/imagenet_labels.inc"
  };
  return labels;
}

namespace {
std::mutex g_log_mutex;
void log_to_stderr(std::string_view m) { std::fprintf(stderr, "vitrt: %.*s\n", static_cast<int>(m.size()), m.data()); }
std::function<void(std::string_view)>& log_handler() {
  static std::function<void(std::string_view)> h = log_to_stderr;
  return h;
}
}  // namespace

void set_log_handler(std::function<void(std::string_view)> handler) {
  std::lock_guard lock(g_log_mutex);
  log_handler() = handler ? std::move(handler) : log_to_stderr;
}

void log_notice(std::string_view message) {
  std::lock_guard lock(g_log_mutex);
  if (log_handler()) log_handler()(message);
}

const char* version() { return VITRT_VERSION; }
const char* git_commit() { return VITRT_GIT_COMMIT; }

}  // namespace vitrt
