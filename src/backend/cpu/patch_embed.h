// Patch embedding helpers around the GEMM: unfolding images into patch rows, and assembling the
// token sequence (prefix tokens + patches + position embedding).
#pragma once

#include "backend/backend.h"

namespace vitrt::cpu {
void patchify(const PatchifyArgs& a);
void tokens(const TokensArgs& a);
}  // namespace vitrt::cpu
