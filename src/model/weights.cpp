#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "core/check.h"
#include "io/tensor_file.h"

namespace vitrt {
namespace {

std::string blk(int i, const char* rest) { return "blocks." + std::to_string(i) + "." + rest; }

bool has(const std::map<std::string, HostTensor>& t, const std::string& name) { return t.count(name) != 0; }

const HostTensor& need(const std::map<std::string, HostTensor>& t, const std::string& name, const std::string& src) {
  auto it = t.find(name);
  VITRT_CHECK(it != t.end(), src, ": missing tensor '", name, "'");
  return it->second;
}

// The expected tensor list of a config, with shapes; optional entries may be absent (zero bias).
struct Expect {
  std::string name;
  Shape shape;
  bool optional = false;
};

std::vector<Expect> expected_tensors(const ViTConfig& c, int pos_rows) {
  const std::int64_t E = c.embed_dim, M = c.mlp_dim, P = c.patch_size;
  std::vector<Expect> e;
  e.push_back({"patch_embed.proj.weight", {E, c.in_chans, P, P}});
  if (c.patch_bias) e.push_back({"patch_embed.proj.bias", {E}});
  if (c.class_token) e.push_back({"cls_token", {1, 1, E}});
  if (c.distilled) e.push_back({"dist_token", {1, 1, E}});
  if (c.reg_tokens > 0) e.push_back({"reg_token", {1, c.reg_tokens, E}});
  e.push_back({"pos_embed", {1, pos_rows, E}});
  if (c.pre_norm) {
    e.push_back({"norm_pre.weight", {E}});
    e.push_back({"norm_pre.bias", {E}});
  }
  for (int i = 0; i < c.depth; ++i) {
    for (const char* n : {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.proj.bias", "mlp.fc2.bias"})
      e.push_back({blk(i, n), {E}});
    e.push_back({blk(i, "attn.qkv.weight"), {3 * E, E}});
    if (c.qkv_bias) e.push_back({blk(i, "attn.qkv.bias"), {3 * E}});
    e.push_back({blk(i, "attn.proj.weight"), {E, E}});
    e.push_back({blk(i, "mlp.fc1.weight"), {M, E}});
    e.push_back({blk(i, "mlp.fc1.bias"), {M}});
    e.push_back({blk(i, "mlp.fc2.weight"), {E, M}});
    if (c.layer_scale) {
      e.push_back({blk(i, "ls1.gamma"), {E}});
      e.push_back({blk(i, "ls2.gamma"), {E}});
    }
  }
  const char* final = c.fc_norm ? "fc_norm" : "norm";
  if (c.final_norm) {
    e.push_back({std::string(final) + ".weight", {E}});
    e.push_back({std::string(final) + ".bias", {E}});
  }
  if (c.num_classes > 0) {
    e.push_back({"head.weight", {c.num_classes, E}});
    e.push_back({"head.bias", {c.num_classes}});
    if (c.distilled) {
      e.push_back({"head_dist.weight", {c.num_classes, E}});
      e.push_back({"head_dist.bias", {c.num_classes}});
    }
  }
  return e;
}

int pos_prefix_rows(const ViTConfig& c) { return c.no_embed_class ? 0 : c.num_prefix_tokens(); }

int isqrt_exact(std::int64_t n) {
  auto r = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return r * r == n ? static_cast<int>(r) : -1;
}

// timm's standard ViT widths and their head counts (head dim 64, except huge/giant).
int standard_heads(int dim) {
  switch (dim) {
    case 192: return 3;
    case 384: return 6;
    case 768: return 12;
    case 1024:
    case 1280:
    case 1408:
    case 1664: return 16;
    default: return 0;
  }
}

}  // namespace

ViTConfig infer_config(const std::map<std::string, HostTensor>& t, const ViTConfig* base, const std::string& src) {
  ViTConfig c = base ? *base : ViTConfig{};
  const auto& pw = need(t, "patch_embed.proj.weight", src);
  VITRT_CHECK(pw.shape.size() == 4 && pw.shape[2] == pw.shape[3], src,
              ": patch_embed.proj.weight: expected [dim, chans, patch, patch], found ", shape_str(pw.shape));
  const int dim = static_cast<int>(pw.shape[0]), patch = static_cast<int>(pw.shape[2]);
  int depth = 0;
  while (has(t, blk(depth, "attn.qkv.weight"))) ++depth;
  VITRT_CHECK(depth > 0, src, ": no transformer blocks found (expected 'blocks.0.attn.qkv.weight')");
  const auto& fc1 = need(t, blk(0, "mlp.fc1.weight"), src);
  VITRT_CHECK(fc1.shape.size() == 2, src, ": blocks.0.mlp.fc1.weight: expected 2 dims, found ", shape_str(fc1.shape));
  const int mlp = static_cast<int>(fc1.shape[0]);
  // A base config's dimensions must agree with the weights; 0 means the base does not know them.
  if (base) {
    auto agree = [](int want, int got) { return want == 0 || want == got; };
    VITRT_CHECK(agree(base->embed_dim, dim) && agree(base->depth, depth) && agree(base->patch_size, patch) &&
                    agree(base->mlp_dim, mlp),
                src, ": weights are dim ", dim, ", depth ", depth, ", patch ", patch, ", mlp ", mlp, " but ",
                base->name, " is dim ", base->embed_dim, ", depth ", base->depth, ", patch ", base->patch_size,
                ", mlp ", base->mlp_dim);
  }
  c.embed_dim = dim;
  c.patch_size = patch;
  c.in_chans = static_cast<int>(pw.shape[1]);
  c.depth = depth;
  c.mlp_dim = mlp;
  c.patch_bias = has(t, "patch_embed.proj.bias");
  c.qkv_bias = has(t, blk(0, "attn.qkv.bias"));
  c.class_token = has(t, "cls_token");
  c.distilled = has(t, "dist_token");
  c.reg_tokens = has(t, "reg_token") ? static_cast<int>(need(t, "reg_token", src).shape.at(1)) : 0;
  c.pre_norm = has(t, "norm_pre.weight");
  c.layer_scale = has(t, blk(0, "ls1.gamma"));
  c.fc_norm = has(t, "fc_norm.weight");
  c.final_norm = c.fc_norm || has(t, "norm.weight");
  c.num_classes = has(t, "head.weight") ? static_cast<int>(need(t, "head.weight", src).shape.at(0)) : 0;
  if (c.fc_norm) c.global_pool = Pooling::avg;
  else if (!c.class_token && c.global_pool == Pooling::token) c.global_pool = Pooling::avg;
  if (!base || base->num_heads <= 0) {
    const int heads = standard_heads(dim);
    VITRT_CHECK(heads > 0, src, ": cannot tell the number of attention heads for embed_dim ", dim,
                "; pass a built-in architecture (--model) or put a config.json beside the file");
    c.num_heads = heads;
  }
  // Position embedding rows tell the checkpoint's grid and whether prefix tokens have positions.
  const auto& pos = need(t, "pos_embed", src);
  VITRT_CHECK(pos.shape.size() == 3 && pos.shape[0] == 1 && pos.shape[2] == dim, src,
              ": pos_embed: expected [1, tokens, ", dim, "], found ", shape_str(pos.shape));
  const int prefix = c.num_prefix_tokens();
  int grid = isqrt_exact(pos.shape[1] - prefix);
  c.no_embed_class = false;
  if (grid <= 0 && prefix > 0 && isqrt_exact(pos.shape[1]) > 0) {
    grid = isqrt_exact(pos.shape[1]);
    c.no_embed_class = true;
  }
  VITRT_CHECK(grid > 0, src, ": pos_embed has ", pos.shape[1], " rows: not a square patch grid plus ", prefix,
              " prefix tokens");
  c.img_size = grid * patch;
  if (!base) {
    c.name = "inferred";
    c.preprocess.input_size = c.img_size;
  }
  c.validate();
  return c;
}

std::shared_ptr<const ModelWeights> build_weights(const ViTConfig& c, std::map<std::string, HostTensor> tensors,
                                                  const std::string& src) {
  c.validate();
  auto w = std::make_shared<ModelWeights>();
  const int prefix = pos_prefix_rows(c);
  const auto pos_it = tensors.find("pos_embed");
  VITRT_CHECK(pos_it != tensors.end(), src, ": missing tensor 'pos_embed'");
  const auto& pos_shape = pos_it->second.shape;
  const int grid = pos_shape.size() == 3 ? isqrt_exact(pos_shape[1] - prefix) : -1;
  VITRT_CHECK(grid > 0, src, ": pos_embed ", shape_str(pos_shape), " does not hold ", prefix,
              " prefix rows plus a square grid");

  std::set<std::string> expected_names;
  for (const auto& e : expected_tensors(c, prefix + grid * grid)) {
    expected_names.insert(e.name);
    auto it = tensors.find(e.name);
    VITRT_CHECK(it != tensors.end(), src, ": missing tensor '", e.name, "' (expected ", shape_str(e.shape), ")");
    VITRT_CHECK(it->second.shape == e.shape, src, ": ", e.name, ": expected ", shape_str(e.shape), ", found ",
                shape_str(it->second.shape));
  }
  for (const auto& [name, t] : tensors)
    VITRT_CHECK(expected_names.count(name), src, ": unexpected tensor '", name, "' ", shape_str(t.shape),
                " for this architecture");

  auto zeros = [&](const std::string& name, std::int64_t n) {
    auto& t = tensors[name];
    if (t.data.empty()) t = HostTensor{{n}, std::vector<float>(static_cast<size_t>(n), 0.0f)};
  };
  const int E = c.embed_dim;
  zeros("patch_embed.proj.bias", E);
  for (int i = 0; i < c.depth; ++i) {
    zeros(blk(i, "attn.qkv.bias"), 3 * E);
    if (c.layer_scale) {
      for (auto [gamma, lin] : {std::pair{"ls1.gamma", "attn.proj"}, std::pair{"ls2.gamma", "mlp.fc2"}}) {
        const auto g = tensors[blk(i, gamma)].data;
        auto& wt = tensors[blk(i, (std::string(lin) + ".weight").c_str())];
        auto& bs = tensors[blk(i, (std::string(lin) + ".bias").c_str())];
        const size_t in = wt.data.size() / static_cast<size_t>(E);
        for (size_t o = 0; o < static_cast<size_t>(E); ++o) {
          for (size_t k = 0; k < in; ++k) wt.data[o * in + k] *= g[o];
          bs.data[o] *= g[o];
        }
        tensors.erase(blk(i, gamma));
      }
    }
  }
  w->tensors = std::move(tensors);
  auto ptr = [&](const std::string& name) -> const float* {
    auto it = w->tensors.find(name);
    return it == w->tensors.end() ? nullptr : it->second.data.data();
  };
  auto linear = [&](const std::string& name, int out, int in) {
    return LinearWeights{ptr(name + ".weight"), ptr(name + ".bias"), out, in};
  };
  auto norm = [&](const std::string& name) { return NormWeights{ptr(name + ".weight"), ptr(name + ".bias")}; };

  w->patch = linear("patch_embed.proj", E, c.in_chans * c.patch_size * c.patch_size);
  w->cls_token = ptr("cls_token");
  w->dist_token = ptr("dist_token");
  w->reg_tokens = ptr("reg_token");
  w->pos_embed = ptr("pos_embed");
  w->pos_prefix = prefix;
  w->pos_grid = grid;
  w->norm_pre = norm("norm_pre");
  w->norm = norm("norm");
  w->fc_norm = norm("fc_norm");
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    w->blocks.push_back({norm(b + "norm1"), norm(b + "norm2"), linear(b + "attn.qkv", 3 * E, E),
                         linear(b + "attn.proj", E, E), linear(b + "mlp.fc1", c.mlp_dim, E),
                         linear(b + "mlp.fc2", E, c.mlp_dim)});
  }
  w->head = linear("head", c.num_classes, E);
  w->head_dist = linear("head_dist", c.num_classes, E);
  return w;
}

std::map<std::string, HostTensor> synthetic_tensors(const ViTConfig& c, std::uint64_t seed) {
  // splitmix64 -> uniform in [-sqrt(3), sqrt(3)): unit variance, fast enough for ViT-Huge at start-up.
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  auto next = [&state] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (static_cast<float>(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 1.7320508f;
  };
  std::map<std::string, HostTensor> t;
  for (const auto& e : expected_tensors(c, pos_prefix_rows(c) + c.num_patches())) {
    HostTensor h;
    h.shape = e.shape;
    h.data.resize(static_cast<size_t>(checked_numel(e.shape, kMaxTensorElements, e.name)));
    const bool norm_weight = e.name.find("norm") != std::string::npos && e.name.ends_with(".weight");
    const bool gamma = e.name.ends_with(".gamma");
    for (auto& v : h.data) v = norm_weight ? 1.0f + 0.1f * next() : gamma ? 0.1f + 0.02f * next() : 0.02f * next();
    t.emplace(e.name, std::move(h));
  }
  return t;
}

}  // namespace vitrt
