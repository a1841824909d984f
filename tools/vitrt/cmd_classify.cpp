// classify and preprocess: images -> the model's eval transform -> top-k labels / a .npy batch.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "options.h"

namespace vitrt::cli {
namespace {

std::vector<float> preprocess_all(const std::vector<std::string>& paths, const PreprocessConfig& pre) {
  const size_t per = 3 * static_cast<size_t>(pre.input_size) * pre.input_size;
  std::vector<float> batch(per * paths.size());
  for (size_t i = 0; i < paths.size(); ++i) preprocess(load_image(paths[i]), pre, batch.data() + i * per);
  return batch;
}

}  // namespace

int cmd_preprocess(const Options& o) {
  auto model = load_model(o);
  const auto& pre = model->config().preprocess;
  VITRT_CHECK_CLI(model->config().in_chans == 3, "the model takes ", model->config().in_chans, " channels, not RGB");
  const auto batch = preprocess_all(o.images, pre);
  write_npy(o.output, {static_cast<std::int64_t>(o.images.size()), 3, pre.input_size, pre.input_size}, batch.data());
  return 0;
}

int cmd_classify(const Options& o) {
  auto model = load_model(o);
  const auto& cfg = model->config();
  if (cfg.num_classes == 0 || cfg.global_pool == Pooling::none)
    throw Error("this model has no pooled classifier head (num_classes " + std::to_string(cfg.num_classes) +
                ", global_pool " + to_string(cfg.global_pool) + "); use `vitrt run` for its features");
  VITRT_CHECK_CLI(cfg.in_chans == 3, "the model takes ", cfg.in_chans, " channels, not RGB");
  const auto& labels = !model->labels().empty() ? model->labels()
                       : cfg.num_classes == 1000 ? imagenet_labels()
                                                 : model->labels();
  const int n = static_cast<int>(o.images.size());
  const int chunk = std::min(n, o.max_batch);
  Session session(model, session_options(o, chunk_batches(n, chunk), cfg.preprocess.input_size));
  const auto C = static_cast<size_t>(cfg.num_classes);
  std::vector<float> logits(C * static_cast<size_t>(n));
  for (int start = 0; start < n; start += chunk) {
    const int b = std::min(chunk, n - start);
    std::vector<std::string> paths(o.images.begin() + start, o.images.begin() + start + b);
    const auto x = preprocess_all(paths, cfg.preprocess);
    session.run(x.data(), b, logits.data() + static_cast<size_t>(start) * C);
  }

  const int k = std::min<int>(o.top_k, cfg.num_classes);
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    const float* l = logits.data() + static_cast<size_t>(i) * C;
    const double mx = *std::max_element(l, l + C);
    double sum = 0;
    for (size_t c = 0; c < C; ++c) sum += std::exp(l[c] - mx);
    std::vector<int> idx(C);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    nlohmann::json top = nlohmann::json::array();
    if (!o.json) std::cout << o.images[static_cast<size_t>(i)] << "\n";
    for (int j = 0; j < k; ++j) {
      const int c = idx[static_cast<size_t>(j)];
      const double p = std::exp(l[c] - mx) / sum;
      const std::string label = static_cast<size_t>(c) < labels.size() ? labels[static_cast<size_t>(c)] : "class_" + std::to_string(c);
      top.push_back({{"index", c}, {"label", label}, {"prob", p}});
      if (!o.json) std::cout << "  " << std::fixed << std::setprecision(4) << p << "  " << std::setw(4) << c << "  " << label << "\n";
    }
    out.push_back({{"image", o.images[static_cast<size_t>(i)]}, {"top", top}});
  }
  if (o.json) std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace vitrt::cli
