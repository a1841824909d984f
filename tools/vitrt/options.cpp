#include "options.h"

namespace vitrt::cli {

void add_options(CLI::App& app, Options& o, std::initializer_list<Opt> which) {
  for (Opt opt : which) {
    switch (opt) {
      case Opt::model:
        app.add_option("--model,-m", o.model, "Built-in architecture (timm name); alone: synthetic weights");
        break;
      case Opt::weights:
        app.add_option("--weights,-w", o.weights, "Checkpoint: timm/HF safetensors or Google .npz")->check(CLI::ExistingFile);
        break;
      case Opt::precision:
        app.add_option("--precision,-p", o.precision, "fp32 | tf32 | fp16 | bf16 (auto: bf16 on a GPU, fp32 on the CPU)")
            ->check(CLI::IsMember({"auto", "fp32", "tf32", "fp16", "bf16"}))
            ->capture_default_str();
        break;
      case Opt::device:
        app.add_option("--device,-d", o.device, "cpu | cuda[:N] (auto: cuda when a GPU is present, else cpu)")
            ->capture_default_str();
        break;
      case Opt::threads:
        app.add_option("--threads,-t", o.threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
        break;
      case Opt::top_k:
        app.add_option("--top-k,-k", o.top_k, "Labels to print per image")->check(CLI::Range(1, 1000))->capture_default_str();
        break;
      case Opt::json:
        app.add_flag("--json", o.json, "Machine-readable JSON output");
        break;
      case Opt::input:
        app.add_option("--input,-i", o.input, "float32 NCHW .npy input")->check(CLI::ExistingFile);
        break;
      case Opt::output_npy:
        app.add_option("--output,-o", o.output, "float32 .npy to write")->required();
        break;
      case Opt::images:
        app.add_option("images", o.images, "JPEG or PNG files")->required()->check(CLI::ExistingFile);
        break;
      case Opt::batches:
        app.add_option("--batch,-b", o.batches, "Batch sizes, comma separated")
            ->delimiter(',')
            ->check(CLI::Range(1, 65536))
            ->capture_default_str();
        break;
      case Opt::iters:
        app.add_option("--iters,-n", o.iters, "Timed iterations per batch size")->check(CLI::Range(1, 100000))->capture_default_str();
        break;
      case Opt::warmup:
        app.add_option("--warmup", o.warmup, "Untimed warm-up iterations")->check(CLI::Range(0, 100000))->capture_default_str();
        break;
      case Opt::max_batch:
        app.add_option("--max-batch", o.max_batch, "Largest batch run at once")->check(CLI::Range(1, 4096))->capture_default_str();
        break;
      case Opt::img_size:
        app.add_option("--img-size", o.img_size, "Input resolution (position embeddings resampled); 0 = model's")
            ->check(CLI::NonNegativeNumber);
        break;
      case Opt::residual_16bit:
        app.add_flag("--residual-16bit", o.residual_16bit,
                     "fp16/bf16: residual stream in the 16-bit type as in PyTorch (faster; PyTorch's accuracy) "
                     "instead of fp32");
        break;
      case Opt::no_graphs:
        app.add_flag("--no-graphs", o.no_graphs, "CUDA: launch kernels one by one instead of replaying a CUDA graph");
        break;
      case Opt::tune_cache:
        app.add_option("--tune-cache", o.tune_cache,
                       "CUDA tuning cache (vitrt tune): a path, or off; default $VITRT_TUNE_CACHE, else "
                       "~/.cache/vitrt/tune-cache.json");
        break;
      case Opt::samples:
        app.add_flag("--samples", o.samples, "Include every timed iteration in the JSON output");
        break;
    }
  }
}

std::shared_ptr<const Model> load_model(const Options& o) {
  if (!o.weights.empty()) return Model::load(o.weights, o.model);
  if (o.model.empty()) throw CLI::ValidationError("--model/--weights", "give --weights FILE or --model NAME");
  log_notice("no --weights: " + o.model + " runs on deterministic synthetic weights (for benchmarking only)");
  return Model::synthetic(o.model);
}

SessionOptions session_options(const Options& o, std::vector<int> batches, int img_size) {
  SessionOptions s;
  s.batch_sizes = std::move(batches);
  s.img_size = img_size;
  s.device = o.device == "auto" ? Device::parse(cuda_device_count() > 0 ? "cuda" : "cpu") : Device::parse(o.device);
  s.precision = o.precision != "auto" ? parse_precision(o.precision)
                : s.device.kind == Device::Kind::cuda ? Precision::bf16
                                                      : Precision::fp32;
  s.cuda_graphs = !o.no_graphs;
  s.threads = o.threads;
  s.tune_cache = o.tune_cache;
  s.residual_16bit = o.residual_16bit;
  return s;
}

std::vector<int> chunk_batches(int n, int chunk) {
  std::vector<int> batches = {chunk};
  if (n % chunk) batches.push_back(n % chunk);
  return batches;
}

}  // namespace vitrt::cli
