// Helper kernels for measuring the time between one kernel's end and the next one's first block
// (small_gemm_trace's launch-gap experiment). Measurement only.
#include "gap_kernels.h"

#include <cuda.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

// Lets the next kernel launch, waits until spin_ns after this block's start, then copies its share.
__global__ void late_copy_kernel(uint4* dst1, const uint4* src1, std::size_t n1, uint4* dst2, const uint4* src2,
                                 std::size_t n2, unsigned spin_ns) {
  cuda::allow_next_grid();
  if (threadIdx.x == 0) {
    const unsigned long long until = global_ns() + spin_ns;
    while (global_ns() < until) {
    }
  }
  __syncthreads();
  const std::size_t step = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n1; i += step)
    dst1[i] = src1[i];
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n2; i += step)
    dst2[i] = src2[i];
}

// A driver entry point as of CUDA 12.3, through the runtime (no link against libcuda); null if absent.
template <typename F>
F driver_entry(const char* symbol) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  if (cudaGetDriverEntryPointByVersion(symbol, &fn, 12030, cudaEnableDefault, &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess)
    return nullptr;
  return reinterpret_cast<F>(fn);
}

}  // namespace

bool lt_setup(int argc, char** argv, const char* extra_name, int extra_default, LtShape& shape, LtRig& rig) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ROWS IN OUT [bias|gelu|residual] [%s]\n", argv[0], extra_name);
    return false;
  }
  setenv("VITRT_GEMM_WS", "0", 1);  // cuBLASLt only
  shape.rows = std::atoll(argv[1]);
  shape.in = std::atoi(argv[2]);
  shape.out = std::atoi(argv[3]);
  shape.epi = argc > 4 ? argv[4] : "bias";
  shape.extra = argc > 5 ? std::atoi(argv[5]) : extra_default;
  shape.res = shape.epi == "residual";
  shape.out_dt = shape.res ? DT::f32 : DT::bf16;
  shape.act = shape.epi == "gelu" ? Epilogue::gelu_erf : Epilogue::none;
  CUDA_CHECK(cudaGetDeviceProperties(&shape.props, 0));
  shape.arch = shape.props.major * 10 + shape.props.minor;
  shape.sms = shape.props.multiProcessorCount;
  return make_lt_rig(shape.props, rig);
}

double b2b_us(const cuda::LinearOp& op, const LinearArgs& la, const LtRig& rig) {
  return event_median_us(
      [&] {
        for (int r = 0; r < 10; ++r) op.execute(rig.lt, la, rig.workspace, rig.s);
      },
      rig.s, 5, 1, 10);
}

bool lt_try(cuda::LinearOp& op, const LinearArgs& la, const LtRig& rig, const nlohmann::json& cfg) {
  if (!op.use_algo(rig.lt, cfg, LtRig::kWorkspace)) return false;
  op.execute(rig.lt, la, rig.workspace, rig.s);
  if (cudaStreamSynchronize(rig.s) == cudaSuccess) return true;
  cudaGetLastError();
  return false;
}

std::vector<nlohmann::json> lt_configs(cublasLtHandle_t lt, cudaDataType_t out_t, int& n_ids) {
  std::vector<int> ids(256);
  n_ids = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetIds(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, out_t, out_t,
                                        static_cast<int>(ids.size()), ids.data(), &n_ids));
  ids.resize(static_cast<std::size_t>(n_ids));
  std::vector<nlohmann::json> configs;
  for (const int id : ids) {
    cublasLtMatmulAlgo_t algo{};
    if (cublasLtMatmulAlgoInit(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, out_t, out_t, id,
                               &algo) != CUBLAS_STATUS_SUCCESS)
      continue;
    // The ids an array-valued capability lists (its size asked first).
    const auto cap_ids = [&](cublasLtMatmulAlgoCapAttributes_t cap) {
      std::size_t bytes = 0;
      cublasLtMatmulAlgoCapGetAttribute(&algo, cap, nullptr, 0, &bytes);
      std::vector<std::uint32_t> v(bytes / 4);
      if (!v.empty()) cublasLtMatmulAlgoCapGetAttribute(&algo, cap, v.data(), bytes, &bytes);
      return v;
    };
    std::vector<std::uint32_t> tiles = cap_ids(CUBLASLT_ALGO_CAP_TILE_IDS);
    if (tiles.empty()) tiles.push_back(CUBLASLT_MATMUL_TILE_UNDEFINED);
    std::vector<std::uint32_t> stages = cap_ids(CUBLASLT_ALGO_CAP_STAGES_IDS);
    stages.insert(stages.begin(), CUBLASLT_MATMUL_STAGES_UNDEFINED);
    for (const std::uint32_t tile : tiles)
      for (const std::uint32_t stage : stages)
        for (const int cluster :
             {CUBLASLT_CLUSTER_SHAPE_AUTO, CUBLASLT_CLUSTER_SHAPE_1x1x1, CUBLASLT_CLUSTER_SHAPE_2x1x1,
              CUBLASLT_CLUSTER_SHAPE_1x2x1, CUBLASLT_CLUSTER_SHAPE_4x1x1})
          configs.push_back({{"id", id},    {"tile", tile},   {"stages", stage},
                             {"splitk", 1}, {"reduction", 0}, {"swizzle", 0},
                             {"custom", 0}, {"inner", 0},     {"cluster", cluster}});
  }
  return configs;
}

void launch_late_copy(void* dst1, const void* src1, std::size_t bytes1, void* dst2, const void* src2,
                      std::size_t bytes2, unsigned spin_ns, cudaStream_t s) {
  late_copy_kernel<<<16, 256, 0, s>>>(static_cast<uint4*>(dst1), static_cast<const uint4*>(src1), bytes1 / 16,
                                      static_cast<uint4*>(dst2), static_cast<const uint4*>(src2), bytes2 / 16,
                                      spin_ns);
  CUDA_CHECK(cudaGetLastError());
}

std::string kernel_node_name(cudaGraphNode_t node) {
  using GetParams = CUresult (*)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS*);
  using FuncName = CUresult (*)(const char**, CUfunction);
  using KernelName = CUresult (*)(const char**, CUkernel);
  static const auto get_params = driver_entry<GetParams>("cuGraphKernelNodeGetParams");
  static const auto func_name = driver_entry<FuncName>("cuFuncGetName");
  static const auto kernel_name = driver_entry<KernelName>("cuKernelGetName");
  CUDA_KERNEL_NODE_PARAMS p{};
  if (!get_params || get_params(reinterpret_cast<CUgraphNode>(node), &p) != CUDA_SUCCESS) return "";
  const char* name = nullptr;
  if (p.func && func_name && func_name(&name, p.func) == CUDA_SUCCESS && name) return name;
  if (p.kern && kernel_name && kernel_name(&name, p.kern) == CUDA_SUCCESS && name) return name;
  return "";
}

int make_edges_programmatic(cudaGraph_t graph, const std::function<bool(const std::string&)>& want_to) {
  std::size_t n = 0;
  CUDA_CHECK(cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &n));
  std::vector<cudaGraphNode_t> from(n), to(n);
  std::vector<cudaGraphEdgeData> data(n);
  CUDA_CHECK(cudaGraphGetEdges(graph, from.data(), to.data(), data.data(), &n));
  int changed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    cudaGraphNodeType tf{}, tt{};
    CUDA_CHECK(cudaGraphNodeGetType(from[i], &tf));
    CUDA_CHECK(cudaGraphNodeGetType(to[i], &tt));
    if (tf != cudaGraphNodeTypeKernel || tt != cudaGraphNodeTypeKernel) continue;
    if (data[i].type == cudaGraphDependencyTypeProgrammatic || !want_to(kernel_node_name(to[i]))) continue;
    CUDA_CHECK(cudaGraphRemoveDependencies(graph, &from[i], &to[i], &data[i], 1));
    cudaGraphEdgeData e{};
    e.from_port = cudaGraphKernelNodePortProgrammatic;
    e.type = cudaGraphDependencyTypeProgrammatic;
    CUDA_CHECK(cudaGraphAddDependencies(graph, &from[i], &to[i], &e, 1));
    ++changed;
  }
  return changed;
}

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
