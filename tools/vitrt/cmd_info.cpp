// info: architecture, parameter count, GFLOPs per image and preprocessing of a name or a file.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "options.h"

namespace vitrt::cli {

int cmd_info(const Options& o) {
  if (o.list) {
    for (const auto& n : builtin_names()) std::cout << n << "\n";
    return 0;
  }
  if (o.target.empty()) throw CLI::ValidationError("target", "give a built-in name or a checkpoint file (or --list)");
  std::shared_ptr<const Model> model;
  if (std::filesystem::exists(o.target)) model = Model::load(o.target);
  else if (find_builtin(o.target)) model = Model::synthetic(o.target);
  else throw Error("'" + o.target + "' is neither a file nor a built-in architecture (see `vitrt info --list`)");
  const auto& c = model->config();
  const auto& p = c.preprocess;
  nlohmann::json j = {
      {"name", c.name},
      {"source", model->source()},
      {"format", model->format()},
      {"img_size", c.img_size},
      {"patch_size", c.patch_size},
      {"in_chans", c.in_chans},
      {"embed_dim", c.embed_dim},
      {"depth", c.depth},
      {"num_heads", c.num_heads},
      {"mlp_dim", c.mlp_dim},
      {"qkv_bias", c.qkv_bias},
      {"class_token", c.class_token},
      {"reg_tokens", c.reg_tokens},
      {"distilled", c.distilled},
      {"no_embed_class", c.no_embed_class},
      {"pre_norm", c.pre_norm},
      {"fc_norm", c.fc_norm},
      {"final_norm", c.final_norm},
      {"layer_scale", c.layer_scale},
      {"global_pool", to_string(c.global_pool)},
      {"act", to_string(c.act)},
      {"ln_eps", c.ln_eps},
      {"num_classes", c.num_classes},
      {"tokens", c.num_tokens()},
      {"params", model->num_params()},
      {"gflops_per_image", model->flops_per_image() / 1e9},
      {"preprocess",
       {{"input_size", p.input_size},
        {"interpolation", to_string(p.interpolation)},
        {"crop_pct", p.crop_pct},
        {"squash", p.squash},
        {"mean", p.mean},
        {"std", p.std}}},
  };
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << c.name << (model->is_synthetic() ? " (built-in)" : " (" + model->format() + ": " + model->source() + ")") << "\n";
  for (auto& [k, v] : j.items()) {
    if (k == "name" || k == "source" || k == "format") continue;
    std::cout << "  " << std::left << std::setw(18) << k << v.dump() << "\n";
  }
  return 0;
}

}  // namespace vitrt::cli
