// bench: median latency and throughput per batch size, with provenance (device, commit, precision).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "options.h"

namespace vitrt::cli {
namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int cmd_bench(const Options& o) {
  auto model = load_model(o);
  std::vector<int> batches = o.batches;
  std::sort(batches.begin(), batches.end());
  nlohmann::json rows = nlohmann::json::array();
  std::string device;
  std::string precision;
  HostTensor given;
  if (!o.input.empty()) given = read_npy(o.input);
  for (int b : batches) {
    Session session(model, session_options(o, {b}, o.img_size));
    device = session.device_name();
    precision = to_string(session.precision());
    std::vector<float> x(static_cast<size_t>(session.input_elements_per_image()) * b);
    if (!o.input.empty()) {
      VITRT_CHECK_CLI(given.shape.size() == 4 && given.shape[0] >= b &&
                          given.shape[1] * given.shape[2] * given.shape[3] == session.input_elements_per_image(),
                      o.input, ": expected at least ", b, " images of ", session.input_elements_per_image(),
                      " values, found ", shape_str(given.shape));
      std::copy(given.data.begin(), given.data.begin() + static_cast<std::ptrdiff_t>(x.size()), x.begin());
    } else {
      std::mt19937 rng(1234);
      std::normal_distribution<float> nd(0.f, 1.f);
      for (auto& v : x) v = nd(rng);
    }
    // The forward alone, input already on the device (CUDA: event timing per run).
    const std::vector<double> ms = session.benchmark(x.data(), b, o.warmup, o.iters);
    const double med = percentile(ms, 0.5);
    rows.push_back({{"batch", b},
                    {"latency_ms_median", med},
                    {"latency_ms_min", percentile(ms, 0.0)},
                    {"latency_ms_p90", percentile(ms, 0.9)},
                    {"img_per_s", b * 1000.0 / med},
                    {"tflops", model->flops_per_image(session.img_size()) * b / (med * 1e-3) / 1e12},
                    {"arena_mib", static_cast<double>(session.arena_bytes()) / (1 << 20)},
                    {"device_mib", static_cast<double>(session.device_bytes()) / (1 << 20)},
                    {"peak_rss_mib", peak_rss_mib()}});
    if (o.samples) rows.back()["samples_ms"] = ms;
  }
  const std::string name = model->config().name + (model->is_synthetic() ? " (synthetic weights)" : "");
  if (o.json) {
    nlohmann::json j = {{"model", name}, {"device", device}, {"precision", precision}, {"commit", git_commit()},
                        {"iters", o.iters}, {"rows", rows}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model %s | device %s | precision %s | commit %s | %d iters, median\n\n", name.c_str(), device.c_str(),
              precision.c_str(), git_commit(), o.iters);
  std::printf("| batch | latency ms (median) | min | p90 | img/s | TFLOP/s | arena MiB | device MiB | peak RSS MiB |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    std::printf("| %d | %.3f | %.3f | %.3f | %.1f | %.3f | %.0f | %.0f | %.0f |\n", r["batch"].get<int>(),
                r["latency_ms_median"].get<double>(), r["latency_ms_min"].get<double>(),
                r["latency_ms_p90"].get<double>(), r["img_per_s"].get<double>(), r["tflops"].get<double>(),
                r["arena_mib"].get<double>(), r["device_mib"].get<double>(), r["peak_rss_mib"].get<double>());
  }
  return 0;
}

}  // namespace vitrt::cli
