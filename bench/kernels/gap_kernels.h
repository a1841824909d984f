// Helper kernels, event timing and random device data for the GPU benches (measurement only).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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

// The command line and set-up lt_sweep and lt_pdl share: `prog ROWS IN OUT [bias|gelu|residual] [extra]`
// (a residual GEMM writes fp32, the others bf16), the device's properties and an LtRig. Sets
// VITRT_GEMM_WS=0 (cuBLASLt only). False, after a message, on a short command line or if cuBLASLt does not
// start.
struct LtShape {
  std::int64_t rows = 0;
  int in = 0, out = 0;
  std::string epi;
  bool res = false;
  int extra = 0;
  cudaDeviceProp props{};
  int arch = 0, sms = 0;
  DT out_dt = DT::bf16;
  Epilogue act = Epilogue::none;  // gelu: the exact GELU (cuBLASLt's GELU epilogue in 16 bits)
};
bool lt_setup(int argc, char** argv, const char* extra_name, int extra_default, LtShape& shape, LtRig& rig);

// µs per launch of op (as configured now) back to back: 10 launches per event pair, median of 5.
double b2b_us(const cuda::LinearOp& op, const LinearArgs& la, const LtRig& rig);

// Switches op to the cuBLASLt configuration `cfg` (a cache entry's "algo") and runs it once: false where
// cuBLASLt does not accept it for this GEMM or the run fails (the error is cleared).
bool lt_try(cuda::LinearOp& op, const LinearArgs& la, const LtRig& rig, const nlohmann::json& cfg);

// Every cuBLASLt configuration for bf16 x bf16 -> out_t GEMMs with fp32 compute that lt_sweep and lt_pdl
// try: each algorithm id cuBLASLt lists, with each tile it supports (or none), each stage count it lists
// and the automatic one, in five cluster shapes (auto, 1x1, 2x1, 1x2, 4x1); split-K and options off.
// Each as a cache entry's "algo"; `n_ids` gets how many algorithm ids were listed.
std::vector<nlohmann::json> lt_configs(cublasLtHandle_t lt, cudaDataType_t out_t, int& n_ids);

// 16 blocks that let the next kernel launch at once (griddepcontrol.launch_dependents), wait `spin_ns`
// and only then copy bytes1 from src1 to dst1 and bytes2 from src2 to dst2 (bytes multiples of 16): a
// writer late enough that a kernel after it on a programmatic edge reads stale data unless it waits.
void launch_late_copy(void* dst1, const void* src1, std::size_t bytes1, void* dst2, const void* src2,
                      std::size_t bytes2, unsigned spin_ns, cudaStream_t s);

// The kernel a graph's kernel node runs, by name ("" where the driver does not say).
std::string kernel_node_name(cudaGraphNode_t node);

// Turns every edge of `graph` into a programmatic (dependent-launch) edge where both ends are kernel nodes
// and want_to(name of the node it enters) is true. Returns how many edges it changed.
int make_edges_programmatic(cudaGraph_t graph, const std::function<bool(const std::string&)>& want_to);

}  // namespace vitrt::bench
