// Helper kernels, event timing and random device data for the GPU benches (measurement only).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>

#include "backend/backend.h"        // DT
#include "backend/cuda/linear.h"  // GemmContext
#include "backend/cuda/tuning.h"  // L2Flush

namespace vitrt::bench {

// What the GEMM benches set up alike: a stream, a cuBLASLt handle, the tuner's L2 flush buffer (twice the
// L2) and a cuBLASLt workspace. make_lt_rig is false, with a message, if cuBLASLt does not start.
struct LtRig {
  static constexpr std::size_t kWorkspace = 32u << 20;
  cudaStream_t s = nullptr;
  cublasLtHandle_t lt = nullptr;
  cuda::L2Flush flush;
  void* workspace = nullptr;
  // LinearOp's context on this rig: its stream, workspace and flush buffer, no dependent launches.
  cuda::GemmContext context(TuneCache* cache, int sms, int arch) const {
    return {cache, workspace, kWorkspace, s, sms, arch, flush, false};
  }
};
bool make_lt_rig(const cudaDeviceProp& props, LtRig& rig);

// n normal values (mean 0, deviation `scale`, from `seed`) in a new device buffer of `dt` (f32 or bf16).
void* device_random(std::size_t n, DT dt, float scale, unsigned seed);

// Runs work() between two events `warmup` + `rounds` times and returns the median over the last `rounds`
// of the µs between the events, divided by `per` (the launches or kernels work() holds).
double event_median_us(const std::function<void()>& work, cudaStream_t s, int rounds, int warmup, int per);

// One block that asks for `smem_bytes` of dynamic shared memory and writes %globaltimer into end_ns[0]
// just before it ends.
void launch_primer(unsigned long long* end_ns, int smem_bytes, cudaStream_t s);

// `blocks` empty blocks of 128 threads with `smem_bytes` of dynamic shared memory; the earliest block
// entry (%globaltimer) is atomicMin-ed into first_ns[0] (set it to ~0 first).
void launch_probe(unsigned long long* first_ns, int blocks, int smem_bytes, cudaStream_t s);

// Evicts L2 by reading `bytes` (zeros) instead of writing them, so no dirty lines are left to drain.
void launch_read_flush(const void* buffer, std::size_t bytes, unsigned* sink, int sms, cudaStream_t s);

// Per node, median µs of a CUDA graph of `nodes` empty kernels launched one after another (`blocks` blocks
// of 128 threads, `smem_bytes` of dynamic shared memory; with `alternate`, every other one has none):
// pdl 0: plain stream order; 1: programmatic (dependent-launch) edges, each kernel triggering at its
// end; 2: such edges, each kernel triggering at its start.
double graph_floor_us(int nodes, int blocks, int smem_bytes, int pdl, bool alternate, cudaStream_t s);

}  // namespace vitrt::bench
