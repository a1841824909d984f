// Helper kernels for measuring the time between one kernel's end and the next one's first block
// (small_gemm_trace's launch-gap experiment). Measurement only.
#include "gap_kernels.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.cuh"
#include "core/half.h"

namespace vitrt::bench {

namespace {

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// One block; thread 0 writes the time just before the kernel ends. The dynamic shared memory it asks
// for sets the SM's shared-memory configuration.
__global__ void primer_kernel(unsigned long long* end_ns, int smem_words) {
  extern __shared__ unsigned words[];
  if (threadIdx.x < static_cast<unsigned>(smem_words)) words[threadIdx.x] = threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 0) end_ns[0] = global_ns();
}

// Every block: atomicMin of its entry time into first_ns[0]. The same dynamic shared memory as the
// kernel it stands in for.
__global__ void probe_kernel(unsigned long long* first_ns, int smem_words) {
  const unsigned long long t = global_ns();
  extern __shared__ unsigned words[];
  if (threadIdx.x < static_cast<unsigned>(smem_words)) words[threadIdx.x] = threadIdx.x;
  if (threadIdx.x == 0) atomicMin(first_ns, t);
}

// An empty kernel for the graph floor: with `trigger`, it lets the next kernel launch at once
// (griddepcontrol.launch_dependents).
__global__ void empty_kernel(int trigger) {
  extern __shared__ unsigned words[];
  if (trigger) cuda::allow_next_grid();  // a no-op before sm_90
  if (threadIdx.x == 0 && trigger < 0) words[0] = 0;  // never: keeps the shared memory declared
}

// Reads `n` words and writes one word only if their sum is a value it never is for the zeros they
// hold: evicts L2 without leaving dirty lines to write back.
__global__ void read_flush_kernel(const uint4* data, std::size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = data[i];
    acc += v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) sink[0] = acc;
}

}  // namespace

void launch_primer(unsigned long long* end_ns, int smem_bytes, cudaStream_t s) {
  if (smem_bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(primer_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes));
  primer_kernel<<<1, 128, static_cast<std::size_t>(smem_bytes), s>>>(end_ns, smem_bytes / 4);
  CUDA_CHECK(cudaGetLastError());
}

void launch_probe(unsigned long long* first_ns, int blocks, int smem_bytes, cudaStream_t s) {
  if (smem_bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes));
  probe_kernel<<<blocks, 128, static_cast<std::size_t>(smem_bytes), s>>>(first_ns, smem_bytes / 4);
  CUDA_CHECK(cudaGetLastError());
}

void launch_read_flush(const void* buffer, std::size_t bytes, unsigned* sink, int sms, cudaStream_t s) {
  read_flush_kernel<<<4 * sms, 512, 0, s>>>(static_cast<const uint4*>(buffer), bytes / sizeof(uint4), sink);
  CUDA_CHECK(cudaGetLastError());
}

bool make_lt_rig(const cudaDeviceProp& props, LtRig& rig) {
  CUDA_CHECK(cudaStreamCreate(&rig.s));
  if (cublasLtCreate(&rig.lt) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cublasLtCreate failed\n");
    return false;
  }
  rig.flush = {nullptr, 2 * static_cast<std::size_t>(props.l2CacheSize)};
  CUDA_CHECK(cudaMalloc(&rig.flush.buffer, rig.flush.bytes));
  CUDA_CHECK(cudaMalloc(&rig.workspace, LtRig::kWorkspace));
  return true;
}

void* device_random(std::size_t n, DT dt, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<std::uint16_t> h16(n);
  std::vector<float> h32(n);
  for (std::size_t i = 0; i < n; ++i) {
    h32[i] = nd(rng);
    h16[i] = float_to_bf16(h32[i]);
  }
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, n * dt_size(dt)));
  CUDA_CHECK(cudaMemcpy(p, dt == DT::f32 ? static_cast<const void*>(h32.data()) : h16.data(), n * dt_size(dt),
                        cudaMemcpyHostToDevice));
  return p;
}

double event_median_us(const std::function<void()>& work, cudaStream_t s, int rounds, int warmup, int per) {
  cudaEvent_t e[2];
  CUDA_CHECK(cudaEventCreate(&e[0]));
  CUDA_CHECK(cudaEventCreate(&e[1]));
  std::vector<double> t;
  for (int r = 0; r < warmup + rounds; ++r) {
    CUDA_CHECK(cudaEventRecord(e[0], s));
    work();
    CUDA_CHECK(cudaEventRecord(e[1], s));
    CUDA_CHECK(cudaEventSynchronize(e[1]));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e[0], e[1]));
    if (r >= warmup) t.push_back(1000.0 * ms / per);
  }
  CUDA_CHECK(cudaEventDestroy(e[0]));
  CUDA_CHECK(cudaEventDestroy(e[1]));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double graph_floor_us(int nodes, int blocks, int smem_bytes, int pdl, bool alternate, cudaStream_t s) {
  CUDA_CHECK(cudaFuncSetAttribute(empty_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  cudaGraph_t graph;
  CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < nodes; ++i) {
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(static_cast<unsigned>(blocks));
    cfg.blockDim = dim3(128);
    cfg.dynamicSmemBytes = alternate && i % 2 ? 0 : static_cast<std::size_t>(smem_bytes);
    cfg.stream = s;
    cfg.attrs = &attr;
    cfg.numAttrs = pdl > 0 ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, empty_kernel, pdl == 2 ? 1 : 0));
  }
  CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  const double us = event_median_us([&] { CUDA_CHECK(cudaGraphLaunch(exec, s)); }, s, 10, 2, nodes);
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));
  return us;
}

}  // namespace vitrt::bench
