// tune: plan a CUDA session for the given batch sizes with tuning on; every GEMM / attention shape the
// cache lacks for this GPU is timed (cuBLASLt candidates and split-K variants, attention tile
// configurations) and the winners are merged into the cache file that later sessions read.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "options.h"

namespace vitrt::cli {

int cmd_tune(const Options& o) {
  auto model = load_model(o);
  SessionOptions s = session_options(o, o.batches, o.img_size);
  VITRT_CHECK_CLI(s.device.kind == Device::Kind::cuda, "vitrt tune needs a CUDA device (got ", s.device.to_string(), ")");
  s.tune = true;
  const auto t0 = std::chrono::steady_clock::now();
  Session session(model, s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto results = session.tune_results();
  if (o.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : results)
      rows.push_back({{"shape", r.shape}, {"choice", r.choice}, {"default_us", r.default_us}, {"tuned_us", r.tuned_us},
                      {"candidates", r.candidates}, {"from_cache", r.from_cache}});
    std::cout << nlohmann::json{{"model", model->config().name}, {"device", session.device_name()},
                                {"precision", to_string(session.precision())}, {"cache", session.tune_cache_path()},
                                {"seconds", seconds}, {"shapes", rows}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("| shape | candidates | heuristic us | tuned us | gain | choice |\n|---|---:|---:|---:|---:|---|\n");
  double before = 0, after = 0;
  for (const auto& r : results) {
    std::printf("| %s | %d | %.1f | %.1f | %.2fx | %s |\n", r.shape.c_str(), r.candidates, r.default_us, r.tuned_us,
                r.tuned_us > 0 ? r.default_us / r.tuned_us : 0.0, r.choice.c_str());
    before += r.default_us;
    after += r.tuned_us;
  }
  std::printf("\n%zu shapes (%s, %s) in %.1f s; sum of one call per shape %.1f us -> %.1f us; cache %s\n",
              results.size(), session.device_name().c_str(), to_string(session.precision()), seconds, before, after,
              session.tune_cache_path().c_str());
  return 0;
}

}  // namespace vitrt::cli
