// run: float32 NCHW .npy in, logits / features .npy out.
#include <algorithm>

#include "io/npy.h"
#include "options.h"

namespace vitrt::cli {

int cmd_run(const Options& o) {
  auto model = load_model(o);
  const auto& cfg = model->config();
  const HostTensor x = read_npy(o.input);
  VITRT_CHECK_CLI(x.shape.size() == 4 && x.shape[1] == cfg.in_chans && x.shape[2] == x.shape[3] && x.shape[0] > 0,
                  o.input, ": expected float32 [batch, ", cfg.in_chans, ", S, S], found ", shape_str(x.shape));
  const int n = static_cast<int>(x.shape[0]);
  const int size = static_cast<int>(x.shape[2]);
  const int chunk = std::min(n, o.max_batch);
  Session session(model, session_options(o, chunk_batches(n, chunk), size));
  const auto per_in = static_cast<size_t>(session.input_elements_per_image());
  const auto per_out = static_cast<size_t>(session.output_elements_per_image());
  std::vector<float> y(per_out * static_cast<size_t>(n));
  for (int start = 0; start < n; start += chunk) {
    const int b = std::min(chunk, n - start);
    session.run(x.data.data() + static_cast<size_t>(start) * per_in, b, y.data() + static_cast<size_t>(start) * per_out);
  }
  Shape shape = {n, cfg.output_dim()};
  if (cfg.global_pool == Pooling::none) shape = {n, static_cast<std::int64_t>(per_out) / cfg.output_dim(), cfg.output_dim()};
  write_npy(o.output, shape, y.data());
  return 0;
}

}  // namespace vitrt::cli
