// Golden end-to-end tests: tiny models built by real timm / Hugging Face (tools/make_golden.py), in
// every checkpoint format, with their inputs and PyTorch fp32 outputs. fp32 must match to 1e-4 max
// relative error; bf16 to 3e-2 with 100% top-1 agreement.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "test_util.h"
#include "vitrt/vitrt.h"

namespace vitrt {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> fixtures() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(test::golden_dir()))
    if (e.is_directory() && fs::exists(e.path() / "meta.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct GoldenCase {
  std::string fixture;
  Device device;
  Precision precision;
  std::string name() const {
    return fixture + "_" + (device.kind == Device::Kind::cpu ? "cpu" : "cuda") + "_" + to_string(precision);
  }
};

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name(); }

class Golden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(Golden, MatchesPyTorch) {
  const auto& [name, device, precision] = GetParam();
  const bool cuda = device.kind == Device::Kind::cuda;
  if (cuda && !test::have_gpu()) {
    GTEST_SKIP() << "no CUDA GPU on this machine";
  }
  if (!cuda && precision == Precision::bf16 && !test::cpu_supports_bf16()) {
    GTEST_SKIP() << "this CPU has no bf16 support";
  }
  const fs::path dir = fs::path(test::golden_dir()) / name;
  const auto meta = nlohmann::json::parse(std::ifstream(dir / "meta.json"));
  auto model = Model::load((dir / meta["weights"].get<std::string>()).string());
  const HostTensor x = read_npy((dir / "input.npy").string());
  const HostTensor ref = read_npy((dir / "output.npy").string());
  const int batch = static_cast<int>(x.shape[0]);
  SessionOptions opt;
  opt.batch_sizes = {batch};
  opt.img_size = static_cast<int>(x.shape[2]);
  opt.precision = precision;
  opt.device = device;
  Session session(model, opt);
  ASSERT_EQ(static_cast<std::int64_t>(batch) * session.output_elements_per_image(), ref.numel());
  std::vector<float> y(ref.data.size(), std::numeric_limits<float>::quiet_NaN());
  session.run(x.data.data(), batch, y.data());
  if (cuda) {
    // Run again: the second run is captured into a CUDA graph and the third replays it.
    for (int i = 0; i < 2; ++i) session.run(x.data.data(), batch, y.data());
  }
  const double err = test::max_rel_error(y.data(), ref.data.data(), y.size());
  const double tol = precision == Precision::fp32 ? 1e-4 : precision == Precision::tf32 ? 1e-2 : 3e-2;
  EXPECT_LE(err, tol) << name << " " << to_string(precision);
  // Top-1 per output row, for classifier outputs (feature outputs have no top-1; the bound covers them).
  const auto dim = static_cast<size_t>(ref.shape.back());
  const bool logits = model->config().num_classes > 0;
  for (size_t r = 0; logits && r < y.size() / dim; ++r) {
    const auto* a = y.data() + r * dim;
    const auto* b = ref.data.data() + r * dim;
    EXPECT_EQ(std::max_element(a, a + dim) - a, std::max_element(b, b + dim) - b) << name << " row " << r;
  }
  if (meta.contains("labels")) {
    EXPECT_EQ(model->labels(), meta["labels"].get<std::vector<std::string>>());
  }
}

std::vector<GoldenCase> cases() {
  std::vector<GoldenCase> c;
  for (const auto& f : fixtures()) {
    for (auto p : {Precision::fp32, Precision::bf16}) c.push_back({f, Device{}, p});
#ifdef VITRT_HAVE_CUDA
    for (auto p : {Precision::fp32, Precision::tf32, Precision::fp16, Precision::bf16})
      c.push_back({f, Device::parse("cuda"), p});
#endif
  }
  return c;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden, ::testing::ValuesIn(cases()),
                         [](const auto& tp) { return tp.param.name(); });

TEST(GoldenSet, CoversEveryFormatAndOption) {
  const auto f = fixtures();
  auto has = [&](const std::string& n) { return std::find(f.begin(), f.end(), n) != f.end(); };
  for (const char* n : {"timm_token", "timm_avg_fcnorm", "timm_avg_no_fcnorm", "timm_reg_noembed", "timm_clip_prenorm_quickgelu",
                        "timm_layerscale_noqkvbias", "timm_features", "timm_tokens_out", "timm_headdim80", "timm_deit_distilled",
                        "timm_fp16_weights", "timm_bf16_weights", "timm_posembed_resample_48", "timm_posembed_resample_24",
                        "npz_stored", "npz_deflated", "hf_vit_classifier", "hf_vit_model_features"})
    EXPECT_TRUE(has(n)) << "missing golden fixture " << n;
}

}  // namespace
}  // namespace vitrt
