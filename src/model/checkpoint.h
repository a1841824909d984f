// Turns a checkpoint file (timm or Hugging Face safetensors, Google .npz) into canonical timm-named
// fp32 tensors plus whatever configuration and labels the file or its neighbours carry.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "vitrt/config.h"

namespace vitrt {

struct Checkpoint {
  std::string format;  // "timm", "hf", "npz"
  std::map<std::string, HostTensor> tensors;
  std::optional<ViTConfig> config;  // from config.json / preprocessor_config.json / the format itself
  std::vector<std::string> labels;
  std::vector<std::string> notices;
};

Checkpoint read_checkpoint(const std::string& path);

}  // namespace vitrt
