// Architecture and preprocessing description of a Vision Transformer, with timm VisionTransformer
// semantics. Built-in configurations are registered under their timm names:
//
//   const vitrt::ViTConfig* cfg = vitrt::find_builtin("vit_base_patch16_224");
//   std::cout << cfg->embed_dim << " " << cfg->preprocess.crop_pct << "\n";
#pragma once

#include <array>
#include <string>
#include <vector>

namespace vitrt {

enum class Pooling { token, avg, none };
enum class Activation { gelu_erf, quick_gelu };
enum class Interpolation { bilinear, bicubic };

// Eval-time preprocessing: resize the shorter side to floor(input_size / crop_pct) (or, with squash,
// both sides to that size, as Hugging Face processors do), center-crop input_size x input_size,
// scale to [0,1], normalize with mean/std.
struct PreprocessConfig {
  int input_size = 224;
  bool squash = false;
  Interpolation interpolation = Interpolation::bicubic;
  double crop_pct = 0.9;
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};
};

struct ViTConfig {
  std::string name;  // timm name, or a description of where the config came from
  int img_size = 224;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 768;
  int depth = 12;
  int num_heads = 12;
  int mlp_dim = 3072;  // embed_dim * mlp_ratio
  bool qkv_bias = true;
  bool patch_bias = true;  // CLIP-style models have no bias on the patch projection
  bool class_token = true;
  int reg_tokens = 0;
  bool distilled = false;        // DeiT dist_token + head_dist, averaged with head at inference
  bool no_embed_class = false;   // position embedding covers patches only
  bool pre_norm = false;         // norm_pre after the position embedding
  bool final_norm = true;        // `norm` (or `fc_norm` when fc_norm is set)
  bool fc_norm = false;          // norm applied after pooling instead of before
  bool layer_scale = false;      // ls1/ls2 gammas (timm init_values)
  Pooling global_pool = Pooling::token;
  Activation act = Activation::gelu_erf;
  float ln_eps = 1e-6f;
  int num_classes = 1000;        // 0: pooled features out
  PreprocessConfig preprocess;

  int head_dim() const { return embed_dim / num_heads; }
  int grid() const { return img_size / patch_size; }
  int num_patches() const { return grid() * grid(); }
  int num_prefix_tokens() const { return (class_token ? 1 : 0) + (distilled ? 1 : 0) + reg_tokens; }
  int num_tokens() const { return num_patches() + num_prefix_tokens(); }
  // Width of one output row: classes, or features when num_classes == 0.
  int output_dim() const { return num_classes > 0 ? num_classes : embed_dim; }
  // Rows of output per image: 1 when pooled, every token when global_pool == none.
  int output_rows() const { return global_pool == Pooling::none ? num_tokens() : 1; }

  // Throws vitrt::Error when fields contradict each other (heads not dividing dim, ...).
  void validate() const;
};

// nullptr when `name` is not built in.
const ViTConfig* find_builtin(const std::string& name);
std::vector<std::string> builtin_names();

const char* to_string(Pooling p);
const char* to_string(Activation a);
const char* to_string(Interpolation i);

}  // namespace vitrt
