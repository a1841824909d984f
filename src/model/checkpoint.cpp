#include "model/checkpoint.h"

#include <filesystem>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/mapped_file.h"
#include "io/tensor_file.h"

namespace vitrt {
namespace {

using Json = nlohmann::json;
using TensorMap = std::map<std::string, HostTensor>;

HostTensor to_f32(const RawTensor& r) {
  HostTensor t;
  t.shape = r.shape;
  t.data.resize(static_cast<size_t>(r.numel()));
  convert_to_f32(r.dtype, r.data.data(), r.numel(), t.data.data());
  return t;
}

// out[j][i] = in[i][j] for an [rows, cols] matrix.
HostTensor transpose2d(const HostTensor& in, std::int64_t rows, std::int64_t cols) {
  HostTensor t;
  t.shape = {cols, rows};
  t.data.resize(in.data.size());
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) t.data[static_cast<size_t>(j * rows + i)] = in.data[static_cast<size_t>(i * cols + j)];
  return t;
}

void put(TensorMap& m, const std::string& name, HostTensor t, const std::string& file) {
  VITRT_CHECK(m.emplace(name, std::move(t)).second, file, ": two tensors map to '", name, "'");
}

std::optional<Json> read_json_beside(const std::string& path, const char* name) {
  const auto p = std::filesystem::path(path).parent_path() / name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) return std::nullopt;
  try {
    return Json::parse(read_text_file(p.string()));
  } catch (const Json::exception& e) {
    VITRT_FAIL(p.string(), ": not valid JSON (", e.what(), ")");
  }
}

template <typename T>
T get_or(const Json& j, const char* key, T fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const Json::exception&) {
    VITRT_FAIL(file, ": field '", key, "' has the wrong type (", j[key].dump(), ")");
  }
}

Interpolation parse_interpolation(const std::string& s, const std::string& file) {
  if (s == "bicubic") return Interpolation::bicubic;
  if (s == "bilinear") return Interpolation::bilinear;
  VITRT_FAIL(file, ": interpolation '", s, "' is not supported; expected bicubic or bilinear");
}

Activation parse_activation(const std::string& s, const std::string& file) {
  if (s == "gelu" || s == "gelu_erf") return Activation::gelu_erf;
  if (s == "quick_gelu" || s == "quickgelu") return Activation::quick_gelu;
  VITRT_FAIL(file, ": activation '", s, "' is not supported; expected gelu (erf) or quick_gelu");
}

Pooling parse_pool(const std::string& s, const std::string& file) {
  if (s == "token") return Pooling::token;
  if (s == "avg") return Pooling::avg;
  if (s.empty() || s == "none") return Pooling::none;
  VITRT_FAIL(file, ": global_pool '", s, "' is not supported; expected token, avg or none");
}

// timm pretrained_cfg fields: input_size [3, H, W], interpolation, crop_pct, mean, std.
void apply_pretrained_cfg(const Json& p, PreprocessConfig& pre, const std::string& file) {
  if (p.contains("input_size")) {
    auto s = p["input_size"];
    VITRT_CHECK(s.is_array() && s.size() == 3 && s[1] == s[2], file, ": pretrained_cfg.input_size must be [C, S, S]");
    pre.input_size = s[2].get<int>();
  }
  if (p.contains("interpolation")) pre.interpolation = parse_interpolation(p["interpolation"].get<std::string>(), file);
  pre.crop_pct = get_or(p, "crop_pct", pre.crop_pct, file);
  pre.mean = get_or(p, "mean", pre.mean, file);
  pre.std = get_or(p, "std", pre.std, file);
}

// A timm-style config.json: {"architecture": NAME, "model_args": {...}, "pretrained_cfg": {...},
// "label_names": [...]}; vitrt's golden fixtures use the same form.
ViTConfig timm_config(const Json& j, const std::string& file, std::vector<std::string>& labels) {
  ViTConfig c;
  const auto arch = get_or<std::string>(j, "architecture", "", file);
  if (const auto* b = find_builtin(arch)) c = *b;
  else c.name = arch.empty() ? file : arch;
  c.preprocess.mean = {0.5f, 0.5f, 0.5f};
  c.preprocess.std = {0.5f, 0.5f, 0.5f};
  if (const auto* b = find_builtin(arch)) c.preprocess = b->preprocess;
  if (j.contains("model_args")) {
    const auto& a = j["model_args"];
    c.img_size = get_or(a, "img_size", c.img_size, file);
    c.patch_size = get_or(a, "patch_size", c.patch_size, file);
    c.in_chans = get_or(a, "in_chans", c.in_chans, file);
    c.embed_dim = get_or(a, "embed_dim", c.embed_dim, file);
    c.depth = get_or(a, "depth", c.depth, file);
    c.num_heads = get_or(a, "num_heads", c.num_heads, file);
    if (a.contains("mlp_ratio")) c.mlp_dim = static_cast<int>(c.embed_dim * a["mlp_ratio"].get<double>());
    else if (a.contains("embed_dim")) c.mlp_dim = 4 * c.embed_dim;
    c.qkv_bias = get_or(a, "qkv_bias", c.qkv_bias, file);
    c.class_token = get_or(a, "class_token", c.class_token, file);
    c.reg_tokens = get_or(a, "reg_tokens", c.reg_tokens, file);
    c.no_embed_class = get_or(a, "no_embed_class", c.no_embed_class, file);
    c.pre_norm = get_or(a, "pre_norm", c.pre_norm, file);
    if (a.contains("global_pool")) c.global_pool = parse_pool(a["global_pool"].get<std::string>(), file);
    if (a.contains("act_layer")) c.act = parse_activation(a["act_layer"].get<std::string>(), file);
    c.ln_eps = get_or(a, "norm_eps", c.ln_eps, file);
  }
  c.preprocess.input_size = c.img_size;
  if (j.contains("pretrained_cfg")) apply_pretrained_cfg(j["pretrained_cfg"], c.preprocess, file);
  labels = get_or(j, "label_names", labels, file);
  return c;
}

// Hugging Face ViTConfig / DeiTConfig fields.
ViTConfig hf_config(const Json& j, const std::string& file, std::vector<std::string>& labels) {
  ViTConfig c;
  c.name = "hf:" + get_or<std::string>(j, "model_type", "vit", file);
  c.embed_dim = get_or(j, "hidden_size", 768, file);
  c.depth = get_or(j, "num_hidden_layers", 12, file);
  c.num_heads = get_or(j, "num_attention_heads", 12, file);
  c.mlp_dim = get_or(j, "intermediate_size", 3072, file);
  c.act = parse_activation(get_or<std::string>(j, "hidden_act", "gelu", file), file);
  c.ln_eps = get_or(j, "layer_norm_eps", 1e-12f, file);
  c.img_size = get_or(j, "image_size", 224, file);
  c.patch_size = get_or(j, "patch_size", 16, file);
  c.in_chans = get_or(j, "num_channels", 3, file);
  c.qkv_bias = get_or(j, "qkv_bias", true, file);
  // ViTImageProcessor defaults: squash-resize to 224 (bilinear), mean/std 0.5.
  c.preprocess.input_size = c.img_size;
  c.preprocess.squash = true;
  c.preprocess.crop_pct = 1.0;
  c.preprocess.interpolation = Interpolation::bilinear;
  c.preprocess.mean = {0.5f, 0.5f, 0.5f};
  c.preprocess.std = {0.5f, 0.5f, 0.5f};
  if (j.contains("id2label") && j["id2label"].is_object()) {
    const auto& m = j["id2label"];
    labels.assign(m.size(), "");
    for (auto& [k, v] : m.items()) {
      size_t idx = 0;
      try {
        idx = std::stoul(k);
      } catch (const std::exception&) {
        VITRT_FAIL(file, ": id2label key '", k, "' is not an index");
      }
      VITRT_CHECK(idx < labels.size() && v.is_string(), file, ": id2label entry '", k, "' is out of range");
      labels[idx] = v.get<std::string>();
    }
  }
  return c;
}

// HF preprocessor_config.json: image_mean, image_std, resample (2 bilinear, 3 bicubic), size, crop_size.
void apply_hf_preprocessor(const Json& j, PreprocessConfig& pre, const std::string& file) {
  pre.mean = get_or(j, "image_mean", pre.mean, file);
  pre.std = get_or(j, "image_std", pre.std, file);
  const int resample = get_or(j, "resample", 2, file);
  VITRT_CHECK(resample == 2 || resample == 3, file, ": resample ", resample,
              " is not supported; expected 2 (bilinear) or 3 (bicubic)");
  pre.interpolation = resample == 3 ? Interpolation::bicubic : Interpolation::bilinear;
  int resize = pre.input_size;
  if (j.contains("size")) {
    const auto& s = j["size"];
    if (s.is_number_integer()) resize = s.get<int>();
    else if (s.contains("shortest_edge")) {
      resize = s["shortest_edge"].get<int>();
      pre.squash = false;
    } else {
      VITRT_CHECK(s.value("height", 0) == s.value("width", 0), file, ": non-square resize is not supported");
      resize = s.value("height", pre.input_size);
    }
  }
  int crop = resize;
  if (get_or(j, "do_center_crop", false, file) && j.contains("crop_size")) {
    const auto& s = j["crop_size"];
    crop = s.is_number_integer() ? s.get<int>() : s.value("height", resize);
  }
  pre.input_size = crop;
  pre.crop_pct = static_cast<double>(crop) / resize;
}

TensorMap map_timm(const TensorFile& f) {
  TensorMap m;
  for (const auto& t : f.tensors) put(m, t.name, to_f32(t), f.path);
  return m;
}

TensorMap map_hf(const TensorFile& f) {
  TensorMap m;
  std::map<std::string, HostTensor> qkv_parts;
  static const std::regex layer(R"((?:vit\.|deit\.)?encoder\.layer\.(\d+)\.(.+))");
  static const std::vector<std::pair<std::string, std::string>> block_names = {
      {"layernorm_before", "norm1"},        {"layernorm_after", "norm2"},   {"attention.output.dense", "attn.proj"},
      {"intermediate.dense", "mlp.fc1"},    {"output.dense", "mlp.fc2"},
  };
  static const std::vector<std::pair<std::string, std::string>> top_names = {
      {"embeddings.cls_token", "cls_token"},
      {"embeddings.distillation_token", "dist_token"},
      {"embeddings.position_embeddings", "pos_embed"},
      {"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"},
      {"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"},
      {"layernorm.weight", "norm.weight"},
      {"layernorm.bias", "norm.bias"},
      {"classifier.weight", "head.weight"},
      {"classifier.bias", "head.bias"},
      {"cls_classifier.weight", "head.weight"},
      {"cls_classifier.bias", "head.bias"},
      {"distillation_classifier.weight", "head_dist.weight"},
      {"distillation_classifier.bias", "head_dist.bias"},
  };
  for (const auto& t : f.tensors) {
    std::string name = t.name;
    for (const char* prefix : {"vit.", "deit."})
      if (name.starts_with(prefix)) name = name.substr(std::string(prefix).size());
    if (name.starts_with("pooler.") || name == "embeddings.mask_token") continue;  // unused for inference
    std::smatch sm;
    if (std::regex_match(name, sm, layer)) {
      const std::string i = sm[1], rest = sm[2];
      bool done = false;
      for (const char* qkv : {"query", "key", "value"}) {
        const std::string p = std::string("attention.attention.") + qkv + ".";
        if (rest.starts_with(p)) {
          put(qkv_parts, i + "." + qkv + "." + rest.substr(p.size()), to_f32(t), f.path);
          done = true;
        }
      }
      for (const auto& [hf, timm] : block_names) {
        if (!done && rest.starts_with(hf + ".")) {
          put(m, "blocks." + i + "." + timm + rest.substr(hf.size()), to_f32(t), f.path);
          done = true;
        }
      }
      VITRT_CHECK(done, f.path, ": unexpected Hugging Face tensor '", t.name, "'");
      continue;
    }
    bool done = false;
    for (const auto& [hf, timm] : top_names) {
      if (name == hf) {
        put(m, timm, to_f32(t), f.path);
        done = true;
      }
    }
    VITRT_CHECK(done, f.path, ": unexpected Hugging Face tensor '", t.name, "'");
  }
  // Concatenate q, k, v into timm's fused qkv ([3E, E] weight, [3E] bias).
  for (int i = 0;; ++i) {
    const std::string p = std::to_string(i) + ".";
    if (!qkv_parts.count(p + "query.weight")) break;
    for (const char* kind : {"weight", "bias"}) {
      HostTensor cat;
      int found = 0;
      for (const char* part : {"query.", "key.", "value."}) {
        auto it = qkv_parts.find(p + part + kind);
        if (it == qkv_parts.end()) continue;
        ++found;
        const auto& s = it->second;
        VITRT_CHECK(cat.shape.empty() || s.shape == cat.shape || (cat.shape.size() == s.shape.size()), f.path,
                    ": layer ", i, " q/k/v ", kind, " shapes differ");
        if (cat.shape.empty()) cat.shape = s.shape;
        else cat.shape[0] += s.shape[0];
        cat.data.insert(cat.data.end(), s.data.begin(), s.data.end());
        qkv_parts.erase(it);
      }
      if (found == 0) continue;
      VITRT_CHECK(found == 3, f.path, ": layer ", i, " has only ", found, " of query/key/value ", kind);
      put(m, "blocks." + std::to_string(i) + ".attn.qkv." + kind, std::move(cat), f.path);
    }
  }
  VITRT_CHECK(qkv_parts.empty(), f.path, ": stray attention tensor '", qkv_parts.begin()->first, "'");
  return m;
}

TensorMap map_npz(const TensorFile& f) {
  TensorMap m;
  std::map<std::string, const RawTensor*> raw;
  for (const auto& t : f.tensors) raw[t.name] = &t;
  auto take = [&](const std::string& name) -> HostTensor {
    auto it = raw.find(name);
    VITRT_CHECK(it != raw.end(), f.path, ": missing array '", name, "'");
    auto t = to_f32(*it->second);
    raw.erase(it);
    return t;
  };
  auto take_matrix = [&](const std::string& name, int dims) {
    auto t = take(name);
    VITRT_CHECK(static_cast<int>(t.shape.size()) == dims, f.path, ": ", name, ": expected ", dims, " dims, found ",
                shape_str(t.shape));
    return t;
  };
  VITRT_CHECK(!raw.count("pre_logits/kernel"), f.path,
              ": this .npz has a pre_logits layer (an ImageNet-21k pre-training checkpoint); vitrt supports "
              "the fine-tuned checkpoints without it");
  // embedding/kernel is HWIO [p, p, C, E] -> [E, C, p, p].
  auto ek = take_matrix("embedding/kernel", 4);
  const auto P = ek.shape[0], C = ek.shape[2], E = ek.shape[3];
  HostTensor pw{{E, C, P, P}, std::vector<float>(ek.data.size())};
  for (std::int64_t y = 0; y < P; ++y)
    for (std::int64_t x = 0; x < P; ++x)
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t e = 0; e < E; ++e)
          pw.data[static_cast<size_t>(((e * C + c) * P + y) * P + x)] = ek.data[static_cast<size_t>(((y * P + x) * C + c) * E + e)];
  put(m, "patch_embed.proj.weight", std::move(pw), f.path);
  put(m, "patch_embed.proj.bias", take("embedding/bias"), f.path);
  put(m, "cls_token", take("cls"), f.path);
  put(m, "pos_embed", take("Transformer/posembed_input/pos_embedding"), f.path);
  auto norm = [&](const std::string& from, const std::string& to) {
    put(m, to + ".weight", take(from + "/scale"), f.path);
    put(m, to + ".bias", take(from + "/bias"), f.path);
  };
  auto dense = [&](const std::string& from, const std::string& to) {
    auto k = take_matrix(from + "/kernel", 2);
    put(m, to + ".weight", transpose2d(k, k.shape[0], k.shape[1]), f.path);
    put(m, to + ".bias", take(from + "/bias"), f.path);
  };
  norm("Transformer/encoder_norm", "norm");
  if (raw.count("head/kernel")) dense("head", "head");
  for (int i = 0; raw.count("Transformer/encoderblock_" + std::to_string(i) + "/LayerNorm_0/scale"); ++i) {
    const std::string s = "Transformer/encoderblock_" + std::to_string(i) + "/";
    const std::string d = "blocks." + std::to_string(i) + ".";
    norm(s + "LayerNorm_0", d + "norm1");
    norm(s + "LayerNorm_2", d + "norm2");
    const std::string mlp = raw.count(s + "MlpBlock_3/Dense_0/kernel") ? s + "MlpBlock_3/" : s + "MlpBlock_0/";
    dense(mlp + "Dense_0", d + "mlp.fc1");
    dense(mlp + "Dense_1", d + "mlp.fc2");
    // query/key/value kernels are [E, H, D] (in, heads, head_dim); out/kernel is [H, D, E].
    const std::string a = s + "MultiHeadDotProductAttention_1/";
    HostTensor qkv_w{{3 * E, E}, {}}, qkv_b{{3 * E}, {}};
    for (const char* part : {"query", "key", "value"}) {
      auto k = take_matrix(a + part + "/kernel", 3);
      VITRT_CHECK(k.shape[0] == E && k.shape[1] * k.shape[2] == E, f.path, ": ", a, part, "/kernel: expected [", E,
                  ", heads, head_dim], found ", shape_str(k.shape));
      auto t = transpose2d(k, E, E);
      qkv_w.data.insert(qkv_w.data.end(), t.data.begin(), t.data.end());
      auto b = take(a + part + "/bias");
      qkv_b.data.insert(qkv_b.data.end(), b.data.begin(), b.data.end());
    }
    VITRT_CHECK(qkv_b.data.size() == static_cast<size_t>(3 * E), f.path, ": ", a, " biases: expected ", E, " each");
    put(m, d + "attn.qkv.weight", std::move(qkv_w), f.path);
    put(m, d + "attn.qkv.bias", std::move(qkv_b), f.path);
    auto o = take_matrix(a + "out/kernel", 3);
    VITRT_CHECK(o.shape[2] == E && o.shape[0] * o.shape[1] == E, f.path, ": ", a, "out/kernel: expected [heads, head_dim, ",
                E, "], found ", shape_str(o.shape));
    put(m, d + "attn.proj.weight", transpose2d(o, E, E), f.path);
    put(m, d + "attn.proj.bias", take(a + "out/bias"), f.path);
  }
  VITRT_CHECK(raw.empty(), f.path, ": unexpected array '", raw.begin()->first, "' in the .npz");
  return m;
}

// Marks the dimensions a default config only guessed as unknown, so the weights decide them.
ViTConfig with_unknown_dims(ViTConfig c) {
  c.embed_dim = c.depth = c.mlp_dim = c.patch_size = 0;
  return c;
}

int npz_heads(const TensorFile& f) {
  const auto* q = f.find("Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel");
  return q && q->shape.size() == 3 ? static_cast<int>(q->shape[1]) : 0;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path) {
  TensorFile file = open_tensor_file(path);
  Checkpoint ck;
  auto config_json = read_json_beside(path, "config.json");
  const std::string config_path = (std::filesystem::path(path).parent_path() / "config.json").string();
  if (file.format == "npz") {
    ck.format = "npz";
    ck.tensors = map_npz(file);
    ViTConfig c;
    c.name = "npz";
    c.num_heads = npz_heads(file);
    c.preprocess.mean = {0.5f, 0.5f, 0.5f};
    c.preprocess.std = {0.5f, 0.5f, 0.5f};
    ck.config = with_unknown_dims(c);
    if (config_json) ck.config = timm_config(*config_json, config_path, ck.labels);
    return ck;
  }
  bool hf = false;
  for (const auto& t : file.tensors) hf = hf || t.name.find("embeddings.patch_embeddings") != std::string::npos;
  if (hf) {
    ck.format = "hf";
    ck.tensors = map_hf(file);
    if (config_json) ck.config = hf_config(*config_json, config_path, ck.labels);
    else ck.notices.push_back(path + ": no config.json beside this Hugging Face checkpoint; assuming ViT defaults "
                              "(heads from width, LayerNorm eps 1e-12)");
    if (!ck.config) {
      ViTConfig c = with_unknown_dims(hf_config(Json::object(), path, ck.labels));
      c.num_heads = 0;
      ck.config = c;
    }
    if (auto pre = read_json_beside(path, "preprocessor_config.json"))
      apply_hf_preprocessor(*pre, ck.config->preprocess,
                            (std::filesystem::path(path).parent_path() / "preprocessor_config.json").string());
    return ck;
  }
  ck.format = "timm";
  ck.tensors = map_timm(file);
  if (config_json) ck.config = timm_config(*config_json, config_path, ck.labels);
  return ck;
}

}  // namespace vitrt
