// Built-in configurations against what timm 1.0.29 itself reports for each name
// (tests/golden/timm_builtin_cfgs.json, written by tools/make_golden.py --cfgs).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/env.h"
#include "test_util.h"
#include "vitrt/vitrt.h"

namespace vitrt {
namespace {

// The VITRT_* knobs' parsing (core/env.h): integers in a range, comma lists.
TEST(Env, IntegerAndCommaItems) {
  const char* name = "VITRT_TEST_ENV_INTEGER";
  unsetenv(name);
  EXPECT_EQ(env_integer(name, 0, 10, "a count"), std::nullopt);
  setenv(name, "", 1);
  EXPECT_EQ(env_integer(name, 0, 10, "a count"), std::nullopt);
  setenv(name, "7", 1);
  EXPECT_EQ(env_integer(name, 0, 10, "a count"), 7);
  for (const char* bad : {"12x", "x", "11", "-1"}) {
    setenv(name, bad, 1);
    try {
      env_integer(name, 0, 10, "a count");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(name) + " must be a count, not '" + bad + "'"),
                std::string::npos)
          << e.what();
    }
  }
  unsetenv(name);
  using Items = std::vector<std::string_view>;
  EXPECT_EQ(comma_items(""), Items{});
  EXPECT_EQ(comma_items("norm"), Items{"norm"});
  EXPECT_EQ(comma_items("a,,b"), (Items{"a", "", "b"}));
  EXPECT_EQ(comma_items("768x768,"), Items{"768x768"});
}

TEST(BuiltinConfigs, MatchTimm) {
  const auto j = nlohmann::json::parse(std::ifstream(test::golden_dir() + "/timm_builtin_cfgs.json"));
  int checked = 0;
  for (const auto& name : builtin_names()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(j.contains(name)) << "no timm reference for " << name;
    const auto& t = j[name];
    const ViTConfig& c = *find_builtin(name);
    EXPECT_EQ(c.embed_dim, t["embed_dim"].get<int>());
    EXPECT_EQ(c.depth, t["depth"].get<int>());
    EXPECT_EQ(c.num_heads, t["heads"].get<int>());
    EXPECT_EQ(c.mlp_dim, t["mlp"].get<int>());
    EXPECT_EQ(c.num_classes, t["model_num_classes"].get<int>());
    EXPECT_FLOAT_EQ(c.ln_eps, t["eps"].get<float>());
    EXPECT_EQ(to_string(c.global_pool), t["global_pool"].get<std::string>());
    EXPECT_EQ(c.preprocess.input_size, t["input_size"][1].get<int>());
    EXPECT_EQ(to_string(c.preprocess.interpolation), t["interpolation"].get<std::string>());
    EXPECT_DOUBLE_EQ(c.preprocess.crop_pct, t["crop_pct"].get<double>());
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(c.preprocess.mean[i], t["mean"][i].get<double>(), 1e-6);
      EXPECT_NEAR(c.preprocess.std[i], t["std"][i].get<double>(), 1e-6);
    }
    EXPECT_EQ(Model::synthetic(c)->num_params(), t["params"].get<std::int64_t>());
    ++checked;
  }
  EXPECT_EQ(checked, 18);
}

TEST(BuiltinConfigs, RequiredNamesPresent) {
  for (const char* n : {"vit_tiny_patch16_224", "vit_small_patch16_384", "vit_base_patch16_224", "vit_large_patch16_384",
                        "vit_base_patch32_224", "vit_base_patch32_384", "vit_large_patch32_384", "vit_huge_patch14_224",
                        "deit_tiny_patch16_224", "deit_base_distilled_patch16_224"})
    EXPECT_NE(find_builtin(n), nullptr) << n;
  EXPECT_EQ(find_builtin("vit_gigantic_patch1_1"), nullptr);
}

TEST(Config, ValidateNamesTheProblem) {
  ViTConfig c = *find_builtin("vit_base_patch16_224");
  c.num_heads = 7;
  try {
    c.validate();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("embed_dim 768 is not divisible by num_heads 7"), std::string::npos) << e.what();
  }
}

TEST(Config, FlopsOfVitBase) {
  // 35.1 GFLOP per image for vit_base_patch16_224 (GEMMs + attention), as anchors-h200.md counts.
  EXPECT_NEAR(Model::synthetic("vit_tiny_patch16_224")->flops_per_image() / 1e9, 2.51, 0.01);
  const ViTConfig& b = *find_builtin("vit_base_patch16_224");
  auto m = Model::synthetic(b);
  EXPECT_NEAR(m->flops_per_image() / 1e9, 35.1, 0.2);
}

}  // namespace
}  // namespace vitrt
