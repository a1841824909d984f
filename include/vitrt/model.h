// A Model is an immutable architecture + weights, shared by any number of Sessions.
//
//   auto model = vitrt::Model::load("deit_tiny.safetensors");          // format detected
//   auto bench = vitrt::Model::synthetic("vit_base_patch16_224");      // deterministic random weights
//   std::cout << model->config().depth << " blocks, " << model->num_params() << " parameters\n";
//
// Supported files: timm safetensors, Hugging Face ViTModel / ViTForImageClassification safetensors
// (config.json beside the file is read when present), Google's ViT .npz. fp32, fp16 and bf16 tensors
// are accepted; weights are held in fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vitrt/config.h"

namespace vitrt {

struct ModelWeights;  // internal layout, see src/model/weights.h

class Model {
 public:
  // `arch`: optional built-in name giving what a file cannot say (heads, activation, eps); the
  // weights are checked against it. Throws vitrt::Error naming the file and tensor on any problem.
  static std::shared_ptr<const Model> load(const std::string& path, const std::string& arch = "");
  // Deterministic synthetic weights for a built-in name (for benchmarking; predictions are noise).
  static std::shared_ptr<const Model> synthetic(const std::string& arch, std::uint64_t seed = 0);
  static std::shared_ptr<const Model> synthetic(const ViTConfig& config, std::uint64_t seed = 0);

  const ViTConfig& config() const { return config_; }
  // Class names from the checkpoint's metadata; empty when it has none.
  const std::vector<std::string>& labels() const { return labels_; }
  const std::string& source() const { return source_; }  // file path, or "synthetic"
  const std::string& format() const { return format_; }  // "timm", "hf", "npz", "synthetic"
  bool is_synthetic() const { return format_ == "synthetic"; }
  std::int64_t num_params() const;
  // Forward FLOPs (2 x multiply-adds, GEMMs + attention) for one image at `img_size` (0: native).
  double flops_per_image(int img_size = 0) const;

  const ModelWeights& weights() const { return *weights_; }

  Model(ViTConfig config, std::shared_ptr<const ModelWeights> weights, std::string source,
        std::string format, std::vector<std::string> labels);

 private:
  ViTConfig config_;
  std::shared_ptr<const ModelWeights> weights_;
  std::string source_;
  std::string format_;
  std::vector<std::string> labels_;
};

// Built-in ImageNet-1k class names in index order.
const std::vector<std::string>& imagenet_labels();

}  // namespace vitrt
