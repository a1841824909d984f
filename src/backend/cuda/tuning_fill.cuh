// Test data for the session's buffers while tuning (tuning.h): tuning times kernels on those buffers
// before any input exists.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace vitrt::cuda {

// Fills `bytes` at `p` with pseudo-random 16-bit words (seeded; the same seed gives the same bytes)
// that read as finite numbers of ordinary size in every floating type a buffer may hold: +-[1, 2) as
// fp16, +-[2^-7, 2) as bf16 and, two words together, as fp32. Signs and low mantissa bits are random,
// as in real activations. `p` must be 4-byte aligned (cudaMalloc's are). Asynchronous on `s`.
void fill_tuning_data(void* p, std::size_t bytes, std::uint32_t seed, cudaStream_t s);

}  // namespace vitrt::cuda
