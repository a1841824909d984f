// Token pooling (mean over a range of tokens; a range of one picks a token) and head averaging.
#pragma once

#include "backend/backend.h"

#include <cstdint>

namespace vitrt::cpu {
void mean_tokens(const void* x, DT x_dt, int batch, int tokens, int dim, int first, int count, float* dst);
void average(const float* a, const float* b, std::int64_t n, float* dst);
}  // namespace vitrt::cpu
