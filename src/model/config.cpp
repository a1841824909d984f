#include <algorithm>
#include <map>

#include "core/check.h"
#include "vitrt/config.h"

namespace vitrt {
namespace {

constexpr std::array<float, 3> kImagenetMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImagenetStd = {0.229f, 0.224f, 0.225f};
constexpr std::array<float, 3> kHalf = {0.5f, 0.5f, 0.5f};

ViTConfig vit(const char* name, int img, int patch, int dim, int depth, int heads, int mlp, double crop,
              std::array<float, 3> mean, std::array<float, 3> std, int classes = 1000) {
  ViTConfig c;
  c.name = name;
  c.img_size = img;
  c.patch_size = patch;
  c.embed_dim = dim;
  c.depth = depth;
  c.num_heads = heads;
  c.mlp_dim = mlp;
  c.num_classes = classes;
  c.preprocess.input_size = img;
  c.preprocess.interpolation = Interpolation::bicubic;
  c.preprocess.crop_pct = crop;
  c.preprocess.mean = mean;
  c.preprocess.std = std;
  return c;
}

ViTConfig distilled(ViTConfig c) {
  c.distilled = true;
  return c;
}

// timm's default pretrained tag for each name decides the preprocessing (augreg ViTs: mean/std 0.5,
// crop 0.9 at 224 and 1.0 at 384; DeiT: ImageNet mean/std, crop 0.9). vit_huge_patch14_224's default
// tag (orig_in21k) is a feature extractor, hence num_classes 0.
std::map<std::string, ViTConfig> make_builtins() {
  std::vector<ViTConfig> all = {
      vit("vit_tiny_patch16_224", 224, 16, 192, 12, 3, 768, 0.9, kHalf, kHalf),
      vit("vit_tiny_patch16_384", 384, 16, 192, 12, 3, 768, 1.0, kHalf, kHalf),
      vit("vit_small_patch16_224", 224, 16, 384, 12, 6, 1536, 0.9, kHalf, kHalf),
      vit("vit_small_patch16_384", 384, 16, 384, 12, 6, 1536, 1.0, kHalf, kHalf),
      vit("vit_base_patch16_224", 224, 16, 768, 12, 12, 3072, 0.9, kHalf, kHalf),
      vit("vit_base_patch16_384", 384, 16, 768, 12, 12, 3072, 1.0, kHalf, kHalf),
      vit("vit_base_patch32_224", 224, 32, 768, 12, 12, 3072, 0.9, kHalf, kHalf),
      vit("vit_base_patch32_384", 384, 32, 768, 12, 12, 3072, 1.0, kHalf, kHalf),
      vit("vit_large_patch16_224", 224, 16, 1024, 24, 16, 4096, 0.9, kHalf, kHalf),
      vit("vit_large_patch16_384", 384, 16, 1024, 24, 16, 4096, 1.0, kHalf, kHalf),
      vit("vit_large_patch32_384", 384, 32, 1024, 24, 16, 4096, 1.0, kHalf, kHalf),
      vit("vit_huge_patch14_224", 224, 14, 1280, 32, 16, 5120, 0.9, kHalf, kHalf, 0),
      vit("deit_tiny_patch16_224", 224, 16, 192, 12, 3, 768, 0.9, kImagenetMean, kImagenetStd),
      vit("deit_small_patch16_224", 224, 16, 384, 12, 6, 1536, 0.9, kImagenetMean, kImagenetStd),
      vit("deit_base_patch16_224", 224, 16, 768, 12, 12, 3072, 0.9, kImagenetMean, kImagenetStd),
      distilled(vit("deit_tiny_distilled_patch16_224", 224, 16, 192, 12, 3, 768, 0.9, kImagenetMean,
                    kImagenetStd)),
      distilled(vit("deit_small_distilled_patch16_224", 224, 16, 384, 12, 6, 1536, 0.9, kImagenetMean,
                    kImagenetStd)),
      distilled(vit("deit_base_distilled_patch16_224", 224, 16, 768, 12, 12, 3072, 0.9, kImagenetMean,
                    kImagenetStd)),
  };
  std::map<std::string, ViTConfig> by_name;
  for (auto& c : all) by_name.emplace(c.name, c);
  return by_name;
}

const std::map<std::string, ViTConfig>& builtins() {
  static const auto table = make_builtins();
  return table;
}

}  // namespace

void ViTConfig::validate() const {
  VITRT_CHECK(embed_dim > 0 && depth > 0 && num_heads > 0 && mlp_dim > 0 && patch_size > 0 && in_chans > 0,
              name, ": dimensions must be positive (embed_dim ", embed_dim, ", depth ", depth, ", heads ",
              num_heads, ", mlp_dim ", mlp_dim, ", patch ", patch_size, ", in_chans ", in_chans, ")");
  VITRT_CHECK(embed_dim % num_heads == 0, name, ": embed_dim ", embed_dim, " is not divisible by num_heads ",
              num_heads);
  VITRT_CHECK(img_size >= patch_size && img_size % patch_size == 0, name, ": image size ", img_size,
              " is not a positive multiple of patch size ", patch_size);
  VITRT_CHECK(reg_tokens >= 0 && num_classes >= 0, name, ": negative reg_tokens or num_classes");
  VITRT_CHECK(!(distilled && global_pool != Pooling::token), name,
              ": a distilled (dist_token) model needs global_pool=token");
  VITRT_CHECK(!(global_pool == Pooling::token && !class_token), name,
              ": global_pool=token needs a class token");
  VITRT_CHECK(!(global_pool == Pooling::avg && num_patches() == 0), name, ": avg pooling over no patches");
  VITRT_CHECK(!(fc_norm && global_pool == Pooling::none), name, ": fc_norm needs pooling");
  VITRT_CHECK(ln_eps > 0, name, ": LayerNorm eps must be positive");
  VITRT_CHECK(preprocess.crop_pct > 0 && preprocess.crop_pct <= 1.0 && preprocess.input_size > 0, name,
              ": bad preprocessing (crop_pct ", preprocess.crop_pct, ", input size ", preprocess.input_size,
              ")");
}

const ViTConfig* find_builtin(const std::string& name) {
  auto it = builtins().find(name);
  return it == builtins().end() ? nullptr : &it->second;
}

std::vector<std::string> builtin_names() {
  std::vector<std::string> names;
  for (const auto& [name, cfg] : builtins()) names.push_back(name);
  return names;
}

const char* to_string(Pooling p) {
  switch (p) {
    case Pooling::token: return "token";
    case Pooling::avg: return "avg";
    case Pooling::none: return "none";
  }
  return "?";
}

const char* to_string(Activation a) { return a == Activation::gelu_erf ? "gelu" : "quick_gelu"; }
const char* to_string(Interpolation i) { return i == Interpolation::bicubic ? "bicubic" : "bilinear"; }

}  // namespace vitrt
