// Every CLI option is declared once here, with its help text and default, and attached to each
// subcommand that takes it.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "vitrt/vitrt.h"

// Runtime-error check for CLI code: throws vitrt::Error (exit 1) with the joined message.
#define VITRT_CHECK_CLI(cond, ...) \
  do {                             \
    if (!(cond)) throw ::vitrt::Error(::vitrt::cli::join(__VA_ARGS__)); \
  } while (0)

namespace vitrt::cli {

template <typename... Args>
std::string join(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

struct Options {
  std::string model;       // --model NAME
  std::string weights;     // --weights FILE
  std::string precision = "auto";
  std::string device = "auto";
  bool no_graphs = false;
  int threads = 0;
  int top_k = 5;
  bool json = false;
  std::string input, output;
  std::vector<std::string> images;
  std::vector<int> batches = {1, 8, 32};
  int iters = 20;
  int warmup = 3;
  int max_batch = 32;
  int img_size = 0;
  std::string target;  // info NAME|FILE
  bool list = false;
  bool samples = false;
  std::string tune_cache;  // --tune-cache PATH|off
  bool residual_16bit = false;
};

enum class Opt {
  model, weights, precision, device, threads, top_k, json, input, output_npy, images, batches, iters, warmup,
  max_batch, img_size, samples, no_graphs, tune_cache, residual_16bit
};
void add_options(CLI::App& app, Options& o, std::initializer_list<Opt> which);

// --weights (+ optional --model), or --model alone (synthetic weights, with a notice).
std::shared_ptr<const Model> load_model(const Options& o);
SessionOptions session_options(const Options& o, std::vector<int> batches, int img_size);
// Batch sizes to plan for running n images in chunks of `chunk`: the chunk, plus the remainder if any.
std::vector<int> chunk_batches(int n, int chunk);

int cmd_classify(const Options& o);
int cmd_run(const Options& o);
int cmd_preprocess(const Options& o);
int cmd_bench(const Options& o);
int cmd_info(const Options& o);
int cmd_tune(const Options& o);

}  // namespace vitrt::cli
