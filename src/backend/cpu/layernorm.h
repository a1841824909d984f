// LayerNorm over rows with fp32 statistics (two passes over the row).
#pragma once

#include "backend/backend.h"

namespace vitrt::cpu {
void layernorm(const LayerNormArgs& a);
}  // namespace vitrt::cpu
