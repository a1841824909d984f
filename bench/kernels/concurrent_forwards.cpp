// Experiment (docs/performance.md, session 40): what would two half-size forwards cost if they ran at the
// same time? At batch 1 most of a forward's time is each kernel's own latency (0.33 of vit_base's 0.37
// ms does not grow with the batch), so one idea is to cut the image's tokens in two halves and run them as
// two chains of kernels on two streams, joined only where attention needs every key. This tool measures
// the ceiling of that idea without building it: two sessions of a smaller resolution (about half the
// tokens), each on its own stream, each running its forwards back to back while the other does the same,
// against one session alone. The real split would do more than this (its attention reads all the keys,
// and the halves wait for each other once per block), so a pair that is no faster than the target closes
// the idea.
//
//   concurrent_forwards MODEL BATCH SIZE[,SIZE...] [iters 400] [rounds 2] [solo|shared]
//
// Per image size and round: A alone, then A and B at once (two threads, each Session::benchmark on its
// own stream, started together), then B alone. Times are CUDA-event spans of each forward on its own
// stream (medians), and the pair's wall time per forward from the common start to the later finish.
// Sessions are bf16 and tune the shapes their cache lacks (VITRT_TUNE_CACHE or the default cache).
// `solo` makes session A only and times it alone (is a second live session itself a cost?); `shared` makes
// both on one stream of this program's (SessionOptions::cuda_stream) and times each alone.
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vitrt/vitrt.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int> parse_sizes(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (end == item.c_str() || *end != '\0' || v < 16 || v > 4096)
      throw vitrt::Error("concurrent_forwards: image sizes are integers from 16 to 4096, not '" + item + "'");
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) throw vitrt::Error("concurrent_forwards: no image size given");
  return out;
}

int parse_count(const char* s, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 1 || v > 100000)
    throw vitrt::Error(std::string("concurrent_forwards: ") + what +
                       " must be an integer from 1 to 100000, not '" + s + "'");
  return static_cast<int>(v);
}

int run(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(
        stderr,
        "usage: concurrent_forwards MODEL BATCH SIZE[,SIZE...] [iters 400] [rounds 2] [solo|shared]\n");
    return 2;
  }
  const std::string arch = argv[1];
  const int batch = parse_count(argv[2], "BATCH");
  const std::vector<int> sizes = parse_sizes(argv[3]);
  const int iters = argc > 4 ? parse_count(argv[4], "iters") : 400;
  const int rounds = argc > 5 ? parse_count(argv[5], "rounds") : 2;
  const int warmup = 30;
  const std::string mode = argc > 6 ? argv[6] : "pair";
  const bool solo = mode == "solo", shared = mode == "shared";
  if (!solo && !shared && mode != "pair")
    throw vitrt::Error("concurrent_forwards: the 6th argument is 'solo', 'shared' or absent, not '" + mode +
                       "'");
  cudaStream_t one = nullptr;
  if (shared && cudaStreamCreateWithFlags(&one, cudaStreamNonBlocking) != cudaSuccess)
    throw vitrt::Error("concurrent_forwards: cudaStreamCreateWithFlags failed");

  const auto model = vitrt::Model::synthetic(arch);
  std::printf("%s, batch %d, bf16, %d forwards per measurement, %d warm-up, medians in ms\n", arch.c_str(),
              batch, iters, warmup);
  std::printf("| size | tokens | round | A alone | A with B | B with A | pair wall / forward | B alone |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const int size : sizes) {
    vitrt::SessionOptions opt;
    opt.batch_sizes = {batch};
    opt.img_size = size;
    opt.precision = vitrt::Precision::bf16;
    opt.device = vitrt::Device::parse("cuda");
    opt.tune = true;
    // Two sessions alive at once: the stream pool gives each its own stream, unless `shared`.
    opt.cuda_stream = one;
    vitrt::Session a(model, opt);
    std::unique_ptr<vitrt::Session> b_owner = solo ? nullptr : std::make_unique<vitrt::Session>(model, opt);
    const int grid = size / model->config().patch_size;
    const int tokens = grid * grid + 1;
    std::vector<float> images(static_cast<std::size_t>(batch) * a.input_elements_per_image());
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (float& v : images) v = dist(rng);

    for (int round = 0; round < rounds; ++round) {
      const double a_alone = median(a.benchmark(images.data(), batch, warmup, iters));
      if (solo) {
        std::printf("| %d | %d | %d | %.4f | | | | |\n", size, tokens, round + 1, a_alone);
        std::fflush(stdout);
        continue;
      }
      vitrt::Session& b = *b_owner;
      if (shared) {  // one stream: the two would only take turns
        const double b_alone = median(b.benchmark(images.data(), batch, warmup, iters));
        std::printf("| %d | %d | %d | %.4f | | | | %.4f |\n", size, tokens, round + 1, a_alone, b_alone);
        std::fflush(stdout);
        continue;
      }
      std::vector<double> ta, tb;
      std::barrier start(2);
      std::exception_ptr err_b;
      const auto t0 = std::chrono::steady_clock::now();
      std::chrono::steady_clock::time_point end_b;
      std::thread other([&] {
        try {
          start.arrive_and_wait();
          tb = b.benchmark(images.data(), batch, warmup, iters);
        } catch (...) {
          err_b = std::current_exception();
        }
        end_b = std::chrono::steady_clock::now();
      });
      start.arrive_and_wait();
      ta = a.benchmark(images.data(), batch, warmup, iters);
      const auto end_a = std::chrono::steady_clock::now();
      other.join();
      if (err_b) std::rethrow_exception(err_b);
      const double wall_ms = std::chrono::duration<double, std::milli>(std::max(end_a, end_b) - t0).count();
      const double b_alone = median(b.benchmark(images.data(), batch, warmup, iters));
      std::printf("| %d | %d | %d | %.4f | %.4f | %.4f | %.4f | %.4f |\n", size, tokens, round + 1, a_alone,
                  median(ta), median(tb), wall_ms / (warmup + iters), b_alone);
      std::fflush(stdout);
    }
  }
  if (one) cudaStreamDestroy(one);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concurrent_forwards: %s\n", e.what());
    return 1;
  }
}
