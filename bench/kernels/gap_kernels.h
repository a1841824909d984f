// Helper kernels for small_gemm_trace's launch-gap experiment (measurement only).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace vitrt::bench {

// One block that asks for `smem_bytes` of dynamic shared memory and writes %globaltimer into end_ns[0]
// just before it ends.
void launch_primer(unsigned long long* end_ns, int smem_bytes, cudaStream_t s);

// `blocks` empty blocks of 128 threads with `smem_bytes` of dynamic shared memory; the earliest block
// entry (%globaltimer) is atomicMin-ed into first_ns[0] (set it to ~0 first).
void launch_probe(unsigned long long* first_ns, int blocks, int smem_bytes, cudaStream_t s);

// Evicts L2 by reading `bytes` (zeros) instead of writing them, so no dirty lines are left to drain.
void launch_read_flush(const void* buffer, std::size_t bytes, unsigned* sink, int sms, cudaStream_t s);

}  // namespace vitrt::bench
