// vitrt command-line tool. Usage errors exit 2, runtime errors exit 1 with a one-line message.
#include <iostream>

#include "options.h"

int main(int argc, char** argv) {
  using namespace vitrt::cli;
  CLI::App app{"vitrt: Vision Transformer inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(vitrt::version()) + " (" + vitrt::git_commit() + ")");
  Options o;

  auto* classify = app.add_subcommand("classify", "Top-k labels for images");
  add_options(*classify, o, {Opt::model, Opt::weights, Opt::top_k, Opt::json, Opt::precision, Opt::device,
                             Opt::threads, Opt::max_batch, Opt::no_graphs, Opt::tune_cache, Opt::residual_16bit, Opt::images});
  auto* run = app.add_subcommand("run", "Raw tensors in and out (.npy), for verification");
  add_options(*run, o, {Opt::model, Opt::weights, Opt::input, Opt::output_npy, Opt::precision, Opt::device,
                        Opt::threads, Opt::max_batch, Opt::no_graphs, Opt::tune_cache, Opt::residual_16bit});
  run->get_option("--input")->required();
  auto* pre = app.add_subcommand("preprocess", "Write the normalized batch the model would see");
  add_options(*pre, o, {Opt::model, Opt::weights, Opt::output_npy, Opt::images});
  auto* bench = app.add_subcommand("bench", "Latency and throughput per batch size");
  add_options(*bench, o, {Opt::model, Opt::weights, Opt::batches, Opt::precision, Opt::device, Opt::threads,
                          Opt::iters, Opt::warmup, Opt::json, Opt::img_size, Opt::input, Opt::samples, Opt::no_graphs,
                          Opt::tune_cache, Opt::residual_16bit});
  auto* tune = app.add_subcommand("tune", "CUDA: time GEMM algorithms and attention variants per shape, cache the best");
  add_options(*tune, o, {Opt::model, Opt::weights, Opt::batches, Opt::precision, Opt::device, Opt::img_size,
                         Opt::tune_cache, Opt::residual_16bit, Opt::json});
  tune->get_option("--batch")->default_str("1,2,4,8,16,32,64,128,256");
  auto* info = app.add_subcommand("info", "Architecture, parameters, GFLOPs, preprocessing");
  info->add_option("target", o.target, "Built-in name or checkpoint file");
  info->add_flag("--list", o.list, "List the built-in architectures");
  add_options(*info, o, {Opt::json});

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "vitrt: usage error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    if (classify->parsed()) return cmd_classify(o);
    if (run->parsed()) return cmd_run(o);
    if (pre->parsed()) return cmd_preprocess(o);
    if (bench->parsed()) return cmd_bench(o);
    if (info->parsed()) return cmd_info(o);
    if (tune->parsed()) {
      if (tune->get_option("--batch")->count() == 0) o.batches = {1, 2, 4, 8, 16, 32, 64, 128, 256};
      return cmd_tune(o);
    }
  } catch (const CLI::ValidationError& e) {
    std::cerr << "vitrt: usage error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "vitrt: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "vitrt: error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
